/* The benchmark harness: naive per-sample loops vs batched GEMMs, per training step and per
 * epoch. Shared types of its files:
 *   main.c      orchestration: validate, then time, then report
 *   opts.c      command-line options
 *   measure.c   clocks, medians, the sgemm peak, step and epoch timing
 *   validate.c  gradients of every implementation against the naive reference
 *   analyze.c   derived numbers: GFLOP/s, fraction of peak, speedups, targets, crossovers
 * Peak is the best of the sgemm repetitions: other load can only lower a repetition, and the
 * best one makes the fraction of peak the stricter number.
 *   sysinfo.c   machine, BLAS, compiler and commit
 *   report_md.c, report_json.c   bench/results/latest.{md,json}
 *   writefile.c the output directory's check and the two files written as a pair
 * Counting: one step of a model with layers l = 0..L−1 (I inputs, O outputs) does GEMMs of
 *   forward V = X·Wᵀ: 2·B·I·O,  dW = dVᵀ·X: 2·B·I·O,  dX = dV·W: 2·B·I·O (every layer but the
 *   first, whose input gradient training does not need)
 * FLOPs; elementwise work (bias, activation, softmax, optimizer, gather) is not counted. */
#ifndef BENCH_H
#define BENCH_H

#include "backprop.h"

#include <stdio.h>

#define BENCH_MAX_LIST 16
#define BENCH_MAX_MODELS 2
#define BENCH_NIMPL 3
#define BENCH_PATH_MAX 1024 /* --out-dir and --data, with the terminating 0 */

typedef struct {
    const char *name;  /* option value: "linear", "mlp" */
    const char *label; /* for people: "784→10" */
    int nlayers;
    int sizes[3];
} bench_model;

extern const bench_model bench_models[BENCH_MAX_MODELS];
/* Report order: the reference first. */
extern const bp_impl bench_impls[BENCH_NIMPL];

typedef struct {
    int quick;
    int threads[BENCH_MAX_LIST], nthreads;
    int batches[BENCH_MAX_LIST], nbatches;
    int max_batch;        /* the largest of batches: buffers and the data set must hold it */
    int models[BENCH_MAX_MODELS], nmodels; /* indices into bench_models */
    int reps;             /* timed repetitions per measurement (after a warm-up) */
    double step_seconds;  /* one step repetition lasts about this long */
    double rep_seconds;   /* an epoch repetition is cut to about this long when a full one
                             would take longer */
    int sgemm_n;          /* the square sgemm that defines peak */
    double tolerance;     /* max |g − g_naive| / max |g_naive| */
    float lr;             /* plain SGD, constant rate */
    uint64_t seed;
    char out_dir[BENCH_PATH_MAX];  /* longer paths are refused (opts.c), not cut */
    char data_dir[BENCH_PATH_MAX];
} bench_opts;

int bench_parse_opts(bench_opts *o, int argc, char **argv); /* 0 ok, 1 done (help), 2 usage */

typedef struct {
    double med, min, max;
} bench_stat;

typedef enum { BENCH_STEP, BENCH_EPOCH } bench_kind;

typedef struct {
    bench_kind kind;
    int model;           /* index into bench_models */
    int threads;         /* the thread setting of the table the row belongs to */
    int timed_threads;   /* the setting it was timed under (naive: once, at the first) */
    int batch;
    bp_impl impl;
    long samples_per_rep;
    long steps_per_rep;
    int reps;
    bench_stat sps;      /* samples per second over the repetitions */
    /* derived (analyze.c) */
    double gflops;       /* median samples/s · GEMM FLOPs per sample */
    double peak_frac;    /* gflops / sgemm peak (best repetition) at the same thread count */
    double speedup;      /* median samples/s over naive's at the same batch; 0 if unknown */
} bench_row;

typedef struct {
    int threads, n;
    bench_stat gflops;
} bench_sgemm;

