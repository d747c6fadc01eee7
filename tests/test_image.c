/* Image files and pictures (src/image.c, src/picture.c) on files written here, in a private
 * temporary directory that is removed at the end.
 *
 * Good inputs of known content (PGM by hand; PNG with libpng itself: every colour type,
 * 1/4/8/16 bits, a palette with tRNS, Adam7) must decode exactly to what the rules of
 * docs/images.md give, computed here with formulas of their own. A PNG from bp_png_write must
 * decode with libpng to the same bytes. Bad inputs must be refused with their status and a
 * message naming the file and what is wrong. A failed write leaves no file, and an existing
 * one untouched. Pictures must have their layout's size and their colours where the rules put
 * them. */
#include "check.h"
#include "backprop.h"

#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char root[4096];
static bp_rng rng;

static const char *at(char *buf, const char *name)
{
    snprintf(buf, 4200, "%s/%s", root, name);
    return buf;
}

static int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = f ? malloc(1 << 20) : NULL;
    *n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    if (f)
        fclose(f);
    return buf;
}

/* ---- the documented rules, written independently of src/image.c ---- */
static unsigned rule_pgm(unsigned v, unsigned M) { return (unsigned)floor(255.0 * v / M + 0.5); }
static unsigned rule_16(unsigned v) { return (unsigned)floor(v / 257.0 + 0.5); }
static unsigned rule_over_black(unsigned c, unsigned a)
{
    return (unsigned)floor(c * a / 255.0 + 0.5);
}
static unsigned rule_luma(unsigned r, unsigned g, unsigned b)
{
    unsigned s = 299 * r + 587 * g + 114 * b; /* /1000, halves up */
    return s / 1000 + (s % 1000 >= 500);
}

/* One PNG pixel of ch channels of depth 8 or 16 (big-endian) to gray. */
static uint8_t rule_png(const unsigned char *p, int ch, int depth)
{
    unsigned v[4];
    for (int c = 0; c < ch; c++)
        v[c] = depth == 16 ? rule_16((unsigned)p[2 * c] << 8 | p[2 * c + 1]) : p[c];
    unsigned a = ch == 2 || ch == 4 ? v[ch - 1] : 255;
    if (ch <= 2)
        return (uint8_t)rule_over_black(v[0], a);
    return (uint8_t)rule_luma(rule_over_black(v[0], a), rule_over_black(v[1], a),
                              rule_over_black(v[2], a));
}

/* bp_image_read(path) must give w×h pixels equal to want. */
static void check_decode(const char *path, uint32_t w, uint32_t h, const uint8_t *want)
{
    bp_image img;
    bp_error err = {0};
    int st = bp_image_read(path, &img, &err);
    if (!CHECKF(st == BP_OK, "%s: %s", path, err.msg))
        return;
    CHECKF(img.cols == w && img.rows == h, "%s: %u×%u, want %u×%u", path, img.cols, img.rows, w, h);
    size_t bad = 0, first = 0;
    for (size_t i = 0; img.cols == w && img.rows == h && i < (size_t)w * h; i++)
        if (img.pixels[i] != want[i] && !bad++)
            first = i;
    CHECKF(bad == 0, "%s: %zu pixels differ, first at %zu: %u, want %u", path, bad, first,
           img.pixels[first], want[first]);
    bp_image_free(&img);
    CHECK(img.pixels == NULL);
}

/* ---- PGM ---- */
static void good_pgm(void)
{
    static const struct { int plain; unsigned maxval, w, h; } cases[] = {
        {1, 255, 5, 3}, {1, 7, 9, 4}, {1, 1, 4, 2}, {1, 65535, 6, 5},
        {0, 255, 28, 28}, {0, 100, 7, 3}, {0, 1000, 5, 5}, {0, 65535, 256, 256},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        unsigned M = cases[k].maxval, w = cases[k].w, h = cases[k].h;
        char p[4200], name[64];
        snprintf(name, sizeof name, "good%zu.pgm", k);
        FILE *f = fopen(at(p, name), "wb");
        /* comments on their own line and after a number; a 16-bit P5 gets every value 0..M */
        fprintf(f, "P%c\n# written by test_image\n%u %u # size\n%u\n", cases[k].plain ? '2' : '5',
                w, h, M);
        uint8_t *want = malloc((size_t)w * h);
        for (unsigned i = 0; i < w * h; i++) {
            unsigned v = i == 0 ? 0 : i == 1 ? M : M == 65535 && !cases[k].plain ? i
                                                                : bp_rng_below(&rng, M + 1);
            want[i] = (uint8_t)rule_pgm(v, M);
            if (cases[k].plain)
                fprintf(f, "%u%c", v, (i + 1) % w ? ' ' : '\n');
            else if (M > 255)
                fputc((int)(v >> 8), f), fputc((int)(v & 255), f);
            else
                fputc((int)v, f);
        }
        fclose(f);
        check_decode(p, w, h, want);
        free(want);
    }
}

