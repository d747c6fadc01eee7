/* Two implementations of the training step against each other: the same parameters, the same
 * batch, bp_grad once with the reference and once with the other, and how far apart the results
 * are. One measure for everyone who asks (the unit tests, the benchmark's validation):
 *
 *   rel(g, g_ref) = max_i |g_i − g_ref,i| / max_i |g_ref,i|     (max |g − g_ref| if g_ref = 0)
 *
 * over the whole flat gradient block (grad_rel), over each tensor W_l, b_l on its own (the worst
 * is tensor_rel: a small bias gradient is not hidden by a large weight gradient) and over dL/dX
 * (dX_rel). A NaN anywhere makes the measure NaN, which no tolerance accepts. Before each pass
 * the outputs are filled with NaN, so an entry a pass fails to write shows up as NaN too. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double rel(const float *g, const float *ref, size_t n)
{
    double dmax = 0.0, rmax = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)g[i] - (double)ref[i]);
        if (!(d <= dmax)) /* takes a NaN too, and keeps it: NaN compares false */
            dmax = d;
        if (fabs((double)ref[i]) > rmax)
            rmax = fabs((double)ref[i]);
    }
    return rmax > 0 ? dmax / rmax : dmax;
}

/* The larger of two measures; NaN if either is. */
static double worst(double a, double b)
{
    return isnan(a) || isnan(b) ? NAN : a > b ? a : b;
}

static void fill_nan(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
}

int bp_grad_agree(bp_model *m, bp_work *w, bp_impl impl, bp_impl ref, const float *X,
                  const uint8_t *labels, int B, bp_agreement *out, bp_error *err)
{
    if (!m || !w || !X || !labels || !out)
        return bp_fail(err, BP_ERR_ARG, "bp_grad_agree: a NULL argument");
    if (B < 1)
        return bp_fail(err, BP_ERR_ARG, "batch %d is below 1", B);
    size_t np = m->nparams, nx = (size_t)B * (size_t)m->sizes[0];
    float *g_ref = malloc(np * sizeof *g_ref);
    float *dX = malloc(2 * nx * sizeof *dX);
    if (!g_ref || !dX) {
        free(g_ref);
        free(dX);
        return bp_fail(err, BP_ERR_NOMEM, "no memory for a copy of %zu gradients", np + 2 * nx);
    }
    float *dX_ref = dX + nx;
    memset(out, 0, sizeof *out);
    fill_nan(m->grads, np);
    fill_nan(dX_ref, nx);
    int st = bp_grad(m, w, ref, X, labels, B, &out->loss_ref, &out->correct_ref, dX_ref, err);
    if (st == BP_OK) {
        memcpy(g_ref, m->grads, np * sizeof *g_ref);
        fill_nan(m->grads, np);
        fill_nan(dX, nx);
        st = bp_grad(m, w, impl, X, labels, B, &out->loss, &out->correct, dX, err);
    }
    if (st == BP_OK) {
        out->grad_rel = rel(m->grads, g_ref, np);
        out->tensor_rel = 0.0;
        /* each tensor's size from its layer: sizes[l]·sizes[l + 1] is a linear layer's W only
         * (a conv2d's is C_out·C_in·kh·kw, far fewer than its flat input times output) */
        for (int i = 0; i < m->nlist; i++) {
            const bp_layer *ly = &m->list[i];
            int l = ly->param;
            if (l < 0)
                continue;
            size_t offW = (size_t)(m->dW[l] - m->grads), offb = (size_t)(m->db[l] - m->grads);
            size_t nW = layer_weights(ly), nb = (size_t)ly->units;
            out->tensor_rel = worst(out->tensor_rel, rel(m->grads + offW, g_ref + offW, nW));
            out->tensor_rel = worst(out->tensor_rel, rel(m->grads + offb, g_ref + offb, nb));
        }
        out->dX_rel = rel(dX, dX_ref, nx);
        double scale = fabs(out->loss_ref) > 0 ? fabs(out->loss_ref) : 1.0;
        out->loss_rel = fabs(out->loss - out->loss_ref) / scale;
    }
    free(g_ref);
    free(dX);
    return st;
}
