/* The step of an MLP with one hidden layer (linear I→H, activation, linear H→C) split by
 * hidden units, so that each core keeps its own rows of W1 from one step to the next.
 *
 * Split by rows of the batch (step.c's rows path), every core reads all of W1 (H×I, 800 kB
 * for 784-256) in the forward pass, half of it just rewritten by the other core's update.
 * Measured on a 2-core Zen 4 guest (bp_limit, AVX-512 set's own GEMMs), the step's two large
 * products alone then run at 90 % of the 2-thread sgemm peak, against 100 % when each core
 * keeps its units (96 % with OpenBLAS on each core's units; bench/README.md).
 * Here thread t owns hidden units [u0, u1) in runs 1 and 3:
 *   1 (units) H1[:, u] = act(X·W1[u]ᵀ + b1[u])       the whole batch X, its own rows of W1
 *             (gemm_nt1: bias and ReLU in the product's store)
 *   2 (rows)  V = H1·W2ᵀ + b2, softmax, each sample's loss, dV = (Y − T)/B
 *   3 (units) dZ1[:, u] = (dV·W2[:, u]) ⊙ act'(H1[:, u])
 *             dW2[:, u] = dVᵀ·H1[:, u],  dW1[u] = dZ1[:, u]ᵀ·X,  db1[u]; db2 on thread 0
 *             then, fused, the update of exactly those parameters.
 * The trainer's batch is gathered by every thread for itself (XP): gathered by rows, it would
 * be written by one core, read by the other in runs 1 and 3, and rewritten at the next step
 * while still in that core's cache. Every output element is computed by the same code over the
 * same operands whatever the split, so the numbers are the same for every thread count. */
#include "internal.h"
#include "kernels.h"

int hidden_model(const bp_model *m)
{
    return m->nlist == 3 && m->list[0].kind == BP_LAYER_LINEAR &&
           m->list[1].kind == BP_LAYER_ACT && layer_in_place(m, 1) &&
           m->list[2].kind == BP_LAYER_LINEAR && m->list[0].units > KERNEL_MAX_O;
}

int hidden_threads(const bp_work *w)
{
    return w->threads < HIDDEN_MAX_THREADS ? w->threads : HIDDEN_MAX_THREADS;
}

typedef struct {
    bp_model *m;
    bp_work *w;
    const float *X;
    const uint8_t *labels;
    int B;
    const opt_fuse *fuse;
    const batch_src *src;
} hidden_job;

/* Thread t of n: hidden units [*u0, *u1), in whole cache lines. */
static void units_of(const hidden_job *j, int t, int n, int *u0, int *u1)
{
    pool_range(j->m->sizes[1], 16, t, n, u0, u1);
}

/* The batch thread t reads: its own copy when the batch came from a dataset. */
static const float *batch_of(const hidden_job *j, int t)
{
    return j->w->xprivate ? j->w->XP[t] : j->X;
}

static void hidden_task(void *ctx, int t, int n)
{
    const hidden_job *j = ctx;
    const bp_model *m = j->m;
    bp_work *w = j->w;
    int I = m->sizes[0], H = m->sizes[1], B = j->B, u0, u1;
    float *H1 = w->H[0];
    if (j->src)
        bp_dataset_gather(j->src->ds, j->src->idx, j->src->first, B, w->XP[t],
                          t == 0 ? j->src->labels : NULL);
    units_of(j, t, n, &u0, &u1);
    if (u1 <= u0)
        return;
    /* H1 = act(X·W1ᵀ + b1) for these units; ReLU as the product's results are stored */
    int relu = m->list[1].act == BP_ACT_RELU;
    gemm_nt1(H1 + u0, H, batch_of(j, t), I, m->W[0] + (size_t)u0 * I, I, B, u1 - u0, I,
             m->b[0] + u0, relu);
    for (int r = 0; !relu && r < B; r++)
        act_forward(H1 + (size_t)r * H + u0, H1 + (size_t)r * H + u0, (size_t)(u1 - u0),
                    m->list[1].act);
}

