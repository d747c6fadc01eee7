/* bp_bench: validate, then measure, then write the records, then render them.
 * OUT_DIR/latest.jsonl holds one JSON object per line: a header (machine, build, options), then
 * one per validation check and per measurement (kind sgemm, step or epoch). bench/report.py
 * renders it into latest.md and latest.svg and judges bench/targets.json. Exit status: 0 ok;
 * 1 the implementations disagree (nothing is written), a measurement, the records file or the
 * renderer failed, or --out-dir is not a writable directory (found before any timing); 2 bad
 * usage. */
#include "bench.h"
#include "bench_config.h"
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_LIST 16
#define PATH_LEN 1024 /* --out-dir and --data: longer paths are refused, never cut */
#define NMODELS 3
/* one line per record, keys in the order written, 7 significant digits */
#define JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7))

static const bench_model models[NMODELS] = {
    {.name = "linear", .label = "784→10", .nlayers = 1, .sizes = {784, 10, 0}},
    {.name = "mlp", .label = "784-256-10 ReLU", .nlayers = 2, .sizes = {784, 256, 10}},
    /* PyTorch's MNIST example network (examples/mnist/main.py); naive takes seconds per step
     * on it, so one batch size unless --batches says otherwise (quick: a small one) */
    {.name = "cnn", .label = "PyTorch's MNIST CNN",
     .arch = "conv3x3:32,relu,conv3x3:64,relu,maxpool2,dropout:0.25,fc:128,relu,dropout:0.5",
     .batch = 64, .quick_batch = 4},
};

typedef struct {
    int quick, report, batches_given;
    int threads[MAX_LIST], nthreads, batches[MAX_LIST], nbatches, max_batch;
    int models[NMODELS], nmodels;
    bp_impl impls[3];
    int nimpls, reps, sgemm_n;
    float step_seconds, rep_seconds, tolerance, lr;
    uint64_t seed;
    const char *out_dir, *data_dir;
} bench_opts;

static void usage(void)
{
    printf("usage: bp_bench [OPTIONS]\n"
           "Checks that every implementation's gradient agrees with naive, times the sgemm peak,\n"
           "training steps and epochs, writes OUT_DIR/latest.jsonl and renders it with\n"
           "bench/report.py into latest.md and latest.svg.\n\n"
           "  --quick            seconds: batches 1,8,128 (cnn 4), short repetitions, 512³\n"
           "                     sgemm, results into %s\n"
           "  --threads LIST     OpenBLAS thread counts (1,2)\n"
           "  --batches LIST     batch sizes (1,8,32,128,512,2048; cnn: 64, quick 4)\n"
           "  --models LIST      linear (784→10), mlp (784-256-10 ReLU), cnn (PyTorch's MNIST\n"
           "                     example network) (all three)\n"
           "  --impls LIST       naive, jacobian, blas (all; validation is against naive always)\n"
           "  --reps N           timed repetitions after a warm-up (5)\n"
           "  --step-seconds F   one step repetition lasts about F s (0.2; quick 0.003)\n"
           "  --rep-seconds F    an epoch repetition is the whole training set, or about F s of\n"
           "                     its first batches where that would take longer (2; quick 0.01)\n"
           "  --sgemm N          the N³ sgemm whose best repetition is the peak (2048; quick 512)\n"
           "  --tolerance F      max |g − g_naive| / max |g_naive|, and the loss's (1e-4)\n"
           "  --data DIR         MNIST directory (%s); else synthetic data\n"
           "  --out-dir DIR      an existing writable directory, checked first (%s)\n"
           "  --seed N           initialisation and shuffling seed (1)\n"
           "  --no-report        write latest.jsonl only; do not run the renderer\n",
           BENCH_BUILD_DIR, BENCH_DATA_DIR, BENCH_RESULTS_DIR);
}

static int range(const char *opt, double v, double lo, double hi)
{
    if (v >= lo && v <= hi)
        return 0;
    fprintf(stderr, "bp_bench: %s: %g is outside %g to %g\n", opt, v, lo, hi);
    return -1;
}

static int int_opt(const char *opt, const char *s, int *out, int lo, int hi)
{
    return opt_int("", opt, s, out) || range(opt, *out, lo, hi) ? -1 : 0;
}

static int float_opt(const char *opt, const char *s, float *out, double lo, double hi)
{
    return opt_float("", opt, s, out) || range(opt, *out, lo, hi) ? -1 : 0;
}

