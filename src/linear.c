/* linear: V[B,O] = X[B,I]·Wᵀ + 1·bᵀ   (W stored [O,I], row-major)
 *   seminar, column-major view: V = W·U + b·1ᵀ with U = Xᵀ (the B×I block of pixels as it lies
 *   in memory is exactly U, I×B, column-major)
 *   dX[B,I] = dV·W       (dU = Wᵀ·dV)
 *   dW[O,I] = dVᵀ·X      (dW = dV·Uᵀ: the per-sample outer products dv·uᵀ summed by the GEMM)
 *   db[O]   = dVᵀ·1      (db = dV·1)
 *
 * Who computes what: an output of at most KERNEL_MAX_O units goes to the small kernels
 * (kernels.h), anything wider to OpenBLAS. With more than one thread the work is split on the
 * library's pool (pool.c), each share a single-threaded product with its own outputs:
 *   forward and dX by rows of the batch, dW by its rows (output units) or, for a small output,
 *   by its columns (inputs), db by output units.
 * Each output element is then summed in the same order whatever the split, so the results are
 * the same for every thread count. */
#include "internal.h"
#include "kernels.h"

#include <string.h>

/* Below this many multiply-adds per chunk a product is not split further: waking a worker
 * and claiming a chunk (≈ 1 µs) would cost more than the work (a 784→10 step at batch 8 is
 * 63 k). */
#define CHUNK_MIN_MACS (1 << 16)

/* The chunks for a product of macs multiply-adds on threads threads: small-output kernels in
 * up to four chunks per thread, so a thread that is descheduled for a while leaves its share
 * to the others (pool.c); OpenBLAS products in one per thread, since each chunk packs the
 * shared operand again. 1: run it on the calling thread. */
static int chunks_for(int threads, double macs, int kernel)
{
    if (threads <= 1)
        return 1;
    int most = kernel ? 4 * threads : threads;
    double k = macs / CHUNK_MIN_MACS;
    return k < 1 ? 1 : k < most ? (int)k : most;
}

typedef struct {
    float *V, *dX, *dW, *db;
    const float *X, *W, *b, *dV;
    float *dVs; /* dV, to be scaled in place by a fused SGD step */
    int B, I, O;
    /* backward: which parts a chunk does (BACK_*), and the step to fuse in (NULL: none) with
     * the offsets of W and b in its flat blocks */
    int parts;
    const opt_fuse *fuse;
    size_t wo, bo;
} lin_job;

#define BACK_DW 1 /* dW, db and, with a fused step, the update of W and b */
#define BACK_DX 2
/* Rows [r0, r1) of V = X·Wᵀ + 1·bᵀ. */
static void forward_rows(const lin_job *j, int r0, int r1)
{
    int rows = r1 - r0, I = j->I, O = j->O;
    if (rows <= 0)
        return;
    float *V = j->V + (size_t)r0 * O;
    const float *X = j->X + (size_t)r0 * I;
    if (O <= KERNEL_MAX_O) {
        kernels()->fwd[O](V, X, j->W, j->b, rows, I);
        return;
    }
    /* The bias enters in the product's single write pass (gemm_nt1): no second pass over V. */
    gemm_nt1(V, O, X, I, j->W, I, rows, O, I, j->b, 0);
}

static void forward_task(void *ctx, int t, int n)
{
    const lin_job *j = ctx;
    int r0, r1;
    pool_range(j->B, 1, t, n, &r0, &r1);
    forward_rows(j, r0, r1);
}

void linear_forward(int threads, float *V, const float *X, const float *W, const float *b, int B,
                    int I, int O)
{
    lin_job j = {.V = V, .X = X, .W = W, .b = b, .B = B, .I = I, .O = O};
    int n = chunks_for(threads, (double)B * I * O, O <= KERNEL_MAX_O);
    if (n == 1 && O > KERNEL_MAX_O && !kernels()->gemm_nt) {
        /* One share but a wide output: OpenBLAS may use the threads the caller allowed (the
         * pool is idle). With the set's own GEMM the share runs that on the caller instead, as
         * every share does: a thread count never changes which code computes a row. */
        for (int r = 0; r < B; r++)
            memcpy(V + (size_t)r * O, b, (size_t)O * sizeof *V);
        gemm(threads, 0, 1, B, O, I, 1.0f, X, I, W, I, 1.0f, V, O);
        return;
    }
    pool_run(threads, n, forward_task, &j);
}

