/* Elementwise activations. Each output depends only on its own input, so the Jacobian
 * ∂a/∂z is diagonal and the backward pass is a product, dZ = dA ⊙ act'(Z) — no GEMM. The
 * derivative is written through the stored output a = act(z), so Z need not be kept:
 *   relu:    a = max(z, 0)        act'(z) = 1[a > 0]
 *   tanh:    a = tanh z           act'(z) = 1 − a²
 *   sigmoid: a = 1 / (1 + e^−z)   act'(z) = a(1 − a)                    (docs/derivation.md §5) */
#include "internal.h"

#include <math.h>

float act_apply(float z, bp_act act)
{
    switch (act) {
    case BP_ACT_RELU: return z > 0.0f ? z : 0.0f;
    case BP_ACT_TANH: return tanhf(z);
    case BP_ACT_SIGMOID:
        /* Written so that exp never overflows: for z < 0 use e^z / (1 + e^z). */
        if (z >= 0.0f)
            return 1.0f / (1.0f + expf(-z));
        else {
            float e = expf(z);
            return e / (1.0f + e);
        }
    }
    return z;
}

float act_derivative(float a, bp_act act)
{
    switch (act) {
    case BP_ACT_RELU: return a > 0.0f ? 1.0f : 0.0f;
    case BP_ACT_TANH: return 1.0f - a * a;
    case BP_ACT_SIGMOID: return a * (1.0f - a);
    }
    return 1.0f;
}

void act_forward(float *A, const float *Z, size_t n, bp_act act)
{
    if (act == BP_ACT_RELU) {
        for (size_t i = 0; i < n; i++)
            A[i] = Z[i] > 0.0f ? Z[i] : 0.0f;
        return;
    }
    for (size_t i = 0; i < n; i++)
        A[i] = act_apply(Z[i], act);
}

void act_backward(float *dZ, const float *dA, const float *A, size_t n, bp_act act)
{
    switch (act) {
    case BP_ACT_RELU:
        for (size_t i = 0; i < n; i++) {
            float d = dA[i]; /* an unconditional load lets the compiler use a vector select */
            dZ[i] = A[i] > 0.0f ? d : 0.0f;
        }
        break;
    case BP_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            dZ[i] = dA[i] * (1.0f - A[i] * A[i]);
        break;
    case BP_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            dZ[i] = dA[i] * (A[i] * (1.0f - A[i]));
        break;
    }
}
