/* bp_train on small synthetic in-memory datasets:
 *   - a linearly separable 10-class problem reaches 100% training accuracy (blas and naive);
 *   - an XOR problem is learnt perfectly by an MLP, but not by softmax regression;
 *   - the same seed gives bit-identical parameters; with zero initialisation and no shuffling
 *     the three implementations train to the same parameters within float rounding;
 *   - the partial last batch is trained on (progress 4, 8, 10 for n = 10, batch 4, and the
 *     parameters equal a hand-driven replay of the three steps);
 *   - epoch reports, argument errors and divergence. */
#include "check.h"
#include "fixtures.h"

#include <stdlib.h>
#include <string.h>

/* Owns pixels and labels; freed with free_ds. */
static bp_dataset make_ds(uint32_t n, uint32_t rows, uint32_t cols, uint32_t classes)
{
    bp_dataset ds = {n, rows, cols, rows * cols, classes, NULL, NULL};
    ds.pixels = calloc((size_t)n * ds.dim, 1);
    ds.labels = calloc(n, 1);
    return ds;
}

static void free_ds(bp_dataset *ds)
{
    free(ds->pixels);
    free(ds->labels);
}

static uint8_t clamp8(double v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5); }

/* 10 classes, 20 pixels: a random prototype per class plus noise of ±12. Prototypes are
 * ~470 apart on average against noise of norm ≤ 54, so the nearest-prototype rule — which is
 * linear, argmax_c (p_c·x − |p_c|²/2) — classifies every sample: the problem is separable. */
static bp_dataset separable(uint32_t per_class, uint64_t seed)
{
    bp_dataset ds = make_ds(10 * per_class, 4, 5, 10);
    if (!ds.pixels || !ds.labels)
        return ds;
    bp_rng rng;
    bp_rng_seed(&rng, seed);
    uint8_t proto[10][20];
    for (int c = 0; c < 10; c++)
        for (int i = 0; i < 20; i++)
            proto[c][i] = (uint8_t)bp_rng_below(&rng, 256);
    for (uint32_t s = 0; s < ds.n; s++) {
        int c = (int)(s % 10);
        ds.labels[s] = (uint8_t)c;
        for (int i = 0; i < 20; i++)
            ds.pixels[(size_t)s * 20 + i] = clamp8(proto[c][i] + 24.0 * bp_rng_uniform(&rng) - 12.0);
    }
    return ds;
}

/* XOR on two pixels: corners (40,40) and (215,215) are class 0, (40,215) and (215,40) class 1,
 * noise ±20. No line separates the classes: with f affine, f(D) = f(B) + f(C) − f(A) for the
 * corner centres, so a line putting A on one side and B, C on the other puts D with B and C —
 * at most 3 of the 4 clusters are right (75% up to the noise). */
static bp_dataset xor_ds(uint32_t per_corner, uint64_t seed)
{
    bp_dataset ds = make_ds(4 * per_corner, 1, 2, 2);
    if (!ds.pixels || !ds.labels)
        return ds;
    bp_rng rng;
    bp_rng_seed(&rng, seed);
    for (uint32_t s = 0; s < ds.n; s++) {
        int a = (int)(s % 2), b = (int)(s / 2 % 2);
        ds.labels[s] = (uint8_t)(a ^ b);
        ds.pixels[2 * s] = clamp8((a ? 215 : 40) + 40.0 * bp_rng_uniform(&rng) - 20.0);
        ds.pixels[2 * s + 1] = clamp8((b ? 215 : 40) + 40.0 * bp_rng_uniform(&rng) - 20.0);
    }
    return ds;
}

static bp_model *new_model(const int *sizes, int L, bp_act act, bp_init init, uint64_t seed)
{
    bp_model *m = NULL;
    bp_error err = {0};
    if (bp_model_create(&m, sizes, L, act, &err)) {
        fprintf(stderr, "bp_model_create: %s\n", err.msg);
        return NULL;
    }
    if (bp_model_init(m, init, seed, &err)) {
        fprintf(stderr, "bp_model_init: %s\n", err.msg);
        bp_model_free(m);
        return NULL;
    }
    return m;
}

static double accuracy(const bp_model *m, const bp_dataset *ds)
{
    bp_error err = {0};
    bp_eval_result r;
    if (bp_evaluate(m, ds, 64, 0, &r, NULL, &err)) {
        fprintf(stderr, "bp_evaluate: %s\n", err.msg);
        return -1.0;
    }
    return r.accuracy;
}

