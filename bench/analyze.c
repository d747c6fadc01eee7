/* Numbers derived from the measurements, computed once for both reports:
 *   GFLOP/s        = median samples/s · GEMM FLOPs per sample (bench.h states the count)
 *   fraction       = GFLOP/s / sgemm peak (best repetition) at the same thread count
 *   × naive        = median samples/s / naive's median samples/s, same kind and batch size
 * the targets, and per model and thread count the batch size from which batched
 * epochs beat naive ones and how batch 1 compares. */
#include "bench.h"

#include <stdio.h>

const bench_row *bench_find(const bench_run *run, bench_kind kind, int model, int threads,
                            int batch, bp_impl impl)
{
    for (int i = 0; i < run->nrows; i++) {
        const bench_row *r = &run->rows[i];
        if (r->kind == kind && r->model == model && r->threads == threads && r->batch == batch &&
            r->impl == impl)
            return r;
    }
    return NULL;
}

double bench_peak_gflops(const bench_run *run, int threads)
{
    for (int i = 0; i < run->nsgemm; i++)
        if (run->sgemm[i].threads == threads)
            return run->sgemm[i].gflops.max;
    return 0.0;
}

static void add_target(bench_run *run, int model, int threads, bench_kind kind, const char *what,
                       double threshold, int is_frac)
{
    bench_target *t = &run->targets[run->ntargets++];
    const bench_row *r = bench_find(run, kind, model, threads, 128, BP_IMPL_BLAS);
    snprintf(t->name, sizeof t->name, "%s, batch 128, %d thread%s: blas epoch %s",
             bench_models[model].label, threads, threads == 1 ? "" : "s", what);
    if (is_frac)
        snprintf(t->threshold, sizeof t->threshold, "≥ %.0f%%", 100 * threshold);
    else
        snprintf(t->threshold, sizeof t->threshold, "≥ %.0f×", threshold);
    double v = !r ? 0.0 : is_frac ? r->peak_frac : r->speedup;
    if (!r || v <= 0.0) {
        t->status = -1;
        snprintf(t->measured, sizeof t->measured, "not measured");
        return;
    }
    /* The GEMM rate the threshold asks for: a speedup s over naive needs s times naive's
     * samples/s, i.e. that many GEMM FLOPs per second. */
    double peak = bench_peak_gflops(run, threads);
    double need = is_frac ? threshold * peak : threshold * (r->gflops / r->speedup);
    snprintf(t->needs, sizeof t->needs, "%.1f GFLOP/s = %.0f%% of peak", need,
             peak > 0 ? 100 * need / peak : 0.0);
    t->status = v >= threshold;
    if (is_frac)
        snprintf(t->measured, sizeof t->measured, "%.1f%% (%.1f of %.1f GFLOP/s)", 100 * v,
                 r->gflops, bench_peak_gflops(run, threads));
    else
        snprintf(t->measured, sizeof t->measured, "%.1f×", v);
}

static int has(const int *list, int n, int v)
{
    for (int i = 0; i < n; i++)
        if (list[i] == v)
            return 1;
    return 0;
}

void bench_analyze(bench_run *run)
{
    const bench_opts *o = &run->opt;
    for (int i = 0; i < run->nrows; i++) {
        bench_row *r = &run->rows[i];
        double peak = bench_peak_gflops(run, r->threads);
        r->gflops = r->sps.med * bench_flops_per_sample(&bench_models[r->model]) * 1e-9;
        r->peak_frac = peak > 0 ? r->gflops / peak : 0.0;
        const bench_row *nv = bench_find(run, r->kind, r->model, r->threads, r->batch,
                                         BP_IMPL_NAIVE);
        r->speedup = nv && nv->sps.med > 0 ? r->sps.med / nv->sps.med : 0.0;
    }

    /* The targets, where this run measured their configuration. The 784→10 target
     * names no thread count: it is judged at each one measured. */
    run->ntargets = 0;
    if (has(o->models, o->nmodels, 0))
        for (int ti = 0; ti < o->nthreads && run->ntargets < 6; ti++)
            add_target(run, 0, o->threads[ti], BENCH_EPOCH, "vs naive", 12.0, 0);
    if (has(o->models, o->nmodels, 1)) {
        add_target(run, 1, 2, BENCH_EPOCH, "vs naive", 50.0, 0);
        add_target(run, 1, 2, BENCH_EPOCH, "GEMM rate vs sgemm peak", 0.70, 1);
    }

    run->ncross = 0;
    for (int mi = 0; mi < o->nmodels; mi++)
        for (int ti = 0; ti < o->nthreads; ti++) {
            bench_crossover *c = &run->cross[run->ncross++];
            c->model = o->models[mi];
            c->threads = o->threads[ti];
            c->first_win = 0;
            c->has_b1 = 0;
            /* batches in increasing order, whatever order they were given in */
            int prev = 0;
            for (;;) {
                int next = 0;
                for (int bi = 0; bi < o->nbatches; bi++)
                    if (o->batches[bi] > prev && (!next || o->batches[bi] < next))
                        next = o->batches[bi];
                if (!next)
                    break;
                prev = next;
                const bench_row *b = bench_find(run, BENCH_EPOCH, c->model, c->threads, next,
                                                BP_IMPL_BLAS);
                if (!b || b->speedup <= 0)
                    continue;
                if (next == 1) {
                    const bench_row *nv = bench_find(run, BENCH_EPOCH, c->model, c->threads, 1,
                                                     BP_IMPL_NAIVE);
                    c->has_b1 = nv != NULL;
                    c->b1_blas = b->sps.med;
                    c->b1_naive = nv ? nv->sps.med : 0.0;
                }
                /* from first_win on, blas wins at every larger batch measured */
                if (b->speedup <= 1.0) {
                    c->first_win = 0;
                } else if (!c->first_win) {
                    c->first_win = next;
                    c->win_speedup = b->speedup;
                }
            }
        }
}
