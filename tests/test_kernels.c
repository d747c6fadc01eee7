/* The speed paths against plain references:
 *   - every kernel set this CPU can run (generic always; avx2, avx512 where present) against
 *     double-precision loops, for every output width 1..16 and input widths that leave vector
 *     tails (1, 7, 33, 100, 784), in row and column ranges as the pool splits them;
 *   - the uint8 → float gather, shuffled and in order;
 *   - the pool: every chunk run exactly once, with one, two and many threads, nested and from
 *     two calling threads at once;
 *   - whole training runs: the same parameters, bit for bit, with 1 and 2 threads for an MLP
 *     (split GEMMs), for 784→10 (which the trainer keeps on one thread) and for a small CNN
 *     (conv layers split by samples, partial dW summed in a fixed order), and with each
 *     kernel set within float rounding of the others;
 *   - the trainer's fused optimizer step against bp_grad then bp_opt_step, for every optimizer
 *     and each way a step is split (small kernels, by hidden units, by rows, a CNN).
 * Tolerance for the kernels: |got − ref| ≤ 1e-5 · (1 + Σ|terms|), float32 summation in a
 * different order than the double reference. */
#include "check.h"
#include "fixtures.h"
#include "internal.h"
#include "kernels.h"

#include <pthread.h>
#include <stdatomic.h>

static const char *const SETS[] = {"generic", "avx2", "avx512"};

static float *randv(size_t n, uint64_t seed, double lo, double hi)
{
    float *v = malloc(n * sizeof *v);
    bp_rng r;
    bp_rng_seed(&r, seed);
    for (size_t i = 0; v && i < n; i++)
        v[i] = (float)(lo + (hi - lo) * bp_rng_uniform(&r));
    return v;
}

static double worst; /* the largest error relative to its bound, per set */

static void near(double got, double ref, double mag, const char *what, int O, int I)
{
    double bound = 1e-5 * (1.0 + mag);
    double e = fabs(got - ref) / bound;
    if (e > worst)
        worst = e;
    if (!(fabs(got - ref) <= bound)) { /* NaN fails */
        CHECKF(0, "%s O=%d I=%d: %.9g vs %.9g", what, O, I, got, ref);
    }
}

static void kernels_agree(const kernel_set *k)
{
    static const int Is[] = {1, 7, 33, 100, 784};
    const int B = 13; /* odd: fwd's pairs of rows and its single last row */
    for (int O = 1; O <= KERNEL_MAX_O; O++)
        for (size_t ii = 0; ii < sizeof Is / sizeof *Is; ii++) {
            int I = Is[ii];
            float *X = randv((size_t)B * I, 1, 0, 1), *W = randv((size_t)O * I, 2, -1, 1);
            float *b = randv((size_t)O, 3, -1, 1), *dV = randv((size_t)B * O, 4, -1, 1);
            float *V = malloc((size_t)B * O * sizeof *V), *dW = malloc((size_t)O * I * 4);
            float *dX = malloc((size_t)B * I * sizeof *dX);
            if (!CHECK(X && W && b && dV && V && dW && dX))
                return;
            /* fwd on rows [0, 5) and [5, B), as two chunks would */
            k->fwd[O](V, X, W, b, 5, I);
            k->fwd[O](V + 5 * O, X + (size_t)5 * I, W, b, B - 5, I);
            for (int r = 0; r < B; r++)
                for (int o = 0; o < O; o++) {
                    double s = b[o], mag = fabs(b[o]);
                    for (int i = 0; i < I; i++) {
                        s += (double)X[(size_t)r * I + i] * W[(size_t)o * I + i];
                        mag += fabs((double)X[(size_t)r * I + i] * W[(size_t)o * I + i]);
                    }
                    near(V[r * O + o], s, mag, "fwd", O, I);
                }
            /* dw over the columns in three ranges, one of them unaligned */
            int c1 = I / 3, c2 = I - I / 4;
            for (size_t i = 0; i < (size_t)O * I; i++)
                dW[i] = NAN;
            k->dw[O](dW, dV, X, B, I, 0, c1);
            k->dw[O](dW, dV, X, B, I, c1, c2);
            k->dw[O](dW, dV, X, B, I, c2, I);
            for (int o = 0; o < O; o++)
                for (int c = 0; c < I; c++) {
                    double s = 0, mag = 0;
                    for (int r = 0; r < B; r++) {
                        s += (double)dV[r * O + o] * X[(size_t)r * I + c];
                        mag += fabs((double)dV[r * O + o] * X[(size_t)r * I + c]);
                    }
                    near(dW[(size_t)o * I + c], s, mag, "dw", O, I);
                }
            /* dx in two ranges of columns, rows I floats apart, as hidden.c's slices are; the
             * second gated as ReLU's backward (a gate ≤ 0, or NaN, gives exactly 0) */
            float *gate = randv((size_t)B * I, 11, -1, 1);
            if (!CHECK(gate))
                return;
            /* 0, NaN and -0 gates at the gated range's start (in a vector where I - c1 ≥ the
             * set's width) and NaN at the very end (a scalar tail) */
            gate[c1] = 0.0f, gate[(size_t)B * I - 1] = NAN;
            gate[(size_t)I + c1 + (c1 + 1 < I)] = NAN, gate[(size_t)2 * I + c1] = -0.0f;
            k->dx[O](dX, dV, W, B, c1, I, NULL);
            k->dx[O](dX + c1, dV, W + c1, B, I - c1, I, gate + c1);
            for (int r = 0; r < B; r++)
                for (int c = 0; c < I; c++) {
                    double s = 0, mag = 0;
                    for (int o = 0; o < O; o++) {
                        s += (double)dV[r * O + o] * W[(size_t)o * I + c];
                        mag += fabs((double)dV[r * O + o] * W[(size_t)o * I + c]);
                    }
                    if (c >= c1 && !(gate[(size_t)r * I + c] > 0.0f)) {
                        CHECKF(dX[(size_t)r * I + c] == 0.0f, "dx O=%d I=%d: gated element "
                               "%g, not 0", O, I, dX[(size_t)r * I + c]);
                        continue;
                    }
                    near(dX[(size_t)r * I + c], s, mag, "dx", O, I);
                }
            free(gate);
            free(X), free(W), free(b), free(dV), free(V), free(dW), free(dX);
        }
}

