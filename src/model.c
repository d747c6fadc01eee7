/* The layer stack: sizes, one flat parameter block and one gradient block of the same layout
 * (W0, b0, W1, b1, …), initialisation, and the scratch a batch needs. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int bp_model_create(bp_model **out, const int *sizes, int nlayers, bp_act act, bp_error *err)
{
    *out = NULL;
    if (nlayers < 1 || nlayers > BP_MAX_LAYERS)
        return bp_fail(err, BP_ERR_ARG, "a model has 1 to %d linear layers, not %d",
                       BP_MAX_LAYERS, nlayers);
    if (act != BP_ACT_RELU && act != BP_ACT_TANH && act != BP_ACT_SIGMOID)
        return bp_fail(err, BP_ERR_ARG, "unknown activation %d", (int)act);
    size_t n = 0;
    for (int l = 0; l <= nlayers; l++)
        if (sizes[l] < 1 || sizes[l] > BP_MAX_WIDTH)
            return bp_fail(err, BP_ERR_ARG, "sizes[%d] (%s) is %d; a width must be 1 to %d", l,
                           l == 0 ? "the input" : l == nlayers ? "the classes" : "a hidden layer",
                           sizes[l], BP_MAX_WIDTH);
    for (int l = 0; l < nlayers; l++)
        n += (size_t)sizes[l + 1] * sizes[l] + sizes[l + 1];
    if (n > ((size_t)1 << 31) / sizeof(float))
        return bp_fail(err, BP_ERR_ARG, "model has %zu parameters, more than this tool allows",
                       n);

    bp_model *m = calloc(1, sizeof *m);
    if (!m)
        goto nomem;
    m->nlayers = nlayers;
    m->act = act;
    m->nparams = n;
    memcpy(m->sizes, sizes, (size_t)(nlayers + 1) * sizeof *sizes);
    m->params = calloc(n, sizeof(float));
    m->grads = calloc(n, sizeof(float));
    if (!m->params || !m->grads)
        goto nomem;
    size_t off = 0;
    for (int l = 0; l < nlayers; l++) {
        size_t wn = (size_t)sizes[l + 1] * sizes[l];
        m->W[l] = m->params + off;
        m->dW[l] = m->grads + off;
        off += wn;
        m->b[l] = m->params + off;
        m->db[l] = m->grads + off;
        off += (size_t)sizes[l + 1];
    }
    *out = m;
    return BP_OK;
nomem:
    bp_model_free(m);
    return bp_fail(err, BP_ERR_NOMEM, "out of memory allocating a model of %zu parameters", n);
}

void bp_model_free(bp_model *m)
{
    if (!m)
        return;
    free(m->params);
    free(m->grads);
    free(m);
}

int bp_model_init(bp_model *m, bp_init init, uint64_t seed, bp_error *err)
{
    if (!bp_init_name(init))
        return bp_fail(err, BP_ERR_ARG, "unknown initialisation %d", (int)init);
    memset(m->params, 0, m->nparams * sizeof(float));
    m->init = init;
    m->init_seed = seed;
    if (init == BP_INIT_ZEROS)
        return BP_OK;
    bp_rng stream;
    bp_rng *rng = &stream;
    bp_rng_seed(rng, seed ^ BP_INIT_STREAM); /* apart from bp_train's shuffling stream */
    for (int l = 0; l < m->nlayers; l++) {
        int I = m->sizes[l], O = m->sizes[l + 1];
        size_t wn = (size_t)O * I;
        float *W = m->W[l];
        /* Layer l feeds the activation after it (the last one feeds softmax). He keeps the
         * variance of ReLU outputs constant (Var W = 2/I); Glorot balances forward and backward
         * variance for tanh/sigmoid and for the softmax layer (Var W = 2/(I+O)). */
        int relu_next = l < m->nlayers - 1 && m->act == BP_ACT_RELU;
        double var = init == BP_INIT_AUTO && relu_next ? 2.0 / I : 2.0 / (I + O);
        if (init == BP_INIT_TORCH) {
            /* kaiming_uniform(a = √5) for W, and the same bound for b: 1/√fan_in */
            double a = 1.0 / sqrt((double)I);
            for (size_t i = 0; i < wn; i++)
                W[i] = (float)((2.0 * bp_rng_uniform(rng) - 1.0) * a);
            for (int o = 0; o < O; o++)
                m->b[l][o] = (float)((2.0 * bp_rng_uniform(rng) - 1.0) * a);
        } else if (init == BP_INIT_UNIFORM) {
            double a = sqrt(3.0 * var); /* U(−a, a) has variance a²/3 */
            for (size_t i = 0; i < wn; i++)
                W[i] = (float)((2.0 * bp_rng_uniform(rng) - 1.0) * a);
        } else {
            double sd = sqrt(var);
            for (size_t i = 0; i < wn; i++)
                W[i] = (float)(bp_rng_normal(rng) * sd);
        }
    }
    return BP_OK;
}

int bp_work_create(bp_work **out, const bp_model *m, int max_batch, int threads,
                   bp_error *err)
{
    *out = NULL;
    if (max_batch < 1 || max_batch > BP_MAX_BATCH)
        return bp_fail(err, BP_ERR_ARG, "a work's batch is 1 to %d samples, not %d",
                       BP_MAX_BATCH, max_batch);
    int L = m->nlayers, C = m->sizes[L], I0 = m->sizes[0];
    size_t Bz = (size_t)max_batch;
    int maxw = 0, sum_sizes = 0;
    for (int l = 0; l <= L; l++) {
        if (l > 0 && m->sizes[l] > maxw)
            maxw = m->sizes[l];
        sum_sizes += m->sizes[l];
    }
    size_t floats = Bz * C * 2 + Bz * maxw * 2 + (size_t)C * C + (size_t)sum_sizes +
                    (size_t)2 * (maxw > I0 ? maxw : I0);
    for (int l = 1; l < L; l++)
        floats += Bz * m->sizes[l];
    bp_work *w = calloc(1, sizeof *w);
    if (!w)
        goto nomem;
    w->mem = calloc(floats, sizeof(float));
    if (!w->mem)
        goto nomem;
    w->max_batch = max_batch;
    w->threads = bp_threads_resolve(threads, NULL);
    w->max_width = maxw;
    float *p = w->mem;
    for (int l = 1; l < L; l++) {
        w->H[l] = p;
        p += Bz * m->sizes[l];
    }
    w->V = p, p += Bz * C;
    w->Y = p, p += Bz * C;
    w->D[0] = p, p += Bz * maxw;
    w->D[1] = p, p += Bz * maxw;
    w->J = p, p += (size_t)C * C;
    w->na = p, p += (size_t)sum_sizes;
    w->nd = p;
    *out = w;
    return BP_OK;
nomem:
    bp_work_free(w);
    return bp_fail(err, BP_ERR_NOMEM, "out of memory allocating scratch for batch %d",
                   max_batch);
}

void bp_work_set_threads(bp_work *w, int threads) { w->threads = bp_threads_resolve(threads, NULL); }
int bp_work_threads(const bp_work *w) { return w->threads; }

void bp_work_free(bp_work *w)
{
    if (!w)
        return;
    free(w->mem);
    free(w);
}
