/* backprop derive: what each step of the derivation (derive.c) is checked against.
 *   - The reference: a second forward pass, written apart from the derivation's (sums over the
 *     columns of W, other formulas for the activations, L from the log-sum-exp of the logits).
 *     The forward values are compared with its values.
 *   - Central differences (L(p + h) − L(p − h)) / 2h of the reference's loss, in double, for
 *     every gradient: its error is O(h²) plus rounding, ~1e-10 at h = 1e-5, where a wrong
 *     formula is off by the size of the gradient itself.
 *   - The library's float32 pass on the same image (bp_forward, bp_grad).
 * ReLU kinks: where the step moves a hidden pre-activation across 0 the quotient averages two
 * slopes, so such an entry is recognised by the signs of every hidden z at both ends (the
 * lowest crossing layer is affine in p, so its sign differs there) and skipped, and counted. */
#include "derive.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The activations by other formulas than derive.c's act_of, so that the reference does not
 * repeat it. */
static double act_ref(double z, bp_act act)
{
    switch (act) {
    case BP_ACT_RELU: return (z + fabs(z)) / 2;
    case BP_ACT_TANH: return 1 - 2 / (exp(2 * z) + 1);
    case BP_ACT_SIGMOID: return (1 + tanh(z / 2)) / 2;
    }
    return z;
}

/* The reference loss, written apart from the derivation: the sums run over the columns of W
 * (the same terms in another order), the activations use other formulas and L comes from the
 * log-sum-exp of the logits. It starts at layer l from in, which is z_l if is_z, else a_l,
 * and leaves its z, a and y in rz, ra, ry and the sign of each hidden z in sign. */
double dv_ref_loss(dv_net *n, int l, const double *in, int is_z)
{
    const int *s = n->m->sizes;
    const double *cur = in;
    for (; l < n->L; l++) {
        int I = s[l], O = s[l + 1];
        if (!is_z) {
            double *z = n->rz[l];
            memcpy(z, n->b[l], (size_t)O * sizeof *z);
            for (int i = 0; i < I; i++)
                for (int o = 0; o < O; o++)
                    z[o] += n->W[l][(size_t)o * I + i] * cur[i];
            cur = z;
        }
        is_z = 0;
        if (l == n->L - 1)
            break;
        unsigned char *sg = n->sign;
        for (int k = 1; k <= l; k++)
            sg += s[k];
        for (int o = 0; o < O; o++) {
            sg[o] = cur[o] > 0;
            n->ra[l + 1][o] = act_ref(cur[o], n->act);
        }
        cur = n->ra[l + 1];
    }
    double mx = cur[0], S = 0;
    for (int i = 1; i < n->C; i++)
        mx = fmax(mx, cur[i]);
    for (int i = 0; i < n->C; i++)
        S += exp(cur[i] - mx);
    double lse = mx + log(S);
    for (int i = 0; i < n->C; i++)
        n->ry[i] = exp(cur[i] - lse);
    return lse - cur[n->label];
}

/* Which entries of a gradient g[len] to compare: all up to DV_ALL_UP_TO, else the DV_PICKED
 * largest |entries| and DV_PICKED more at random among the nonzero ones (a zero pixel makes its
 * whole column of dL/dW exactly 0 on both sides: comparing it checks nothing). */
static size_t pick(dv_net *n, const double *g, size_t len)
{
    size_t k = 0;
    if (len <= DV_ALL_UP_TO) {
        for (; k < len; k++)
            n->idx[k] = k;
        return k;
    }
    k = (size_t)dv_largest(g, len, n->idx, DV_PICKED);
    for (int tries = 0; k < 2 * DV_PICKED && tries < 100000; tries++) {
        size_t i = (size_t)(bp_rng_uniform(&n->rng) * (double)len), q = 0;
        while (q < k && n->idx[q] != i)
            q++;
        if (q == k && (g[i] != 0 || tries > 1000))
            n->idx[k++] = i;
    }
    return k;
}

/* (L(p_i + h) − L(p_i − h)) / 2h of the reference loss for the picked entries of p, which is a
 * parameter or the reference's input at layer `level`, against the derivation's g. With ReLU,
 * an entry whose two passes see some hidden z on different sides of 0 has a kink inside
 * [p − h, p + h], where the quotient averages two slopes: it is skipped and counted. */
void dv_check_fd(dv_net *n, dv_tally *t, const char *what, double *p, const double *g,
                 size_t len, int level, const double *in, int is_z)
{
    size_t k = pick(n, g, len), skipped = 0;
    int relu = n->act == BP_ACT_RELU && n->nsign > 0;
    double worst = 0, h = DV_STEP;
    for (size_t q = 0; q < k; q++) {
        size_t i = n->idx[q];
        double keep = p[i];
        p[i] = keep + h;
        double lp = dv_ref_loss(n, level, in, is_z);
        if (relu)
            memcpy(n->sign_plus, n->sign, n->nsign);
        p[i] = keep - h;
        double lm = dv_ref_loss(n, level, in, is_z);
        p[i] = keep;
        /* (the signs below `level` are not rewritten by either pass, so they compare equal) */
        if (relu && memcmp(n->sign_plus, n->sign, n->nsign) != 0) {
            skipped++;
            continue;
        }
        worst = dv_worse(worst, dv_err1(g[i], (lp - lm) / (2 * h)));
    }
    char which[64], note[48] = "";
    if (k == len)
        snprintf(which, sizeof which, "all %zu entries", len);
    else
        snprintf(which, sizeof which, "%d largest + %zu random of %zu", DV_PICKED,
                 k - DV_PICKED, len);
    if (skipped)
        snprintf(note, sizeof note, ", %zu skipped (ReLU kink)", skipped);
    dv_check(t, worst, DV_TOL_FD, "%s: central differences, %s%s", what, which, note);
}

