/* Optimizers as single loops over the flat parameter block; their state (velocity, moments)
 * lives in flat blocks of the same layout. With g the mean gradient and λ the weight decay:
 *   sgd:       p ← p − η(g + λp)
 *   momentum:  v ← μv + (g + λp);  p ← p − ηv
 *   nesterov:  v ← μv + (g + λp);  p ← p − η((g + λp) + μv)     (look-ahead form)
 *   adam(W):   m ← β1·m + (1−β1)g;  s ← β2·s + (1−β2)g²;  t ← t+1
 *              p ← p − η( m/(1−β1ᵗ) / (√(s/(1−β2ᵗ)) + ε) + λp )   (decay decoupled from g)
 * Weight decay applies to every parameter, biases included. */
#include "internal.h"
#include "kernels.h"

#include <math.h>
#include <stdlib.h>

void bp_opt_config_default(bp_opt_config *c)
{
    c->kind = BP_OPT_SGD;
    c->lr = 0.0f; /* the kind's default, bp_opt_default_lr */
    c->momentum = 0.9f;
    c->weight_decay = 0.0f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->sched = BP_SCHED_COSINE;
    c->step_epochs = 1;
    c->gamma = 0.5f;
    c->min_lr = 0.0f;
}

/* SGD's 0.5 was chosen on MNIST softmax regression with the cosine schedule; momentum
 * multiplies the effective step by 1/(1 − μ) = 10, hence a tenth of it; Adam's steps are
 * normalised, so its usual 1e-3 applies. */
float bp_opt_default_lr(bp_opt_kind kind)
{
    switch (kind) {
    case BP_OPT_SGD: return 0.5f;
    case BP_OPT_MOMENTUM:
    case BP_OPT_NESTEROV: return 0.05f;
    case BP_OPT_ADAM: return 0.001f;
    }
    return 0.0f;
}

float bp_opt_base_lr(const bp_opt_config *c)
{
    return c->lr > 0.0f ? c->lr : bp_opt_default_lr(c->kind);
}

/* v in [lo, hi] (NaN fails); open_hi makes hi excluded. */
static int in_range(float v, float lo, float hi, int open_hi)
{
    return v >= lo && (open_hi ? v < hi : v <= hi);
}

int bp_opt_config_check(const bp_opt_config *c, bp_error *err)
{
    if (!bp_opt_name(c->kind))
        return bp_fail_field(err, "opt.kind", "unknown optimizer %d", (int)c->kind);
    if (!bp_sched_name(c->sched))
        return bp_fail_field(err, "opt.sched", "unknown learning-rate schedule %d",
                             (int)c->sched);
    if (!in_range(c->lr, 0.0f, 1e6f, 0))
        return bp_fail_field(err, "opt.lr", "%g must be 0 (the optimizer's default) or "
                             "positive, and at most 1e6", c->lr);
    float lr = bp_opt_base_lr(c);
    if (!in_range(c->momentum, 0.0f, 1.0f, 1))
        return bp_fail_field(err, "opt.momentum", "%g must be at least 0 and below 1",
                             c->momentum);
    if (!in_range(c->weight_decay, 0.0f, 10.0f, 0))
        return bp_fail_field(err, "opt.weight_decay", "%g must be from 0 to 10",
                             c->weight_decay);
    if (!in_range(c->beta1, 0.0f, 1.0f, 1))
        return bp_fail_field(err, "opt.beta1", "%g must be at least 0 and below 1", c->beta1);
    if (!in_range(c->beta2, 0.0f, 1.0f, 1))
        return bp_fail_field(err, "opt.beta2", "%g must be at least 0 and below 1", c->beta2);
    if (!(c->eps > 0.0f && c->eps <= 1.0f))
        return bp_fail_field(err, "opt.eps", "%g must be greater than 0 and at most 1", c->eps);
    if (c->step_epochs < 1 || c->step_epochs > BP_MAX_EPOCHS)
        return bp_fail_field(err, "opt.step_epochs", "%d must be from 1 to %d", c->step_epochs,
                             BP_MAX_EPOCHS);
    if (!(c->gamma > 0.0f && c->gamma <= 1.0f))
        return bp_fail_field(err, "opt.gamma", "%g must be greater than 0 and at most 1",
                             c->gamma);
    if (!in_range(c->min_lr, 0.0f, lr, 0))
        return bp_fail_field(err, "opt.min_lr", "%g must be at least 0 and at most the "
                             "learning rate %g", c->min_lr, lr);
    return BP_OK;
}

int bp_opt_create(bp_opt **out, const bp_opt_config *cfg, size_t nparams, bp_error *err)
{
    *out = NULL;
    int st = bp_opt_config_check(cfg, err);
    if (st)
        return st;
    bp_opt *o = calloc(1, sizeof *o);
    if (!o)
        return bp_fail(err, BP_ERR_NOMEM, "out of memory");
    o->cfg = *cfg;
    o->n = nparams;
    if (cfg->kind != BP_OPT_SGD) {
        o->m = calloc(nparams, sizeof(float));
        if (!o->m)
            goto nomem;
    }
    if (cfg->kind == BP_OPT_ADAM) {
        o->s = calloc(nparams, sizeof(float));
        if (!o->s)
            goto nomem;
    }
    *out = o;
    return BP_OK;
nomem:
    bp_opt_free(o);
    return bp_fail(err, BP_ERR_NOMEM, "out of memory for optimizer state of %zu parameters",
                   nparams);
}

