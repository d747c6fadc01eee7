/* The seminar's formulas as plain per-sample loops, literally, for one sample u at a time:
 *   v = W·u + b,  y = softmax(v),  dL/dy_i = −t_i / y_i,
 *   J_ij = y_i(1[i=j] − y_j),  dL/dv = Jᵀ·dL/dy,
 *   dL/dW += dL/dv·uᵀ,  dL/db += dL/dv,  dL/du = Wᵀ·dL/dv,
 * and, for hidden layers, dL/dz = dL/da ⊙ act'(z). The batch gradient is the mean of the
 * per-sample ones. This is the reference the tests check the GEMM paths against and the
 * baseline the benchmark beats: straightforward loops with the project's normal flags. */
#include "internal.h"

#include <string.h>

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
    float *dy = w->D[0];

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
        float *y = w->Y + (size_t)s * C;
        double ls;
        int hit;
        softmax_xent_forward(y, act[L], &labels[s], 1, C, &ls, &hit);
        loss += ls;
        hits += hit;

        /* dL/dy = −t/y, then dL/dv = Jᵀ·dL/dy with J built explicitly: the one-sample (B = 1)
         * forms of the jacobian path's functions in softmax_xent.c */
        xent_backward_dy(dy, y, &labels[s], 1, C);
        softmax_backward_jacobian(g, dy, y, w->J, 1, C);

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
                float *t = g;
                g = gnext;
                gnext = t;
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
