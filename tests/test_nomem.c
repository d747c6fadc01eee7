/* Allocation failure, everywhere: a short training run and the loads that follow it are repeated
 * with the N-th allocation failing, for N = 1, 2, … until a run sees no failure at all. Every
 * run that had an allocation refused must end in BP_ERR_NOMEM with a message (never a crash,
 * never another status, never a silent success), leave no temporary file behind, and free
 * everything it allocated.
 *
 * How the allocations are reached: this test is linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free (tests/meson.build), so every call
 * the library's own code (the static library) and this file make goes to the __wrap_ functions
 * below. jansson is a shared library, which --wrap cannot reach; json_set_alloc_funcs sends its
 * allocations through the same wrappers, so the JSON the model files are built from and parsed
 * into fails too. Allocations inside libc (fopen's FILE, mkstemp) and OpenBLAS's buffers are
 * not counted: they stay out of reach of the wrappers, so an fopen cannot fail with ENOMEM here.
 * Should one ever be reached (a libc that routes them through the wrapped symbols), the library
 * would report the I/O call's failure as BP_ERR_IO; that is accepted only when the message
 * carries strerror(ENOMEM) or "out of memory", i.e. the caller is still told the cause.
 *
 * Under AddressSanitizer the wrapping works as it is (__real_malloc is the sanitizer's malloc,
 * which --wrap leaves alone), so the test runs there too rather than skipping. */
#define _GNU_SOURCE /* dladdr, to tell jansson's frames (json_alloc) */
#include "backprop.h"
#include "check.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- counting allocator ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

/* While armed, allocation number fail_at (1-based, counted from arming) returns NULL; the
 * others succeed. Only one fails per run: a library that handles one refusal handles the
 * first of several, and a single refusal is what tells a swallowed failure (the run still
 * succeeds) from a handled one. */
static struct {
    int armed;
    long count;   /* allocations since arming */
    long fail_at; /* 0: none fails */
    int injected; /* fail_at was reached */
    int skipped;  /* fail_at fell on jansson's unchecked allocation (json_alloc) */
} A;

/* Live allocations made while armed: an open-addressing table keyed by pointer, with
 * tombstones; cleared after each run (when it must be empty). seq is the allocation's number,
 * so a leak names which one it was. Pointers allocated before arming, or by libc itself, are
 * not in it and are freed without bookkeeping. */
#define SLOTS (1u << 17)
#define TOMB ((void *)1)
static struct {
    void *p[SLOTS];
    long seq[SLOTS];
    size_t size[SLOTS];
    long live;
    long used; /* live + tombstones: probing needs an empty slot */
    int overflow;
} T;

static size_t slot_of(const void *p)
{
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 40) & (SLOTS - 1);
}

static void track(void *p, size_t size)
{
    if (T.used >= (long)(SLOTS - SLOTS / 4)) {
        T.overflow = 1; /* reported as a failure: the table is too small for the scenario */
        return;
    }
    size_t i = slot_of(p);
    while (T.p[i] && T.p[i] != TOMB)
        i = (i + 1) & (SLOTS - 1);
    if (!T.p[i])
        T.used++;
    T.p[i] = p;
    T.seq[i] = A.count;
    T.size[i] = size;
    T.live++;
}

/* Removes p if it is tracked; 1 if it was. */
static int untrack(const void *p)
{
    if (!p)
        return 0;
    for (size_t i = slot_of(p); T.p[i]; i = (i + 1) & (SLOTS - 1))
        if (T.p[i] == p) {
            T.p[i] = TOMB;
            T.live--;
            return 1;
        }
    return 0;
}