#define LIT(s) s, sizeof s - 1
static const struct bad_case {
    const char *name, *data;
    size_t len;
    int st;
    const char *phrase;
} bad_cases[] = {
    {"empty.pgm", LIT(""), BP_ERR_FORMAT, "empty file"},
    {"junk.pgm", LIT("JUNKDATA"), BP_ERR_FORMAT, "not a PNG or PGM file (first bytes 4a 55 4e 4b"},
    {"colour.ppm", LIT("P6\n1 1\n255\n\1\2\3"), BP_ERR_FORMAT, "Netpbm type P6 is not read"},
    {"maxval0.pgm", LIT("P2\n1 1\n0\n0\n"), BP_ERR_FORMAT, "maxval 0 is not 1 to 65535"},
    {"maxval-big.pgm", LIT("P5 1 1 65536\n\1\1"), BP_ERR_FORMAT, "maxval 65536 is not 1 to 65535"},
    {"width0.pgm", LIT("P5 0 1 255\n"), BP_ERR_FORMAT, "width 0 is not 1 to 16384"},
    {"tall.pgm", LIT("P5 1 16385 255\n"), BP_ERR_FORMAT, "height 16385 is not 1 to 16384"},
    {"digits.pgm", LIT("P5 1000000000000000000 1 255\n"), BP_ERR_FORMAT,
     "the width has too many digits"},
    {"zeros.pgm", LIT("P2 00000000000000000000000000000001 1 255\n7 8\n"), BP_ERR_FORMAT,
     "data after"}, /* leading zeros are not significant: this one fails only at its end */
    {"lying.pgm", LIT("P5 16384 16384 255\n\1\2\3"), BP_ERR_FORMAT,
     "truncated: 16384×16384 pixels need 268435456 bytes after the header, the file has 3"},
    {"p5-short.pgm", LIT("P5 2 2 255\n\1\2\3"), BP_ERR_FORMAT,
     "truncated: 2×2 pixels need 4 bytes after the header, the file has 3"},
    {"p2-short.pgm", LIT("P2 3 2 255\n1 2 3 4 5\n"), BP_ERR_FORMAT,
     "truncated: 3×2 pixels need at least 11 bytes"},
    {"p2-cut.pgm", LIT("P2 3 2 255\n1 2 3    4  5\n"), BP_ERR_FORMAT,
     "truncated: the file ends before the value at x=2, y=1"},
    {"p2-above.pgm", LIT("P2 3 1 255\n1 256 3\n"), BP_ERR_FORMAT,
     "value 256 at x=1, y=0 is above maxval 255"},
    {"p5-above.pgm", LIT("P5 2 1 100\n\x10\xc8"), BP_ERR_FORMAT,
     "value 200 at x=1, y=0 is above maxval 100"},
    {"p5-16-above.pgm", LIT("P5 1 1 1000\n\x03\xe9"), BP_ERR_FORMAT,
     "value 1001 at x=0, y=0 is above maxval 1000"},
    {"p2-junk.pgm", LIT("P2 3 1 255\n1 x 3\n"), BP_ERR_FORMAT,
     "expected the value at x=1, y=0 (a decimal number), found 'x'"},
    {"p2-tail.pgm", LIT("P2 3 1 255\n1 2a 3\n"), BP_ERR_FORMAT,
     "junk after the value at x=1, y=0: 'a'"},
    {"hdr-junk.pgm", LIT("P5 28 a8 255\n"), BP_ERR_FORMAT,
     "expected the height (a decimal number), found 'a'"},
    {"hdr-eof.pgm", LIT("P2 3 # a comment"), BP_ERR_FORMAT,
     "truncated: the file ends before the height"},
    {"no-space.pgm", LIT("P528 28 255\n"), BP_ERR_FORMAT,
     "no whitespace after the magic number P5"},
    {"p5-extra.pgm", LIT("P5 1 1 255\n\1\2"), BP_ERR_FORMAT, "data after the last pixel"},
    {"p2-extra.pgm", LIT("P2 1 1 255\n1 2\n"), BP_ERR_FORMAT, "data after the last pixel"},
    {"sig.png", LIT("\x89PNG"), BP_ERR_FORMAT,
     "truncated PNG (the file ends inside the signature)"},
};