static int thread_item(const char *opt, const char *t, int *v)
{
    return int_opt(opt, t, v, 1, 256);
}

static int batch_item(const char *opt, const char *t, int *v)
{
    return int_opt(opt, t, v, 1, 60000);
}

static int model_item(const char *opt, const char *t, int *v)
{
    for (*v = 0; *v < NMODELS; ++*v)
        if (!strcmp(t, models[*v].name))
            return 0;
    fprintf(stderr, "bp_bench: %s: unknown model '%s' (one of: linear, mlp, cnn)\n", opt, t);
    return -1;
}

static int impl_item(const char *opt, const char *t, int *v)
{
    bp_error err;
    bp_impl impl = BP_IMPL_BLAS;
    int st = bp_impl_parse(t, &impl, &err);
    *v = (int)impl;
    return opt_parsed("", opt, st, &err);
}

/* "1,8,32" or "linear,mlp" into out, each value through item; the count, or −1 after saying
 * why. */
static int list(const char *opt, const char *s, int *out, int max,
                int (*item)(const char *, const char *, int *))
{
    char buf[256], *save = NULL;
    int n = 0;
    if (strlen(s) >= sizeof buf) {
        fprintf(stderr, "bp_bench: %s: the list is longer than %zu bytes\n", opt, sizeof buf - 1);
        return -1;
    }
    strcpy(buf, s);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == max)
            fprintf(stderr, "bp_bench: %s: at most %d values\n", opt, max);
        if (n == max || item(opt, t, &out[n++]))
            return -1;
    }
    if (!n)
        fprintf(stderr, "bp_bench: %s needs at least one value\n", opt);
    return n ? n : -1;
}

static int path_opt(const char *opt, const char *s, const char **out)
{
    size_t n = strlen(s);
    if (!n)
        fprintf(stderr, "bp_bench: %s needs a directory, not an empty string\n", opt);
    else if (n >= PATH_LEN)
        fprintf(stderr, "bp_bench: %s: the path is %zu bytes, longer than the %d this tool "
                "takes: %.48s…\n", opt, n, PATH_LEN - 1, s);
    else
        *out = s;
    return n && n < PATH_LEN ? 0 : -1;
}

/* The batch sizes measured for model bm into *b: the run's list, or the model's own one size
 * (cnn) unless --batches was given. Their number. */
static int model_batches(const bench_opts *o, const bench_model *bm, const int **b)
{
    if (bm->batch && !o->batches_given) {
        *b = o->quick ? &bm->quick_batch : &bm->batch;
        return 1;
    }
    *b = o->batches;
    return o->nbatches;
}

static int model_max_batch(const bench_opts *o, const bench_model *bm)
{
    const int *b;
    int n = model_batches(o, bm, &b), max = 1;
    for (int i = 0; i < n; i++)
        max = b[i] > max ? b[i] : max;
    return max;
}

