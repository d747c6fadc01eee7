/* The seminar's formulas as plain per-sample loops, literally, for one sample u at a time:
 *   v = W·u + b,  y = softmax(v),  L = −Σ_i t_i·log y_i,  dL/dy_i = −t_i / y_i,
 *   J_ij = y_i(1[i=j] − y_j),  dL/dv = Jᵀ·dL/dy,
 *   dL/dW += dL/dv·uᵀ,  dL/db += dL/dv,  dL/du = Wᵀ·dL/dv,
 * and, for hidden layers, dL/dz = dL/da ⊙ act'(z). The batch gradient is the mean of the
 * per-sample ones. This is the reference the tests check the GEMM paths against and the
 * baseline the benchmark beats: straightforward loops with the project's normal flags.
 *
 * The softmax, the loss and their backward are written out here a second time on purpose,
 * and none of softmax_xent.c is called: the jacobian path computes the same dL/dy and Jᵀ·dL/dy,
 * and if naive shared those functions, naive agreeing with jacobian would check nothing about
 * them. Only the activation's value and derivative (act_apply, act_derivative) are shared. */
#include "internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* y = softmax(v) for one sample. The largest logit m is subtracted first: softmax does not
 * change when every logit moves by the same amount, every exponent is then ≤ 0 so nothing
 * overflows, and the term e^0 = 1 keeps the sum S ≥ 1. Returns log Σ_j e^(v_j) = m + log S
 * (log-sum-exp), from which log y_i = v_i − (m + log S) is formed without taking the log of a
 * probability that may have underflowed to 0. *arg gets the first largest logit, the
 * prediction. */
static double naive_softmax(float *y, const float *v, int C, int *arg)
{
    int a = 0;
    for (int i = 1; i < C; i++)
        if (v[i] > v[a])
            a = i;
    float m = v[a];
    double S = 0.0;
    for (int i = 0; i < C; i++) {
        y[i] = expf(v[i] - m);
        S += y[i];
    }
    for (int i = 0; i < C; i++)
        y[i] = (float)(y[i] / S);
    *arg = a;
    return (double)m + log(S);
}

/* L = −Σ_i t_i·log y_i with the one-hot target t (t_c = 1), summed over all i as the formula
 * reads rather than shortcut to −log y_c; log y_i comes from the logits (see naive_softmax), so
 * every term is finite and the t_i = 0 terms are exactly 0. */
static double naive_xent(const float *v, double logsumexp, int c, int C)
{
    double loss = 0.0;
    for (int i = 0; i < C; i++) {
        double t = i == c ? 1.0 : 0.0;
        loss -= t * ((double)v[i] - logsumexp);
    }
    return loss;
}

/* dL/dy_i = −t_i / y_i. Where t_i = 0 the entry is 0 without dividing (0/y_i is NaN for a y_i
 * that underflowed to 0). Where t_i = 1, a y_i below the smallest normal float is raised to
 * FLT_MIN so the quotient stays finite; below that threshold the sample's gradient shrinks
 * towards 0 instead of becoming NaN (docs/derivation.md §8 measures this). */
static void naive_dl_dy(float *dy, const float *y, int c, int C)
{
    for (int i = 0; i < C; i++) {
        float t = i == c ? 1.0f : 0.0f;
        dy[i] = t == 0.0f ? 0.0f : -t / (y[i] > FLT_MIN ? y[i] : FLT_MIN);
    }
}

/* J_ij = ∂y_i/∂v_j = y_i(1[i=j] − y_j), the whole C×C matrix, as the slides build it. */
static void naive_jacobian(float *J, const float *y, int C)
{
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++)
            J[(size_t)i * C + j] = y[i] * ((i == j ? 1.0f : 0.0f) - y[j]);
}

/* dL/dv = Jᵀ·dL/dy: dL/dv_j = Σ_i J_ij·dL/dy_i, the chain rule summed over every y_i. */
static void naive_jt_times(float *dv, const float *J, const float *dy, int C)
{
    for (int j = 0; j < C; j++) {
        float s = 0.0f;
        for (int i = 0; i < C; i++)
            s += J[(size_t)i * C + j] * dy[i];
        dv[j] = s;
    }
}

static void naive_list_step(bp_model *m, bp_work *w, const float *X, const uint8_t *labels,
                            int B, double *loss_sum, int *correct, float *dX);

