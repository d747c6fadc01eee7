/* The layer list: shapes, one flat parameter block and one gradient block of the same layout
 * (W0, b0, W1, b1, … for the layers that have parameters), initialisation, and the scratch a
 * batch needs. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The layer list's parameters in one block, W then b of each layer that has them, in list
 * order; for an MLP that is the W0, b0, W1, b1, … the model file and the optimizer know. */
int bp_model_create_layers(bp_model **out, int in_c, int in_h, int in_w,
                           const bp_layer *layers, int nlist, bp_error *err)
{
    *out = NULL;
    if (nlist < 1 || nlist > BP_MAX_LIST)
        return bp_fail(err, BP_ERR_ARG, "a model has 1 to %d layers, not %d", BP_MAX_LIST,
                       nlist);
    bp_layer list[BP_MAX_LIST];
    memcpy(list, layers, (size_t)nlist * sizeof *list);
    int st = layers_infer(list, nlist, in_c, in_h, in_w, err);
    if (st)
        return st;
    if (list[nlist - 1].kind != BP_LAYER_LINEAR)
        return bp_fail(err, BP_ERR_ARG, "layer %d (%s): the last layer must be linear (its "
                       "outputs are the classes)", nlist - 1,
                       layer_kind_name(list[nlist - 1].kind));
    int L = 0, acts = 0, mlp = 1;
    size_t n = 0;
    for (int i = 0; i < nlist; i++) {
        bp_layer *ly = &list[i];
        size_t wn = layer_weights(ly);
        if (ly->kind == BP_LAYER_LINEAR || ly->kind == BP_LAYER_CONV2D) {
            if (L == BP_MAX_LAYERS)
                return bp_fail(err, BP_ERR_ARG, "more than %d layers with parameters",
                               BP_MAX_LAYERS);
            ly->param = L++;
            n += wn + (size_t)ly->units;
        }
        /* an MLP: linear, act, linear, …, linear with one activation */
        int want_linear = i % 2 == 0;
        if (want_linear ? ly->kind != BP_LAYER_LINEAR
                        : ly->kind != BP_LAYER_ACT || (acts && ly->act != list[1].act))
            mlp = 0;
        acts += ly->kind == BP_LAYER_ACT;
    }
    if (n > ((size_t)1 << 31) / sizeof(float))
        return bp_fail(err, BP_ERR_ARG, "model has %zu parameters, more than this tool allows",
                       n);

    bp_model *m = calloc(1, sizeof *m);
    if (!m)
        goto nomem;
    m->nlayers = L;
    m->nlist = nlist;
    memcpy(m->list, list, (size_t)nlist * sizeof *list);
    m->mlp = mlp;
    m->act = BP_ACT_RELU;
    for (int i = 0, first = 1; i < nlist; i++)
        if (list[i].kind == BP_LAYER_ACT) {
            if (first)
                m->act = list[i].act;
            first = 0;
        }
    m->input_channels = (uint64_t)in_h * in_w > 1 ? in_c : 1;
    if ((uint64_t)in_h * in_w > 1)
        m->input_rows = (uint32_t)in_h, m->input_cols = (uint32_t)in_w;
    m->nparams = n;
    m->sizes[0] = in_c * in_h * in_w;
    m->params = calloc(n, sizeof(float));
    m->grads = calloc(n, sizeof(float));
    if (!m->params || !m->grads)
        goto nomem;
    size_t off = 0;
    for (int i = 0; i < nlist; i++) {
        const bp_layer *ly = &list[i];
        int l = ly->param;
        if (l < 0)
            continue;
        if (l > 0)
            m->sizes[l] = (int)layer_in_size(ly);
        m->sizes[l + 1] = (int)layer_out_size(ly);
        m->W[l] = m->params + off;
        m->dW[l] = m->grads + off;
        off += layer_weights(ly);
        m->b[l] = m->params + off;
        m->db[l] = m->grads + off;
        off += (size_t)ly->units;
    }
    *out = m;
    return BP_OK;
nomem:
    bp_model_free(m);
    return bp_fail(err, BP_ERR_NOMEM, "out of memory allocating a model of %zu parameters", n);
}

