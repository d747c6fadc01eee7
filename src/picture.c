/* Pictures of what a model learned and where it fails: RGB PNGs written by bp_png_write
 * (atomically, through bp_file).
 *
 * Layout of both: n tiles in a grid of c columns and ⌈n/c⌉ rows, c the count between ⌈√n⌉
 * and ⌈√(2n)⌉ that leaves the fewest cells empty (the smaller on a tie), so 10 tiles are 5×2,
 * 100 are 10×10, and the grid is never much more than twice as wide as it is tall. GAP pixels
 * of mid-gray lie between the tiles and around them: mid-gray, because a zero weight is white
 * and a background pixel of an image is black.
 *
 * Weights: unit u's row of W[0] as rows×cols, each weight a block of s×s pixels,
 * s = 112 / max(rows, cols) held to 1..16 (28×28: 4×, a 112-pixel tile). With a = the tile's
 * largest |w| and t = w/a: t ≥ 0 → (255, 255(1−t), 255(1−t)), white to red; t < 0 →
 * (255(1+t), 255(1+t), 255), white to blue; rounded. An all-zero tile is white. A NaN or
 * infinite weight is black (no colour of the map is) and counts neither in a nor in the norm.
 *
 * Errors: each image in gray, 3× magnified, over a caption strip that reads "T>P" in a 5×7
 * digit font drawn 2×: the true label in green, '>' in light gray, the predicted class in red
 * (green when it is the label after all). Labels and classes are written in decimal. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GAP 2u
#define MAX_SIDE 16384u /* bp_png_write's limit (src/image.c) */
#define MAX_TILES 100
#define WEIGHT_TILE 112u
#define ERR_ZOOM 3u
#define FONT_ZOOM 2u
#define CAPTION_H (7u * FONT_ZOOM + 6u)

static const uint8_t BACKGROUND[3] = {128, 128, 128}, BLACK[3] = {0, 0, 0};
static const uint8_t GREEN[3] = {40, 210, 40}, RED[3] = {230, 40, 40}, LIGHT[3] = {200, 200, 200};

/* 5×7 glyphs for '0'..'9' and '>' (index 10): one byte per row, bit 4 the leftmost column. */
static const uint8_t FONT[11][7] = {
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E},
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}, {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E},
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E},
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08},
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C},
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08},
};
#define GLYPH_ADVANCE (6u * FONT_ZOOM) /* 5 columns and 1 of space */

typedef struct {
    uint32_t w, h, cols; /* size, and grid columns */
    uint32_t tw, th;     /* one tile */
    uint8_t *px;         /* w×h×3 */
} canvas;

static uint32_t grid_cols(uint64_t n)
{
    uint64_t lo = 1, hi = 1, best;
    while (lo * lo < n)
        lo++;
    while (hi * hi < 2 * n)
        hi++;
    best = lo;
    for (uint64_t c = lo + 1; c <= hi; c++)
        if ((n + c - 1) / c * c - n < (n + best - 1) / best * best - n)
            best = c;
    return (uint32_t)best;
}

/* A canvas for n tiles of tw×th, filled with the background; BP_ERR_ARG when it would exceed
 * what bp_png_write takes, before anything is allocated. */
static int canvas_new(canvas *cv, uint64_t n, uint64_t tw, uint64_t th, const char *path,
                      bp_error *err)
{
    uint64_t c = grid_cols(n), r = (n + c - 1) / c;
    uint64_t w = c * (tw + GAP) + GAP, h = r * (th + GAP) + GAP;
    if (w > MAX_SIDE || h > MAX_SIDE)
        return bp_fail(err, BP_ERR_ARG, "%s: %llu tiles of %llu×%llu make a %llu×%llu picture, "
                       "larger than %u×%u", path, (unsigned long long)n, (unsigned long long)tw,
                       (unsigned long long)th, (unsigned long long)w, (unsigned long long)h,
                       MAX_SIDE, MAX_SIDE);
    *cv = (canvas){.w = (uint32_t)w, .h = (uint32_t)h, .cols = (uint32_t)c,
                   .tw = (uint32_t)tw, .th = (uint32_t)th};
    if (!(cv->px = malloc((size_t)(w * h * 3))))
        return bp_fail(err, BP_ERR_NOMEM, "%s: out of memory for a %llu×%llu picture", path,
                       (unsigned long long)w, (unsigned long long)h);
    for (size_t i = 0; i < (size_t)(w * h); i++)
        memcpy(cv->px + 3 * i, BACKGROUND, 3);
    return BP_OK;
}

/* The top-left corner of tile k. */
static void tile_at(const canvas *cv, uint32_t k, uint32_t *x, uint32_t *y)
{
    *x = GAP + k % cv->cols * (cv->tw + GAP);
    *y = GAP + k / cv->cols * (cv->th + GAP);
}

