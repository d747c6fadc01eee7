/* The layer list beyond the MLP: conv2d, max and average pooling, flatten, dropout.
 *   - gradients (every W, b and X entry) against double-precision central differences
 *     (bp_gradcheck) at several shapes: odd sizes, 'same' padding, stride 2, C_in > 1, with
 *     the blas path and the naive per-sample loops;
 *   - the im2col + GEMM path equals naive loops: conv_forward and conv_backward against the
 *     direct six-loop formulas written here, at batches of one and several chunks, bit for
 *     bit the same on one thread and two, columns kept or formed again; bp_grad blas against
 *     naive;
 *   - shape inference and its messages; bp_arch_parse's messages naming the token;
 *   - dropout: inverted (kept values scaled by 1/(1−p)), the rate drawn, deterministic for a
 *     seed and step, absent from bp_forward;
 *   - a CNN model file round trip (same list, parameters, predictions; the same bytes again). */
#include "check.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bp_layer L_conv(int c, int k, int stride, bp_padding pad)
{
    bp_layer l = {.kind = BP_LAYER_CONV2D, .units = c, .kh = k, .kw = k, .stride = stride,
                  .pad = pad};
    return l;
}
static bp_layer L_act(bp_act a) { return (bp_layer){.kind = BP_LAYER_ACT, .act = a}; }
static bp_layer L_fc(int n) { return (bp_layer){.kind = BP_LAYER_LINEAR, .units = n}; }
static bp_layer L_pool(bp_layer_kind k, int w) { return (bp_layer){.kind = k, .kh = w}; }
static bp_layer L_flat(void) { return (bp_layer){.kind = BP_LAYER_FLATTEN}; }
static bp_layer L_drop(float p) { return (bp_layer){.kind = BP_LAYER_DROPOUT, .p = p}; }

/* A model of the list with default initialisation and random biases; NULL on failure. */
static bp_model *make(int c, int h, int w, const bp_layer *list, int n, uint64_t seed)
{
    bp_model *m = NULL;
    bp_error err = {0};
    if (!CHECKF(bp_model_create_layers(&m, c, h, w, list, n, &err) == BP_OK, "%s", err.msg))
        return NULL;
    CHECK(bp_model_init(m, BP_INIT_AUTO, seed, &err) == BP_OK);
    bp_rng rng;
    bp_rng_seed(&rng, seed + 1);
    for (int l = 0; l < m->nlayers; l++) {
        float *end = l + 1 < m->nlayers ? m->W[l + 1] : m->params + m->nparams;
        for (float *b = m->b[l]; b < end; b++)
            *b = (float)(0.2 * bp_rng_normal(&rng));
    }
    return m;
}

static void batch(float *X, uint8_t *labels, int B, int I, uint64_t seed)
{
    bp_rng rng;
    bp_rng_seed(&rng, seed);
    for (size_t i = 0; i < (size_t)B * I; i++)
        X[i] = (float)bp_rng_uniform(&rng);
    for (int b = 0; b < B; b++)
        labels[b] = (uint8_t)bp_rng_below(&rng, BP_CLASSES);
}

/* Every entry of every tensor against central differences; relative error ≤ 1e-3 (float
 * gradients of a double loss at h = 1e-3: the observed errors are ~1e-5). */
static void gradcheck_case(const char *name, int c, int h, int w, const bp_layer *list, int n,
                           int B)
{
    bp_model *m = make(c, h, w, list, n, 7);
    if (!m)
        return;
    int I = m->sizes[0];
    float *X = malloc((size_t)B * I * sizeof *X);
    uint8_t labels[16];
    batch(X, labels, B, I, 11);
    bp_impl impls[2] = {BP_IMPL_BLAS, BP_IMPL_NAIVE};
    for (int k = 0; k < 2; k++) {
        bp_gradcheck_tensor res[2 * BP_MAX_LAYERS + 1];
        int nres = 0;
        bp_error err = {0};
        if (!CHECKF(bp_gradcheck(m, impls[k], X, labels, B, 1e-3, 0, 3, 1, res, &nres, &err) ==
                        BP_OK, "%s: %s", name, err.msg))
            continue;
        CHECK_INT_EQ(nres, 2 * m->nlayers + 1);
        for (int t = 0; t < nres; t++) {
            CHECKF(res[t].max_rel_err <= 1e-3 && res[t].checked > 0,
                   "%s %s %s: checked %zu, skipped %zu, max_rel_err %.3e", name,
                   bp_impl_name(impls[k]), res[t].name, res[t].checked, res[t].skipped,
                   res[t].max_rel_err);
        }
        printf("  %-34s %-5s %d tensors, ", name, bp_impl_name(impls[k]), nres);
        double worst = 0;
        for (int t = 0; t < nres; t++)
            worst = res[t].max_rel_err > worst ? res[t].max_rel_err : worst;
        printf("max_rel_err %.2e\n", worst);
    }
    free(X);
    bp_model_free(m);
}

