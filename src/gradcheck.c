/* Gradient checking: the analytic float gradient against central differences
 *   ∂L/∂θ ≈ (L(θ + h) − L(θ − h)) / 2h       (error O(h²))
 * of a loss evaluated in double precision by its own plain loops, so neither the GEMM paths nor
 * float rounding in the reference can hide a wrong formula.
 *
 * ReLU kinks: the difference quotient is only a derivative where L is smooth on [θ − h, θ + h].
 * With ReLU it is not when some pre-activation z changes sign inside the interval; the quotient
 * then averages two slopes and disagrees with a correct gradient. Such an entry is detected
 * exactly from the endpoints: the lowest layer whose z crosses 0 has no crossing below it, so
 * its z is affine in θ on the interval and its sign differs between θ − h and θ + h. Entries
 * whose sign patterns differ are skipped and counted, never compared; tanh and sigmoid are
 * smooth and never skip. A non-finite analytic value is never skipped. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double act_d(double z, bp_act act)
{
    switch (act) {
    case BP_ACT_RELU: return z > 0 ? z : 0;
    case BP_ACT_TANH: return tanh(z);
    case BP_ACT_SIGMOID: return 1.0 / (1.0 + exp(-z));
    }
    return z;
}

/* Mean cross-entropy of the model with parameters P (model layout) on inputs Xd. buf holds two
 * vectors of the widest layer. If sign is not NULL it receives [z > 0] for every hidden
 * pre-activation z, sample by sample, layer by layer: B·(sizes[1] + … + sizes[L−1]) bytes. */
static double loss_double(const bp_model *m, const double *P, const double *Xd,
                          const uint8_t *labels, int B, double *buf, int wide, uint8_t *sign)
{
    int L = m->nlayers;
    double total = 0.0;
    for (int s = 0; s < B; s++) {
        const double *in = Xd + (size_t)s * m->sizes[0];
        double *out = buf;
        for (int l = 0; l < L; l++) {
            int I = m->sizes[l], O = m->sizes[l + 1];
            const double *W = P + (m->W[l] - m->params), *b = P + (m->b[l] - m->params);
            for (int o = 0; o < O; o++) {
                double v = b[o];
                for (int i = 0; i < I; i++)
                    v += W[(size_t)o * I + i] * in[i];
                if (l < L - 1 && sign)
                    *sign++ = v > 0;
                out[o] = l < L - 1 ? act_d(v, m->act) : v;
            }
            in = out;
            out = out == buf ? buf + wide : buf;
        }
        int C = m->sizes[L];
        double mx = in[0], sum = 0.0;
        for (int i = 1; i < C; i++)
            mx = in[i] > mx ? in[i] : mx;
        for (int i = 0; i < C; i++)
            sum += exp(in[i] - mx);
        total += mx + log(sum) - in[labels[s]];
    }
    return total / B;
}

/* *mx = max(*mx, e), where a NaN e makes *mx infinite (fmax would drop it) so no tolerance
 * accepts it. */
static void max_err(double *mx, double e)
{
    if (!(e <= *mx))
        *mx = isnan(e) ? INFINITY : e;
}

int bp_gradcheck_check(int B, double h, bp_error *err)
{
    if (B < 1 || B > BP_GRADCHECK_MAX_BATCH)
        return bp_fail_field(err, "batch", "%d must be from 1 to %d", B, BP_GRADCHECK_MAX_BATCH);
    if (!(h >= BP_GRADCHECK_MIN_H && h <= 1.0))
        return bp_fail_field(err, "h", "%g must be from %g to 1 (a smaller step leaves only "
                             "rounding error in the difference)", h, BP_GRADCHECK_MIN_H);
    return BP_OK;
}

