/* conv2d over NCHW batches, as GEMMs through im2col (docs/derivation.md §10).
 * Per sample, with input x [C, H, W], weight W [O, C, kh, kw], bias b [O]:
 *   y[o, oy, ox] = b_o + Σ_{c,i,j} W[o, c, i, j] · x[c, oy·s + i − ph, ox·s + j − pw]
 * im2col lays the inputs each output pixel sees into a column: col[(c,i,j), (oy,ox)], so the
 * per-sample convolution is one matrix product, Y[O, P] = W[O, K]·col[K, P] + b·1ᵀ with
 * K = C·kh·kw and P = OH·OW, and its adjoints are
 *   dW = Σ_samples dY·colᵀ,  db_o = Σ over dY's row o,  dcol = Wᵀ·dY,
 *   dx = col2im(dcol) (each column entry added back to the pixel it was read from).
 *
 * Who computes what: the batch is cut into conv_chunks(B) ranges of consecutive samples, a
 * number that depends on B alone, and the ranges are the chunks of the library's pool
 * (pool.c). A chunk takes its samples one at a time: im2col into its own slot of scratch, then
 * a single-threaded GEMM straight into the sample's slice of Y (NCHW: [O, P] per sample is
 * exactly the GEMM's row-major output), or in the backward pass dY's slice times the columns
 * into the chunk's partial dW and db, and Wᵀ·dY into the slot again, col2im'd into the
 * sample's slice of dX. The partial sums of the chunks are then added in chunk order (split
 * by elements on the pool). Every number is thus summed in the same order whatever the thread
 * count, and the scratch is one sample's columns and one dW per chunk, whatever the batch.
 * An activation right after the layer (in place on its output) is applied in the same chunk,
 * sample by sample while the output is still in the core's cache, and its backward likewise. */
#include "internal.h"

#include <string.h>

void conv_shape_of(conv_shape *s, const bp_layer *ly)
{
    s->C = ly->in_c, s->H = ly->in_h, s->W = ly->in_w;
    s->O = ly->out_c, s->OH = ly->out_h, s->OW = ly->out_w;
    s->kh = ly->kh, s->kw = ly->kw, s->stride = ly->stride ? ly->stride : 1;
    s->ph = ly->pad == BP_PAD_SAME ? (ly->kh - 1) / 2 : 0;
    s->pw = ly->pad == BP_PAD_SAME ? (ly->kw - 1) / 2 : 0;
}

/* The output columns ox whose input column ox·stride + j − pw lies inside [0, W): [*lo, *hi). */
static void valid_cols(const conv_shape *s, int j, int *lo, int *hi)
{
    int off = j - s->pw, st = s->stride;
    /* ox·st + off ≥ 0  ⇔  ox ≥ ⌈−off/st⌉;  ox·st + off ≤ W − 1  ⇔  ox ≤ ⌊(W − 1 − off)/st⌋ */
    int l = off >= 0 ? 0 : (-off + st - 1) / st;
    int h = s->W - 1 - off < 0 ? 0 : (s->W - 1 - off) / st + 1;
    *lo = l < s->OW ? l : s->OW;
    *hi = h < s->OW ? h : s->OW;
    if (*hi < *lo)
        *hi = *lo;
}

/* Row pieces, restrict so that the compiler vectorises them without alias checks: the rows
 * are short (OW floats), too short for memcpy's call to pay. */
static inline void copy_row(float *restrict r, const float *restrict line, int n)
{
    for (int k = 0; k < n; k++)
        r[k] = line[k];
}
static inline void add_row(float *restrict line, const float *restrict r, int n)
{
    for (int k = 0; k < n; k++)
        line[k] += r[k];
}

void im2col(const float *x, const conv_shape *s, float *col, size_t ld)
{
    for (int c = 0; c < s->C; c++)
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++) {
                float *row = col + (size_t)((c * s->kh + i) * s->kw + j) * ld;
                const float *plane = x + (size_t)c * s->H * s->W;
                int lo, hi;
                valid_cols(s, j, &lo, &hi);
                for (int oy = 0; oy < s->OH; oy++) {
                    int y = oy * s->stride + i - s->ph;
                    float *r = row + (size_t)oy * s->OW;
                    if (y < 0 || y >= s->H) {
                        memset(r, 0, (size_t)s->OW * sizeof *r);
                        continue;
                    }
                    /* the padding at both ends, the pixels in between */
                    const float *line = plane + (size_t)y * s->W;
                    int off = j - s->pw;
                    for (int ox = 0; ox < lo; ox++)
                        r[ox] = 0.0f;
                    if (s->stride == 1)
                        copy_row(r + lo, line + lo + off, hi - lo);
                    else
                        for (int ox = lo; ox < hi; ox++)
                            r[ox] = line[ox * s->stride + off];
                    for (int ox = hi; ox < s->OW; ox++)
                        r[ox] = 0.0f;
                }
            }
}