static void test_gradients(void)
{
    /* odd input, valid padding, one channel in */
    bp_layer a[] = {L_conv(3, 3, 1, BP_PAD_VALID), L_act(BP_ACT_TANH), L_flat(), L_fc(10)};
    gradcheck_case("conv3x3 valid 7x7", 1, 7, 7, a, 4, 3);
    /* 'same' padding, C_in > 1 (the input has 2 channels), even-sized input */
    bp_layer b[] = {L_conv(4, 5, 1, BP_PAD_SAME), L_act(BP_ACT_SIGMOID), L_flat(), L_fc(10)};
    gradcheck_case("conv5x5 same C_in=2 6x8", 2, 6, 8, b, 4, 2);
    /* two convs, C_in > 1 inside, stride 2, a non-square kernel, average pooling */
    bp_layer c[] = {L_conv(3, 3, 1, BP_PAD_SAME), L_act(BP_ACT_TANH),
                    (bp_layer){.kind = BP_LAYER_CONV2D, .units = 2, .kh = 3, .kw = 2,
                               .stride = 2},
                    L_pool(BP_LAYER_AVGPOOL, 2), L_flat(), L_fc(10)};
    gradcheck_case("conv, conv 3x2 s2, avgpool 9x9", 1, 9, 9, c, 6, 3);
    /* max pooling on an odd size (the ragged edge is dropped), ReLU, dropout, fc after */
    bp_layer d[] = {L_conv(4, 3, 1, BP_PAD_VALID), L_act(BP_ACT_RELU),
                    L_pool(BP_LAYER_MAXPOOL, 2), L_drop(0.4f), L_flat(), L_fc(12),
                    L_act(BP_ACT_RELU), L_drop(0.3f), L_fc(10)};
    gradcheck_case("conv relu maxpool dropout fc 11x11", 1, 11, 11, d, 9, 4);
    /* dropout and an activation first (no parameters before them), tanh after pooling */
    bp_layer e[] = {L_drop(0.25f), L_conv(2, 2, 1, BP_PAD_VALID), L_pool(BP_LAYER_MAXPOOL, 3),
                    L_act(BP_ACT_TANH), L_flat(), L_fc(10)};
    gradcheck_case("dropout first, conv2x2, maxpool3", 1, 8, 7, e, 6, 3);
}

/* The direct definition: y[o,p,q] = b_o + Σ W[o,c,i,j]·x[c, p·s+i−ph, q·s+j−pw]. */
static void direct_conv(const conv_shape *s, const float *W, const float *b, const float *x,
                        float *y)
{
    for (int o = 0; o < s->O; o++)
        for (int p = 0; p < s->OH; p++)
            for (int q = 0; q < s->OW; q++) {
                double v = b[o];
                for (int c = 0; c < s->C; c++)
                    for (int i = 0; i < s->kh; i++)
                        for (int j = 0; j < s->kw; j++) {
                            int r = p * s->stride + i - s->ph, t = q * s->stride + j - s->pw;
                            if (r >= 0 && r < s->H && t >= 0 && t < s->W)
                                v += (double)W[((o * s->C + c) * s->kh + i) * s->kw + j] *
                                     x[(c * s->H + r) * s->W + t];
                        }
                y[(o * s->OH + p) * s->OW + q] = (float)v;
            }
}

