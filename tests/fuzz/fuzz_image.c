/* The image reader (bp_image_read) on the input as a PGM or PNG file.
 *
 * PNG chunks carry CRCs that libpng checks, so a mutated chunk is almost always refused for
 * its CRC alone. Each input that starts with the PNG signature is therefore tried twice: as it
 * is, and with the CRC of every complete chunk recomputed, so that mutations reach the decoder.
 *
 * Properties:
 *  - a success has rows and cols of 1 to 16384, and no more pixels than the file can encode:
 *    a PGM at least one byte a pixel, a PNG at most 8 pixels a byte (1-bit) after deflate's
 *    best ratio of 1032:1; reading the same file again gives the same image;
 *  - a PNG that is read has the width and height of its IHDR chunk;
 *  - a PGM (P2, P5) is read exactly when it follows docs/images.md, judged by a parser of its
 *    own here, and then to the pixels round(255·v/M), halves up;
 *  - a failure returns a bp_status, an emptied image and a one-line message that starts with
 *    the file's path. */
#include "fuzz.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MAX_SIDE 16384u

static char path[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_path(path, sizeof path, "input-image");
    return 0;
}

/* ---- PGM as docs/images.md describes it ---- */

static int space(int c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

typedef struct {
    const uint8_t *d;
    size_t n, i;
} cursor;

static int peek(const cursor *c) { return c->i < c->n ? c->d[c->i] : -1; }

/* A decimal number: in the header, whitespace and '#' comments (to the end of the line) may
 * come before it; it must end with one whitespace byte (consumed) or the end of the file. More
 * than 18 significant digits is refused. */
static int number(cursor *c, int header, uint64_t *v)
{
    for (;;) {
        int ch = peek(c);
        if (header && ch == '#') {
            while (c->i < c->n && c->d[c->i] != '\n' && c->d[c->i] != '\r')
                c->i++;
        } else if (ch >= 0 && space(ch)) {
            c->i++;
        } else {
            break;
        }
    }
    int digits = 0, any = 0;
    uint64_t x = 0;
    while (peek(c) >= '0' && peek(c) <= '9') {
        int dig = c->d[c->i++] - '0';
        any = 1;
        if (x || dig)
            digits++;
        if (digits > 18)
            return 0;
        x = 10 * x + (uint64_t)dig;
    }
    if (!any)
        return 0;
    if (peek(c) >= 0) {
        if (!space(peek(c)))
            return 0;
        c->i++;
    }
    *v = x;
    return 1;
}

/* 1 and the pixels (malloc'd) if d is a valid PGM, else 0. */
static int pgm_reference(const uint8_t *d, size_t n, uint64_t *w, uint64_t *h, uint8_t **px)
{
    *px = NULL;
    if (n < 3 || d[0] != 'P' || (d[1] != '2' && d[1] != '5') || !(space(d[2]) || d[2] == '#'))
        return 0;
    int plain = d[1] == '2';
    cursor c = {d, n, 2};
    uint64_t M;
    if (!number(&c, 1, w) || !number(&c, 1, h) || !number(&c, 1, &M))
        return 0;
    if (*w < 1 || *w > MAX_SIDE || *h < 1 || *h > MAX_SIDE || M < 1 || M > 65535)
        return 0;
    uint64_t count = *w * *h, bps = M > 255 ? 2 : 1;
    if (!plain && n - c.i != count * bps) /* nothing more, nothing less */
        return 0;
    if (plain && n - c.i < count) /* at least a digit a sample: spares a huge allocation */
        return 0;
    uint8_t *out = malloc(count);
    if (!out)
        abort();
    for (uint64_t k = 0; k < count; k++) {
        uint64_t v;
        if (plain) {
            if (!number(&c, 0, &v)) {
                free(out);
                return 0;
            }
        } else {
            v = bps == 2 ? (uint64_t)d[c.i] << 8 | d[c.i + 1] : d[c.i];
            c.i += bps;
        }
        if (v > M) {
            free(out);
            return 0;
        }
        out[k] = (uint8_t)floor(255.0 * (double)v / (double)M + 0.5);
    }
    while (plain && c.i < n && space(c.d[c.i]))
        c.i++;
    if (c.i != n) { /* anything after the last sample */
        free(out);
        return 0;
    }
    *px = out;
    return 1;
}

/* ---- PNG ---- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* The input with every complete chunk's CRC recomputed, or NULL if that changes nothing. */
static uint8_t *fix_crcs(const uint8_t *data, size_t size)
{
    if (size < 8 || memcmp(data, png_sig, 8) != 0)
        return NULL;
    uint8_t *out = malloc(size);
    if (!out)
        abort();
    memcpy(out, data, size);
    for (size_t at = 8; at + 12 <= size;) {
        uint64_t len = be32(out + at);
        if (len > size - at - 12)
            break;
        uint32_t crc = (uint32_t)crc32_z(crc32_z(0L, Z_NULL, 0), out + at + 4, 4 + (size_t)len);
        uint8_t *p = out + at + 8 + len;
        p[0] = (uint8_t)(crc >> 24), p[1] = (uint8_t)(crc >> 16), p[2] = (uint8_t)(crc >> 8),
        p[3] = (uint8_t)crc;
        at += 12 + (size_t)len;
    }
    if (memcmp(out, data, size) == 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* ---- the properties ---- */

static void try_file(const uint8_t *data, size_t size)
{
    fuzz_write(path, data, size);
    bp_image img = {7, 7, (uint8_t *)path}; /* poison: must be emptied on failure */
    bp_error err;
    fuzz_err_reset(&err);
    int st = bp_image_read(path, &img, &err);
    int is_pgm = size >= 2 && data[0] == 'P' && (data[1] == '2' || data[1] == '5');
    uint64_t rw = 0, rh = 0;
    uint8_t *want = NULL;
    int ref_ok = is_pgm && pgm_reference(data, size, &rw, &rh, &want);
    if (is_pgm)
        FUZZ_REQUIRE((st == BP_OK) == ref_ok, "PGM: bp_image_read gives %d (%s), the rules say "
                     "%s", st, st ? err.msg : "ok", ref_ok ? "valid" : "not valid");
    if (st) {
        fuzz_check_failure("bp_image_read", st, &err, path);
        FUZZ_REQUIRE(!img.pixels && !img.rows && !img.cols, "a failed read left an image");
        free(want);
        return;
    }
    FUZZ_REQUIRE(img.pixels && img.rows >= 1 && img.rows <= MAX_SIDE && img.cols >= 1 &&
                     img.cols <= MAX_SIDE,
                 "an image of %ux%u", img.cols, img.rows);
    uint64_t pixels = (uint64_t)img.rows * img.cols;
    if (is_pgm) {
        FUZZ_REQUIRE(pixels <= size, "%llu pixels from a PGM of %zu bytes",
                     (unsigned long long)pixels, size);
        FUZZ_REQUIRE(img.cols == rw && img.rows == rh, "PGM: %ux%u, the header says %llux%llu",
                     img.cols, img.rows, (unsigned long long)rw, (unsigned long long)rh);
        for (uint64_t k = 0; k < pixels; k++)
            FUZZ_REQUIRE(img.pixels[k] == want[k], "PGM: pixel %llu is %u, the rule gives %u",
                         (unsigned long long)k, img.pixels[k], want[k]);
    } else {
        FUZZ_REQUIRE(size >= 24 && memcmp(data, png_sig, 8) == 0 &&
                         memcmp(data + 12, "IHDR", 4) == 0,
                     "read as an image, but it is neither PGM nor a PNG starting with IHDR");
        FUZZ_REQUIRE(img.cols == be32(data + 16) && img.rows == be32(data + 20),
                     "PNG: %ux%u, IHDR says %ux%u", img.cols, img.rows, be32(data + 16),
                     be32(data + 20));
        FUZZ_REQUIRE(pixels <= (uint64_t)8 * 1032 * (size + 1), "%llu pixels from %zu bytes",
                     (unsigned long long)pixels, size);
    }
    bp_image again;
    FUZZ_REQUIRE(bp_image_read(path, &again, &err) == BP_OK, "a second read fails: %s",
                 err.msg);
    FUZZ_REQUIRE(again.rows == img.rows && again.cols == img.cols &&
                     memcmp(again.pixels, img.pixels, (size_t)pixels) == 0,
                 "a second read gives another image");
    bp_image_free(&again);
    bp_image_free(&img);
    FUZZ_REQUIRE(!img.pixels && !img.rows && !img.cols, "bp_image_free left an image");
    free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_file(data, size);
    uint8_t *fixed = fix_crcs(data, size);
    if (fixed) {
        try_file(fixed, size);
        free(fixed);
    }
    return 0;
}
