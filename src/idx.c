/* IDX reader (LeCun's MNIST format), raw or gzip (inflated with zlib as it is read).
 * Layout: a big-endian magic 0x0000TTDD (TT type code, DD number of dimensions), DD big-endian
 * uint32 sizes, then the product of the sizes in elements. Only type 0x08 (unsigned byte)
 * exists in MNIST-style data. Nothing read is trusted: every size is checked before use, the
 * buffer grows only as data actually arrives (a lying header cannot make us allocate), and
 * short and over-long files are both refused, as is a gzip stream that is cut short, fails its
 * CRC, or is followed by anything but another gzip member. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Larger than any MNIST-style set (60000·28·28 = 47 MB); a header beyond it is absurd. */
#define IDX_MAX_BYTES ((uint64_t)1 << 31)
#define IDX_CHUNK ((size_t)1 << 24)

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* A byte source over a raw file or one or more gzip members. zlib's gzread is not used: it
 * accepts a stream whose CRC/length trailer is cut off and ignores bytes after the stream,
 * and both must be refused. */
typedef struct {
    FILE *f;
    const char *path;
    int gz;      /* inflating gzip members */
    int zinit;   /* zs needs inflateEnd */
    int eof;     /* all data delivered */
    int st;      /* the status of the last failure */
    z_stream zs; /* next_in/avail_in index the input buffer in both modes */
    unsigned char in[1 << 16];
} idx_src;

/* Refills the input buffer: returns the byte count (0 at end of file) or −1 on a read error. */
static long src_fill(idx_src *s, bp_error *err)
{
    size_t n = fread(s->in, 1, sizeof s->in, s->f);
    if (n == 0 && ferror(s->f)) {
        s->st = bp_fail(err, BP_ERR_IO, "%s: read error: %s", s->path, strerror(errno));
        return -1;
    }
    s->zs.next_in = s->in;
    s->zs.avail_in = (uInt)n;
    return (long)n;
}

static int src_open(idx_src *s, const char *path, bp_error *err)
{
    s->path = path;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever. The
     * type is checked on the open descriptor, so nothing can be swapped in between. */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0)
        return bp_fail(err, BP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return bp_fail(err, BP_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return bp_fail(err, BP_ERR_IO, "%s: %s, not an IDX file", path,
                       S_ISDIR(sb.st_mode)    ? "is a directory"
                       : S_ISFIFO(sb.st_mode) ? "is a FIFO (named pipe)"
                                              : "is not a regular file");
    }
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0 || !(s->f = fdopen(fd, "rb"))) {
        int e = errno;
        close(fd);
        return bp_fail(err, BP_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    if (src_fill(s, err) < 0)
        return BP_ERR_IO;
    if (s->zs.avail_in >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b) {
        s->gz = 1;
        if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK) /* 16: gzip wrapper, CRC checked */
            return bp_fail(err, BP_ERR_NOMEM, "%s: cannot start zlib", path);
        s->zinit = 1;
    }
    return BP_OK;
}

static void src_close(idx_src *s)
{
    if (s->zinit)
        inflateEnd(&s->zs);
    if (s->f)
        fclose(s->f); /* read-only: nothing is lost if closing fails */
}

/* Reads up to len bytes of (decompressed) data, fewer only at the end of the data. Returns
 * the count, or −1 with err set. */
static long src_read(idx_src *s, void *buf, size_t len, bp_error *err)
{
    unsigned char *out = buf;
    size_t got = 0;
    while (got < len && !s->eof) {
        if (s->zs.avail_in == 0 && src_fill(s, err) < 0)
            return -1;
        if (!s->gz) {
            if (s->zs.avail_in == 0) {
                s->eof = 1;
                break;
            }
            size_t n = s->zs.avail_in < len - got ? s->zs.avail_in : len - got;
            memcpy(out + got, s->zs.next_in, n);
            s->zs.next_in += n;
            s->zs.avail_in -= (uInt)n;
            got += n;
            continue;
        }
        if (s->zs.avail_in == 0) {
            s->st = bp_fail(err, BP_ERR_FORMAT, "%s: truncated gzip stream (the file ends inside it)",
                    s->path);
            return -1;
        }
        size_t want = len - got < IDX_CHUNK ? len - got : IDX_CHUNK;
        s->zs.next_out = out + got;
        s->zs.avail_out = (uInt)want;
        int r = inflate(&s->zs, Z_NO_FLUSH);
        got += want - s->zs.avail_out;
        if (r == Z_STREAM_END) {
            /* The member's CRC and length matched. Another member may follow (gzip allows
             * concatenation); anything else after the stream is refused. */
            if (s->zs.avail_in == 0 && src_fill(s, err) < 0)
                return -1;
            if (s->zs.avail_in == 0) {
                s->eof = 1;
                break;
            }
            if (s->zs.next_in[0] != 0x1f) {
                s->st = bp_fail(err, BP_ERR_FORMAT, "%s: data after the end of the gzip stream",
                        s->path);
                return -1;
            }
            inflateReset(&s->zs);
        } else if (r == Z_MEM_ERROR) {
            s->st = bp_fail(err, BP_ERR_NOMEM, "%s: out of memory in zlib", s->path);
            return -1;
        } else if (r != Z_OK && r != Z_BUF_ERROR) {
            s->st = bp_fail(err, BP_ERR_FORMAT, "%s: corrupt gzip data (%s)", s->path,
                    s->zs.msg ? s->zs.msg : "invalid stream");
            return -1;
        }
    }
    return (long)got;
}

