/* Kernels for the products OpenBLAS does poorly: an output layer of at most KERNEL_MAX_O units
 * (forward, weight gradient, input gradient) and the gather of uint8 rows to float. One set per
 * instruction set, chosen once at run time (kernels.c); kernels_body.h has the formulas. */
#ifndef BP_KERNELS_H
#define BP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define KERNEL_MAX_O 16

typedef struct {
    const char *name;  /* "avx512", "avx2", "generic" */
    int vector_floats; /* floats per vector register the set uses */
    /* V[rows, O] = X[rows, I]·W[O, I]ᵀ + 1·bᵀ */
    void (*fwd[KERNEL_MAX_O + 1])(float *V, const float *X, const float *W, const float *b,
                                  int rows, int I);
    /* dW[O, c0..c1) = dV[B, O]ᵀ·X[B, c0..c1)   (overwrites those columns) */
    void (*dw[KERNEL_MAX_O + 1])(float *dW, const float *dV, const float *X, int B, int I, int c0,
                                 int c1);
    /* dX[rows, I] = dV[rows, O]·W[O, I]   (rows of W and dX ld floats apart, ld ≥ I), then
     * where gate is given (rows ld apart), 0 wherever gate ≤ 0: ReLU's backward */
    void (*dx[KERNEL_MAX_O + 1])(float *dX, const float *dV, const float *W, int rows, int I,
                                 int ld, const float *gate);
    /* X[r, :] = pixels[idx ? idx[r] : first + r, :] / 255 for r < rows; D = row length */
    void (*gather)(float *X, const uint8_t *pixels, size_t D, const uint32_t *idx,
                   uint32_t first, int rows);
    /* Adam's update of p[0..n) (optim.c has the formula): the same loop compiled for the set's
     * vectors, which the baseline build could only run four floats wide */
    void (*adam)(float *p, const float *g, float *m, float *s, size_t n, float b1, float b2,
                 float c1, float c2, float lr, float eps, float wd);
    /* Larger products without packing, where a set has them (NULL: use gemm):
     *   gemm_nt  C[R, U] (ldc) = (bias ? 1·biasᵀ : C) + A[R, K]·W[U, K]ᵀ, then max(·, 0) if relu
     *   gemm_tn  D[U, K] (ldd) = (add ? D : 0) + G[B, U]ᵀ·X[B, K]   (G's rows ldg apart) */
    void (*gemm_nt)(float *C, int ldc, const float *A, int lda, const float *W, int ldw, int R,
                    int U, int K, const float *bias, int relu);
    void (*gemm_tn)(float *D, int ldd, const float *G, int ldg, const float *X, int ldx, int B,
                    int U, int K, int add);
} kernel_set;

/* The set in use: the best the CPU supports, unless bp_kernel_select chose another. */
const kernel_set *kernels(void);

extern const kernel_set kernels_generic;
#if defined(BP_HAVE_X86_KERNELS)
extern const kernel_set kernels_avx2;
extern const kernel_set kernels_avx512;
#endif

#endif