static float *copy_of(const float *v, size_t n)
{
    float *c = malloc(n * sizeof *c);
    if (c)
        memcpy(c, v, n * sizeof *c);
    return c;
}

/* The set's unpacked GEMMs (kernels_gemm512.h) against double loops, on shapes with every edge:
 * rows and units that are not whole tiles, K with a vector tail, operands with rows exactly K
 * wide (the masked loads of the tail end at the allocation's end) or wider. Each is also called in pieces, split by units and by rows as threads
 * split them, and must give the same bits as one call; the padding must stay untouched. */
static void unpacked_agree(const kernel_set *k)
{
    if (!k->gemm_nt || !k->gemm_tn) {
        CHECK(!k->gemm_nt && !k->gemm_tn);
        return;
    }
    /* U = 130 at K = 784: W in two blocks of units (kernels_gemm512.h: about 256 kB each) */
    static const int Rs[] = {1, 5, 13}, Us[] = {1, 6, 19, 40, 130}, Ks[] = {1, 15, 16, 50, 784};
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 5; b++)
            for (size_t c = 0; c < 5; c++) {
                int R = Rs[a], U = Us[b], K = Ks[c], pad = (int)(b % 2) * 3; /* and rows exactly K */
                int lda = K + pad, ldw = K + 5 * pad / 3, ldc = U + 2;
                int ldg = U + 4, ldd = K + 2, us = U / 3, rs = R / 2;
                size_t nc = (size_t)R * ldc, nd = (size_t)U * ldd;
                float *A = randv((size_t)R * lda, 5, 0, 1), *W = randv((size_t)U * ldw, 6, -1, 1);
                float *bias = randv((size_t)U, 7, -1, 1), *C0 = randv(nc, 8, -1, 1);
                float *G = randv((size_t)R * ldg, 9, -1, 1), *D0 = randv(nd, 10, -1, 1);
                float *C = malloc(nc * 4), *C2 = malloc(nc * 4), *D = malloc(nd * 4);
                float *D2 = malloc(nd * 4);
                if (!CHECK(A && W && bias && C0 && G && D0 && C && C2 && D && D2))
                    return;
                for (int mode = 0; mode < 3; mode++) { /* onto C; onto the bias; and ReLU */
                    const float *bs = mode ? bias : NULL;
                    memcpy(C, C0, nc * 4), memcpy(C2, C0, nc * 4);
                    k->gemm_nt(C, ldc, A, lda, W, ldw, R, U, K, bs, mode == 2);
                    for (int r = 0; r < R; r++)
                        for (int u = 0; u < ldc; u++) {
                            double s = u >= U ? C0[(size_t)r * ldc + u]
                                       : mode ? bias[u] : C0[(size_t)r * ldc + u];
                            double mag = fabs(s);
                            for (int i = 0; u < U && i < K; i++) {
                                double p = (double)A[(size_t)r * lda + i] * W[(size_t)u * ldw + i];
                                s += p, mag += fabs(p);
                            }
                            if (mode == 2 && u < U && s < 0)
                                s = 0;
                            near(C[(size_t)r * ldc + u], s, mag, u < U ? "gemm_nt" : "nt pad", U, K);
                        }
                    /* in four pieces: units [0, us) and [us, U) × rows [0, rs) and [rs, R) */
                    for (int q = 0; q < 4; q++) {
                        int u0 = q & 1 ? us : 0, u1 = q & 1 ? U : us;
                        int r0 = q & 2 ? rs : 0, r1 = q & 2 ? R : rs;
                        k->gemm_nt(C2 + (size_t)r0 * ldc + u0, ldc, A + (size_t)r0 * lda, lda,
                                   W + (size_t)u0 * ldw, ldw, r1 - r0, u1 - u0, K,
                                   bs ? bs + u0 : NULL, mode == 2);
                    }
                    CHECKF(!memcmp(C, C2, nc * 4), "%s gemm_nt R=%d U=%d K=%d mode %d: pieces "
                           "differ from one call", k->name, R, U, K, mode);
                }
                for (int add = 0; add < 2; add++) {
                    memcpy(D, D0, nd * 4), memcpy(D2, D0, nd * 4);
                    k->gemm_tn(D, ldd, G, ldg, A, lda, R, U, K, add);
                    for (int u = 0; u < U; u++)
                        for (int i = 0; i < ldd; i++) {
                            double s = add || i >= K ? D0[(size_t)u * ldd + i] : 0, mag = fabs(s);
                            for (int r = 0; i < K && r < R; r++) {
                                double p = (double)G[(size_t)r * ldg + u] * A[(size_t)r * lda + i];
                                s += p, mag += fabs(p);
                            }
                            near(D[(size_t)u * ldd + i], s, mag, i < K ? "gemm_tn" : "tn pad", U, K);
                        }
                    k->gemm_tn(D2, ldd, G, ldg, A, lda, R, us, K, add);
                    k->gemm_tn(D2 + (size_t)us * ldd, ldd, G + us, ldg, A, lda, R, U - us, K, add);
                    CHECKF(!memcmp(D, D2, nd * 4), "%s gemm_tn R=%d U=%d K=%d add %d: pieces "
                           "differ from one call", k->name, R, U, K, add);
                }
                free(A), free(W), free(bias), free(C0), free(G), free(D0), free(C), free(C2);
                free(D), free(D2);
            }
}

