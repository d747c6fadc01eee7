/* bp_limit: how fast the two large products of a 784-H-10 training step can run on this
 * machine, split in the ways a step can split them, against the sgemm peak measured in the
 * same run (interleaved, so a slow phase of a shared host hits all of them alike).
 * Per step, with B the batch:
 *   forward  H1 = X·W1ᵀ      [B, 784]·[784, H]
 *   backward dW1 = dZ1ᵀ·X    [H, B]·[B, 784], added into W1 (alpha = beta = 1, as the fused
 *                                                  SGD step does it)
 * 4·784·H·B flops. The splits, each share through gemm_nt1/gemm_tn1 (the kernel set's own
 * unpacked GEMMs where it has them, as training runs them) unless said:
 *   units      each thread its hidden units in both products (hidden.c, what training uses)
 *   rows       the forward by rows of the batch, dW1 by units (the split before hidden.c)
 *   openblas   each product one OpenBLAS call on all the threads
 *   apart      the units split with every operand copied per thread: no line shared between
 *              the cores, as two single-threaded processes would run
 *   units-ob   the units split with OpenBLAS single-threaded on each share
 * Nothing else of the step (gather, activations, output layer, update, loss) is included: the
 * gap between these rates and bp_bench's epoch rate is what the rest costs. */
#include "internal.h"

#include <cblas.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SPLITS = 5, MAXT = 8 };
static const char *const NAMES[SPLITS] = {"units", "rows", "openblas", "apart", "units-ob"};

typedef struct {
    float *X[MAXT], *W[MAXT], *H[MAXT], *dZ[MAXT]; /* [0] shared; apart: one per thread */
    int B, Hn, split;
} job;

static void task(void *ctx, int t, int n)
{
    const job *j = ctx;
    int B = j->B, H = j->Hn, lo, hi, c = j->split == 3 ? t : 0;
    pool_range(H, 16, t, n, &lo, &hi);
    if (j->split == 1) {
        int r0, r1;
        pool_range(B, 1, t, n, &r0, &r1);
        gemm_nt1(j->H[0] + (size_t)r0 * H, H, j->X[0] + (size_t)r0 * 784, 784, j->W[0], 784,
                 r1 - r0, H, 784, NULL, 0);
    } else if (j->split == 4) {
        gemm(1, 0, 1, B, hi - lo, 784, 1.0f, j->X[c], 784, j->W[c] + (size_t)lo * 784, 784, 1.0f,
             j->H[c] + lo, H);
    } else {
        gemm_nt1(j->H[c] + lo, H, j->X[c], 784, j->W[c] + (size_t)lo * 784, 784, B, hi - lo, 784,
                 NULL, 0);
    }
}

static void task_dw(void *ctx, int t, int n)
{
    const job *j = ctx;
    int B = j->B, H = j->Hn, lo, hi, c = j->split == 3 ? t : 0;
    pool_range(H, 16, t, n, &lo, &hi);
    if (j->split == 4)
        gemm(1, 1, 0, hi - lo, 784, B, 1.0f, j->dZ[c] + lo, H, j->X[c], 784, 1.0f,
             j->W[c] + (size_t)lo * 784, 784);
    else
        gemm_tn1(j->W[c] + (size_t)lo * 784, 784, j->dZ[c] + lo, H, j->X[c], 784, B, hi - lo,
                 784, 1);
}

/* After a call on several threads OpenBLAS's workers keep polling for a while (about 0.1 s)
 * before they sleep, taking cores from whatever runs next: wait that out. */