/* Its adjoint for one sample: dW += dy ⊗ x, db += Σ dy, dx = Σ W·dy, all in double. */
static void direct_conv_back(const conv_shape *s, const float *W, const float *x,
                             const float *dy, double *dW, double *db, double *dx)
{
    for (int o = 0; o < s->O; o++)
        for (int p = 0; p < s->OH; p++)
            for (int q = 0; q < s->OW; q++) {
                double g = dy[(o * s->OH + p) * s->OW + q];
                db[o] += g;
                for (int c = 0; c < s->C; c++)
                    for (int i = 0; i < s->kh; i++)
                        for (int j = 0; j < s->kw; j++) {
                            int r = p * s->stride + i - s->ph, t = q * s->stride + j - s->pw;
                            if (r < 0 || r >= s->H || t < 0 || t >= s->W)
                                continue;
                            size_t wi = (size_t)((o * s->C + c) * s->kh + i) * s->kw + j;
                            size_t xi = (size_t)(c * s->H + r) * s->W + t;
                            dW[wi] += g * x[xi];
                            dx[xi] += g * W[wi];
                        }
            }
}

static double rel_err(const float *got, const double *ref, size_t n)
{
    double big = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        big = fmax(big, fabs(ref[i]));
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(got[i] - ref[i]) / fmax(1.0, big));
    return worst;
}

/* conv_forward and conv_backward against the direct formulas, at batches of one, of one chunk
 * and of several chunks (their partial dW and db summed); and the same bits with one and two
 * threads, with the columns kept from forward and formed again. */
static void test_im2col_gemm(void)
{
    /* shapes: C, H, W, O, kh, kw, stride, same */
    int cases[][8] = {{1, 28, 28, 8, 3, 3, 1, 0}, {3, 9, 7, 5, 5, 5, 1, 1}, {2, 10, 11, 4, 3, 3, 2, 0},
                      {4, 6, 6, 3, 1, 1, 1, 0},   {2, 8, 5, 6, 3, 2, 2, 0}, {1, 5, 5, 2, 5, 5, 1, 1}};
    const int batches[] = {1, 3, 9, 37};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (size_t bi = 0; bi < sizeof batches / sizeof *batches; bi++) {
            int *c = cases[k], B = batches[bi];
            bp_layer ly = L_conv(c[3], c[4], c[6], c[7] ? BP_PAD_SAME : BP_PAD_VALID);
            ly.kw = c[5];
            bp_error err = {0};
            if (!CHECKF(layers_infer(&ly, 1, c[0], c[1], c[2], &err) == BP_OK, "%s", err.msg))
                continue;
            conv_shape s;
            conv_shape_of(&s, &ly);
            size_t in = (size_t)s.C * s.H * s.W, out = (size_t)s.O * s.OH * s.OW;
            size_t nw = (size_t)s.O * s.C * s.kh * s.kw;
            size_t keepn = (size_t)B * s.C * s.kh * s.kw * s.OH * s.OW;
            size_t sc = (size_t)conv_chunks(B) * conv_slot_floats(&s);
            float *X = malloc(B * in * sizeof *X), *W = malloc(nw * sizeof *W);
            float *b = malloc((size_t)s.O * sizeof *b), *Y = malloc(B * out * sizeof *Y);
            float *R = malloc(B * out * sizeof *R), *Y1 = malloc(B * out * sizeof *Y1);
            float *dY = malloc(B * out * sizeof *dY), *keep = malloc(keepn * sizeof *keep);
            float *scr = malloc(sc * sizeof *scr);
            float *g1 = malloc((nw + s.O + B * in) * sizeof *g1);
            float *g2 = malloc((nw + s.O + B * in) * sizeof *g2);
            double *gr = calloc(nw + s.O + B * in, sizeof *gr);
            if (!CHECK(X && W && b && Y && R && Y1 && dY && keep && scr && g1 && g2 && gr))
                goto next;
            bp_rng rng;
            bp_rng_seed(&rng, 100 + k);
            for (size_t i = 0; i < B * in; i++)
                X[i] = (float)bp_rng_uniform(&rng);
            for (size_t i = 0; i < nw; i++)
                W[i] = (float)bp_rng_normal(&rng);
            for (int o = 0; o < s.O; o++)
                b[o] = (float)bp_rng_normal(&rng);
            for (size_t i = 0; i < B * out; i++)
                dY[i] = (float)bp_rng_normal(&rng);
            for (int i = 0; i < B; i++) {
                direct_conv(&s, W, b, X + i * in, R + i * out);
                direct_conv_back(&s, W, X + i * in, dY + i * out, gr, gr + nw,
                                 gr + nw + s.O + i * in);
            }
            conv_forward(1, Y, X, W, b, B, &s, NULL, scr, CONV_NO_ACT);
            conv_forward(2, Y1, X, W, b, B, &s, keep, scr, CONV_NO_ACT);
            /* float GEMM against a double sum of at most C·kh·kw = 75 terms of size ~1: 1e-4 */
            double worst = 0;
            for (size_t i = 0; i < B * out; i++)
                worst = fmax(worst, fabs(Y[i] - R[i]) / fmax(1.0, fabs(R[i])));
            CHECKF(worst <= 1e-4, "case %zu B %d: im2col+GEMM vs direct %.3e", k, B, worst);
            CHECKF(memcmp(Y, Y1, B * out * sizeof *Y) == 0,
                   "case %zu B %d: forward differs between 1 thread and 2 (columns kept)", k, B);
            /* backward: columns formed again on one thread, kept on two */
            conv_backward(1, g1 + nw + s.O, g1, g1 + nw, dY, X, W, B, &s, NULL, scr, NULL, CONV_NO_ACT);
            conv_backward(2, g2 + nw + s.O, g2, g2 + nw, dY, X, W, B, &s, keep, scr, NULL, CONV_NO_ACT);
            double ew = rel_err(g1, gr, nw), eb = rel_err(g1 + nw, gr + nw, s.O);
            double ex = rel_err(g1 + nw + s.O, gr + nw + s.O, B * in);
            CHECKF(ew <= 1e-4 && eb <= 1e-4 && ex <= 1e-4,
                   "case %zu B %d: backward vs direct: dW %.3e db %.3e dX %.3e", k, B, ew, eb, ex);
            CHECKF(memcmp(g1, g2, (nw + s.O + B * in) * sizeof *g1) == 0,
                   "case %zu B %d: backward differs between 1 thread and 2 (columns kept)", k, B);
            if (bi + 1 == sizeof batches / sizeof *batches)
                printf("  conv %dx%dx%d -> %dx%dx%d k%dx%d s%d %s: max err y %.2e dW %.2e "
                       "db %.2e dX %.2e\n", s.C, s.H, s.W, s.O, s.OH, s.OW, s.kh, s.kw,
                       s.stride, c[7] ? "same" : "valid", worst, ew, eb, ex);
        next:
            free(X), free(W), free(b), free(Y), free(R), free(Y1), free(dY), free(keep);
            free(scr), free(g1), free(g2), free(gr);
        }
}

