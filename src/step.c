/* One forward and backward pass through the whole layer list, in the three implementations of
 * --impl:
 *   blas:     batched GEMMs, softmax and cross-entropy fused to dV = (Y − T)/B
 *   jacobian: the same GEMMs, but dL/dy = −T/(B·Y) then Jᵀ·dL/dy with the explicit Jacobian
 *   naive:    the seminar's per-sample loops (naive.c)
 * Forward, layer i from H(i−1) (H(−1) = X) to H(i), the last one's output the logits V:
 *   linear  H = H(i−1)·Wᵀ + 1·bᵀ          act      H = f(H(i−1)) (in place after linear/conv)
 *   conv2d  im2col + GEMM (conv.c)          pools    pooling.c
 *   flatten the same buffer                 dropout  H = H(i−1) ⊙ mask (bp_grad only)
 * Backward, from dV down, each layer from dL/dH(i) to dL/dH(i−1) and its dW, db (for an MLP:
 *   dWl = dZlᵀ·H(l),  dbl = dZlᵀ·1,  dH(l) = dZl·Wl,  dZ(l−1) = dH(l) ⊙ act'(Z(l−1)));
 * two buffers (w->D) take turns holding the gradient (docs/derivation.md §7, §13). */
#include "internal.h"

#include <string.h>

/* Layer i's input: the caller's X for the first layer, else the layer before's output. */
static const float *input_of(const bp_work *w, const float *X, int i)
{
    return i == 0 ? X : w->H[i - 1];
}

/* The activation conv2d layer i applies itself (conv.c): the act layer right after it, in
 * place on its output; else CONV_NO_ACT. */
static int fused_act(const bp_model *m, int i)
{
    if (i < 0 || i + 1 >= m->nlist || m->list[i].kind != BP_LAYER_CONV2D ||
        m->list[i + 1].kind != BP_LAYER_ACT || !layer_in_place(m, i + 1))
        return CONV_NO_ACT;
    return (int)m->list[i + 1].act;
}

/* Pooling layers split by samples on the pool: every output depends on its own sample only,
 * so the split changes no number. */
typedef struct {
    const bp_layer *ly;
    float *out;
    const float *in;
    int32_t *arg;
    int B, back;
} pool_job;

static void pooling_task(void *ctx, int t, int n)
{
    const pool_job *j = ctx;
    const bp_layer *ly = j->ly;
    int lo, hi;
    pool_range(j->B, 1, t, n, &lo, &hi);
    if (hi <= lo)
        return;
    size_t in = layer_in_size(ly), out = layer_out_size(ly);
    int C = ly->in_c, H = ly->in_h, W = ly->in_w, k = ly->kh, b = hi - lo;
    /* forward: in → out; backward: out's gradient (in) → in's gradient (out) */
    size_t so = j->back ? in : out, si = j->back ? out : in;
    float *y = j->out + (size_t)lo * so;
    const float *x = j->in + (size_t)lo * si;
    int32_t *a = j->arg ? j->arg + (size_t)lo * out : NULL;
    if (ly->kind == BP_LAYER_MAXPOOL) {
        if (j->back)
            maxpool_backward(y, x, a, b, C, H, W, k);
        else
            maxpool_forward(y, a, x, b, C, H, W, k);
    } else {
        if (j->back)
            avgpool_backward(y, x, b, C, H, W, k);
        else
            avgpool_forward(y, x, b, C, H, W, k);
    }
}

static void pooling(const bp_work *w, const bp_layer *ly, float *out, const float *in,
                    int32_t *arg, int B, int back)
{
    pool_job j = {ly, out, in, arg, B, back};
    /* a share per thread, none smaller than 4 samples */
    int n = B / 4 < w->threads ? B / 4 : w->threads;
    pool_run(w->threads, n < 1 ? 1 : n, pooling_task, &j);
}

void model_forward_mode(const bp_model *m, bp_work *w, const float *X, int B, int train)
{
    bp_rng rng;
    if (train && w->has_dropout)
        dropout_stream(&rng, w->drop_seed, w->drop_step);
    for (int i = 0; i < m->nlist; i++) {
        const bp_layer *ly = &m->list[i];
        const float *in = input_of(w, X, i);
        float *out = w->H[i];
        size_t n = (size_t)B * layer_out_size(ly);
        switch (ly->kind) {
        case BP_LAYER_LINEAR:
            linear_forward(w->threads, out, in, m->W[ly->param], m->b[ly->param], B,
                           (int)layer_in_size(ly), ly->units);
            break;
        case BP_LAYER_ACT: /* in place after a linear or conv layer: act' is read from out */
            if (fused_act(m, i - 1) == CONV_NO_ACT)
                act_forward(out, in, n, ly->act);
            break;
        case BP_LAYER_CONV2D: {
            conv_shape s;
            conv_shape_of(&s, ly);
            conv_forward(w->threads, out, in, m->W[ly->param], m->b[ly->param], B, &s,
                         w->ccol[i], w->cslots, fused_act(m, i));
            break;
        }
        case BP_LAYER_MAXPOOL:
        case BP_LAYER_AVGPOOL:
            pooling(w, ly, out, in, w->arg[i], B, 0);
            break;
        case BP_LAYER_FLATTEN:
            if (out != in)
                memcpy(out, in, n * sizeof *out);
            break;
        case BP_LAYER_DROPOUT:
            if (train) {
                dropout_mask(w->mask[i], n, ly->p, &rng);
                dropout_apply(out, in, w->mask[i], n);
            } else {
                memcpy(out, in, n * sizeof *out);
            }
            break;
        }
    }
}

