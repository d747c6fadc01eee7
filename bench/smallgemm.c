/* bp_smallgemm: the 784→10 products at batch 128, one thread, three ways: the library's own
 * kernel (src/kernels_body.h), OpenBLAS's cblas_sgemm, and libxsmm's JIT kernels. Built only
 * where libxsmm is installed (Debian libxsmm-dev); not part of the tests. It is how the choice
 * in bench/README.md ("Where the time goes") was made:
 *
 *   build/bench/bp_smallgemm
 *
 * Each row: GFLOP/s, median of 5 repetitions of 2000 calls.
 * libxsmm 1.17 JIT-compiles only products without transposes, so its rows include the
 * transposes that make them so (W for the forward, dV for the weight gradient); its generic
 * libxsmm_sgemm with the transposes hands products this size to the BLAS and runs exactly as
 * fast as OpenBLAS. The JIT kernels accumulate into C (beta = 1): the same work. */
#include "backprop.h"
#include "kernels.h"

#include <cblas.h>
#include <libxsmm.h>
#include <stdio.h>
#include <stdlib.h>

enum { BATCH = 128, IN = 784, OUT = 10, CALLS = 2000, REPS = 5 };

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float *filled(size_t n, unsigned seed, float lo, float hi)
{
    float *v = malloc(n * sizeof *v);
    srand(seed);
    for (size_t i = 0; v && i < n; i++)
        v[i] = lo + (hi - lo) * (float)rand() / (float)RAND_MAX;
    return v;
}

int main(void)
{
    const int M = OUT, N = BATCH, K = IN;
    libxsmm_init();
    openblas_set_num_threads(1);
    float *X = filled((size_t)BATCH * IN, 1, 0, 1), *W = filled((size_t)OUT * IN, 2, -1, 1);
    float *dV = filled((size_t)BATCH * OUT, 3, -1, 1), *b = calloc(OUT, sizeof *b);
    float *V = calloc((size_t)BATCH * OUT, sizeof *V), *dW = calloc((size_t)OUT * IN, 4);
    float *Wt = malloc((size_t)OUT * IN * 4), *dVt = malloc((size_t)BATCH * OUT * 4);
    if (!X || !W || !dV || !b || !V || !dW || !Wt || !dVt) {
        fprintf(stderr, "bp_smallgemm: out of memory\n");
        return 1;
    }
    /* column-major: fwd Vᵀ[OUT, BATCH] = Wt[OUT, IN]·Xᵀ[IN, BATCH]; dW as [IN, OUT] col-major
     * = Xᵀ[IN, BATCH]·dVt[BATCH, OUT] */
    libxsmm_smmfunction jf = libxsmm_smmdispatch(M, N, K, NULL, NULL, NULL, NULL, NULL, NULL,
                                                 NULL);
    libxsmm_smmfunction jd = libxsmm_smmdispatch(K, M, N, NULL, NULL, NULL, NULL, NULL, NULL,
                                                 NULL);
    if (!jf || !jd) {
        fprintf(stderr, "bp_smallgemm: libxsmm made no kernel for these shapes\n");
        return 1;
    }
    const kernel_set *k = kernels();
    const char *names[6] = {"forward V = X·Wᵀ + b   backprop kernel",
                            "forward                OpenBLAS sgemm",
                            "forward                libxsmm JIT (+ transpose of W)",
                            "weight grad dW = dVᵀ·X backprop kernel",
                            "weight grad            OpenBLAS sgemm",
                            "weight grad            libxsmm JIT (+ transpose of dV)"};
    double t[6][REPS];
    for (int rep = 0; rep < REPS; rep++) {
        for (int way = 0; way < 6; way++) {
            double t0 = bp_now();
            for (int c = 0; c < CALLS; c++)
                switch (way) {
                case 0: k->fwd[OUT](V, X, W, b, BATCH, IN); break;
                case 1:
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, BATCH, OUT, IN, 1.0f,
                                X, IN, W, IN, 0.0f, V, OUT);
                    break;
                case 2:
                    for (int o = 0; o < OUT; o++)
                        for (int i = 0; i < IN; i++)
                            Wt[i * OUT + o] = W[o * IN + i];
                    jf(Wt, X, V);
                    break;
                case 3: k->dw[OUT](dW, dV, X, BATCH, IN, 0, IN); break;
                case 4:
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, BATCH, 1.0f,
                                dV, OUT, X, IN, 0.0f, dW, IN);
                    break;
                case 5:
                    for (int r = 0; r < BATCH; r++)
                        for (int o = 0; o < OUT; o++)
                            dVt[o * BATCH + r] = dV[r * OUT + o];
                    jd(X, dVt, dW);
                    break;
                }
            t[way][rep] = bp_now() - t0;
        }
    }
    printf("784→10 products at batch %d, one thread; GFLOP/s, median of %d × %d calls\n",
           BATCH, REPS, CALLS);
    for (int way = 0; way < 6; way++) {
        qsort(t[way], REPS, sizeof t[way][0], cmp);
        printf("  %-56s %6.1f\n", names[way], 2.0 * BATCH * IN * OUT * CALLS / t[way][REPS / 2] / 1e9);
    }
    printf("kernel set %s; OpenBLAS %s; libxsmm %s\n", k->name, openblas_get_corename(),
           LIBXSMM_VERSION);
    free(X), free(W), free(dV), free(b), free(V), free(dW), free(Wt), free(dVt);
    return 0;
}
