/* Optimizers and learning-rate schedules against the formulas of src/optim.c's header comment,
 * evaluated here in double (the code under test is never used to make its own expectations).
 * With g the gradient, λ the weight decay, η the step's learning rate:
 *   sgd:       p ← p − η(g + λp)
 *   momentum:  v ← μv + (g + λp);  p ← p − ηv
 *   nesterov:  v ← μv + (g + λp);  p ← p − η((g + λp) + μv)
 *   adam(W):   m ← β1·m + (1−β1)g;  s ← β2·s + (1−β2)g²;  t ← t+1
 *              p ← p − η( m/(1−β1ᵗ) / (√(s/(1−β2ᵗ)) + ε) + λp )
 *   schedules: constant η; step η·γ^⌊epoch/step_epochs⌋;
 *              cosine η_min + (η − η_min)(1 + cos(π·t/(T−1)))/2 for steps t = 0 … T−1, so the
 *              first step uses η and the last exactly η_min (include/backprop.h: min_lr is
 *              "the rate it decays to at the last step").
 * Three steps with different gradients and learning rates on a 4-vector, each optimizer with
 * and without weight decay. Tolerance 1e-6 absolute on parameters of order 1: the float code
 * rounds a few times per step (~1e-7 each); any formula slip (λ on the wrong term, no bias
 * correction, the velocity used before its update) changes a parameter by ≥ 1e-3 here. */
#include "check.h"
#include "backprop.h"

#include <math.h>

#define NP 4
#define STEPS 3
#define OPT_TOL 1e-6

static const float p0[NP] = {0.5f, -1.25f, 2.0f, 0.0f};
static const float grads[STEPS][NP] = {
    {0.1f, -0.2f, 0.3f, 0.0f},
    {-0.05f, 0.4f, 0.1f, 1e-3f},
    {0.2f, 0.2f, -0.3f, -2.0f},
};
static const float lrs[STEPS] = {0.1f, 0.05f, 0.2f};

static const char *const kind_names[] = {"sgd", "momentum", "nesterov", "adam"};

/* The reference, in double, from the formulas above. */
static void reference(const bp_opt_config *c, double p[STEPS + 1][NP])
{
    double v[NP] = {0}, m[NP] = {0}, s[NP] = {0};
    const double mu = c->momentum, wd = c->weight_decay, b1 = c->beta1, b2 = c->beta2,
                 eps = c->eps;
    for (int i = 0; i < NP; i++)
        p[0][i] = p0[i];
    for (int t = 1; t <= STEPS; t++) {
        const double eta = lrs[t - 1];
        for (int i = 0; i < NP; i++) {
            double g = grads[t - 1][i], x = p[t - 1][i], gd = g + wd * x;
            switch (c->kind) {
            case BP_OPT_SGD: x -= eta * gd; break;
            case BP_OPT_MOMENTUM:
                v[i] = mu * v[i] + gd;
                x -= eta * v[i];
                break;
            case BP_OPT_NESTEROV:
                v[i] = mu * v[i] + gd;
                x -= eta * (gd + mu * v[i]);
                break;
            case BP_OPT_ADAM: {
                m[i] = b1 * m[i] + (1 - b1) * g;
                s[i] = b2 * s[i] + (1 - b2) * g * g;
                double mhat = m[i] / (1 - pow(b1, t)), shat = s[i] / (1 - pow(b2, t));
                x -= eta * (mhat / (sqrt(shat) + eps) + wd * x);
                break;
            }
            }
            p[t][i] = x;
        }
    }
}

static void check_optimizer(bp_opt_kind kind, float wd)
{
    bp_opt_config c;
    bp_opt_config_default(&c);
    c.kind = kind;
    c.weight_decay = wd;
    c.momentum = 0.9f;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    double ref[STEPS + 1][NP];
    reference(&c, ref);

    bp_opt *o = NULL;
    bp_error err = {0};
    if (!CHECKF(bp_opt_create(&o, &c, NP, &err) == BP_OK, "%s", err.msg))
        return;
    float p[NP];
    for (int i = 0; i < NP; i++)
        p[i] = p0[i];
    double worst = 0.0, moved = 0.0;
    for (int t = 1; t <= STEPS; t++) {
        bp_opt_step(o, p, grads[t - 1], lrs[t - 1]);
        for (int i = 0; i < NP; i++) {
            double d = fabs(p[i] - ref[t][i]);
            worst = fmax(worst, isnan(d) ? INFINITY : d);
            moved = fmax(moved, fabs(ref[t][i] - p0[i]));
        }
    }
    char label[96];
    snprintf(label, sizeof label, "%s wd=%g: 3 steps vs double formula", kind_names[kind], wd);
    CHECK_MAXDIFF(label, worst, OPT_TOL);
    /* the reference itself must move the parameters, or agreement would be vacuous */
    CHECK(moved > 1e-2);
    bp_opt_free(o);
}