/* db[o0..o1) = column sums of dV, accumulated in the row order of dV. */
static void bias_grad(const lin_job *j, int o0, int o1)
{
    int O = j->O;
    for (int o = o0; o < o1; o++)
        j->db[o] = j->dV[o];
    for (int r = 1; r < j->B; r++) {
        const float *row = j->dV + (size_t)r * O;
        for (int o = o0; o < o1; o++)
            j->db[o] += row[o];
    }
}

static void units_part(const lin_job *j, int lo, int hi);

/* Input columns [lo, hi) of dW = dVᵀ·X for every output unit, then, fused, their update; with
 * bias, also db (all of it) and its update. */
static void cols_part(const lin_job *j, int lo, int hi, int bias)
{
    const opt_fuse *f = j->fuse;
    int B = j->B, I = j->I, O = j->O;
    if (hi > lo) {
        if (O <= KERNEL_MAX_O)
            kernels()->dw[O](j->dW, j->dV, j->X, B, I, lo, hi);
        else
            gemm(1, 1, 0, O, hi - lo, B, 1.0f, j->dV, O, j->X + lo, I, 0.0f, j->dW + lo, I);
        for (int o = 0; f && o < O; o++)
            opt_apply(f, j->wo + (size_t)o * I + lo, j->wo + (size_t)o * I + hi);
    }
    if (bias) {
        bias_grad(j, 0, O);
        if (f)
            opt_apply(f, j->bo, j->bo + O);
    }
}

/* Chunk t of n's part of dW and db, then, fused, of the update of W and b. */
static void weight_part(const lin_job *j, int t, int n)
{
    int lo, hi;
    if (j->O <= KERNEL_MAX_O) {
        /* dW by columns, in whole pairs of vectors where the split allows */
        pool_range(j->I, 2 * kernels()->vector_floats, t, n, &lo, &hi);
        cols_part(j, lo, hi, t == 0);
    } else {
        pool_range(j->O, 1, t, n, &lo, &hi);
        units_part(j, lo, hi);
    }
}

/* Output units [lo, hi) of dW = dVᵀ·X and db (rows o of dW from columns o of dV; overwrites),
 * then, fused, their update; under plain SGD the product goes straight into W's rows. */
static void units_part(const lin_job *j, int lo, int hi)
{
    const opt_fuse *f = j->fuse;
    int B = j->B, I = j->I, O = j->O;
    if (hi <= lo)
        return;
    bias_grad(j, lo, hi);
    if (f)
        opt_apply(f, j->bo + lo, j->bo + hi);
    if (f && opt_fuse_sgd(f)) {
        /* W ← W + (−η·dV)ᵀ·X: −η enters through these columns of dV (read by no one after),
         * so the product runs with alpha = beta = 1, which OpenBLAS rounds the same way for
         * any number of rows (its small-matrix kernels round alpha·AB + C differently from
         * its blocked ones) */
        for (int r = 0; r < B; r++)
            for (int o = lo; o < hi; o++)
                j->dVs[(size_t)r * O + o] *= -f->lr;
        gemm_tn1(f->p + j->wo + (size_t)lo * I, I, j->dV + lo, O, j->X, I, B, hi - lo, I, 1);
    } else {
        gemm_tn1(j->dW + (size_t)lo * I, I, j->dV + lo, O, j->X, I, B, hi - lo, I, 0);
        if (f)
            opt_apply(f, j->wo + (size_t)lo * I, j->wo + (size_t)hi * I);
    }
}

