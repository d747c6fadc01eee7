/* Softmax + cross-entropy (src/softmax_xent.c) on its own, against double-precision references
 * computed here:
 *   - rows of Y are finite, in [0,1] and sum to 1 for logits of ±1e4, all equal, mixed;
 *   - the loss, taken through log-sum-exp, is finite and right even when the true class's
 *     probability underflows to 0 in float (logits [1e4, −1e4], label 1: loss 2e4);
 *   - the fused dV = (Y − T)/B equals Jᵀ·dL/dy with the explicit Jacobian on random logits,
 *     and both equal (Y − T)/B in double;
 *   - the explicit Jacobian equals central differences of a double softmax. */
#include "check.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>

#define C 10

/* Double references for one row of float logits. */
static void softmax_d(double *y, const float *v, int n)
{
    double mx = v[0], s = 0.0;
    for (int i = 1; i < n; i++)
        mx = v[i] > mx ? v[i] : mx;
    for (int i = 0; i < n; i++)
        s += (y[i] = exp((double)v[i] - mx));
    for (int i = 0; i < n; i++)
        y[i] /= s;
}

static double xent_d(const float *v, int n, int c)
{
    double mx = v[0], s = 0.0;
    for (int i = 1; i < n; i++)
        mx = v[i] > mx ? v[i] : mx;
    for (int i = 0; i < n; i++)
        s += exp((double)v[i] - mx);
    return mx + log(s) - v[c];
}

/* Tolerances. Y is float: each probability carries ~1 ulp from expf and the division, so a row
 * sum of 10 terms is within ~1e-7 of 1 and each entry within ~1e-7 of the double reference;
 * 1e-6 bounds both with room. The loss is accumulated in double from float (v_c − max) and
 * log Σ: relative 1e-6 (ulp of the float sum, ~6e-8, amplified at most a few times). */
#define PROB_TOL 1e-6
#define LOSS_REL_TOL 1e-6

