/* Epochs of mini-batch training with evaluation after each; reports through callbacks and never
 * prints. Everything a step needs is allocated before the first epoch: the work (the passes'
 * scratch), the trainer's own batch buffers and the shuffling permutation. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    c->stop_after = 0;
    c->save_path = c->checkpoint_path = c->log_path = NULL;
    c->checkpoint_every = 0;
    c->resume = NULL;
    c->interrupt = NULL;
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
    if (c->stop_after < 0 || c->stop_after > BP_MAX_EPOCHS)
        return bp_fail_field(err, "stop_after", "%d must be from 0 (run every epoch) to %d",
                             c->stop_after, BP_MAX_EPOCHS);
    if (c->checkpoint_every < 0 || c->checkpoint_every > BP_MAX_EPOCHS)
        return bp_fail_field(err, "checkpoint_every", "%d must be from 0 to %d",
                             c->checkpoint_every, BP_MAX_EPOCHS);
    if (c->checkpoint_every && !c->checkpoint_path)
        return bp_fail_field(err, "checkpoint_every", "%d needs a checkpoint_path",
                             c->checkpoint_every);
    return bp_opt_config_check(&c->opt, err);
}

/* A resumed run must be the run the checkpoint stopped: same batches, same stream, same
 * optimizer. Only the total epochs (and threads, impl, files) may differ. */
static int same_run(const bp_train_config *c, const bp_train_config *k, bp_error *err)
{
    const bp_opt_config *o = &c->opt, *ko = &k->opt;
#define SAME(field, a, b, fmt)                                                                   \
    if ((a) != (b))                                                                              \
        return bp_fail_field(err, field, fmt " differs from the checkpoint's " fmt               \
                             " (resuming continues the run as it was saved)", a, b);
    SAME("batch", c->batch, k->batch, "%d");
    SAME("seed", (unsigned long long)c->seed, (unsigned long long)k->seed, "%llu");
    SAME("shuffle", c->shuffle, k->shuffle, "%d");
    SAME("opt.kind", (int)o->kind, (int)ko->kind, "%d");
    SAME("opt.sched", (int)o->sched, (int)ko->sched, "%d");
    SAME("opt.lr", (double)bp_opt_base_lr(o), (double)bp_opt_base_lr(ko), "%g");
    SAME("opt.momentum", (double)o->momentum, (double)ko->momentum, "%g");
    SAME("opt.weight_decay", (double)o->weight_decay, (double)ko->weight_decay, "%g");
    SAME("opt.beta1", (double)o->beta1, (double)ko->beta1, "%g");
    SAME("opt.beta2", (double)o->beta2, (double)ko->beta2, "%g");
    SAME("opt.eps", (double)o->eps, (double)ko->eps, "%g");
    SAME("opt.step_epochs", o->step_epochs, ko->step_epochs, "%d");
    SAME("opt.gamma", (double)o->gamma, (double)ko->gamma, "%g");
    SAME("opt.min_lr", (double)o->min_lr, (double)ko->min_lr, "%g");
#undef SAME
    return BP_OK;
}

/* Where the trainer is between two epochs: what a checkpoint saves and restores. */
typedef struct {
    int epoch;      /* epochs done */
    long step;
    double best;
    bp_rng rng;
    uint32_t *perm; /* NULL without shuffling */
    uint32_t n;
    uint32_t pos;   /* samples of the current epoch already trained (an interrupted epoch) */
    double loss;    /* and their summed loss and correct count, for the epoch's stats */
    long hits;
} run_state;