/* 0 ok, 1 done (--help), 2 bad usage. */
static int parse_opts(bench_opts *o, int argc, char **argv)
{
    enum { O_QUICK = 256, O_THREADS, O_BATCHES, O_MODELS, O_IMPLS, O_REPS, O_STEP, O_REP,
           O_SGEMM, O_TOL, O_DATA, O_OUT, O_SEED, O_NOREPORT };
    static const struct option lo[] = {
        {"quick", no_argument, 0, O_QUICK}, {"threads", required_argument, 0, O_THREADS},
        {"batches", required_argument, 0, O_BATCHES},
        {"models", required_argument, 0, O_MODELS}, {"impls", required_argument, 0, O_IMPLS},
        {"reps", required_argument, 0, O_REPS}, {"step-seconds", required_argument, 0, O_STEP},
        {"rep-seconds", required_argument, 0, O_REP}, {"sgemm", required_argument, 0, O_SGEMM},
        {"tolerance", required_argument, 0, O_TOL}, {"data", required_argument, 0, O_DATA},
        {"out-dir", required_argument, 0, O_OUT}, {"seed", required_argument, 0, O_SEED},
        {"no-report", no_argument, 0, O_NOREPORT}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    *o = (bench_opts){.report = 1, .threads = {1, 2}, .nthreads = 2,
                      .batches = {1, 8, 32, 128, 512, 2048}, .nbatches = 6, .models = {0, 1, 2},
                      .nmodels = 3, .impls = {BP_IMPL_NAIVE, BP_IMPL_JACOBIAN, BP_IMPL_BLAS},
                      .nimpls = 3, .reps = 5, .step_seconds = -1, .rep_seconds = -1,
                      .sgemm_n = -1, .tolerance = 1e-4f, .lr = 0.01f, .seed = 1,
                      .data_dir = BENCH_DATA_DIR};
    int batches_given = 0, c, bad = 0, k[3];
    cli_prog = "bp_bench";
    opterr = 0;
    optind = 0;
    while (!bad && (c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (c) {
        case O_QUICK: o->quick = 1; break;
        case O_NOREPORT: o->report = 0; break;
        case O_THREADS:
            bad = (o->nthreads = list("--threads", optarg, o->threads, MAX_LIST, thread_item)) < 0;
            break;
        case O_BATCHES:
            bad = (o->nbatches = list("--batches", optarg, o->batches, MAX_LIST, batch_item)) < 0;
            batches_given = 1;
            break;
        case O_MODELS:
            bad = (o->nmodels = list("--models", optarg, o->models, NMODELS, model_item)) < 0;
            break;
        case O_IMPLS:
            bad = (o->nimpls = list("--impls", optarg, k, 3, impl_item)) < 0;
            for (int i = 0; i < o->nimpls; i++)
                o->impls[i] = (bp_impl)k[i];
            break;
        case O_REPS: bad = int_opt("--reps", optarg, &o->reps, 1, 1000); break;
        case O_SGEMM: bad = int_opt("--sgemm", optarg, &o->sgemm_n, 64, 8192); break;
        case O_STEP: bad = float_opt("--step-seconds", optarg, &o->step_seconds, 1e-4, 60); break;
        case O_REP: bad = float_opt("--rep-seconds", optarg, &o->rep_seconds, 1e-4, 600); break;
        case O_TOL: bad = float_opt("--tolerance", optarg, &o->tolerance, 0, 1); break;
        case O_SEED: bad = opt_u64("", "--seed", optarg, &o->seed); break;
        case O_DATA: bad = path_opt("--data", optarg, &o->data_dir); break;
        case O_OUT: bad = path_opt("--out-dir", optarg, &o->out_dir); break;
        case 'h': usage(); return 1;
        default: cli_opt_error("", c, argv, lo); return 2;
        }
    }
    if (!bad && optind < argc)
        fprintf(stderr, "bp_bench: unexpected argument '%s'\n", argv[optind]), bad = 1;
    if (bad) {
        fprintf(stderr, "Try 'bp_bench --help'.\n");
        return 2;
    }
    if (o->quick && !batches_given)
        memcpy(o->batches, (int[]){1, 8, 128}, 3 * sizeof(int)), o->nbatches = 3;
    o->batches_given = batches_given;
    for (int i = 0; i < o->nmodels; i++) {
        int mb = model_max_batch(o, &models[o->models[i]]);
        o->max_batch = mb > o->max_batch ? mb : o->max_batch;
    }
    o->step_seconds = o->step_seconds > 0 ? o->step_seconds : o->quick ? 0.003f : 0.2f;
    o->rep_seconds = o->rep_seconds > 0 ? o->rep_seconds : o->quick ? 0.01f : 2.0f;
    o->sgemm_n = o->sgemm_n > 0 ? o->sgemm_n : o->quick ? 512 : 2048;
    o->out_dir = o->out_dir ? o->out_dir : o->quick ? BENCH_BUILD_DIR : BENCH_RESULTS_DIR;
    return 0;
}

/* Before any timing, the way the records will be written: a probe file created and removed. */
static int check_out_dir(const char *dir, const char *path)
{
    struct stat sb;
    bp_file *probe = NULL;
    bp_error err;
    if (stat(dir, &sb) != 0)
        fprintf(stderr, "bp_bench: --out-dir %s: %s (the directory must exist)\n", dir,
                strerror(errno));
    else if (!S_ISDIR(sb.st_mode))
        fprintf(stderr, "bp_bench: --out-dir %s: not a directory\n", dir);
    else if (bp_file_create(&probe, path, &err) != BP_OK)
        fprintf(stderr, "bp_bench: --out-dir %s: cannot write there: %s\n", dir, err.msg);
    int ok = probe != NULL;
    bp_file_abort(probe);
    return ok ? BP_OK : BP_ERR_IO;
}

/* The MNIST training set if it is there and holds the largest batch, else 60000 uniformly
 * random samples of its shape (the timing does not depend on the values); why goes in desc. */
static bp_dataset *load_data(const bench_opts *o, char *desc, size_t len, int *synthetic)
{
    bp_dataset *train = NULL, *test = NULL;
    bp_error err;
    int st = bp_dataset_load_dir(o->data_dir, &train, &test, &err);
    bp_dataset_free(test);
    if (!st && train->dim == 784 && train->n >= (uint32_t)o->max_batch) {
        snprintf(desc, len, "MNIST training set from %s", o->data_dir);
        return train;
    }
    snprintf(desc, len, "synthetic: uniform random uint8 pixels and labels (%s in %s)",
             st ? "no MNIST" : "too few or too wide samples", o->data_dir);
    bp_dataset_free(train);
    *synthetic = 1;
    bp_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return NULL;
    *ds = (bp_dataset){.n = 60000, .rows = 28, .cols = 28, .dim = 784, .classes = BP_CLASSES};
    ds->pixels = malloc((size_t)ds->n * ds->dim);
    ds->labels = malloc(ds->n);
    if (!ds->pixels || !ds->labels) {
        bp_dataset_free(ds);
        return NULL;
    }
    bp_rng rng;
    bp_rng_seed(&rng, o->seed);
    for (size_t i = 0; i < (size_t)ds->n * ds->dim; i++)
        ds->pixels[i] = (uint8_t)bp_rng_below(&rng, 256);
    for (uint32_t i = 0; i < ds->n; i++)
        ds->labels[i] = (uint8_t)bp_rng_below(&rng, BP_CLASSES);
    return ds;
}

/* JSON has no NaN or infinity: null for them. */
static json_t *num(double v)
{
    return v - v == 0 ? json_real(v) : json_null();
}

/* rec, with extra's fields merged in, appended to recs; BP_ERR_NOMEM if either is NULL (out of
 * memory). Takes both references. */
static int add(json_t *recs, json_t *rec, json_t *extra)
{
    int ok = rec && extra && json_object_update(rec, extra) == 0 &&
             json_array_append(recs, rec) == 0;
    json_decref(rec);
    json_decref(extra);
    return ok ? BP_OK : BP_ERR_NOMEM;
}

/* A model, its work on threads[0] and a batch buffer for the model's largest batch. */
typedef struct {
    bp_model *m;
    bp_work *w;
    float *X;
    uint8_t *labels;
} setup;

static int setup_make(setup *s, const bench_model *bm, int with_dropout, const bench_opts *o,
                      bp_error *err)
{
    int max = model_max_batch(o, bm);
    *s = (setup){0};
    s->X = malloc((size_t)max * 784 * sizeof *s->X);
    s->labels = malloc((size_t)max);
    int st = s->X && s->labels ? bench_model_create(bm, with_dropout, &s->m, err) : BP_ERR_NOMEM;
    if (!st)
        st = bp_work_create(&s->w, s->m, max, o->threads[0], err);
    return st ? st : bp_model_init(s->m, BP_INIT_AUTO, o->seed, err);
}

static void setup_free(setup *s)
{
    bp_work_free(s->w);
    bp_model_free(s->m);
    free(s->X);
    free(s->labels);
}

/* One validation record (and a line on stderr if it failed); failures counted. */
static int record_check(json_t *recs, const bench_opts *o, const bench_model *bm, bp_impl impl,
                        int B, int T, const bp_agreement *a, int dropped, const char *masks,
                        int *failures)
{
    int ok = a->grad_rel <= o->tolerance && a->loss_rel <= o->tolerance;
    *failures += !ok;
    if (!ok)
        fprintf(stderr, "bp_bench: VALIDATION FAILED: %s %s batch %d, %d thread(s), dropout %s: "
                "gradient differs from naive by %.3g of max |g| (loss by %.3g), tolerance "
                "%.3g\n", bm->label, bp_impl_name(impl), B, T, masks, a->grad_rel, a->loss_rel,
                (double)o->tolerance);
    return add(recs, json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:o, s:o, s:o, s:f, s:b, s:i, "
                               "s:s}", "kind", "validation", "model", bm->name, "impl",
                               bp_impl_name(impl), "ref", "naive", "batch", B, "threads", T,
                               "grad_rel", num(a->grad_rel), "tensor_rel", num(a->tensor_rel),
                               "loss_rel", num(a->loss_rel), "tolerance", (double)o->tolerance,
                               "ok", ok, "dropout_layers_removed", dropped, "dropout_masks",
                               masks),
               json_object());
}

/* max |g − ref| / max |ref| (NaN stays NaN), bp_grad_agree's measure. */
static double rel_diff(const float *g, const float *ref, size_t n)
{
    double dmax = 0.0, rmax = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)g[i] - (double)ref[i]);
        if (!(d <= dmax))
            dmax = d;
        if (fabs((double)ref[i]) > rmax)
            rmax = fabs((double)ref[i]);
    }
    return rmax > 0 ? dmax / rmax : dmax;
}