/* bp_grad blas (im2col + GEMM) against naive (per-sample loops): every gradient, dX too,
 * within 1e-4 of the largest entry of its tensor, and the same loss. */
static void test_blas_vs_naive(void)
{
    bp_layer list[] = {L_conv(6, 3, 1, BP_PAD_SAME), L_act(BP_ACT_RELU), L_conv(5, 3, 2, 0),
                       L_act(BP_ACT_RELU), L_pool(BP_LAYER_MAXPOOL, 2), L_drop(0.3f), L_flat(),
                       L_fc(20), L_act(BP_ACT_TANH), L_fc(10)};
    bp_model *m = make(1, 13, 13, list, 10, 5);
    if (!m)
        return;
    int B = 7, I = m->sizes[0];
    float *X = malloc((size_t)B * I * sizeof *X), *dXa = malloc((size_t)B * I * sizeof *dXa);
    float *dXb = malloc((size_t)B * I * sizeof *dXb), *ga = malloc(m->nparams * sizeof *ga);
    uint8_t labels[7];
    batch(X, labels, B, I, 9);
    bp_work *w = NULL;
    bp_error err = {0};
    double la = 0, lb = 0;
    CHECK(bp_work_create(&w, m, B, 1, &err) == BP_OK);
    bp_work_set_seed(w, 42, 3);
    CHECK(bp_grad(m, w, BP_IMPL_BLAS, X, labels, B, &la, NULL, dXa, &err) == BP_OK);
    memcpy(ga, m->grads, m->nparams * sizeof *ga);
    bp_work_set_seed(w, 42, 3); /* the same masks */
    CHECK(bp_grad(m, w, BP_IMPL_NAIVE, X, labels, B, &lb, NULL, dXb, &err) == BP_OK);
    CHECK_NEAR(la, lb, 1e-4 * fabs(la));
    for (int l = 0; l < m->nlayers; l++) {
        size_t n0 = (size_t)(m->W[l] - m->params);
        size_t n1 = l + 1 < m->nlayers ? (size_t)(m->W[l + 1] - m->params) : m->nparams;
        double big = 0, diff = 0;
        for (size_t i = n0; i < n1; i++) {
            big = fmax(big, fabs(ga[i]));
            diff = fmax(diff, fabs(ga[i] - m->grads[i]));
        }
        CHECKF(big > 0 && diff <= 1e-4 * big, "layer %d: blas vs naive %.3e of %.3e", l, diff,
               big);
    }
    double big = 0, diff = 0;
    for (size_t i = 0; i < (size_t)B * I; i++) {
        big = fmax(big, fabs(dXa[i]));
        diff = fmax(diff, fabs(dXa[i] - dXb[i]));
    }
    CHECKF(big > 0 && diff <= 1e-4 * big, "dX: blas vs naive %.3e of %.3e", diff, big);
    bp_work_free(w);
    free(X), free(dXa), free(dXb), free(ga);
    bp_model_free(m);
}

