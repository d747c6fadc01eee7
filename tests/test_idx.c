/* The IDX reader and dataset loading (src/idx.c, src/dataset.c) on files written here, raw and
 * gzip, in a private temporary directory that is removed at the end.
 *
 * Good files must round-trip pixels and labels through bp_idx_read_images/labels,
 * bp_dataset_load and bp_dataset_load_dir (which finds NAME and NAME.gz). Every bad file must
 * be refused with the right status and a one-line message naming the file and saying what is
 * wrong; the phrases checked are the ones src/idx.c and src/dataset.c promise. A header that
 * claims gigabytes must be refused at once, without allocating them. */
#include "check.h"
#include "backprop.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static char root[4096];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* root/name into buf (subdirectories are created by the caller). */
static const char *at(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", root, name);
    return buf;
}

static int write_file(const char *path, const void *data, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (!f)
            return -1;
        int ok = n == 0 || gzwrite(f, data, (unsigned)n) == (int)n;
        return gzclose(f) == Z_OK && ok ? 0 : -1;
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = malloc(1 << 16);
    *n = buf ? fread(buf, 1, 1 << 16, f) : 0;
    fclose(f);
    return buf;
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* An IDX file in memory: magic 00 00 type ndims, ndims big-endian sizes, then payload bytes
 * (payload_len of them, which need not match the sizes). Returns the total length. */
static size_t make_idx(unsigned char *out, unsigned type, unsigned ndims, const uint32_t *dims,
                       const unsigned char *payload, size_t payload_len)
{
    out[0] = 0, out[1] = 0, out[2] = (unsigned char)type, out[3] = (unsigned char)ndims;
    for (unsigned d = 0; d < ndims; d++)
        put_be32(out + 4 + 4 * d, dims[d]);
    size_t h = 4 + 4 * (size_t)ndims;
    if (payload_len)
        memcpy(out + h, payload, payload_len);
    return h + payload_len;
}

/* The good data: 5 images of 3×4 and their labels. */
enum { N = 5, ROWS = 3, COLS = 4, DIM = ROWS * COLS };
static unsigned char pixels[N * DIM], labels[N] = {3, 0, 9, 1, 7};

static size_t good_images(unsigned char *out, uint32_t n, uint32_t rows, uint32_t cols)
{
    const uint32_t dims[3] = {n, rows, cols};
    return make_idx(out, 0x08, 3, dims, pixels, (size_t)n * rows * cols);
}

static size_t good_labels(unsigned char *out, uint32_t n)
{
    const uint32_t dims[1] = {n};
    return make_idx(out, 0x08, 1, dims, labels, n);
}

static void round_trip(void)
{
    unsigned char buf[256];
    char p[4200];
    for (int gz = 0; gz < 2; gz++) {
        size_t n = good_images(buf, N, ROWS, COLS);
        at(p, sizeof p, gz ? "img.gz" : "img");
        CHECK(write_file(p, buf, n, gz) == 0);
        uint8_t *px = NULL;
        uint32_t cnt = 0, r = 0, c = 0;
        bp_error err = {0};
        CHECKF(bp_idx_read_images(p, &px, &cnt, &r, &c, &err) == BP_OK, "%s", err.msg);
        CHECK(cnt == N && r == ROWS && c == COLS);
        CHECK(px && memcmp(px, pixels, sizeof pixels) == 0);
        free(px);

        n = good_labels(buf, N);
        at(p, sizeof p, gz ? "lab.gz" : "lab");
        CHECK(write_file(p, buf, n, gz) == 0);
        uint8_t *lb = NULL;
        CHECKF(bp_idx_read_labels(p, &lb, &cnt, &err) == BP_OK, "%s", err.msg);
        CHECK(cnt == N);
        CHECK(lb && memcmp(lb, labels, sizeof labels) == 0);
        free(lb);
    }

    /* bp_dataset_load mixing a raw image file with gzip labels */
    char pi[4200], pl[4200];
    bp_dataset *ds = NULL;
    bp_error err = {0};
    CHECKF(bp_dataset_load(&ds, at(pi, sizeof pi, "img"), at(pl, sizeof pl, "lab.gz"), 10,
                           &err) == BP_OK,
           "%s", err.msg);
    if (CHECK(ds)) {
        CHECK(ds->n == N && ds->rows == ROWS && ds->cols == COLS && ds->dim == DIM);
        CHECK_INT_EQ(ds->classes, 10);
        CHECK(memcmp(ds->pixels, pixels, sizeof pixels) == 0);
        CHECK(memcmp(ds->labels, labels, sizeof labels) == 0);

        /* gather: rows picked by idx (or consecutive from first), scaled by 1/255 */
        float X[3 * DIM];
        uint8_t lab[3];
        const uint32_t idx[3] = {4, 0, 2};
        bp_dataset_gather(ds, idx, 0, 3, X, lab);
        double worst = 0.0;
        int lab_ok = 1;
        for (int b = 0; b < 3; b++) {
            for (int i = 0; i < DIM; i++)
                worst = fmax(worst, fabs(X[b * DIM + i] - pixels[idx[b] * DIM + i] / 255.0));
            lab_ok &= lab[b] == labels[idx[b]];
        }
        bp_dataset_gather(ds, NULL, 2, 3, X, lab);
        for (int b = 0; b < 3; b++) {
            for (int i = 0; i < DIM; i++)
                worst = fmax(worst, fabs(X[b * DIM + i] - pixels[(2 + b) * DIM + i] / 255.0));
            lab_ok &= lab[b] == labels[2 + b];
        }
        /* float(p)·float(1/255) vs p/255 in double: a few ulp of 1 */
        CHECK_MAXDIFF("gather: X - pixels/255", worst, 1e-6);
        CHECK(lab_ok);
    }
    bp_dataset_free(ds);
    bp_dataset_free(NULL); /* accepted, like free */
}

/* The four MNIST-layout files of a directory, each found raw or as .gz. */
static void write_dir(const char *sub, const int gz[4], uint32_t test_rows, uint32_t test_cols)
{
    unsigned char buf[256];
    char d[4200], p[4300];
    at(d, sizeof d, sub);
    CHECK(mkdir(d, 0700) == 0);
    static const char *names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                   "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    for (int i = 0; i < 4; i++) {
        size_t n = i == 0   ? good_images(buf, N, ROWS, COLS)
                   : i == 2 ? good_images(buf, 1, test_rows, test_cols)
                   : i == 1 ? good_labels(buf, N)
                            : good_labels(buf, 1);
        snprintf(p, sizeof p, "%s/%s%s", d, names[i], gz[i] ? ".gz" : "");
        CHECK(write_file(p, buf, n, gz[i]) == 0);
    }
}

