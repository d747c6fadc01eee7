/* bp_bench: validate, then time, then report (see bench.h for the files and the FLOP count,
 * bench/README.md for how to read the results). Exit codes: 0 ok, 1 validation failed or a
 * measurement or the report could not be made (an --out-dir that is not a writable directory
 * fails at once, before any timing), 2 bad usage. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const bench_model bench_models[BENCH_MAX_MODELS] = {
    {"linear", "784→10", 1, {784, 10, 0}},
    {"mlp", "784-256-10 ReLU", 2, {784, 256, 10}},
};
const bp_impl bench_impls[BENCH_NIMPL] = {BP_IMPL_NAIVE, BP_IMPL_JACOBIAN, BP_IMPL_BLAS};

/* Room for n more rows, so pointers to rows stay valid while they are added. */
static int reserve_rows(bench_run *run, int n)
{
    if (run->nrows + n <= run->caprows)
        return BP_OK;
    int cap = run->caprows ? 2 * run->caprows : 64;
    bench_row *p = realloc(run->rows, (size_t)cap * sizeof *p);
    if (!p)
        return BP_ERR_NOMEM;
    run->rows = p;
    run->caprows = cap;
    return BP_OK;
}

/* The real MNIST training set if it is there, else uniform random pixels and labels of the
 * same shape (the timing does not depend on the values; the report says which it was). The
 * validation and the step timing gather the first B samples, so a set smaller than the largest
 * batch is not used either (opts.c caps batches at the 60000 synthetic samples). */
static int load_data(bench_run *run, bp_dataset **out)
{
    bp_dataset *train = NULL, *test = NULL;
    bp_error err;
    char why[1100];
    snprintf(why, sizeof why, "no MNIST in %s", run->opt.data_dir);
    if (bp_dataset_load_dir(run->opt.data_dir, &train, &test, &err) == BP_OK &&
        train->dim == 784) {
        if (train->n >= (uint32_t)run->opt.max_batch) {
            bp_dataset_free(test);
            snprintf(run->data_desc, sizeof run->data_desc, "MNIST training set from %s",
                     run->opt.data_dir);
            *out = train;
            return BP_OK;
        }
        snprintf(why, sizeof why,
                 "the training set in %s has %u samples, fewer than the largest batch, %d",
                 run->opt.data_dir, train->n, run->opt.max_batch);
    }
    bp_dataset_free(train);
    bp_dataset_free(test);
    run->synthetic = 1;
    snprintf(run->data_desc, sizeof run->data_desc,
             "synthetic: uniform random uint8 pixels and labels (%s)", why);
    bp_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return BP_ERR_NOMEM;
    ds->n = 60000, ds->rows = ds->cols = 28, ds->dim = 784, ds->classes = BP_CLASSES;
    ds->pixels = malloc((size_t)ds->n * ds->dim);
    ds->labels = malloc(ds->n);
    if (!ds->pixels || !ds->labels) {
        bp_dataset_free(ds);
        return BP_ERR_NOMEM;
    }
    bp_rng rng;
    bp_rng_seed(&rng, run->opt.seed);
    for (size_t i = 0; i < (size_t)ds->n * ds->dim; i++)
        ds->pixels[i] = (uint8_t)bp_rng_below(&rng, 256);
    for (uint32_t i = 0; i < ds->n; i++)
        ds->labels[i] = (uint8_t)bp_rng_below(&rng, BP_CLASSES);
    *out = ds;
    return BP_OK;
}

/* Samples per epoch repetition: the whole set, unless the step timing says that would take
 * longer than --rep-seconds; then about that long in whole batches (at least one). */
static long epoch_samples(const bench_run *run, int B, double est_sps)
{
    long n = (long)run->nsamples;
    if (est_sps <= 0 || n / est_sps <= run->opt.rep_seconds)
        return n;
    long batches = (long)(run->opt.rep_seconds * est_sps / B + 0.5);
    long s = (batches < 1 ? 1 : batches) * B;
    return s < n ? s : n;
}