/* impl against naive on a model with dropout, both passes with the masks of (seed, step 0):
 * the whole gradient block and the loss into a (tensor_rel and dX_rel not measured: NaN). */
static int agree_masked(bp_model *m, bp_work *w, bp_impl impl, const float *X,
                        const uint8_t *labels, int B, uint64_t seed, bp_agreement *a,
                        bp_error *err)
{
    size_t np = m->nparams;
    float *ref = malloc(np * sizeof *ref);
    if (!ref)
        return BP_ERR_NOMEM;
    *a = (bp_agreement){.tensor_rel = NAN, .dX_rel = NAN};
    for (size_t i = 0; i < np; i++)
        m->grads[i] = NAN; /* an entry a pass leaves unwritten shows as NaN */
    bp_work_set_seed(w, seed, 0);
    int st = bp_grad(m, w, BP_IMPL_NAIVE, X, labels, B, &a->loss_ref, &a->correct_ref, NULL,
                     err);
    if (!st) {
        memcpy(ref, m->grads, np * sizeof *ref);
        for (size_t i = 0; i < np; i++)
            m->grads[i] = NAN;
        bp_work_set_seed(w, seed, 0);
        st = bp_grad(m, w, impl, X, labels, B, &a->loss, &a->correct, NULL, err);
    }
    if (!st) {
        a->grad_rel = rel_diff(m->grads, ref, np);
        a->loss_rel = fabs(a->loss - a->loss_ref) / (fabs(a->loss_ref) > 0 ? fabs(a->loss_ref) : 1);
    }
    free(ref);
    return st;
}

