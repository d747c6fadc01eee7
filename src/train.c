/* Epochs of mini-batch training with evaluation after each; reports through callbacks and never
 * prints. Everything a step needs is allocated before the first epoch: the work (the passes'
 * scratch), the trainer's own batch buffers and the shuffling permutation. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

#define BP_LOSS_DIVERGED 1e6

void bp_train_config_default(bp_train_config *c)
{
    c->epochs = 10;
    c->batch = 100;
    c->seed = 1;
    c->shuffle = 1;
    c->impl = BP_IMPL_BLAS;
    c->threads = 0;
    c->eval_batch = 0;
    bp_opt_config_default(&c->opt);
    c->on_epoch = NULL;
    c->on_progress = NULL;
    c->user = NULL;
}

int bp_train_config_check(const bp_train_config *c, bp_error *err)
{
    if (c->epochs < 1 || c->epochs > BP_MAX_EPOCHS)
        return bp_fail_field(err, "epochs", "%d must be from 1 to %d", c->epochs, BP_MAX_EPOCHS);
    if (c->batch < 1 || c->batch > BP_MAX_BATCH)
        return bp_fail_field(err, "batch", "%d must be from 1 to %d", c->batch, BP_MAX_BATCH);
    if (c->shuffle != 0 && c->shuffle != 1)
        return bp_fail_field(err, "shuffle", "%d must be 0 or 1", c->shuffle);
    if (!bp_impl_name(c->impl))
        return bp_fail_field(err, "impl", "unknown implementation %d", (int)c->impl);
    if (c->threads < 0)
        return bp_fail_field(err, "threads", "%d must be 0 (the default) or positive",
                             c->threads);
    if (c->eval_batch < 0 || c->eval_batch > BP_MAX_BATCH)
        return bp_fail_field(err, "eval_batch", "%d must be from 0 (the default) to %d",
                             c->eval_batch, BP_MAX_BATCH);
    return bp_opt_config_check(&c->opt, err);
}

int bp_train(bp_model *m, const bp_dataset *train, const bp_dataset *test,
             const bp_train_config *cfg, bp_epoch_stats *last, double *best_test_acc,
             bp_error *err)
{
    int st = bp_train_config_check(cfg, err);
    if (st)
        return st;
    if (train->dim != (uint32_t)m->sizes[0] || (test && test->dim != (uint32_t)m->sizes[0]))
        return bp_fail(err, BP_ERR_ARG, "the data has %u inputs per sample, the model %d",
                       train->dim != (uint32_t)m->sizes[0] ? train->dim : test->dim,
                       m->sizes[0]);
    if (train->n == 0)
        return bp_fail(err, BP_ERR_ARG, "the training set is empty");
    uint32_t C = (uint32_t)m->sizes[m->nlayers];
    if (train->classes > C || (test && test->classes > C))
        return bp_fail(err, BP_ERR_ARG, "the data has %u classes, the model %u outputs",
                       test && test->classes > train->classes ? test->classes : train->classes,
                       C);

    bp_work *w = NULL;
    bp_opt *opt = NULL;
    uint32_t *perm = NULL;
    float *X = NULL;
    uint8_t *labels = NULL;
    int B = (uint32_t)cfg->batch < train->n ? cfg->batch : (int)train->n;
    if ((st = bp_work_create(&w, m, B, cfg->threads, err)) ||
        (st = bp_opt_create(&opt, &cfg->opt, m->nparams, err)))
        goto done;
    X = malloc((size_t)B * train->dim * sizeof *X);
    labels = malloc((size_t)B);
    if (cfg->shuffle)
        perm = malloc((size_t)train->n * sizeof *perm);
    if (!X || !labels || (cfg->shuffle && !perm)) {
        st = bp_fail(err, BP_ERR_NOMEM, "out of memory for the training batch");
        goto done;
    }
    for (uint32_t i = 0; perm && i < train->n; i++)
        perm[i] = i;
    bp_rng rng;
    bp_rng_seed(&rng, cfg->seed);

    long steps_per_epoch = ((long)train->n + B - 1) / B;
    long total_steps = steps_per_epoch * cfg->epochs, step = 0;
    double best = NAN;
    for (int e = 0; e < cfg->epochs; e++) {
        bp_epoch_stats s = {.epoch = e + 1, .epochs = cfg->epochs, .test_acc = NAN,
                            .test_loss = NAN};
        double t0 = bp_now(), loss = 0.0;
        long hits = 0;
        if (perm)
            bp_shuffle(perm, train->n, &rng);
        /* The last batch may be partial: it is trained on, not dropped. */
        for (uint32_t first = 0; first < train->n; first += (uint32_t)B, step++) {
            int b = train->n - first < (uint32_t)B ? (int)(train->n - first) : B;
            double ls;
            int c;
            bp_dataset_gather(train, perm ? perm + first : NULL, first, b, X, labels);
            if ((st = bp_grad(m, w, cfg->impl, X, labels, b, &ls, &c, NULL, err)))
                goto done;
            /* Log-sum-exp keeps the loss finite long after the weights have blown up, so a
             * mean loss beyond BP_LOSS_DIVERGED counts as divergence too: a model that learns
             * starts near log C and goes down, never to e^-1000000 on the true class. */
            if (!isfinite(ls) || ls > BP_LOSS_DIVERGED * b) {
                st = bp_fail(err, BP_ERR_NUMERIC,
                             "training diverged: the loss became %s at epoch %d, batch %ld "
                             "(try a smaller learning rate)",
                             isnan(ls) ? "NaN" : isinf(ls) ? "infinite" : "larger than 1e6",
                             e + 1, step - e * steps_per_epoch + 1);
                goto done;
            }
            s.lr = bp_opt_lr(&cfg->opt, e, step, total_steps);
            bp_opt_step(opt, m->params, m->grads, s.lr);
            loss += ls;
            hits += c;
            if (cfg->on_progress)
                cfg->on_progress(e + 1, first + (uint32_t)b, train->n, cfg->user);
        }
        s.step = step;
        s.seconds = bp_now() - t0;
        s.samples_per_s = s.seconds > 0 ? train->n / s.seconds : 0.0;
        s.train_loss = loss / train->n;
        s.train_acc = (double)hits / train->n;
        if (test) {
            bp_eval_result r;
            if ((st = bp_evaluate(m, test, cfg->eval_batch, w->threads, &r, NULL, err)))
                goto done;
            s.test_loss = r.loss;
            s.test_acc = r.accuracy;
            if (!(s.test_acc <= best))
                best = s.test_acc;
        }
        if (cfg->on_epoch)
            cfg->on_epoch(&s, cfg->user);
        if (last)
            *last = s;
    }
    if (best_test_acc)
        *best_test_acc = best;
done:
    free(perm);
    free(X);
    free(labels);
    bp_opt_free(opt);
    bp_work_free(w);
    return st;
}
