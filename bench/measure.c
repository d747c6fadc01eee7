/* The three measurements. Every one runs once untimed (page faults, OpenBLAS thread start-up,
 * caches) and then reps times; the caller records every repetition. */
#include "bench.h"

/* peak = bare cblas_sgemm, not the library's wrapper (src/gemm.c, whose policy of a memset for
 * beta = 0 and one thread for small GEMMs should not be part of OpenBLAS's peak) */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bench_model_create(const bench_model *bm, int with_dropout, bp_model **m, bp_error *err)
{
    if (!bm->arch)
        return bp_model_create(m, bm->sizes, bm->nlayers, BP_ACT_RELU, err);
    bp_layer parsed[BP_MAX_LIST], list[BP_MAX_LIST];
    int n = 0, k = 0;
    int st = bp_arch_parse(bm->arch, parsed, BP_MAX_LIST - 1, &n, err);
    for (int i = 0; !st && i < n; i++)
        if (with_dropout || parsed[i].kind != BP_LAYER_DROPOUT)
            list[k++] = parsed[i];
    if (st)
        return st;
    list[k] = (bp_layer){.kind = BP_LAYER_LINEAR, .units = BP_CLASSES}; /* the output layer */
    return bp_model_create_layers(m, 1, 28, 28, list, k + 1, err);
}