void col2im(const float *col, const conv_shape *s, float *dx, size_t ld)
{
    for (int c = 0; c < s->C; c++)
        for (int i = 0; i < s->kh; i++)
            for (int j = 0; j < s->kw; j++) {
                const float *row = col + (size_t)((c * s->kh + i) * s->kw + j) * ld;
                float *plane = dx + (size_t)c * s->H * s->W;
                int lo, hi;
                valid_cols(s, j, &lo, &hi);
                for (int oy = 0; oy < s->OH; oy++) {
                    int y = oy * s->stride + i - s->ph;
                    if (y < 0 || y >= s->H)
                        continue;
                    const float *r = row + (size_t)oy * s->OW;
                    float *line = plane + (size_t)y * s->W;
                    int off = j - s->pw;
                    if (s->stride == 1)
                        add_row(line + lo + off, r + lo, hi - lo);
                    else
                        for (int ox = lo; ox < hi; ox++)
                            line[ox * s->stride + off] += r[ox];
                }
            }
}

int conv_chunks(int B)
{
    int n = (B + CONV_BLOCK - 1) / CONV_BLOCK;
    return n < 1 ? 1 : n < CONV_SLOTS ? n : CONV_SLOTS;
}

size_t conv_slot_floats(const conv_shape *s)
{
    size_t P = (size_t)s->OH * s->OW, K = (size_t)s->C * s->kh * s->kw;
    return K * P + (size_t)s->O * K + (size_t)s->O;
}

size_t conv_keep_floats(const conv_shape *s, int max_batch)
{
    size_t P = (size_t)s->OH * s->OW, K = (size_t)s->C * s->kh * s->kw;
    size_t n = K * P * (size_t)max_batch;
    return n <= CONV_KEEP_FLOATS ? n : 0;
}

typedef struct {
    float *Y, *dX, *dW, *db;
    const float *X, *W, *b, *dY;
    float *keep, *scratch, *g;
    const float *A;
    const conv_shape *s;
    size_t slot, P, K, in, out;
    int B, act;
} conv_job;

/* Samples [*lo, *hi) of chunk c of n: consecutive, as even as the batch allows. */
static void chunk_range(int B, int c, int n, int *lo, int *hi)
{
    *lo = (int)((long)B * c / n);
    *hi = (int)((long)B * (c + 1) / n);
}

/* Sample k's columns: kept for the backward pass, or in the chunk's slot. */
static float *cols_of(const conv_job *j, float *slot, int k)
{
    return j->keep ? j->keep + (size_t)k * j->K * j->P : slot;
}

static void forward_task(void *ctx, int c, int n)
{
    const conv_job *j = ctx;
    const conv_shape *s = j->s;
    int lo, hi, K = (int)j->K, P = (int)j->P;
    chunk_range(j->B, c, n, &lo, &hi);
    float *slot = j->scratch + (size_t)c * j->slot;
    for (int k = lo; k < hi; k++) {
        float *col = cols_of(j, slot, k), *y = j->Y + (size_t)k * j->out;
        im2col(j->X + (size_t)k * j->in, s, col, j->P);
        /* y = W·col + b·1ᵀ: the bias enters as the C operand (beta = 1) */
        for (int o = 0; o < s->O; o++)
            for (int p = 0; p < P; p++)
                y[(size_t)o * P + p] = j->b[o];
        gemm(1, 0, 0, s->O, P, K, 1.0f, j->W, K, col, P, 1.0f, y, P);
        if (j->act >= 0) /* the activation after the layer, while y is in this core's cache */
            act_forward(y, y, j->out, (bp_act)j->act);
    }
}

void conv_forward(int threads, float *Y, const float *X, const float *W, const float *b, int B,
                  const conv_shape *s, float *keep, float *scratch, int act)
{
    conv_job j = {.Y = Y, .X = X, .W = W, .b = b, .keep = keep, .scratch = scratch, .s = s,
                  .slot = conv_slot_floats(s), .B = B, .act = act};
    j.P = (size_t)s->OH * s->OW, j.K = (size_t)s->C * s->kh * s->kw;
    j.in = (size_t)s->C * s->H * s->W, j.out = (size_t)s->O * j.P;
    pool_run(threads, conv_chunks(B), forward_task, &j);
}

