/* Softmax + cross-entropy, per row of logits V[B,C], labels as class indices (T one-hot).
 *   y = softmax(v):  y_i = e^(v_i − m) / Σ_j e^(v_j − m),  m = max_j v_j   (stable: exponents ≤ 0)
 *   L = −Σ_i t_i log y_i = −log y_c,  log y_c = (v_c − m) − log Σ_j e^(v_j − m)
 *       (from the logits: never the log of a probability that underflowed to 0)
 *   batch loss = (1/B) Σ_rows L
 * Backward, two ways that must agree (docs/derivation.md §2–3):
 *   fused:    dV = (Y − T)/B
 *   explicit: dL/dy_i = −t_i/(B·y_i), J_ij = ∂y_i/∂v_j = y_i(1[i=j] − y_j), dL/dv = Jᵀ·dL/dy */
#include "internal.h"

#include <math.h>

void softmax_xent_forward(float *Y, const float *V, const uint8_t *labels, int B, int C,
                          double *loss_sum, int *correct)
{
    double loss = 0.0;
    int hits = 0;
    for (int r = 0; r < B; r++) {
        const float *v = V + (size_t)r * C;
        float *y = Y + (size_t)r * C;
        int arg = 0;
        for (int i = 1; i < C; i++)
            if (v[i] > v[arg])
                arg = i;
        float m = v[arg];
        float sum = 0.0f;
        for (int i = 0; i < C; i++) {
            y[i] = expf(v[i] - m);
            sum += y[i];
        }
        float inv = 1.0f / sum;
        for (int i = 0; i < C; i++)
            y[i] *= inv;
        if (labels) {
            int c = labels[r];
            loss -= (double)(v[c] - m) - log((double)sum);
            hits += arg == c;
        }
    }
    if (loss_sum)
        *loss_sum = loss;
    if (correct)
        *correct = hits;
}

void softmax_xent_backward(float *dV, const float *Y, const uint8_t *labels, int B, int C)
{
    softmax_xent_backward_rows(dV, Y, labels, B, C, 1.0f / (float)B);
}

void softmax_xent_backward_rows(float *dV, const float *Y, const uint8_t *labels, int B, int C,
                                float scale)
{
    /* dV = (Y − T)·scale, scale = 1/(the whole batch) */
    for (int r = 0; r < B; r++) {
        const float *y = Y + (size_t)r * C;
        float *d = dV + (size_t)r * C;
        for (int i = 0; i < C; i++)
            d[i] = y[i] * scale;
        d[labels[r]] -= scale;
    }
}

void xent_backward_dy(float *dY, const float *Y, const uint8_t *labels, int B, int C)
{
    /* dL/dy_i = −t_i / (B·y_i). Where t_i = 0 the term is 0 whatever y_i is (0·(1/y) is taken
     * as 0, not as NaN when y_i underflowed); where t_i = 1 a y_i below the smallest normal
     * float is raised to it so the slides' formula stays finite. That is the un-fused path's
     * real limit: once y_c underflows (a loss above ~87 nats) Jᵀ·dL/dy no longer equals
     * y − t, and that sample's gradient shrinks towards 0. The fused path has no such limit
     * (docs/derivation.md §8). */
    float scale = 1.0f / (float)B;
    for (int r = 0; r < B; r++) {
        const float *y = Y + (size_t)r * C;
        float *d = dY + (size_t)r * C;
        for (int i = 0; i < C; i++)
            d[i] = 0.0f;
        int c = labels[r];
        float yc = y[c] > 1.17549435e-38f ? y[c] : 1.17549435e-38f;
        d[c] = -scale / yc;
    }
}

void softmax_jacobian(float *J, const float *y, int C)
{
    /* J_ij = y_i(1[i=j] − y_j) */
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++)
            J[i * C + j] = y[i] * ((i == j ? 1.0f : 0.0f) - y[j]);
}

void softmax_backward_jacobian(float *dV, const float *dY, const float *Y, float *J, int B, int C)
{
    /* Per sample: dv_j = Σ_i J_ij dy_i   (dL/dv = Jᵀ·dL/dy), J built explicitly as the slides do. */
    for (int r = 0; r < B; r++) {
        const float *y = Y + (size_t)r * C;
        const float *dy = dY + (size_t)r * C;
        float *dv = dV + (size_t)r * C;
        softmax_jacobian(J, y, C);
        for (int j = 0; j < C; j++) {
            float s = 0.0f;
            for (int i = 0; i < C; i++)
                s += J[i * C + j] * dy[i];
            dv[j] = s;
        }
    }
}
