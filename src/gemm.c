/* The BLAS boundary: nothing else includes cblas.h, so another backend is one file away. */
#include "internal.h"
#include "kernels.h"

#include <cblas.h>
#include <string.h>

/* OpenBLAS splits a GEMM over its threads along M and N. For the skinny products of a
 * 10-class output layer (N or M = 10) the split leaves each thread a ragged sliver of the
 * kernel's 16×4 tile and two threads run slower than one (measured on a 2-core Zen 3,
 * OpenBLAS 0.3.21: 784→10 forward at B = 128, 24 ms per epoch on one thread, 30 ms on two),
 * and below about a million multiply-adds the hand-off costs more than it saves. Such GEMMs
 * run on one thread; everything else uses all the threads the caller allowed. */
static int wants_one_thread(int M, int N, int K)
{
    return M < 16 || N < 16 || (double)M * N * K < (double)(1 << 20);
}

void gemm(int threads, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *Bm, int ldb, float beta, float *C, int ldc)
{
    /* For beta = 0 OpenBLAS first clears C in a separate pass that is slower than memset (it
     * was 8% of a 784-256-10 epoch on Zen 3, mostly clearing dW): clear C here instead and let
     * the GEMM accumulate into it with beta = 1. */
    if (beta == 0.0f) {
        if (ldc == N)
            memset(C, 0, (size_t)M * N * sizeof *C);
        else
            for (int r = 0; r < M; r++)
                memset(C + (size_t)r * ldc, 0, (size_t)N * sizeof *C);
        beta = 1.0f;
    }
    /* OpenBLAS's count is process-wide: set it for this call when it differs (reading it is a
     * load, setting it is cheap when nothing changes, but skip even that). */
    int want = threads > 1 && wants_one_thread(M, N, K) ? 1 : threads < 1 ? 1 : threads;
    if (want > 1)
        pool_park();
    if (openblas_get_num_threads() != want)
        openblas_set_num_threads(want);
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, Bm, ldb, beta, C,
                ldc);
}

/* gemm_tn1's own kernel keeps a block of the batch's columns in L1 across the units
 * (kernels_gemm512.h): beyond this batch OpenBLAS's blocking wins. The batch is gemm_tn1's sum
 * dimension, the same for every split of the units, so the choice never depends on the
 * thread count. gemm_nt1 has no such limit: its kernel gives the same bits for any split of
 * the rows, so a forward pass (and an evaluation) gives the same numbers at any batch size. */
enum { OWN_TN_MAX_ROWS = 2048 };

void gemm_nt1(float *C, int ldc, const float *A, int lda, const float *W, int ldw, int R, int U,
              int K, const float *bias, int relu)
{
    const kernel_set *k = kernels();
    if (k->gemm_nt) {
        k->gemm_nt(C, ldc, A, lda, W, ldw, R, U, K, bias, relu);
        return;
    }
    for (int r = 0; bias && r < R; r++) /* the bias as the product's C operand (beta = 1) */
        memcpy(C + (size_t)r * ldc, bias, (size_t)U * sizeof *C);
    gemm(1, 0, 1, R, U, K, 1.0f, A, lda, W, ldw, 1.0f, C, ldc);
    for (int r = 0; relu && r < R; r++)
        act_forward(C + (size_t)r * ldc, C + (size_t)r * ldc, (size_t)U, BP_ACT_RELU);
}

void gemm_tn1(float *D, int ldd, const float *G, int ldg, const float *X, int ldx, int B, int U,
              int K, int add)
{
    const kernel_set *k = kernels();
    if (k->gemm_tn && B <= OWN_TN_MAX_ROWS)
        k->gemm_tn(D, ldd, G, ldg, X, ldx, B, U, K, add);
    else
        gemm(1, 1, 0, U, K, B, 1.0f, G, ldg, X, ldx, add ? 1.0f : 0.0f, D, ldd);
}

void gemm_hold_single(void)
{
    if (openblas_get_num_threads() != 1)
        openblas_set_num_threads(1);
}

const char *bp_blas_config(void) { return openblas_get_config(); }
const char *bp_blas_corename(void) { return openblas_get_corename(); }