int bp_model_create(bp_model **out, const int *sizes, int nlayers, bp_act act, bp_error *err)
{
    *out = NULL;
    if (nlayers < 1 || nlayers > BP_MAX_LAYERS)
        return bp_fail(err, BP_ERR_ARG, "a model has 1 to %d linear layers, not %d",
                       BP_MAX_LAYERS, nlayers);
    if (act != BP_ACT_RELU && act != BP_ACT_TANH && act != BP_ACT_SIGMOID)
        return bp_fail(err, BP_ERR_ARG, "unknown activation %d", (int)act);
    for (int l = 0; l <= nlayers; l++)
        if (sizes[l] < 1 || sizes[l] > BP_MAX_WIDTH)
            return bp_fail(err, BP_ERR_ARG, "sizes[%d] (%s) is %d; a width must be 1 to %d", l,
                           l == 0 ? "the input" : l == nlayers ? "the classes" : "a hidden layer",
                           sizes[l], BP_MAX_WIDTH);
    bp_layer list[2 * BP_MAX_LAYERS];
    int n = 0;
    for (int l = 0; l < nlayers; l++) {
        memset(&list[n], 0, sizeof list[n]);
        list[n].kind = BP_LAYER_LINEAR, list[n++].units = sizes[l + 1];
        if (l < nlayers - 1) {
            memset(&list[n], 0, sizeof list[n]);
            list[n].kind = BP_LAYER_ACT, list[n++].act = act;
        }
    }
    int st = bp_model_create_layers(out, sizes[0], 1, 1, list, n, err);
    if (!st)
        (*out)->act = act; /* also for a softmax regression, which has no act layer */
    return st;
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
    for (int i = 0; i < m->nlist; i++) {
        const bp_layer *ly = &m->list[i];
        int l = ly->param;
        if (l < 0)
            continue;
        /* fan-in and fan-out: a conv2d's weight connects C_in·kh·kw inputs to C_out·kh·kw
         * outputs of each kernel placement, a linear layer's I to O */
        int taps = ly->kind == BP_LAYER_CONV2D ? ly->kh * ly->kw : 1;
        int I = ly->kind == BP_LAYER_CONV2D ? ly->in_c * taps : (int)layer_in_size(ly);
        int O = ly->units * taps;
        size_t wn = layer_weights(ly);
        float *W = m->W[l];
        /* Layer l feeds the activation after it (the last one feeds softmax); pools, flatten
         * and dropout in between do not change which. He keeps the variance of ReLU outputs
         * constant (Var W = 2/I); Glorot balances forward and backward variance for
         * tanh/sigmoid and for the softmax layer (Var W = 2/(I+O)). */
        int relu_next = 0;
        for (int j = i + 1; j < m->nlist; j++) {
            bp_layer_kind k = m->list[j].kind;
            if (k == BP_LAYER_ACT) {
                relu_next = m->list[j].act == BP_ACT_RELU;
                break;
            }
            if (k == BP_LAYER_LINEAR || k == BP_LAYER_CONV2D)
                break;
        }
        double var = init == BP_INIT_AUTO && relu_next ? 2.0 / I : 2.0 / (I + O);
        if (init == BP_INIT_TORCH) {
            /* kaiming_uniform(a = √5) for W, and the same bound for b: 1/√fan_in */
            double a = 1.0 / sqrt((double)I);
            for (size_t k = 0; k < wn; k++)
                W[k] = (float)((2.0 * bp_rng_uniform(rng) - 1.0) * a);
            for (int o = 0; o < ly->units; o++)
                m->b[l][o] = (float)((2.0 * bp_rng_uniform(rng) - 1.0) * a);
        } else if (init == BP_INIT_UNIFORM) {
            double a = sqrt(3.0 * var); /* U(−a, a) has variance a²/3 */
            for (size_t k = 0; k < wn; k++)
                W[k] = (float)((2.0 * bp_rng_uniform(rng) - 1.0) * a);
        } else {
            double sd = sqrt(var);
            for (size_t k = 0; k < wn; k++)
                W[k] = (float)(bp_rng_normal(rng) * sd);
        }
    }
    return BP_OK;
}

/* Layer i writes its output over its input: an activation whose input no backward pass
 * needs (the producer, looked through flattens, is not an activation or a dropout, whose
 * backward reads its output or its mask, and is not the caller's X). */
int layer_in_place(const bp_model *m, int i)
{
    if (i == 0)
        return 0;
    if (m->list[i].kind == BP_LAYER_FLATTEN)
        return 1;
    if (m->list[i].kind != BP_LAYER_ACT)
        return 0;
    int j = i - 1;
    while (j >= 0 && m->list[j].kind == BP_LAYER_FLATTEN)
        j--;
    return j >= 0 && m->list[j].kind != BP_LAYER_ACT && m->list[j].kind != BP_LAYER_DROPOUT;
}