static void load_dir(void)
{
    char d[4200];
    bp_dataset *tr = NULL, *te = NULL;
    bp_error err = {0};

    const int mixed[4] = {0, 1, 1, 0};
    write_dir("mixed", mixed, ROWS, COLS);
    CHECKF(bp_dataset_load_dir(at(d, sizeof d, "mixed"), &tr, &te, &err) == BP_OK, "%s",
           err.msg);
    if (CHECK(tr && te)) {
        CHECK(tr->n == N && tr->rows == ROWS && tr->cols == COLS);
        CHECK(memcmp(tr->pixels, pixels, sizeof pixels) == 0);
        CHECK(memcmp(tr->labels, labels, sizeof labels) == 0);
        CHECK(te->n == 1 && te->dim == DIM);
        CHECK(memcmp(te->pixels, pixels, DIM) == 0 && te->labels[0] == labels[0]);
    }
    bp_dataset_free(tr);
    bp_dataset_free(te);

    /* NAME is taken before NAME.gz: a broken .gz beside a good raw file is not read. */
    char p[4300];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", d);
    CHECK(write_file(p, "not gzip, not IDX", 17, 0) == 0);
    CHECKF(bp_dataset_load_dir(d, &tr, &te, &err) == BP_OK, "NAME before NAME.gz: %s",
           err.msg);
    bp_dataset_free(tr);
    bp_dataset_free(te);

    /* test images of another size than the training images */
    const int raw[4] = {0, 0, 0, 0};
    write_dir("sizes", raw, 2, 2);
    int st = bp_dataset_load_dir(at(d, sizeof d, "sizes"), &tr, &te, &err);
    printf("  train/test size mismatch: %s\n", err.msg);
    CHECK_INT_EQ(st, BP_ERR_FORMAT);
    CHECK(tr == NULL && te == NULL);
    CHECK_CONTAINS(err.msg, "t10k-images-idx3-ubyte");
    CHECK_CONTAINS(err.msg, "images are 2x2, but the training images are 3x4");

    /* a missing file is named, with the .gz alternative */
    snprintf(p, sizeof p, "%s/mixed/t10k-labels-idx1-ubyte", root);
    CHECK(unlink(p) == 0);
    st = bp_dataset_load_dir(at(d, sizeof d, "mixed"), &tr, &te, &err);
    printf("  missing file: %s\n", err.msg);
    CHECK_INT_EQ(st, BP_ERR_IO);
    CHECK(tr == NULL && te == NULL);
    CHECK_CONTAINS(err.msg, p);
    CHECK_CONTAINS(err.msg, "not found (nor t10k-labels-idx1-ubyte.gz)");

    st = bp_dataset_load_dir(at(d, sizeof d, "no-such-dir"), &tr, &te, &err);
    CHECK_INT_EQ(st, BP_ERR_IO);
    CHECK_CONTAINS(err.msg, "no-such-dir: cannot open the data directory");

    /* --data naming a file, not the directory that holds the files */
    CHECK(write_file(at(d, sizeof d, "plain-file"), "x", 1, 0) == 0);
    st = bp_dataset_load_dir(d, &tr, &te, &err);
    CHECK_INT_EQ(st, BP_ERR_IO);
    CHECK_CONTAINS(err.msg, "plain-file: not a directory");
}