/* The next allocation's verdict: 1 when it is the one to refuse. */
static int refuse(void)
{
    if (!A.armed)
        return 0;
    if (++A.count == A.fail_at) {
        A.injected = 1;
        errno = ENOMEM;
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n)
{
    if (refuse())
        return NULL;
    void *p = __real_malloc(n);
    if (p && A.armed)
        track(p, n);
    return p;
}

void *__wrap_calloc(size_t k, size_t n)
{
    if (refuse())
        return NULL;
    void *p = __real_calloc(k, n);
    if (p && A.armed)
        track(p, k * n);
    return p;
}

void *__wrap_realloc(void *p, size_t n)
{
    if (refuse())
        return NULL; /* as realloc: p is left as it was */
    int was = untrack(p);
    void *q = __real_realloc(p, n);
    if (!q && n) { /* a real failure: p is still there */
        if (was)
            track(p, n);
        return NULL;
    }
    if (q && (A.armed || was))
        track(q, n);
    return q;
}

void __wrap_free(void *p)
{
    untrack(p);
    __real_free(p);
}

/* jansson's decoder does not check one allocation: the growth of the buffer a token is
 * gathered in (its lex_save drops strbuffer_append_byte's result). When that growth fails, the
 * token silently loses a character, and then the decoded text is altered without any error, or
 * the string copy that follows runs past the end of the buffer. That is a defect of jansson,
 * not something a caller can handle, so this one allocation site is never refused (each N that
 * lands on it is counted as skipped). The site is found at start-up: decoding one long string
 * makes it allocate again and again as the buffer doubles. It is recognised by the first return
 * address in libjansson and the one above it (backtrace, taken only for the allocation about to
 * be refused). */
static void *lexer_site[2];
static int calibrating;
static void *calib[64][2];
static int ncalib;

static __attribute__((noinline)) int jansson_site(void *site[2])
{
    void *b[8];
    int k = backtrace(b, 8);
    /* The first frame in libjansson and its caller: how many frames this file and a
     * sanitizer's interceptor of backtrace add above it differs between builds. */
    for (int i = 0; i + 1 < k; i++) {
        Dl_info di;
        if (dladdr(b[i], &di) && di.dli_fname && strstr(di.dli_fname, "jansson")) {
            site[0] = b[i], site[1] = b[i + 1];
            return 1;
        }
    }
    return 0;
}

static __attribute__((noinline)) void *json_alloc(size_t n)
{
    void *site[2];
    if (calibrating && ncalib < 64 && jansson_site(site)) {
        calib[ncalib][0] = site[0], calib[ncalib][1] = site[1];
        ncalib++;
    }
    if (A.armed && A.count + 1 == A.fail_at && lexer_site[0] && jansson_site(site) &&
        site[0] == lexer_site[0] && site[1] == lexer_site[1]) {
        A.count++;
        A.skipped = 1;
        void *p = __real_malloc(n);
        if (p)
            track(p, n);
        return p;
    }
    return __wrap_malloc(n);
}
static void json_release(void *p) { __wrap_free(p); }

/* The token buffer's growth site: the call site seen most often while decoding a string of
 * 600 characters (the buffer starts at 16 bytes and doubles: 5 growths, every other site once). */
static int find_lexer_site(void)
{
    char text[640];
    memset(text, 'a', sizeof text);
    text[0] = '[', text[1] = '"';
    memcpy(text + sizeof text - 3, "\"]", 3);
    calibrating = 1;
    json_t *v = json_loads(text, 0, NULL);
    calibrating = 0;
    int decoded = v != NULL;
    json_decref(v);
    int best = -1, best_n = 0;
    for (int i = 0; i < ncalib; i++) {
        int same = 0;
        for (int j = 0; j < ncalib; j++)
            same += calib[j][0] == calib[i][0] && calib[j][1] == calib[i][1];
        if (same > best_n)
            best = i, best_n = same;
    }
    if (!decoded || best < 0 || best_n < 4)
        return -1;
    lexer_site[0] = calib[best][0], lexer_site[1] = calib[best][1];
    return best_n;
}

static void arm(long fail_at)
{
    A.count = 0;
    A.fail_at = fail_at;
    A.injected = 0;
    A.skipped = 0;
    A.armed = 1;
}

static void disarm(void) { A.armed = 0; }

/* After a run: every allocation it made must have been freed. Lists the first few leaks. */
static int leaks_reported(long n_run)
{
    if (T.overflow) {
        fprintf(stderr, "N=%ld: allocation table overflow (raise SLOTS)\n", n_run);
        return 1;
    }
    if (T.live == 0)
        return 0;
    fprintf(stderr, "N=%ld: %ld allocation(s) leaked:", n_run, T.live);
    int shown = 0;
    for (size_t i = 0; i < SLOTS && shown < 8; i++)
        if (T.p[i] && T.p[i] != TOMB) {
            fprintf(stderr, " #%ld (%zu bytes)", T.seq[i], T.size[i]);
            shown++;
        }
    fprintf(stderr, "\n");
    return 1;
}

/* Forgets everything (the leaked blocks, if any, are freed so the next run starts clean). */
static void table_clear(void)
{
    for (size_t i = 0; i < SLOTS; i++)
        if (T.p[i] && T.p[i] != TOMB)
            __real_free(T.p[i]);
    memset(&T, 0, sizeof T);
}

/* ---- the scenario ---- */

#define N_TRAIN 40
#define N_TEST 20
#define ROWS 4
#define COLS 5

/* 10 classes, a random prototype per class plus noise: enough for training to mean something.
 * Allocated before arming, so not part of any run. */
static bp_dataset make_set(uint32_t n, uint64_t seed)
{
    bp_dataset ds = {n, ROWS, COLS, ROWS * COLS, BP_CLASSES, NULL, NULL};
    ds.pixels = malloc((size_t)n * ds.dim);
    ds.labels = malloc(n);
    if (!ds.pixels || !ds.labels)
        return ds;
    bp_rng rng;
    bp_rng_seed(&rng, 99);
    uint8_t proto[BP_CLASSES][ROWS * COLS];
    for (int c = 0; c < BP_CLASSES; c++)
        for (int i = 0; i < ROWS * COLS; i++)
            proto[c][i] = (uint8_t)bp_rng_below(&rng, 200);
    bp_rng_seed(&rng, seed);
    for (uint32_t s = 0; s < n; s++) {
        int c = (int)(s % BP_CLASSES);
        ds.labels[s] = (uint8_t)c;
        for (uint32_t i = 0; i < ds.dim; i++)
            ds.pixels[(size_t)s * ds.dim + i] = (uint8_t)(proto[c][i] + bp_rng_below(&rng, 40));
    }
    return ds;
}

typedef struct {
    char dir[256];
    char model[300], ckpt[300], log[300];
    const bp_dataset *train, *test;
    float *probs; /* N_TEST × classes, the caller's */
} scene;

/* What a run leaves for the caller to free, and how far it got. */
typedef struct {
    bp_model *m, *saved, *resumed;
    bp_checkpoint *ck;
    bp_eval_result res;
    const char *step; /* the call that failed, or "" */
} outcome;

static int run_scenario(const scene *sc, outcome *o, bp_error *err)
{
    static const int sizes[] = {ROWS * COLS, 12, BP_CLASSES};
    memset(o, 0, sizeof *o);
    int st;
    o->step = "bp_model_create";
    if ((st = bp_model_create(&o->m, sizes, 2, BP_ACT_RELU, err)))
        return st;
    o->step = "bp_model_init";
    if ((st = bp_model_init(o->m, BP_INIT_AUTO, 3, err)))
        return st;
    o->m->input_rows = ROWS, o->m->input_cols = COLS;

    bp_train_config cfg;
    bp_train_config_default(&cfg);
    cfg.epochs = 2;
    cfg.batch = 16; /* 40 samples: a partial last batch too */
    cfg.seed = 3;
    cfg.threads = 1;
    cfg.opt.kind = BP_OPT_ADAM; /* both optimizer tensors in the checkpoint */
    cfg.save_path = sc->model;
    cfg.checkpoint_path = sc->ckpt;
    cfg.checkpoint_every = 1; /* a checkpoint after each epoch: written over the first */
    cfg.log_path = sc->log;
    o->step = "bp_train";
    if ((st = bp_train(o->m, sc->train, sc->test, &cfg, NULL, NULL, err)))
        return st;
    o->step = "bp_model_load (model)";
    bp_model_info info;
    if ((st = bp_model_load(sc->model, &o->saved, &info, NULL, err)))
        return st;
    o->step = "bp_model_load (checkpoint)";
    if ((st = bp_model_load(sc->ckpt, &o->resumed, &info, &o->ck, err)))
        return st;
    o->step = "bp_evaluate";
    if ((st = bp_evaluate(o->saved, sc->test, 8, 1, &o->res, sc->probs, err)))
        return st;
    o->step = "";
    return BP_OK;
}

static void outcome_free(outcome *o)
{
    bp_model_free(o->m);
    bp_model_free(o->saved);
    bp_model_free(o->resumed);
    bp_checkpoint_free(o->ck);
    memset(o, 0, sizeof *o);
}

/* Removes every entry of dir; returns how many had a bp_file temporary's name (".tmp"). */
static int clean_dir(const char *dir, char *names, size_t len)
{
    DIR *d = opendir(dir);
    int temps = 0;
    if (names && len)
        names[0] = '\0';
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (strstr(e->d_name, ".tmp")) {
            temps++;
            if (names && strlen(names) + strlen(e->d_name) + 2 < len) {
                strcat(names, " ");
                strcat(names, e->d_name);
            }
        }
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    return temps;
}

/* A tmpfs when the machine has one (fsync costs nothing there, and the test fsyncs a few
 * thousand times), else TMPDIR or /tmp. */
static int make_dir(char *buf, size_t len)
{
    const char *bases[3] = {"/dev/shm", getenv("TMPDIR"), "/tmp"};
    for (int i = 0; i < 3; i++) {
        struct stat sb;
        if (!bases[i] || stat(bases[i], &sb) || !S_ISDIR(sb.st_mode) || access(bases[i], W_OK))
            continue;
        snprintf(buf, len, "%s/bp-test-nomem.XXXXXX", bases[i]);
        if (mkdtemp(buf))
            return 0;
    }
    return -1;
}

/* ---- the other side: bad JSON stays BP_ERR_FORMAT ----
 * The loader tells jansson's allocation failures from bad input by checking, when jansson
 * refuses a header, whether the text is well-formed JSON after all. A header that really is
 * malformed must still be BP_ERR_FORMAT: src is a model file, patched here by replacing the first
 * `from` in its header with `to` (the 8-byte length is rewritten to match). */
static void expect_bad_json(const char *src, const char *dst, const char *from, const char *to,
                            const char *phrase)
{
    FILE *f = fopen(src, "rb");
    static unsigned char buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    if (!CHECKF(n > 8 && n < sizeof buf, "cannot read %s", src))
        return;
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--)
        hlen = hlen << 8 | buf[k];
    char header[8192];
    if (!CHECK(hlen < sizeof header && 8 + hlen <= n))
        return;
    memcpy(header, buf + 8, hlen);
    header[hlen] = '\0';
    char *at = strstr(header, from);
    if (!CHECKF(at, "'%s' is not in the header", from))
        return;
    char patched[8400];
    int len = snprintf(patched, sizeof patched, "%.*s%s%s", (int)(at - header), header, to,
                       at + strlen(from));
    f = fopen(dst, "wb");
    if (!CHECK(f))
        return;
    for (int k = 0; k < 8; k++)
        fputc((int)(((uint64_t)len >> (8 * k)) & 0xff), f);
    fwrite(patched, 1, (size_t)len, f);
    fwrite(buf + 8 + hlen, 1, n - 8 - hlen, f);
    fclose(f);
    bp_model *m = NULL;
    bp_error err;
    memset(&err, 0, sizeof err);
    int st = bp_model_load(dst, &m, NULL, NULL, &err);
    CHECKF(st == BP_ERR_FORMAT, "'%s' → '%s': %s (%s), expected BP_ERR_FORMAT", from, to,
           bp_status_str(st), err.msg);
    CHECK_CONTAINS(err.msg, phrase);
    CHECK_CONTAINS(err.msg, dst);
    bp_model_free(m);
    unlink(dst);
}