int bp_work_create(bp_work **out, const bp_model *m, int max_batch, int threads,
                   bp_error *err)
{
    *out = NULL;
    if (max_batch < 1 || max_batch > BP_MAX_BATCH)
        return bp_fail(err, BP_ERR_ARG, "a work's batch is 1 to %d samples, not %d",
                       BP_MAX_BATCH, max_batch);
    int C = m->sizes[m->nlayers], I0 = m->sizes[0], n = m->nlist;
    size_t Bz = (size_t)max_batch;
    size_t maxw = 0, sum_out = 0, col = 0, npool = 0, floats = 0, ints = 0;
    int rows = rows_model(m), hidden = hidden_model(m);
    for (int i = 0; i < n; i++) {
        const bp_layer *ly = &m->list[i];
        size_t o = layer_out_size(ly);
        maxw = o > maxw ? o : maxw;
        if (i > 0 && layer_in_size(ly) > maxw)
            maxw = layer_in_size(ly);
        sum_out += o;
        if (i < n - 1 && !layer_in_place(m, i))
            floats += Bz * o;
        if (ly->kind == BP_LAYER_DROPOUT)
            floats += Bz * o;
        if (ly->kind == BP_LAYER_LINEAR && i > 0 && rows)
            floats += Bz * layer_in_size(ly);
        if (ly->kind == BP_LAYER_MAXPOOL) {
            ints += Bz * o;
            npool += o;
        }
        if (ly->kind == BP_LAYER_CONV2D) {
            conv_shape s;
            conv_shape_of(&s, ly);
            size_t c = conv_slot_floats(&s);
            col = c > col ? c : col;
            floats += conv_keep_floats(&s, max_batch); /* its columns, for the backward pass */
        }
    }
    size_t nd = 2 * (maxw > (size_t)I0 ? maxw : (size_t)I0);
    col *= (size_t)conv_chunks(max_batch);
    int nthreads = bp_threads_resolve(threads, NULL);
    int nxp = !hidden || Bz * I0 > HIDDEN_PRIVATE_FLOATS ? 0
              : nthreads < HIDDEN_MAX_THREADS               ? nthreads
                                                            : HIDDEN_MAX_THREADS;
    floats += (size_t)nxp * Bz * I0;
    floats += Bz * C * 2 + Bz * maxw * 2 + (size_t)C * C + (size_t)I0 + sum_out + nd + col;
    ints += npool;
    bp_work *w = calloc(1, sizeof *w);
    if (!w)
        goto nomem;
    w->mem = calloc(floats, sizeof(float));
    w->imem = calloc(ints ? ints : 1, sizeof(int32_t));
    w->rloss = rows ? calloc(Bz, sizeof(double)) : NULL;
    w->rhit = rows ? calloc(Bz, 1) : NULL;
    if (!w->mem || !w->imem || (rows && (!w->rloss || !w->rhit)))
        goto nomem;
    w->rows = rows;
    w->max_batch = max_batch;
    w->threads = nthreads;
    w->max_width = (int)maxw;
    w->drop_seed = m->init_seed;
    float *p = w->mem;
    int32_t *q = w->imem;
    w->V = p, p += Bz * C;
    for (int i = 0; i < n; i++) {
        const bp_layer *ly = &m->list[i];
        size_t o = layer_out_size(ly);
        if (i == n - 1)
            w->H[i] = w->V;
        else if (layer_in_place(m, i))
            w->H[i] = w->H[i - 1]; /* never for i = 0: X is the caller's */
        else
            w->H[i] = p, p += Bz * o;
        if (ly->kind == BP_LAYER_DROPOUT) {
            w->mask[i] = p, p += Bz * o;
            w->has_dropout = 1;
        }
        if (ly->kind == BP_LAYER_LINEAR && i > 0 && rows)
            w->GX[i] = p, p += Bz * layer_in_size(ly);
        if (ly->kind == BP_LAYER_MAXPOOL)
            w->arg[i] = q, q += Bz * o;
        if (ly->kind == BP_LAYER_CONV2D) {
            conv_shape s;
            conv_shape_of(&s, ly);
            size_t keep = conv_keep_floats(&s, max_batch);
            if (keep)
                w->ccol[i] = p, p += keep;
        }
    }
    w->Y = p, p += Bz * C;
    for (int t = 0; t < nxp; t++)
        w->XP[t] = p, p += Bz * I0;
    w->hidden = hidden, w->nxp = nxp;
    w->D[0] = p, p += Bz * maxw;
    w->D[1] = p, p += Bz * maxw;
    w->J = p, p += (size_t)C * C;
    w->cslots = p, p += col;
    w->na_floats = (size_t)I0 + sum_out;
    w->na = p, p += w->na_floats;
    w->nd = p;
    w->narg = q;
    *out = w;
    return BP_OK;
nomem:
    bp_work_free(w);
    return bp_fail(err, BP_ERR_NOMEM, "out of memory allocating scratch for batch %d",
                   max_batch);
}

void bp_work_set_seed(bp_work *w, uint64_t seed, long step)
{
    w->drop_seed = seed;
    w->drop_step = step;
}

void bp_work_set_threads(bp_work *w, int threads) { w->threads = bp_threads_resolve(threads, NULL); }
int bp_work_threads(const bp_work *w) { return w->threads; }

void bp_work_free(bp_work *w)
{
    if (!w)
        return;
    free(w->mem);
    free(w->imem);
    free(w->rloss);
    free(w->rhit);
    free(w);
}