static int train(bp_model *m, const bp_dataset *tr, const bp_dataset *te,
                 const bp_train_config *cfg, bp_epoch_stats *last, double *best)
{
    bp_error err = {0};
    int st = bp_train(m, tr, te, cfg, last, best, &err);
    if (st)
        fprintf(stderr, "bp_train: %s\n", err.msg);
    return st;
}

static void learns_separable(void)
{
    bp_dataset ds = separable(20, 1);
    if (!CHECK(ds.pixels && ds.labels))
        return;
    const int sizes[2] = {20, 10};
    const bp_impl impls[2] = {BP_IMPL_BLAS, BP_IMPL_NAIVE};
    for (int k = 0; k < 2; k++) {
        bp_model *m = new_model(sizes, 1, BP_ACT_RELU, BP_INIT_AUTO, 5);
        if (!CHECK(m))
            continue;
        bp_train_config cfg;
        bp_train_config_default(&cfg);
        cfg.epochs = 30;
        cfg.batch = 10;
        cfg.impl = impls[k];
        bp_epoch_stats last;
        CHECK_INT_EQ(train(m, &ds, &ds, &cfg, &last, NULL), BP_OK);
        double acc = accuracy(m, &ds);
        printf("  separable 20-10 %s: train accuracy %.4f (must be 1), test_acc %.4f\n",
               bp_impl_name(impls[k]), acc, last.test_acc);
        CHECK(acc == 1.0);
        CHECK(last.test_acc == acc); /* the test set is the training set here */
        bp_model_free(m);
    }
    free_ds(&ds);
}

static void learns_xor(void)
{
    bp_dataset ds = xor_ds(20, 2);
    if (!CHECK(ds.pixels && ds.labels))
        return;
    bp_train_config cfg;
    bp_train_config_default(&cfg);
    cfg.epochs = 200;
    cfg.batch = 8;

    const int mlp[3] = {2, 16, 2}, lin[2] = {2, 2};
    bp_model *m = new_model(mlp, 2, BP_ACT_TANH, BP_INIT_AUTO, 3);
    if (CHECK(m)) {
        CHECK_INT_EQ(train(m, &ds, NULL, &cfg, NULL, NULL), BP_OK);
        double acc = accuracy(m, &ds);
        printf("  XOR 2-16-2 tanh: accuracy %.4f (must be 1)\n", acc);
        CHECK(acc == 1.0);
    }
    bp_model_free(m);
    m = new_model(lin, 1, BP_ACT_RELU, BP_INIT_AUTO, 3);
    if (CHECK(m)) {
        CHECK_INT_EQ(train(m, &ds, NULL, &cfg, NULL, NULL), BP_OK);
        double acc = accuracy(m, &ds);
        printf("  XOR 2-2 softmax regression: accuracy %.4f (must stay below 1)\n", acc);
        CHECK(acc < 1.0);
    }
    bp_model_free(m);
    free_ds(&ds);
}

/* Same seed, same everything: bit-identical parameters (shuffling and initialisation both come
 * from explicit seeds, and a single-threaded BLAS is deterministic). A different seed must
 * give different parameters, or the comparison proves nothing. */
static void deterministic(void)
{
    bp_dataset ds = separable(10, 3);
    if (!CHECK(ds.pixels && ds.labels))
        return;
    const int sizes[3] = {20, 12, 10};
    bp_model *m[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3; k++) {
        m[k] = new_model(sizes, 2, BP_ACT_RELU, BP_INIT_AUTO, k < 2 ? 9 : 10);
        if (!CHECK(m[k]))
            goto done;
        bp_train_config cfg;
        bp_train_config_default(&cfg);
        cfg.epochs = 3;
        cfg.batch = 7;
        cfg.seed = k < 2 ? 21 : 22;
        CHECK_INT_EQ(train(m[k], &ds, NULL, &cfg, NULL, NULL), BP_OK);
    }
    size_t bytes = m[0]->nparams * sizeof(float);
    CHECKF(memcmp(m[0]->params, m[1]->params, bytes) == 0,
           "two runs with seed 21 differ (max diff %.3e)",
           check_max_abs_diff(m[0]->params, m[1]->params, m[0]->nparams));
    CHECK(memcmp(m[0]->params, m[2]->params, bytes) != 0);
    printf("  same seed: parameters bit-identical; other seed: max diff %.3e\n",
           check_max_abs_diff(m[0]->params, m[2]->params, m[0]->nparams));
done:
    for (int k = 0; k < 3; k++)
        bp_model_free(m[k]);
    free_ds(&ds);
}