/* On the benchmark's own batches (the first B samples, as the step timing uses them), at every
 * thread count, bp_grad_agree of each implementation against naive: the gradient block and the
 * loss within the tolerance. The number of failures, or −1 if the check could not run.
 * Dropout: bp_grad_agree runs its two passes one after the other, and each bp_grad draws the
 * next step's masks, so the two would multiply by different masks. A model with dropout is
 * therefore checked twice: by bp_grad_agree on a copy without its dropout layers (the same
 * parameter layers, layout and parameters), and as timed, dropout included, with both passes
 * set to the same seed and step (bp_work_set_seed), so they draw the same masks. */
static int validate(const bench_opts *o, const bp_dataset *ds, json_t *recs)
{
    int failures = 0, st = BP_OK;
    for (int mi = 0; mi < o->nmodels && !st; mi++) {
        const bench_model *bm = &models[o->models[mi]];
        const int *batches;
        int nb = model_batches(o, bm, &batches);
        setup s, f = {0}; /* without dropout; as timed, when it has dropout */
        bp_error err = {0};
        st = setup_make(&s, bm, 0, o, &err);
        int dropped = 0; /* dropout layers left out of s */
        if (!st && !(st = setup_make(&f, bm, 1, o, &err)))
            dropped = f.m->nlist - s.m->nlist;
        if (!st && f.m->nparams != s.m->nparams)
            st = BP_ERR_ARG; /* cannot happen: dropout has no parameters */
        if (!st)
            memcpy(f.m->params, s.m->params, s.m->nparams * sizeof *s.m->params);
        for (int bi = 0; bi < nb && !st; bi++) {
            int B = batches[bi];
            bp_dataset_gather(ds, NULL, 0, B, s.X, s.labels);
            for (int ti = 0; ti < o->nthreads && !st; ti++)
                for (int k = 0; k < o->nimpls && !st; k++) {
                    bp_agreement a;
                    bp_impl impl = o->impls[k];
                    int T = o->threads[ti];
                    if (impl == BP_IMPL_NAIVE)
                        continue;
                    bp_work_set_threads(s.w, T);
                    if ((st = bp_grad_agree(s.m, s.w, impl, BP_IMPL_NAIVE, s.X, s.labels, B, &a,
                                            &err)) ||
                        (st = record_check(recs, o, bm, impl, B, T, &a, dropped,
                                           dropped ? "removed" : "none", &failures)) ||
                        !dropped)
                        continue;
                    bp_work_set_threads(f.w, T);
                    if (!(st = agree_masked(f.m, f.w, impl, s.X, s.labels, B, o->seed, &a,
                                            &err)))
                        st = record_check(recs, o, bm, impl, B, T, &a, 0, "same seed and step",
                                          &failures);
                }
        }
        if (st)
            fprintf(stderr, "bp_bench: validation of %s could not run: %s\n", bm->label,
                    err.msg[0] ? err.msg : bp_status_str(st));
        setup_free(&s);
        setup_free(&f);
    }
    return st ? -1 : failures;
}

