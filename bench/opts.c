/* Command-line options of bp_bench. Defaults: the full run the committed results come from;
 * --quick shrinks everything to a few seconds (the `meson test --benchmark` registration). */
#include "bench.h"
#include "bench_config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bp_bench [OPTIONS]\n"
            "Times one training step and one epoch of naive loops, jacobian and blas; validates\n"
            "their gradients against naive first; writes OUT_DIR/latest.md and latest.json.\n\n"
            "  --quick              a few seconds: batches 1,8,128, short repetitions, 512² sgemm,\n"
            "                       results into the build directory\n"
            "  --threads LIST       OpenBLAS thread counts (default 1,2)\n"
            "  --batches LIST       batch sizes (default 1,8,32,128,512,2048)\n"
            "  --models LIST        linear (784→10) and/or mlp (784-256-10 ReLU) (default both)\n"
            "  --reps N             timed repetitions after a warm-up, median reported (default 5)\n"
            "  --step-seconds F     length of one step repetition (default 0.2; quick 0.003)\n"
            "  --rep-seconds F      an epoch repetition is the full training set unless that is\n"
            "                       estimated to take longer than F; then it is cut to about F\n"
            "                       seconds of whole batches (default 2; quick 0.01)\n"
            "  --sgemm N            N×N×N sgemm that defines peak (default 2048; quick 512)\n"
            "  --tolerance F        gradient agreement with naive, relative to max |g| (default %g)\n"
            "  --data DIR           MNIST directory (default %s); synthetic data if absent or\n"
            "                       smaller than the largest batch\n"
            "  --out-dir DIR        an existing, writable directory for latest.md and\n"
            "                       latest.json, checked before any timing; both files are\n"
            "                       replaced together or not at all (default %s;\n"
            "                       quick %s)\n"
            "  --seed N             initialisation and shuffling seed (default 1)\n",
            1e-4, BENCH_DATA_DIR, BENCH_RESULTS_DIR, BENCH_BUILD_DIR);
}

static int parse_list(const char *s, int *out, int max, int lo, int hi, const char *what)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < lo || v > hi || n == max || (*end && *end != ',')) {
            fprintf(stderr, "bp_bench: --%s %s: expected up to %d numbers in %d..%d, "
                            "separated by commas\n", what, s, max, lo, hi);
            return -1;
        }
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (n == 0)
        fprintf(stderr, "bp_bench: --%s needs at least one value\n", what);
    return n ? n : -1;
}

static int parse_models(const char *s, bench_opts *o)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    o->nmodels = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int found = -1;
        for (int i = 0; i < BENCH_MAX_MODELS; i++)
            if (!strcmp(tok, bench_models[i].name))
                found = i;
        if (found < 0 || o->nmodels == BENCH_MAX_MODELS) {
            fprintf(stderr, "bp_bench: --models %s: expected linear and/or mlp\n", s);
            return -1;
        }
        o->models[o->nmodels++] = found;
    }
    return o->nmodels ? 0 : -1;
}

/* A directory option into buf, whole: a path that does not fit is refused, never cut (a cut
 * path names some other directory). */