void model_forward(const bp_model *m, bp_work *w, const float *X, int B)
{
    model_forward_mode(m, w, X, B, 0);
}

/* From g = dL/d(the last layer's output) [B, C] in w->D[0] down to dX (NULL: not wanted),
 * layer by layer; parameter gradients into m->grads. */
static void model_backward(bp_model *m, bp_work *w, const float *X, int B, float *dX)
{
    float *g = w->D[0], *other = w->D[1];
    for (int i = m->nlist - 1; i >= 0; i--) {
        const bp_layer *ly = &m->list[i];
        const float *in = input_of(w, X, i);
        /* The first layer's input gradient is only wanted by gradient checks (dX). */
        float *din = i == 0 ? dX : other;
        size_t n = (size_t)B * layer_out_size(ly);
        int swap = 1;
        switch (ly->kind) {
        case BP_LAYER_LINEAR:
            linear_backward(w->threads, din, m->dW[ly->param], m->db[ly->param], g, in,
                            m->W[ly->param], B, (int)layer_in_size(ly), ly->units);
            break;
        case BP_LAYER_CONV2D: {
            conv_shape s;
            conv_shape_of(&s, ly);
            conv_backward(w->threads, din, m->dW[ly->param], m->db[ly->param], g, in,
                          m->W[ly->param], B, &s, w->ccol[i], w->cslots, w->H[i],
                          fused_act(m, i));
            break;
        }
        case BP_LAYER_MAXPOOL:
        case BP_LAYER_AVGPOOL:
            if (din)
                pooling(w, ly, din, g, w->arg[i], B, 1);
            break;
        case BP_LAYER_ACT: /* dZ = dA ⊙ act'(Z), in place, act' through the output; the
                            * conv layer before does it when it applied the activation */
            if (fused_act(m, i - 1) == CONV_NO_ACT)
                act_backward(g, g, w->H[i], n, ly->act);
            swap = 0;
            break;
        case BP_LAYER_FLATTEN:
            swap = 0;
            break;
        case BP_LAYER_DROPOUT:
            for (size_t k = 0; k < n; k++)
                g[k] *= w->mask[i][k];
            swap = 0;
            break;
        }
        if (i == 0) {
            if (!swap && dX)
                memcpy(dX, g, n * sizeof *dX);
            break;
        }
        if (swap) {
            float *t = g;
            g = other;
            other = t;
        }
    }
}

int batch_check(const bp_model *m, const bp_work *w, const uint8_t *labels, int B,
                bp_error *err)
{
    int C = m->sizes[m->nlayers];
    if (B < 1 || B > w->max_batch)
        return bp_fail(err, BP_ERR_ARG, "batch %d is outside 1 to the work's max_batch %d", B,
                       w->max_batch);
    for (int r = 0; labels && r < B; r++)
        if (labels[r] >= C)
            return bp_fail(err, BP_ERR_ARG, "label %u at sample %d is not below %d",
                           labels[r], r, C);
    return BP_OK;
}

int bp_forward(const bp_model *m, bp_work *w, const float *X, const uint8_t *labels, int B,
               float *probs, double *loss_sum, int *correct, bp_error *err)
{
    int C = m->sizes[m->nlayers];
    int st = batch_check(m, w, labels, B, err);
    if (st)
        return st;
    model_forward(m, w, X, B);
    softmax_xent_forward(w->Y, w->V, labels, B, C, loss_sum, correct);
    if (probs)
        for (size_t i = 0; i < (size_t)B * C; i++)
            probs[i] = w->Y[i];
    return BP_OK;
}

int bp_grad(bp_model *m, bp_work *w, bp_impl impl, const float *X, const uint8_t *labels, int B,
            double *loss_sum, int *correct, float *dX, bp_error *err)
{
    if (!labels)
        return bp_fail(err, BP_ERR_ARG, "bp_grad needs labels");
    int st = batch_check(m, w, labels, B, err);
    if (st)
        return st;
    if (!bp_impl_name(impl))
        return bp_fail(err, BP_ERR_ARG, "unknown implementation %d", (int)impl);
    if (impl == BP_IMPL_NAIVE) {
        naive_step(m, w, X, labels, B, loss_sum, correct, dX);
        return BP_OK;
    }

    int C = m->sizes[m->nlayers];
    model_forward_mode(m, w, X, B, 1);
    w->drop_step++;
    softmax_xent_forward(w->Y, w->V, labels, B, C, loss_sum, correct);

    if (impl == BP_IMPL_BLAS) {
        softmax_xent_backward(w->D[0], w->Y, labels, B, C);
    } else {
        xent_backward_dy(w->D[1], w->Y, labels, B, C);
        softmax_backward_jacobian(w->D[0], w->D[1], w->Y, w->J, B, C);
    }
    model_backward(m, w, X, B, dX);
    return BP_OK;
}