/* Zero initialisation and file order remove all randomness, so blas, jacobian and naive
 * training differ only by float rounding in each step (~1e-7 relative, see test_impls),
 * carried through 5 epochs of 20 steps. Bound: max |diff| ≤ 1e-4 · max |parameter|; a real
 * difference between the paths (a dropped batch, a wrong scale) moves parameters by a sizeable
 * fraction of their magnitude. An MLP with a fixed random initialisation (the same for all
 * three) is compared the same way. */
#define TRAIN_REL_TOL 1e-4

static void impls_train_alike(const int *sizes, int L, bp_act act, bp_init init,
                              const char *what)
{
    bp_dataset ds = separable(10, 4);
    if (!CHECK(ds.pixels && ds.labels))
        return;
    const bp_impl impls[3] = {BP_IMPL_BLAS, BP_IMPL_JACOBIAN, BP_IMPL_NAIVE};
    bp_model *m[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3; k++) {
        m[k] = new_model(sizes, L, act, init, 17);
        if (!CHECK(m[k]))
            goto done;
        bp_train_config cfg;
        bp_train_config_default(&cfg);
        cfg.epochs = 5;
        cfg.batch = 5;
        cfg.shuffle = 0;
        cfg.impl = impls[k];
        CHECK_INT_EQ(train(m[k], &ds, NULL, &cfg, NULL, NULL), BP_OK);
    }
    double scale = check_max_abs(m[0]->params, m[0]->nparams);
    CHECK(scale > 0);
    for (int k = 1; k < 3; k++) {
        char label[128];
        snprintf(label, sizeof label, "%s: %s vs blas params /max", what,
                 bp_impl_name(impls[k]));
        CHECK_MAXDIFF(label, check_max_abs_diff(m[0]->params, m[k]->params, m[0]->nparams) / scale,
                      TRAIN_REL_TOL);
    }
done:
    for (int k = 0; k < 3; k++)
        bp_model_free(m[k]);
    free_ds(&ds);
}

typedef struct {
    int calls, epoch_calls;
    uint32_t done[16];
    int epoch[16];
    uint32_t total;
    bp_epoch_stats stats[4];
} trace;

static void on_progress(int epoch, uint32_t done, uint32_t total, void *user)
{
    trace *t = user;
    if (t->calls < 16) {
        t->done[t->calls] = done;
        t->epoch[t->calls] = epoch;
    }
    t->calls++;
    t->total = total;
}

static void on_epoch(const bp_epoch_stats *s, void *user)
{
    trace *t = user;
    if (t->epoch_calls < 4)
        t->stats[t->epoch_calls] = *s;
    t->epoch_calls++;
}

/* n = 10, batch 4: batches of 4, 4 and 2, every epoch. The trained parameters must equal a
 * replay of the three steps by hand (bp_grad, then p ← p − η·g), and must differ from a
 * replay that drops the last two samples. */
