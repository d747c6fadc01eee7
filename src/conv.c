/* conv2d over NCHW batches, as GEMMs through im2col (docs/derivation.md §10).
 * Per sample, with input x [C, H, W], weight W [O, C, kh, kw], bias b [O]:
 *   y[o, oy, ox] = b_o + Σ_{c,i,j} W[o, c, i, j] · x[c, oy·s + i − ph, ox·s + j − pw]
 * im2col lays the inputs each output pixel sees into a column: col[(c,i,j), (oy,ox)], so the
 * per-sample convolution is one matrix product, Y[O, P] = W[O, K]·col[K, P] + b·1ᵀ with
 * K = C·kh·kw and P = OH·OW. A chunk of n samples puts their columns side by side,
 * col[K, n·P], and takes one GEMM for all of them:
 *   forward:  T[O, n·P] = W·col + b·1ᵀ, then T's column blocks are the samples' y
 *   backward: dW = Σ_chunks dT·colᵀ,  db_o = Σ over dT's row o,  dcol = Wᵀ·dT,
 *             dx = col2im(dcol) (each column entry added back to the pixel it was read from)
 * The chunk bounds the scratch (CONV_CHUNK_FLOATS per buffer) whatever the batch. */
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
                    if (s->stride == 1) /* rows are short: a loop beats memcpy's call */
                        for (int ox = lo; ox < hi; ox++)
                            r[ox] = line[ox + off];
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
                    for (int ox = lo; ox < hi; ox++)
                        line[ox * s->stride + off] += r[ox];
                }
            }
}

int conv_chunk(const conv_shape *s, int max_batch)
{
    size_t P = (size_t)s->OH * s->OW, K = (size_t)s->C * s->kh * s->kw;
    size_t per = (K > (size_t)s->O ? K : (size_t)s->O) * P; /* the larger of col and tmp */
    size_t n = CONV_CHUNK_FLOATS / (per ? per : 1);
    if (n < 1)
        n = 1;
    return n < (size_t)max_batch ? (int)n : max_batch;
}

size_t conv_scratch_floats(const conv_shape *s, int max_batch)
{
    size_t P = (size_t)s->OH * s->OW, K = (size_t)s->C * s->kh * s->kw;
    size_t per = (K > (size_t)s->O ? K : (size_t)s->O) * P;
    return per * (size_t)conv_chunk(s, max_batch);
}

void conv_forward(int threads, float *Y, const float *X, const float *W, const float *b, int B,
                  const conv_shape *s, float *col, float *tmp, int chunk)
{
    size_t P = (size_t)s->OH * s->OW, in = (size_t)s->C * s->H * s->W, out = (size_t)s->O * P;
    int K = s->C * s->kh * s->kw;
    for (int s0 = 0; s0 < B; s0 += chunk) {
        int n = B - s0 < chunk ? B - s0 : chunk;
        size_t ld = (size_t)n * P;
        for (int k = 0; k < n; k++)
            im2col(X + (size_t)(s0 + k) * in, s, col + (size_t)k * P, ld);
        /* T = W·col + b·1ᵀ: the bias enters as the C operand (beta = 1) */
        for (int o = 0; o < s->O; o++)
            for (size_t p = 0; p < ld; p++)
                tmp[(size_t)o * ld + p] = b[o];
        gemm(threads, 0, 0, s->O, (int)ld, K, 1.0f, W, K, col, (int)ld, 1.0f, tmp, (int)ld);
        for (int k = 0; k < n; k++)
            for (int o = 0; o < s->O; o++)
                memcpy(Y + (size_t)(s0 + k) * out + (size_t)o * P,
                       tmp + (size_t)o * ld + (size_t)k * P, P * sizeof *Y);
    }
}

void conv_backward(int threads, float *dX, float *dW, float *db, const float *dY,
                   const float *X, const float *W, int B, const conv_shape *s, float *col,
                   float *tmp, int chunk, int have_col)
{
    size_t P = (size_t)s->OH * s->OW, in = (size_t)s->C * s->H * s->W, out = (size_t)s->O * P;
    int K = s->C * s->kh * s->kw;
    memset(db, 0, (size_t)s->O * sizeof *db);
    if (dX)
        memset(dX, 0, (size_t)B * in * sizeof *dX);
    for (int s0 = 0; s0 < B; s0 += chunk) {
        int n = B - s0 < chunk ? B - s0 : chunk;
        size_t ld = (size_t)n * P;
        /* dT[O, n·P]: the chunk's output gradients, samples side by side as in forward */
        for (int k = 0; k < n; k++)
            for (int o = 0; o < s->O; o++)
                memcpy(tmp + (size_t)o * ld + (size_t)k * P,
                       dY + (size_t)(s0 + k) * out + (size_t)o * P, P * sizeof *tmp);
        for (int o = 0; o < s->O; o++) {
            const float *r = tmp + (size_t)o * ld;
            float acc = 0.0f;
            for (size_t p = 0; p < ld; p++)
                acc += r[p];
            db[o] += acc;
        }
        /* the forward pass's columns are still there when one chunk held the whole batch */
        for (int k = 0; k < n && !(have_col && chunk >= B); k++)
            im2col(X + (size_t)(s0 + k) * in, s, col + (size_t)k * P, ld);
        /* dW (+)= dT·colᵀ: overwritten by the first chunk, accumulated by the others */
        gemm(threads, 0, 1, s->O, K, (int)ld, 1.0f, tmp, (int)ld, col, (int)ld,
             s0 == 0 ? 0.0f : 1.0f, dW, K);
        if (!dX)
            continue;
        /* dcol = Wᵀ·dT into col (its inputs are no longer needed), then back to the pixels */
        gemm(threads, 1, 0, K, (int)ld, s->O, 1.0f, W, K, tmp, (int)ld, 0.0f, col, (int)ld);
        for (int k = 0; k < n; k++)
            col2im(col + (size_t)k * P, s, dX + (size_t)(s0 + k) * in, ld);
    }
}
