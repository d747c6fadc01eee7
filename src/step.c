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
 * layer by layer; parameter gradients into m->grads. fuse: NULL, or the optimizer step that
 * updates each layer's parameters once its gradient is known (linear layers inside their
 * product's shares, conv layers right after theirs). */
static void model_backward(bp_model *m, bp_work *w, const float *X, int B, float *dX,
                           const opt_fuse *fuse)
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
                            m->W[ly->param], B, (int)layer_in_size(ly), ly->units, fuse);
            break;
        case BP_LAYER_CONV2D: {
            conv_shape s;
            conv_shape_of(&s, ly);
            conv_backward(w->threads, din, m->dW[ly->param], m->db[ly->param], g, in,
                          m->W[ly->param], B, &s, w->ccol[i], w->cslots, w->H[i],
                          fused_act(m, i));
            if (fuse) { /* W then b, one range of the flat block */
                size_t wo = (size_t)(m->W[ly->param] - m->params);
                opt_apply_threads(fuse, wo, wo + layer_weights(ly) + (size_t)ly->units,
                                  w->threads);
            }
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

void loss_rows(bp_work *w, const uint8_t *labels, int lo, int hi, int B, int C)
{
    for (int k = lo; k < hi; k++) { /* each sample's loss, summed in order by loss_sum_rows */
        int c;
        softmax_xent_forward(w->Y + (size_t)k * C, w->V + (size_t)k * C, labels + k, 1, C,
                             &w->rloss[k], &c);
        w->rhit[k] = (unsigned char)c;
    }
    softmax_xent_backward_rows(w->D[0] + (size_t)lo * C, w->Y + (size_t)lo * C, labels + lo,
                               hi - lo, C, 1.0f / (float)B);
}

void loss_sum_rows(const bp_work *w, int B, double *loss_sum, int *correct)
{
    double loss = 0.0;
    int hits = 0;
    for (int k = 0; k < B; k++)
        loss += w->rloss[k], hits += w->rhit[k];
    if (loss_sum)
        *loss_sum = loss;
    if (correct)
        *correct = hits;
}

int rows_model(const bp_model *m)
{
    for (int i = 0; i < m->nlist; i++)
        if (m->list[i].kind != BP_LAYER_LINEAR && m->list[i].kind != BP_LAYER_ACT &&
            m->list[i].kind != BP_LAYER_FLATTEN)
            return 0;
    return 1;
}

/* The MLP's step by rows (rows_model). Phase 1, one share of rows per thread: forward through
 * every layer, softmax, the loss of each sample, dV = (Y − T)/B and the input gradients down
 * to the first layer; a sample's rows never leave the core that formed them. Phase 2, after
 * every share is done: each thread takes its share of every layer's weight gradient
 * (dW = dZᵀ·H, by output units) and, fused, the update of those rows of W. The per-row work
 * is the same whatever rows a share has, so the numbers do not depend on the thread count. */
typedef struct {
    bp_model *m;
    bp_work *w;
    const float *X;
    const uint8_t *labels;
    float *dX;
    int B;
    const opt_fuse *fuse;
    const batch_src *src;
} rows_job;

/* The gradient of layer i's output, for a linear layer: D[0] (dV) for the top one, else the
 * input gradient of the linear layer above it. */
static float *out_grad(const bp_model *m, bp_work *w, int i)
{
    for (int k = i + 1; k < m->nlist; k++)
        if (m->list[k].kind == BP_LAYER_LINEAR)
            return w->GX[k];
    return w->D[0];
}

static void rows_task(void *ctx, int t, int n)
{
    rows_job *j = ctx;
    const bp_model *m = j->m;
    bp_work *w = j->w;
    int lo, hi, C = m->sizes[m->nlayers];
    pool_range(j->B, 1, t, n, &lo, &hi);
    int r = hi - lo;
    if (r <= 0)
        return;
    const batch_src *src = j->src;
    if (src)
        bp_dataset_gather(src->ds, src->idx ? src->idx + lo : NULL, src->first + (uint32_t)lo,
                          r, src->X + (size_t)lo * src->ds->dim, src->labels + lo);
    for (int i = 0; i < m->nlist; i++) {
        const bp_layer *ly = &m->list[i];
        size_t iw = layer_in_size(ly), ow = layer_out_size(ly);
        const float *in = input_of(w, j->X, i) + (size_t)lo * iw;
        float *out = w->H[i] + (size_t)lo * ow;
        if (ly->kind == BP_LAYER_LINEAR)
            linear_forward(1, out, in, m->W[ly->param], m->b[ly->param], r, (int)iw, ly->units);
        else if (ly->kind == BP_LAYER_ACT)
            act_forward(out, in, (size_t)r * ow, ly->act);
        else if (out != in)
            memcpy(out, in, (size_t)r * ow * sizeof *out);
    }
    loss_rows(w, j->labels, lo, hi, j->B, C);
    float *g = w->D[0] + (size_t)lo * C;
    for (int i = m->nlist - 1; i >= 0; i--) {
        const bp_layer *ly = &m->list[i];
        size_t iw = layer_in_size(ly), ow = layer_out_size(ly);
        if (ly->kind == BP_LAYER_LINEAR) {
            float *din = i > 0 ? w->GX[i] : j->dX;
            if (!din)
                break;
            din += (size_t)lo * iw;
            linear_input_grad(1, din, g, m->W[ly->param], r, (int)iw, ly->units);
            g = din;
        } else if (ly->kind == BP_LAYER_ACT) {
            act_backward(g, g, w->H[i] + (size_t)lo * ow, (size_t)r * ow, ly->act);
        }
        if (i == 0 && ly->kind != BP_LAYER_LINEAR && j->dX) /* dX was wanted: g is it */
            memcpy(j->dX + (size_t)lo * iw, g, (size_t)r * iw * sizeof *g);
    }
}

static void weights_task(void *ctx, int t, int n)
{
    const rows_job *j = ctx;
    bp_model *m = j->m;
    bp_work *w = j->w;
    for (int i = 0; i < m->nlist; i++) {
        const bp_layer *ly = &m->list[i];
        if (ly->kind != BP_LAYER_LINEAR)
            continue;
        int l = ly->param;
        linear_weight_share(m->dW[l], m->db[l], out_grad(m, w, i), input_of(w, j->X, i),
                            m->W[l], j->B, (int)layer_in_size(ly), ly->units, j->fuse, t, n);
    }
}

/* Shares of the batch's work: one per thread, none under 2^16 multiply-adds (a hand-off costs
 * about a microsecond) and none without rows. */
static int rows_shares(const bp_model *m, const bp_work *w, int B)
{
    double macs = 0.0;
    for (int l = 0; l < m->nlayers; l++)
        macs += (double)m->sizes[l] * m->sizes[l + 1];
    double k = macs * B / (1 << 16);
    int n = k < 1 ? 1 : k < w->threads ? (int)k : w->threads;
    return n < B ? n : B;
}

int grad_forward(bp_model *m, bp_work *w, bp_impl impl, const float *X,
                 const uint8_t *labels, int B, double *loss_sum, int *correct, float *dX,
                 const batch_src *src, bp_error *err)
{
    if (!labels)
        return bp_fail(err, BP_ERR_ARG, "bp_grad needs labels");
    int st = batch_check(m, w, src ? NULL : labels, B, err);
    if (st)
        return st;
    if (!bp_impl_name(impl))
        return bp_fail(err, BP_ERR_ARG, "unknown implementation %d", (int)impl);
    if (impl == BP_IMPL_BLAS && w->hidden) {
        hidden_forward(m, w, X, labels, B, src, loss_sum, correct);
        return BP_OK;
    }
    int rows = impl == BP_IMPL_BLAS && w->rows;
    if (src && !rows) { /* gathered first, split the way the first layer splits its rows */
        dataset_gather_threads(w->threads, src->ds, src->idx, src->first, B, src->X,
                               src->labels);
        src = NULL;
    }
    if (impl == BP_IMPL_NAIVE) {
        naive_step(m, w, X, labels, B, loss_sum, correct, dX);
        return BP_OK;
    }
    if (rows) {
        rows_job j = {.m = m, .w = w, .X = X, .labels = labels, .dX = dX, .B = B, .src = src};
        pool_run(w->threads, rows_shares(m, w, B), rows_task, &j);
        loss_sum_rows(w, B, loss_sum, correct);
        return BP_OK;
    }
    int C = m->sizes[m->nlayers];
    model_forward_mode(m, w, X, B, 1);
    w->drop_step++;
    softmax_xent_forward(w->Y, w->V, labels, B, C, loss_sum, correct);
    return BP_OK;
}

void grad_backward(bp_model *m, bp_work *w, bp_impl impl, const float *X,
                   const uint8_t *labels, int B, float *dX, const opt_fuse *fuse)
{
    int C = m->sizes[m->nlayers];
    if (impl == BP_IMPL_NAIVE) { /* the gradients are there already */
        if (fuse)
            opt_apply_threads(fuse, 0, m->nparams, w->threads);
        return;
    }
    if (impl == BP_IMPL_BLAS && w->hidden) {
        hidden_backward(m, w, X, B, dX, fuse);
        return;
    }
    if (impl == BP_IMPL_BLAS && w->rows) {
        rows_job j = {.m = m, .w = w, .X = X, .B = B, .fuse = fuse};
        pool_run(w->threads, rows_shares(m, w, B), weights_task, &j);
        return;
    }
    if (impl == BP_IMPL_BLAS) {
        softmax_xent_backward(w->D[0], w->Y, labels, B, C);
    } else {
        xent_backward_dy(w->D[1], w->Y, labels, B, C);
        softmax_backward_jacobian(w->D[0], w->D[1], w->Y, w->J, B, C);
    }
    model_backward(m, w, X, B, dX, fuse);
}

int bp_grad(bp_model *m, bp_work *w, bp_impl impl, const float *X, const uint8_t *labels, int B,
            double *loss_sum, int *correct, float *dX, bp_error *err)
{
    int st = grad_forward(m, w, impl, X, labels, B, loss_sum, correct, dX, NULL, err);
    if (!st)
        grad_backward(m, w, impl, X, labels, B, dX, NULL);
    return st;
}