static void partial_batch(void)
{
    bp_dataset ds = separable(1, 5); /* 10 samples, one per class */
    if (!CHECK(ds.pixels && ds.labels))
        return;
    const int sizes[2] = {20, 10};
    const float lr = 0.5f;
    bp_model *m = new_model(sizes, 1, BP_ACT_RELU, BP_INIT_ZEROS, 1);
    bp_model *r = new_model(sizes, 1, BP_ACT_RELU, BP_INIT_ZEROS, 1);
    bp_model *d = new_model(sizes, 1, BP_ACT_RELU, BP_INIT_ZEROS, 1);
    bp_work *w = NULL;
    bp_error err = {0};
    if (!CHECK(m && r && d) || !CHECK(bp_work_create(&w, m, 4, 0, &err) == BP_OK))
        goto done;
    trace t;
    memset(&t, 0, sizeof t);
    bp_train_config cfg;
    bp_train_config_default(&cfg);
    cfg.epochs = 2;
    cfg.batch = 4;
    cfg.shuffle = 0;
    cfg.opt.sched = BP_SCHED_CONSTANT;
    cfg.opt.lr = lr;
    cfg.on_progress = on_progress;
    cfg.on_epoch = on_epoch;
    cfg.user = &t;
    bp_epoch_stats last;
    double best = 0.0;
    CHECK_INT_EQ(train(m, &ds, &ds, &cfg, &last, &best), BP_OK);

    CHECK_INT_EQ(t.calls, 6);
    CHECK_INT_EQ(t.total, 10);
    const uint32_t want[6] = {4, 8, 10, 4, 8, 10};
    for (int i = 0; i < 6 && i < t.calls; i++) {
        CHECKF(t.done[i] == want[i] && t.epoch[i] == 1 + i / 3,
               "progress call %d: epoch %d done %u, expected epoch %d done %u", i, t.epoch[i],
               t.done[i], 1 + i / 3, want[i]);
    }
    printf("  n=10 batch=4: progress done =");
    for (int i = 0; i < t.calls && i < 16; i++)
        printf(" %u", t.done[i]);
    printf("\n");

    /* epoch reports */
    CHECK_INT_EQ(t.epoch_calls, 2);
    for (int e = 0; e < 2 && e < t.epoch_calls; e++) {
        CHECK_INT_EQ(t.stats[e].epoch, e + 1);
        CHECK_INT_EQ(t.stats[e].epochs, 2);
        CHECK(isfinite(t.stats[e].train_loss) && t.stats[e].train_loss > 0);
        CHECK(t.stats[e].train_acc >= 0 && t.stats[e].train_acc <= 1);
        CHECK(t.stats[e].test_acc >= 0 && t.stats[e].test_acc <= 1);
        CHECK(t.stats[e].seconds >= 0);
        CHECK(t.stats[e].lr == lr);
    }
    CHECK(last.epoch == 2 && last.test_acc == t.stats[1].test_acc);
    CHECK(best == fmax(t.stats[0].test_acc, t.stats[1].test_acc));
    CHECK_NEAR(last.test_acc, accuracy(m, &ds), 0.0);

    /* the replay, by hand: two epochs of batches [0,4) [4,8) [8,10) */
    float *X = malloc((size_t)4 * 20 * sizeof *X);
    uint8_t lab[4];
    if (!CHECK(X))
        goto done;
    for (int e = 0; e < 2; e++)
        for (uint32_t first = 0; first < 10; first += 4) {
            int b = first + 4 <= 10 ? 4 : 10 - (int)first;
            bp_dataset_gather(&ds, NULL, first, b, X, lab);
            CHECK_INT_EQ(bp_grad(r, w, BP_IMPL_BLAS, X, lab, b, NULL, NULL, NULL, NULL), BP_OK);
            for (size_t i = 0; i < r->nparams; i++)
                r->params[i] -= lr * r->grads[i];
            if (b < 4)
                continue; /* the model that drops the partial batch */
            CHECK_INT_EQ(bp_grad(d, w, BP_IMPL_BLAS, X, lab, b, NULL, NULL, NULL, NULL), BP_OK);
            for (size_t i = 0; i < d->nparams; i++)
                d->params[i] -= lr * d->grads[i];
        }
    free(X);
    double scale = check_max_abs(r->params, r->nparams);
    double diff = check_max_abs_diff(m->params, r->params, m->nparams) / scale;
    double dropped = check_max_abs_diff(m->params, d->params, m->nparams) / scale;
    /* the same float operations in the same order: equal up to at most rounding */
    CHECK_MAXDIFF("bp_train vs hand replay of 4+4+2 /max", diff, 1e-6);
    printf("  bp_train vs replay without the partial batch: %.3e /max (must exceed 1e-2)\n",
           dropped);
    CHECK(dropped > 1e-2);
done:
    bp_work_free(w);
    bp_model_free(m);
    bp_model_free(r);
    bp_model_free(d);
    free_ds(&ds);
}

static void bad_arguments(void)
{
    bp_dataset ds = separable(1, 6);
    if (!CHECK(ds.pixels && ds.labels))
        return;
    const int sizes[2] = {20, 10}, wrong_in[2] = {21, 10}, few_out[2] = {20, 9};
    bp_model *m = new_model(sizes, 1, BP_ACT_RELU, BP_INIT_AUTO, 1);
    bp_model *mi = new_model(wrong_in, 1, BP_ACT_RELU, BP_INIT_AUTO, 1);
    bp_model *mo = new_model(few_out, 1, BP_ACT_RELU, BP_INIT_AUTO, 1);
    bp_error err = {0};
    bp_train_config cfg;
    bp_train_config_default(&cfg);
    if (!CHECK(m && mi && mo))
        goto done;
    cfg.epochs = 0;
    CHECK_INT_EQ(bp_train(m, &ds, NULL, &cfg, NULL, NULL, &err), BP_ERR_ARG);
    CHECK_CONTAINS(err.msg, "epochs");
    cfg.epochs = 1;
    cfg.batch = 0;
    CHECK_INT_EQ(bp_train(m, &ds, NULL, &cfg, NULL, NULL, &err), BP_ERR_ARG);
    CHECK_CONTAINS(err.msg, "batch");
    cfg.batch = 4;
    CHECK_INT_EQ(bp_train(mi, &ds, NULL, &cfg, NULL, NULL, &err), BP_ERR_ARG);
    CHECK_CONTAINS(err.msg, "20 inputs per sample");
    CHECK_INT_EQ(bp_train(mo, &ds, NULL, &cfg, NULL, NULL, &err), BP_ERR_ARG);
    CHECK_CONTAINS(err.msg, "10 classes");

    /* A batch larger than the set is clamped to it, not refused. */
    cfg.batch = 1000;
    CHECK_INT_EQ(train(m, &ds, NULL, &cfg, NULL, NULL), BP_OK);

    /* bp_model_create refuses impossible shapes */
    bp_model *bad = NULL;
    const int zero_w[2] = {20, 0};
    CHECK_INT_EQ(bp_model_create(&bad, zero_w, 1, BP_ACT_RELU, &err), BP_ERR_ARG);
    CHECK_INT_EQ(bp_model_create(&bad, sizes, 0, BP_ACT_RELU, &err), BP_ERR_ARG);
    CHECK_INT_EQ(bp_model_create(&bad, sizes, 1, (bp_act)9, &err), BP_ERR_ARG);
    CHECK(bad == NULL);
done:
    bp_model_free(m);
    bp_model_free(mi);
    bp_model_free(mo);
    free_ds(&ds);
}

