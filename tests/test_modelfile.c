/* Model files (src/modelfile.c writes, src/modelload.c reads):
 *   - save/load round trips bit for bit (784→10, a 20-16-8-3 tanh MLP, a 5→300 model), with
 *     the shape, activation, input image shape, init and every bp_model_info field restored,
 *     and saving the loaded model again gives the same bytes;
 *   - a checkpoint of a real bp_train run round-trips, and 3 epochs + resume equals 5 epochs
 *     straight, bit for bit (sgd/cosine, momentum/constant, adam/step); a resume with a changed
 *     setting is refused naming the field;
 *   - every kind of damaged or hostile file is refused with BP_ERR_FORMAT (BP_ERR_IO when the
 *     file itself cannot be read), a message naming the file and saying what is wrong. Each bad
 *     file is a valid bp_model_save output edited here: the header JSON rewritten (and its
 *     8-byte length fixed), data bytes patched, the CRC recomputed where the test means a
 *     check other than the CRC to trip. */
#include "check.h"
#include "modelfile.h"

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- files ---- */

static char tmpdir[512];

/* dst = tmpdir/name */
static const char *tp(char *dst, size_t len, const char *name)
{
    snprintf(dst, len, "%s/%s", tmpdir, name);
    return dst;
}
#define TP(buf, name) tp(buf, sizeof buf, name)

typedef struct {
    uint8_t *b;
    size_t n;
} blob;

static blob slurp(const char *path)
{
    blob f = {NULL, 0};
    FILE *in = fopen(path, "rb");
    if (!in)
        return f;
    fseek(in, 0, SEEK_END);
    long n = ftell(in);
    rewind(in);
    f.b = malloc((size_t)n + 1);
    if (f.b && fread(f.b, 1, (size_t)n, in) == (size_t)n)
        f.n = (size_t)n;
    else {
        free(f.b);
        f.b = NULL;
    }
    fclose(in);
    return f;
}

static int spit(const char *path, const void *b, size_t n)
{
    FILE *out = fopen(path, "wb");
    if (!out)
        return -1;
    size_t w = fwrite(b, 1, n, out);
    return fclose(out) == 0 && w == n ? 0 : -1;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = v << 8 | p[k];
    return v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int k = 0; k < 8; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

/* The header of a well-formed file as a NUL-terminated string (malloc'd), trailing padding
 * removed; *data and *ndata: the tensor bytes. NULL if f is too short to have a header. */
static char *header_of(const blob *f, const uint8_t **data, size_t *ndata)
{
    if (f->n < 8 || get_le64(f->b) > f->n - 8)
        return NULL;
    size_t h = (size_t)get_le64(f->b);
    char *s = malloc(h + 1);
    if (!s)
        return NULL;
    memcpy(s, f->b + 8, h);
    while (h && s[h - 1] == ' ')
        h--;
    s[h] = '\0';
    *data = f->b + 8 + get_le64(f->b);
    *ndata = f->n - 8 - (size_t)get_le64(f->b);
    return s;
}

/* Writes a file from a header text (padded here to a multiple of 8, as the writer does), the
 * data bytes and `extra` zero bytes after them. */
static int write_parts(const char *path, const char *header, const uint8_t *data, size_t ndata,
                       size_t extra)
{
    size_t h = strlen(header), padded = (h + 7) / 8 * 8, n = 8 + padded + ndata + extra;
    uint8_t *buf = calloc(n, 1);
    if (!buf)
        return -1;
    put_le64(buf, padded);
    memcpy(buf + 8, header, h);
    memset(buf + 8 + h, ' ', padded - h);
    memcpy(buf + 8 + padded, data, ndata);
    int r = spit(path, buf, n);
    free(buf);
    return r;
}

/* dst: src with the first occurrence of old in its header replaced by repl (old NULL: the
 * header as it is), the length fixed, src's data, then `extra` zero bytes. A failed edit is a
 * failed check: a case whose file is not the intended one tests nothing. */
static int edit(const char *src, const char *dst, const char *old, const char *repl,
                size_t extra)
{
    blob f = slurp(src);
    const uint8_t *data = NULL;
    size_t ndata = 0;
    char *h = f.b ? header_of(&f, &data, &ndata) : NULL, *at = NULL, *out = NULL;
    int ok = h && (!old || (at = strstr(h, old)));
    if (ok && old) {
        size_t pre = (size_t)(at - h), lo = strlen(old), lr = strlen(repl);
        out = malloc(strlen(h) - lo + lr + 1);
        if ((ok = out != NULL)) {
            memcpy(out, h, pre);
            memcpy(out + pre, repl, lr);
            strcpy(out + pre + lr, at + lo);
        }
    }
    ok = ok && write_parts(dst, old ? out : h, data, ndata, extra) == 0;
    CHECKF(ok, "could not make %s from %s: '%s' not in its header", dst, src, old ? old : "");
    free(out);
    free(h);
    free(f.b);
    return ok;
}

/* The byte range of tensor name in the data section, read from the header. */
static int tensor_range(const blob *f, const char *name, uint64_t *begin, uint64_t *end)
{
    const uint8_t *data;
    size_t ndata;
    char *h = header_of(f, &data, &ndata), key[64];
    snprintf(key, sizeof key, "\"%s\":{", name);
    const char *p = h ? strstr(h, key) : NULL;
    const char *q = p ? strstr(p, "\"data_offsets\":[") : NULL;
    int ok = q && sscanf(q + strlen("\"data_offsets\":["), "%" SCNu64 ",%" SCNu64, begin, end) == 2;
    free(h);
    CHECKF(ok, "no data_offsets for '%s'", name);
    return ok;
}

/* Rewrites the header's crc32 value (8 characters, in place: the length does not change). */
static int set_crc_text(blob *f, const char *eight)
{
    const uint8_t *data;
    size_t ndata;
    char *h = header_of(f, &data, &ndata);
    const char *p = h ? strstr(h, "\"crc32\":\"") : NULL;
    int ok = p && strlen(eight) == 8;
    if (ok)
        memcpy(f->b + 8 + (size_t)(p - h) + strlen("\"crc32\":\""), eight, 8);
    free(h);
    CHECKF(ok, "no crc32 in the header");
    return ok;
}

static uint32_t data_crc(const blob *f)
{
    uint64_t h = get_le64(f->b);
    return (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), f->b + 8 + h, f->n - 8 - (size_t)h);
}

