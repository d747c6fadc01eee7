/* The BLAS boundary: nothing else includes cblas.h, so another backend is one file away. */
#include "internal.h"

#include <cblas.h>

void gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *Bm, int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, Bm, ldb, beta, C,
                ldc);
}

void bp_blas_set_threads(int n) { openblas_set_num_threads(n); }
int bp_blas_threads(void) { return openblas_get_num_threads(); }
const char *bp_blas_config(void) { return openblas_get_config(); }
const char *bp_blas_corename(void) { return openblas_get_corename(); }