/* Writes bytes to root/name (raw or gzip), reads it as images ('i') or labels ('l') and expects
 * status want with a message naming the file and containing phrase. */
static void expect_bad(char kind, const char *name, const void *bytes, size_t n, int gz,
                       int want, const char *phrase)
{
    char p[4200];
    at(p, sizeof p, name);
    if (bytes)
        CHECK(write_file(p, bytes, n, gz) == 0);
    bp_error err = {0};
    uint8_t *data = (uint8_t *)&err; /* must come back NULL */
    uint32_t cnt = 0, r = 0, c = 0;
    double t0 = now();
    int st = kind == 'i' ? bp_idx_read_images(p, &data, &cnt, &r, &c, &err)
                         : bp_idx_read_labels(p, &data, &cnt, &err);
    double dt = now() - t0;
    printf("  %-28s -> %d: %s\n", name, st, err.msg);
    CHECKF(st == want, "%s: status %d, expected %d", name, st, want);
    CHECKF(data == NULL, "%s: output not NULL on failure", name);
    CHECK_CONTAINS(err.msg, p);
    CHECK_CONTAINS(err.msg, phrase);
    CHECKF(strchr(err.msg, '\n') == NULL, "%s: message is not one line", name);
    /* every refusal here concerns a file of at most a few hundred bytes */
    CHECKF(dt < 2.0, "%s: took %.2f s", name, dt);
}