static void test_dropout(void)
{
    size_t n = 200000;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    bp_rng r;
    dropout_stream(&r, 1, 0);
    dropout_mask(a, n, 0.25f, &r);
    dropout_stream(&r, 1, 0);
    dropout_mask(b, n, 0.25f, &r);
    CHECK(memcmp(a, b, n * sizeof *a) == 0); /* deterministic for seed and step */
    size_t zeros = 0, kept = 0;
    for (size_t i = 0; i < n; i++) {
        zeros += a[i] == 0.0f;
        kept += a[i] == 1.0f / 0.75f;
    }
    CHECK_INT_EQ(zeros + kept, n);                      /* 0 or 1/(1 − p), nothing else */
    CHECK_NEAR((double)zeros / n, 0.25, 0.005);         /* 0.25 ± 5σ (σ ≈ 0.001) */
    dropout_stream(&r, 1, 1);
    dropout_mask(b, n, 0.25f, &r);
    CHECK(memcmp(a, b, n * sizeof *a) != 0); /* another step, other masks */
    dropout_stream(&r, 2, 0);
    dropout_mask(b, n, 0.25f, &r);
    CHECK(memcmp(a, b, n * sizeof *a) != 0); /* another seed, other masks */
    dropout_stream(&r, 1, 0);
    dropout_mask(b, n, 0.0f, &r);
    size_t ones = 0;
    for (size_t i = 0; i < n; i++)
        ones += b[i] == 1.0f;
    CHECK_INT_EQ(ones, n); /* p = 0 keeps everything */
    free(a), free(b);

    /* bp_forward is the identity through dropout: a model with and without it agree */
    bp_layer with[] = {L_fc(16), L_act(BP_ACT_RELU), L_drop(0.5f), L_fc(10)};
    bp_layer without[] = {L_fc(16), L_act(BP_ACT_RELU), L_fc(10)};
    bp_model *m1 = make(30, 1, 1, with, 4, 3), *m2 = make(30, 1, 1, without, 3, 3);
    if (!m1 || !m2)
        return;
    CHECK_INT_EQ(m1->nparams, m2->nparams);
    memcpy(m2->params, m1->params, m1->nparams * sizeof(float));
    float X[4 * 30], p1[40], p2[40];
    uint8_t labels[4];
    batch(X, labels, 4, 30, 1);
    bp_work *w1 = NULL, *w2 = NULL;
    bp_error err;
    CHECK(bp_work_create(&w1, m1, 4, 1, &err) == BP_OK && bp_work_create(&w2, m2, 4, 1, &err) == BP_OK);
    CHECK(bp_forward(m1, w1, X, labels, 4, p1, NULL, NULL, &err) == BP_OK);
    CHECK(bp_forward(m2, w2, X, labels, 4, p2, NULL, NULL, &err) == BP_OK);
    CHECK(memcmp(p1, p2, sizeof p1) == 0);
    /* and bp_grad is not: two steps of a run draw different masks, a re-seeded work the same */
    double l1, l2, l3;
    bp_work_set_seed(w1, 9, 0);
    CHECK(bp_grad(m1, w1, BP_IMPL_BLAS, X, labels, 4, &l1, NULL, NULL, &err) == BP_OK);
    CHECK(bp_grad(m1, w1, BP_IMPL_BLAS, X, labels, 4, &l2, NULL, NULL, &err) == BP_OK);
    bp_work_set_seed(w1, 9, 0);
    CHECK(bp_grad(m1, w1, BP_IMPL_BLAS, X, labels, 4, &l3, NULL, NULL, &err) == BP_OK);
    CHECK(l1 != l2 && l1 == l3);
    bp_work_free(w1), bp_work_free(w2);
    bp_model_free(m1), bp_model_free(m2);
}

