/* linear: V[B,O] = X[B,I]·Wᵀ + 1·bᵀ   (W stored [O,I], row-major)
 *   seminar, column-major view: V = W·U + b·1ᵀ with U = Xᵀ (the B×I block of pixels as it lies
 *   in memory is exactly U, I×B, column-major)
 *   dX[B,I] = dV·W       (dU = Wᵀ·dV)
 *   dW[O,I] = dVᵀ·X      (dW = dV·Uᵀ: the per-sample outer products dv·uᵀ summed by the GEMM)
 *   db[O]   = dVᵀ·1      (db = dV·1) */
#include "internal.h"

#include <string.h>

void linear_forward(int threads, float *V, const float *X, const float *W, const float *b, int B,
                    int I, int O)
{
    /* The bias enters as the GEMM's C operand (beta = 1): every row of V starts as bᵀ and the
     * kernel adds X·Wᵀ in its single write pass, so no second pass over V is needed. */
    for (int r = 0; r < B; r++)
        memcpy(V + (size_t)r * O, b, (size_t)O * sizeof *V);
    /* V = X·Wᵀ + V   (V = W·U + b·1ᵀ) */
    gemm(threads, 0, 1, B, O, I, 1.0f, X, I, W, I, 1.0f, V, O);
}

void linear_backward(int threads, float *dX, float *dW, float *db, const float *dV,
                     const float *X, const float *W, int B, int I, int O)
{
    /* dW = dVᵀ·X   (dW = dV·Uᵀ) — overwrites */
    gemm(threads, 1, 0, O, I, B, 1.0f, dV, O, X, I, 0.0f, dW, I);
    /* db = dVᵀ·1: column sums, accumulated in the row order of dV so the result does not depend
     * on how a BLAS would split a GEMV. */
    memcpy(db, dV, (size_t)O * sizeof *db);
    for (int r = 1; r < B; r++) {
        const float *row = dV + (size_t)r * O;
        for (int o = 0; o < O; o++)
            db[o] += row[o];
    }
    /* dX = dV·W   (dU = Wᵀ·dV) — only when the caller needs the input gradient */
    if (dX)
        gemm(threads, 0, 0, B, I, O, 1.0f, dV, O, W, I, 0.0f, dX, I);
}