/* bp_image_read(path) must fail with st and a message naming path and containing phrase. */
static void check_refused(const char *path, int st, const char *phrase)
{
    bp_image img = {.rows = 7, .pixels = (uint8_t *)&img};
    bp_error err = {0};
    CHECKF(bp_image_read(path, &img, &err) == st, "%s: want status %d (%s)", path, st, err.msg);
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, phrase);
    CHECK(img.pixels == NULL && img.rows == 0 && img.cols == 0);
}

static void bad_files(void)
{
    char p[4200];
    for (size_t k = 0; k < sizeof bad_cases / sizeof bad_cases[0]; k++) {
        CHECK(write_file(at(p, bad_cases[k].name), bad_cases[k].data, bad_cases[k].len) == 0);
        check_refused(p, bad_cases[k].st, bad_cases[k].phrase);
    }
    check_refused(at(p, "missing.pgm"), BP_ERR_IO, "cannot open: No such file or directory");
    CHECK(mkdir(at(p, "dir.png"), 0700) == 0);
    check_refused(p, BP_ERR_IO, "is a directory");
    /* A FIFO with no writer: an open without O_NONBLOCK would block here for ever. */
    CHECK(mkfifo(at(p, "fifo.pgm"), 0600) == 0);
    check_refused(p, BP_ERR_IO, "not a regular file");
}

/* ---- PNG, written and read here with libpng's own API ---- */