/* A step or epoch record from the repetitions v (samples/s); *sps gets their median. */
static int measured(json_t *recs, const char *kind, const bench_model *bm, double flops,
                    bp_impl impl, int B, int T, const double *v, int reps, long steps,
                    long samples, double *sps)
{
    json_t *stats = bench_reps(v, reps);
    *sps = stats ? json_real_value(json_object_get(stats, "median")) : 0;
    return add(recs, json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:f, s:I, s:f, s:I, s:I}",
                               "kind", kind, "model", bm->name, "impl", bp_impl_name(impl),
                               "batch", B, "threads", T, "unit", "samples/s", "samples_per_s",
                               *sps, "flops_per_sample", (json_int_t)flops, "gflops",
                               *sps * flops * 1e-9,
                               "steps_per_rep", (json_int_t)steps, "samples_per_rep",
                               (json_int_t)samples), stats);
}

/* The last record (a blas epoch) gets the sgemm run after each of its repetitions and the
 * median of each repetition's GEMM rate over its own sgemm. */
static int add_paired(json_t *recs, double flops, const double *v, const double *paired, int n)
{
    json_t *r = json_array_get(recs, json_array_size(recs) - 1);
    double *f = malloc((size_t)n * sizeof *f);
    if (!f)
        return BP_ERR_NOMEM;
    for (int i = 0; i < n; i++)
        f[i] = paired[i] > 0 ? v[i] * flops * 1e-9 / paired[i] : 0.0;
    json_t *ps = bench_reps(paired, n), *fs = bench_reps(f, n);
    free(f);
    if (!r || !ps || !fs) {
        json_decref(ps), json_decref(fs);
        return BP_ERR_NOMEM;
    }
    if (json_object_set_new(r, "paired_sgemm", ps)) { /* set_new takes ps either way */
        json_decref(fs);
        return BP_ERR_NOMEM;
    }
    return json_object_set_new(r, "paired_fraction", fs) ? BP_ERR_NOMEM : BP_OK;
}

/* One model at thread count T: every batch size, the implementations interleaved per batch so
 * slow drifts in machine load hit them alike; a step and an epoch record each. Naive calls no
 * BLAS: it is timed at the first thread count only, and the report reuses it. */
static int time_model(const bench_opts *o, const bp_dataset *ds, const bench_model *bm, int T,
                      json_t *recs)
{
    setup s;
    bp_opt *opt = NULL;
    bp_error err = {0};
    bp_opt_config oc;
    bp_opt_config_default(&oc);
    oc.kind = BP_OPT_SGD;
    oc.sched = BP_SCHED_CONSTANT;
    double *v = malloc((size_t)o->reps * sizeof *v);
    double *paired = malloc((size_t)o->reps * sizeof *paired);
    const int *batches;
    int nb = model_batches(o, bm, &batches);
    int st = v && paired ? setup_make(&s, bm, 1, o, &err) : BP_ERR_NOMEM;
    if (!st)
        st = bp_opt_create(&opt, &oc, s.m->nparams, &err);
    if (!st)
        bp_work_set_threads(s.w, T);
    double flops = st ? 0 : bench_flops_per_sample(s.m);
    for (int bi = 0; bi < nb && !st; bi++) {
        int B = batches[bi];
        bp_dataset_gather(ds, NULL, 0, B, s.X, s.labels);
        for (int k = 0; k < o->nimpls && !st; k++) {
            bp_impl impl = o->impls[k];
            long steps = 0, n = (long)ds->n;
            if (impl == BP_IMPL_NAIVE && T != o->threads[0])
                continue;
            if ((st = bp_model_init(s.m, BP_INIT_AUTO, o->seed, &err)) ||
                (st = bench_step(s.m, s.w, opt, impl, s.X, s.labels, B, o->lr, o->step_seconds,
                                 o->reps, v, &steps)))
                break;
            double sps = 0, eps = 0;
            st = measured(recs, "step", bm, flops, impl, B, T, v, o->reps, steps, steps * B,
                          &sps);
            /* An epoch repetition is the whole set, unless the step rate says it would take
             * longer than --rep-seconds: then about that long in whole batches. */
            if (sps > 0 && n / sps > o->rep_seconds) {
                long b = (long)(o->rep_seconds * sps / B + 0.5);
                b = b < 1 ? 1 : b;
                n = b * B < n ? b * B : n;
            }
            double *pp = impl == BP_IMPL_BLAS ? paired : NULL;
            if (st ||
                (st = bench_epoch(bm, ds, n, impl, B, T, o->lr, o->seed, o->reps, v,
                                  o->sgemm_n, pp)) ||
                (st = measured(recs, "epoch", bm, flops, impl, B, T, v, o->reps,
                               (n + B - 1) / B, n, &eps)))
                break;
            if (pp && (st = add_paired(recs, flops, v, pp, o->reps)))
                break;
            printf("  %-16s %2d thr  batch %5d  %-8s  step %10.0f samples/s   epoch %10.0f "
                   "samples/s (%ld samples/rep)\n", bm->label, T, B, bp_impl_name(impl), sps,
                   eps, n);
            fflush(stdout);
        }
    }
    if (st)
        fprintf(stderr, "bp_bench: timing %s failed: %s\n", bm->label, bp_status_str(st));
    if (v && paired)
        setup_free(&s);
    bp_opt_free(opt);
    free(v);
    free(paired);
    return st;
}

