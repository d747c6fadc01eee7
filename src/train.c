/* Epochs of mini-batch training with evaluation after each; reports through callbacks and never
 * prints. Everything a step needs is allocated before the first epoch. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

#define BP_LOSS_DIVERGED 1e6

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void bp_train_config_default(bp_train_config *c)
{
    c->epochs = 10;
    c->batch = 100;
    c->seed = 1;
    c->shuffle = 1;
    c->impl = BP_IMPL_BLAS;
    bp_opt_config_default(&c->opt);
    c->on_epoch = NULL;
    c->on_progress = NULL;
    c->user = NULL;
}

int bp_train(bp_model *m, const bp_dataset *train, const bp_dataset *test,
             const bp_train_config *cfg, bp_epoch_stats *last, double *best_test_acc,
             bp_error *err)
{
    if (cfg->epochs < 1 || cfg->batch < 1)
        return bp_fail(err, BP_ERR_ARG, "epochs and batch must be at least 1");
    if (train->dim != (uint32_t)m->sizes[0] || (test && test->dim != (uint32_t)m->sizes[0]))
        return bp_fail(err, BP_ERR_ARG, "the data has %u inputs per sample, the model %d",
                       train->dim, m->sizes[0]);
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
    int B = cfg->batch < (int)train->n ? cfg->batch : (int)train->n;
    int st = bp_work_create(&w, m, B, err);
    if (!st)
        st = bp_opt_create(&opt, &cfg->opt, m->nparams, err);
    if (st)
        goto done;
    bp_rng rng;
    bp_rng_seed(&rng, cfg->seed);
    if (cfg->shuffle) {
        perm = malloc((size_t)train->n * sizeof *perm);
        if (!perm) {
            st = bp_fail(err, BP_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (uint32_t i = 0; i < train->n; i++)
            perm[i] = i;
    }

    long steps_per_epoch = ((long)train->n + B - 1) / B;
    long total_steps = steps_per_epoch * cfg->epochs, step = 0;
    double best = NAN;
    for (int e = 0; e < cfg->epochs; e++) {
        bp_epoch_stats s = {.epoch = e + 1, .epochs = cfg->epochs, .test_acc = NAN,
                            .test_loss = NAN};
        double t0 = now(), loss = 0.0;
        long hits = 0;
        if (perm)
            bp_shuffle(perm, train->n, &rng);
        /* The last batch may be partial: it is trained on, not dropped. */
        for (uint32_t first = 0; first < train->n; first += (uint32_t)B, step++) {
            int b = train->n - first < (uint32_t)B ? (int)(train->n - first) : B;
            double ls;
            int c;
            bp_dataset_gather(train, perm ? perm + first : NULL, first, b, w->X, w->labels);
            if ((st = bp_step_grad(m, w, cfg->impl, w->X, w->labels, b, &ls, &c, NULL))) {
                bp_fail(err, st, "training step refused its batch (impl %d, batch %d)",
                        (int)cfg->impl, b);
                goto done;
            }
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
        s.seconds = now() - t0;
        s.samples_per_s = s.seconds > 0 ? train->n / s.seconds : 0.0;
        s.train_loss = loss / train->n;
        s.train_acc = (double)hits / train->n;
        if (test) {
            if ((st = bp_evaluate(m, w, test, &s.test_loss, &s.test_acc))) {
                bp_fail(err, st, "evaluation on the test set failed");
                goto done;
            }
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
    bp_opt_free(opt);
    bp_work_free(w);
    return st;
}
