/* latest.json: the same run for programs. Every number the markdown shows is here, plus the
 * per-row repetition sizes; derived values are computed as stated in bench.h and analyze.c. */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* A number, or null where there is none (JSON has no NaN). */
static void jnum(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fprintf(f, "null");
}

static void jstat(FILE *f, bench_stat s)
{
    fprintf(f, "{\"median\": ");
    jnum(f, s.med);
    fprintf(f, ", \"min\": ");
    jnum(f, s.min);
    fprintf(f, ", \"max\": ");
    jnum(f, s.max);
    fprintf(f, "}");
}

static void jkv(FILE *f, const char *indent, const char *key, const char *val, int last)
{
    fprintf(f, "%s\"%s\": ", indent, key);
    jstr(f, val);
    fprintf(f, last ? "\n" : ",\n");
}

static void jints(FILE *f, const char *key, const int *v, int n)
{
    fprintf(f, "    \"%s\": [", key);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%d", i ? ", " : "", v[i]);
    fprintf(f, "],\n");
}

static void write_meta(FILE *f, const bench_run *run)
{
    const bench_sysinfo *s = &run->sys;
    const bench_opts *o = &run->opt;
    fprintf(f, "{\n  \"schema\": 1,\n  \"mode\": \"%s\",\n", o->quick ? "quick" : "full");
    jkv(f, "  ", "date_utc", s->date_utc, 0);
    jkv(f, "  ", "commit", s->commit, 0);
    fprintf(f, "  \"wall_seconds\": %.1f,\n", run->wall_seconds);
    fprintf(f, "  \"machine\": {\n");
    jkv(f, "    ", "cpu_model", s->cpu_model, 0);
    fprintf(f, "    \"cpu_family\": %d, \"cpu_model_id\": %d, \"cpu_mhz\": %.0f,\n",
            s->cpu_family, s->cpu_model_id, s->cpu_mhz);
    fprintf(f, "    \"avx2\": %s, \"fma\": %s, \"avx512f\": %s,\n", s->avx2 ? "true" : "false",
            s->fma ? "true" : "false", s->avx512f ? "true" : "false");
    fprintf(f, "    \"cores\": %d, \"mem_gib\": %.2f,\n", s->cores, s->mem_gib);
    jkv(f, "    ", "kernel", s->kernel, 0);
    fprintf(f, "    \"loadavg_before\": [%.2f, %.2f, %.2f], \"loadavg_after\": [%.2f, %.2f, %.2f]\n"
               "  },\n",
            s->load_before[0], s->load_before[1], s->load_before[2], s->load_after[0],
            s->load_after[1], s->load_after[2]);
    fprintf(f, "  \"blas\": {\n");
    jkv(f, "    ", "config", s->blas_config, 0);
    jkv(f, "    ", "corename", s->blas_core, 0);
    jkv(f, "    ", "OPENBLAS_CORETYPE", s->coretype_env, 0);
    jkv(f, "    ", "OPENBLAS_NUM_THREADS", s->blas_threads_env, 1);
    fprintf(f, "  },\n  \"build\": {\n");
    jkv(f, "    ", "compiler", s->cc, 0);
    jkv(f, "    ", "buildtype", s->buildtype, 0);
    jkv(f, "    ", "optimization", s->optimization, 0);
    jkv(f, "    ", "c_args", s->c_args, 0);
    jkv(f, "    ", "sanitize", s->sanitize, 1);
    fprintf(f, "  },\n  \"data\": {\"synthetic\": %s, \"samples\": %u, \"description\": ",
            run->synthetic ? "true" : "false", run->nsamples);
    jstr(f, run->data_desc);
    fprintf(f, "},\n  \"options\": {\n");
    jints(f, "threads", o->threads, o->nthreads);
    jints(f, "batches", o->batches, o->nbatches);
    fprintf(f, "    \"models\": [");
    for (int i = 0; i < o->nmodels; i++)
        fprintf(f, "%s\"%s\"", i ? ", " : "", bench_models[o->models[i]].name);
    fprintf(f, "],\n    \"reps\": %d, \"step_seconds\": %g, \"rep_seconds\": %g, "
               "\"sgemm_n\": %d, \"tolerance\": %g, \"lr\": %g, \"seed\": %llu\n  },\n",
            o->reps, o->step_seconds, o->rep_seconds, o->sgemm_n, o->tolerance, (double)o->lr,
            (unsigned long long)o->seed);
    fprintf(f, "  \"flop_count\": \"per sample and layer (I in, O out): forward 2*I*O, dW 2*I*O, "
               "dX 2*I*O for every layer but the first; elementwise work not counted; peak_fraction is "
               "relative to the best sgemm repetition\",\n");
    fprintf(f, "  \"models\": {");
    for (int i = 0; i < o->nmodels; i++) {
        const bench_model *bm = &bench_models[o->models[i]];
        fprintf(f, "%s\"%s\": {\"label\": ", i ? ", " : "", bm->name);
        jstr(f, bm->label);
        fprintf(f, ", \"gemm_flops_per_sample\": %.0f}", bench_flops_per_sample(bm));
    }
    fprintf(f, "},\n  \"sgemm\": [");
    for (int i = 0; i < run->nsgemm; i++) {
        fprintf(f, "%s\n    {\"threads\": %d, \"n\": %d, \"gflops\": ", i ? "," : "",
                run->sgemm[i].threads, run->sgemm[i].n);
        jstat(f, run->sgemm[i].gflops);
        fprintf(f, "}");
    }
    fprintf(f, "\n  ],\n");
}