double bench_flops_per_sample(const bp_model *m)
{
    double f = 0.0;
    for (int i = 0; i < m->nlist; i++) {
        const bp_layer *ly = &m->list[i];
        double one; /* one of the layer's GEMMs */
        if (ly->kind == BP_LAYER_LINEAR)
            one = 2.0 * (double)(ly->in_c * ly->in_h * ly->in_w) * ly->units;
        else if (ly->kind == BP_LAYER_CONV2D)
            one = 2.0 * ly->out_c * (double)(ly->in_c * ly->kh * ly->kw) *
                  (double)(ly->out_h * ly->out_w);
        else
            continue;
        f += one * (i == 0 ? 2 : 3); /* forward, dW, and dX unless it is the first layer */
    }
    return f;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

json_t *bench_reps(const double *v, int n)
{
    double *s = malloc((size_t)n * sizeof *s);
    json_t *reps = json_array();
    if (!s || !reps) {
        free(s);
        json_decref(reps);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        json_array_append_new(reps, json_real(v[i]));
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    double med = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    json_t *r = json_array_size(reps) == (size_t)n
                    ? json_pack("{s:o, s:f, s:f, s:f}", "reps", reps, "median", med, "min", s[0],
                                "max", s[n - 1])
                    : (json_decref(reps), NULL);
    free(s);
    return r;
}

/* The operands of an n³ sgemm, filled from a seeded stream; 0 without memory (none kept). */
static int sgemm_operands(int n, float **A, float **Bm, float **C)
{
    size_t nn = (size_t)n * n;
    *A = malloc(nn * sizeof **A), *Bm = malloc(nn * sizeof **Bm), *C = malloc(nn * sizeof **C);
    if (!*A || !*Bm || !*C) {
        free(*A), free(*Bm), free(*C);
        *A = *Bm = *C = NULL;
        return 0;
    }
    bp_rng rng;
    bp_rng_seed(&rng, 7);
    for (size_t i = 0; i < nn; i++) {
        (*A)[i] = (float)(2.0 * bp_rng_uniform(&rng) - 1.0);
        (*Bm)[i] = (float)(2.0 * bp_rng_uniform(&rng) - 1.0);
    }
    return 1;
}

/* GFLOP/s of one C = A·B on the threads OpenBLAS is set to. */
static double sgemm_once(int n, const float *A, const float *Bm, float *C)
{
    double t0 = bp_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, Bm, n, 0.0f, C,
                n);
    return 2.0 * (double)n * n * n / (bp_now() - t0) * 1e-9;
}

/* After a call on several threads OpenBLAS's workers keep polling for about 0.1 s before they
 * sleep, taking the cores from what is timed next (the first step measurement at 2 threads
 * ran at half speed): wait that out. */
static void openblas_idle(void)
{
    struct timespec idle = {0, 300 * 1000 * 1000};
    nanosleep(&idle, NULL);
}

int bench_sgemm(int n, int threads, int reps, double *v)
{
    float *A, *Bm, *C;
    if (!sgemm_operands(n, &A, &Bm, &C))
        return BP_ERR_NOMEM;
    openblas_set_num_threads(threads);
    for (int r = -1; r < reps; r++) {
        double g = sgemm_once(n, A, Bm, C);
        if (r >= 0)
            v[r] = g;
    }
    free(A), free(Bm), free(C);
    openblas_idle();
    return BP_OK;
}

/* steps consecutive steps on the same batch: forward, backward, plain SGD; their seconds. */
static double run_steps(bp_model *m, bp_work *w, bp_opt *opt, bp_impl impl, const float *X,
                        const uint8_t *labels, int B, float lr, long steps, int *st)
{
    double t0 = bp_now();
    for (long i = 0; i < steps; i++) {
        double loss;
        int s = bp_grad(m, w, impl, X, labels, B, &loss, NULL, NULL, NULL);
        if (s || !isfinite(loss))
            *st = s ? s : BP_ERR_NUMERIC;
        bp_opt_step(opt, m->params, m->grads, lr);
    }
    return bp_now() - t0;
}

int bench_step(bp_model *m, bp_work *w, bp_opt *opt, bp_impl impl, const float *X,
               const uint8_t *labels, int B, float lr, double seconds, int reps, double *v,
               long *steps_per_rep)
{
    /* Warm-up that calibrates: double the steps until a run lasts a quarter of a repetition. */
    int st = 0;
    long steps = 1;
    double t;
    while ((t = run_steps(m, w, opt, impl, X, labels, B, lr, steps, &st)) < 0.25 * seconds &&
           !st && steps < (1L << 24))
        steps *= 2;
    long n = (long)ceil(seconds * (double)steps / (t > 0 ? t : 1e-9));
    *steps_per_rep = n = n < 1 ? 1 : n;
    for (int r = 0; r < reps && !st; r++)
        v[r] = (double)B * (double)n / run_steps(m, w, opt, impl, X, labels, B, lr, n, &st);
    return st;
}

typedef struct {
    double *sec;
    int n, cap;
    /* paired: after every timed epoch, one sgemm of n³ on threads threads into paired[] */
    double *paired;
    float *A, *Bm, *C;
    int sgemm_n, threads;
} epoch_log;

static void on_epoch(const bp_epoch_stats *s, void *user)
{
    epoch_log *log = user;
    if (log->n < log->cap)
        log->sec[log->n++] = s->seconds;
    if (log->paired && log->n >= 2) { /* not after the warm-up */
        openblas_set_num_threads(log->threads);
        log->paired[log->n - 2] = sgemm_once(log->sgemm_n, log->A, log->Bm, log->C);
        openblas_idle();
    }
}

/* The library's own trainer, so the benchmark times what training does: per epoch a seeded
 * shuffle, then per batch the gather and scaling of uint8 pixels to float, the step, the loss
 * check and the SGD update. The first epoch is the warm-up. */
int bench_epoch(const bench_model *bm, const bp_dataset *ds, long samples, bp_impl impl, int B,
                int threads, float lr, uint64_t seed, int reps, double *v, int sgemm_n,
                double *paired)
{
    bp_dataset sub = *ds;
    sub.n = (uint32_t)samples;
    bp_model *m = NULL;
    bp_error err;
    double *sec = malloc((size_t)(reps + 1) * sizeof *sec);
    int st = sec ? bench_model_create(bm, 1, &m, &err) : BP_ERR_NOMEM;
    if (!st)
        st = bp_model_init(m, BP_INIT_AUTO, seed, &err);
    epoch_log log = {sec, 0, reps + 1, NULL, NULL, NULL, NULL, sgemm_n, threads};
    if (!st && paired && !sgemm_operands(sgemm_n, &log.A, &log.Bm, &log.C))
        st = BP_ERR_NOMEM;
    log.paired = st ? NULL : paired;
    bp_train_config cfg;
    bp_train_config_default(&cfg);
    cfg.epochs = reps + 1;
    cfg.batch = B;
    cfg.seed = seed;
    cfg.impl = impl;
    cfg.threads = threads;
    cfg.opt.kind = BP_OPT_SGD;
    cfg.opt.lr = lr;
    cfg.opt.sched = BP_SCHED_CONSTANT;
    cfg.on_epoch = on_epoch;
    cfg.user = &log;
    if (!st && (st = bp_train(m, &sub, NULL, &cfg, NULL, NULL, &err)))
        fprintf(stderr, "bp_bench: training failed: %s\n", err.msg);
    for (int r = 1; !st && r < log.n; r++)
        v[r - 1] = (double)samples / sec[r];
    if (!st && log.n != reps + 1)
        st = BP_ERR_NUMERIC;
    bp_model_free(m);
    free(sec);
    free(log.A), free(log.Bm), free(log.C);
    return st;
}