static int resume(const bp_checkpoint *ck, const bp_model *m, const bp_dataset *train,
                  const bp_train_config *cfg, bp_opt *opt, run_state *rs, bp_error *err)
{
    int st = same_run(cfg, &ck->info.train, err);
    if (st)
        return st;
    if (ck->nparams != m->nparams)
        return bp_fail(err, BP_ERR_ARG, "the checkpoint is for a model of %zu parameters, "
                       "this one has %zu", ck->nparams, m->nparams);
    if (ck->info.epoch >= cfg->epochs)
        return bp_fail_field(err, "epochs", "%d: the checkpoint has already trained %d epochs "
                             "(ask for more to continue)", cfg->epochs, ck->info.epoch);
    if (ck->samples != rs->n)
        return bp_fail(err, BP_ERR_ARG, "the checkpoint was trained on %u samples, this "
                       "training set has %u: resume on the data it was trained on", ck->samples,
                       rs->n);
    if (rs->perm && (!ck->perm || ck->nperm != rs->n))
        return bp_fail(err, BP_ERR_ARG, "the checkpoint's shuffle covers %u samples, the "
                       "training set has %u: resume on the data it was trained on",
                       ck->perm ? ck->nperm : 0, rs->n);
    if ((opt->m && !ck->opt_m) || (opt->s && !ck->opt_s))
        return bp_fail(err, BP_ERR_ARG, "the checkpoint lacks the %s optimizer's state",
                       bp_opt_name(cfg->opt.kind));
    if (opt->m)
        memcpy(opt->m, ck->opt_m, m->nparams * sizeof *opt->m);
    if (opt->s)
        memcpy(opt->s, ck->opt_s, m->nparams * sizeof *opt->s);
    opt->t = ck->opt_t;
    if (rs->perm)
        memcpy(rs->perm, ck->perm, (size_t)rs->n * sizeof *rs->perm);
    rs->rng = ck->rng;
    rs->epoch = ck->info.epoch;
    rs->step = ck->info.step;
    rs->best = ck->info.best_test_acc;
    if (ck->epoch_pos > train->n)
        return bp_fail(err, BP_ERR_ARG, "the checkpoint stopped at sample %u of an epoch, the "
                       "training set has %u", ck->epoch_pos, train->n);
    rs->pos = ck->epoch_pos;
    rs->loss = ck->epoch_loss;
    rs->hits = ck->epoch_hits;
    return BP_OK;
}

static bp_model_info run_info(const bp_train_config *cfg, const run_state *rs)
{
    bp_model_info info;
    memset(&info, 0, sizeof info);
    info.format_version = BP_MODEL_FORMAT_VERSION;
    info.epoch = rs->epoch;
    info.step = rs->step;
    info.best_test_acc = rs->best;
    info.has_train = 1;
    info.train = *cfg;
    info.train.save_path = info.train.checkpoint_path = info.train.log_path = NULL;
    info.train.checkpoint_every = 0;
    info.train.resume = NULL;
    info.train.interrupt = NULL;
    info.train.on_epoch = NULL;
    info.train.on_progress = NULL;
    info.train.user = NULL;
    return info;
}

static int write_checkpoint(const char *path, const bp_model *m, const bp_train_config *cfg,
                            const bp_opt *opt, const run_state *rs, bp_error *err)
{
    bp_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    ck.info = run_info(cfg, rs);
    ck.info.is_checkpoint = 1;
    ck.rng = rs->rng;
    ck.opt_t = opt->t;
    ck.nparams = m->nparams;
    ck.opt_m = opt->m;
    ck.opt_s = opt->s;
    ck.perm = rs->perm;
    ck.nperm = rs->perm ? rs->n : 0;
    ck.samples = rs->n;
    ck.epoch_pos = rs->pos;
    ck.epoch_loss = rs->loss;
    ck.epoch_hits = rs->hits;
    return modelfile_write(path, m, &ck.info, &ck, err);
}

/* BP_ERR_NUMERIC unless mean is a finite loss within limit. batch 0: the test set's. */
static int check_loss(double mean, double limit, const char *which, int epoch, long batch,
                      bp_error *err)
{
    if (isfinite(mean) && mean <= limit)
        return BP_OK;
    char where[64] = "";
    if (batch)
        snprintf(where, sizeof where, ", batch %ld", batch);
    char what[64];
    if (isfinite(mean))
        snprintf(what, sizeof what, "%.4g, above %g (%g times its start log C)", mean, limit,
                 BP_DIVERGE_FACTOR);
    else
        snprintf(what, sizeof what, "%s", isnan(mean) ? "NaN" : "infinite");
    return bp_fail(err, BP_ERR_NUMERIC,
                   "training diverged: the %s loss became %s at epoch %d%s (try a smaller "
                   "learning rate); nothing was saved from this point", which, what, epoch,
                   where);
}