/* The set's Adam update against the formula in double, for lengths with and without a vector
 * tail; on a slice it must touch nothing outside it. */
static void adam_agrees(const kernel_set *k)
{
    static const size_t ns[] = {1, 7, 33, 1000};
    const float b1 = 0.9f, b2 = 0.999f, c1 = 3.1f, c2 = 17.0f, lr = 0.01f, eps = 1e-8f;
    for (size_t q = 0; q < 4; q++)
        for (int d = 0; d < 2; d++) { /* without and with decoupled weight decay */
            size_t n = ns[q], pad = 4;
            float wd = d ? 0.05f : 0.0f;
            float *p = randv(n + pad, 21, -1, 1), *g = randv(n + pad, 22, -1, 1);
            float *m = randv(n + pad, 23, -0.1, 0.1), *v = randv(n + pad, 24, 0, 0.01);
            float *p0 = p ? copy_of(p, n + pad) : NULL, *m0 = m ? copy_of(m, n + pad) : NULL;
            float *v0 = v ? copy_of(v, n + pad) : NULL;
            if (!CHECK(p && g && m && v && p0 && m0 && v0))
                return;
            k->adam(p + 2, g + 2, m + 2, v + 2, n, b1, b2, c1, c2, lr, eps, wd);
            int outside = 0;
            for (size_t i = 0; i < n + pad; i++) {
                if (i < 2 || i >= n + 2) {
                    outside += p[i] != p0[i] || m[i] != m0[i] || v[i] != v0[i];
                    continue;
                }
                double gi = g[i], mi = b1 * (double)m0[i] + (1.0 - b1) * gi;
                double si = b2 * (double)v0[i] + (1.0 - b2) * gi * gi;
                double step = lr * (mi * c1 / (sqrt(si * c2) + eps) + wd * (double)p0[i]);
                near(m[i], mi, fabs(mi) + fabs(gi), "adam m", 0, (int)n);
                near(v[i], si, si, "adam s", 0, (int)n);
                near(p[i], p0[i] - step, fabs(p0[i]) + fabs(step) * 10, "adam p", 0, (int)n);
            }
            CHECKF(outside == 0, "%s adam n=%zu: %d values outside the slice changed", k->name,
                   n, outside);
            free(p), free(g), free(m), free(v), free(p0), free(m0), free(v0);
        }
}