static json_t *int_array(const int *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

static json_t *header(const bench_opts *o, const char *date, json_t *load_before, double wall,
                      const char *data_desc, int synthetic, uint32_t nsamples)
{
    json_t *names = json_array(), *ms = json_array();
    for (int i = 0; names && i < o->nimpls; i++)
        json_array_append_new(names, json_string(bp_impl_name(o->impls[i])));
    for (int i = 0; ms && i < o->nmodels; i++) {
        const bench_model *bm = &models[o->models[i]];
        const int *b;
        int nb = model_batches(o, bm, &b);
        bp_model *m = NULL;
        bp_error err;
        char arch[512];
        if (bench_model_create(bm, 1, &m, &err)) { /* it was made for the timing already */
            json_decref(ms);
            ms = NULL;
            break;
        }
        json_array_append_new(ms, json_pack("{s:s, s:s, s:s, s:o, s:I, s:I, s:o}", "name",
                                            bm->name, "label", bm->label, "arch",
                                            bp_arch_format(m, arch, sizeof arch), "sizes",
                                            int_array(m->sizes, m->nlayers + 1), "params",
                                            (json_int_t)m->nparams, "flops_per_sample",
                                            (json_int_t)bench_flops_per_sample(m), "batches",
                                            int_array(b, nb)));
        bp_model_free(m);
    }
    json_t *h = json_pack("{s:s, s:i, s:s, s:s, s:f, s:o, s:o, s:{s:b, s:i, s:s}, "
                          "s:{s:o, s:o, s:o, s:i, s:f, s:f, s:i, s:f, s:f, s:I}, s:o}",
                          "kind", "header", "schema", 2, "mode", o->quick ? "quick" : "full",
                          "date_utc", date, "wall_seconds", wall, "loadavg_before", load_before,
                          "loadavg_after", bench_loadavg(), "data", "synthetic", synthetic,
                          "samples", (int)nsamples, "description", data_desc, "options",
                          "threads", int_array(o->threads, o->nthreads), "batches",
                          int_array(o->batches, o->nbatches), "impls", names, "reps", o->reps,
                          "step_seconds", (double)o->step_seconds, "rep_seconds",
                          (double)o->rep_seconds, "sgemm_n", o->sgemm_n, "tolerance",
                          (double)o->tolerance, "lr", (double)o->lr, "seed",
                          (json_int_t)o->seed, "models", ms);
    json_t *sys = bench_sysinfo();
    if (!h || !sys || json_object_update(h, sys)) {
        json_decref(h);
        h = NULL;
    }
    json_decref(sys);
    return h;
}

/* The header and the records to path, whole or not at all (bp_file: a temporary, flushed and
 * fsynced, renamed over the old file). */
static int write_records(const char *path, json_t *head, json_t *recs)
{
    bp_file *f = NULL;
    bp_error err;
    size_t i;
    json_t *r;
    if (bp_file_create(&f, path, &err) != BP_OK) {
        fprintf(stderr, "bp_bench: %s\n", err.msg);
        return BP_ERR_IO;
    }
    FILE *s = bp_file_stream(f);
    int bad = json_dumpf(head, s, JSON_FLAGS) || fputc('\n', s) == EOF;
    json_array_foreach(recs, i, r)
        bad = bad || json_dumpf(r, s, JSON_FLAGS) || fputc('\n', s) == EOF;
    errno = 0;
    if (bad || fflush(s) || ferror(s) || fsync(fileno(s))) {
        fprintf(stderr, "bp_bench: writing %s failed (%s); it was not changed\n", path,
                errno ? strerror(errno) : "write error");
        bp_file_abort(f);
        return BP_ERR_IO;
    }
    if (bp_file_commit(f, &err) != BP_OK) {
        fprintf(stderr, "bp_bench: %s\n", err.msg);
        return BP_ERR_IO;
    }
    return BP_OK;
}

/* bench/report.py on the records: latest.md and latest.svg beside them. python3 -S: without
 * site-packages, so the renderer provably needs nothing beyond the standard library. */
static int render(const char *path)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl(BENCH_PYTHON, BENCH_PYTHON, "-S", BENCH_REPORT_PY, "--targets", BENCH_TARGETS,
              path, (char *)NULL);
        fprintf(stderr, "bp_bench: cannot run %s: %s\n", BENCH_PYTHON, strerror(errno));
        _exit(127);
    }
    int ws = 0;
    if (pid < 0 || waitpid(pid, &ws, 0) != pid || !WIFEXITED(ws) || WEXITSTATUS(ws)) {
        fprintf(stderr, "bp_bench: the renderer failed on %s (%s)\n", path,
                pid < 0 ? strerror(errno) : "see above");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts o;
    int st = parse_opts(&o, argc, argv), synthetic = 0;
    if (st)
        return st == 1 ? 0 : 2;
    double t0 = bp_now();
    char path[PATH_LEN + 16], date[32] = "unknown", desc[1200];
    snprintf(path, sizeof path, "%s/latest.jsonl", o.out_dir);
    if (check_out_dir(o.out_dir, path) != BP_OK)
        return 1;
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm))
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *load_before = bench_loadavg(), *recs = json_array();
    bp_dataset *ds = load_data(&o, desc, sizeof desc, &synthetic);
    if (!ds || !recs) {
        fprintf(stderr, "bp_bench: out of memory for the data set\n");
        return 1;
    }
    printf("bp_bench (%s): %s; OpenBLAS core %s\n", o.quick ? "quick" : "full", desc,
           bp_blas_corename());

    int fails = validate(&o, ds, recs);
    if (fails) {
        fprintf(stderr, "bp_bench: %s; no results written\n",
                fails < 0 ? "the validation could not run" : "gradients disagree with naive");
        return 1;
    }
    printf("validation: %zu gradient checks against naive within %.1e\n", json_array_size(recs),
           (double)o.tolerance);
    double *v = malloc((size_t)o.reps * sizeof *v);
    st = v ? BP_OK : BP_ERR_NOMEM;
    for (int ti = 0; ti < o.nthreads && !st; ti++) {
        int T = o.threads[ti];
        if ((st = bench_sgemm(o.sgemm_n, T, o.reps, v)))
            break;
        json_t *stats = bench_reps(v, o.reps);
        double peak = stats ? json_real_value(json_object_get(stats, "max")) : 0;
        st = add(recs, json_pack("{s:s, s:i, s:i, s:s, s:f}", "kind", "sgemm", "threads", T, "n",
                                 o.sgemm_n, "unit", "GFLOP/s", "peak_gflops", peak), stats);
        printf("sgemm %d³, %d thread(s): peak %.1f GFLOP/s (best of %d)\n", o.sgemm_n, T, peak,
               o.reps);
        for (int mi = 0; mi < o.nmodels && !st; mi++)
            st = time_model(&o, ds, &models[o.models[mi]], T, recs);
    }
    free(v);
    json_t *head = st ? NULL : header(&o, date, load_before, bp_now() - t0, desc, synthetic,
                                      ds->n);
    bp_dataset_free(ds);
    if (!st && !head)
        fprintf(stderr, "bp_bench: out of memory for the header\n");
    st = st || !head ? 1 : write_records(path, head, recs);
    json_decref(head);
    json_decref(recs);
    if (st)
        return 1;
    printf("wrote %s (%.1f s)\n", path, bp_now() - t0);
    return o.report ? render(path) : 0;
}
