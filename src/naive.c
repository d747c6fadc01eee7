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

void naive_step(bp_model *m, bp_work *w, const float *X, const uint8_t *labels, int B,
                double *loss_sum, int *correct, float *dX)
{
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
