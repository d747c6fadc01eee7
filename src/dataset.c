/* In-memory datasets: uint8 pixels as in the file (47 MB for MNIST's training set, a quarter of
 * its float form), converted to float in [0,1] one batch at a time; seeded shuffling. */
#include "internal.h"
#include "kernels.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int bp_dataset_load(bp_dataset **out, const char *images_path, const char *labels_path,
                    uint32_t classes, bp_error *err)
{
    *out = NULL;
    bp_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return bp_fail(err, BP_ERR_NOMEM, "out of memory");
    uint32_t nl = 0;
    int st = bp_idx_read_images(images_path, &ds->pixels, &ds->n, &ds->rows, &ds->cols, err);
    if (st)
        goto error;
    st = bp_idx_read_labels(labels_path, &ds->labels, &nl, err);
    if (st)
        goto error;
    st = BP_ERR_FORMAT;
    if (nl != ds->n) {
        bp_fail(err, st, "%s: %u labels, but %s has %u images", labels_path, nl, images_path,
                ds->n);
        goto error;
    }
    for (uint32_t i = 0; i < nl; i++)
        if (ds->labels[i] >= classes) {
            bp_fail(err, st, "%s: label %u at index %u is not below %u classes", labels_path,
                    ds->labels[i], i, classes);
            goto error;
        }
    ds->dim = ds->rows * ds->cols;
    ds->classes = classes;
    *out = ds;
    return BP_OK;
error:
    bp_dataset_free(ds);
    return st;
}

void bp_dataset_free(bp_dataset *ds)
{
    if (!ds)
        return;
    free(ds->pixels);
    free(ds->labels);
    free(ds);
}

/* 0 if path names something (stat follows links); else ENOENT for nothing at all, or the
 * reason it cannot be looked at (EACCES, ELOOP, …; a dangling link: ENOENT with *dangling). */
static int probe(const char *path, int *dangling)
{
    struct stat sb;
    if (stat(path, &sb) == 0)
        return 0;
    int e = errno;
    *dangling = e == ENOENT && lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode);
    return e;
}

/* dir/NAME if it exists, else dir/NAME.gz if that exists; "not found" only when neither is
 * there at all: any other reason is reported as it is. */
static int find_file(char *buf, size_t len, const char *dir, const char *name, bp_error *err)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);
    if (n < 0 || (size_t)n + 4 > len)
        return bp_fail(err, BP_ERR_ARG, "%s: path too long", dir);
    for (int gz = 0; gz < 2; gz++) {
        snprintf(buf, len, gz ? "%s/%s.gz" : "%s/%s", dir, name);
        int dangling = 0, e = probe(buf, &dangling);
        if (e == 0)
            return BP_OK;
        if (dangling)
            return bp_fail(err, BP_ERR_IO, "%s: a symbolic link to a file that does not exist",
                           buf);
        if (e != ENOENT)
            return bp_fail(err, BP_ERR_IO, "%s: %s", buf, strerror(e));
    }
    snprintf(buf, len, "%s/%s", dir, name);
    return bp_fail(err, BP_ERR_IO, "%s: not found (nor %s.gz); data/fetch.sh downloads MNIST",
                   buf, name);
}

int bp_dataset_load_dir(const char *dir, bp_dataset **train, bp_dataset **test, bp_error *err)
{
    static const char *names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                   "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    char path[4][4096];
    *train = *test = NULL;
    if (!*dir)
        return bp_fail(err, BP_ERR_ARG, "the data directory name is empty");
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return bp_fail(err, BP_ERR_IO, "%s: cannot open the data directory: %s", dir,
                       strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return bp_fail(err, BP_ERR_IO, "%s: not a directory (--data names the directory that "
                       "holds the four IDX files)", dir);
    for (int i = 0; i < 4; i++) {
        int st = find_file(path[i], sizeof path[i], dir, names[i], err);
        if (st)
            return st;
    }
    int st = bp_dataset_load(train, path[0], path[1], BP_CLASSES, err);
    if (!st)
        st = bp_dataset_load(test, path[2], path[3], BP_CLASSES, err);
    if (!st && ((*test)->rows != (*train)->rows || (*test)->cols != (*train)->cols))
        st = bp_fail(err, BP_ERR_FORMAT, "%s: images are %ux%u, but the training images are %ux%u",
                     path[2], (*test)->rows, (*test)->cols, (*train)->rows, (*train)->cols);
    if (st) {
        bp_dataset_free(*train);
        bp_dataset_free(*test);
        *train = *test = NULL;
    }
    return st;
}

void bp_dataset_gather(const bp_dataset *ds, const uint32_t *idx, uint32_t first, int B,
                       float *X, uint8_t *labels_out)
{
    kernels()->gather(X, ds->pixels, ds->dim, idx, first, B);
    for (int r = 0; labels_out && r < B; r++)
        labels_out[r] = ds->labels[idx ? idx[r] : first + (uint32_t)r];
}

void dataset_prefetch(const bp_dataset *ds, const uint32_t *idx, int B)
{
#if defined(__GNUC__)
    for (int r = 0; r < B; r++) {
        const char *p = (const char *)(ds->pixels + (size_t)idx[r] * ds->dim);
        for (size_t o = 0; o < ds->dim; o += 64)
            __builtin_prefetch(p + o, 0, 1); /* read, keep in the outer caches */
    }
#else
    (void)ds, (void)idx, (void)B;
#endif
}

typedef struct {
    const bp_dataset *ds;
    const uint32_t *idx;
    uint32_t first;
    int B;
    float *X;
    uint8_t *labels;
} gather_job;

static void gather_task(void *ctx, int t, int n)
{
    const gather_job *j = ctx;
    int lo, hi;
    pool_range(j->B, 1, t, n, &lo, &hi);
    if (hi > lo)
        bp_dataset_gather(j->ds, j->idx ? j->idx + lo : NULL, j->first + (uint32_t)lo, hi - lo,
                          j->X + (size_t)lo * j->ds->dim, j->labels ? j->labels + lo : NULL);
}

void dataset_gather_threads(int threads, const bp_dataset *ds, const uint32_t *idx,
                            uint32_t first, int B, float *X, uint8_t *labels_out)
{
    gather_job j = {ds, idx, first, B, X, labels_out};
    /* In chunks of at least 16 kB of pixels, up to four per thread (as linear.c splits). */
    long k = (long)B * (long)ds->dim / (1 << 14);
    int chunks = threads <= 1 || k < 1 ? 1 : k < 4 * threads ? (int)k : 4 * threads;
    pool_run(threads, chunks, gather_task, &j);
}

void bp_shuffle(uint32_t *perm, uint32_t n, bp_rng *rng)
{
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = bp_rng_below(rng, i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}
