/* IDX reader (LeCun's MNIST format), raw or gzip through zlib's gzread, which reads both.
 * Layout: a big-endian magic 0x0000TTDD (TT type code, DD number of dimensions), DD big-endian
 * uint32 sizes, then the product of the sizes in elements. Only type 0x08 (unsigned byte)
 * exists in MNIST-style data. Nothing read is trusted: every size is checked before use, the
 * buffer grows only as data actually arrives (a lying header cannot make us allocate), and
 * short and over-long files are both refused. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* Larger than any MNIST-style set (60000·28·28 = 47 MB); a header beyond it is absurd. */
#define IDX_MAX_BYTES ((uint64_t)1 << 31)
#define IDX_CHUNK ((size_t)1 << 24)

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Reads up to len bytes; returns the count, or −1 with err set on a decompression error. */
static long read_full(gzFile f, const char *path, void *buf, size_t len, bp_error *err)
{
    size_t got = 0;
    while (got < len) {
        size_t want = len - got > IDX_CHUNK ? IDX_CHUNK : len - got;
        int r = gzread(f, (char *)buf + got, (unsigned)want);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            size_t plen = strlen(path);
            /* zlib prefixes its message with the path: keep it once */
            if (strncmp(msg, path, plen) == 0 && strncmp(msg + plen, ": ", 2) == 0)
                msg += plen + 2;
            bp_fail(err, BP_ERR_FORMAT, "%s: corrupt gzip data (%s)", path, msg);
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long)got;
}

static int read_idx(const char *path, unsigned ndims, const char *what, uint32_t *dims,
                    uint8_t **out, bp_error *err)
{
    *out = NULL;
    uint8_t *data = NULL;
    int st = BP_ERR_FORMAT;
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return bp_fail(err, BP_ERR_IO, "%s: cannot open: %s", path,
                       errno ? strerror(errno) : "out of memory");

    unsigned char head[4 + 4 * 3];
    size_t hlen = 4 + 4 * (size_t)ndims;
    long got = read_full(f, path, head, 4, err);
    if (got < 0)
        goto error;
    if (got < 4) {
        bp_fail(err, st, "%s: truncated header (%ld of 4 magic bytes)", path, got);
        goto error;
    }
    uint32_t magic = be32(head), want = 0x0800u | ndims;
    if (head[0] != 0 || head[1] != 0) {
        bp_fail(err, st, "%s: bad magic 0x%08X (expected 0x%08X for an IDX %s file)", path,
                magic, want, what);
        goto error;
    }
    if (head[2] != 0x08) {
        bp_fail(err, st, "%s: unsupported IDX type code 0x%02X (expected 0x08, unsigned byte)",
                path, head[2]);
        goto error;
    }
    if (head[3] != ndims) {
        bp_fail(err, st, "%s: %u dimensions in the header (expected %u for an IDX %s file)",
                path, head[3], ndims, what);
        goto error;
    }
    got = read_full(f, path, head + 4, hlen - 4, err);
    if (got < 0)
        goto error;
    if ((size_t)got < hlen - 4) {
        bp_fail(err, st, "%s: truncated header (%ld of %zu bytes)", path, got + 4, hlen);
        goto error;
    }
    uint64_t total = 1;
    for (unsigned d = 0; d < ndims; d++) {
        dims[d] = be32(head + 4 + 4 * d);
        if (dims[d] == 0) {
            bp_fail(err, st, "%s: dimension %u is 0 (empty %s file)", path, d, what);
            goto error;
        }
        /* total·dims[d] ≤ IDX_MAX_BYTES, tested without overflowing */
        if (total > IDX_MAX_BYTES / dims[d]) {
            bp_fail(err, st, "%s: header sizes are absurd (more than %llu bytes of data)", path,
                    (unsigned long long)IDX_MAX_BYTES);
            goto error;
        }
        total *= dims[d];
    }

    /* An uncompressed file's size is known before anything is allocated. */
    struct stat sb;
    if (gzdirect(f) && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
        uint64_t have = (uint64_t)sb.st_size - hlen;
        if (have < total) {
            bp_fail(err, st, "%s: truncated: header promises %llu bytes of data, file has %llu",
                    path, (unsigned long long)total, (unsigned long long)have);
            goto error;
        }
        if (have > total) {
            bp_fail(err, st, "%s: %llu trailing bytes after the %llu bytes of data", path,
                    (unsigned long long)(have - total), (unsigned long long)total);
            goto error;
        }
    }

    size_t cap = 0, len = 0;
    while (len < total) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : IDX_CHUNK;
            if (ncap > total)
                ncap = (size_t)total;
            uint8_t *nd = realloc(data, ncap);
            if (!nd) {
                st = bp_fail(err, BP_ERR_NOMEM, "%s: out of memory reading %llu bytes", path,
                             (unsigned long long)total);
                goto error;
            }
            data = nd;
            cap = ncap;
        }
        size_t want = cap - len;
        got = read_full(f, path, data + len, want, err);
        if (got < 0)
            goto error;
        len += (size_t)got;
        if ((size_t)got < want)
            break; /* end of input */
    }
    if (len < total) {
        bp_fail(err, st, "%s: truncated: header promises %llu bytes of data, file has %zu",
                path, (unsigned long long)total, len);
        goto error;
    }
    unsigned char extra[1];
    got = read_full(f, path, extra, 1, err);
    if (got < 0)
        goto error;
    if (got > 0) {
        bp_fail(err, st, "%s: trailing bytes after the %llu bytes of data", path,
                (unsigned long long)total);
        goto error;
    }
    if (gzclose(f) != Z_OK) {
        f = NULL;
        bp_fail(err, BP_ERR_IO, "%s: error closing the file", path);
        goto error;
    }
    *out = data;
    return BP_OK;
error:
    if (f)
        gzclose(f);
    free(data);
    return st;
}

int bp_idx_read_images(const char *path, uint8_t **pixels, uint32_t *n, uint32_t *rows,
                       uint32_t *cols, bp_error *err)
{
    uint32_t dims[3];
    int st = read_idx(path, 3, "image", dims, pixels, err);
    if (st)
        return st;
    *n = dims[0];
    *rows = dims[1];
    *cols = dims[2];
    return BP_OK;
}

int bp_idx_read_labels(const char *path, uint8_t **labels, uint32_t *n, bp_error *err)
{
    uint32_t dims[1];
    int st = read_idx(path, 1, "label", dims, labels, err);
    if (st)
        return st;
    *n = dims[0];
    return BP_OK;
}