/* A PNG of w×h pixels: rows of rowbytes bytes each, as PNG stores them (16-bit big-endian). */
static int write_png(const char *path, uint32_t w, uint32_t h, int depth, int color, int adam7,
                     const unsigned char *data, const png_color *pal, int npal,
                     const png_byte *trns, int ntrns)
{
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_bytep *rows = malloc(sizeof *rows * h);
    if (!f || !info || !rows || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        if (f)
            fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, depth, color, adam7 ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (npal)
        png_set_PLTE(png, info, pal, npal);
    png_color_16 key = {.gray = ntrns ? trns[0] : 0}; /* gray: one value is transparent */
    if (ntrns)
        png_set_tRNS(png, info, npal ? trns : NULL, npal ? ntrns : 0, npal ? NULL : &key);
    png_write_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    for (uint32_t y = 0; y < h; y++)
        rows[y] = (png_bytep)data + y * rowbytes;
    png_write_image(png, rows); /* does the Adam7 passes itself */
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return fclose(f);
}

/* The file's samples without any transform; NULL on any failure. */
static unsigned char *read_png(const char *path, uint32_t *w, uint32_t *h, int *color, int *depth)
{
    FILE *f = fopen(path, "rb");
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    unsigned char *volatile px = NULL;
    if (!f || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(px);
        if (f)
            fclose(f);
        return NULL;
    }
    png_init_io(png, f);
    png_read_info(png, info);
    *w = png_get_image_width(png, info), *h = png_get_image_height(png, info);
    *color = png_get_color_type(png, info), *depth = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    px = malloc(rowbytes * *h);
    for (uint32_t y = 0; y < *h; y++)
        png_read_row(png, px + y * rowbytes, NULL);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    return px;
}

static void good_png(void)
{
    static const struct { int color, ch, depth, adam7; uint32_t w, h; } cases[] = {
        {PNG_COLOR_TYPE_GRAY, 1, 8, 0, 7, 5},     {PNG_COLOR_TYPE_GRAY, 1, 16, 0, 256, 256},
        {PNG_COLOR_TYPE_GA, 2, 8, 0, 40, 40},     {PNG_COLOR_TYPE_GA, 2, 16, 0, 17, 9},
        {PNG_COLOR_TYPE_RGB, 3, 8, 0, 40, 40},    {PNG_COLOR_TYPE_RGB, 3, 16, 0, 11, 6},
        {PNG_COLOR_TYPE_RGBA, 4, 8, 0, 50, 50},   {PNG_COLOR_TYPE_RGBA, 4, 16, 0, 30, 30},
        {PNG_COLOR_TYPE_RGB, 3, 8, 1, 13, 11},    {PNG_COLOR_TYPE_RGBA, 4, 16, 1, 19, 10},
    };
    char p[4200], name[64];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint32_t w = cases[k].w, h = cases[k].h, bpp = (uint32_t)(cases[k].ch * cases[k].depth / 8);
        unsigned char *data = malloc((size_t)w * h * bpp);
        uint8_t *want = malloc((size_t)w * h);
        for (size_t i = 0; i < (size_t)w * h; i++) {
            unsigned char *px = data + i * bpp;
            for (uint32_t b = 0; b < bpp; b++)
                px[b] = (unsigned char)bp_rng_below(&rng, 256);
            if (w * h == 65536) /* the 16-bit gray case: every value once */
                px[0] = (unsigned char)(i >> 8), px[1] = (unsigned char)i;
            want[i] = rule_png(px, cases[k].ch, cases[k].depth);
        }
        snprintf(name, sizeof name, "good%zu.png", k);
        CHECK(write_png(at(p, name), w, h, cases[k].depth, cases[k].color, cases[k].adam7, data,
                        NULL, 0, NULL, 0) == 0);
        check_decode(p, w, h, want);
        free(data);
        free(want);
    }
    /* a palette with alpha for its first entries (tRNS): expanded, then the same rules */
    png_color pal[16];
    png_byte trns[10], idx[6 * 8];
    uint8_t want[6 * 8];
    for (int i = 0; i < 16; i++)
        pal[i] = (png_color){(png_byte)bp_rng_below(&rng, 256), (png_byte)bp_rng_below(&rng, 256),
                             (png_byte)bp_rng_below(&rng, 256)};
    for (int i = 0; i < 10; i++)
        trns[i] = (png_byte)(i * 28);
    for (int i = 0; i < 48; i++) {
        idx[i] = (png_byte)(i % 16);
        unsigned char rgba[4] = {pal[i % 16].red, pal[i % 16].green, pal[i % 16].blue,
                                 i % 16 < 10 ? trns[i % 16] : 255};
        want[i] = rule_png(rgba, 4, 8);
    }
    CHECK(write_png(at(p, "palette.png"), 8, 6, 8, PNG_COLOR_TYPE_PALETTE, 0, idx, pal, 16, trns,
                    10) == 0);
    check_decode(p, 8, 6, want);
    /* gray whose value 9 is transparent (tRNS): that value reads black */
    const png_byte keyed[4] = {9, 10, 255, 9}, key = 9;
    const uint8_t want_keyed[4] = {0, 10, 255, 0};
    CHECK(write_png(at(p, "keyed.png"), 2, 2, 8, PNG_COLOR_TYPE_GRAY, 0, keyed, NULL, 0, &key,
                    1) == 0);
    check_decode(p, 2, 2, want_keyed);
    /* gray of 1 and 4 bits: v·255/(2^d − 1) */
    const unsigned char bits1[2] = {0xA5, 0x0F}, bits4[2] = {0x0F, 0x79};
    const uint8_t want1[16] = {255, 0, 255, 0, 0, 255, 0, 255, 0, 0, 0, 0, 255, 255, 255, 255};
    const uint8_t want4[4] = {0, 255, 7 * 17, 9 * 17};
    CHECK(write_png(at(p, "gray1.png"), 8, 2, 1, PNG_COLOR_TYPE_GRAY, 0, bits1, NULL, 0, NULL,
                    0) == 0);
    check_decode(p, 8, 2, want1);
    CHECK(write_png(at(p, "gray4.png"), 4, 1, 4, PNG_COLOR_TYPE_GRAY, 0, bits4, NULL, 0, NULL,
                    0) == 0);
    check_decode(p, 4, 1, want4);
}

static unsigned char *put_chunk(unsigned char *o, const char *type, const void *data, uint32_t n)
{
    unsigned char *start = o + 4;
    for (int s = 24; s >= 0; s -= 8)
        *o++ = (unsigned char)(n >> s);
    memcpy(o, type, 4), memcpy(o + 4, data, n), o += 4 + n;
    uint32_t crc = (uint32_t)crc32(0, start, 4 + n);
    for (int s = 24; s >= 0; s -= 8)
        *o++ = (unsigned char)(crc >> s);
    return o;
}