/* A block for n bytes of samples. A large one is placed on 2 MB boundaries and marked for
 * transparent huge pages: training reads its rows in shuffled order, and with 4 kB pages
 * nearly every row is a TLB miss, a page walk that costs several memory accesses under a
 * hypervisor (measured on a 2-core Zen 4 KVM guest: the shuffled gather of MNIST's 47 MB
 * took 11 ms per epoch on one thread against 6 ms in file order). Where the kernel declines,
 * it is an ordinary block. Freed with free(). */
#define HUGE_PAGE ((size_t)2 << 20)
static void *alloc_samples(size_t n)
{
    if (n < 2 * HUGE_PAGE)
        return malloc(n);
    size_t rounded = (n + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *p = NULL;
    if (posix_memalign(&p, HUGE_PAGE, rounded) != 0)
        return NULL;
#if defined(MADV_HUGEPAGE)
    madvise(p, rounded, MADV_HUGEPAGE); /* advice only: a refusal changes nothing */
#endif
    return p;
}

static int read_idx(const char *path, unsigned ndims, const char *what, uint32_t *dims,
                    uint8_t **out, bp_error *err)
{
    *out = NULL;
    uint8_t *data = NULL;
    int st = BP_ERR_FORMAT;
    idx_src *f = calloc(1, sizeof *f);
    if (!f)
        return bp_fail(err, BP_ERR_NOMEM, "%s: out of memory", path);
    if ((st = src_open(f, path, err)))
        goto error;
    st = BP_ERR_FORMAT;

    unsigned char head[4 + 4 * 3];
    size_t hlen = 4 + 4 * (size_t)ndims;
    long got = src_read(f, head, 4, err);
    if (got < 0) {
        st = f->st;
        goto error;
    }
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
    got = src_read(f, head + 4, hlen - 4, err);
    if (got < 0) {
        st = f->st;
        goto error;
    }
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
    /* The one limit on an image: the widest input a model can take (BP_MAX_WIDTH), checked
     * here, before the data are read, where the message can name the file. */
    if (ndims == 3 && (uint64_t)dims[1] * dims[2] > BP_MAX_WIDTH) {
        bp_fail(err, st, "%s: images of %ux%u = %llu pixels are more than a model's largest "
                "input (%d)", path, dims[2], dims[1], (unsigned long long)dims[1] * dims[2],
                BP_MAX_WIDTH);
        goto error;
    }

    /* An uncompressed file's size is known before anything is allocated. */
    struct stat sb;
    if (!f->gz && fstat(fileno(f->f), &sb) == 0 && S_ISREG(sb.st_mode)) {
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
    /* The size is known (checked against the file just above, or compressed data read and
     * copied once below): one block of exactly that size, never grown. */
    if (!f->gz && total > 0) {
        data = alloc_samples((size_t)total);
        if (!data) {
            st = bp_fail(err, BP_ERR_NOMEM, "%s: out of memory reading %llu bytes", path,
                         (unsigned long long)total);
            goto error;
        }
        cap = (size_t)total;
    }
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
        got = src_read(f, data + len, want, err);
        if (got < 0) {
            st = f->st;
            goto error;
        }
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
    got = src_read(f, extra, 1, err);
    if (got < 0) {
        st = f->st;
        goto error;
    }
    if (got > 0) {
        bp_fail(err, st, "%s: trailing bytes after the %llu bytes of data", path,
                (unsigned long long)total);
        goto error;
    }
    if (f->gz && len >= 2 * HUGE_PAGE) { /* grown by doubling: moved once, to huge pages */
        uint8_t *h = alloc_samples(len);
        if (h) {
            memcpy(h, data, len);
            free(data);
            data = h;
        }
    }
    src_close(f);
    free(f);
    *out = data;
    return BP_OK;
error:
    src_close(f);
    free(f);
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