static void gather_agrees(const kernel_set *k)
{
    enum { N = 50, D = 37, R = 9 };
    uint8_t pix[N * D];
    for (int i = 0; i < N * D; i++)
        pix[i] = (uint8_t)(i * 131 + 7);
    uint32_t idx[R] = {49, 0, 3, 3, 17, 48, 1, 30, 22};
    float X[R * D];
    k->gather(X, pix, D, idx, 0, R);
    int bad = 0;
    for (int r = 0; r < R; r++)
        for (int i = 0; i < D; i++)
            bad += X[r * D + i] != (float)pix[idx[r] * D + i] * (1.0f / 255.0f);
    k->gather(X, pix, D, NULL, 40, R);
    for (int r = 0; r < R; r++)
        for (int i = 0; i < D; i++)
            bad += X[r * D + i] != (float)pix[(40 + r) * D + i] * (1.0f / 255.0f);
    CHECKF(bad == 0, "%s gather: %d values differ from pixel/255", k->name, bad);
}

/* ---- the pool ---- */
enum { CHUNKS = 97 };
typedef struct {
    _Atomic int runs[CHUNKS];
    int nested;
} pool_probe;

static void count_task(void *ctx, int c, int n)
{
    pool_probe *p = ctx;
    if (n == CHUNKS && c >= 0 && c < CHUNKS)
        atomic_fetch_add(&p->runs[c], 1);
}

static void nesting_task(void *ctx, int c, int n)
{
    (void)n;
    pool_probe *p = ctx;
    if (c == 0) { /* a pool_run inside a chunk: must run its chunks itself, all of them */
        pool_probe inner;
        memset(&inner, 0, sizeof inner);
        pool_run(2, CHUNKS, count_task, &inner);
        int ok = 1;
        for (int i = 0; i < CHUNKS; i++)
            ok &= inner.runs[i] == 1;
        p->nested = ok;
    }
}

/* Any chunk count: chunk c of n counts in runs[c], and a chunk beyond n in runs[n]. */
static void any_task(void *ctx, int c, int n)
{
    pool_probe *p = ctx;
    atomic_fetch_add(&p->runs[c >= 0 && c < n && n < CHUNKS ? c : n < CHUNKS ? n : 0], 1);
}

static int once_each(const pool_probe *p)
{
    for (int i = 0; i < CHUNKS; i++)
        if (p->runs[i] != 1)
            return 0;
    return 1;
}

static void *caller(void *arg)
{
    pool_probe *p = arg;
    for (int rep = 0; rep < 200; rep++) {
        memset(p, 0, sizeof *p);
        pool_run(2, CHUNKS, count_task, p);
        if (!once_each(p))
            return NULL;
    }
    return p;
}

static void pool_checks(void)
{
    pool_probe p;
    for (int n = 1; n <= 8; n *= 2)
        for (int rep = 0; rep < 300; rep++) {
            memset(&p, 0, sizeof p);
            pool_run(n, CHUNKS, count_task, &p);
            if (!CHECKF(once_each(&p), "pool_run(%d threads): a chunk ran other than once", n))
                break;
        }
    /* Runs of changing chunk counts, bit claims (≤ 32) and counted ones (> 32) in turn: a
     * worker late from one run must not claim a chunk of the next (a chunk run twice, or one
     * beyond the run's count). */
    static const int counts[] = {2, 8, 40, 3, 33, 1, 32, 64};
    int bad = 0;
    for (int rep = 0; rep < 20000 && !bad; rep++) {
        int k = counts[rep % (int)(sizeof counts / sizeof *counts)];
        memset(&p, 0, sizeof p);
        pool_run(2, k, any_task, &p);
        for (int c = 0; c <= k; c++)
            bad |= p.runs[c] != (c < k);
    }
    CHECKF(!bad, "pool_run with changing chunk counts: a chunk ran other than once");
    memset(&p, 0, sizeof p);
    pool_run(2, 2, nesting_task, &p);
    CHECKF(p.nested, "a nested pool_run did not run each of its chunks once");
    /* two threads of the program calling at once: one gets the pool, the other runs alone */
    pool_probe a, b;
    pthread_t ta, tb;
    void *ra = NULL, *rb = NULL;
    CHECK(pthread_create(&ta, NULL, caller, &a) == 0);
    CHECK(pthread_create(&tb, NULL, caller, &b) == 0);
    pthread_join(ta, &ra);
    pthread_join(tb, &rb);
    CHECKF(ra == &a && rb == &b, "concurrent callers: a chunk ran other than once");
}