static void fill(canvas *cv, uint32_t x, uint32_t y, uint32_t w, uint32_t h, const uint8_t *rgb)
{
    for (uint32_t j = y; j < y + h; j++)
        for (uint32_t i = x; i < x + w; i++)
            memcpy(cv->px + 3 * ((size_t)j * cv->w + i), rgb, 3);
}

/* ---------------------------------------------------------------------- weights ---- */

static void weight_rgb(float w, double a, uint8_t *rgb)
{
    if (!isfinite(w)) {
        memcpy(rgb, BLACK, 3);
        return;
    }
    double t = a > 0 ? w / a : 0;
    uint8_t fade = (uint8_t)lround(255.0 * (1.0 - fabs(t)));
    rgb[0] = t < 0 ? fade : 255;
    rgb[1] = fade;
    rgb[2] = t < 0 ? 255 : fade;
}

static void draw_weights(canvas *cv, uint32_t k, const float *row, uint32_t rows,
                         uint32_t cols, uint32_t s)
{
    double a = 0;
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        if (isfinite(row[i]) && fabs(row[i]) > a)
            a = fabs(row[i]);
    uint32_t x0, y0;
    tile_at(cv, k, &x0, &y0);
    for (uint32_t y = 0; y < rows; y++)
        for (uint32_t x = 0; x < cols; x++) {
            uint8_t rgb[3];
            weight_rgb(row[(size_t)y * cols + x], a, rgb);
            fill(cv, x0 + x * s, y0 + y * s, s, s, rgb);
        }
}

typedef struct {
    double norm;
    int unit;
} ranked;

static int by_norm(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->norm != b->norm)
        return a->norm < b->norm ? 1 : -1;
    return (a->unit > b->unit) - (a->unit < b->unit);
}

/* Every unit, in drawing order: class order for a softmax regression (one layer), else by the
 * L2 norm of their row of W[0], largest first. NULL when out of memory. */
static ranked *pick_units(const bp_model *m)
{
    int units = m->sizes[1], in = m->sizes[0];
    ranked *r = malloc(sizeof *r * (size_t)units);
    for (int u = 0; r && u < units; u++) {
        double s = 0;
        for (int i = 0; i < in; i++) {
            double w = m->W[0][(size_t)u * in + i];
            s += isfinite(w) ? w * w : 0;
        }
        r[u] = (ranked){.norm = m->nlayers == 1 ? 0 : sqrt(s), .unit = u};
    }
    if (r && m->nlayers > 1)
        qsort(r, (size_t)units, sizeof *r, by_norm);
    return r;
}

/* A CNN's first conv2d layer: each output channel's kh×kw filter on input channel 0, in
 * channel order, each scaled to its own largest |w|. */
static int conv_filters(const char *path, const bp_model *m, const bp_layer *ly, int max_tiles,
                        bp_error *err)
{
    if (max_tiles < 0 || max_tiles > MAX_TILES)
        return bp_fail_field(err, "max_tiles", "%d is not 0 to %d", max_tiles, MAX_TILES);
    int n = ly->units < MAX_TILES ? ly->units : MAX_TILES;
    if (max_tiles && max_tiles < n)
        n = max_tiles;
    uint32_t side = (uint32_t)(ly->kh > ly->kw ? ly->kh : ly->kw), s = WEIGHT_TILE / 2 / side;
    s = s < 1 ? 1 : s > 16 ? 16 : s;
    canvas cv;
    int st = canvas_new(&cv, (uint64_t)n, (uint64_t)ly->kw * s, (uint64_t)ly->kh * s, path, err);
    if (st)
        return st;
    size_t per = (size_t)ly->in_c * ly->kh * ly->kw;
    for (int k = 0; k < n; k++)
        draw_weights(&cv, (uint32_t)k, m->W[0] + (size_t)k * per, (uint32_t)ly->kh,
                     (uint32_t)ly->kw, s);
    st = bp_png_write(path, cv.px, cv.w, cv.h, 3, err);
    free(cv.px);
    return st;
}