/* Weight decay is applied as the formulas say and not ignored: with g = 0 every optimizer of
 * the SGD family moves p by −ηλp on its first step, and Adam (decoupled) by −ηλp as well. */
static void decay_alone(void)
{
    for (int k = 0; k < 4; k++) {
        bp_opt_config c;
        bp_opt_config_default(&c);
        c.kind = (bp_opt_kind)k;
        c.weight_decay = 0.5f;
        bp_opt *o = NULL;
        bp_error err = {0};
        if (!CHECKF(bp_opt_create(&o, &c, 1, &err) == BP_OK, "%s", err.msg))
            continue;
        float p = 2.0f;
        const float g = 0.0f;
        bp_opt_step(o, &p, &g, 0.1f);
        /* sgd, momentum, adam: 2 − 0.1·0.5·2 = 1.9; nesterov also adds μ·v = 0.9·1: 1.81 */
        double want = k == BP_OPT_NESTEROV ? 2.0 - 0.1 * (1.0 + 0.9 * 1.0) : 1.9;
        CHECKF(fabs(p - want) <= OPT_TOL, "%s: decay-only step gives %.9g, expected %.9g",
               kind_names[k], p, want);
        bp_opt_free(o);
    }
}

static void schedules(void)
{
    bp_opt_config c;
    bp_opt_config_default(&c);
    c.lr = 0.4f;
    double worst = 0.0;
#define LR_CASE(epoch, step, total, want)                                                          \
    do {                                                                                       \
        double got_ = bp_opt_lr(&c, (epoch), (step), (total)), want_ = (want);                 \
        double d_ = fabs(got_ - want_) / fmax(fabs(want_), 1e-3);                      \
        worst = fmax(worst, isnan(d_) ? INFINITY : d_);                                        \
        CHECKF(d_ <= 1e-6, "lr(epoch %d, step %ld of %ld) = %.9g, expected %.9g", (epoch),     \
               (long)(step), (long)(total), got_, want_);                                      \
    } while (0)

    const double lr = c.lr; /* the float value, in double */
    c.sched = BP_SCHED_CONSTANT;
    LR_CASE(0, 0, 100, lr);
    LR_CASE(7, 99, 100, lr);

    c.sched = BP_SCHED_STEP;
    c.gamma = 0.5f;
    c.step_epochs = 2;
    LR_CASE(0, 0, 100, lr);
    LR_CASE(1, 50, 100, lr);
    LR_CASE(2, 0, 100, lr * 0.5);
    LR_CASE(3, 0, 100, lr * 0.5);
    LR_CASE(4, 0, 100, lr * 0.25);
    LR_CASE(9, 0, 100, lr * pow(0.5, 4));
    c.step_epochs = 0; /* treated as 1 */
    LR_CASE(3, 0, 100, lr * 0.125);

    c.sched = BP_SCHED_COSINE;
    c.min_lr = 0.04f;
    const double lo = c.min_lr, pi = acos(-1.0);
    /* T = 101 steps, t = 0 … 100 */
    LR_CASE(0, 0, 101, lr);                                      /* first step: η */
    LR_CASE(0, 50, 101, (lr + lo) / 2);                          /* midpoint: the mean */
    LR_CASE(0, 25, 101, lo + (lr - lo) * (1 + cos(pi / 4)) / 2); /* a quarter of the way */
    LR_CASE(0, 99, 101, lo + (lr - lo) * (1 + cos(pi * 0.99)) / 2);
    LR_CASE(3, 100, 101, lo);                                    /* last step: η_min */
    LR_CASE(0, 0, 1, lr);                                        /* a single step: η */
    LR_CASE(0, 0, 0, lr);                                        /* no steps: η */
    c.min_lr = 0.0f;
    LR_CASE(0, 50, 101, lr / 2);
    LR_CASE(0, 100, 101, 0.0); /* last step: 0 (relative error floored at 1e-3) */
    CHECK_MAXDIFF("schedules: max rel err vs formula", worst, 1e-6);

    /* cosine never increases along a run */
    c.min_lr = 0.04f;
    int mono = 1;
    for (long s = 1; s < 1000; s++)
        mono &= bp_opt_lr(&c, 0, s, 1000) <= bp_opt_lr(&c, 0, s - 1, 1000);
    CHECK(mono);
#undef LR_CASE
}

int main(void)
{
    printf("optimizers: %d steps against double formulas\n", STEPS);
    for (int k = 0; k < 4; k++) {
        check_optimizer((bp_opt_kind)k, 0.0f);
        check_optimizer((bp_opt_kind)k, 0.1f);
    }
    decay_alone();
    schedules();
    return check_exit("test_optim");
}