/* A learning rate far too large for a two-hidden-layer ReLU MLP makes the weights of
 * consecutive layers feed each other's growth: bp_train must stop with BP_ERR_NUMERIC and say
 * so. Divergence is a NaN or infinite loss, or a mean batch loss above BP_LOSS_DIVERGED (1e6
 * nats, src/train.c), since log-sum-exp keeps the loss finite long after the weights have blown
 * up; here the bound is what stops the run, within the first epoch. */
static void diverges(void)
{
    bp_dataset ds = separable(10, 8);
    if (!CHECK(ds.pixels && ds.labels))
        return;
    const int sizes[4] = {20, 64, 64, 10};
    bp_model *m = new_model(sizes, 3, BP_ACT_RELU, BP_INIT_AUTO, 1);
    bp_error err = {0};
    bp_train_config cfg;
    bp_train_config_default(&cfg);
    cfg.epochs = 50;
    cfg.batch = 10;
    cfg.opt.lr = 1e6f;
    cfg.opt.sched = BP_SCHED_CONSTANT;
    if (CHECK(m)) {
        int st = bp_train(m, &ds, NULL, &cfg, NULL, NULL, &err);
        printf("  lr 1e6: status %d: %s\n", st, err.msg);
        CHECK_INT_EQ(st, BP_ERR_NUMERIC);
        CHECK_CONTAINS(err.msg, "diverged");
    }
    bp_model_free(m);
    free_ds(&ds);
}

/* The test set must be checked like the training set: labels at or above the model's outputs
 * index past their row of logits in every evaluation (softmax_xent_forward reads v[label]),
 * giving a wrong loss and accuracy, or a read past the scratch buffer (ASan reports a
 * heap-buffer-overflow for a label of 200 on the last row). bp_train must refuse a test set
 * whose classes exceed the model's outputs, as it refuses such a training set. */
static void test_set_classes(void)
{
    bp_dataset tr = separable(1, 9), te = separable(1, 10);
    const int sizes[2] = {20, 3};
    bp_model *m = new_model(sizes, 1, BP_ACT_RELU, BP_INIT_AUTO, 1);
    if (!CHECK(tr.pixels && tr.labels && te.pixels && te.labels && m))
        goto done;
    for (uint32_t s = 0; s < tr.n; s++)
        tr.labels[s] %= 3; /* the training set fits the 3 outputs; te keeps labels up to 9 */
    tr.classes = 3;
    bp_error err = {0};
    bp_train_config cfg;
    bp_train_config_default(&cfg);
    cfg.epochs = 1;
    int st = bp_train(m, &tr, &te, &cfg, NULL, NULL, &err);
    printf("  test set with 10 classes, model with 3 outputs: status %d %s\n", st, err.msg);
    CHECKF(st == BP_ERR_ARG, "bp_train accepted a test set with labels up to 9 for 3 outputs");
done:
    bp_model_free(m);
    free_ds(&tr);
    free_ds(&te);
}

int main(void)
{
    printf("training on synthetic data\n");
    learns_separable();
    learns_xor();
    deterministic();
    const int soft[2] = {20, 10}, mlp[3] = {20, 12, 10};
    impls_train_alike(soft, 1, BP_ACT_RELU, BP_INIT_ZEROS, "20-10 zeros, no shuffle");
    impls_train_alike(mlp, 2, BP_ACT_TANH, BP_INIT_NORMAL, "20-12-10 tanh, no shuffle");
    partial_batch();
    bad_arguments();
    diverges();
    test_set_classes();
    return check_exit("test_train");
}
