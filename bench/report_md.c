/* latest.md: the run as readable tables. Targets and crossovers first, then the machine, the
 * sgemm peak, validation, and the epoch and step tables per model and thread count. */
#include "bench.h"

#include <stdio.h>
#include <string.h>

/* 1234567 → "1 234 567" (digits grouped by thin spaces would not survive every viewer). */
static const char *grouped(char *buf, size_t len, double v)
{
    char raw[32];
    snprintf(raw, sizeof raw, "%.0f", v);
    size_t n = strlen(raw), j = 0;
    for (size_t i = 0; i < n && j + 2 < len; i++) {
        if (i && (n - i) % 3 == 0)
            buf[j++] = ' ';
        buf[j++] = raw[i];
    }
    buf[j] = 0;
    return buf;
}

static void header(FILE *f, const bench_run *run)
{
    const bench_sysinfo *s = &run->sys;
    const bench_opts *o = &run->opt;
    fprintf(f, "# backprop benchmark: naive loops vs batched GEMMs\n\n");
    fprintf(f, "%s run of `bp_bench`, %s, commit `%s`, %.0f s wall. Data: %s.%s\n\n",
            o->quick ? "Quick" : "Full", s->date_utc, s->commit, run->wall_seconds,
            run->data_desc,
            o->quick ? " **Quick mode: short repetitions and a small sgemm; not for comparing.**"
                     : "");
    fprintf(f, "## Against the targets\n\n| target | measured | threshold | threshold needs "
               "| result |\n|:--|--:|--:|--:|:--|\n");
    for (int i = 0; i < run->ntargets; i++) {
        const bench_target *t = &run->targets[i];
        fprintf(f, "| %s | %s | %s | %s | %s |\n", t->name, t->measured, t->threshold,
                t->status < 0 ? "" : t->needs,
                t->status < 0 ? "not measured" : t->status ? "pass" : "miss");
    }
    fprintf(f, "\n## Where batching pays (epochs, blas vs naive at the same batch size)\n\n");
    for (int i = 0; i < run->ncross; i++) {
        const bench_crossover *c = &run->cross[i];
        char a[32], b[32];
        fprintf(f, "- %s, %d thread%s: ", bench_models[c->model].label, c->threads,
                c->threads == 1 ? "" : "s");
        if (c->first_win)
            fprintf(f, "blas beats naive from batch %d on (%.1f× there)", c->first_win,
                    c->win_speedup);
        else
            fprintf(f, "blas beats naive at no measured batch size");
        if (c->has_b1)
            fprintf(f, "; at batch 1 blas %s: %s vs %s samples/s (%.2f×)%s",
                    c->b1_blas < c->b1_naive ? "loses" : "does not lose",
                    grouped(a, sizeof a, c->b1_blas), grouped(b, sizeof b, c->b1_naive),
                    c->b1_blas / c->b1_naive,
                    c->b1_blas < c->b1_naive ? ", the cost of BLAS calls on 1-row matrices" : "");
        fprintf(f, ".\n");
    }
    fprintf(f, "\n## Machine and build\n\n| | |\n|:--|:--|\n");
    fprintf(f, "| CPU | %s (family %d, model %d, %.0f MHz reported); AVX2 %s, FMA %s, "
               "AVX-512F %s |\n",
            s->cpu_model, s->cpu_family, s->cpu_model_id, s->cpu_mhz, s->avx2 ? "yes" : "no",
            s->fma ? "yes" : "no", s->avx512f ? "yes" : "no");
    fprintf(f, "| cores, memory | %d online, %.1f GiB |\n| kernel | %s |\n", s->cores,
            s->mem_gib, s->kernel);
    fprintf(f, "| OpenBLAS | %s; core `%s`; OPENBLAS_CORETYPE %s; OPENBLAS_NUM_THREADS %s |\n",
            s->blas_config, s->blas_core, s->coretype_env, s->blas_threads_env);
    fprintf(f, "| compiler | %s; buildtype %s, -O%s, c_args %s, sanitize %s |\n", s->cc,
            s->buildtype, s->optimization, s->c_args, s->sanitize);
    fprintf(f, "| load average (1 min) | %.2f before, %.2f after |\n", s->load_before[0],
            s->load_after[0]);
    fprintf(f, "| settings | %d reps after a warm-up; step reps ≈ %.3g s; epoch reps cut at "
               "%.3g s; SGD lr %g; seed %llu |\n\n",
            o->reps, o->step_seconds, o->rep_seconds, (double)o->lr,
            (unsigned long long)o->seed);

    fprintf(f, "## sgemm peak (row-major C = A·B, square, in this run)\n\nPeak is the best "
               "repetition (max), the denominator of every %% peak below.\n\n"
               "| threads | n | GFLOP/s median | min | max = peak |\n|--:|--:|--:|--:|--:|\n");
    for (int i = 0; i < run->nsgemm; i++) {
        const bench_sgemm *g = &run->sgemm[i];
        fprintf(f, "| %d | %d | %.1f | %.1f | %.1f |\n", g->threads, g->n, g->gflops.med,
                g->gflops.min, g->gflops.max);
    }
    fprintf(f, "\n## Validation (before timing)\n\nGradient after `bp_grad` on the "
               "benchmark's own batch, from the same parameters: max |g − g_naive| / "
               "max |g_naive| over all parameters; tolerance %.1e (and the same for the loss). "
               "Worst over batch sizes and thread counts:\n\n"
               "| model | impl | worst rel. diff | at batch | checks | result |\n"
               "|:--|:--|--:|--:|--:|:--|\n", o->tolerance);
    for (int mi = 0; mi < o->nmodels; mi++)
        for (int k = 0; k < BENCH_NIMPL; k++) {
            const bench_check *worst = NULL;
            int n = 0, ok = 1;
            for (int i = 0; i < run->nchecks; i++) {
                const bench_check *c = &run->checks[i];
                if (c->model != o->models[mi] || c->impl != bench_impls[k])
                    continue;
                n++;
                ok &= c->ok;
                if (!worst || c->rel_diff > worst->rel_diff)
                    worst = c;
            }
            if (worst)
                fprintf(f, "| %s | %s | %.2e | %d | %d | %s |\n",
                        bench_models[o->models[mi]].label, bp_impl_name(bench_impls[k]),
                        worst->rel_diff, worst->batch, n, ok ? "ok" : "FAILED");
        }
}