static int fix_crc(blob *f)
{
    char hex[16];
    snprintf(hex, sizeof hex, "%08" PRIx32, data_crc(f));
    return set_crc_text(f, hex);
}

/* dst: src with n bytes at offset `at` of the data section replaced; the CRC recomputed if
 * recrc, so that the check under test, not the CRC, is what refuses the file. */
static int patch(const char *src, const char *dst, uint64_t at, const void *bytes, size_t n,
                 int recrc)
{
    blob f = slurp(src);
    int ok = f.b && f.n >= 8 && 8 + get_le64(f.b) + at + n <= f.n;
    if (ok) {
        memcpy(f.b + 8 + get_le64(f.b) + at, bytes, n);
        ok = (!recrc || fix_crc(&f)) && spit(dst, f.b, f.n) == 0;
    }
    CHECKF(ok, "could not patch %s", src);
    free(f.b);
    return ok;
}

static void le32(uint8_t *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

static int same_file(const char *a, const char *b)
{
    blob x = slurp(a), y = slurp(b);
    int same = x.b && y.b && x.n == y.n && memcmp(x.b, y.b, x.n) == 0;
    free(x.b);
    free(y.b);
    return same;
}

/* ---- models and data ---- */

/* A model drawn by bp_model_init(init, seed) with random biases, and a few awkward floats
 * (−0, a denormal, ±FLT_MAX, FLT_MIN) that a lossy round trip would change. */
static bp_model *make_model(const int *sizes, int L, bp_act act, bp_init init, uint64_t seed,
                            uint32_t rows, uint32_t cols)
{
    bp_model *m = NULL;
    bp_error err = {0};
    if (bp_model_create(&m, sizes, L, act, &err) || bp_model_init(m, init, seed, &err)) {
        fprintf(stderr, "model: %s\n", err.msg);
        bp_model_free(m);
        return NULL;
    }
    bp_rng rng;
    bp_rng_seed(&rng, seed + 1);
    for (int l = 0; l < L; l++)
        for (int o = 0; o < sizes[l + 1]; o++)
            m->b[l][o] = (float)bp_rng_normal(&rng);
    const float odd[5] = {-0.0f, 1e-45f, FLT_MAX, -FLT_MAX, FLT_MIN};
    for (size_t i = 0; i < 5 && i < m->nparams; i++)
        m->params[i] = odd[i];
    m->input_rows = rows;
    m->input_cols = cols;
    return m;
}

static int load(const char *path, bp_model **m, bp_model_info *info, bp_checkpoint **ck)
{
    bp_error err = {0};
    int st = bp_model_load(path, m, info, ck, &err);
    if (st)
        fprintf(stderr, "bp_model_load: %s\n", err.msg);
    return st;
}

static int save(const char *path, const bp_model *m, const bp_model_info *info)
{
    bp_error err = {0};
    int st = bp_model_save(path, m, info, &err);
    if (st)
        fprintf(stderr, "bp_model_save: %s\n", err.msg);
    return st;
}

/* Every setting set away from its default, so that a setting the loader drops shows. */
static bp_model_info full_info(void)
{
    bp_model_info info;
    memset(&info, 0, sizeof info);
    info.format_version = BP_MODEL_FORMAT_VERSION;
    info.epoch = 7;
    info.step = 123456789L;
    info.best_test_acc = 0.9871234567890123;
    info.has_train = 1;
    bp_train_config *c = &info.train;
    bp_train_config_default(c);
    c->epochs = 9;
    c->batch = 33;
    c->seed = 18446744073709551557ULL; /* above 2^63: must not go through a signed type */
    c->shuffle = 0;
    c->impl = BP_IMPL_NAIVE;
    c->threads = 3;
    c->opt.kind = BP_OPT_ADAM;
    c->opt.lr = 0.0123f;
    c->opt.momentum = 0.77f;
    c->opt.weight_decay = 0.01f;
    c->opt.beta1 = 0.85f;
    c->opt.beta2 = 0.995f;
    c->opt.eps = 3e-7f;
    c->opt.sched = BP_SCHED_STEP;
    c->opt.step_epochs = 4;
    c->opt.gamma = 0.3f;
    c->opt.min_lr = 1e-5f;
    return info;
}

static int same_float(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static void check_info(const bp_model_info *got, const bp_model_info *want)
{
    CHECK_INT_EQ(got->format_version, BP_MODEL_FORMAT_VERSION);
    CHECK_INT_EQ(got->epoch, want->epoch);
    CHECK_INT_EQ(got->step, want->step);
    if (isnan(want->best_test_acc))
        CHECK(isnan(got->best_test_acc));
    else
        CHECKF(got->best_test_acc == want->best_test_acc, "best_test_acc %.17g, saved %.17g",
               got->best_test_acc, want->best_test_acc);
    CHECK_INT_EQ(got->has_train, want->has_train);
    CHECK_INT_EQ(got->is_checkpoint, 0);
    if (!want->has_train)
        return;
    const bp_train_config *g = &got->train, *w = &want->train;
    CHECK_INT_EQ(g->epochs, w->epochs);
    CHECK_INT_EQ(g->batch, w->batch);
    CHECKF(g->seed == w->seed, "seed %" PRIu64 ", saved %" PRIu64, g->seed, w->seed);
    CHECK_INT_EQ(g->shuffle, w->shuffle);
    CHECK_INT_EQ(g->impl, w->impl);
    CHECK_INT_EQ(g->threads, w->threads);
    CHECK_INT_EQ(g->opt.kind, w->opt.kind);
    CHECK(same_float(g->opt.lr, bp_opt_base_lr(&w->opt)));
    CHECK(same_float(g->opt.momentum, w->opt.momentum));
    CHECK(same_float(g->opt.weight_decay, w->opt.weight_decay));
    CHECK(same_float(g->opt.beta1, w->opt.beta1));
    CHECK(same_float(g->opt.beta2, w->opt.beta2));
    CHECK(same_float(g->opt.eps, w->opt.eps));
    CHECK_INT_EQ(g->opt.sched, w->opt.sched);
    CHECK_INT_EQ(g->opt.step_epochs, w->opt.step_epochs);
    CHECK(same_float(g->opt.gamma, w->opt.gamma));
    CHECK(same_float(g->opt.min_lr, w->opt.min_lr));
    /* what a file never carries */
    CHECK(!g->save_path && !g->checkpoint_path && !g->log_path && !g->resume);
    CHECK(!g->on_epoch && !g->on_progress && !g->user);
}

static void check_same_model(const bp_model *a, const bp_model *b)
{
    CHECK_INT_EQ(a->nlayers, b->nlayers);
    if (a->nlayers != b->nlayers)
        return;
    for (int l = 0; l <= a->nlayers; l++)
        CHECK_INT_EQ(a->sizes[l], b->sizes[l]);
    if (a->nlayers > 1)
        CHECK_INT_EQ(a->act, b->act);
    CHECK_INT_EQ(a->input_rows, b->input_rows);
    CHECK_INT_EQ(a->input_cols, b->input_cols);
    CHECK_INT_EQ(a->init, b->init);
    CHECK(a->init_seed == b->init_seed);
    CHECK_INT_EQ(a->nparams, b->nparams);
    if (a->nparams == b->nparams)
        CHECKF(memcmp(a->params, b->params, a->nparams * sizeof(float)) == 0,
               "parameters differ (max diff %.3e)",
               check_max_abs_diff(a->params, b->params, a->nparams));
}

/* Save → load → compare; save the loaded model with the loaded info → the same bytes. */
static void round_trip(const char *label, bp_model *m, const bp_model_info *info)
{
    char p1[600], p2[600];
    TP(p1, "rt1.st");
    TP(p2, "rt2.st");
    bp_model *got = NULL;
    bp_checkpoint *ck = (bp_checkpoint *)&got; /* must come back NULL */
    bp_model_info gi;
    if (!CHECK(m) || !CHECK(save(p1, m, info) == BP_OK) || !CHECK(load(p1, &got, &gi, &ck) == 0))
        return;
    check_same_model(m, got);
    CHECK(ck == NULL);
    bp_model_info none;
    memset(&none, 0, sizeof none);
    none.best_test_acc = NAN;
    check_info(&gi, info ? info : &none);
    CHECK(save(p2, got, &gi) == BP_OK);
    CHECKF(same_file(p1, p2), "%s: saving the loaded model gives different bytes", label);
    printf("  round trip %s: parameters bit-identical, settings restored, re-save identical\n",
           label);
    bp_model_free(got);
}

static void round_trips(void)
{
    const int soft[2] = {784, 10}, mlp[4] = {20, 16, 8, 3}, wide[2] = {5, 300};
    bp_model_info info = full_info();
    bp_model *m = make_model(soft, 1, BP_ACT_RELU, BP_INIT_AUTO, 1, 28, 28);
    round_trip("784-10, full info", m, &info);
    round_trip("784-10, no info", m, NULL);
    bp_model_free(m);

    m = make_model(mlp, 3, BP_ACT_TANH, BP_INIT_UNIFORM, 987654321, 4, 5);
    round_trip("20-16-8-3 tanh 4x5, full info", m, &info);
    bp_model_info partial;
    memset(&partial, 0, sizeof partial);
    partial.epoch = 2, partial.step = 40, partial.best_test_acc = NAN;
    round_trip("20-16-8-3 tanh, counters only", m, &partial);
    bp_model_free(m);

    /* 300 outputs: more classes than a label byte holds, but a model bp_model_create makes,
     * so the writer saves it and the reader must read it back. */
    m = make_model(wide, 1, BP_ACT_SIGMOID, BP_INIT_NORMAL, 5, 0, 0);
    round_trip("5-300 flat input", m, &info);
    bp_model_free(m);
}

/* 10 classes on 4×5 pixels: a random prototype per class plus uniform noise. */
static bp_dataset synth(uint32_t n, uint64_t seed)
{
    bp_dataset ds = {n, 4, 5, 20, 10, malloc((size_t)n * 20), malloc(n)};
    if (!ds.pixels || !ds.labels)
        return ds;
    bp_rng rng, prng;
    bp_rng_seed(&prng, 99); /* the prototypes are the same in every set */
    bp_rng_seed(&rng, seed);
    uint8_t proto[10][20];
    for (int c = 0; c < 10; c++)
        for (int i = 0; i < 20; i++)
            proto[c][i] = (uint8_t)bp_rng_below(&prng, 200);
    for (uint32_t s = 0; s < n; s++) {
        int c = (int)bp_rng_below(&rng, 10);
        ds.labels[s] = (uint8_t)c;
        for (int i = 0; i < 20; i++)
            ds.pixels[(size_t)s * 20 + i] = (uint8_t)(proto[c][i] + bp_rng_below(&rng, 56));
    }
    return ds;
}

static void free_ds(bp_dataset *ds)
{
    free(ds->pixels);
    free(ds->labels);
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

/* A resume with one setting changed: BP_ERR_ARG naming field. */
static void refused_resume(const char *ckpath, const bp_dataset *tr, const bp_train_config *cfg,
                           const char *field)
{
    bp_model *m = NULL;
    bp_checkpoint *ck = NULL;
    if (!CHECK(load(ckpath, &m, NULL, &ck) == 0) || !CHECK(ck)) {
        bp_model_free(m);
        return;
    }
    bp_train_config c = *cfg;
    c.resume = ck;
    bp_error err = {0};
    int st = bp_train(m, tr, NULL, &c, NULL, NULL, &err);
    CHECK_INT_EQ(st, BP_ERR_ARG);
    CHECKF(strcmp(err.field, field) == 0, "field '%s', expected '%s' (%s)", err.field, field,
           err.msg);
    CHECK_CONTAINS(err.msg, field);
    printf("    refused: %s\n", err.msg);
    bp_checkpoint_free(ck);
    bp_model_free(m);
}

/* 5 epochs straight == 3 epochs, checkpoint, load, resume for 2 more: parameters, stats and
 * the saved file bit-identical. 203 samples in batches of 16: a partial last batch. */
static void resume_case(const char *label, bp_opt_kind kind, bp_sched_kind sched)
{
    const int sizes[3] = {20, 12, 10};
    bp_dataset tr = synth(203, 1), te = synth(60, 2);
    bp_model *a = make_model(sizes, 2, BP_ACT_RELU, BP_INIT_AUTO, 11, 4, 5);
    bp_model *b = make_model(sizes, 2, BP_ACT_RELU, BP_INIT_AUTO, 11, 4, 5);
    bp_model *r = NULL;
    bp_checkpoint *ck = NULL;
    char pa[600], pb[600], pc[600], pc2[600];
    TP(pa, "straight.st");
    TP(pb, "resumed.st");
    TP(pc, "ck.st");
    TP(pc2, "ck2.st");
    if (!CHECK(tr.pixels && te.pixels && a && b))
        goto done;
    for (size_t i = 0; i < 5; i++) /* the odd floats would not train: plain weights here */
        a->params[i] = b->params[i] = 0.01f * (float)i;
    bp_train_config cfg;
    bp_train_config_default(&cfg);
    cfg.epochs = 5;
    cfg.batch = 16;
    cfg.seed = 42;
    cfg.threads = 1;
    cfg.opt.kind = kind;
    cfg.opt.sched = sched;
    cfg.opt.step_epochs = 2;
    if (kind == BP_OPT_MOMENTUM)
        cfg.opt.lr = 0.02f;
    if (kind == BP_OPT_ADAM)
        cfg.opt.lr = 0.01f; /* 65 steps at the default 0.001 would hardly move the model */

    bp_epoch_stats la, lb, lr_;
    double besta = 0, bestr = 0;
    bp_train_config ca = cfg;
    ca.save_path = pa;
    if (!CHECK(train(a, &tr, &te, &ca, &la, &besta) == BP_OK))
        goto done;

    bp_train_config cb = cfg;
    cb.stop_after = 3;
    cb.checkpoint_path = pc;
    if (!CHECK(train(b, &tr, &te, &cb, &lb, NULL) == BP_OK))
        goto done;
    CHECK_INT_EQ(lb.epoch, 3);

    bp_model_info info;
    if (!CHECK(load(pc, &r, &info, &ck) == 0) || !CHECK(ck))
        goto done;
    CHECK(info.is_checkpoint && info.has_train);
    CHECK_INT_EQ(info.epoch, 3);
    CHECK_INT_EQ(info.step, 3 * 13);
    CHECK_INT_EQ(info.train.epochs, 5);
    CHECK_INT_EQ(info.train.batch, 16);
    CHECK_INT_EQ(info.train.opt.kind, kind);
    CHECK_INT_EQ(info.train.opt.sched, sched);
    check_same_model(b, r); /* the model as it stood after epoch 3 */
    CHECK(memcmp(a->params, r->params, a->nparams * sizeof(float)) != 0); /* else: proves nothing */
    CHECK((kind != BP_OPT_SGD) == (ck->opt_m != NULL));
    CHECK((kind == BP_OPT_ADAM) == (ck->opt_s != NULL));
    CHECK(ck->perm && ck->nperm == tr.n);
    CHECK_INT_EQ(ck->opt_t, 3 * 13);
    /* The checkpoint written again from what was read: the same bytes. */
    bp_error err = {0};
    CHECK(modelfile_write(pc2, r, &ck->info, ck, &err) == BP_OK);
    CHECKF(same_file(pc, pc2), "%s: re-writing the loaded checkpoint gives different bytes",
           label);

    /* Changed settings first (on fresh copies of the checkpoint): each names its field. */
    bp_train_config bad = cfg;
    bad.batch = 17;
    refused_resume(pc, &tr, &bad, "batch");
    bad = cfg;
    bad.opt.lr = bp_opt_base_lr(&cfg.opt) * 2;
    refused_resume(pc, &tr, &bad, "opt.lr");
    bad = cfg;
    bad.seed = 43;
    refused_resume(pc, &tr, &bad, "seed");
    bad = cfg;
    bad.epochs = 3;
    refused_resume(pc, &tr, &bad, "epochs");

    bp_train_config cr = cfg;
    cr.resume = ck;
    cr.save_path = pb;
    if (!CHECK(train(r, &tr, &te, &cr, &lr_, &bestr) == BP_OK))
        goto done;
    check_same_model(a, r);
    CHECK_INT_EQ(lr_.epoch, 5);
    CHECK_INT_EQ(lr_.step, la.step);
    CHECK(lr_.train_loss == la.train_loss && lr_.test_acc == la.test_acc && lr_.lr == la.lr);
    CHECK(bestr == besta);
    CHECKF(same_file(pa, pb), "%s: the resumed run's model file differs from the straight run's",
           label);
    printf("  resume %s: 3 + 2 epochs == 5 epochs, parameters and file bit-identical "
           "(test_acc %.4f)\n", label, la.test_acc);
done:
    bp_checkpoint_free(ck);
    bp_model_free(a);
    bp_model_free(b);
    bp_model_free(r);
    free_ds(&tr);
    free_ds(&te);
}

/* ---- damaged files ---- */

static int ncases;

/* Loading path must fail with status and a message naming the file and containing phrase;
 * nothing may be returned. */
static void refused(const char *label, const char *path, int status, const char *phrase)
{
    bp_model *m = NULL;
    bp_checkpoint *ck = NULL;
    bp_model_info info;
    bp_error err = {{0}, {0}};
    int st = bp_model_load(path, &m, &info, &ck, &err);
    ncases++;
    CHECKF(st == status, "%s: status %d (%s), expected %d (%s); message: %s", label, st,
           bp_status_str(st), status, bp_status_str(status), err.msg);
    CHECKF(strstr(err.msg, path) != NULL, "%s: the message does not name the file: %s", label,
           err.msg);
    CHECKF(strstr(err.msg, phrase) != NULL, "%s: the message lacks '%s': %s", label, phrase,
           err.msg);
    CHECKF(!m && !ck, "%s: a model or checkpoint came back from a refused file", label);
    printf("  %-34s %s\n", label, err.msg + (strncmp(err.msg, tmpdir, strlen(tmpdir)) == 0
                                                 ? strlen(tmpdir) + 1
                                                 : 0));
    bp_model_free(m);
    bp_checkpoint_free(ck);
}

/* Q: an escaped quote as it appears inside the arch string in the header's JSON. */
#define Q "\\\""

/* One edited copy of src under name, then refused(). */
static void bad_edit(const char *label, const char *src, const char *old, const char *repl,
                     size_t extra, const char *phrase)
{
    char p[600];
    if (edit(src, TP(p, "bad.st"), old, repl, extra))
        refused(label, p, BP_ERR_FORMAT, phrase);
}

static void bad_patch(const char *label, const char *src, uint64_t at, const void *bytes,
                      size_t n, int recrc, const char *phrase)
{
    char p[600];
    if (patch(src, TP(p, "bad.st"), at, bytes, n, recrc))
        refused(label, p, BP_ERR_FORMAT, phrase);
}

/* The 8-byte header length set to v, the rest unchanged. */
static void bad_length(const char *label, const char *src, uint64_t v, const char *phrase)
{
    char p[600];
    blob f = slurp(src);
    if (CHECK(f.b && f.n > 8)) {
        put_le64(f.b, v);
        if (CHECK(spit(TP(p, "bad.st"), f.b, f.n) == 0))
            refused(label, p, BP_ERR_FORMAT, phrase);
    }
    free(f.b);
}

/* A file whose CRC-32 starts with a zero byte: the bias's lowest mantissa bytes are varied
 * (the values stay finite) until the CRC comes out that way. */
static int leading_zero_crc(const char *src, const char *dst, uint64_t at)
{
    blob f = slurp(src);
    int ok = 0;
    for (uint32_t v = 0; f.b && v < (1u << 20) && !ok; v++) {
        uint8_t *p = f.b + 8 + get_le64(f.b) + at;
        p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[4] = (uint8_t)(v >> 16);
        ok = data_crc(&f) >> 24 == 0;
    }
    ok = ok && fix_crc(&f) && spit(dst, f.b, f.n) == 0;
    CHECKF(ok, "found no data with a CRC-32 below 2^24");
    free(f.b);
    return ok;
}

static void damaged_models(void)
{
    const int mlp[4] = {20, 16, 8, 3};
    char good[600], p[600];
    TP(good, "good.st");
    bp_model *m = make_model(mlp, 3, BP_ACT_TANH, BP_INIT_AUTO, 3, 4, 5);
    bp_model_info info = full_info();
    if (!CHECK(m) || !CHECK(save(good, m, &info) == BP_OK)) {
        bp_model_free(m);
        return;
    }
    bp_model_free(m);
    /* The good file loads: otherwise every refusal below would prove nothing. */
    bp_model *ok = NULL;
    CHECK(load(good, &ok, NULL, NULL) == 0);
    bp_model_free(ok);
    /* Data layout of 20-16-8-3: 0.weight [0,1280], 0.bias [1280,1344], 2.weight [1344,1856],
     * 2.bias [1856,1888], 4.weight [1888,1984], 4.bias [1984,1996]. */
    blob g = slurp(good);
    uint64_t b0 = 0, e0 = 0;
    CHECK(tensor_range(&g, "4.bias", &b0, &e0) && b0 == 1984 && e0 == 1996);
    free(g.b);

    /* the file itself */
    refused("missing file", TP(p, "no-such.st"), BP_ERR_IO, "cannot open");
    refused("directory", tmpdir, BP_ERR_IO, "not a regular file");
    if (CHECK(mkfifo(TP(p, "fifo.st"), 0600) == 0)) {
        alarm(20); /* a reader that blocks on the FIFO is killed, and the test fails */
        refused("FIFO", p, BP_ERR_IO, "not a regular file");
        alarm(0);
    }
    if (CHECK(spit(TP(p, "short.st"), "\x10\0\0\0\0", 5) == 0))
        refused("5 bytes", p, BP_ERR_FORMAT, "5 bytes is too short");
    if (CHECK(spit(TP(p, "empty.st"), "", 0) == 0))
        refused("empty file", p, BP_ERR_FORMAT, "0 bytes is too short");

    /* the header length */
    bad_length("header length past the end", good, 1u << 20, "runs past the end of the file");
    bad_length("header length 2^64-1", good, UINT64_MAX, "runs past the end of the file");
    bad_length("header length 0", good, 0, "header length 0 is not 2 to");
    bad_length("header length 1", good, 1, "header length 1 is not 2 to");

    /* the JSON */
    bad_edit("JSON that does not parse", good, "\"__metadata__\":{", "\"__metadata__\":{,", 0,
             "the header is not valid JSON");
    uint8_t zeros[16] = {0};
    if (CHECK(write_parts(TP(p, "array.st"), "[{\"__metadata__\":{}}]", zeros, 16, 0) == 0))
        refused("JSON array", p, BP_ERR_FORMAT, "no \"__metadata__\" object");
    bad_edit("no __metadata__", good, "\"__metadata__\"", "\"__metadatum__\"", 0,
             "no \"__metadata__\" object");
    bad_edit("duplicate metadata key", good, "\"format\":\"backprop\",",
             "\"format\":\"backprop\",\"format\":\"backprop\",", 0, "duplicate object key");
    bad_edit("duplicate tensor key", good, "\"0.bias\":",
             "\"0.bias\":{\"dtype\":\"F32\",\"shape\":[16],\"data_offsets\":[1280,1344]},"
             "\"0.bias\":", 0, "duplicate object key");
    bad_edit("duplicate key inside arch", good, "{" Q "input" Q ":[4,5],",
             "{" Q "input" Q ":[4,5]," Q "input" Q ":[4,5],", 0, "duplicate object key");

    /* the metadata */
    bad_edit("metadata value not a string", good, "\"classes\":\"3\"", "\"classes\":3", 0,
             "metadata \"classes\" is not a string");
    bad_edit("format not backprop", good, "\"format\":\"backprop\"", "\"format\":\"pytorch\"", 0,
             "\"format\" is 'pytorch', not 'backprop'");
    bad_edit("format missing", good, "\"format\":\"backprop\",", "", 0,
             "metadata lacks \"format\"");
    bad_edit("future format_version", good, "\"format_version\":\"1\"",
             "\"format_version\":\"2\"", 0, "format version 2 is newer than this backprop's 1");
    bad_edit("format_version not a number", good, "\"format_version\":\"1\"",
             "\"format_version\":\"one\"", 0, "\"format_version\" is 'one', not an integer");
    bad_edit("format_version missing", good, "\"format_version\":\"1\",", "", 0,
             "metadata lacks \"format_version\"");
    bad_edit("input_scale not x/255", good, "\"input_scale\":\"x/255\"",
             "\"input_scale\":\"x/127.5-1\"", 0, "input_scale 'x/127.5-1' is not the x/255");
    bad_edit("classes disagree with arch", good, "\"classes\":\"3\"", "\"classes\":\"4\"", 0,
             "metadata says 4 classes, the architecture 3 outputs");
    bad_edit("activation disagrees", good, "\"activation\":\"tanh\"",
             "\"activation\":\"relu\"", 0,
             "metadata \"activation\" is 'relu', the architecture says tanh");
    bad_edit("epoch not a number", good, "\"epoch\":\"7\"", "\"epoch\":\"7x\"", 0,
             "metadata \"epoch\" is '7x', not an integer");
    bad_edit("best_test_acc above 1", good, "\"best_test_acc\":\"0.",
             "\"best_test_acc\":\"1", 0, "\"best_test_acc\" is '1");
    bad_edit("unknown optimizer", good, "\"train.optimizer\":\"adam\"",
             "\"train.optimizer\":\"lion\"", 0, "\"train.optimizer\": unknown optimizer 'lion'");
    bad_edit("training setting out of range", good, "\"train.gamma\":\"0.300000012\"",
             "\"train.gamma\":\"2\"", 0, "training settings: opt.gamma");
    bad_edit("training setting missing", good, "\"train.batch\":\"33\",", "", 0,
             "metadata lacks \"train.batch\"");

    /* the architecture */
    bad_edit("arch not JSON", good, "\"arch\":\"{", "\"arch\":\"{oops", 0,
             "metadata \"arch\" is not a JSON object");
    bad_edit("arch a JSON array", good, "\"arch\":\"{", "\"arch\":\"[1],{", 0,
             "metadata \"arch\" is not a JSON object");
    bad_edit("arch starts with an activation", good, Q "layers" Q ":[",
             Q "layers" Q ":[{" Q "type" Q ":" Q "tanh" Q "},", 0,
             /* a layer list may start with an activation: then the tensors are misnamed */
             "unexpected tensor '0.weight'");
    bad_edit("arch: two linear layers in a row", good, "{" Q "type" Q ":" Q "tanh" Q "},", "", 0,
             /* two linear layers in a row are a valid list, numbered 0, 1: the file's 2 is not */
             "unexpected tensor '2.weight'");
    bad_edit("arch ends with an activation", good, Q "out" Q ":3}]",
             Q "out" Q ":3},{" Q "type" Q ":" Q "tanh" Q "}]", 0,
             "the last layer must be linear");
    bad_edit("arch: in-width mismatch", good, Q "in" Q ":16", Q "in" Q ":15", 0,
             "layer 2 takes 15 inputs, but 16 arrive");
    bad_edit("arch: input shape mismatch", good, Q "input" Q ":[4,5]", Q "input" Q ":[4,6]", 0,
             "layer 0 takes 20 inputs, but 24 arrive");
    bad_edit("arch: unknown activation", good, Q "tanh" Q, Q "gelu" Q, 0,
             "layer 1: unknown layer type 'gelu'");
    bad_edit("arch: two activations", good,
             Q "tanh" Q "},{" Q "type" Q ":" Q "linear" Q "," Q "in" Q ":8",
             Q "relu" Q "},{" Q "type" Q ":" Q "linear" Q "," Q "in" Q ":8", 0,
             /* a list may mix activations; the metadata must then say so */
             "metadata \"activation\" is 'tanh', the architecture says mixed");
    bad_edit("arch: layer without type", good, Q "type" Q ":" Q "linear" Q "," Q "in" Q ":20",
             Q "kind" Q ":" Q "linear" Q "," Q "in" Q ":20", 0, "layer 0 has no \"type\"");

    /* the tensors */
    bad_edit("dtype F16", good, "\"dtype\":\"F32\"", "\"dtype\":\"F16\"", 0,
             "tensor '0.weight' has dtype F16, expected F32");
    bad_edit("dtype missing", good, "\"dtype\":\"F32\",", "", 0,
             "tensor '0.weight' has dtype (none), expected F32");
    bad_edit("shape transposed", good, "\"shape\":[8,16]", "\"shape\":[16,8]", 0,
             "tensor '2.weight' does not have the shape [8, 16]");
    bad_edit("shape missing a dimension", good, "\"shape\":[8,16]", "\"shape\":[128]", 0,
             "tensor '2.weight' does not have the shape [8, 16]");
    bad_edit("data_offsets past the data", good, "[1984,1996]", "[1984,2000]", 0,
             "data_offsets [1984, 2000] lie outside the 1996 bytes");
    bad_edit("data_offsets backwards", good, "[1984,1996]", "[1996,1984]", 0,
             "data_offsets [1996, 1984] lie outside");
    bad_edit("data_offsets wrong length", good, "[1984,1996]", "[1984,1992]", 0,
             "span 8 bytes, its shape needs 12");
    bad_edit("data_offsets negative", good, "[1984,1996]", "[-12,0]", 0,
             "data_offsets must be two non-negative integers");
    bad_edit("data_offsets not a pair", good, "[1984,1996]", "[1984]", 0,
             "data_offsets must be two non-negative integers");
    bad_edit("data_offsets overlapping", good, "[1984,1996]", "[1980,1992]", 0,
             "tensors '4.weight' and '4.bias' overlap");
    bad_edit("data_offsets with a hole", good, "[1984,1996]", "[1988,2000]", 4,
             "4 bytes before tensor '4.bias' belong to no tensor");
    bad_edit("bytes after the last tensor", good, NULL, NULL, 4,
             "4 bytes after the last tensor belong to no tensor");
    bad_edit("a missing tensor", good,
             ",\"4.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[1984,1996]}", "", 0,
             "tensor '4.bias' is missing");
    bad_edit("an unexpected tensor", good, "\"0.bias\":",
             "\"1.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"0.bias\":",
             0, "unexpected tensor '1.weight'");
    bad_edit("optimizer state in a model", good, "\"0.bias\":",
             "\"optimizer.m\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"0.bias\":", 0, "unexpected tensor 'optimizer.m'");

    /* the values */
    const uint8_t flip = 0x5a;
    bad_patch("CRC mismatch (one byte changed)", good, 100, &flip, 1, 0,
              "the header says");
    {
        blob f = slurp(good);
        if (CHECK(f.b) && set_crc_text(&f, "xyz01234") && CHECK(spit(TP(p, "bad.st"), f.b, f.n) == 0))
            refused("crc32 not hex", p, BP_ERR_FORMAT, "\"crc32\" is 'xyz01234', not 8 hex");
        free(f.b);
    }
    /* A CRC written with a sign or a space in place of its leading zero is not 8 hex digits,
     * even though strtoul would read the right number from it. */
    if (leading_zero_crc(good, TP(p, "crc0.st"), 1280)) {
        blob f = slurp(p);
        char hex[16];
        snprintf(hex, sizeof hex, "+%07" PRIx32, data_crc(&f));
        if (set_crc_text(&f, hex) && CHECK(spit(TP(p, "bad.st"), f.b, f.n) == 0))
            refused("crc32 with a sign", p, BP_ERR_FORMAT, "not 8 hex digits");
        free(f.b);
    }
    uint8_t nan[4], inf[4], ninf[4];
    le32(nan, 0x7fc00000u);
    le32(inf, 0x7f800000u);
    le32(ninf, 0xff800000u);
    bad_patch("NaN weight (CRC recomputed)", good, 4 * 5, nan, 4, 1,
              "tensor '0.weight' holds NaN at index 5");
    bad_patch("Inf bias (CRC recomputed)", good, 1280 + 4 * 2, inf, 4, 1,
              "tensor '0.bias' holds an infinity at index 2");
    bad_patch("-Inf in the last layer", good, 1984 + 4 * 2, ninf, 4, 1,
              "tensor '4.bias' holds an infinity at index 2");
    /* and without the CRC fixed, the CRC trips first */
    bad_patch("NaN weight, CRC left", good, 4 * 5, nan, 4, 0, "CRC-32 of the tensor data");
}

/* A checkpoint of a short adam run with shuffling, then damaged. */
static void damaged_checkpoints(void)
{
    const int sizes[3] = {20, 6, 10};
    char good[600];
    TP(good, "goodck.st");
    bp_dataset tr = synth(37, 5);
    bp_model *m = make_model(sizes, 2, BP_ACT_SIGMOID, BP_INIT_AUTO, 2, 4, 5);
    if (!CHECK(tr.pixels && m))
        goto done;
    for (size_t i = 0; i < 5; i++)
        m->params[i] = 0.0f;
    bp_train_config cfg;
    bp_train_config_default(&cfg);
    cfg.epochs = 2;
    cfg.batch = 8;
    cfg.opt.kind = BP_OPT_ADAM;
    cfg.stop_after = 1;
    cfg.checkpoint_path = good;
    if (!CHECK(train(m, &tr, NULL, &cfg, NULL, NULL) == BP_OK))
        goto done;
    bp_model *ok = NULL;
    bp_checkpoint *ck = NULL;
    CHECK(load(good, &ok, NULL, &ck) == 0 && ck && ck->nperm == 37);
    bp_model_free(ok);
    bp_checkpoint_free(ck);

    blob g = slurp(good);
    uint64_t pb = 0, pe = 0, sb = 0, se = 0;
    int have = CHECK(g.b) && tensor_range(&g, "trainer.perm", &pb, &pe) &&
               tensor_range(&g, "optimizer.s", &sb, &se) && CHECK(pe - pb == 4 * 37);
    if (have) {
        const uint8_t *first = g.b + 8 + get_le64(g.b) + pb;
        uint8_t dup[4], big[4];
        memcpy(dup, first, 4); /* perm[0] again, as perm[1] */
        le32(big, 37);
        bad_patch("perm: a duplicate entry", good, pb + 4, dup, 4, 1,
                  "tensor 'trainer.perm' is not a permutation (entry 1 is");
        bad_patch("perm: an entry >= n", good, pb + 4 * 10, big, 4, 1,
                  "tensor 'trainer.perm' is not a permutation (entry 10 is 37)");
        uint8_t nan[4];
        le32(nan, 0x7fc00000u);
        bad_patch("NaN in optimizer.s", good, sb + 4 * 3, nan, 4, 1,
                  "tensor 'optimizer.s' holds NaN at index 3");
        char entry[200];
        snprintf(entry, sizeof entry,
                 ",\"trainer.perm\":{\"dtype\":\"U32\",\"shape\":[37],\"data_offsets\":[%" PRIu64
                 ",%" PRIu64 "]}", pb, pe);
        bad_edit("perm missing", good, entry, "", 0, "tensor 'trainer.perm' is missing");
        bad_edit("perm F32", good, "\"trainer.perm\":{\"dtype\":\"U32\"",
                 "\"trainer.perm\":{\"dtype\":\"F32\"", 0,
                 "tensor 'trainer.perm' has dtype F32, expected U32");
        bad_edit("optimizer.s wrong shape", good, "\"optimizer.s\":{\"dtype\":\"F32\",\"shape\":[",
                 "\"optimizer.s\":{\"dtype\":\"F32\",\"shape\":[2,", 0,
                 "tensor 'optimizer.s' does not have the shape");
    }
    bad_edit("rng not hex", good, "\"rng\":\"", "\"rng\":\"g", 0,
             "metadata \"rng\" is not 64 lower-case hex digits");
    {
        char zero[80];
        snprintf(zero, sizeof zero, "\"rng\":\"%064d\"", 0);
        blob f = slurp(good);
        const uint8_t *data;
        size_t nd;
        char *h = f.b ? header_of(&f, &data, &nd) : NULL, *at = h ? strstr(h, "\"rng\":\"") : NULL;
        if (CHECK(at && strlen(at) > strlen(zero))) {
            char old[80];
            memcpy(old, at, strlen(zero));
            old[strlen(zero)] = '\0';
            bad_edit("rng all zero", good, old, zero, 0, "the all-zero state");
        }
        free(h);
        free(f.b);
    }
    bad_edit("checkpoint flag not 1", good, "\"checkpoint\":\"1\"", "\"checkpoint\":\"yes\"", 0,
             "metadata \"checkpoint\" is 'yes', not 1");
    bad_edit("checkpoint without settings", good, "\"train.epochs\":\"2\",", "", 0,
             "a checkpoint without its training settings");
    bad_edit("optimizer.t missing", good, "\"optimizer.t\":", "\"optimizer.T\":", 0,
             "metadata lacks \"optimizer.t\"");
    free(g.b);
done:
    bp_model_free(m);
    free_ds(&tr);
}

/* Removes the files this test made (tmpdir holds nothing else). */
static void cleanup(void)
{
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    char p[1200];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(tmpdir);
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/bp-test-modelfile.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("round trips\n");
    round_trips();
    printf("checkpoints: stop after 3 epochs, resume for 2, compare with 5 straight\n");
    resume_case("sgd, cosine", BP_OPT_SGD, BP_SCHED_COSINE);
    resume_case("momentum, constant", BP_OPT_MOMENTUM, BP_SCHED_CONSTANT);
    resume_case("adam, step", BP_OPT_ADAM, BP_SCHED_STEP);
    printf("damaged files: each refused with its reason\n");
    damaged_models();
    damaged_checkpoints();
    printf("  %d damaged files refused\n", ncases);
    cleanup();
    return check_exit("test_modelfile");
}