/* A hand-made 8-bit gray PNG that claims w×h but holds the pixels of one short row. */
static void crafted_png(const char *path, uint32_t w, uint32_t h)
{
    unsigned char buf[256], ihdr[13] = {0}, raw[3] = {0}, z[64];
    uLongf zn = sizeof z;
    for (int s = 24, i = 0; s >= 0; s -= 8, i++)
        ihdr[i] = (unsigned char)(w >> s), ihdr[4 + i] = (unsigned char)(h >> s);
    ihdr[8] = 8;
    compress(z, &zn, raw, sizeof raw);
    memcpy(buf, "\x89PNG\r\n\x1a\n", 8);
    unsigned char *o = put_chunk(buf + 8, "IHDR", ihdr, 13);
    o = put_chunk(o, "IDAT", z, (uint32_t)zn);
    o = put_chunk(o, "IEND", "", 0);
    CHECK(write_file(path, buf, (size_t)(o - buf)) == 0);
}

/* Chunk headers that lie (found by fuzz_image). PNG requires IHDR first, which libpng checks
 * only in the handlers of chunks it knows, so an unknown chunk before IHDR went through. And a
 * tEXt, zTXt, iTXt, iCCP, sPLT, eXIf, pCAL or sCAL chunk is read whole into a buffer libpng
 * allocates and zeroes at the length the header claims (its 8 MB chunk limit is only a warning
 * on reading): 108 bytes made it touch 1.8 GB. The reader reads only the chunks it uses, so a
 * file that claims 512 MiB of text must be refused as cut short without the memory growing. */
static void lying_chunks(void)
{
    char p[4200];
    unsigned char buf[256], ihdr[13] = {0, 0, 0, 2, 0, 0, 0, 1, 8, 0, 0, 0, 0};
    unsigned char raw[3] = {0, 10, 20}, z[64];
    uLongf zn = sizeof z;
    compress(z, &zn, raw, sizeof raw);
    memcpy(buf, "\x89PNG\r\n\x1a\n", 8);
    unsigned char *o = put_chunk(buf + 8, "abCd", "xyz", 3); /* unknown, ancillary */
    o = put_chunk(o, "IHDR", ihdr, 13);
    o = put_chunk(o, "IDAT", z, (uint32_t)zn);
    o = put_chunk(o, "IEND", "", 0);
    CHECK(write_file(at(p, "unknown-first.png"), buf, (size_t)(o - buf)) == 0);
    check_refused(p, BP_ERR_FORMAT, "corrupt PNG (the first chunk is not IHDR)");

    o = put_chunk(buf + 8, "IHDR", ihdr, 13);
    memcpy(o, "\x20\0\0\0tEXtComment", 15); /* 512 MiB claimed, 7 bytes follow */
    o += 15;
    CHECK(write_file(at(p, "text-lie.png"), buf, (size_t)(o - buf)) == 0);
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    check_refused(p, BP_ERR_FORMAT, "declares 536870912 bytes, more than the file has left");
    getrusage(RUSAGE_SELF, &after);
    long grew_kb = after.ru_maxrss - before.ru_maxrss;
    CHECKF(grew_kb < 64 * 1024, "reading a 48-byte PNG raised the peak memory by %ld MiB",
           grew_kb / 1024);
}