/* Chunk t of n: its part of dW and db (then, fused, of the update) and of dX. */
static void backward_task(void *ctx, int t, int n)
{
    const lin_job *j = ctx;
    int B = j->B, I = j->I, O = j->O, lo, hi;
    const kernel_set *k = kernels();
    if (j->parts & BACK_DW)
        weight_part(j, t, n);
    /* dX = dV·W   (dU = Wᵀ·dV) — only when the caller needs the input gradient */
    if (!j->dX || !(j->parts & BACK_DX))
        return;
    pool_range(B, 1, t, n, &lo, &hi);
    if (hi <= lo)
        return;
    if (O <= KERNEL_MAX_O)
        k->dx[O](j->dX + (size_t)lo * I, j->dV + (size_t)lo * O, j->W, hi - lo, I, I, NULL);
    else
        gemm(1, 0, 0, hi - lo, I, O, 1.0f, j->dV + (size_t)lo * O, O, j->W, I, 0.0f,
             j->dX + (size_t)lo * I, I);
}

void linear_input_grad(int threads, float *dX, const float *dV, const float *W, int B, int I,
                       int O)
{
    lin_job j = {.dX = dX, .dV = dV, .W = W, .B = B, .I = I, .O = O, .parts = BACK_DX};
    pool_run(threads, chunks_for(threads, (double)B * I * O, O <= KERNEL_MAX_O), backward_task,
             &j);
}

/* The backward job of one layer; with fuse, where its W and b lie in the flat blocks. */
static lin_job back_job(float *dX, float *dW, float *db, float *dV, const float *X,
                        const float *W, int B, int I, int O, const opt_fuse *fuse)
{
    lin_job j = {.dX = dX, .dW = dW, .db = db, .dV = dV, .dVs = dV, .X = X, .W = W,
                 .B = B, .I = I, .O = O, .parts = BACK_DW | BACK_DX, .fuse = fuse};
    if (fuse)
        j.wo = (size_t)(W - fuse->p), j.bo = (size_t)(db - fuse->g);
    return j;
}

void linear_weight_share(float *dW, float *db, float *dV, const float *X, const float *W,
                         int B, int I, int O, const opt_fuse *fuse, int t, int n)
{
    lin_job j = back_job(NULL, dW, db, dV, X, W, B, I, O, fuse);
    weight_part(&j, t, n);
}

void linear_weight_units(float *dW, float *db, float *dV, const float *X, const float *W,
                         int B, int I, int O, const opt_fuse *fuse, int lo, int hi)
{
    lin_job j = back_job(NULL, dW, db, dV, X, W, B, I, O, fuse);
    units_part(&j, lo, hi);
}

void linear_weight_cols(float *dW, float *db, float *dV, const float *X, const float *W, int B,
                        int I, int O, const opt_fuse *fuse, int lo, int hi, int bias)
{
    lin_job j = back_job(NULL, dW, db, dV, X, W, B, I, O, fuse);
    cols_part(&j, lo, hi, bias);
}

void linear_backward(int threads, float *dX, float *dW, float *db, float *dV,
                     const float *X, const float *W, int B, int I, int O, const opt_fuse *fuse)
{
    lin_job j = back_job(dX, dW, db, dV, X, W, B, I, O, fuse);
    int n = chunks_for(threads, (double)B * I * O, O <= KERNEL_MAX_O);
    if (n == 1 && O > KERNEL_MAX_O) {
        /* One share, OpenBLAS free to use the threads the caller allowed for dX, first, from
         * the W before a fused update; the weight gradient as every share computes it (one
         * share means a product too small to split, or one thread) */
        if (dX)
            gemm(threads, 0, 0, B, I, O, 1.0f, dV, O, W, I, 0.0f, dX, I);
        weight_part(&j, 0, 1);
        return;
    }
    if (fuse && dX) {
        /* Every share of dX reads all of W: it is done before any share updates W. */
        j.parts = BACK_DX;
        pool_run(threads, n, backward_task, &j);
        j.parts = BACK_DW;
    }
    pool_run(threads, n, backward_task, &j);
}