/* Step and epoch timing of one model at one thread count, every batch size and impl. */
static int time_model(bench_run *run, const bp_dataset *ds, int mi, int ti)
{
    const bench_opts *o = &run->opt;
    const bench_model *bm = &bench_models[mi];
    int T = o->threads[ti], maxB = o->max_batch, st;
    bp_model *m = NULL;
    bp_work *w = NULL;
    bp_opt *opt = NULL;
    bp_error err;
    bp_opt_config oc;
    bp_opt_config_default(&oc);
    oc.kind = BP_OPT_SGD;
    oc.sched = BP_SCHED_CONSTANT;
    float *X = malloc((size_t)maxB * ds->dim * sizeof *X);
    uint8_t *labels = malloc((size_t)maxB);
    st = X && labels ? bp_model_create(&m, bm->sizes, bm->nlayers, BP_ACT_RELU, &err)
                     : BP_ERR_NOMEM;
    if (!st)
        st = bp_work_create(&w, m, maxB, T, &err);
    if (!st)
        st = bp_opt_create(&opt, &oc, m->nparams, &err);
    for (int bi = 0; bi < o->nbatches && !st; bi++) {
        int B = o->batches[bi];
        bp_dataset_gather(ds, NULL, 0, B, X, labels);
        /* Impls interleaved per batch size, so slow drifts in machine load hit all alike. */
        for (int k = 0; k < BENCH_NIMPL && !st; k++) {
            bp_impl impl = bench_impls[k];
            if ((st = reserve_rows(run, 2)))
                break;
            bench_row *r[2];
            for (int kind = 0; kind < 2; kind++) {
                r[kind] = &run->rows[run->nrows++];
                memset(r[kind], 0, sizeof *r[kind]);
                if (impl == BP_IMPL_NAIVE && ti > 0) {
                    /* Naive calls no BLAS: timed once, at the first thread setting. */
                    const bench_row *src = bench_find(run, (bench_kind)kind, mi, o->threads[0],
                                                      B, impl);
                    *r[kind] = *src;
                    r[kind]->threads = T;
                }
            }
            if (impl == BP_IMPL_NAIVE && ti > 0)
                continue;
            bench_row *rs = r[0], *re = r[1];
            rs->kind = BENCH_STEP, re->kind = BENCH_EPOCH;
            rs->model = re->model = mi;
            rs->threads = re->threads = rs->timed_threads = re->timed_threads = T;
            rs->batch = re->batch = B;
            rs->impl = re->impl = impl;
            rs->reps = re->reps = o->reps;
            if ((st = bp_model_init(m, BP_INIT_AUTO, o->seed, &err)))
                break;
            st = bench_time_step(m, w, opt, impl, X, labels, B, o->lr, o->step_seconds, o->reps,
                                 &rs->sps, &rs->steps_per_rep);
            rs->samples_per_rep = rs->steps_per_rep * B;
            if (st)
                break;
            re->samples_per_rep = epoch_samples(run, B, rs->sps.med);
            re->steps_per_rep = (re->samples_per_rep + B - 1) / B;
            st = bench_time_epoch(bm, ds, impl, B, T, re->samples_per_rep, o, &re->sps);
            if (st)
                break;
            printf("  %-16s %2d thr  batch %5d  %-8s  step %10.0f samples/s   epoch %10.0f "
                   "samples/s (%ld samples/rep)\n",
                   bm->label, T, B, bp_impl_name(impl), rs->sps.med, re->sps.med,
                   re->samples_per_rep);
            fflush(stdout);
        }
    }
    if (st)
        fprintf(stderr, "bp_bench: timing %s failed: %s\n", bm->label, bp_status_str(st));
    free(X);
    free(labels);
    bp_opt_free(opt);
    bp_work_free(w);
    bp_model_free(m);
    return st;
}

int main(int argc, char **argv)
{
    static bench_run run; /* large (the validation records): not on the stack */
    int st = bench_parse_opts(&run.opt, argc, argv);
    if (st)
        return st == 1 ? 0 : 2;
    double t0 = bp_now();
    const bench_opts *o = &run.opt;
    /* Before anything is timed: an unusable --out-dir fails now, not after the full run. */
    if (bench_check_out_dir(o->out_dir) != BP_OK)
        return 1;
    bench_sysinfo_read(&run.sys);
    bp_dataset *ds = NULL;
    if (load_data(&run, &ds)) {
        fprintf(stderr, "bp_bench: out of memory for the dataset\n");
        return 1;
    }
    run.nsamples = ds->n;
    printf("bp_bench (%s): %s; OpenBLAS core %s, OPENBLAS_CORETYPE %s; load %.2f\n",
           o->quick ? "quick" : "full", run.data_desc, run.sys.blas_core, run.sys.coretype_env,
           run.sys.load_before[0]);

    int fails = bench_validate(&run, ds);
    if (fails) {
        fprintf(stderr, "bp_bench: %s; no timings reported\n",
                fails < 0 ? "validation could not run" : "gradients disagree with naive");
        bp_dataset_free(ds);
        return 1;
    }
    printf("validation: %d gradient checks against naive within %.1e\n", run.nchecks,
           o->tolerance);

    for (int ti = 0; ti < o->nthreads && !st; ti++) {
        bench_sgemm *g = &run.sgemm[run.nsgemm++];
        g->threads = o->threads[ti];
        g->n = o->sgemm_n;
        st = bench_sgemm_peak(o->sgemm_n, o->reps, g->threads, &g->gflops);
        if (st)
            break;
        printf("sgemm %d³, %d thread(s): peak %.1f GFLOP/s (best of %d; median %.1f)\n", g->n,
               g->threads, g->gflops.max, o->reps, g->gflops.med);
        for (int mi = 0; mi < o->nmodels && !st; mi++)
            st = time_model(&run, ds, o->models[mi], ti);
    }
    bp_dataset_free(ds);
    if (st) {
        free(run.rows);
        return 1;
    }
    bench_analyze(&run);
    bench_loadavg(run.sys.load_after);
    run.wall_seconds = bp_now() - t0;
    st = bench_write_reports(&run, o->out_dir);
    if (!st)
        printf("wrote %s/latest.md and latest.json in %.1f s\n", o->out_dir, run.wall_seconds);
    free(run.rows);
    return st ? 1 : 0;
}
