/* Evaluation of a model on a whole data set: mean loss, accuracy and the confusion matrix, in
 * batches of its own size with scratch of its own, so it depends on no training batch. Every
 * sample's forward pass is independent: the batch size changes the numbers at most by float
 * rounding (BP_EVAL_BATCH), and its speed. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define EVAL_WORK_FLOATS ((size_t)1 << 24)

int bp_evaluate(const bp_model *m, const bp_dataset *ds, int batch, int threads,
                bp_eval_result *res, float *probs, bp_error *err)
{
    int C = m->sizes[m->nlayers];
    if (ds->dim != (uint32_t)m->sizes[0])
        return bp_fail(err, BP_ERR_ARG, "the data has %u inputs per sample, the model %d",
                       ds->dim, m->sizes[0]);
    if (C > BP_CLASSES)
        return bp_fail(err, BP_ERR_ARG, "the model has %d outputs; evaluation counts at most %d "
                       "classes", C, BP_CLASSES);
    if (batch < 0 || batch > BP_MAX_BATCH)
        return bp_fail(err, BP_ERR_ARG, "evaluation batch %d is outside 0 to %d", batch,
                       BP_MAX_BATCH);
    if (batch == 0)
        batch = BP_EVAL_BATCH;
    /* Every sample's forward pass is independent, so a smaller batch gives the same results:
     * a conv net's activations at 1000 samples would take hundreds of MB, so the work is held
     * to about 64 MB of activations. */
    size_t per = 0, widest = 0;
    for (int i = 0; i < m->nlist; i++) {
        size_t o = layer_out_size(&m->list[i]);
        per += o;
        widest = o > widest ? o : widest;
    }
    per += 2 * widest;
    if (per && (size_t)batch * per > EVAL_WORK_FLOATS)
        batch = (int)(EVAL_WORK_FLOATS / per) > 0 ? (int)(EVAL_WORK_FLOATS / per) : 1;
    if (ds->n && (uint32_t)batch > ds->n)
        batch = (int)ds->n;
    memset(res, 0, sizeof *res);
    bp_work *w = NULL;
    int st = bp_work_create(&w, m, batch, threads, err);
    if (st)
        return st;
    float *X = malloc((size_t)batch * ds->dim * sizeof *X);
    uint8_t *labels = malloc((size_t)batch);
    if (!X || !labels) {
        st = bp_fail(err, BP_ERR_NOMEM, "out of memory for an evaluation batch of %d", batch);
        goto done;
    }
    double total = 0.0;
    long hits = 0;
    for (uint32_t first = 0; first < ds->n; first += (uint32_t)batch) {
        int B = ds->n - first < (uint32_t)batch ? (int)(ds->n - first) : batch;
        double ls;
        int c;
        bp_dataset_gather(ds, NULL, first, B, X, labels);
        if ((st = bp_forward(m, w, X, labels, B, NULL, &ls, &c, err)))
            goto done;
        for (int r = 0; r < B; r++) {
            /* arg-max of the logits, first of equals: the rule the loss's count uses */
            const float *v = w->V + (size_t)r * C;
            int best = 0;
            for (int k = 1; k < C; k++)
                if (v[k] > v[best])
                    best = k;
            res->confusion[labels[r]][best]++;
        }
        if (probs)
            memcpy(probs + (size_t)first * C, w->Y, (size_t)B * C * sizeof *probs);
        total += ls;
        hits += c;
    }
    res->n = ds->n;
    res->loss = ds->n ? total / ds->n : 0.0;
    res->accuracy = ds->n ? (double)hits / ds->n : 0.0;
done:
    free(X);
    free(labels);
    bp_work_free(w);
    return st;
}