static void refused_list(const char *what, int c, int h, int w, const bp_layer *list, int n,
                         const char *phrase)
{
    bp_model *m = NULL;
    bp_error err = {0};
    int st = bp_model_create_layers(&m, c, h, w, list, n, &err);
    CHECKF(st == BP_ERR_ARG && !m && strstr(err.msg, phrase), "%s: status %d, message '%s', "
           "wanted '%s'", what, st, err.msg, phrase);
    printf("  %-32s %s\n", what, err.msg);
    bp_model_free(m);
}

static void test_shapes(void)
{
    bp_layer pt[] = {L_conv(32, 3, 1, 0), L_act(BP_ACT_RELU), L_conv(64, 3, 1, 0),
                     L_act(BP_ACT_RELU), L_pool(BP_LAYER_MAXPOOL, 2), L_drop(0.25f), L_flat(),
                     L_fc(128), L_act(BP_ACT_RELU), L_drop(0.5f), L_fc(10)};
    bp_model *m = make(1, 28, 28, pt, 11, 1);
    if (m) {
        /* PyTorch's MNIST example: 26x26x32, 24x24x64, 12x12x64, 9216 → 128 → 10 */
        CHECK(m->list[0].out_h == 26 && m->list[2].out_c == 64 && m->list[2].out_h == 24);
        CHECK(m->list[4].out_h == 12 && m->list[6].out_c == 9216);
        CHECK_INT_EQ(m->nparams, 320 + 18496 + 1179776 + 1290);
        CHECK_INT_EQ(m->nlayers, 4);
        CHECK(!m->mlp && m->sizes[0] == 784 && m->sizes[4] == 10 && m->sizes[2] == 9216);
        char buf[256];
        CHECK(strcmp(bp_arch_format(m, buf, sizeof buf),
                     "conv3x3:32,relu,conv3x3:64,relu,maxpool2,dropout:0.25,flatten,fc:128,relu,"
                     "dropout:0.5,fc:10") == 0);
        bp_model_free(m);
    }
    bp_layer big[] = {L_conv(2, 7, 1, 0), L_flat(), L_fc(10)};
    refused_list("kernel larger than the input", 1, 5, 5, big, 3, "a 7x7 kernel does not fit a 5x5");
    bp_layer noflat[] = {L_conv(2, 3, 1, 0), L_fc(10)};
    refused_list("fc straight after conv", 1, 5, 5, noflat, 2, "a flatten must come before it");
    bp_layer even[] = {L_conv(2, 4, 1, BP_PAD_SAME), L_flat(), L_fc(10)};
    refused_list("same with an even kernel", 1, 5, 5, even, 3, "'same' padding needs an odd");
    bp_layer pool[] = {L_pool(BP_LAYER_MAXPOOL, 4), L_flat(), L_fc(10)};
    refused_list("pool window too large", 1, 3, 3, pool, 3, "a 4x4 window does not fit a 3x3");
    bp_layer last[] = {L_fc(10), L_act(BP_ACT_RELU)};
    refused_list("ends with an activation", 9, 1, 1, last, 2, "the last layer must be linear");
    bp_layer drop[] = {L_drop(1.0f), L_fc(10)};
    refused_list("dropout rate 1", 9, 1, 1, drop, 2, "rate 1 must be at least 0 and below 1");
    bp_layer chans[] = {L_conv(0, 3, 1, 0), L_flat(), L_fc(10)};
    refused_list("no output channels", 1, 5, 5, chans, 3, "0 output channels");

    /* the MLP is the list linear, act, linear: the same model bp_model_create makes */
    int sizes[] = {20, 8, 10};
    bp_model *a = NULL;
    bp_error err;
    CHECK(bp_model_create(&a, sizes, 2, BP_ACT_TANH, &err) == BP_OK);
    if (a) {
        CHECK(a->mlp && a->nlist == 3 && a->list[1].kind == BP_LAYER_ACT &&
              a->list[1].act == BP_ACT_TANH && a->nparams == 20 * 8 + 8 + 8 * 10 + 10);
        CHECK(a->W[1] == a->params + 168 && a->b[1] == a->params + 248);
        bp_model_free(a);
    }
}

