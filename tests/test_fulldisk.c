/* Nothing lost on a full disk: saving over an existing model, or training over an existing
 * checkpoint, on a disk that fills up part-way through the write must fail with BP_ERR_IO, say
 * which file and that it was not changed, leave the old file byte for byte as it was, and leave
 * no temporary beside it.
 *
 * The full disk is RLIMIT_FSIZE: past the limit a write fails (EFBIG) exactly where a full
 * disk's would (ENOSPC), with no privileges and on any file system. SIGXFSZ, which the kernel
 * sends with it, is ignored so the write returns its error instead. tests/fulldisk.sh does the
 * same with the CLI on a real full tmpfs where it may mount one. */
#include "backprop.h"
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define LIMIT 8192 /* bytes: the small files fit, the big model (≈ 32 KB of weights) does not */

/* The whole file; NULL if it cannot be read. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        unsigned char *b = realloc(buf, cap *= 2);
        if (!b)
            free(buf);
        buf = b;
    }
    fclose(f);
    *n = len;
    return buf;
}

/* dir holds exactly the names in want (NULL-terminated): nothing else, temporaries included. */
static int dir_holds_only(const char *dir, const char *const *want)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int ok = 1, found = 0, nwant = 0;
    while (want[nwant])
        nwant++;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        int known = 0;
        for (int i = 0; i < nwant; i++)
            known |= !strcmp(e->d_name, want[i]);
        if (!known)
            fprintf(stderr, "    unexpected file in %s: %s\n", dir, e->d_name);
        ok &= known;
        found += known;
    }
    closedir(d);
    return ok && found == nwant;
}

static bp_model *new_model(int hidden)
{
    int sizes[3] = {20, hidden, 10};
    if (!hidden)
        sizes[1] = 10;
    bp_model *m = NULL;
    bp_error err = {{0}, {0}};
    if (bp_model_create(&m, sizes, hidden ? 2 : 1, BP_ACT_RELU, &err) ||
        bp_model_init(m, BP_INIT_AUTO, 5, &err)) {
        fprintf(stderr, "model: %s\n", err.msg);
        bp_model_free(m);
        return NULL;
    }
    return m;
}

/* The file size limit, soft only: the hard one stays, so it can be lifted again. */
static int limit_file_size(rlim_t bytes)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) != 0)
        return -1;
    rl.rlim_cur = bytes == RLIM_INFINITY || bytes > rl.rlim_max ? rl.rlim_max : bytes;
    return setrlimit(RLIMIT_FSIZE, &rl);
}

/* The checks after a write that ran out of room: status, message, old bytes, directory. */
static void check_unchanged(const char *what, int st, const bp_error *err, const char *path,
                            const unsigned char *old, size_t old_n, const char *dir,
                            const char *const *names)
{
    CHECKF(st == BP_ERR_IO, "%s: %s (%s), expected BP_ERR_IO", what, bp_status_str(st),
           err->msg);
    CHECK_CONTAINS(err->msg, path);
    CHECK_CONTAINS(err->msg, "the file was not changed");
    size_t n = 0;
    unsigned char *now = slurp(path, &n);
    CHECKF(now && n == old_n && !memcmp(now, old, n), "%s: %s is not the file it was (%zu bytes, "
           "was %zu)", what, path, n, old_n);
    free(now);
    CHECKF(dir_holds_only(dir, names), "%s: %s holds more or less than it should", what, dir);
}

static bp_dataset make_set(uint32_t n)
{
    bp_dataset ds = {n, 4, 5, 20, 10, malloc((size_t)n * 20), malloc(n)};
    for (uint32_t i = 0; ds.pixels && ds.labels && i < n; i++) {
        ds.labels[i] = (uint8_t)(i % 10);
        for (int k = 0; k < 20; k++)
            ds.pixels[(size_t)i * 20 + k] = (uint8_t)(i * 7 + (uint32_t)k * 13);
    }
    return ds;
}

int main(void)
{
    signal(SIGXFSZ, SIG_IGN);
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char dir[512], model[600], ckpt[600];
    snprintf(dir, sizeof dir, "%s/bp-test-fulldisk.XXXXXX", base);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "test_fulldisk: mkdtemp in %s: %s\n", base, strerror(errno));
        return 1;
    }
    snprintf(model, sizeof model, "%s/m.safetensors", dir);
    snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", dir);
    bp_model *small = new_model(0), *big = new_model(256);
    bp_dataset train = make_set(30);
    bp_error err;
    if (!CHECK(small && big && train.pixels && train.labels))
        return check_exit("test_fulldisk");
    CHECKF(big->nparams * sizeof(float) > 2 * LIMIT, "the big model (%zu parameters) would fit "
           "under the limit", big->nparams);

    /* bp_model_save over an existing model */
    memset(&err, 0, sizeof err);
    CHECKF(bp_model_save(model, small, NULL, &err) == BP_OK, "saving the small model: %s",
           err.msg);
    size_t old_n = 0;
    unsigned char *old = slurp(model, &old_n);
    CHECK(old && old_n > 0 && old_n < LIMIT);
    const char *one[] = {"m.safetensors", NULL};
    if (!CHECK(limit_file_size(LIMIT) == 0))
        return check_exit("test_fulldisk");
    memset(&err, 0, sizeof err);
    int st = bp_model_save(model, big, NULL, &err);
    limit_file_size(RLIM_INFINITY);
    check_unchanged("bp_model_save", st, &err, model, old, old_n, dir, one);
    free(old);

    /* bp_train over an existing checkpoint: a run of the small model leaves one, a run of the
     * big model cannot write its own over it */
    bp_train_config cfg;
    bp_train_config_default(&cfg);
    cfg.epochs = 1;
    cfg.batch = 10;
    cfg.threads = 1;
    cfg.opt.kind = BP_OPT_MOMENTUM;
    cfg.checkpoint_path = ckpt;
    memset(&err, 0, sizeof err);
    CHECKF(bp_train(small, &train, NULL, &cfg, NULL, NULL, &err) == BP_OK, "training the small "
           "model: %s", err.msg);
    old = slurp(ckpt, &old_n);
    CHECK(old && old_n > 0 && old_n < LIMIT);
    const char *two[] = {"m.safetensors", "run.ckpt", NULL};
    if (!CHECK(limit_file_size(LIMIT) == 0))
        return check_exit("test_fulldisk");
    memset(&err, 0, sizeof err);
    st = bp_train(big, &train, NULL, &cfg, NULL, NULL, &err);
    limit_file_size(RLIM_INFINITY);
    check_unchanged("bp_train checkpoint", st, &err, ckpt, old, old_n, dir, two);
    free(old);

    /* and the limit did not stop a write that fits: the big model saves once it is lifted */
    memset(&err, 0, sizeof err);
    CHECKF(bp_model_save(model, big, NULL, &err) == BP_OK, "saving without a limit: %s",
           err.msg);

    unlink(model);
    unlink(ckpt);
    rmdir(dir);
    bp_model_free(small);
    bp_model_free(big);
    free(train.pixels);
    free(train.labels);
    return check_exit("test_fulldisk");
}
