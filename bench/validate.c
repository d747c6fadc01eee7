/* Before anything is timed: on the benchmark's own batches (the first B samples, as the step
 * timing uses them) and from the same parameters, every implementation's gradient must agree
 * with the naive loops':  max_i |g_i − g_naive,i| / max_i |g_naive,i| ≤ tolerance, over the
 * whole flat gradient block (every W and b). Checked at every thread count, since OpenBLAS may
 * split a GEMM differently with more threads. */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double rel_diff(const float *g, const float *ref, size_t n)
{
    double dmax = 0.0, gmax = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)g[i] - (double)ref[i]);
        if (!(d <= dmax)) /* also takes a NaN, which then stays */
            dmax = d;
        if (fabs((double)ref[i]) > gmax)
            gmax = fabs((double)ref[i]);
    }
    if (isnan(dmax))
        return NAN;
    return gmax > 0 ? dmax / gmax : dmax;
}

static int validate_model(bench_run *run, int mi, const bp_dataset *ds, int *failures)
{
    const bench_opts *o = &run->opt;
    const bench_model *bm = &bench_models[mi];
    int maxB = o->max_batch;
    bp_model *m = NULL;
    bp_work *w = NULL;
    bp_error err;
    float *X = malloc((size_t)maxB * ds->dim * sizeof *X);
    uint8_t *labels = malloc((size_t)maxB);
    int st = X && labels ? bp_model_create(&m, bm->sizes, bm->nlayers, BP_ACT_RELU, &err)
                         : BP_ERR_NOMEM;
    if (!st)
        st = bp_work_create(&w, m, maxB, 0, &err);
    float *ref = m ? malloc(m->nparams * sizeof *ref) : NULL;
    if (!st && !ref)
        st = BP_ERR_NOMEM;
    if (st)
        goto done;
    if ((st = bp_model_init(m, BP_INIT_AUTO, o->seed, &err)))
        goto done;
    for (int bi = 0; bi < o->nbatches; bi++) {
        int B = o->batches[bi];
        double loss_ref, loss;
        bp_dataset_gather(ds, NULL, 0, B, X, labels);
        if ((st = bp_grad(m, w, BP_IMPL_NAIVE, X, labels, B, &loss_ref, NULL, NULL, NULL)))
            goto done;
        memcpy(ref, m->grads, m->nparams * sizeof *ref);
        for (int ti = 0; ti < o->nthreads; ti++) {
            bp_work_set_threads(w, o->threads[ti]);
            for (int k = 0; k < BENCH_NIMPL; k++) {
                bp_impl impl = bench_impls[k];
                if (impl == BP_IMPL_NAIVE)
                    continue;
                if ((st = bp_grad(m, w, impl, X, labels, B, &loss, NULL, NULL, NULL)))
                    goto done;
                bench_check *c = &run->checks[run->nchecks++];
                c->model = mi, c->batch = B, c->threads = o->threads[ti], c->impl = impl;
                c->rel_diff = rel_diff(m->grads, ref, m->nparams);
                c->loss_rel = fabs(loss - loss_ref) / (fabs(loss_ref) > 0 ? fabs(loss_ref) : 1);
                /* the loss is summed in double in every implementation: it must agree too */
                c->ok = c->rel_diff <= o->tolerance && c->loss_rel <= o->tolerance;
                if (!c->ok) {
                    (*failures)++;
                    fprintf(stderr,
                            "bp_bench: VALIDATION FAILED: %s %s batch %d, %d thread(s): "
                            "gradient differs from naive by %.3g of max |g| (loss by %.3g), "
                            "tolerance %.3g\n",
                            bm->label, bp_impl_name(impl), B, o->threads[ti], c->rel_diff,
                            c->loss_rel, o->tolerance);
                }
            }
        }
    }
done:
    if (st)
        fprintf(stderr, "bp_bench: validation of %s could not run: %s\n", bm->label,
                bp_status_str(st));
    free(ref);
    free(X);
    free(labels);
    bp_work_free(w);
    bp_model_free(m);
    return st;
}

int bench_validate(bench_run *run, const bp_dataset *ds)
{
    int failures = 0;
    run->nchecks = 0;
    for (int i = 0; i < run->opt.nmodels; i++)
        if (validate_model(run, run->opt.models[i], ds, &failures))
            return -1;
    return failures;
}