/* ---- whole runs ---- */
static bp_dataset synth(uint32_t n, uint32_t dim, uint64_t seed);

/* bp_evaluate at any batch size and thread count (backprop.h, BP_EVAL_BATCH): with a set's own
 * GEMMs the same probabilities bit for bit, the same accuracy and the mean loss to double
 * rounding; with OpenBLAS (which rounds differently for different matrix sizes) the same
 * within float rounding (probabilities 1e-5, loss 1e-6 relative, at most one sample's class).
 * A 300-64-10 MLP on 2600 samples in batches of 7, 1000 and 2600 (the last one beyond any
 * limit on rows a kernel might have), on 1 and 2 threads. */
static void eval_any_batch(const int *sizes, const char *set)
{
    bp_dataset ds = synth(2600, 300, 11);
    bp_model *m = fx_model(sizes, 2, BP_ACT_RELU, 5);
    size_t np = (size_t)ds.n * 10;
    float *p0 = malloc(np * sizeof *p0), *p = malloc(np * sizeof *p);
    bp_eval_result r0, r;
    bp_error err = {0};
    if (!CHECK(ds.pixels && ds.labels && m && p0 && p) ||
        !CHECK(bp_evaluate(m, &ds, 7, 1, &r0, p0, &err) == BP_OK))
        goto out;
    static const int batches[] = {7, 1000, 2600};
    int differ = 0;
    for (int t = 1; t <= 2; t++)
        for (int b = 0; b < 3; b++) {
            if (!CHECK(bp_evaluate(m, &ds, batches[b], t, &r, p, &err) == BP_OK))
                goto out;
            int same = fabs(r.loss - r0.loss) <= 1e-12 * r0.loss && r.accuracy == r0.accuracy &&
                       !memcmp(p, p0, np * 4);
            if (!kernels()->gemm_nt) {
                double dp = 0;
                for (size_t i = 0; i < np; i++)
                    dp = fmax(dp, fabs((double)p[i] - p0[i]));
                same = dp <= 1e-5 && fabs(r.loss - r0.loss) <= 1e-6 * r0.loss &&
                       fabs(r.accuracy - r0.accuracy) * ds.n <= 1.0 + 1e-9;
            }
            differ += !same;
            CHECKF(same, "eval (%s) at batch %d, %d thread(s): loss %.17g vs %.17g at batch 7",
                   set, batches[b], t, r.loss, r0.loss);
        }
    printf("  300-64-10 eval (%s) at batches 7, 1000, 2600 on 1 and 2 threads: %d of 6 differ "
           "from batch 7 on 1 thread %s (loss %.6f)\n", set, differ,
           kernels()->gemm_nt ? "in any bit" : "beyond float rounding", r0.loss);
out:
    bp_model_free(m);
    free(p0), free(p), free(ds.pixels), free(ds.labels);
}

static bp_dataset synth(uint32_t n, uint32_t dim, uint64_t seed)
{
    bp_dataset ds = {n, 1, dim, dim, 10, malloc((size_t)n * dim), malloc(n)};
    bp_rng r;
    bp_rng_seed(&r, seed);
    for (uint32_t s = 0; ds.pixels && ds.labels && s < n; s++) {
        uint8_t c = (uint8_t)bp_rng_below(&r, 10);
        ds.labels[s] = c;
        for (uint32_t i = 0; i < dim; i++) /* class-dependent bands plus noise */
            ds.pixels[(size_t)s * dim + i] =
                (uint8_t)((i % 10 == c ? 120 : 0) + bp_rng_below(&r, 120));
    }
    return ds;
}

/* Trains m (then freed) with cfg and returns a copy of its parameters, NULL on failure. */
static float *train_copy(bp_model *m, const bp_dataset *ds, const bp_train_config *cfg,
                         size_t *np, const char *what)
{
    bp_error err = {0};
    float *out = NULL;
    if (bp_train(m, ds, NULL, cfg, NULL, NULL, &err) == BP_OK) {
        out = malloc(m->nparams * sizeof *out);
        if (out)
            memcpy(out, m->params, m->nparams * sizeof *out);
        *np = m->nparams;
    } else {
        fprintf(stderr, "bp_train %s (%d threads): %s\n", what, cfg->threads, err.msg);
    }
    bp_model_free(m);
    return out;
}

/* A model of the layers list[0..n) on ds's images, initialised with seed 3; NULL on failure. */
static bp_model *layers_model(const bp_dataset *ds, const bp_layer *list, int n)
{
    bp_model *m = NULL;
    bp_error err = {0};
    if (bp_model_create_layers(&m, 1, (int)ds->rows, (int)ds->cols, list, n, &err) ||
        bp_model_init(m, BP_INIT_TORCH, 3, &err)) {
        fprintf(stderr, "CNN: %s\n", err.msg);
        bp_model_free(m);
        return NULL;
    }
    return m;
}