static void extreme_rows(void)
{
    enum { R = 9 };
    float V[R][C];
    uint8_t labels[R];
    bp_rng rng;
    bp_rng_seed(&rng, 42);
    for (int r = 0; r < R; r++)
        for (int i = 0; i < C; i++)
            V[r][i] = 0.0f;
    /* 0: one huge, one hugely negative; the true class is the hugely negative one (its
     *    probability underflows to 0 in float: e^−2e4) */
    V[0][0] = 1e4f, V[0][1] = -1e4f, labels[0] = 1;
    /* 1, 2: all equal at −1e4 and at +1e4 (naive exp would give 0/0 and inf/inf) */
    for (int i = 0; i < C; i++)
        V[1][i] = -1e4f, V[2][i] = 1e4f;
    labels[1] = 3, labels[2] = 9;
    /* 3: alternating ±1e4, true class on a −1e4 */
    for (int i = 0; i < C; i++)
        V[3][i] = i % 2 ? -1e4f : 1e4f;
    labels[3] = 5;
    /* 4: true class the unique maximum by far */
    V[4][7] = 1e4f, V[4][2] = -1e4f, labels[4] = 7;
    /* 5: mixed random magnitudes up to 1e4 */
    for (int i = 0; i < C; i++)
        V[5][i] = (float)((2.0 * bp_rng_uniform(&rng) - 1.0) * 1e4);
    labels[5] = 2;
    /* 6: beyond expf's range on both sides (e^±100 overflows/underflows float) */
    for (int i = 0; i < C; i++)
        V[6][i] = i < 5 ? 100.0f : -100.0f;
    labels[6] = 8;
    /* 7: nearly equal logits */
    for (int i = 0; i < C; i++)
        V[7][i] = 1e-6f * (float)i;
    labels[7] = 0;
    /* 8: moderate random logits */
    for (int i = 0; i < C; i++)
        V[8][i] = (float)(3.0 * bp_rng_normal(&rng));
    labels[8] = 4;

    float Y[R][C];
    double worst_sum = 0.0, worst_y = 0.0, worst_loss = 0.0, total_ref = 0.0;
    int finite = 1;
    for (int r = 0; r < R; r++) {
        double loss = NAN;
        int correct = -1;
        /* one row at a time, so each row's loss is checked on its own */
        softmax_xent_forward(Y[r], V[r], &labels[r], 1, C, &loss, &correct);
        double yd[C], s = 0.0;
        softmax_d(yd, V[r], C);
        for (int i = 0; i < C; i++) {
            finite &= isfinite(Y[r][i]) && Y[r][i] >= 0.0f && Y[r][i] <= 1.0f;
            s += Y[r][i];
            worst_y = fmax(worst_y, fabs(Y[r][i] - yd[i]));
        }
        worst_sum = fmax(worst_sum, isfinite(s) ? fabs(s - 1.0) : INFINITY);
        double ref = xent_d(V[r], C, labels[r]);
        total_ref += ref;
        CHECKF(isfinite(loss), "row %d: loss %g", r, loss);
        worst_loss = fmax(worst_loss, fabs(loss - ref) / fmax(1.0, fabs(ref)));
        CHECK(correct == 0 || correct == 1);
    }
    CHECK(finite);
    CHECK_MAXDIFF("extreme logits: |row sum - 1|", worst_sum, PROB_TOL);
    CHECK_MAXDIFF("extreme logits: |Y - softmax in double|", worst_y, PROB_TOL);
    CHECK_MAXDIFF("extreme logits: loss rel err vs double", worst_loss, LOSS_REL_TOL);
    /* The headline case on its own: the true class's float probability is 0, the loss 2e4. */
    CHECK(Y[0][1] == 0.0f);
    {
        double loss = NAN;
        softmax_xent_forward(Y[0], V[0], &labels[0], 1, C, &loss, NULL);
        CHECK_NEAR(loss, 2e4, 2e4 * LOSS_REL_TOL);
    }
    /* The whole batch at once: the loss is the sum of the rows'. */
    double batch_loss = NAN;
    float Yb[R][C];
    softmax_xent_forward(&Yb[0][0], &V[0][0], labels, R, C, &batch_loss, NULL);
    CHECK_NEAR(batch_loss, total_ref, LOSS_REL_TOL * total_ref);
    /* The two-class form of the headline case. */
    float v2[2] = {1e4f, -1e4f}, y2[2];
    uint8_t l2 = 1;
    double loss2 = NAN;
    softmax_xent_forward(y2, v2, &l2, 1, 2, &loss2, NULL);
    CHECK(isfinite(y2[0]) && isfinite(y2[1]));
    CHECK_NEAR(loss2, 2e4, 2e4 * LOSS_REL_TOL);

    /* The un-fused backward must stay finite when the true class's probability is 0 (its
     * formula divides by y_c). */
    float dY[R][C], dV[R][C], J[C * C];
    xent_backward_dy(&dY[0][0], &Yb[0][0], labels, R, C);
    softmax_backward_jacobian(&dV[0][0], &dY[0][0], &Yb[0][0], J, R, C);
    int ok = 1;
    for (int r = 0; r < R; r++)
        for (int i = 0; i < C; i++)
            ok &= isfinite(dY[r][i]) && isfinite(dV[r][i]);
    CHECKF(ok, "explicit-Jacobian backward produced a non-finite value on extreme logits");
}

/* The number of correct predictions is the number of rows whose arg-max is the label. */
static void correct_count(void)
{
    enum { B = 64 };
    float V[B * C], Y[B * C];
    uint8_t labels[B];
    bp_rng rng;
    bp_rng_seed(&rng, 7);
    int expect = 0;
    for (int r = 0; r < B; r++) {
        int arg = 0;
        for (int i = 0; i < C; i++) {
            V[r * C + i] = (float)bp_rng_normal(&rng);
            if (V[r * C + i] > V[r * C + arg])
                arg = i;
        }
        /* half the rows labelled with their arg-max, the rest at random */
        labels[r] = (uint8_t)(r % 2 ? arg : (int)bp_rng_below(&rng, C));
        expect += labels[r] == arg;
    }
    int correct = -1;
    softmax_xent_forward(Y, V, labels, B, C, NULL, &correct);
    CHECK_INT_EQ(correct, expect);
}