static void refused_arch(const char *s, const char *phrase)
{
    bp_layer list[BP_MAX_LIST];
    int n = -1;
    bp_error err = {0};
    int st = bp_arch_parse(s, list, BP_MAX_LIST, &n, &err);
    CHECKF(st == BP_ERR_ARG && strstr(err.msg, phrase), "'%s': status %d, message '%s', wanted "
           "'%s'", s, st, err.msg, phrase);
}

static void test_arch_parse(void)
{
    bp_layer list[BP_MAX_LIST];
    int n = 0;
    bp_error err = {0};
    CHECK(bp_arch_parse("conv3x3:32,relu,conv5x5:8:same,maxpool2,dropout:0.25,fc:128,tanh,"
                        "avgpool3", list, BP_MAX_LIST, &n, &err) == BP_ERR_ARG);
    CHECK(strstr(err.msg, "token 8 'avgpool3': a spatial layer after fc") != NULL);
    CHECKF(bp_arch_parse("conv3x3:32,relu,conv5x5:8:same:s1,maxpool2,dropout:0.25,fc:128,tanh",
                         list, BP_MAX_LIST, &n, &err) == BP_OK, "%s", err.msg);
    CHECK_INT_EQ(n, 8); /* a flatten before fc:128 */
    CHECK(list[0].kind == BP_LAYER_CONV2D && list[0].units == 32 && list[0].kh == 3 &&
          list[0].pad == BP_PAD_VALID);
    CHECK(list[2].pad == BP_PAD_SAME && list[2].kh == 5 && list[2].units == 8);
    CHECK(list[3].kind == BP_LAYER_MAXPOOL && list[3].kh == 2);
    CHECK(list[4].kind == BP_LAYER_DROPOUT && list[4].p == 0.25f);
    CHECK(list[5].kind == BP_LAYER_FLATTEN && list[6].kind == BP_LAYER_LINEAR &&
          list[6].units == 128 && list[7].act == BP_ACT_TANH);
    refused_arch("relu,relu,conv3x3:0", "token 3 'conv3x3:0': channels must be from 1 to 4096");
    refused_arch("conv3x3:99999", "token 1 'conv3x3:99999': channels must be from 1");
    refused_arch("conv3x:8", "token 1 'conv3x:8': convKxK: each kernel side");
    refused_arch("conv3x3", "convKxK:C needs its output channels");
    refused_arch("conv4x4:8:same", "'same' padding needs an odd kernel");
    refused_arch("conv3x3:8:full", "unknown conv option 'full'");
    refused_arch("fc:0", "token 1 'fc:0': fc:N needs a width");
    refused_arch("fc:12x", "fc:N needs a width");
    refused_arch("dropout:1", "token 1 'dropout:1': dropout:P needs a rate");
    refused_arch("dropout:-0.1", "dropout:P needs a rate");
    refused_arch("maxpool0", "the window must be from 1 to 15");
    refused_arch("maxpool2:3", "a pool takes no ':' value");
    refused_arch("relu,,fc:3", "token 2 '': empty");
    refused_arch("fc:3,", "token 2 '': empty");
    refused_arch("gelu", "token 1 'gelu': unknown layer");
    refused_arch("", "an empty architecture");
}