static float *trained(const bp_dataset *ds, const int *sizes, int nl, int threads,
                      size_t *np)
{
    bp_model *m = fx_model(sizes, nl, BP_ACT_RELU, 5);
    if (!m)
        return NULL;
    bp_train_config cfg;
    bp_train_config_default(&cfg);
    cfg.epochs = 2;
    cfg.batch = 128;
    cfg.threads = threads;
    cfg.opt.lr = 0.1f;
    return train_copy(m, ds, &cfg, np, "MLP");
}

/* A small CNN (two convs, one with 'same' padding and one of stride 2, max pooling, dropout)
 * trained on 12×12 images at batch bsz, which cuts the batch into several conv chunks whose
 * partial dW are summed. */
static float *trained_cnn(const bp_dataset *ds, int threads, int bsz, size_t *np)
{
    bp_layer list[] = {
        {.kind = BP_LAYER_CONV2D, .units = 6, .kh = 3, .kw = 3, .stride = 1, .pad = BP_PAD_SAME},
        {.kind = BP_LAYER_ACT, .act = BP_ACT_RELU},
        {.kind = BP_LAYER_CONV2D, .units = 8, .kh = 3, .kw = 3, .stride = 2},
        {.kind = BP_LAYER_ACT, .act = BP_ACT_RELU},
        {.kind = BP_LAYER_MAXPOOL, .kh = 2},
        {.kind = BP_LAYER_DROPOUT, .p = 0.25f},
        {.kind = BP_LAYER_FLATTEN},
        {.kind = BP_LAYER_LINEAR, .units = 10}};
    bp_model *m = layers_model(ds, list, (int)(sizeof list / sizeof *list));
    if (!m)
        return NULL;
    bp_train_config cfg;
    bp_train_config_default(&cfg);
    cfg.epochs = 2;
    cfg.batch = bsz;
    cfg.threads = threads;
    cfg.opt.kind = BP_OPT_ADAM;
    cfg.opt.lr = 0.002f;
    return train_copy(m, ds, &cfg, np, "CNN");
}

static void same_params(float *p1, size_t n1, float *p2, size_t n2, const char *what)
{
    if (CHECK(p1 && p2 && n1 == n2)) {
        size_t diff = 0;
        for (size_t i = 0; i < n1; i++)
            diff += memcmp(&p1[i], &p2[i], sizeof *p1) != 0;
        printf("  %-40s 1 vs 2 threads: %zu of %zu parameters differ\n", what, diff, n1);
        CHECKF(diff == 0, "%s: %zu parameters differ between 1 and 2 threads", what, diff);
    }
    free(p1);
    free(p2);
}

static void same_for_every_thread_count(const bp_dataset *ds, const int *sizes, int nl,
                                        const char *what)
{
    size_t n1 = 0, n2 = 0;
    float *p1 = trained(ds, sizes, nl, 1, &n1), *p2 = trained(ds, sizes, nl, 2, &n2);
    same_params(p1, n1, p2, n2, what);
}

/* The trainer updates each layer inside its backward pass (opt_fuse: in the shares of the
 * weight gradient, and under plain SGD through the product itself). The same batches through
 * bp_grad and bp_opt_step, one after the other, must give the same parameters within float
 * rounding: max |Δparam| ≤ 1e-5 after an epoch (a missed update or a wrong rate is ≥ 1e-3). */
/* Trained under each kernel set (2 threads) against the generic set (1 thread): within 1e-4. */
static void sets_train_alike(const bp_dataset *ds, const int *sizes, int nl, const char *what)
{
    size_t n0 = 0;
    bp_kernel_select("generic", NULL);
    float *ref = trained(ds, sizes, nl, 1, &n0);
    CHECKF(ref != NULL, "%s: training under the generic set failed", what);
    for (size_t s = 1; ref && s < sizeof SETS / sizeof *SETS; s++) {
        if (bp_kernel_select(SETS[s], NULL) != BP_OK)
            continue;
        size_t n = 0;
        float *p = trained(ds, sizes, nl, 2, &n);
        double d = 0;
        for (size_t i = 0; p && i < n; i++)
            d = fmax(d, fabs((double)p[i] - ref[i]));
        printf("  %s, %s vs generic after 2 epochs: max |Δparam| %.2e (tol 1e-4)\n", what,
               SETS[s], d);
        CHECKF(p && n == n0 && d <= 1e-4, "%s %s vs generic: max |dparam| %.3e", what, SETS[s],
               d);
        free(p);
    }
    free(ref);
    bp_kernel_select("auto", NULL);
}

