/* One forward and backward pass through the whole stack, in the three implementations of
 * --impl:
 *   blas:     batched GEMMs, softmax and cross-entropy fused to dV = (Y − T)/B
 *   jacobian: the same GEMMs, but dL/dy = −T/(B·Y) then Jᵀ·dL/dy with the explicit Jacobian
 *   naive:    the seminar's per-sample loops (naive.c)
 * Forward for L linear layers (H0 = X, act between layers, none after the last):
 *   Zl = H(l)·Wlᵀ + 1·blᵀ,  H(l+1) = act(Zl),  V = Z(L−1),  Y = softmax(V)
 * Backward, from dV down:
 *   dWl = dZlᵀ·H(l),  dbl = dZlᵀ·1,  dH(l) = dZl·Wl,  dZ(l−1) = dH(l) ⊙ act'(Z(l−1))  (l > 0) */
#include "internal.h"

void model_forward(const bp_model *m, bp_work *w, const float *X, int B)
{
    int L = m->nlayers;
    const float *in = X;
    for (int l = 0; l < L; l++) {
        int I = m->sizes[l], O = m->sizes[l + 1];
        float *out = l == L - 1 ? w->V : w->H[l + 1];
        linear_forward(w->threads, out, in, m->W[l], m->b[l], B, I, O);
        if (l < L - 1)
            act_forward(out, out, (size_t)B * O, m->act); /* in place: act' is read from H */
        in = out;
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

    int L = m->nlayers, C = m->sizes[L];
    model_forward(m, w, X, B);
    softmax_xent_forward(w->Y, w->V, labels, B, C, loss_sum, correct);

    float *dZ = w->D[0], *dH = w->D[1];
    if (impl == BP_IMPL_BLAS) {
        softmax_xent_backward(dZ, w->Y, labels, B, C);
    } else {
        xent_backward_dy(dH, w->Y, labels, B, C);
        softmax_backward_jacobian(dZ, dH, w->Y, w->J, B, C);
    }
    for (int l = L - 1; l >= 0; l--) {
        int I = m->sizes[l], O = m->sizes[l + 1];
        const float *in = l == 0 ? X : w->H[l];
        /* The first layer's input gradient is only wanted by gradient checks (dX). */
        float *din = l == 0 ? dX : dH;
        linear_backward(w->threads, din, m->dW[l], m->db[l], dZ, in, m->W[l], B, I, O);
        if (l > 0) {
            act_backward(dH, dH, w->H[l], (size_t)B * I, m->act);
            float *t = dZ; /* dH now holds dZ(l−1): swap roles */
            dZ = dH;
            dH = t;
        }
    }
    return BP_OK;
}