static int check_params(const bp_model *m, int epoch, bp_error *err)
{
    for (size_t i = 0; i < m->nparams; i++)
        if (!isfinite(m->params[i]))
            return bp_fail(err, BP_ERR_NUMERIC,
                           "training diverged: parameter %zu became %s after epoch %d's last "
                           "update (try a smaller learning rate); nothing was saved from this "
                           "point", i, isnan(m->params[i]) ? "NaN" : "infinite", epoch);
    return BP_OK;
}

/* An interrupted run: what was asked for is written, then BP_ERR_INTERRUPTED. The parameters
 * are checked first: a diverged model never replaces a good file. */
static int save_interrupted(const bp_model *m, const bp_train_config *cfg, const bp_opt *opt,
                            const run_state *rs, int epoch, bp_error *err)
{
    int st = check_params(m, epoch, err);
    if (!st && cfg->checkpoint_path)
        st = write_checkpoint(cfg->checkpoint_path, m, cfg, opt, rs, err);
    if (!st && cfg->save_path) {
        bp_model_info info = run_info(cfg, rs);
        st = bp_model_save(cfg->save_path, m, &info, err);
    }
    if (st)
        return st;
    return bp_fail(err, BP_ERR_INTERRUPTED, "interrupted during epoch %d after %u of %u "
                   "samples%s%s%s%s", epoch, rs->pos, rs->n,
                   cfg->checkpoint_path ? "; checkpoint " : "",
                   cfg->checkpoint_path ? cfg->checkpoint_path : "",
                   cfg->save_path ? "; model " : "", cfg->save_path ? cfg->save_path : "");
}

#define LOG_HEADER "epoch,step,train_loss,train_acc,test_loss,test_acc,lr,seconds,samples_per_s\n"

/* Resuming: the log keeps its header and its rows up to the checkpoint's epoch, and loses any
 * row a run wrote after that checkpoint before it died (those epochs are trained again). The
 * kept part is rewritten through bp_file, so a failure leaves the log as it was. */
static int trim_log(const char *path, int epochs_done, bp_error *err)
{
    FILE *in = fopen(path, "r");
    if (!in)
        return bp_fail(err, BP_ERR_IO, "%s: cannot read the log: %s", path, strerror(errno));
    bp_file *f = NULL;
    int st = bp_file_create(&f, path, err);
    char line[1024];
    for (int row = 0; !st && fgets(line, sizeof line, in); row++) {
        char *end;
        long epoch = strtol(line, &end, 10);
        if (row == 0 || (end != line && *end == ',' && epoch <= epochs_done))
            fputs(line, bp_file_stream(f));
    }
    fclose(in);
    return st ? st : bp_file_commit(f, err);
}

/* The CSV log: a new file with its header, or, resuming, the existing one appended to. */
static FILE *open_log(const char *path, int resuming, int epochs_done, bp_error *err)
{
    int append = resuming && access(path, F_OK) == 0;
    if (append && trim_log(path, epochs_done, err))
        return NULL;
    FILE *f = fopen(path, append ? "a" : "w");
    if (!f) {
        bp_fail(err, BP_ERR_IO, "%s: cannot write the log: %s", path, strerror(errno));
        return NULL;
    }
    if (!append && fputs(LOG_HEADER, f) < 0) {
        bp_fail(err, BP_ERR_IO, "%s: cannot write the log: %s", path, strerror(errno));
        fclose(f);
        return NULL;
    }
    return f;
}