int bp_picture_weights(const char *path, const bp_model *m, uint32_t rows, uint32_t cols,
                       int max_tiles, bp_error *err)
{
    if (!m)
        return bp_fail(err, BP_ERR_ARG, "%s: no model", path);
    const bp_layer *first = NULL;
    for (int i = 0; i < m->nlist && !first; i++)
        if (m->list[i].param == 0)
            first = &m->list[i];
    if (first && first->kind == BP_LAYER_CONV2D)
        return conv_filters(path, m, first, max_tiles, err);
    if ((uint64_t)rows * cols != (uint64_t)m->sizes[0])
        return bp_fail(err, BP_ERR_ARG, "%s: tiles of %u×%u do not match the model's %d inputs",
                       path, rows, cols, m->sizes[0]);
    if (max_tiles < 0 || max_tiles > MAX_TILES)
        return bp_fail_field(err, "max_tiles", "%d is not 0 to %d", max_tiles, MAX_TILES);
    int n = m->sizes[1] < MAX_TILES ? m->sizes[1] : MAX_TILES;
    if (max_tiles && max_tiles < n)
        n = max_tiles;
    uint32_t side = rows > cols ? rows : cols, s = WEIGHT_TILE / side;
    s = s < 1 ? 1 : s > 16 ? 16 : s;
    canvas cv;
    int st = canvas_new(&cv, (uint64_t)n, (uint64_t)cols * s, (uint64_t)rows * s, path, err);
    if (st)
        return st;
    ranked *r = pick_units(m);
    if (!r) {
        free(cv.px);
        return bp_fail(err, BP_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int k = 0; k < n; k++)
        draw_weights(&cv, (uint32_t)k, m->W[0] + (size_t)r[k].unit * m->sizes[0], rows, cols, s);
    st = bp_png_write(path, cv.px, cv.w, cv.h, 3, err);
    free(r);
    free(cv.px);
    return st;
}

/* ----------------------------------------------------------------------- errors ---- */

/* Draws text (digits and '>') at (x, y) unless cv is NULL; returns the width it takes. */
static uint32_t draw_text(canvas *cv, uint32_t x, uint32_t y, const char *text,
                          const uint8_t *rgb)
{
    uint32_t n = 0;
    for (; text[n]; n++) {
        const uint8_t *g = FONT[text[n] == '>' ? 10 : text[n] - '0'];
        for (uint32_t r = 0; cv && r < 7; r++)
            for (uint32_t c = 0; c < 5; c++)
                if (g[r] >> (4 - c) & 1)
                    fill(cv, x + n * GLYPH_ADVANCE + c * FONT_ZOOM, y + r * FONT_ZOOM,
                         FONT_ZOOM, FONT_ZOOM, rgb);
    }
    return n ? n * GLYPH_ADVANCE - FONT_ZOOM : 0;
}

static uint32_t caption_width(unsigned label, unsigned pred)
{
    char t[16];
    snprintf(t, sizeof t, "%u>%u", label, pred);
    return draw_text(NULL, 0, 0, t, NULL);
}

static void draw_error(canvas *cv, uint32_t k, const bp_dataset *ds, uint32_t i, unsigned pred)
{
    uint32_t x0, y0, iw = ds->cols * ERR_ZOOM, ih = ds->rows * ERR_ZOOM;
    tile_at(cv, k, &x0, &y0);
    const uint8_t *img = ds->pixels + (size_t)i * ds->dim;
    uint32_t xi = x0 + (cv->tw - iw) / 2;
    for (uint32_t y = 0; y < ds->rows; y++)
        for (uint32_t x = 0; x < ds->cols; x++) {
            uint8_t v = img[(size_t)y * ds->cols + x], rgb[3] = {v, v, v};
            fill(cv, xi + x * ERR_ZOOM, y0 + y * ERR_ZOOM, ERR_ZOOM, ERR_ZOOM, rgb);
        }
    uint32_t yc = y0 + ih;
    fill(cv, x0, yc, cv->tw, CAPTION_H, BLACK);
    char t[8], p[8];
    snprintf(t, sizeof t, "%u", ds->labels[i]);
    snprintf(p, sizeof p, "%u", pred);
    uint32_t x = x0 + (cv->tw - caption_width(ds->labels[i], pred)) / 2, y = yc + 3;
    x += draw_text(cv, x, y, t, GREEN) + FONT_ZOOM;
    x += draw_text(cv, x, y, ">", LIGHT) + FONT_ZOOM;
    draw_text(cv, x, y, p, pred == ds->labels[i] ? GREEN : RED);
}

int bp_picture_errors(const char *path, const bp_dataset *ds, const uint32_t *idx,
                      const uint8_t *pred, int n, bp_error *err)
{
    if (!ds || !idx || !pred || n < 1)
        return bp_fail(err, BP_ERR_ARG, "%s: no images to draw (n = %d)", path, n);
    uint64_t tw = (uint64_t)ds->cols * ERR_ZOOM;
    for (int k = 0; k < n; k++) {
        if (idx[k] >= ds->n)
            return bp_fail(err, BP_ERR_ARG, "%s: idx[%d] = %u is not below the %u images",
                           path, k, idx[k], ds->n);
        uint64_t cw = caption_width(ds->labels[idx[k]], pred[k]) + 2 * FONT_ZOOM;
        tw = cw > tw ? cw : tw;
    }
    canvas cv;
    int st = canvas_new(&cv, (uint64_t)n, tw, (uint64_t)ds->rows * ERR_ZOOM + CAPTION_H, path,
                        err);
    if (st)
        return st;
    for (int k = 0; k < n; k++)
        draw_error(&cv, (uint32_t)k, ds, idx[k], pred[k]);
    st = bp_png_write(path, cv.px, cv.w, cv.h, 3, err);
    free(cv.px);
    return st;
}
