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

/* The bytes of one sample's kink pattern: [z > 0] for every ReLU input, and which pixel of
 * its window each max-pool output took (a change of arg-max is a kink too). */
static size_t pattern_size(const bp_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->nlist; i++) {
        const bp_layer *ly = &m->list[i];
        if (ly->kind == BP_LAYER_ACT && ly->act == BP_ACT_RELU)
            n += layer_in_size(ly);
        if (ly->kind == BP_LAYER_MAXPOOL)
            n += layer_out_size(ly);
    }
    return n;
}

/* Mean cross-entropy of the model with parameters P (model layout) on inputs Xd, every layer
 * by its per-sample formula in double. buf holds one sample's outputs of every layer
 * (Σ out sizes). mask: the dropout masks bp_grad used ([B, out] per dropout layer). If sign
 * is not NULL it receives the kink pattern (pattern_size bytes per sample). */
static double loss_double(const bp_model *m, const double *P, const double *Xd,
                          const uint8_t *labels, int B, double *buf, float *const *mask,
                          uint8_t *sign)
{
    double total = 0.0;
    for (int s = 0; s < B; s++) {
        const double *x = Xd + (size_t)s * m->sizes[0];
        double *out = buf;
        for (int li = 0; li < m->nlist; li++) {
            const bp_layer *ly = &m->list[li];
            int no = (int)layer_out_size(ly), ni = (int)layer_in_size(ly), l = ly->param;
            const double *W = l >= 0 ? P + (m->W[l] - m->params) : NULL;
            const double *b = l >= 0 ? P + (m->b[l] - m->params) : NULL;
            switch (ly->kind) {
            case BP_LAYER_LINEAR:
                for (int o = 0; o < no; o++) {
                    double v = b[o];
                    for (int i = 0; i < ni; i++)
                        v += W[(size_t)o * ni + i] * x[i];
                    out[o] = v;
                }
                break;
            case BP_LAYER_ACT:
                for (int i = 0; i < no; i++) {
                    if (ly->act == BP_ACT_RELU && sign)
                        *sign++ = x[i] > 0;
                    out[i] = act_d(x[i], ly->act);
                }
                break;
            case BP_LAYER_CONV2D: {
                int st = ly->stride, ph = ly->pad == BP_PAD_SAME ? (ly->kh - 1) / 2 : 0;
                int pw = ly->pad == BP_PAD_SAME ? (ly->kw - 1) / 2 : 0;
                for (int o = 0; o < ly->out_c; o++)
                    for (int p = 0; p < ly->out_h; p++)
                        for (int q = 0; q < ly->out_w; q++) {
                            double v = b[o];
                            for (int c = 0; c < ly->in_c; c++)
                                for (int i = 0; i < ly->kh; i++)
                                    for (int j = 0; j < ly->kw; j++) {
                                        int r = p * st + i - ph, t = q * st + j - pw;
                                        if (r >= 0 && r < ly->in_h && t >= 0 && t < ly->in_w)
                                            v += W[((o * ly->in_c + c) * ly->kh + i) * ly->kw + j] *
                                                 x[(c * ly->in_h + r) * ly->in_w + t];
                                    }
                            out[(o * ly->out_h + p) * ly->out_w + q] = v;
                        }
                break;
            }
            case BP_LAYER_MAXPOOL:
            case BP_LAYER_AVGPOOL: {
                int k = ly->kh;
                for (int c = 0; c < ly->out_c; c++)
                    for (int p = 0; p < ly->out_h; p++)
                        for (int q = 0; q < ly->out_w; q++) {
                            double best = 0.0, sum = 0.0;
                            int at = 0;
                            for (int i = 0; i < k; i++)
                                for (int j = 0; j < k; j++) {
                                    double v = x[(c * ly->in_h + p * k + i) * ly->in_w + q * k + j];
                                    sum += v;
                                    if ((i == 0 && j == 0) || v > best)
                                        best = v, at = i * k + j;
                                }
                            int yi = (c * ly->out_h + p) * ly->out_w + q;
                            out[yi] = ly->kind == BP_LAYER_MAXPOOL ? best : sum / (k * k);
                            if (ly->kind == BP_LAYER_MAXPOOL && sign)
                                *sign++ = (uint8_t)at;
                        }
                break;
            }
            case BP_LAYER_FLATTEN:
                for (int i = 0; i < no; i++)
                    out[i] = x[i];
                break;
            case BP_LAYER_DROPOUT:
                for (int i = 0; i < no; i++)
                    out[i] = x[i] * (double)mask[li][(size_t)s * no + i];
                break;
            }
            x = out;
            out += no;
        }
        int C = m->sizes[m->nlayers];
        double mx = x[0], sum = 0.0;
        for (int i = 1; i < C; i++)
            mx = x[i] > mx ? x[i] : mx;
        for (int i = 0; i < C; i++)
            sum += exp(x[i] - mx);
        total += mx + log(sum) - x[labels[s]];
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
    int L = m->nlayers, st = BP_OK;
    size_t per = pattern_size(m), wide = 0;
    int relu = per > 0; /* some loss kink: a ReLU or a max pool */
    bp_work *w = NULL;
    float *dX = NULL;
    double *P = NULL, *Xd = NULL, *buf = NULL;
    uint8_t *sp = NULL, *sm = NULL; /* kink patterns at θ + h and θ − h */
    if ((st = bp_gradcheck_check(B, h, err)))
        goto done;
    for (int i = 0; i < m->nlist; i++)
        wide += layer_out_size(&m->list[i]);
    size_t nx = (size_t)B * m->sizes[0], nsign = (size_t)B * per;
    dX = malloc(nx * sizeof *dX);
    P = malloc(m->nparams * sizeof *P);
    Xd = malloc(nx * sizeof *Xd);
    buf = malloc(wide * sizeof *buf);
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
            const bp_layer *ly = NULL;
            for (int i = 0; i < m->nlist; i++)
                if (m->list[i].param == l)
                    ly = &m->list[i];
            n = t % 2 ? (size_t)ly->units : layer_weights(ly);
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
            double lp = loss_double(m, P, Xd, labels, B, buf, w->mask, sp);
            base[i] = keep - h;
            double lm = loss_double(m, P, Xd, labels, B, buf, w->mask, sm);
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
