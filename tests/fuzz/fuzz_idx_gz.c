/* The IDX reader's gzip path. The input is an uncompressed IDX file (valid or not); the target
 * writes it raw and gzip-compressed in several ways and reads every version with both readers.
 *
 * Properties:
 *  - a valid gzip of the input (any level; with or without a file name in the gzip header; as
 *    one member or split into two concatenated members) is read exactly when the raw file is,
 *    with the same sizes and bytes;
 *  - that gzip file cut short anywhere (inside the header, the data, the CRC or the length),
 *    or with a few bytes of junk after it, is refused, with a bp_status and a one-line message
 *    that names the file. */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

static char raw_path[4096], gz_path[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_path(raw_path, sizeof raw_path, "raw-idx-ubyte");
    fuzz_path(gz_path, sizeof gz_path, "gz-idx-ubyte.gz");
    return 0;
}

typedef struct {
    int st;
    uint32_t dims[3];
    uint8_t *data;
    bp_error err;
} result;

static void read_as(const char *path, unsigned ndims, result *r)
{
    memset(r, 0, sizeof *r);
    fuzz_err_reset(&r->err);
    r->st = ndims == 3 ? bp_idx_read_images(path, &r->data, &r->dims[0], &r->dims[1],
                                            &r->dims[2], &r->err)
                       : bp_idx_read_labels(path, &r->data, &r->dims[0], &r->err);
    if (r->st)
        fuzz_check_failure(ndims == 3 ? "bp_idx_read_images" : "bp_idx_read_labels", r->st,
                           &r->err, path);
}

/* The gzip file gz[0..n) must be read as raw was. */
static void same(const char *how, const uint8_t *gz, size_t n, unsigned ndims,
                 const result *raw, size_t data_len)
{
    fuzz_write(gz_path, gz, n);
    result r;
    read_as(gz_path, ndims, &r);
    FUZZ_REQUIRE((r.st == BP_OK) == (raw->st == BP_OK),
                 "%s: raw read gives %d (%s), gzip read %d (%s)", how, raw->st,
                 raw->st ? raw->err.msg : "ok", r.st, r.st ? r.err.msg : "ok");
    if (r.st == BP_OK) {
        FUZZ_REQUIRE(memcmp(r.dims, raw->dims, sizeof r.dims) == 0, "%s: sizes differ", how);
        FUZZ_REQUIRE(memcmp(r.data, raw->data, data_len) == 0, "%s: data differ", how);
    }
    free(r.data);
}

/* The file gz[0..n) must be refused. */
static void refused(const char *how, size_t at, const uint8_t *gz, size_t n, unsigned ndims)
{
    fuzz_write(gz_path, gz, n);
    result r;
    read_as(gz_path, ndims, &r);
    FUZZ_REQUIRE(r.st != BP_OK, "%s (at byte %zu of %zu) was read as valid", how, at, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The raw reader reads a file that starts with the gzip magic as gzip: that case is
     * fuzz_idx's. Here the input is always the uncompressed content. */
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b)
        return 0;
    uint64_t h = fuzz_hash(data, size);
    int level = (int)(h % 10);
    const char *name = h >> 8 & 1 ? "train-images-idx3-ubyte" : NULL;
    fuzz_write(raw_path, data, size);
    size_t gz_len;
    uint8_t *gz = fuzz_gzip(data, size, level, name, &gz_len);
    /* Two members: the input split at a point of its own choosing. */
    size_t split = size ? (size_t)(h >> 16) % (size + 1) : 0, a_len, b_len;
    uint8_t *a = fuzz_gzip(data, split, level, NULL, &a_len);
    uint8_t *b = fuzz_gzip(data + split, size - split, 9 - level, NULL, &b_len);
    uint8_t *two = malloc(a_len + b_len), *junk = malloc(gz_len + 3);
    if (!two || !junk)
        abort();
    memcpy(two, a, a_len);
    memcpy(two + a_len, b, b_len);
    for (unsigned ndims = 1; ndims <= 3; ndims += 2) {
        result raw;
        read_as(raw_path, ndims, &raw);
        size_t data_len = size > 4 + 4 * ndims ? size - 4 - 4 * ndims : 0;
        same("one gzip member", gz, gz_len, ndims, &raw, data_len);
        same("two gzip members", two, a_len + b_len, ndims, &raw, data_len);
        free(raw.data);
        /* Cuts: inside the 10-byte header, just before the 8-byte trailer, in the trailer's
         * last byte, and at a point the input chooses. */
        size_t cuts[4] = {gz_len < 10 ? 0 : 9, gz_len - 8, gz_len - 1, (size_t)(h >> 32) % gz_len};
        for (int k = 0; k < 4; k++)
            refused("gzip file cut short", cuts[k], gz, cuts[k], ndims);
        /* Junk: 1 to 3 bytes of the input (or a NUL), too few to be another gzip member. */
        size_t nj = 1 + (size_t)(h >> 40) % 3;
        memcpy(junk, gz, gz_len);
        for (size_t k = 0; k < nj; k++)
            junk[gz_len + k] = size ? data[(split + k) % size] : 0;
        refused("gzip file with junk after it", gz_len, junk, gz_len + nj, ndims);
    }
    free(gz), free(a), free(b), free(two), free(junk);
    return 0;
}