static void bad_json_stays_format(const char *model, const char *dir)
{
    char dst[320];
    snprintf(dst, sizeof dst, "%s/patched.safetensors", dir);
    expect_bad_json(model, dst, "\"format\":", "\"format\" ", "not valid JSON");
    expect_bad_json(model, dst, "\"activation\":", "\"format\":", "duplicate");
    expect_bad_json(model, dst, "\"x/255\"", "\"x\\ud800\"", "not valid JSON");
    expect_bad_json(model, dst, "\"__metadata__\":{", "\"__metadata__\":{{", "not valid JSON");
    expect_bad_json(model, dst, "\\\"layers\\\":[", "\\\"layers\\\":(", "\"arch\"");
    expect_bad_json(model, dst, "\\\"layers\\\":[", "\\\"layers\\\":[[", "\"arch\"");
}

/* The accepted statuses of a run that had an allocation refused (see the top comment). */
static int nomem_reported(int st, const bp_error *err)
{
    if (st == BP_ERR_NOMEM)
        return err->msg[0] != '\0';
    if (st == BP_ERR_IO)
        return strstr(err->msg, "out of memory") || strstr(err->msg, strerror(ENOMEM));
    return 0;
}

int main(void)
{
    json_set_alloc_funcs(json_alloc, json_release);
    int growths = find_lexer_site();
    if (!CHECKF(growths > 0, "jansson's token buffer growth was not found"))
        return check_exit("test_nomem");
    scene sc;
    memset(&sc, 0, sizeof sc);
    if (make_dir(sc.dir, sizeof sc.dir)) {
        fprintf(stderr, "test_nomem: cannot make a temporary directory\n");
        return 1;
    }
    snprintf(sc.model, sizeof sc.model, "%s/model.safetensors", sc.dir);
    snprintf(sc.ckpt, sizeof sc.ckpt, "%s/run.ckpt", sc.dir);
    snprintf(sc.log, sizeof sc.log, "%s/train.csv", sc.dir);
    bp_dataset train = make_set(N_TRAIN, 1), test = make_set(N_TEST, 2);
    sc.train = &train;
    sc.test = &test;
    sc.probs = malloc((size_t)N_TEST * BP_CLASSES * sizeof *sc.probs);
    if (!CHECK(train.pixels && train.labels && test.pixels && test.labels && sc.probs))
        return check_exit("test_nomem");

    /* A first run with nothing refused: the scenario works, and says how many allocations a
     * run makes, which bounds the loop below. */
    outcome o;
    bp_error err;
    memset(&err, 0, sizeof err);
    arm(0);
    int st = run_scenario(&sc, &o, &err);
    disarm();
    long total = A.count;
    CHECKF(st == BP_OK, "the scenario without failures: %s at %s: %s", bp_status_str(st), o.step,
           err.msg);
    CHECK(o.ck != NULL);
    CHECK_INT_EQ(o.res.n, N_TEST);
    CHECK(o.saved && o.m && o.saved->nparams == o.m->nparams &&
          !memcmp(o.saved->params, o.m->params, o.m->nparams * sizeof(float)));
    outcome_free(&o);
    CHECK(!leaks_reported(0));
    table_clear();
    CHECKF(total > 50, "only %ld allocations in a run: is the wrapping in effect?", total);
    bad_json_stays_format(sc.model, sc.dir);
    clean_dir(sc.dir, NULL, 0);

    /* Fail each allocation in turn: a run that had one refused must fail, as BP_ERR_NOMEM. The
     * loop ends at the first N past the run's last allocation (a run with nothing refused). */
    long tried = 0, bad = 0, skipped = 0;
    int done = 0;
    for (long n = 1; !done && n <= 10 * total + 100; n++) {
        memset(&err, 0, sizeof err);
        arm(n);
        st = run_scenario(&sc, &o, &err);
        disarm();
        int injected = A.injected;
        if (A.skipped) {
            skipped++;
            injected = 1; /* not past the end: the loop goes on */
        }
        const char *step = o.step;
        outcome_free(&o);
        char temps[256];
        int ntemp = clean_dir(sc.dir, temps, sizeof temps);
        int ok = 1;
        if (A.skipped) {
            ok = CHECKF(st == BP_OK, "N=%ld (skipped: jansson's token buffer): %s at %s: %s", n,
                        bp_status_str(st), step, err.msg);
        } else if (!injected) {
            done = 1; /* the run made fewer than n allocations: every point has been tried */
            ok = CHECKF(st == BP_OK, "N=%ld (no failure injected): %s at %s: %s", n,
                        bp_status_str(st), step, err.msg);
        } else {
            tried++;
            ok &= CHECKF(st != BP_OK, "N=%ld: the refused allocation was swallowed: the run "
                         "succeeded", n);
            ok &= CHECKF(st == BP_OK || nomem_reported(st, &err),
                         "N=%ld: %s (%d) with message '%s' at %s; expected BP_ERR_NOMEM with a "
                         "message", n, bp_status_str(st), st, err.msg, step);
            ok &= CHECKF(ntemp == 0, "N=%ld: temporary file(s) left:%s", n, temps);
        }
        ok &= CHECK(!leaks_reported(n));
        table_clear();
        bad += !ok;
        if (bad >= 20) {
            fprintf(stderr, "test_nomem: stopping after 20 failing allocation points\n");
            break;
        }
    }
    CHECKF(done, "the loop ended before a run without a refused allocation");
    printf("test_nomem: %ld allocations in a run; %ld allocation points failed one at a time, "
           "%ld of them wrongly handled; %ld not failed (jansson's token buffer growth)\n",
           total, tried, bad, skipped);

    rmdir(sc.dir);
    free(sc.probs);
    free(train.pixels);
    free(train.labels);
    free(test.pixels);
    free(test.labels);
    return check_exit("test_nomem");
}