static void output_task(void *ctx, int t, int n)
{
    const hidden_job *j = ctx;
    const bp_model *m = j->m;
    bp_work *w = j->w;
    int H = m->sizes[1], C = m->sizes[2], lo, hi;
    pool_range(j->B, 1, t, n, &lo, &hi);
    if (hi <= lo)
        return;
    linear_forward(1, w->V + (size_t)lo * C, w->H[0] + (size_t)lo * H, m->W[1], m->b[1],
                   hi - lo, H, C);
    loss_rows(w, j->labels, lo, hi, j->B, C);
}

void hidden_forward(bp_model *m, bp_work *w, const float *X, const uint8_t *labels, int B,
                    const batch_src *src, double *loss_sum, int *correct)
{
    int n = hidden_threads(w);
    /* One copy shared by the threads when the work has fewer copies than threads: made for
     * fewer threads, or for batches too big to copy (HIDDEN_PRIVATE_FLOATS). */
    if (src && n > w->nxp) {
        dataset_gather_threads(w->threads, src->ds, src->idx, src->first, B, src->X,
                               src->labels);
        X = src->X, src = NULL;
    }
    hidden_job j = {m, w, src ? src->X : X, labels, B, NULL, src};
    w->xprivate = src != NULL;
    pool_run(w->threads, n, hidden_task, &j);
    /* the output layer by rows: a share per thread, none under 16 rows */
    int r = B / 16 < n ? B / 16 : n;
    pool_run(w->threads, r < 1 ? 1 : r, output_task, &j);
    loss_sum_rows(w, B, loss_sum, correct);
}

static void backward_task(void *ctx, int t, int n)
{
    const hidden_job *j = ctx;
    bp_model *m = j->m;
    bp_work *w = j->w;
    const opt_fuse *f = j->fuse;
    int I = m->sizes[0], H = m->sizes[1], C = m->sizes[2], B = j->B, u0, u1;
    float *H1 = w->H[0], *dV = w->D[0], *dZ = w->GX[2];
    units_of(j, t, n, &u0, &u1);
    int u = u1 - u0;
    if (u > 0) {
        /* dZ1[:, u] = (dV·W2[:, u]) ⊙ act'(H1[:, u]), from W2 before its update below;
         * ReLU's act' as the small kernel stores */
        int gated = m->list[1].act == BP_ACT_RELU && C <= KERNEL_MAX_O;
        if (C <= KERNEL_MAX_O)
            kernels()->dx[C](dZ + u0, dV, m->W[1] + u0, B, u, H, gated ? H1 + u0 : NULL);
        else
            gemm(1, 0, 0, B, u, C, 1.0f, dV, C, m->W[1] + u0, H, 0.0f, dZ + u0, H);
        for (int r = 0; !gated && r < B; r++)
            act_backward(dZ + (size_t)r * H + u0, dZ + (size_t)r * H + u0,
                         H1 + (size_t)r * H + u0, (size_t)u, m->list[1].act);
    }
    /* dW2[:, u] = dVᵀ·H1[:, u] and db2 (on thread 0), then, fused, their update */
    linear_weight_cols(m->dW[1], m->db[1], dV, H1, m->W[1], B, H, C, f, u0, u1, t == 0);
    /* dW1[u] = dZ1[:, u]ᵀ·X, db1[u] */
    linear_weight_units(m->dW[0], m->db[0], dZ, batch_of(j, t), m->W[0], B, I, H, f, u0, u1);
}

void hidden_backward(bp_model *m, bp_work *w, const float *X, int B, float *dX,
                     const opt_fuse *fuse)
{
    /* dX = dZ1·W1 needs every unit of W1 before its update: then the update comes last */
    hidden_job j = {m, w, X, NULL, B, dX ? NULL : fuse, NULL};
    pool_run(w->threads, hidden_threads(w), backward_task, &j);
    if (!dX)
        return;
    linear_input_grad(w->threads, dX, w->GX[2], m->W[0], B, m->sizes[0], m->sizes[1]);
    if (fuse)
        opt_apply_threads(fuse, 0, m->nparams, w->threads);
}