/* Fused vs explicit Jacobian vs double, on random logits. dV entries are at most 1/B in size;
 * each float path rounds a handful of times (~1e-7 relative), so 1e-7 absolute (≈ 1.6e-6
 * relative to 1/B for B = 16) is a bound with room, and a wrong sign, a missing 1/B or a
 * transposed Jacobian would miss it by orders of magnitude. */
#define DV_TOL 1e-7

static void fused_vs_jacobian(void)
{
    enum { B = 16 };
    float V[B * C], Y[B * C], dVf[B * C], dY[B * C], dVj[B * C], J[C * C];
    uint8_t labels[B];
    bp_rng rng;
    bp_rng_seed(&rng, 11);
    for (int i = 0; i < B * C; i++)
        V[i] = (float)(3.0 * bp_rng_normal(&rng));
    for (int r = 0; r < B; r++)
        labels[r] = (uint8_t)bp_rng_below(&rng, C);
    softmax_xent_forward(Y, V, labels, B, C, NULL, NULL);
    for (int i = 0; i < B * C; i++)
        dVf[i] = dVj[i] = 1e3f; /* both must overwrite */
    softmax_xent_backward(dVf, Y, labels, B, C);
    xent_backward_dy(dY, Y, labels, B, C);
    softmax_backward_jacobian(dVj, dY, Y, J, B, C);
    CHECK_MAXDIFF("fused (Y-T)/B vs explicit Jacobian", check_max_abs_diff(dVf, dVj, B * C),
                  DV_TOL);

    double worst = 0.0, worst_rowsum = 0.0;
    for (int r = 0; r < B; r++) {
        double yd[C], rs = 0.0;
        softmax_d(yd, V + r * C, C);
        for (int i = 0; i < C; i++) {
            double ref = (yd[i] - (i == labels[r] ? 1.0 : 0.0)) / B;
            worst = fmax(worst, fabs(dVf[r * C + i] - ref));
            rs += dVf[r * C + i];
        }
        worst_rowsum = fmax(worst_rowsum, fabs(rs));
    }
    CHECK_MAXDIFF("fused dV vs (Y-T)/B in double", worst, DV_TOL);
    /* Σ_i (y_i − t_i) = 1 − 1 = 0 for every row */
    CHECK_MAXDIFF("fused dV row sums (must be 0)", worst_rowsum, DV_TOL);
}

/* J_ij = ∂y_i/∂v_j against central differences of the double softmax. */
static void jacobian_vs_numeric(void)
{
    float v[C], y[C], J[C * C];
    bp_rng rng;
    bp_rng_seed(&rng, 13);
    for (int i = 0; i < C; i++)
        v[i] = (float)(2.0 * bp_rng_normal(&rng));
    uint8_t l = 0;
    softmax_xent_forward(y, v, &l, 1, C, NULL, NULL);
    softmax_jacobian(J, y, C);
    double worst = 0.0, h = 1e-3;
    for (int j = 0; j < C; j++) {
        float vp[C], vm[C];
        double yp[C], ym[C];
        for (int i = 0; i < C; i++)
            vp[i] = vm[i] = v[i];
        /* a float logit moved by a float step: use the steps actually taken */
        vp[j] = (float)(v[j] + h), vm[j] = (float)(v[j] - h);
        double step = (double)vp[j] - (double)vm[j];
        softmax_d(yp, vp, C);
        softmax_d(ym, vm, C);
        for (int i = 0; i < C; i++)
            worst = fmax(worst, fabs(J[i * C + j] - (yp[i] - ym[i]) / step));
    }
    /* O(h²) truncation (~1e-7) plus float J rounding (~1e-8) */
    CHECK_MAXDIFF("softmax_jacobian vs central differences", worst, 1e-6);
}

int main(void)
{
    printf("softmax + cross-entropy against double references\n");
    extreme_rows();
    correct_count();
    fused_vs_jacobian();
    jacobian_vs_numeric();
    return check_exit("test_softmax");
}