/* Chunk c's dW and db: chunk 0 writes the layer's own, the others their slot's. */
static float *part_dw(const conv_job *j, int c)
{
    return c == 0 ? j->dW : j->scratch + (size_t)c * j->slot + j->K * j->P;
}
static float *part_db(const conv_job *j, int c)
{
    return c == 0 ? j->db : part_dw(j, c) + (size_t)j->s->O * j->K;
}

/* Σ r[0..n) in 16 interleaved partial sums, added in a fixed tree: independent adds that
 * vectorise (one running sum would wait on each add's latency), the same order every time. */
static float row_sum(const float *r, int n)
{
    float lane[16] = {0};
    int p = 0;
    for (; p + 16 <= n; p += 16)
        for (int l = 0; l < 16; l++)
            lane[l] += r[p + l];
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++)
            lane[l] += lane[l + w];
    float acc = lane[0];
    for (; p < n; p++)
        acc += r[p];
    return acc;
}

static void backward_task(void *ctx, int c, int n)
{
    const conv_job *j = ctx;
    const conv_shape *s = j->s;
    int lo, hi, K = (int)j->K, P = (int)j->P, O = s->O;
    chunk_range(j->B, c, n, &lo, &hi);
    float *slot = j->scratch + (size_t)c * j->slot, *dw = part_dw(j, c), *db = part_db(j, c);
    for (int k = lo; k < hi; k++) {
        const float *dy = j->dY + (size_t)k * j->out;
        if (j->g) { /* dy = g ⊙ act'(a) in place: the activation's backward, fused */
            float *g = j->g + (size_t)k * j->out;
            act_backward(g, g, j->A + (size_t)k * j->out, j->out, (bp_act)j->act);
        }
        float *col = cols_of(j, slot, k);
        if (!j->keep)
            im2col(j->X + (size_t)k * j->in, s, col, j->P);
        /* dw (+)= dy·colᵀ: the chunk's first sample overwrites */
        gemm(1, 0, 1, O, K, P, 1.0f, dy, P, col, P, k == lo ? 0.0f : 1.0f, dw, K);
        for (int o = 0; o < O; o++) {
            float acc = row_sum(dy + (size_t)o * P, P);
            db[o] = k == lo ? acc : db[o] + acc;
        }
        if (!j->dX)
            continue;
        /* dcol = Wᵀ·dy into the slot (the columns were used), then back to the pixels */
        float *dx = j->dX + (size_t)k * j->in;
        gemm(1, 1, 0, K, P, O, 1.0f, j->W, K, dy, P, 0.0f, slot, P);
        memset(dx, 0, j->in * sizeof *dx);
        col2im(slot, s, dx, j->P);
    }
}

/* The partial sums of chunks 1..n−1 added into chunk 0's (the layer's dW, db), in chunk order,
 * for this task's share of the elements. */
typedef struct {
    const conv_job *j;
    int parts;
} sum_job;

static void sum_task(void *ctx, int t, int n)
{
    const sum_job *q = ctx;
    const conv_job *j = q->j;
    size_t len = (size_t)j->s->O * j->K + (size_t)j->s->O;
    size_t lo = len * (size_t)t / (size_t)n, hi = len * (size_t)(t + 1) / (size_t)n;
    size_t nw = (size_t)j->s->O * j->K;
    for (int c = 1; c < q->parts; c++) {
        const float *pw = part_dw(j, c), *pb = part_db(j, c);
        for (size_t i = lo; i < hi && i < nw; i++)
            j->dW[i] += pw[i];
        for (size_t i = lo > nw ? lo : nw; i < hi; i++)
            j->db[i - nw] += pb[i - nw];
    }
}

void conv_backward(int threads, float *dX, float *dW, float *db, float *dY, const float *X,
                   const float *W, int B, const conv_shape *s, float *keep, float *scratch,
                   const float *A, int act)
{
    conv_job j = {.dX = dX, .dW = dW, .db = db, .dY = dY, .X = X, .W = W, .keep = keep,
                  .scratch = scratch, .s = s, .slot = conv_slot_floats(s), .B = B, .act = act};
    if (act >= 0)
        j.g = dY, j.A = A;
    j.P = (size_t)s->OH * s->OW, j.K = (size_t)s->C * s->kh * s->kw;
    j.in = (size_t)s->C * s->H * s->W, j.out = (size_t)s->O * j.P;
    int n = conv_chunks(B);
    pool_run(threads, n, backward_task, &j);
    if (n > 1) {
        sum_job q = {&j, n};
        /* a few µs of adds per 64 Ki elements: one share per thread beyond that */
        size_t len = (size_t)s->O * j.K + (size_t)s->O;
        int shares = (int)(len >> 16) + 1;
        pool_run(threads, shares < threads ? shares : threads, sum_task, &q);
    }
}
