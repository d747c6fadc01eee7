/* Image files: PGM (P2, P5) and PNG read into 8-bit gray for prediction, PNG written for the
 * pictures. The reader picks the format by the file's first bytes, never by its name.
 *
 * Conversion rules (docs/images.md states the same; tests/test_image.c checks each one):
 *  - PGM, maxval M (1 to 65535; above 255 each sample is 16-bit big-endian): a sample v ≤ M
 *    becomes round(255·v/M), halves rounded up. P2 and P5 alike.
 *  - PNG: a palette is expanded to its RGB entries, a tRNS chunk to an alpha channel, gray of
 *    1, 2 or 4 bits to 8 (v·255/(2^d − 1), exact); every 16-bit sample, alpha included, becomes
 *    round(v/257) (png_set_scale_16, which rounds exactly; png_set_strip_16 would truncate).
 *  - Alpha is composited over black, each channel c → round(c·α/255): MNIST digits are white
 *    on black, so a transparent background has to read as black.
 *  - Colour becomes gray after compositing: ITU-R BT.601 luma round((299R + 587G + 114B)/1000),
 *    halves rounded up. By hand, in integers: png_set_rgb_to_gray works in its own fixed point
 *    and would not give exactly this rule.
 *  - gAMA, cHRM, sRGB and iCCP are ignored: samples are used as stored. Only IHDR (which must
 *    come first), PLTE, tRNS, IDAT and IEND are read; other chunks are skipped unread.
 *
 * Nothing read is trusted. Width and height must be 1 to IMG_MAX_SIDE, which also keeps every
 * size product far from overflow (2^28 pixels · 4 bytes < 2^32). A PGM header that promises
 * more pixels than the file holds is refused before anything is allocated. Only regular files
 * are read: a FIFO or a device is refused without blocking on it. One image per file: bytes
 * after a PGM's last pixel are refused (libpng stops at IEND, so a PNG's trailer is not read).
 * libpng never prints: its errors become the bp_error, its warnings are dropped. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMG_MAX_SIDE 16384u

typedef struct {
    FILE *f;
    const char *path;
    bp_error *err;
    off_t size;
} img_src;

/* ---------------------------------------------------------------- files and sizes ---- */

/* O_NONBLOCK so that opening a FIFO returns at once and fstat can refuse it; on a regular file
 * the flag changes nothing. */