typedef struct {
    int model, batch, threads;
    bp_impl impl;
    double rel_diff;  /* max |g − g_naive| / max |g_naive| over every parameter */
    double loss_rel;  /* |loss − loss_naive| / |loss_naive| */
    int ok;
} bench_check;

typedef struct {
    char name[160];
    char measured[64];
    char threshold[32];
    char needs[96];   /* what meeting the threshold would take, in GEMM rate */
    int status;       /* 1 pass, 0 miss, −1 not measured in this run */
} bench_target;

typedef struct {
    int model, threads;
    int first_win;    /* smallest batch where blas epochs beat naive's; 0 if none */
    double win_speedup;
    int has_b1;
    double b1_blas, b1_naive; /* samples/s at batch 1 */
} bench_crossover;

typedef struct {
    char cpu_model[128];
    int cpu_family, cpu_model_id;
    double cpu_mhz;
    int cores;
    double mem_gib;
    int avx2, fma, avx512f;
    char kernel[256];
    char blas_config[256];
    char blas_core[64];
    char coretype_env[64];   /* OPENBLAS_CORETYPE or "(unset)" */
    char blas_threads_env[64];
    char cc[64], buildtype[32], optimization[8], c_args[256], sanitize[64], commit[64];
    char date_utc[32];
    double load_before[3], load_after[3];
} bench_sysinfo;

typedef struct {
    bench_opts opt;
    bench_sysinfo sys;
    char data_desc[1200];
    int synthetic;
    uint32_t nsamples;
    bench_sgemm sgemm[BENCH_MAX_LIST];
    int nsgemm;
    bench_check checks[BENCH_MAX_MODELS * BENCH_MAX_LIST * BENCH_MAX_LIST * 2];
    int nchecks;
    bench_row *rows;
    int nrows, caprows;
    bench_target targets[8];
    int ntargets;
    bench_crossover cross[BENCH_MAX_MODELS * BENCH_MAX_LIST];
    int ncross;
    double wall_seconds;
} bench_run;

/* measure.c */
bench_stat bench_summarize(double *v, int n); /* sorts v */
double bench_flops_per_sample(const bench_model *bm);
int bench_sgemm_peak(int n, int reps, int threads, bench_stat *gflops);
int bench_time_step(bp_model *m, bp_work *w, bp_opt *opt, bp_impl impl, const float *X,
                    const uint8_t *labels, int B, float lr, double seconds, int reps,
                    bench_stat *sps, long *steps_per_rep);
int bench_time_epoch(const bench_model *bm, const bp_dataset *ds, bp_impl impl, int B, int threads,
                     long samples, const bench_opts *o, bench_stat *sps);

/* validate.c: fills run->checks; returns the number of failures (negative on error). */
int bench_validate(bench_run *run, const bp_dataset *ds);

/* analyze.c */
const bench_row *bench_find(const bench_run *run, bench_kind kind, int model, int threads,
                            int batch, bp_impl impl);
void bench_analyze(bench_run *run);

/* sysinfo.c */
void bench_sysinfo_read(bench_sysinfo *s);
void bench_loadavg(double load[3]);

/* The sgemm peak of this run at a thread count: its best repetition (0 if not measured). */
double bench_peak_gflops(const bench_run *run, int threads);

/* report_md.c, report_json.c: the bodies of latest.md and latest.json. */
void bench_md_body(FILE *f, const bench_run *run);
void bench_json_body(FILE *f, const bench_run *run);

/* writefile.c. bench_check_out_dir: dir is a directory where a results file can be created
 * (a probe through bp_file, removed again); else prints why and returns BP_ERR_IO. Called
 * before any timing. bench_write_reports: dir/latest.md and dir/latest.json, both or neither
 * (the one window is described in writefile.c); prints why on failure. */
int bench_check_out_dir(const char *dir);
int bench_write_reports(const bench_run *run, const char *dir);

#endif