void naive_step(bp_model *m, bp_work *w, const float *X, const uint8_t *labels, int B,
                double *loss_sum, int *correct, float *dX)
{
    if (!m->mlp) {
        naive_list_step(m, w, X, labels, B, loss_sum, correct, dX);
        return;
    }
    int L = m->nlayers, C = m->sizes[L], I0 = m->sizes[0];
    float *act[BP_MAX_LAYERS + 1]; /* act[l]: one sample's input to layer l; act[L]: logits */
    float *p = w->na + I0;
    for (int l = 1; l <= L; l++) {
        act[l] = p;
        p += m->sizes[l];
    }
    int wide = w->max_width > I0 ? w->max_width : I0;
    float *g = w->nd, *gnext = w->nd + wide; /* dL/dv of the current layer, dL/du below it */
    float *dy = w->D[0];                     /* one sample's dL/dy [C] */

    memset(m->grads, 0, m->nparams * sizeof(float));
    double loss = 0.0;
    int hits = 0;
    for (int s = 0; s < B; s++) {
        act[0] = (float *)X + (size_t)s * I0;
        /* forward: v = W·u + b, then the activation (none after the last layer) */
        for (int l = 0; l < L; l++) {
            int I = m->sizes[l], O = m->sizes[l + 1];
            const float *W = m->W[l], *u = act[l];
            for (int o = 0; o < O; o++) {
                float v = m->b[l][o];
                for (int i = 0; i < I; i++)
                    v += W[(size_t)o * I + i] * u[i];
                act[l + 1][o] = l < L - 1 ? act_apply(v, m->act) : v;
            }
        }
        /* y = softmax(v), L = −Σ t_i·log y_i */
        const float *v = act[L];
        float *y = w->Y + (size_t)s * C;
        int c = labels[s], arg;
        double lse = naive_softmax(y, v, C, &arg);
        loss += naive_xent(v, lse, c, C);
        hits += arg == c;

        /* dL/dy = −t/y, then dL/dv = Jᵀ·dL/dy with J built explicitly */
        naive_dl_dy(dy, y, c, C);
        naive_jacobian(w->J, y, C);
        naive_jt_times(g, w->J, dy, C);

        for (int l = L - 1; l >= 0; l--) {
            int I = m->sizes[l], O = m->sizes[l + 1];
            const float *W = m->W[l], *u = act[l];
            float *dW = m->dW[l], *db = m->db[l];
            /* dL/dW += dL/dv·uᵀ (outer product), dL/db += dL/dv */
            for (int o = 0; o < O; o++) {
                for (int i = 0; i < I; i++)
                    dW[(size_t)o * I + i] += g[o] * u[i];
                db[o] += g[o];
            }
            if (l == 0 && !dX)
                break;
            /* dL/du = Wᵀ·dL/dv */
            float *du = l == 0 ? dX + (size_t)s * I0 : gnext;
            for (int i = 0; i < I; i++)
                du[i] = 0.0f;
            for (int o = 0; o < O; o++)
                for (int i = 0; i < I; i++)
                    du[i] += W[(size_t)o * I + i] * g[o];
            if (l > 0) {
                /* through the activation below: dL/dz = dL/da ⊙ act'(z), act' read from a */
                for (int i = 0; i < I; i++)
                    du[i] *= act_derivative(u[i], m->act);
                float *tmp = g;
                g = gnext;
                gnext = tmp;
            }
        }
    }
    /* mean over the batch */
    float inv = 1.0f / (float)B;
    for (size_t i = 0; i < m->nparams; i++)
        m->grads[i] *= inv;
    if (dX)
        for (size_t i = 0; i < (size_t)B * I0; i++)
            dX[i] *= inv;
    if (loss_sum)
        *loss_sum = loss;
    if (correct)
        *correct = hits;
}

/* ---- any layer list, one sample at a time ----
 * The same softmax, loss and Jacobian as above; each layer as the per-sample formula reads
 * (docs/derivation.md §10–§13), with none of the batched path's functions:
 *   conv2d   y[o,p,q] = b_o + Σ_{c,i,j} W[o,c,i,j]·x[c, p·s+i−ph, q·s+j−pw]  (0 outside x)
 *            dW[o,c,i,j] += dy[o,p,q]·x[…],  db_o += dy[o,p,q],  dx[…] += W[o,c,i,j]·dy[o,p,q]
 *   maxpool  y = the window's first largest x;  dx at that pixel += dy
 *   avgpool  y = the window's mean;             dx on every pixel += dy/k²
 *   dropout  y = x·mask;                        dx = dy·mask  (the masks bp_grad would draw)
 *   flatten  the same numbers under another shape */