/* dL/dy against central differences of L as a function of y alone, L(y) = −Σ_i t_i·log y_i,
 * with the step h·y_i: a fixed h could step past 0 for a small y_i. */
void dv_check_dy(dv_net *n, dv_tally *t)
{
    double worst = 0;
    for (int j = 0; j < n->C; j++) {
        double h = DV_STEP * fmax(n->y[j], 1e-300), yp = n->y[n->label], ym = yp;
        if (j == n->label) /* only y_label appears in L: for j ≠ label, L does not move */
            yp += h, ym -= h;
        worst = dv_worse(worst, dv_err1(n->dy[j], (-log(yp) + log(ym)) / (2 * h)));
    }
    dv_check(t, worst, DV_TOL_FD, "dL/dy: central differences of L(y), step %g*y_i", DV_STEP);
}

static void softmax_ref(double *y, const double *v, int C)
{
    double mx = v[0], S = 0;
    for (int i = 1; i < C; i++)
        mx = fmax(mx, v[i]);
    for (int i = 0; i < C; i++)
        S += exp(v[i] - mx);
    for (int i = 0; i < C; i++)
        y[i] = exp(v[i] - mx) / S;
}

/* J against central differences of softmax(v), column j from v ± h·e_j. */
void dv_check_J(dv_net *n, dv_tally *t)
{
    int C = n->C;
    double vp[BP_CLASSES], vm[BP_CLASSES], yp[BP_CLASSES], ym[BP_CLASSES], worst = 0;
    for (int j = 0; j < C; j++) {
        memcpy(vp, n->z[n->L - 1], (size_t)C * sizeof *vp);
        memcpy(vm, vp, (size_t)C * sizeof *vm);
        vp[j] += DV_STEP, vm[j] -= DV_STEP;
        softmax_ref(yp, vp, C);
        softmax_ref(ym, vm, C);
        for (int i = 0; i < C; i++)
            worst = dv_worse(worst, dv_err1(n->J[(size_t)i * C + j],
                                            (yp[i] - ym[i]) / (2 * DV_STEP)));
    }
    dv_check(t, worst, DV_TOL_FD, "J: central differences of softmax(v), all %d entries",
             C * C);
}

/* The library's float32 pass on the same image: bp_forward's y and L, bp_grad's gradients
 * (impl blas: the fused y − t and the GEMMs), against the double derivation. */
int dv_check_library(dv_net *n, bp_model *m, const float *X, dv_tally *t)
{
    const int *s = m->sizes;
    bp_work *w = NULL;
    bp_error err = {0};
    float probs[BP_CLASSES], *dX = malloc((size_t)s[0] * sizeof *dX);
    uint8_t label = (uint8_t)n->label;
    double loss = 0;
    int st = dX ? BP_OK : BP_ERR_NOMEM;
    if (st || (st = bp_work_create(&w, m, 1, 1, &err)) ||
        (st = bp_forward(m, w, X, &label, 1, probs, &loss, NULL, &err))) {
        fprintf(stderr, "backprop derive: %s\n", st == BP_ERR_NOMEM ? "out of memory" : err.msg);
        goto done;
    }
    dv_check(t, dv_err_float(probs, n->y, (size_t)n->C), DV_TOL_LIB,
             "y: bp_forward's probabilities");
    dv_check(t, dv_err1(loss, n->loss), DV_TOL_LIB, "L: bp_forward's loss");
    if ((st = bp_grad(m, w, BP_IMPL_BLAS, X, &label, 1, NULL, NULL, dX, &err))) {
        fprintf(stderr, "backprop derive: %s\n", err.msg);
        goto done;
    }
    for (int l = n->L - 1; l >= 0; l--) {
        size_t O = (size_t)s[l + 1], I = (size_t)s[l];
        dv_check(t, dv_err_float(m->db[l], n->dz[l], O), DV_TOL_LIB,
                 "dL/d%s: bp_grad's m->db[%d], all %zu entries", n->bn[l], l, O);
        dv_check(t, dv_err_float(m->dW[l], n->dW[l], O * I), DV_TOL_LIB,
                 "dL/d%s: bp_grad's m->dW[%d], all %zu entries", n->Wn[l], l, O * I);
    }
    dv_check(t, dv_err_float(dX, n->da[0], (size_t)s[0]), DV_TOL_LIB,
             "dL/du: bp_grad's dX, all %d entries", s[0]);
done:
    bp_work_free(w);
    free(dX);
    return st ? 1 : 0;
}
