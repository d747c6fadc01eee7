/* bp_bench measures and records; bench/report.py turns the records into tables and a chart.
 *   main.c     options, data, validation, the timing loop, the records file
 *   measure.c  the three measurements: sgemm peak, training step, epoch
 *   sysinfo.c  the header record: machine, OpenBLAS, build, commit, load average
 * FLOPs of one sample (bench_flops_per_sample; bench/README.md): the GEMMs of a training step.
 * A linear layer with I inputs and O outputs: forward V = X·Wᵀ 2·I·O, dW = dVᵀ·X 2·I·O, and
 * dX = dV·W 2·I·O. A conv2d with C_in input and C_out output channels, a kh×kw kernel and P
 * output pixels: K = C_in·kh·kw, each of forward W·col, dW = dT·colᵀ and dcol = Wᵀ·dT is
 * 2·C_out·K·P. dX is not counted for the list's first layer (training does not need dL/dX).
 * Elementwise work (bias, activation, pooling, dropout, im2col/col2im, softmax, optimizer,
 * gather) is not counted. */
#ifndef BENCH_H
#define BENCH_H

#include "backprop.h"

#include <jansson.h>

typedef struct {
    const char *name;  /* option value and record field: "linear", "mlp", "cnn" */
    const char *label; /* for people: "784→10" */
    int nlayers;       /* an MLP of sizes[0..nlayers] with ReLU, when arch is NULL */
    int sizes[3];
    const char *arch;  /* else the layers (bp_arch_parse) on 1×28×28, then fc:10 */
    int batch, quick_batch; /* > 0: the only batch size measured unless --batches is given */
} bench_model;

/* The model on 28×28 MNIST inputs, parameters 0; with_dropout 0 leaves its dropout layers out
 * (the same parameter layers, the same parameter layout). */
int bench_model_create(const bench_model *bm, int with_dropout, bp_model **m, bp_error *err);
double bench_flops_per_sample(const bp_model *m);

/* measure.c. Each runs once untimed (warm-up, and for the step the calibration), then reps
 * times into v[reps]: GFLOP/s of a bare n³ cblas_sgemm; samples/s of steps_per_rep calls of
 * bp_grad + bp_opt_step on one batch, steps_per_rep chosen to last about seconds; samples/s of
 * bp_train epochs over the first samples of ds (its own CLOCK_MONOTONIC loop time). */
int bench_sgemm(int n, int threads, int reps, double *v);
int bench_step(bp_model *m, bp_work *w, bp_opt *opt, bp_impl impl, const float *X,
               const uint8_t *labels, int B, float lr, double seconds, int reps, double *v,
               long *steps_per_rep);
/* paired (NULL: not measured): after each timed epoch one sgemm_n³ sgemm on the same threads,
 * GFLOP/s into paired[reps], so each epoch has a peak measured in the same phase of a shared
 * machine. */
int bench_epoch(const bench_model *bm, const bp_dataset *ds, long samples, bp_impl impl, int B,
                int threads, float lr, uint64_t seed, int reps, double *v, int sgemm_n,
                double *paired);

/* A record's repetitions: {"reps": [...], "median", "min", "max"}; NULL without memory. */
json_t *bench_reps(const double *v, int n);

/* sysinfo.c: the header record's machine, blas and build parts; the load average. */
json_t *bench_sysinfo(void);
json_t *bench_loadavg(void);

#endif