static int log_epoch(FILE *f, const char *path, const bp_epoch_stats *s, bp_error *err)
{
    fprintf(f, "%d,%ld,%.9g,%.9g,%.9g,%.9g,%.9g,%.6f,%.1f\n", s->epoch, s->step, s->train_loss,
            s->train_acc, s->test_loss, s->test_acc, (double)s->lr, s->seconds,
            s->samples_per_s);
    if (fflush(f) != 0 || ferror(f))
        return bp_fail(err, BP_ERR_IO, "%s: writing the log failed: %s", path, strerror(errno));
    return BP_OK;
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
    for (uint32_t i = 0; i < train->n; i++) /* the steps take the labels as checked */
        if (train->labels[i] >= C)
            return bp_fail(err, BP_ERR_ARG, "label %u of training sample %u is not below the "
                           "model's %u outputs", train->labels[i], i, C);
    if (test && C > BP_CLASSES) /* found now, not after an epoch's work */
        return bp_fail(err, BP_ERR_ARG, "the model has %u outputs; the per-epoch evaluation "
                       "counts at most %d classes", C, BP_CLASSES);

    bp_work *w = NULL;
    bp_opt *opt = NULL;
    float *X = NULL;
    uint8_t *labels = NULL;
    FILE *csv = NULL;
    run_state rs = {0, 0, NAN, {{0}}, NULL, train->n, 0, 0.0, 0};
    int B = (uint32_t)cfg->batch < train->n ? cfg->batch : (int)train->n;
    if ((st = bp_work_create(&w, m, B, cfg->threads, err)) ||
        (st = bp_opt_create(&opt, &cfg->opt, m->nparams, err)))
        goto done;
    /* A model with few multiply-adds per input value (784→10: 10) trains on one thread
     * whatever the count allowed: its products are too thin to share, and a second thread
     * only adds hand-offs and traffic between the cores' caches. Measured on a 2-core Zen 4
     * KVM guest, 784→10 at batch 128, 10 epochs: 0.29–0.30 s on one thread; 0.34–0.84 s
     * with a second thread gathering the next batch beside the step, 0.46 s with each product
     * split. The numbers computed are the same either way. */
    double macs = 0.0;
    for (int l = 0; l < m->nlayers; l++)
        macs += (double)m->sizes[l] * m->sizes[l + 1];
    if (macs <= 16.0 * train->dim)
        bp_work_set_threads(w, 1);
    X = malloc((size_t)B * train->dim * sizeof *X);
    labels = malloc((size_t)B);
    if (!X || !labels) {
        st = bp_fail(err, BP_ERR_NOMEM, "out of memory for the training batch");
        goto done;
    }
    if (cfg->shuffle)
        rs.perm = malloc((size_t)train->n * sizeof *rs.perm);
    if (cfg->shuffle && !rs.perm) {
        st = bp_fail(err, BP_ERR_NOMEM, "out of memory for the training batch");
        goto done;
    }
    for (uint32_t i = 0; rs.perm && i < train->n; i++)
        rs.perm[i] = i;
    bp_rng_seed(&rs.rng, cfg->seed);
    if (cfg->resume && (st = resume(cfg->resume, m, train, cfg, opt, &rs, err)))
        goto done;
    /* dropout masks from the run's seed and step: a resumed run draws the ones it would have */
    bp_work_set_seed(w, cfg->seed, rs.step);
    if (cfg->log_path && !(csv = open_log(cfg->log_path, cfg->resume != NULL, rs.epoch, err))) {
        st = BP_ERR_IO;
        goto done;
    }

    long steps_per_epoch = ((long)train->n + B - 1) / B;
    long total_steps = steps_per_epoch * cfg->epochs;
    double loss_limit = BP_DIVERGE_FACTOR * log(C > 2 ? (double)C : 2.0);
    int end = cfg->stop_after && rs.epoch + cfg->stop_after < cfg->epochs
                  ? rs.epoch + cfg->stop_after
                  : cfg->epochs;
    for (int e = rs.epoch; e < end; e++) {
        bp_epoch_stats s = {.epoch = e + 1, .epochs = cfg->epochs, .test_acc = NAN,
                            .test_loss = NAN};
        double t0 = bp_now(), loss = rs.loss;
        long hits = rs.hits;
        uint32_t timed = train->n - rs.pos; /* samples this call trains in the epoch */
        s.lr = bp_opt_lr(&cfg->opt, e, rs.step > 0 ? rs.step - 1 : 0, total_steps);
        if (rs.perm && rs.pos == 0) /* an interrupted epoch goes on in its own order */
            bp_shuffle(rs.perm, train->n, &rs.rng);
        /* The last batch may be partial: it is trained on, not dropped. */
        for (uint32_t first = rs.pos; first < train->n; first += (uint32_t)B, rs.step++) {
            int b = train->n - first < (uint32_t)B ? (int)(train->n - first) : B;
            double ls;
            int c;
            /* The next batch's rows start on their way from memory during this step. */
            uint32_t next = first + (uint32_t)b;
            if (rs.perm && next < train->n)
                dataset_prefetch(train, rs.perm + next,
                                 train->n - next < (uint32_t)B ? (int)(train->n - next) : B);
            batch_src src = {train, rs.perm ? rs.perm + first : NULL, first, X, labels};
            if ((st = grad_forward(m, w, cfg->impl, X, labels, b, &ls, &c, NULL, &src, err)))
                goto done;
            /* Log-sum-exp keeps the loss finite long after the weights have blown up, so a
             * mean loss far above the start (log C) counts as divergence too. */
            if ((st = check_loss(ls / b, loss_limit, "training", e + 1,
                                 rs.step - e * steps_per_epoch + 1, err)))
                goto done;
            /* The backward pass updates each layer as soon as its gradient is known. */
            s.lr = bp_opt_lr(&cfg->opt, e, rs.step, total_steps);
            opt_fuse f;
            opt_begin(opt, m->params, m->grads, s.lr, &f);
            grad_backward(m, w, cfg->impl, X, labels, b, NULL, &f);
            loss += ls;
            hits += c;
            if (cfg->on_progress)
                cfg->on_progress(e + 1, first + (uint32_t)b, train->n, cfg->user);
            if (cfg->interrupt && *cfg->interrupt) {
                rs.pos = first + (uint32_t)b, rs.loss = loss, rs.hits = hits;
                rs.step++; /* the step just taken counts */
                st = save_interrupted(m, cfg, opt, &rs, e + 1, err);
                goto done;
            }
        }
        rs.pos = 0, rs.loss = 0.0, rs.hits = 0;
        /* The epoch's last update is checked too: no later loss would see it. */
        if ((st = check_params(m, e + 1, err)))
            goto done;
        rs.epoch = e + 1;
        s.step = rs.step;
        s.seconds = bp_now() - t0;
        s.samples_per_s = s.seconds > 0 ? timed / s.seconds : 0.0;
        s.train_loss = loss / train->n;
        s.train_acc = (double)hits / train->n;
        if (test) {
            bp_eval_result r;
            if ((st = bp_evaluate(m, test, cfg->eval_batch, w->threads, &r, NULL, err)))
                goto done;
            s.test_loss = r.loss;
            s.test_acc = r.accuracy;
            if ((st = check_loss(r.loss, loss_limit, "test", e + 1, 0, err)))
                goto done;
            if (!(s.test_acc <= rs.best))
                rs.best = s.test_acc;
        }
        if (csv && (st = log_epoch(csv, cfg->log_path, &s, err)))
            goto done;
        int every = cfg->checkpoint_every;
        if (cfg->checkpoint_path && ((every && rs.epoch % every == 0) || rs.epoch == end) &&
            (st = write_checkpoint(cfg->checkpoint_path, m, cfg, opt, &rs, err)))
            goto done;
        if (cfg->on_epoch)
            cfg->on_epoch(&s, cfg->user);
        if (last)
            *last = s;
    }
    if (cfg->save_path) {
        bp_model_info info = run_info(cfg, &rs);
        if ((st = bp_model_save(cfg->save_path, m, &info, err)))
            goto done;
    }
done:
    if (best_test_acc && (st == BP_OK || st == BP_ERR_INTERRUPTED))
        *best_test_acc = rs.best;
    if (csv && fclose(csv) != 0 && !st)
        st = bp_fail(err, BP_ERR_IO, "%s: closing the log failed: %s", cfg->log_path,
                     strerror(errno));
    free(rs.perm);
    free(X);
    free(labels);
    bp_opt_free(opt);
    bp_work_free(w);
    return st;
}