static int open_regular(img_src *s)
{
    int fd = open(s->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return bp_fail(s->err, BP_ERR_IO, "%s: cannot open: %s", s->path, strerror(errno));
    struct stat sb;
    const char *bad = NULL;
    if (fstat(fd, &sb) != 0)
        bad = strerror(errno);
    else if (S_ISDIR(sb.st_mode))
        bad = "is a directory, not an image file";
    else if (!S_ISREG(sb.st_mode))
        bad = "not a regular file (a FIFO, socket or device); not read";
    else if (!(s->f = fdopen(fd, "rb")))
        bad = strerror(errno);
    if (bad) {
        close(fd);
        return bp_fail(s->err, BP_ERR_IO, "%s: %s", s->path, bad);
    }
    s->size = sb.st_size;
    return BP_OK;
}

static int check_side(const img_src *s, const char *what, uint64_t v)
{
    if (v >= 1 && v <= IMG_MAX_SIDE)
        return BP_OK;
    return bp_fail(s->err, BP_ERR_FORMAT, "%s: %s %llu is not 1 to %u", s->path, what,
                   (unsigned long long)v, IMG_MAX_SIDE);
}

static int alloc_image(const img_src *s, bp_image *img, uint64_t w, uint64_t h)
{
    int st = check_side(s, "width", w);
    if (st || (st = check_side(s, "height", h)))
        return st;
    if (!(img->pixels = malloc((size_t)(w * h))))
        return bp_fail(s->err, BP_ERR_NOMEM, "%s: out of memory for %llu×%llu pixels", s->path,
                       (unsigned long long)w, (unsigned long long)h);
    img->cols = (uint32_t)w, img->rows = (uint32_t)h;
    return BP_OK;
}

/* ------------------------------------------------------------------------------ PGM ---- */

enum { NUM_OK, NUM_EOF, NUM_JUNK, NUM_LONG, NUM_TAIL };

/* The C locale's isspace, whatever the caller's locale: PGM whitespace is ASCII. */
static int is_space(int c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* The first character of the next token (consumed), or EOF; skips whitespace and, in a header,
 * '#' comments to the end of their line. */
static int next_token_char(FILE *f, int comments)
{
    for (;;) {
        int c = getc(f);
        if (comments && c == '#')
            do
                c = getc(f);
            while (c != EOF && c != '\n' && c != '\r');
        if (c == EOF || !is_space(c))
            return c;
    }
}

/* A decimal number ended by one whitespace character (consumed) or the end of the file.
 * Returns NUM_OK or what went wrong, with the offending character in *bad. */
static int read_num(FILE *f, int comments, uint64_t *v, int *bad)
{
    int c = next_token_char(f, comments);
    *bad = c;
    if (c == EOF)
        return NUM_EOF;
    if (c < '0' || c > '9')
        return NUM_JUNK;
    uint64_t x = 0;
    for (; c >= '0' && c <= '9'; c = getc(f)) {
        if (x >= 100000000000000000ull) /* 18 significant digits: far above any size */
            return NUM_LONG;
        x = 10 * x + (uint64_t)(c - '0');
    }
    *bad = c;
    *v = x;
    return c == EOF || is_space(c) ? NUM_OK : NUM_TAIL;
}

static int num_fail(const img_src *s, int r, int bad, const char *what)
{
    char found[32];
    if (bad == EOF)
        snprintf(found, sizeof found, "the end of the file");
    else if (bad > ' ' && bad < 127)
        snprintf(found, sizeof found, "'%c'", bad);
    else
        snprintf(found, sizeof found, "byte 0x%02x", (unsigned)bad);
    if (r == NUM_EOF)
        return bp_fail(s->err, BP_ERR_FORMAT, "%s: truncated: the file ends before the %s",
                       s->path, what);
    if (r == NUM_JUNK)
        return bp_fail(s->err, BP_ERR_FORMAT, "%s: expected the %s (a decimal number), found %s",
                       s->path, what, found);
    if (r == NUM_LONG)
        return bp_fail(s->err, BP_ERR_FORMAT, "%s: the %s has too many digits", s->path, what);
    return bp_fail(s->err, BP_ERR_FORMAT, "%s: junk after the %s: %s", s->path, what, found);
}

/* round(255·v/M) with halves up: (2·255·v + M) / (2M), exact in 32 bits for M < 2^16. */
static uint8_t scale_to_8(unsigned v, unsigned maxval)
{
    return (uint8_t)((510u * v + maxval) / (2u * maxval));
}

static int above_maxval(const img_src *s, unsigned v, uint32_t x, uint32_t y, unsigned maxval)
{
    return bp_fail(s->err, BP_ERR_FORMAT, "%s: value %u at x=%u, y=%u is above maxval %u",
                   s->path, v, x, y, maxval);
}

static int p2_raster(const img_src *s, bp_image *img, unsigned maxval)
{
    for (uint32_t y = 0; y < img->rows; y++)
        for (uint32_t x = 0; x < img->cols; x++) {
            uint64_t v;
            int bad, r = read_num(s->f, 0, &v, &bad);
            if (r) {
                char what[64];
                snprintf(what, sizeof what, "value at x=%u, y=%u", x, y);
                return num_fail(s, r, bad, what);
            }
            if (v > maxval)
                return above_maxval(s, v > 99999999 ? 99999999 : (unsigned)v, x, y, maxval);
            img->pixels[(size_t)y * img->cols + x] = scale_to_8((unsigned)v, maxval);
        }
    if (next_token_char(s->f, 0) != EOF)
        return bp_fail(s->err, BP_ERR_FORMAT, "%s: data after the last pixel", s->path);
    return BP_OK;
}

static int p5_raster(const img_src *s, bp_image *img, unsigned maxval)
{
    size_t bps = maxval > 255 ? 2 : 1, rowbytes = img->cols * bps;
    unsigned char *row = malloc(rowbytes);
    if (!row)
        return bp_fail(s->err, BP_ERR_NOMEM, "%s: out of memory", s->path);
    int st = BP_OK;
    for (uint32_t y = 0; y < img->rows && !st; y++) {
        if (fread(row, 1, rowbytes, s->f) != rowbytes) {
            st = ferror(s->f) ? bp_fail(s->err, BP_ERR_IO, "%s: read error: %s", s->path,
                                        strerror(errno))
                              : bp_fail(s->err, BP_ERR_FORMAT, "%s: truncated: the file ends "
                                        "in row %u of the pixels", s->path, y);
            break;
        }
        for (uint32_t x = 0; x < img->cols; x++) {
            unsigned v = bps == 2 ? (unsigned)row[2 * x] << 8 | row[2 * x + 1] : row[x];
            if (v > maxval) {
                st = above_maxval(s, v, x, y, maxval);
                break;
            }
            img->pixels[(size_t)y * img->cols + x] = scale_to_8(v, maxval);
        }
    }
    free(row);
    if (!st && getc(s->f) != EOF)
        st = bp_fail(s->err, BP_ERR_FORMAT, "%s: data after the last pixel", s->path);
    return st;
}

/* After the magic: width, height and maxval, then the raster. */
static int read_pgm(const img_src *s, int plain, bp_image *img)
{
    int c = getc(s->f);
    if (c != EOF && !is_space(c) && c != '#')
        return bp_fail(s->err, BP_ERR_FORMAT, "%s: no whitespace after the magic number P%c",
                       s->path, plain ? '2' : '5');
    ungetc(c, s->f);
    static const char *const names[3] = {"width", "height", "maxval"};
    uint64_t v[3];
    for (int i = 0; i < 3; i++) {
        int bad, r = read_num(s->f, 1, &v[i], &bad);
        if (r)
            return num_fail(s, r, bad, names[i]);
    }
    int st = check_side(s, "width", v[0]);
    if (st || (st = check_side(s, "height", v[1])))
        return st;
    if (v[2] < 1 || v[2] > 65535)
        return bp_fail(s->err, BP_ERR_FORMAT, "%s: maxval %llu is not 1 to 65535", s->path,
                       (unsigned long long)v[2]);
    /* A P2 sample takes at least a digit and a separator (the last no separator). */
    uint64_t n = v[0] * v[1], need = plain ? 2 * n - 1 : n * (v[2] > 255 ? 2 : 1);
    long pos = ftell(s->f);
    uint64_t left = pos >= 0 && s->size > pos ? (uint64_t)(s->size - pos) : 0;
    if (left < need)
        return bp_fail(s->err, BP_ERR_FORMAT, "%s: truncated: %llu×%llu pixels need %s%llu bytes "
                       "after the header, the file has %llu", s->path, (unsigned long long)v[0],
                       (unsigned long long)v[1], plain ? "at least " : "",
                       (unsigned long long)need, (unsigned long long)left);
    if ((st = alloc_image(s, img, v[0], v[1])))
        return st;
    return plain ? p2_raster(s, img, (unsigned)v[2]) : p5_raster(s, img, (unsigned)v[2]);
}

/* ------------------------------------------------------------------------------ PNG ---- */

/* What libpng's callbacks need. The first failure sets st and the message; libpng's own
 * errors (corrupt data, its allocations) read "path: what (libpng: its message)". */
typedef struct {
    FILE *f;
    const char *path;
    bp_error *err;
    off_t size; /* of the file, when reading */
    int st;
    const char *what;
    int what_st;
    unsigned char *buf; /* decoded rows: freed by the caller, also after a longjmp */
    char warning[128];  /* libpng's last warning: often the reason for the error after it */
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    if (!c->st)
        c->st = bp_fail(c->err, strstr(msg, "memory") ? BP_ERR_NOMEM : c->what_st,
                        "%s: %s (libpng: %s%s%s)", c->path, c->what, msg,
                        *c->warning ? "; last warning: " : "", c->warning);
    png_longjmp(png, 1); /* must not return: libpng's default handler would print */
}

/* The library never prints, and a warning is not a failure: kept for an error's message. */
static void png_on_warning(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->warning, sizeof c->warning, "%s", msg);
}

/* fread instead of png_init_io, to tell a short file from a read error. */
static void png_on_read(png_structp png, png_bytep data, size_t len)
{
    png_ctx *c = png_get_io_ptr(png);
    if (fread(data, 1, len, c->f) == len)
        return;
    if (ferror(c->f))
        c->st = bp_fail(c->err, BP_ERR_IO, "%s: read error: %s", c->path, strerror(errno));
    else
        c->st = bp_fail(c->err, BP_ERR_FORMAT, "%s: truncated PNG (the file ends early)",
                        c->path);
    png_error(png, "read failed");
}

/* One decoded row (8-bit, ch = 1..4 channels: G, GA, RGB, RGBA) to gray by the rules above. */
static void gray_row(uint8_t *out, const unsigned char *in, uint32_t w, int ch)
{
    for (uint32_t x = 0; x < w; x++, in += ch) {
        unsigned a = ch == 2 || ch == 4 ? in[ch - 1] : 255;
        unsigned r = (2 * in[0] * a + 255) / 510; /* round(c·α/255); never a tie */
        if (ch <= 2) {
            out[x] = (uint8_t)r;
            continue;
        }
        unsigned g = (2 * in[1] * a + 255) / 510, b = (2 * in[2] * a + 255) / 510;
        out[x] = (uint8_t)((299 * r + 587 * g + 114 * b + 500) / 1000);
    }
}

static int png_decode_rows(png_ctx *c, png_structp png, png_infop info, bp_image *img)
{
    png_set_read_fn(png, c, png_on_read);
    png_set_sig_bytes(png, 8);
    /* Only IHDR, PLTE, tRNS, IDAT and IEND are used; every other chunk is skipped unread.
     * libpng would read a text, ICC, sPLT, eXIf, pCAL or sCAL chunk whole, into a buffer it
     * allocates and zeroes at the length the chunk header claims (its chunk size limit only
     * warns when reading), so a few bytes claiming 2 GiB would cost 2 GiB. */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    /* libpng refuses sides above 10^6 with its own message; raised to PNG's limit so that
     * every size reaches check_side and gets ours. */
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    /* Ancillary chunks (text, ICC profiles, …) are of no use to a gray reader, and a few bytes
     * of them can make libpng allocate a great deal (fuzz_image found a 161-byte file that took
     * 1.9 GB): at most 1 MiB per chunk and 64 of them, and unknown ones are skipped unread. */
    png_set_chunk_malloc_max(png, (png_alloc_size_t)1 << 20);
    png_set_chunk_cache_max(png, 64);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    png_read_info(png, info);
    img_src s = {.path = c->path, .err = c->err};
    uint32_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int st = check_side(&s, "width", w);
    if (st || (st = check_side(&s, "height", h)))
        return c->st = st;
    /* Deflate compresses at most 1032:1, so a header whose rows cannot fit in the file is a
     * lie (or a cut file), refused before its buffers are allocated. */
    uint64_t raw = (uint64_t)h * png_get_rowbytes(png, info);
    if (raw / 1032 > (uint64_t)c->size)
        return c->st = bp_fail(c->err, BP_ERR_FORMAT, "%s: truncated PNG: %u×%u pixels cannot "
                               "fit in a file of %lld bytes", c->path, w, h, (long long)c->size);
    if ((st = alloc_image(&s, img, w, h)))
        return c->st = st;
    png_set_expand(png);   /* palette → RGB, tRNS → alpha, 1/2/4-bit gray → 8 */
    png_set_scale_16(png); /* 16 → 8 bits, rounded */
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int ch = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    /* Interlaced rows are filled in over several passes, so all of them must be kept. */
    if (!(c->buf = malloc(rowbytes * (passes > 1 ? img->rows : 1))))
        return c->st = bp_fail(c->err, BP_ERR_NOMEM, "%s: out of memory", c->path);
    for (int p = 0; p < passes; p++)
        for (uint32_t y = 0; y < img->rows; y++) {
            png_read_row(png, c->buf + (passes > 1 ? y * rowbytes : 0), NULL);
            if (passes == 1)
                gray_row(img->pixels + (size_t)y * img->cols, c->buf, img->cols, ch);
        }
    for (uint32_t y = 0; passes > 1 && y < img->rows; y++)
        gray_row(img->pixels + (size_t)y * img->cols, c->buf + y * rowbytes, img->cols, ch);
    png_read_end(png, NULL); /* the chunks up to IEND: a file cut short after IDAT is refused */
    return BP_OK;
}

/* setjmp alone here, so no local of the decoder is live across the longjmp. */
/* Every chunk's declared length must fit in what is left of the file. libpng allocates a
 * chunk's declared size before it reads it (a 161-byte file declaring a 1.7 GB tEXt chunk made
 * it allocate 1.7 GB, found by fuzz_image, whatever png_set_chunk_malloc_max said), so the
 * chunk headers are walked first; the stream is then put back after the signature. */
static int png_scan_chunks(png_ctx *c)
{
    long start = ftell(c->f);
    long long at = start;
    unsigned char h[8];
    while (at + 8 <= c->size && fread(h, 1, 8, c->f) == 8) {
        uint64_t len = (uint64_t)h[0] << 24 | (uint64_t)h[1] << 16 | (uint64_t)h[2] << 8 | h[3];
        if (len > (uint64_t)(c->size - at - 8 < 4 ? 0 : c->size - at - 12))
            return bp_fail(c->err, BP_ERR_FORMAT, "%s: a PNG chunk at byte %lld declares %llu "
                           "bytes, more than the file has left: truncated or corrupt", c->path,
                           at, (unsigned long long)len);
        if (memcmp(h + 4, "IEND", 4) == 0)
            break;
        at += 12 + (long long)len;
        if (fseek(c->f, at, SEEK_SET) != 0)
            break;
    }
    if (start < 0 || fseek(c->f, start, SEEK_SET) != 0)
        return bp_fail(c->err, BP_ERR_IO, "%s: cannot seek: %s", c->path, strerror(errno));
    return BP_OK;
}

static int png_decode(png_ctx *c, png_structp png, png_infop info, bp_image *img)
{
    int st = png_scan_chunks(c);
    if (st)
        return st;
    if (setjmp(png_jmpbuf(png)))
        return c->st ? c->st : BP_ERR_FORMAT;
    return png_decode_rows(c, png, info, img);
}

static int read_png(const img_src *s, bp_image *img)
{
    /* PNG requires IHDR first. libpng checks that only in the chunks it handles, and skips an
     * unknown (or, as set above, unused) chunk wherever it stands. */
    unsigned char first[8];
    if (fread(first, 1, sizeof first, s->f) != sizeof first)
        return ferror(s->f) ? bp_fail(s->err, BP_ERR_IO, "%s: read error: %s", s->path,
                                      strerror(errno))
                            : bp_fail(s->err, BP_ERR_FORMAT, "%s: truncated PNG (the file ends "
                                      "early)", s->path);
    if (memcmp(first + 4, "IHDR", 4) != 0)
        return bp_fail(s->err, BP_ERR_FORMAT, "%s: corrupt PNG (the first chunk is not IHDR)",
                       s->path);
    if (fseek(s->f, 8, SEEK_SET) != 0)
        return bp_fail(s->err, BP_ERR_IO, "%s: cannot seek: %s", s->path, strerror(errno));
    png_ctx c = {.f = s->f, .path = s->path, .err = s->err, .size = s->size,
                 .what = "corrupt PNG", .what_st = BP_ERR_FORMAT};
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int st = info ? png_decode(&c, png, info, img)
                  : bp_fail(s->err, BP_ERR_NOMEM, "%s: out of memory for libpng", s->path);
    png_destroy_read_struct(&png, &info, NULL);
    free(c.buf);
    return st;
}

/* ------------------------------------------------------------------------ the API ---- */

int bp_image_read(const char *path, bp_image *img, bp_error *err)
{
    *img = (bp_image){0};
    img_src s = {.path = path, .err = err};
    int st = open_regular(&s);
    if (st)
        return st;
    unsigned char head[8];
    size_t n = fread(head, 1, sizeof head, s.f);
    if (n < sizeof head && ferror(s.f))
        st = bp_fail(err, BP_ERR_IO, "%s: read error: %s", path, strerror(errno));
    else if (n > 0 && png_sig_cmp(head, 0, n) == 0)
        st = n == 8 ? read_png(&s, img)
                    : bp_fail(err, BP_ERR_FORMAT, "%s: truncated PNG (the file ends inside "
                              "the signature)", path);
    else if (n >= 2 && head[0] == 'P' && (head[1] == '2' || head[1] == '5'))
        st = fseek(s.f, 2, SEEK_SET) == 0 ? read_pgm(&s, head[1] == '2', img)
                                          : bp_fail(err, BP_ERR_IO, "%s: cannot seek: %s",
                                                    path, strerror(errno));
    else if (n >= 2 && head[0] == 'P' && head[1] >= '1' && head[1] <= '7')
        st = bp_fail(err, BP_ERR_FORMAT, "%s: Netpbm type P%c is not read (only PGM: P2, P5)",
                     path, head[1]);
    else if (n == 0)
        st = bp_fail(err, BP_ERR_FORMAT, "%s: empty file, not a PNG or PGM image", path);
    else {
        char hex[3 * 8] = "";
        for (size_t i = 0; i < n; i++) /* "4a 55 …": 3 bytes a byte, the last without a space */
            snprintf(hex + 3 * i, sizeof hex - 3 * i, i + 1 < n ? "%02x " : "%02x", head[i]);
        st = bp_fail(err, BP_ERR_FORMAT, "%s: not a PNG or PGM file (first bytes %s)", path, hex);
    }
    fclose(s.f); /* read-only: nothing is lost if closing fails */
    if (st)
        bp_image_free(img);
    return st;
}

void bp_image_free(bp_image *img)
{
    if (!img)
        return;
    free(img->pixels);
    *img = (bp_image){0};
}

/* fwrite instead of png_init_io, to keep errno for the message. */
static void png_on_write(png_structp png, png_bytep data, size_t len)
{
    png_ctx *c = png_get_io_ptr(png);
    if (fwrite(data, 1, len, c->f) == len)
        return;
    c->st = bp_fail(c->err, BP_ERR_IO, "%s: write failed: %s", c->path, strerror(errno));
    png_error(png, "write failed");
}

static void png_on_flush(png_structp png) { (void)png; } /* bp_file_commit flushes, fsyncs */

static int png_encode(png_ctx *c, png_structp png, png_infop info, const uint8_t *px,
                      uint32_t w, uint32_t h, int ch)
{
    if (setjmp(png_jmpbuf(png)))
        return c->st ? c->st : BP_ERR_IO;
    png_set_write_fn(png, c, png_on_write, png_on_flush);
    png_set_IHDR(png, info, w, h, 8, ch == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (uint32_t y = 0; y < h; y++)
        png_write_row(png, px + (size_t)y * w * (size_t)ch);
    png_write_end(png, NULL);
    return BP_OK;
}

int bp_png_write(const char *path, const uint8_t *pixels, uint32_t width, uint32_t height,
                 int channels, bp_error *err)
{
    if (channels != 1 && channels != 3)
        return bp_fail(err, BP_ERR_ARG, "%s: %d channels: a PNG is written gray (1) or RGB (3)",
                       path, channels);
    if (width < 1 || width > IMG_MAX_SIDE || height < 1 || height > IMG_MAX_SIDE)
        return bp_fail(err, BP_ERR_ARG, "%s: %u×%u pixels: each side must be 1 to %u", path,
                       width, height, IMG_MAX_SIDE);
    if (!pixels)
        return bp_fail(err, BP_ERR_ARG, "%s: no pixels to write", path);
    bp_file *f;
    int st = bp_file_create(&f, path, err);
    if (st)
        return st;
    png_ctx c = {.f = bp_file_stream(f), .path = path, .err = err, .what = "cannot write PNG",
                 .what_st = BP_ERR_IO};
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, &c, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    st = info ? png_encode(&c, png, info, pixels, width, height, channels)
              : bp_fail(err, BP_ERR_NOMEM, "%s: out of memory for libpng", path);
    png_destroy_write_struct(&png, &info);
    if (st) {
        bp_file_abort(f);
        return st;
    }
    return bp_file_commit(f, err);
}