static void bad_files(void)
{
    unsigned char buf[512], pay[256];
    const uint32_t dims[3] = {N, ROWS, COLS};
    size_t n;
    memcpy(pay, pixels, sizeof pixels);

    n = good_images(buf, N, ROWS, COLS);
    buf[0] = 0x12, buf[1] = 0x34;
    expect_bad('i', "bad-magic", buf, n, 0, BP_ERR_FORMAT, "bad magic 0x12340803");
    expect_bad('i', "bad-magic.gz", buf, n, 1, BP_ERR_FORMAT, "bad magic 0x12340803");

    n = make_idx(buf, 0x0D, 3, dims, pay, N * DIM); /* 0x0D: float, not unsigned byte */
    expect_bad('i', "type-float", buf, n, 0, BP_ERR_FORMAT, "unsupported IDX type code 0x0D");

    n = make_idx(buf, 0x08, 2, dims, pay, N * ROWS);
    expect_bad('i', "two-dims", buf, n, 0, BP_ERR_FORMAT,
               "2 dimensions in the header (expected 3 for an IDX image file)");
    n = good_labels(buf, N); /* a label file where images are expected, and the reverse */
    expect_bad('i', "labels-as-images", buf, n, 0, BP_ERR_FORMAT,
               "1 dimensions in the header (expected 3 for an IDX image file)");
    n = good_images(buf, N, ROWS, COLS);
    expect_bad('l', "images-as-labels", buf, n, 0, BP_ERR_FORMAT,
               "3 dimensions in the header (expected 1 for an IDX label file)");

    n = good_images(buf, N, ROWS, COLS);
    expect_bad('i', "short-magic", buf, 2, 0, BP_ERR_FORMAT,
               "truncated header (2 of 4 magic bytes)");
    expect_bad('i', "short-header", buf, 10, 0, BP_ERR_FORMAT,
               "truncated header (10 of 16 bytes)");
    expect_bad('i', "short-header.gz", buf, 10, 1, BP_ERR_FORMAT,
               "truncated header (10 of 16 bytes)");
    expect_bad('i', "empty", buf, 0, 0, BP_ERR_FORMAT, "truncated header (0 of 4 magic bytes)");
    expect_bad('i', "empty.gz", buf, 0, 1, BP_ERR_FORMAT,
               "truncated header (0 of 4 magic bytes)");

    /* one byte short of the 60 promised, and one byte over */
    expect_bad('i', "short-data", buf, n - 1, 0, BP_ERR_FORMAT,
               "truncated: header promises 60 bytes of data, file has 59");
    expect_bad('i', "short-data.gz", buf, n - 1, 1, BP_ERR_FORMAT,
               "truncated: header promises 60 bytes of data, file has 59");
    n = good_labels(buf, N);
    expect_bad('l', "short-labels", buf, n - 2, 0, BP_ERR_FORMAT,
               "truncated: header promises 5 bytes of data, file has 3");
    n = good_images(buf, N, ROWS, COLS);
    buf[n] = 0xAB;
    expect_bad('i', "trailing", buf, n + 1, 0, BP_ERR_FORMAT,
               "trailing bytes after the 60 bytes of data");
    expect_bad('i', "trailing.gz", buf, n + 1, 1, BP_ERR_FORMAT,
               "trailing bytes after the 60 bytes of data");

    const uint32_t zero_rows[3] = {N, 0, COLS}, zero_n[1] = {0};
    n = make_idx(buf, 0x08, 3, zero_rows, NULL, 0);
    expect_bad('i', "zero-rows", buf, n, 0, BP_ERR_FORMAT, "dimension 1 is 0");
    n = make_idx(buf, 0x08, 1, zero_n, NULL, 0);
    expect_bad('l', "zero-labels", buf, n, 0, BP_ERR_FORMAT, "dimension 0 is 0");

    expect_bad('i', "does-not-exist", NULL, 0, 0, BP_ERR_IO, "cannot open");

    /* gzip: an invalid deflate block right after a valid gzip header (BTYPE 11 is reserved) */
    static const unsigned char badgz[] = {0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03,
                                          0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    expect_bad('i', "bad-deflate.gz", badgz, sizeof badgz, 0, BP_ERR_FORMAT,
               "corrupt gzip data");
    /* gzip: intact data with a wrong CRC in the trailer */
    char p[4200];
    n = good_images(buf, N, ROWS, COLS);
    CHECK(write_file(at(p, sizeof p, "crc.gz"), buf, n, 1) == 0);
    size_t zn = 0;
    unsigned char *z = read_file(p, &zn);
    if (CHECK(z && zn > 8)) {
        z[zn - 8] ^= 0xFF; /* first byte of the CRC-32 */
        expect_bad('i', "crc.gz", z, zn, 0, BP_ERR_FORMAT, "corrupt gzip data");
        /* the same stream cut in half: the data ends early */
        expect_bad('i', "cut.gz", z, zn / 2, 0, BP_ERR_FORMAT, "truncated");
        z[zn - 8] ^= 0xFF; /* the CRC intact again */
        /* every data byte present, only the CRC-32 and length trailer cut off: refused, since
         * nothing then vouches for the data */
        expect_bad('i', "no-trailer.gz", z, zn - 8, 0, BP_ERR_FORMAT,
                   "truncated gzip stream");
        /* a whole, valid stream followed by bytes that are not another gzip member */
        unsigned char *junk = malloc(zn + 4);
        if (CHECK(junk)) {
            memcpy(junk, z, zn);
            memcpy(junk + zn, "JUNK", 4);
            expect_bad('i', "junk-after.gz", junk, zn + 4, 0, BP_ERR_FORMAT,
                       "data after the end of the gzip stream");
        }
        free(junk);
    }
    free(z);

    /* gzip allows several members in one file (what `cat a.gz b.gz` makes): accepted, and the
     * data is the concatenation */
    size_t half = n / 2, z1n = 0, z2n = 0;
    char p1[4200], p2[4200];
    CHECK(write_file(at(p1, sizeof p1, "part1.gz"), buf, half, 1) == 0);
    CHECK(write_file(at(p2, sizeof p2, "part2.gz"), buf + half, n - half, 1) == 0);
    unsigned char *z1 = read_file(p1, &z1n), *z2 = read_file(p2, &z2n);
    unsigned char *both = z1 && z2 ? malloc(z1n + z2n) : NULL;
    if (CHECK(both)) {
        memcpy(both, z1, z1n);
        memcpy(both + z1n, z2, z2n);
        CHECK(write_file(at(p, sizeof p, "members.gz"), both, z1n + z2n, 0) == 0);
        uint8_t *px = NULL;
        uint32_t cnt = 0, r = 0, c = 0;
        bp_error err = {0};
        CHECKF(bp_idx_read_images(p, &px, &cnt, &r, &c, &err) == BP_OK, "members.gz: %s",
               err.msg);
        CHECK(cnt == N && px && memcmp(px, pixels, sizeof pixels) == 0);
        free(px);
    }
    free(both);
    free(z1);
    free(z2);

    /* a directory where a file should be */
    CHECK(mkdir(at(p, sizeof p, "a-directory"), 0700) == 0);
    expect_bad('i', "a-directory", NULL, 0, 0, BP_ERR_IO, "is a directory");
}

/* Sizes no MNIST-style file can have: refused from the header alone. And a header that claims
 * 2 GiB (the limit) over a file of a few bytes: refused as truncated without reserving 2 GiB.
 * Outside ASan, the address space is capped 512 MiB above its current size while these run, so
 * an attempt to allocate what the header claims fails the test (as NOMEM instead of FORMAT). */
static void absurd_headers(void)
{
    struct rlimit old;
    int capped = 0;
    if (!UNDER_ASAN && getrlimit(RLIMIT_AS, &old) == 0) {
        FILE *f = fopen("/proc/self/statm", "r");
        unsigned long pages = 0;
        if (f && fscanf(f, "%lu", &pages) == 1 && pages > 0) {
            struct rlimit lim = old;
            rlim_t want = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)512 << 20);
            if (old.rlim_cur == RLIM_INFINITY || want < old.rlim_cur) {
                lim.rlim_cur = want;
                capped = setrlimit(RLIMIT_AS, &lim) == 0;
            }
        }
        if (f)
            fclose(f);
    }
    printf("  address space %s\n", capped ? "capped at current + 512 MiB" : "not capped");
    if (capped) {
        /* the cap must be able to refuse an allocation, or it proves nothing */
        void *volatile big = malloc((size_t)1 << 30);
        CHECKF(big == NULL, "a 1 GiB allocation succeeded under the cap");
        free(big);
    }

    unsigned char buf[64];
    const uint32_t billions[3] = {4000000000u, 28, 28}, wide[3] = {60000, 65536, 65536};
    const uint32_t huge_labels[1] = {4000000000u}, limit[3] = {32768, 256, 256};
    size_t n = make_idx(buf, 0x08, 3, billions, pixels, 10);
    expect_bad('i', "4e9-images", buf, n, 0, BP_ERR_FORMAT, "header sizes are absurd");
    expect_bad('i', "4e9-images.gz", buf, n, 1, BP_ERR_FORMAT, "header sizes are absurd");
    n = make_idx(buf, 0x08, 3, wide, pixels, 10);
    expect_bad('i', "65536-squared", buf, n, 0, BP_ERR_FORMAT, "header sizes are absurd");
    n = make_idx(buf, 0x08, 1, huge_labels, labels, 5);
    expect_bad('l', "4e9-labels", buf, n, 0, BP_ERR_FORMAT, "header sizes are absurd");
    n = make_idx(buf, 0x08, 3, limit, pixels, 10);
    expect_bad('i', "2GiB-claimed", buf, n, 0, BP_ERR_FORMAT,
               "truncated: header promises 2147483648 bytes of data, file has 10");
    expect_bad('i', "2GiB-claimed.gz", buf, n, 1, BP_ERR_FORMAT,
               "truncated: header promises 2147483648 bytes of data, file has 10");
    if (capped)
        CHECK(setrlimit(RLIMIT_AS, &old) == 0);
}

