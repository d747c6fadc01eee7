/* Gradient checking: the analytic float gradient against central differences
 *   ∂L/∂θ ≈ (L(θ + h) − L(θ − h)) / 2h       (error O(h²))
 * of a loss evaluated in double precision by its own plain loops, so neither the GEMM paths nor
 * float rounding in the reference can hide a wrong formula. */
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
 * vectors of the widest layer. */
static double loss_double(const bp_model *m, const double *P, const double *Xd,
                          const uint8_t *labels, int B, double *buf, int wide)
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

int bp_gradcheck(bp_model *m, bp_impl impl, const float *X, const uint8_t *labels, int B,
                 double h, size_t per_tensor, uint64_t seed, bp_gradcheck_tensor *res, int *nres,
                 bp_error *err)
{
    int L = m->nlayers, I0 = m->sizes[0], st = BP_OK;
    int wide = 0;
    for (int l = 0; l <= L; l++)
        wide = m->sizes[l] > wide ? m->sizes[l] : wide;
    size_t nx = (size_t)B * I0;
    bp_work *w = NULL;
    float *dX = malloc(nx * sizeof *dX);
    double *P = malloc(m->nparams * sizeof *P), *Xd = malloc(nx * sizeof *Xd);
    double *buf = malloc(2 * (size_t)wide * sizeof *buf);
    if (!dX || !P || !Xd || !buf) {
        st = bp_fail(err, BP_ERR_NOMEM, "out of memory for the gradient check");
        goto done;
    }
    if ((st = bp_work_create(&w, m, B, err)))
        goto done;
    if ((st = bp_step_grad(m, w, impl, X, labels, B, NULL, NULL, dX))) {
        bp_fail(err, st, "gradient step refused batch %d", B);
        goto done;
    }
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
        r->checked = count;
        r->max_abs_err = r->max_rel_err = 0.0;
        /* count distinct entries, evenly spaced from a random offset */
        double offset = bp_rng_uniform(&rng);
        for (size_t k = 0; k < count; k++) {
            size_t i = (size_t)(((double)k + offset) * (double)n / (double)count);
            double keep = base[i];
            base[i] = keep + h;
            double lp = loss_double(m, P, Xd, labels, B, buf, wide);
            base[i] = keep - h;
            double lm = loss_double(m, P, Xd, labels, B, buf, wide);
            base[i] = keep;
            double num = (lp - lm) / (2.0 * h), a = grad[i];
            double abs_err = fabs(a - num);
            double scale = fmax(fmax(fabs(a), fabs(num)), 1e-6);
            r->max_abs_err = fmax(r->max_abs_err, abs_err);
            r->max_rel_err = fmax(r->max_rel_err, abs_err / scale);
        }
    }
    *nres = 2 * L + 1;
done:
    bp_work_free(w);
    free(dX);
    free(P);
    free(Xd);
    free(buf);
    return st;
}
