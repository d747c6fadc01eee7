/* Helpers of the fuzz targets (fuzz.h): the private directory, files, the failure contract,
 * gzip both ways. */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d: property failed: %s\n    ", file, line, cond);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

static char dir[256];

/* The directory's files and subdirectories (one level is all the targets make). */
static void remove_tree(const char *path, int depth)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            if (unlink(sub) != 0 && depth < 2) /* a subdirectory */
                remove_tree(sub, depth + 1);
        }
        closedir(d);
    }
    rmdir(path);
}

static void remove_dir(void)
{
    if (dir[0])
        remove_tree(dir, 0);
}

void fuzz_path(char *buf, size_t len, const char *name)
{
    if (!dir[0]) {
        struct stat sb;
        const char *tmp = getenv("TMPDIR");
        const char *base = stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) ? "/dev/shm"
                           : tmp && *tmp                                    ? tmp
                                                                            : "/tmp";
        snprintf(dir, sizeof dir, "%s/bpfuzz-XXXXXX", base);
        if (!mkdtemp(dir)) {
            fprintf(stderr, "fuzz: cannot create a directory in %s: %s\n", base,
                    strerror(errno));
            abort();
        }
        atexit(remove_dir);
    }
    int n = snprintf(buf, len, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= len)
        abort();
}

void fuzz_write(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        abort();
    }
}

uint8_t *fuzz_read(const char *path, size_t *n)
{
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + len, 1, cap - len, f)) > 0;) {
        len += got;
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    fclose(f);
    *n = len;
    return buf;
}

void fuzz_err_reset(bp_error *err) { memset(err, 'x', sizeof *err); }

void fuzz_check_failure(const char *what, int st, const bp_error *err, const char *prefix)
{
    FUZZ_REQUIRE(st <= BP_ERR_IO && st >= BP_ERR_NUMERIC, "%s: status %d is not a bp_status",
                 what, st);
    const char *msg = err->msg;
    FUZZ_REQUIRE(memchr(msg, '\0', sizeof err->msg) != NULL,
                 "%s failed (%d) without a terminated message", what, st);
    FUZZ_REQUIRE(msg[0] != '\0', "%s failed (%d) with an empty message", what, st);
    FUZZ_REQUIRE(strchr(msg, '\n') == NULL, "%s: message of more than one line: %s", what, msg);
    if (prefix && st != BP_ERR_NOMEM)
        FUZZ_REQUIRE(strncmp(msg, prefix, strlen(prefix)) == 0,
                     "%s: the message does not start with %s: %s", what, prefix, msg);
}

uint8_t *fuzz_gzip(const uint8_t *data, size_t n, int level, const char *name, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    gz_header head;
    memset(&head, 0, sizeof head);
    head.name = (Bytef *)name;
    if (name && deflateSetHeader(&zs, &head) != Z_OK)
        abort();
    size_t cap = deflateBound(&zs, (uLong)n) + 64 + (name ? strlen(name) + 1 : 0);
    uint8_t *out = malloc(cap);
    if (!out)
        abort();
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
        abort();
    *out_len = cap - zs.avail_out;
    deflateEnd(&zs);
    return out;
}

uint8_t *fuzz_gunzip(const uint8_t *in, size_t n, size_t max, size_t *out_len, int *too_big)
{
    *out_len = 0;
    *too_big = 0;
    if (n == 0)
        return NULL;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
        abort();
    size_t cap = 4096, len = 0;
    uint8_t *out = malloc(cap);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    int ok = 0;
    while (out) {
        if (len == cap) {
            if (cap >= max) {
                *too_big = 1;
                break;
            }
            uint8_t *no = realloc(out, cap *= 2);
            if (!no)
                break;
            out = no;
        }
        zs.next_out = out + len;
        zs.avail_out = (uInt)(cap - len);
        int r = inflate(&zs, Z_NO_FLUSH);
        len = cap - zs.avail_out;
        if (r == Z_STREAM_END) {
            if (zs.avail_in == 0) { /* the last member ended where the file does */
                ok = 1;
                break;
            }
            inflateReset(&zs); /* another member follows */
        } else if (r != Z_OK && !(r == Z_BUF_ERROR && zs.avail_out == 0)) {
            break; /* corrupt, or the input ends inside a member */
        }
    }
    inflateEnd(&zs);
    if (!ok || len > max) {
        *too_big = *too_big || len > max;
        free(out);
        return NULL;
    }
    *out_len = len;
    return out;
}

uint64_t fuzz_hash(const uint8_t *data, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ data[i]) * 0x100000001b3ull;
    return h;
}