static bp_model *cnn_model(const bp_dataset *ds)
{
    bp_layer list[] = {
        {.kind = BP_LAYER_CONV2D, .units = 4, .kh = 3, .kw = 3, .stride = 1, .pad = BP_PAD_SAME},
        {.kind = BP_LAYER_ACT, .act = BP_ACT_RELU},
        {.kind = BP_LAYER_MAXPOOL, .kh = 2},
        {.kind = BP_LAYER_FLATTEN},
        {.kind = BP_LAYER_LINEAR, .units = 24},
        {.kind = BP_LAYER_ACT, .act = BP_ACT_TANH},
        {.kind = BP_LAYER_LINEAR, .units = 10}};
    return layers_model(ds, list, (int)(sizeof list / sizeof *list));
}

static void fused_matches_unfused(const bp_dataset *ds, const int *sizes, int nl, bp_act act,
                                  bp_opt_kind kind, float wd, int threads, const char *what)
{
    enum { BS = 64 };
    bp_model *a = sizes ? fx_model(sizes, nl, act, 5) : cnn_model(ds);
    bp_model *b = sizes ? fx_model(sizes, nl, act, 5) : cnn_model(ds);
    bp_train_config cfg;
    bp_train_config_default(&cfg);
    cfg.epochs = 1, cfg.batch = BS, cfg.threads = threads, cfg.shuffle = 0;
    cfg.opt.kind = kind, cfg.opt.sched = BP_SCHED_CONSTANT, cfg.opt.weight_decay = wd;
    cfg.opt.lr = kind == BP_OPT_SGD ? 0.1f : kind == BP_OPT_ADAM ? 0.002f : 0.02f;
    bp_error err = {0};
    bp_work *w = NULL;
    bp_opt *o = NULL;
    float *X = malloc((size_t)BS * ds->dim * sizeof *X);
    uint8_t labels[BS];
    int ok = a && b && X && bp_train(a, ds, NULL, &cfg, NULL, NULL, &err) == BP_OK &&
             bp_work_create(&w, b, BS, threads, &err) == BP_OK &&
             bp_opt_create(&o, &cfg.opt, b->nparams, &err) == BP_OK;
    for (uint32_t first = 0; ok && first < ds->n; first += BS) {
        int n = ds->n - first < BS ? (int)(ds->n - first) : BS;
        bp_dataset_gather(ds, NULL, first, n, X, labels);
        ok = bp_grad(b, w, BP_IMPL_BLAS, X, labels, n, NULL, NULL, NULL, &err) == BP_OK;
        bp_opt_step(o, b->params, b->grads, cfg.opt.lr);
    }
    double d = ok ? 0.0 : INFINITY;
    for (size_t i = 0; ok && i < a->nparams; i++)
        d = fmax(d, fabs((double)a->params[i] - b->params[i]));
    printf("  %-28s %-8s wd %-5g %d thread(s): fused vs bp_grad + bp_opt_step max |Δparam| "
           "%.1e\n", what, bp_opt_name(kind), wd, threads, d);
    CHECKF(d <= 1e-5, "%s, %s, %d threads: fused step differs by %.3e (%s)", what,
           bp_opt_name(kind), threads, d, ok ? "" : err.msg);
    bp_opt_free(o);
    bp_work_free(w);
    bp_model_free(a);
    bp_model_free(b);
    free(X);
}

static void fused_checks(const bp_dataset *wide, const bp_dataset *img)
{
    int thin[] = {300, 10}, one[] = {300, 64, 10}, two[] = {300, 32, 24, 10};
    const struct {
        const bp_dataset *ds;
        const int *sizes;
        int nl;
        bp_act act;
        const char *what;
    } models[] = {{wide, thin, 1, BP_ACT_RELU, "300→10 (small kernels)"},
                  {wide, one, 2, BP_ACT_RELU, "300-64-10 ReLU (by units)"},
                  {wide, one, 2, BP_ACT_TANH, "300-64-10 tanh (by units)"},
                  {wide, two, 3, BP_ACT_SIGMOID, "300-32-24-10 sigmoid (rows)"},
                  {img, NULL, 0, BP_ACT_RELU, "CNN conv,pool,fc,tanh,fc"}};
    const bp_opt_kind kinds[] = {BP_OPT_SGD, BP_OPT_SGD, BP_OPT_MOMENTUM, BP_OPT_NESTEROV,
                                 BP_OPT_ADAM};
    for (size_t k = 0; k < sizeof models / sizeof *models; k++)
        for (size_t o = 0; o < sizeof kinds / sizeof *kinds; o++)
            for (int t = 1; t <= 2; t++)
                fused_matches_unfused(models[k].ds, models[k].sizes, models[k].nl,
                                      models[k].act, kinds[o], o == 1 ? 1e-3f : 0.0f, t,
                                      models[k].what);
}