static void idle(void)
{
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float *filled(size_t n, unsigned seed)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        v[i] = (float)((i * 2654435761u + seed) % 1000) * 1e-3f - 0.5f;
    return v;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2, B = argc > 2 ? atoi(argv[2]) : 128;
    int H = argc > 3 ? atoi(argv[3]) : 256, reps = argc > 4 ? atoi(argv[4]) : 9;
    if (argc > 5 || threads < 1 || threads > MAXT || B < 1 || B > 4096 || H < 16 || H > 4096 ||
        reps < 1 || reps > 99) {
        fprintf(stderr, "usage: bp_limit [THREADS (2, at most %d) [BATCH (128) [HIDDEN (256) "
                        "[REPS (9)]]]]\n", MAXT);
        return 2;
    }
    job j = {.B = B, .Hn = H};
    for (int t = 0; t < threads; t++) {
        j.X[t] = filled((size_t)B * 784, 1), j.W[t] = filled((size_t)H * 784, 2);
        j.H[t] = filled((size_t)B * H, 3), j.dZ[t] = filled((size_t)B * H, 4);
        for (size_t i = 0; j.dZ[t] && i < (size_t)B * H; i++)
            j.dZ[t][i] *= 1e-9f; /* W1 stays bounded over the repetitions */
        if (!j.X[t] || !j.W[t] || !j.H[t] || !j.dZ[t]) {
            fprintf(stderr, "bp_limit: out of memory\n");
            return 1;
        }
    }
    const int n = 2048;
    float *A = filled((size_t)n * n, 5), *Bm = filled((size_t)n * n, 6), *C = filled((size_t)n * n, 7);
    if (!A || !Bm || !C) {
        fprintf(stderr, "bp_limit: out of memory\n");
        return 1;
    }
    double *rate = malloc((size_t)reps * (SPLITS + 1) * sizeof *rate);
    if (!rate)
        return 1;
    /* about 0.3 s per measurement: one epoch's worth of steps at batch 128 */
    long steps = 60000L / B > 4 ? 60000L / B : 4;
    double flops = 4.0 * 784 * H * B * (double)steps;
    for (int r = 0; r < reps; r++) {
        for (int q = 0; q < SPLITS; q++) { /* each repetition starts with another split */
            int s = (q + r) % SPLITS;
            j.split = s;
            double t0 = bp_now();
            for (long k = 0; k < steps; k++) {
                if (s == 2) {
                    gemm(threads, 0, 1, B, H, 784, 1.0f, j.X[0], 784, j.W[0], 784, 1.0f, j.H[0], H);
                    gemm(threads, 1, 0, H, 784, B, 1.0f, j.dZ[0], H, j.X[0], 784, 1.0f, j.W[0],
                         784);
                    continue;
                }
                pool_run(threads, threads, task, &j);
                pool_run(threads, threads, task_dw, &j);
            }
            rate[r * (SPLITS + 1) + 1 + s] = flops / (bp_now() - t0) * 1e-9;
            if (s == 2)
                idle();
        }
        openblas_set_num_threads(threads);
        double t0 = bp_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, Bm, n, 0.0f,
                    C, n);
        rate[r * (SPLITS + 1)] = 2.0 * n * n * (double)n / (bp_now() - t0) * 1e-9;
        idle();
    }
    double col[99], peak = 0;
    for (int r = 0; r < reps; r++)
        peak = rate[r * (SPLITS + 1)] > peak ? rate[r * (SPLITS + 1)] : peak;
    printf("784-%d-10 batch %d, %d thread(s), %d interleaved repetitions of %ld steps; kernel "
           "set %s\n", H, B, threads, reps, steps, bp_kernel_name());
    printf("sgemm 2048^3 on %d thread(s): best %.1f GFLOP/s\n", threads, peak);
    printf("%-9s %9s %9s %9s  %s\n", "split", "median", "min", "max", "median / best sgemm");
    for (int s = 0; s < SPLITS; s++) {
        for (int r = 0; r < reps; r++)
            col[r] = rate[r * (SPLITS + 1) + 1 + s];
        qsort(col, (size_t)reps, sizeof *col, cmp);
        printf("%-9s %9.1f %9.1f %9.1f  %5.1f %%\n", NAMES[s], col[reps / 2], col[0],
               col[reps - 1], 100.0 * col[reps / 2] / peak);
    }
    for (int t = 0; t < threads; t++)
        free(j.X[t]), free(j.W[t]), free(j.H[t]), free(j.dZ[t]);
    free(A), free(Bm), free(C), free(rate);
    return 0;
}