static void write_results(FILE *f, const bench_run *run)
{
    fprintf(f, "  \"validation\": [");
    for (int i = 0; i < run->nchecks; i++) {
        const bench_check *c = &run->checks[i];
        fprintf(f, "%s\n    {\"model\": \"%s\", \"impl\": \"%s\", \"batch\": %d, \"threads\": %d, "
                   "\"grad_rel_diff\": ", i ? "," : "", bench_models[c->model].name,
                bp_impl_name(c->impl), c->batch, c->threads);
        jnum(f, c->rel_diff);
        fprintf(f, ", \"loss_rel_diff\": ");
        jnum(f, c->loss_rel);
        fprintf(f, ", \"ok\": %s}", c->ok ? "true" : "false");
    }
    fprintf(f, "\n  ],\n  \"results\": [");
    for (int i = 0; i < run->nrows; i++) {
        const bench_row *r = &run->rows[i];
        fprintf(f, "%s\n    {\"kind\": \"%s\", \"model\": \"%s\", \"impl\": \"%s\", \"threads\": "
                   "%d, \"timed_threads\": %d, \"batch\": %d, \"reps\": %d, "
                   "\"samples_per_rep\": %ld, \"steps_per_rep\": %ld, \"samples_per_s\": ",
                i ? "," : "", r->kind == BENCH_EPOCH ? "epoch" : "step",
                bench_models[r->model].name, bp_impl_name(r->impl), r->threads,
                r->timed_threads, r->batch, r->reps, r->samples_per_rep, r->steps_per_rep);
        jstat(f, r->sps);
        fprintf(f, ", \"gemm_gflops\": ");
        jnum(f, r->gflops);
        fprintf(f, ", \"peak_fraction\": ");
        jnum(f, r->peak_frac);
        fprintf(f, ", \"speedup_vs_naive\": ");
        jnum(f, r->speedup > 0 ? r->speedup : NAN);
        fprintf(f, "}");
    }
    fprintf(f, "\n  ],\n  \"targets\": [");
    for (int i = 0; i < run->ntargets; i++) {
        const bench_target *t = &run->targets[i];
        fprintf(f, "%s\n    {\"target\": ", i ? "," : "");
        jstr(f, t->name);
        fprintf(f, ", \"measured\": ");
        jstr(f, t->measured);
        fprintf(f, ", \"threshold\": ");
        jstr(f, t->threshold);
        fprintf(f, ", \"threshold_needs\": ");
        jstr(f, t->status < 0 ? "" : t->needs);
        fprintf(f, ", \"result\": \"%s\"}",
                t->status < 0 ? "not measured" : t->status ? "pass" : "miss");
    }
    fprintf(f, "\n  ],\n  \"crossover\": [");
    for (int i = 0; i < run->ncross; i++) {
        const bench_crossover *c = &run->cross[i];
        fprintf(f, "%s\n    {\"model\": \"%s\", \"threads\": %d, \"blas_wins_from_batch\": ",
                i ? "," : "", bench_models[c->model].name, c->threads);
        if (c->first_win)
            fprintf(f, "%d", c->first_win);
        else
            fprintf(f, "null");
        fprintf(f, ", \"batch1_blas_samples_per_s\": ");
        jnum(f, c->has_b1 ? c->b1_blas : NAN);
        fprintf(f, ", \"batch1_naive_samples_per_s\": ");
        jnum(f, c->has_b1 ? c->b1_naive : NAN);
        fprintf(f, "}");
    }
    fprintf(f, "\n  ]\n}\n");
}

void bench_json_body(FILE *f, const bench_run *run)
{
    write_meta(f, run);
    write_results(f, run);
}
