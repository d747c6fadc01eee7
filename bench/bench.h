/* bp_bench measures and records; bench/report.py turns the records into tables and a chart.
 *   main.c     options, data, validation, the timing loop, the records file
 *   measure.c  the three measurements: sgemm peak, training step, epoch
 *   sysinfo.c  the header record: machine, OpenBLAS, build, commit, load average
 * FLOPs of one sample, per layer l with I inputs and O outputs: forward V = X·Wᵀ 2·I·O, dW = dVᵀ·X
 * 2·I·O, and dX = dV·W 2·I·O for every layer but the first (training does not need dL/dX).
 * Elementwise work (bias, activation, softmax, optimizer, gather) is not counted. */
#ifndef BENCH_H
#define BENCH_H

#include "backprop.h"

#include <jansson.h>

typedef struct {
    const char *name;  /* option value and record field: "linear", "mlp" */
    const char *label; /* for people: "784→10" */
    int nlayers;
    int sizes[3];
} bench_model;

double bench_flops_per_sample(const bench_model *bm);

/* measure.c. Each runs once untimed (warm-up, and for the step the calibration), then reps
 * times into v[reps]: GFLOP/s of a bare n³ cblas_sgemm; samples/s of steps_per_rep calls of
 * bp_grad + bp_opt_step on one batch, steps_per_rep chosen to last about seconds; samples/s of
 * bp_train epochs over the first samples of ds (its own CLOCK_MONOTONIC loop time). */
int bench_sgemm(int n, int threads, int reps, double *v);
int bench_step(bp_model *m, bp_work *w, bp_opt *opt, bp_impl impl, const float *X,
               const uint8_t *labels, int B, float lr, double seconds, int reps, double *v,
               long *steps_per_rep);
int bench_epoch(const bench_model *bm, const bp_dataset *ds, long samples, bp_impl impl, int B,
                int threads, float lr, uint64_t seed, int reps, double *v);

/* A record's repetitions: {"reps": [...], "median", "min", "max"}; NULL without memory. */
json_t *bench_reps(const double *v, int n);

/* sysinfo.c: the header record's machine, blas and build parts; the load average. */
json_t *bench_sysinfo(void);
json_t *bench_loadavg(void);

#endif