static void table(FILE *f, const bench_run *run, bench_kind kind, int model, int threads)
{
    const bench_opts *o = &run->opt;
    fprintf(f, "\n### %s, %s, %d thread%s (sgemm peak %.1f GFLOP/s)\n\n",
            bench_models[model].label, kind == BENCH_EPOCH ? "epoch" : "step", threads,
            threads == 1 ? "" : "s", bench_peak_gflops(run, threads));
    fprintf(f, "| batch | impl | samples/s | min – max | %sGFLOP/s | %% peak | × naive | %s |\n"
               "|--:|:--|--:|--:|%s--:|--:|--:|--:|\n",
            kind == BENCH_STEP ? "µs/step | " : "",
            kind == BENCH_EPOCH ? "samples/rep" : "steps/rep", kind == BENCH_STEP ? "--:|" : "");
    int shared = 0;
    for (int bi = 0; bi < o->nbatches; bi++)
        for (int k = 0; k < BENCH_NIMPL; k++) {
            const bench_row *r = bench_find(run, kind, model, threads, o->batches[bi],
                                            bench_impls[k]);
            if (!r)
                continue;
            char a[32], b[32], c[32];
            int mark = r->timed_threads != r->threads;
            shared |= mark;
            fprintf(f, "| %d | %s%s | %s | %s – %s | ", r->batch, bp_impl_name(r->impl),
                    mark ? "†" : "", grouped(a, sizeof a, r->sps.med),
                    grouped(b, sizeof b, r->sps.min), grouped(c, sizeof c, r->sps.max));
            if (kind == BENCH_STEP)
                fprintf(f, "%.1f | ", 1e6 * r->batch / r->sps.med);
            fprintf(f, "%.2f | %.1f | ", r->gflops, 100 * r->peak_frac);
            if (r->impl == BP_IMPL_NAIVE)
                fprintf(f, "1 | ");
            else
                fprintf(f, "%.1f | ", r->speedup);
            fprintf(f, "%ld |\n", kind == BENCH_EPOCH ? r->samples_per_rep : r->steps_per_rep);
        }
    if (shared)
        fprintf(f, "\n† naive calls no BLAS: timed once, with %d thread%s set, and repeated "
                   "here.\n", o->threads[0], o->threads[0] == 1 ? "" : "s");
}

void bench_md_body(FILE *f, const bench_run *run)
{
    header(f, run);
    const bench_opts *o = &run->opt;
    fprintf(f, "\n## Epochs\n\nOne repetition is `bp_train` over the training set (shuffle, "
               "gather and scale uint8 → float per batch, step, plain SGD), or over its first "
               "*samples/rep* samples where a full epoch would take more than %.3g s; "
               "samples/s is comparable either way. GFLOP/s counts GEMM work only (bench/README.md).\n",
            o->rep_seconds);
    for (int mi = 0; mi < o->nmodels; mi++)
        for (int ti = 0; ti < o->nthreads; ti++)
            table(f, run, BENCH_EPOCH, o->models[mi], o->threads[ti]);
    fprintf(f, "\n## Steps\n\nOne repetition is *steps/rep* calls of `bp_grad` + "
               "`bp_opt_step` (SGD) on one fixed batch already in float: no gather, no "
               "shuffle.\n");
    for (int mi = 0; mi < o->nmodels; mi++)
        for (int ti = 0; ti < o->nthreads; ti++)
            table(f, run, BENCH_STEP, o->models[mi], o->threads[ti]);
}
