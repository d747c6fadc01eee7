/* The IDX reader (bp_idx_read_images, bp_idx_read_labels) on the input as the whole file, raw
 * or, when it starts with the gzip magic, gzip.
 *
 * Properties: the reader accepts the file exactly when the format says it is valid, judged
 * here independently of src/idx.c: magic 00 00 08 DD, DD non-zero sizes, and then exactly
 * their product in bytes, no more, no less (for gzip: after inflating one or more members that
 * end exactly at the end of the file). A successful read returns those sizes and those bytes
 * (so n·rows·cols = file size − 16). A failed one returns a bp_status, NULL data and a one-line
 * message that starts with the file's path. At most one of the two readers accepts a file. */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

static char path[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_path(path, sizeof path, "input-idx3-ubyte");
    return 0;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Whether d[0..n) is a valid uncompressed IDX file of unsigned bytes with ndims dimensions;
 * its sizes into dims. The reader's own limit, 2^31 bytes of data, is far above any input a
 * fuzzer makes, so a valid file is simply one whose sizes multiply to what follows. */
static int idx_valid(const uint8_t *d, size_t n, unsigned ndims, uint32_t *dims)
{
    size_t head = 4 + 4 * (size_t)ndims;
    if (n < head || d[0] != 0 || d[1] != 0 || d[2] != 0x08 || d[3] != ndims)
        return 0;
    uint64_t total = 1;
    for (unsigned k = 0; k < ndims; k++) {
        dims[k] = be32(d + 4 + 4 * k);
        if (dims[k] == 0)
            return 0;
        if (total > (uint64_t)(n - head) / dims[k]) /* more than the file holds */
            return 0;
        total *= dims[k];
    }
    return total == n - head;
}

static void check(size_t n, const uint8_t *idx, size_t idx_len, int valid,
                  unsigned ndims)
{
    uint32_t want[3] = {0, 0, 0};
    int ok = valid && idx_valid(idx, idx_len, ndims, want);
    uint8_t *data = (uint8_t *)"sentinel";
    uint32_t dims[3] = {0, 0, 0};
    bp_error err;
    fuzz_err_reset(&err);
    int st = ndims == 3 ? bp_idx_read_images(path, &data, &dims[0], &dims[1], &dims[2], &err)
                        : bp_idx_read_labels(path, &data, &dims[0], &err);
    const char *what = ndims == 3 ? "bp_idx_read_images" : "bp_idx_read_labels";
    FUZZ_REQUIRE((st == BP_OK) == ok, "%s: status %d on a file of %zu bytes that is %s: %s",
                 what, st, n, ok ? "valid" : "not valid", st ? err.msg : "(no message)");
    if (st) {
        fuzz_check_failure(what, st, &err, path);
        FUZZ_REQUIRE(data == NULL, "%s failed but left data set", what);
        return;
    }
    size_t head = 4 + 4 * (size_t)ndims, total = idx_len - head;
    for (unsigned k = 0; k < ndims; k++)
        FUZZ_REQUIRE(dims[k] == want[k], "%s: dimension %u is %u, the header says %u", what, k,
                     dims[k], want[k]);
    uint64_t product = ndims == 3 ? (uint64_t)dims[0] * dims[1] * dims[2] : dims[0];
    FUZZ_REQUIRE(product == total, "%s: %llu elements, %zu data bytes", what,
                 (unsigned long long)product, total);
    FUZZ_REQUIRE(memcmp(data, idx + head, total) == 0, "%s: the data differ from the file's",
                 what);
    free(data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write(path, data, size);
    const uint8_t *idx = data;
    size_t idx_len = size;
    uint8_t *inflated = NULL;
    int valid = 1;
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
        int too_big;
        inflated = fuzz_gunzip(data, size, (size_t)64 << 20, &idx_len, &too_big);
        if (too_big) /* not judged here: the reader's limit is its own */
            return 0;
        valid = inflated != NULL;
        idx = inflated;
    }
    check(size, idx, idx_len, valid, 3);
    check(size, idx, idx_len, valid, 1);
    free(inflated);
    return 0;
}