static void test_roundtrip(void)
{
    bp_layer list[] = {L_conv(4, 3, 1, BP_PAD_SAME), L_act(BP_ACT_RELU), L_pool(BP_LAYER_MAXPOOL, 2),
                       L_conv(6, 3, 2, 0), L_act(BP_ACT_TANH), L_pool(BP_LAYER_AVGPOOL, 2),
                       L_drop(0.5f), L_flat(), L_fc(16), L_act(BP_ACT_RELU), L_fc(10)};
    bp_model *m = make(1, 14, 14, list, 11, 2), *r = NULL;
    if (!m)
        return;
    char dir[] = "/tmp/bp-test-layers.XXXXXX", p1[64], p2[64];
    if (!CHECK(mkdtemp(dir) != NULL))
        return;
    snprintf(p1, sizeof p1, "%s/a.st", dir);
    snprintf(p2, sizeof p2, "%s/b.st", dir);
    bp_error err = {0};
    CHECKF(bp_model_save(p1, m, NULL, &err) == BP_OK, "%s", err.msg);
    CHECKF(bp_model_load(p1, &r, NULL, NULL, &err) == BP_OK, "%s", err.msg);
    if (r) {
        CHECK(r->nlist == m->nlist && r->nparams == m->nparams && !r->mlp);
        CHECK(memcmp(r->params, m->params, m->nparams * sizeof(float)) == 0);
        char a[256], b[256];
        CHECK(strcmp(bp_arch_format(m, a, sizeof a), bp_arch_format(r, b, sizeof b)) == 0);
        CHECK(r->input_rows == 14 && r->input_cols == 14 && r->input_channels == 1);
        for (int i = 0; i < m->nlist; i++)
            CHECK(r->list[i].out_c == m->list[i].out_c && r->list[i].out_h == m->list[i].out_h &&
                  r->list[i].param == m->list[i].param);
        /* the same predictions */
        float X[3 * 196], pa[30], pb[30];
        uint8_t labels[3];
        batch(X, labels, 3, 196, 4);
        bp_work *wa = NULL, *wb = NULL;
        CHECK(bp_work_create(&wa, m, 3, 1, &err) == BP_OK && bp_work_create(&wb, r, 3, 1, &err) == BP_OK);
        CHECK(bp_forward(m, wa, X, NULL, 3, pa, NULL, NULL, &err) == BP_OK);
        CHECK(bp_forward(r, wb, X, NULL, 3, pb, NULL, NULL, &err) == BP_OK);
        CHECK(memcmp(pa, pb, sizeof pa) == 0);
        bp_work_free(wa), bp_work_free(wb);
        /* saved again: the same bytes */
        CHECK(bp_model_save(p2, r, NULL, &err) == BP_OK);
        FILE *fa = fopen(p1, "rb"), *fb = fopen(p2, "rb");
        int same = fa && fb;
        for (int ca = 0, cb = 0; same && ca != EOF;) {
            ca = fgetc(fa), cb = fgetc(fb);
            same = ca == cb;
        }
        CHECK(same);
        if (fa)
            fclose(fa);
        if (fb)
            fclose(fb);
        /* the names and shapes PyTorch's state_dict has for this nn.Sequential */
        fa = fopen(p1, "rb");
        char head[4096] = {0};
        if (CHECK(fa != NULL)) {
            CHECK(fread(head, 1, sizeof head - 1, fa) > 8);
            fclose(fa);
        }
        const char *want[] = {"\"0.weight\":{\"dtype\":\"F32\",\"shape\":[4,1,3,3]",
                              "\"0.bias\":{\"dtype\":\"F32\",\"shape\":[4]",
                              "\"3.weight\":{\"dtype\":\"F32\",\"shape\":[6,4,3,3]",
                              "\"8.weight\":{\"dtype\":\"F32\",\"shape\":[16,6]",
                              "\"10.weight\":{\"dtype\":\"F32\",\"shape\":[10,16]"};
        for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
            CHECKF(strstr(head + 8, want[k]) != NULL,
                   "header lacks %s", want[k]);
    }
    unlink(p1), unlink(p2), rmdir(dir);
    bp_model_free(r);
    bp_model_free(m);
}

int main(void)
{
    printf("gradients against central differences:\n");
    test_gradients();
    printf("im2col + GEMM against the direct convolution:\n");
    test_im2col_gemm();
    test_blas_vs_naive();
    test_dropout();
    printf("shape inference:\n");
    test_shapes();
    test_arch_parse();
    test_roundtrip();
    return check_exit("test_layers");
}