static void bad_png(void)
{
    char p[4200], q[4200];
    unsigned char data[32 * 32];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)bp_rng_below(&rng, 256);
    CHECK(write_png(at(p, "whole.png"), 32, 32, 8, PNG_COLOR_TYPE_GRAY, 0, data, NULL, 0, NULL,
                    0) == 0);
    size_t n;
    unsigned char *buf = read_file(p, &n);
    CHECK(buf && n > 100);
    /* cut inside IDAT, and cut just before IEND (png_read_end must still see it) */
    CHECK(write_file(at(q, "half.png"), buf, n / 2) == 0);
    check_refused(q, BP_ERR_FORMAT, "bytes, more than the file has left");
    CHECK(write_file(at(q, "no-iend.png"), buf, n - 12) == 0);
    check_refused(q, BP_ERR_FORMAT, "truncated PNG (the file ends early)");
    unsigned char *idat = NULL;
    for (size_t i = 0; buf && !idat && i + 4 < n; i++)
        idat = memcmp(buf + i, "IDAT", 4) ? NULL : buf + i;
    if (CHECK(idat != NULL)) {
        idat[6] ^= 0x40;
        CHECK(write_file(at(q, "crc.png"), buf, n) == 0);
        check_refused(q, BP_ERR_FORMAT, "corrupt PNG (libpng: IDAT: CRC error");
    }
    free(buf);
    crafted_png(at(p, "wide.png"), 20000, 1);
    check_refused(p, BP_ERR_FORMAT, "width 20000 is not 1 to 16384");
    crafted_png(at(p, "huge.png"), 1, 2000000); /* above libpng's default limit of 10^6 */
    check_refused(p, BP_ERR_FORMAT, "height 2000000 is not 1 to 16384");
    crafted_png(at(p, "not-png.png"), 1, 3000000000u); /* PNG sizes stop at 2^31 − 1 */
    check_refused(p, BP_ERR_FORMAT, "corrupt PNG (libpng: PNG unsigned integer out of range");
    crafted_png(at(p, "zero.png"), 0, 5);
    check_refused(p, BP_ERR_FORMAT,
                  "corrupt PNG (libpng: Invalid IHDR data; last warning: Image width is zero");
    crafted_png(at(p, "lying.png"), 16384, 16384); /* 256 MiB of rows in < 100 bytes */
    check_refused(p, BP_ERR_FORMAT, "truncated PNG: 16384×16384 pixels cannot fit in a file of");
    crafted_png(at(p, "short.png"), 64, 64);
    check_refused(p, BP_ERR_FORMAT, "corrupt PNG (libpng: Not enough image data");
    lying_chunks();
}

/* bp_png_write's output decodes with libpng to the same bytes, and bp_image_read agrees. */
static void png_write(void)
{
    char p[4200];
    for (int ch = 1; ch <= 3; ch += 2) {
        uint32_t w = 13, h = 7, rw, rh;
        uint8_t px[13 * 7 * 3];
        for (size_t i = 0; i < sizeof px; i++)
            px[i] = (uint8_t)bp_rng_below(&rng, 256);
        bp_error err = {0};
        int st = bp_png_write(at(p, ch == 1 ? "out-gray.png" : "out-rgb.png"), px, w, h, ch, &err);
        CHECKF(st == BP_OK, "%s", err.msg);
        int color = -1, depth = -1;
        unsigned char *back = read_png(p, &rw, &rh, &color, &depth);
        if (!CHECK(back != NULL))
            continue;
        CHECK(rw == w && rh == h && depth == 8);
        CHECK_INT_EQ(color, ch == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB);
        CHECK(memcmp(back, px, (size_t)w * h * (size_t)ch) == 0);
        free(back);
        if (ch == 1)
            check_decode(p, w, h, px);
    }
}

static int tmp_files_left(void)
{
    DIR *d = opendir(root);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".tmp") != NULL;
    if (d)
        closedir(d);
    return n;
}