static void naive_conv(const bp_layer *ly, const float *W, const float *b, const float *x,
                       float *y)
{
    int s = ly->stride, ph = ly->pad == BP_PAD_SAME ? (ly->kh - 1) / 2 : 0;
    int pw = ly->pad == BP_PAD_SAME ? (ly->kw - 1) / 2 : 0;
    for (int o = 0; o < ly->out_c; o++)
        for (int p = 0; p < ly->out_h; p++)
            for (int q = 0; q < ly->out_w; q++) {
                float v = b[o];
                for (int c = 0; c < ly->in_c; c++)
                    for (int i = 0; i < ly->kh; i++)
                        for (int j = 0; j < ly->kw; j++) {
                            int r = p * s + i - ph, t = q * s + j - pw;
                            if (r < 0 || r >= ly->in_h || t < 0 || t >= ly->in_w)
                                continue;
                            v += W[((o * ly->in_c + c) * ly->kh + i) * ly->kw + j] *
                                 x[(c * ly->in_h + r) * ly->in_w + t];
                        }
                y[(o * ly->out_h + p) * ly->out_w + q] = v;
            }
}

static void naive_conv_back(const bp_layer *ly, const float *W, float *dW, float *db,
                            const float *x, const float *dy, float *dx)
{
    int s = ly->stride, ph = ly->pad == BP_PAD_SAME ? (ly->kh - 1) / 2 : 0;
    int pw = ly->pad == BP_PAD_SAME ? (ly->kw - 1) / 2 : 0;
    if (dx)
        for (int k = 0; k < ly->in_c * ly->in_h * ly->in_w; k++)
            dx[k] = 0.0f;
    for (int o = 0; o < ly->out_c; o++)
        for (int p = 0; p < ly->out_h; p++)
            for (int q = 0; q < ly->out_w; q++) {
                float g = dy[(o * ly->out_h + p) * ly->out_w + q];
                db[o] += g;
                for (int c = 0; c < ly->in_c; c++)
                    for (int i = 0; i < ly->kh; i++)
                        for (int j = 0; j < ly->kw; j++) {
                            int r = p * s + i - ph, t = q * s + j - pw;
                            if (r < 0 || r >= ly->in_h || t < 0 || t >= ly->in_w)
                                continue;
                            int wi = ((o * ly->in_c + c) * ly->kh + i) * ly->kw + j;
                            int xi = (c * ly->in_h + r) * ly->in_w + t;
                            dW[wi] += g * x[xi];
                            if (dx)
                                dx[xi] += W[wi] * g;
                        }
            }
}

static void naive_pool(const bp_layer *ly, const float *x, float *y, int32_t *arg)
{
    int k = ly->kh;
    for (int c = 0; c < ly->out_c; c++)
        for (int p = 0; p < ly->out_h; p++)
            for (int q = 0; q < ly->out_w; q++) {
                int best = -1;
                float sum = 0.0f;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) {
                        int xi = (c * ly->in_h + p * k + i) * ly->in_w + q * k + j;
                        sum += x[xi];
                        if (best < 0 || x[xi] > x[best])
                            best = xi;
                    }
                int yi = (c * ly->out_h + p) * ly->out_w + q;
                if (ly->kind == BP_LAYER_MAXPOOL) {
                    y[yi] = x[best];
                    arg[yi] = best;
                } else {
                    y[yi] = sum / (float)(k * k);
                }
            }
}

static void naive_pool_back(const bp_layer *ly, const float *dy, const int32_t *arg, float *dx)
{
    int k = ly->kh;
    for (int i = 0; i < ly->in_c * ly->in_h * ly->in_w; i++)
        dx[i] = 0.0f;
    for (int c = 0; c < ly->out_c; c++)
        for (int p = 0; p < ly->out_h; p++)
            for (int q = 0; q < ly->out_w; q++) {
                int yi = (c * ly->out_h + p) * ly->out_w + q;
                if (ly->kind == BP_LAYER_MAXPOOL) {
                    dx[arg[yi]] += dy[yi];
                    continue;
                }
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++)
                        dx[(c * ly->in_h + p * k + i) * ly->in_w + q * k + j] +=
                            dy[yi] / (float)(k * k);
            }
}

