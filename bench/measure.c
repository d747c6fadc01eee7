/* Clocks and the three measurements: the sgemm peak, one training step, one epoch.
 * Every measurement runs once untimed (warm-up: page faults, OpenBLAS thread start-up, caches)
 * and then reps times; the median, min and max of the repetitions are kept. */
#include "bench.h"

/* peak = bare cblas_sgemm, not the library's wrapper (src/gemm.c, its only cblas.h include) */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

bench_stat bench_summarize(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    bench_stat s = {.min = v[0], .max = v[n - 1]};
    s.med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    return s;
}

double bench_flops_per_sample(const bench_model *bm)
{
    double f = 0.0;
    for (int l = 0; l < bm->nlayers; l++) {
        double io = (double)bm->sizes[l] * bm->sizes[l + 1];
        f += 2.0 * io * (l == 0 ? 2 : 3); /* forward, dW, and dX above the first layer */
    }
    return f;
}

int bench_sgemm_peak(int n, int reps, int threads, bench_stat *gflops)
{
    size_t nn = (size_t)n * n;
    float *A = malloc(nn * sizeof *A), *Bm = malloc(nn * sizeof *Bm), *C = malloc(nn * sizeof *C);
    double *v = malloc((size_t)reps * sizeof *v);
    if (!A || !Bm || !C || !v) {
        free(A), free(Bm), free(C), free(v);
        return BP_ERR_NOMEM;
    }
    bp_rng rng;
    bp_rng_seed(&rng, 7);
    for (size_t i = 0; i < nn; i++) {
        A[i] = (float)(2.0 * bp_rng_uniform(&rng) - 1.0);
        Bm[i] = (float)(2.0 * bp_rng_uniform(&rng) - 1.0);
    }
    double flops = 2.0 * (double)n * n * n;
    openblas_set_num_threads(threads);
    for (int r = -1; r < reps; r++) {
        double t0 = bp_now();
        /* C = A·B, row-major, no transposes */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, Bm, n, 0.0f,
                    C, n);
        double t = bp_now() - t0;
        if (r >= 0)
            v[r] = flops / t * 1e-9;
    }
    *gflops = bench_summarize(v, reps);
    free(A), free(Bm), free(C), free(v);
    return BP_OK;
}

/* steps consecutive training steps on the same batch: forward, backward, plain SGD. */
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

int bench_time_step(bp_model *m, bp_work *w, bp_opt *opt, bp_impl impl, const float *X,
                    const uint8_t *labels, int B, float lr, double seconds, int reps,
                    bench_stat *sps, long *steps_per_rep)
{
    int st = 0;
    /* Warm-up that also calibrates: double the step count until a run lasts a quarter of the
     * wanted repetition. */
    long steps = 1;
    double t;
    for (;;) {
        t = run_steps(m, w, opt, impl, X, labels, B, lr, steps, &st);
        if (st || t >= 0.25 * seconds || steps >= (1L << 24))
            break;
        steps *= 2;
    }
    if (st)
        return st;
    long n = (long)ceil(seconds * (double)steps / (t > 0 ? t : 1e-9));
    n = n < 1 ? 1 : n;
    double *v = malloc((size_t)reps * sizeof *v);
    if (!v)
        return BP_ERR_NOMEM;
    for (int r = 0; r < reps && !st; r++)
        v[r] = (double)B * (double)n / run_steps(m, w, opt, impl, X, labels, B, lr, n, &st);
    if (!st)
        *sps = bench_summarize(v, reps);
    *steps_per_rep = n;
    free(v);
    return st;
}

typedef struct {
    double *sec;
    int n, cap;
} epoch_log;

static void on_epoch(const bp_epoch_stats *s, void *user)
{
    epoch_log *log = user;
    if (log->n < log->cap)
        log->sec[log->n++] = s->seconds;
}

/* Epochs through the library's own trainer, so the benchmark times what training does: per
 * epoch a seeded shuffle, then per batch the gather and scaling of uint8 pixels to float, the
 * step, the loss check and the SGD update (bp_train's seconds cover exactly that loop). The
 * first epoch is the warm-up. An epoch over fewer samples uses the first `samples` of the set. */
int bench_time_epoch(const bench_model *bm, const bp_dataset *ds, bp_impl impl, int B, int threads,
                     long samples, const bench_opts *o, bench_stat *sps)
{
    bp_dataset sub = *ds;
    sub.n = (uint32_t)samples;
    bp_model *m = NULL;
    bp_error err;
    double *sec = malloc((size_t)(o->reps + 1) * sizeof *sec);
    int st = sec ? bp_model_create(&m, bm->sizes, bm->nlayers, BP_ACT_RELU, &err) : BP_ERR_NOMEM;
    if (st)
        goto done;
    if ((st = bp_model_init(m, BP_INIT_AUTO, o->seed, &err)))
        goto done;
    epoch_log log = {sec, 0, o->reps + 1};
    bp_train_config cfg;
    bp_train_config_default(&cfg);
    cfg.epochs = o->reps + 1;
    cfg.batch = B;
    cfg.seed = o->seed;
    cfg.impl = impl;
    cfg.threads = threads;
    cfg.opt.kind = BP_OPT_SGD;
    cfg.opt.lr = o->lr;
    cfg.opt.sched = BP_SCHED_CONSTANT;
    cfg.on_epoch = on_epoch;
    cfg.user = &log;
    st = bp_train(m, &sub, NULL, &cfg, NULL, NULL, &err);
    if (st) {
        fprintf(stderr, "bp_bench: training failed: %s\n", err.msg);
        goto done;
    }
    for (int r = 1; r < log.n; r++)
        sec[r - 1] = (double)samples / sec[r];
    *sps = bench_summarize(sec, log.n - 1);
done:
    bp_model_free(m);
    free(sec);
    return st;
}