static void write_failures(void)
{
    char p[4200];
    uint8_t px[4 * 4] = {1, 2, 3};
    bp_error err = {0};
    struct stat sb;
    CHECK_INT_EQ(bp_png_write(at(p, "no-dir/x.png"), px, 4, 4, 1, &err), BP_ERR_IO);
    CHECK_CONTAINS(err.msg, p);
    CHECK(stat(p, &sb) != 0);
    CHECK_INT_EQ(bp_png_write(at(p, "arg.png"), px, 4, 4, 2, &err), BP_ERR_ARG);
    CHECK_CONTAINS(err.msg, "2 channels");
    CHECK_INT_EQ(bp_png_write(p, px, 0, 4, 1, &err), BP_ERR_ARG);
    CHECK_CONTAINS(err.msg, "0×4 pixels");
    CHECK(stat(p, &sb) != 0);

    /* A write that fails half-way (file size limit; works as root too, unlike a read-only
     * directory) must leave the existing file as it was and no temporary beside it. */
    CHECK(bp_png_write(at(p, "keep.png"), px, 4, 4, 1, &err) == BP_OK);
    size_t n0, n1;
    unsigned char *before = read_file(p, &n0);
    enum { W = 600, H = 600 };
    uint8_t *big = malloc(W * H * 3);
    for (size_t i = 0; big && i < W * H * 3; i++)
        big[i] = (uint8_t)bp_rng_below(&rng, 256); /* incompressible: > 1 MB of PNG */
    struct rlimit old, lim;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old, lim.rlim_cur = 65536;
    signal(SIGXFSZ, SIG_IGN); /* write() then fails with EFBIG instead of killing us */
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    int st = bp_png_write(p, big, W, H, 3, &err);
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    CHECK_INT_EQ(st, BP_ERR_IO);
    CHECK_CONTAINS(err.msg, p);
    CHECK_CONTAINS(err.msg, "File too large");
    unsigned char *after = read_file(p, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
    CHECK_INT_EQ(tmp_files_left(), 0);
    free(before), free(after), free(big);
}

/* ---- pictures ---- */
static const unsigned char *pixel(const unsigned char *px, uint32_t w, uint32_t x, uint32_t y)
{
    return px + 3 * ((size_t)y * w + x);
}

static void check_rgb(const unsigned char *px, uint32_t w, uint32_t x, uint32_t y, int r, int g,
                      int b)
{
    const unsigned char *q = pixel(px, w, x, y);
    CHECKF(q[0] == r && q[1] == g && q[2] == b, "pixel (%u,%u) = (%u,%u,%u), want (%d,%d,%d)", x, y,
           q[0], q[1], q[2], r, g, b);
}

/* The picture at path: an 8-bit RGB PNG of w×h; its pixels, or NULL. */
static unsigned char *picture(const char *path, uint32_t w, uint32_t h)
{
    uint32_t rw = 0, rh = 0;
    int color = -1, depth = -1;
    unsigned char *px = read_png(path, &rw, &rh, &color, &depth);
    CHECKF(px && rw == w && rh == h && color == PNG_COLOR_TYPE_RGB && depth == 8,
           "%s: %u×%u colour %d depth %d, want %u×%u RGB 8", path, rw, rh, color, depth, w, h);
    if (px && (rw != w || rh != h))
        free(px), px = NULL;
    return px;
}

static void picture_weights(void)
{
    char p[4200];
    bp_error err = {0};
    bp_model *m = NULL;
    const int soft[2] = {28 * 28, 10}, mlp[3] = {12, 5, 10};
    CHECK(bp_model_create(&m, soft, 1, BP_ACT_RELU, &err) == BP_OK);
    m->W[0][0] = 2, m->W[0][1] = -2, m->W[0][2] = 1; /* class 0: max, min, half; class 1 all 0 */
    m->W[0][2 * 784] = NAN, m->W[0][2 * 784 + 1] = 0.5f;
    /* 10 classes: 5×2 tiles of 112 (28·4) with 2-pixel gaps */
    CHECKF(bp_picture_weights(at(p, "w.png"), m, 28, 28, 0, &err) == BP_OK, "%s", err.msg);
    unsigned char *px = picture(p, 5 * 114 + 2, 2 * 114 + 2);
    if (px) {
        uint32_t w = 5 * 114 + 2;
        check_rgb(px, w, 0, 0, 128, 128, 128);             /* gap */
        check_rgb(px, w, 2 + 1, 2 + 2, 255, 0, 0);         /* +max: red */
        check_rgb(px, w, 2 + 4 + 3, 2 + 3, 0, 0, 255);     /* −max: blue */
        check_rgb(px, w, 2 + 8, 2, 255, 128, 128);         /* half: reddish */
        check_rgb(px, w, 2 + 12, 2, 255, 255, 255);        /* zero: white */
        check_rgb(px, w, 116 + 50, 2 + 60, 255, 255, 255); /* class 1: all zero */
        check_rgb(px, w, 230, 2, 0, 0, 0);                 /* NaN: black */
        check_rgb(px, w, 230 + 4, 2, 255, 0, 0);           /* the NaN is not the scale */
        free(px);
    }
    CHECK_INT_EQ(bp_picture_weights(at(p, "w-bad.png"), m, 27, 28, 0, &err), BP_ERR_ARG);
    CHECK_CONTAINS(err.msg, "27×28");
    CHECK_INT_EQ(bp_picture_weights(p, m, 28, 28, 101, &err), BP_ERR_ARG);
    CHECK(strcmp(err.field, "max_tiles") == 0);
    struct stat sb;
    CHECK(stat(p, &sb) != 0);
    bp_model_free(m);

    /* MLP: the units of the largest W[0] row norms first; 3×4 tiles magnified 16× (the cap) */
    CHECK(bp_model_create(&m, mlp, 2, BP_ACT_RELU, &err) == BP_OK);
    m->W[0][3 * 12] = 3, m->W[0][1 * 12] = -2, m->W[0][0 * 12 + 5] = 1;
    CHECKF(bp_picture_weights(at(p, "mlp.png"), m, 3, 4, 2, &err) == BP_OK, "%s", err.msg);
    if ((px = picture(p, 2 * 66 + 2, 48 + 4))) {
        check_rgb(px, 134, 2 + 15, 2 + 15, 255, 0, 0); /* unit 3 */
        check_rgb(px, 134, 68 + 1, 2 + 1, 0, 0, 255);  /* unit 1 */
        check_rgb(px, 134, 2 + 16, 2 + 15, 255, 255, 255);
        free(px);
    }
    CHECKF(bp_picture_weights(p, m, 3, 4, 0, &err) == BP_OK, "%s", err.msg);
    free(picture(p, 3 * 66 + 2, 2 * 50 + 2)); /* all 5 units: 3×2 */
    bp_model_free(m);
}

static void picture_errors(void)
{
    enum { N = 4 };
    uint8_t pixels[N * 784], labels[N] = {7, 2, 1, 9};
    for (size_t i = 0; i < sizeof pixels; i++)
        pixels[i] = (uint8_t)(i * 7);
    pixels[0] = 200;
    bp_dataset ds = {.n = N, .rows = 28, .cols = 28, .dim = 784, .classes = 10,
                     .pixels = pixels, .labels = labels};
    const uint32_t idx[3] = {0, 3, 1};
    const uint8_t pred[3] = {2, 4, 5};
    char p[4200];
    bp_error err = {0};
    CHECKF(bp_picture_errors(at(p, "err.png"), &ds, idx, pred, 3, &err) == BP_OK, "%s", err.msg);
    /* 3 tiles in a row: 84×84 images (3×) over a 20-pixel caption, 2-pixel gaps */
    unsigned char *px = picture(p, 3 * 86 + 2, 104 + 4);
    if (px) {
        uint32_t w = 3 * 86 + 2;
        check_rgb(px, w, 2 + 2, 2 + 2, 200, 200, 200);
        unsigned v = pixels[3 * 784 + 27 * 28 + 27];
        check_rgb(px, w, 88 + 83, 2 + 83, (int)v, (int)v, (int)v); /* idx[1] = 3, last pixel */
        uint32_t green_x = w, red_x = w;
        for (uint32_t y = 2 + 84; y < 2 + 104; y++)
            for (uint32_t x = 2; x < 86; x++) {
                const unsigned char *q = pixel(px, w, x, y);
                if (q[1] > 150 && q[0] < 100 && q[2] < 100 && x < green_x)
                    green_x = x;
                if (q[0] > 150 && q[1] < 100 && q[2] < 100 && x < red_x)
                    red_x = x;
            }
        CHECKF(green_x < red_x && red_x < 86, "green from x=%u, red from x=%u", green_x, red_x);
        free(px);
    }
    const uint32_t bad[2] = {0, 9};
    CHECK_INT_EQ(bp_picture_errors(at(p, "err-bad.png"), &ds, bad, pred, 2, &err), BP_ERR_ARG);
    CHECK_CONTAINS(err.msg, "idx[1] = 9");
    CHECK_INT_EQ(bp_picture_errors(p, &ds, idx, pred, 0, &err), BP_ERR_ARG);
}

/* rm -r for the flat tree this test makes. */
static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char p[4400];
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            if (unlink(p) != 0)
                remove_tree(p);
        }
    }
    if (d)
        closedir(d);
    rmdir(path);
}

int main(void)
{
    alarm(50); /* a blocking open of the FIFO must fail the test, not hang to Meson's timeout */
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/bp-test-image.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        fprintf(stderr, "mkdtemp %s: %s\n", root, strerror(errno));
        return 1;
    }
    bp_rng_seed(&rng, 2025);
    printf("image files in %s\n", root);
    good_pgm();
    bad_files();
    good_png();
    bad_png();
    png_write();
    write_failures();
    picture_weights();
    picture_errors();
    remove_tree(root);
    struct stat sb;
    CHECKF(stat(root, &sb) != 0, "temporary directory %s was not removed", root);
    return check_exit("test_image");
}