void bp_opt_free(bp_opt *o)
{
    if (!o)
        return;
    free(o->m);
    free(o->s);
    free(o);
}

float bp_opt_lr(const bp_opt_config *c, int epoch, long step, long total_steps)
{
    float lr = bp_opt_base_lr(c);
    switch (c->sched) {
    case BP_SCHED_STEP:
        return lr * powf(c->gamma, (float)(epoch / (c->step_epochs > 0 ? c->step_epochs : 1)));
    case BP_SCHED_COSINE: {
        /* η_t = η_min + (η − η_min)·(1 + cos(π·t/(T−1)))/2, t = 0 … T−1: the first step uses
         * η, the last exactly η_min */
        double frac = total_steps > 1 ? (double)step / (double)(total_steps - 1) : 0.0;
        return (float)(c->min_lr + (lr - c->min_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * frac)));
    }
    case BP_SCHED_CONSTANT: break;
    }
    return lr;
}

void opt_begin(bp_opt *o, float *p, const float *g, float lr, opt_fuse *f)
{
    o->t++;
    f->o = o, f->p = p, f->g = g, f->lr = lr, f->c1 = 1.0f, f->c2 = 1.0f;
    if (o->cfg.kind == BP_OPT_ADAM) {
        f->c1 = (float)(1.0 / (1.0 - pow(o->cfg.beta1, (double)o->t)));
        f->c2 = (float)(1.0 / (1.0 - pow(o->cfg.beta2, (double)o->t)));
    }
}

int opt_fuse_sgd(const opt_fuse *f)
{
    return f->o->cfg.kind == BP_OPT_SGD && f->o->cfg.weight_decay == 0.0f;
}

void opt_apply(const opt_fuse *f, size_t i0, size_t i1)
{
    bp_opt *o = f->o;
    float *p = f->p;
    const float *g = f->g;
    const bp_opt_config *c = &o->cfg;
    const float wd = c->weight_decay, mu = c->momentum, lr = f->lr;
    switch (c->kind) {
    case BP_OPT_SGD:
        for (size_t i = i0; i < i1; i++)
            p[i] -= lr * (g[i] + wd * p[i]);
        break;
    case BP_OPT_MOMENTUM:
        for (size_t i = i0; i < i1; i++) {
            o->m[i] = mu * o->m[i] + (g[i] + wd * p[i]);
            p[i] -= lr * o->m[i];
        }
        break;
    case BP_OPT_NESTEROV:
        for (size_t i = i0; i < i1; i++) {
            float gi = g[i] + wd * p[i];
            o->m[i] = mu * o->m[i] + gi;
            p[i] -= lr * (gi + mu * o->m[i]);
        }
        break;
    case BP_OPT_ADAM: /* m = β1·m + (1−β1)g, s = β2·s + (1−β2)g², p −= η(c1·m / (√(c2·s) + ε) + λp) */
        if (i1 > i0)
            kernels()->adam(p + i0, g + i0, o->m + i0, o->s + i0, i1 - i0, c->beta1, c->beta2,
                            f->c1, f->c2, lr, c->eps, wd);
        break;
    }
}

typedef struct {
    const opt_fuse *f;
    size_t i0, i1;
} update_job;

static void update_task(void *ctx, int chunk, int chunks)
{
    const update_job *j = ctx;
    /* Shares in whole cache lines (16 floats), so no two chunks write the same line. */
    size_t n = j->i1 - j->i0;
    size_t per = (n + (size_t)chunks - 1) / (size_t)chunks;
    per = (per + 15) / 16 * 16;
    size_t i0 = per * (size_t)chunk, i1 = i0 + per;
    if (i0 > n)
        i0 = n;
    if (i1 > n)
        i1 = n;
    opt_apply(j->f, j->i0 + i0, j->i0 + i1);
}

void opt_apply_threads(const opt_fuse *f, size_t i0, size_t i1, int threads)
{
    update_job j = {f, i0, i1};
    /* Each parameter's update is independent: any split gives the same numbers. Below 64 k
     * parameters (784→10 has 7 850) one thread is quicker than a hand-off. */
    int chunks = threads > 1 && i1 - i0 >= ((size_t)1 << 16) ? 2 * threads : 1;
    pool_run(threads, chunks, update_task, &j);
}

void opt_step_threads(bp_opt *o, float *p, const float *g, float lr, int threads)
{
    opt_fuse f;
    opt_begin(o, p, g, lr, &f);
    opt_apply_threads(&f, 0, o->n, threads);
}

void bp_opt_step(bp_opt *o, float *p, const float *g, float lr)
{
    opt_step_threads(o, p, g, lr, 1);
}