int bp_gradcheck(bp_model *m, bp_impl impl, const float *X, const uint8_t *labels, int B,
                 double h, size_t per_tensor, uint64_t seed, int threads,
                 bp_gradcheck_tensor *res, int *nres, bp_error *err)
{
    int L = m->nlayers, st = BP_OK, wide = 0;
    int relu = m->act == BP_ACT_RELU && L > 1;
    bp_work *w = NULL;
    float *dX = NULL;
    double *P = NULL, *Xd = NULL, *buf = NULL;
    uint8_t *sp = NULL, *sm = NULL; /* sign patterns at θ + h and θ − h */
    if ((st = bp_gradcheck_check(B, h, err)))
        goto done;
    for (int l = 0; l <= L; l++)
        wide = m->sizes[l] > wide ? m->sizes[l] : wide;
    size_t nx = (size_t)B * m->sizes[0], nsign = 0; /* nsign: B·Σ hidden widths, ReLU only */
    for (int l = 1; relu && l < L; l++)
        nsign += (size_t)B * m->sizes[l];
    dX = malloc(nx * sizeof *dX);
    P = malloc(m->nparams * sizeof *P);
    Xd = malloc(nx * sizeof *Xd);
    buf = malloc(2 * (size_t)wide * sizeof *buf);
    if (relu) {
        sp = malloc(nsign);
        sm = malloc(nsign);
    }
    if (!dX || !P || !Xd || !buf || (relu && (!sp || !sm))) {
        st = bp_fail(err, BP_ERR_NOMEM, "out of memory for the gradient check");
        goto done;
    }
    if ((st = bp_work_create(&w, m, B, threads, err)) ||
        (st = bp_grad(m, w, impl, X, labels, B, NULL, NULL, dX, err)))
        goto done;
    for (size_t i = 0; i < m->nparams; i++)
        P[i] = m->params[i];
    for (size_t i = 0; i < nx; i++)
        Xd[i] = X[i];

    bp_rng rng;
    bp_rng_seed(&rng, seed);
    for (int t = 0; t <= 2 * L; t++) {
        bp_gradcheck_tensor *r = &res[t];
        double *base;
        const float *grad;
        size_t n;
        if (t == 2 * L) {
            snprintf(r->name, sizeof r->name, "X");
            base = Xd, grad = dX, n = nx;
        } else {
            int l = t / 2;
            float *p = t % 2 ? m->b[l] : m->W[l];
            snprintf(r->name, sizeof r->name, "%c%d", t % 2 ? 'b' : 'W', l);
            base = P + (p - m->params);
            grad = (t % 2 ? m->db[l] : m->dW[l]);
            n = t % 2 ? (size_t)m->sizes[l + 1] : (size_t)m->sizes[l + 1] * m->sizes[l];
        }
        size_t count = per_tensor && per_tensor < n ? per_tensor : n;
        r->checked = r->skipped = 0;
        r->max_abs_err = r->max_rel_err = 0.0;
        /* count distinct entries, evenly spaced from a random offset */
        double offset = bp_rng_uniform(&rng);
        for (size_t k = 0; k < count; k++) {
            size_t i = (size_t)(((double)k + offset) * (double)n / (double)count);
            double keep = base[i];
            base[i] = keep + h;
            double lp = loss_double(m, P, Xd, labels, B, buf, wide, sp);
            base[i] = keep - h;
            double lm = loss_double(m, P, Xd, labels, B, buf, wide, sm);
            base[i] = keep;
            double num = (lp - lm) / (2.0 * h), a = grad[i];
            if (relu && isfinite(a) && memcmp(sp, sm, nsign) != 0) {
                r->skipped++;
                continue;
            }
            r->checked++;
            double abs_err = INFINITY, rel_err = INFINITY;
            if (isfinite(a) && isfinite(num)) {
                abs_err = fabs(a - num);
                rel_err = abs_err / fmax(fmax(fabs(a), fabs(num)), 1e-6);
            }
            max_err(&r->max_abs_err, abs_err);
            max_err(&r->max_rel_err, rel_err);
        }
    }
    *nres = 2 * L + 1;
done:
    bp_work_free(w);
    free(dX);
    free(P);
    free(Xd);
    free(buf);
    free(sp);
    free(sm);
    return st;
}