int main(void)
{
    int tested = 0;
    for (size_t s = 0; s < sizeof SETS / sizeof *SETS; s++) {
        bp_error err = {0};
        if (bp_kernel_select(SETS[s], &err) != BP_OK) {
            printf("kernel set %-8s not on this CPU: %s (not tested here)\n", SETS[s], err.msg);
            CHECK_CONTAINS(err.msg, SETS[s]);
            continue;
        }
        CHECK(strcmp(bp_kernel_name(), SETS[s]) == 0);
        worst = 0;
        kernels_agree(kernels());
        gather_agrees(kernels());
        printf("kernel set %-8s fwd/dw/dx for O = 1..16: worst error %.2f of its bound\n",
               SETS[s], worst);
        worst = 0;
        adam_agrees(kernels());
        printf("kernel set %-8s adam: worst error %.2f of its bound\n", SETS[s], worst);
        worst = 0;
        unpacked_agree(kernels());
        if (kernels()->gemm_nt)
            printf("kernel set %-8s gemm_nt/gemm_tn: worst error %.2f of its bound\n", SETS[s],
                   worst);
        else
            printf("kernel set %-8s has no unpacked GEMMs (OpenBLAS does those products)\n",
                   SETS[s]);
        tested++;
    }
    bp_error err = {0};
    CHECK(bp_kernel_select("sse9", &err) == BP_ERR_ARG);
    CHECK_CONTAINS(err.msg, "sse9");
    CHECK(bp_kernel_select("auto", &err) == BP_OK);
    printf("kernel sets tested: %d; in use by default: %s\n", tested, bp_kernel_name());

    pool_checks();

    int cores = bp_threads_resolve(2, NULL);
    if (cores < 2)
        printf("one core: the 1-vs-2-thread runs below compare one thread with itself\n");
    bp_dataset thin = synth(1000, 784, 7), wide = synth(600, 300, 8);
    if (CHECK(thin.pixels && thin.labels && wide.pixels && wide.labels)) {
        int lin[] = {784, 10}, mlp[] = {300, 64, 10};
        same_for_every_thread_count(&thin, lin, 1, "784→10 (one thread by policy)");
        /* by hidden units: through the set's own GEMMs or OpenBLAS on each share */
        for (size_t s = 0; s < sizeof SETS / sizeof *SETS; s++) {
            char what[64];
            snprintf(what, sizeof what, "300-64-10 ReLU (by units, %s)", SETS[s]);
            if (bp_kernel_select(SETS[s], NULL) == BP_OK)
                same_for_every_thread_count(&wide, mlp, 2, what);
        }
        bp_kernel_select("auto", NULL);
        /* every kernel set trains to the parameters of the generic one within rounding: the
         * thin model (small kernels) and the MLP, whose wide products are OpenBLAS's in the
         * sets without unpacked GEMMs and the set's own in the others */
        sets_train_alike(&thin, lin, 1, "784→10");
        sets_train_alike(&wide, mlp, 2, "300-64-10");
        bp_kernel_select("auto", NULL);
        for (size_t s = 0; s < sizeof SETS / sizeof *SETS; s++)
            if (bp_kernel_select(SETS[s], NULL) == BP_OK)
                eval_any_batch(mlp, SETS[s]);
        bp_kernel_select("auto", NULL);
    }
    /* conv layers split by samples on the pool: batch 50 is 13 chunks (the last short), 3
     * a single chunk, and the last batch of an epoch (30) is 8 chunks */
    bp_dataset img = synth(230, 144, 9);
    img.rows = img.cols = 12;
    if (CHECK(img.pixels && img.labels))
        for (int bsz = 3; bsz <= 50; bsz += 47) {
            size_t n1 = 0, n2 = 0;
            float *p1 = trained_cnn(&img, 1, bsz, &n1), *p2 = trained_cnn(&img, 2, bsz, &n2);
            char what[64];
            snprintf(what, sizeof what, "CNN conv,conv s2,maxpool at batch %d", bsz);
            same_params(p1, n1, p2, n2, what);
        }
    if (CHECK(img.pixels && img.labels && wide.pixels && wide.labels))
        fused_checks(&wide, &img);
    free(img.pixels), free(img.labels);
    free(thin.pixels), free(thin.labels), free(wide.pixels), free(wide.labels);
    return check_exit("test_kernels");
}