static void naive_list_step(bp_model *m, bp_work *w, const float *X, const uint8_t *labels,
                            int B, double *loss_sum, int *correct, float *dX)
{
    int n = m->nlist, C = m->sizes[m->nlayers], I0 = m->sizes[0];
    float *out[BP_MAX_LIST];   /* one sample's output of each layer */
    int32_t *arg[BP_MAX_LIST]; /* one sample's max-pool arg-max */
    float *p = w->na;
    int32_t *q = w->narg;
    for (int i = 0; i < n; i++) {
        out[i] = p;
        p += layer_out_size(&m->list[i]);
        arg[i] = q;
        if (m->list[i].kind == BP_LAYER_MAXPOOL)
            q += layer_out_size(&m->list[i]);
    }
    int wide = w->max_width > I0 ? w->max_width : I0;
    float *g = w->nd, *gnext = w->nd + wide;
    float *dy = w->D[0];

    /* The masks of this call, drawn as the batched path draws them: layer by layer over the
     * whole batch, from the same stream. */
    if (w->has_dropout) {
        bp_rng rng;
        dropout_stream(&rng, w->drop_seed, w->drop_step);
        for (int i = 0; i < n; i++)
            if (m->list[i].kind == BP_LAYER_DROPOUT)
                dropout_mask(w->mask[i], (size_t)B * layer_out_size(&m->list[i]),
                             m->list[i].p, &rng);
    }
    w->drop_step++;

    memset(m->grads, 0, m->nparams * sizeof(float));
    double loss = 0.0;
    int hits = 0;
    for (int s = 0; s < B; s++) {
        const float *x0 = X + (size_t)s * I0;
        for (int i = 0; i < n; i++) {
            const bp_layer *ly = &m->list[i];
            const float *x = i == 0 ? x0 : out[i - 1];
            int no = (int)layer_out_size(ly), ni = (int)layer_in_size(ly), l = ly->param;
            switch (ly->kind) {
            case BP_LAYER_LINEAR:
                for (int o = 0; o < no; o++) {
                    float v = m->b[l][o];
                    for (int k = 0; k < ni; k++)
                        v += m->W[l][(size_t)o * ni + k] * x[k];
                    out[i][o] = v;
                }
                break;
            case BP_LAYER_ACT:
                for (int k = 0; k < no; k++)
                    out[i][k] = act_apply(x[k], ly->act);
                break;
            case BP_LAYER_CONV2D: naive_conv(ly, m->W[l], m->b[l], x, out[i]); break;
            case BP_LAYER_MAXPOOL:
            case BP_LAYER_AVGPOOL: naive_pool(ly, x, out[i], arg[i]); break;
            case BP_LAYER_FLATTEN:
                for (int k = 0; k < no; k++)
                    out[i][k] = x[k];
                break;
            case BP_LAYER_DROPOUT:
                for (int k = 0; k < no; k++)
                    out[i][k] = x[k] * w->mask[i][(size_t)s * no + k];
                break;
            }
        }
        const float *v = out[n - 1];
        float *y = w->Y + (size_t)s * C;
        int c = labels[s], am;
        double lse = naive_softmax(y, v, C, &am);
        loss += naive_xent(v, lse, c, C);
        hits += am == c;
        naive_dl_dy(dy, y, c, C);
        naive_jacobian(w->J, y, C);
        naive_jt_times(g, w->J, dy, C);

        for (int i = n - 1; i >= 0; i--) {
            const bp_layer *ly = &m->list[i];
            const float *x = i == 0 ? x0 : out[i - 1];
            int no = (int)layer_out_size(ly), ni = (int)layer_in_size(ly), l = ly->param;
            float *dx = i == 0 ? (dX ? dX + (size_t)s * I0 : NULL) : gnext;
            switch (ly->kind) {
            case BP_LAYER_LINEAR:
                for (int o = 0; o < no; o++) {
                    for (int k = 0; k < ni; k++)
                        m->dW[l][(size_t)o * ni + k] += g[o] * x[k];
                    m->db[l][o] += g[o];
                }
                if (dx)
                    for (int k = 0; k < ni; k++) {
                        float d = 0.0f;
                        for (int o = 0; o < no; o++)
                            d += m->W[l][(size_t)o * ni + k] * g[o];
                        dx[k] = d;
                    }
                break;
            case BP_LAYER_ACT:
                if (dx)
                    for (int k = 0; k < ni; k++)
                        dx[k] = g[k] * act_derivative(out[i][k], ly->act);
                break;
            case BP_LAYER_CONV2D:
                naive_conv_back(ly, m->W[l], m->dW[l], m->db[l], x, g, dx);
                break;
            case BP_LAYER_MAXPOOL:
            case BP_LAYER_AVGPOOL:
                if (dx)
                    naive_pool_back(ly, g, arg[i], dx);
                break;
            case BP_LAYER_FLATTEN:
                if (dx)
                    for (int k = 0; k < ni; k++)
                        dx[k] = g[k];
                break;
            case BP_LAYER_DROPOUT:
                if (dx)
                    for (int k = 0; k < ni; k++)
                        dx[k] = g[k] * w->mask[i][(size_t)s * no + k];
                break;
            }
            if (i == 0)
                break;
            float *tmp = g;
            g = gnext;
            gnext = tmp;
        }
    }
    float inv = 1.0f / (float)B;
    for (size_t i = 0; i < m->nparams; i++)
        m->grads[i] *= inv;
    if (dX)
        for (size_t i = 0; i < (size_t)B * I0; i++)
            dX[i] *= inv;
    if (loss_sum)
        *loss_sum = loss;
    if (correct)
        *correct = hits;
}