/* bp_dataset_load: files that are good on their own but do not belong together. */
static void bad_datasets(void)
{
    unsigned char buf[256];
    char pi[4200], pl[4200];
    bp_dataset *ds = (bp_dataset *)buf; /* must come back NULL */
    bp_error err = {0};
    size_t n = good_images(buf, N, ROWS, COLS);
    CHECK(write_file(at(pi, sizeof pi, "ds-img"), buf, n, 0) == 0);

    n = good_labels(buf, N - 1);
    CHECK(write_file(at(pl, sizeof pl, "ds-lab4"), buf, n, 0) == 0);
    int st = bp_dataset_load(&ds, pi, pl, 10, &err);
    printf("  count mismatch: %s\n", err.msg);
    CHECK_INT_EQ(st, BP_ERR_FORMAT);
    CHECK(ds == NULL);
    CHECK_CONTAINS(err.msg, pl);
    CHECK_CONTAINS(err.msg, pi);
    CHECK_CONTAINS(err.msg, "4 labels, but");

    const uint8_t keep = labels[2];
    labels[2] = 12;
    n = good_labels(buf, N);
    labels[2] = keep;
    CHECK(write_file(at(pl, sizeof pl, "ds-lab12.gz"), buf, n, 1) == 0);
    st = bp_dataset_load(&ds, pi, pl, 10, &err);
    printf("  label 12: %s\n", err.msg);
    CHECK_INT_EQ(st, BP_ERR_FORMAT);
    CHECK(ds == NULL);
    CHECK_CONTAINS(err.msg, pl);
    CHECK_CONTAINS(err.msg, "label 12 at index 2 is not below 10 classes");

    /* the class count is the caller's: label 9 is refused for 9 classes */
    n = good_labels(buf, N);
    CHECK(write_file(at(pl, sizeof pl, "ds-lab"), buf, n, 0) == 0);
    st = bp_dataset_load(&ds, pi, pl, 9, &err);
    CHECK_INT_EQ(st, BP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "label 9 at index 2 is not below 9 classes");

    /* a failing image file is reported before the labels are looked at */
    st = bp_dataset_load(&ds, at(pi, sizeof pi, "no-images"), pl, 10, &err);
    CHECK_INT_EQ(st, BP_ERR_IO);
    CHECK_CONTAINS(err.msg, pi);
}

/* rm -r root, for the flat two-level tree this test makes. */
static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    char p[4400];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(path);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/bp-test-idx.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        fprintf(stderr, "mkdtemp %s: %s\n", root, strerror(errno));
        return 1;
    }
    bp_rng rng;
    bp_rng_seed(&rng, 2024);
    for (size_t i = 0; i < sizeof pixels; i++)
        pixels[i] = (unsigned char)bp_rng_below(&rng, 256);

    printf("IDX files in %s\n", root);
    round_trip();
    load_dir();
    bad_files();
    absurd_headers();
    bad_datasets();

    remove_tree(root);
    struct stat sb;
    CHECKF(stat(root, &sb) != 0, "temporary directory %s was not removed", root);
    return check_exit("test_idx");
}