static int parse_path(const char *s, char *buf, size_t len, const char *what)
{
    size_t n = strlen(s);
    if (n == 0) {
        fprintf(stderr, "bp_bench: --%s needs a directory, not an empty string\n", what);
        return -1;
    }
    if (n >= len) {
        fprintf(stderr, "bp_bench: --%s: the path is %zu bytes, longer than the %zu this tool "
                "takes: %.48s…\n", what, n, len - 1, s);
        return -1;
    }
    memcpy(buf, s, n + 1);
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out, const char *what)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "bp_bench: --%s %s: expected a number in [%g, %g]\n", what, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int bench_parse_opts(bench_opts *o, int argc, char **argv)
{
    enum { O_QUICK = 256, O_THREADS, O_BATCHES, O_MODELS, O_REPS, O_STEP, O_REP, O_SGEMM,
           O_TOL, O_DATA, O_OUT, O_SEED, O_HELP };
    static const struct option longs[] = {
        {"quick", no_argument, 0, O_QUICK},         {"threads", required_argument, 0, O_THREADS},
        {"batches", required_argument, 0, O_BATCHES}, {"models", required_argument, 0, O_MODELS},
        {"reps", required_argument, 0, O_REPS},     {"step-seconds", required_argument, 0, O_STEP},
        {"rep-seconds", required_argument, 0, O_REP}, {"sgemm", required_argument, 0, O_SGEMM},
        {"tolerance", required_argument, 0, O_TOL}, {"data", required_argument, 0, O_DATA},
        {"out-dir", required_argument, 0, O_OUT},   {"seed", required_argument, 0, O_SEED},
        {"help", no_argument, 0, O_HELP},           {0, 0, 0, 0}};
    static const int def_batches[] = {1, 8, 32, 128, 512, 2048};
    memset(o, 0, sizeof *o);
    o->threads[0] = 1, o->threads[1] = 2, o->nthreads = 2;
    o->nbatches = 6;
    memcpy(o->batches, def_batches, sizeof def_batches);
    o->models[0] = 0, o->models[1] = 1, o->nmodels = 2;
    o->reps = 5;
    o->step_seconds = -1, o->rep_seconds = -1, o->sgemm_n = -1;
    o->tolerance = 1e-4;
    o->lr = 0.01f;
    o->seed = 1;
    snprintf(o->data_dir, sizeof o->data_dir, "%s", BENCH_DATA_DIR);
    int batches_given = 0, c;
    double v = 0.0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_QUICK: o->quick = 1; break;
        case O_THREADS:
            bad = (o->nthreads = parse_list(optarg, o->threads, BENCH_MAX_LIST, 1, 256,
                                            "threads")) < 0;
            break;
        case O_BATCHES:
            bad = (o->nbatches = parse_list(optarg, o->batches, BENCH_MAX_LIST, 1, 60000,
                                            "batches")) < 0;
            batches_given = 1;
            break;
        case O_MODELS: bad = parse_models(optarg, o) < 0; break;
        case O_REPS:
            bad = parse_double(optarg, 1, 1000, &v, "reps") < 0;
            o->reps = (int)v;
            break;
        case O_STEP: bad = parse_double(optarg, 1e-4, 60, &o->step_seconds, "step-seconds"); break;
        case O_REP: bad = parse_double(optarg, 1e-4, 600, &o->rep_seconds, "rep-seconds"); break;
        case O_SGEMM:
            bad = parse_double(optarg, 64, 8192, &v, "sgemm") < 0;
            o->sgemm_n = (int)v;
            break;
        case O_TOL: bad = parse_double(optarg, 0, 1, &o->tolerance, "tolerance"); break;
        case O_DATA: bad = parse_path(optarg, o->data_dir, sizeof o->data_dir, "data"); break;
        case O_OUT: bad = parse_path(optarg, o->out_dir, sizeof o->out_dir, "out-dir"); break;
        case O_SEED:
            bad = parse_double(optarg, 0, 9e15, &v, "seed") < 0;
            o->seed = (uint64_t)v;
            break;
        case O_HELP: usage(stdout); return 1;
        default:
            fprintf(stderr, "bp_bench: unknown option %s\n", argv[optind - 1]);
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "try: bp_bench --help\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bp_bench: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    if (o->quick && !batches_given) {
        static const int q[] = {1, 8, 128};
        memcpy(o->batches, q, sizeof q);
        o->nbatches = 3;
    }
    o->max_batch = 1;
    for (int i = 0; i < o->nbatches; i++)
        o->max_batch = o->batches[i] > o->max_batch ? o->batches[i] : o->max_batch;
    if (o->step_seconds < 0)
        o->step_seconds = o->quick ? 0.003 : 0.2;
    if (o->rep_seconds < 0)
        o->rep_seconds = o->quick ? 0.01 : 2.0;
    if (o->sgemm_n < 0)
        o->sgemm_n = o->quick ? 512 : 2048;
    if (!o->out_dir[0])
        snprintf(o->out_dir, sizeof o->out_dir, "%s", o->quick ? BENCH_BUILD_DIR
                                                                : BENCH_RESULTS_DIR);
    return 0;
}
