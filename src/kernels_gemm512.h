/* Two GEMMs of AVX-512 intrinsics for the step of a one-hidden-layer MLP, where OpenBLAS's
 * packing costs more than it saves: on a 2-core Zen 4 guest (OpenBLAS 0.3.21, Cooperlake
 * kernels), the 784-256 step's two products at batch 128 split by hidden units ran at 203
 * GFLOP/s on both cores with these and at 193 with OpenBLAS single-threaded on the same
 * shares (bp_limit; best 2048³ sgemm of the run 202; bench/README.md). Neither packs: the
 * operands are read where they lie, and each core's share stays in its L2.
 *
 *   nt:  C[r, u] = c + Σ_k A[r, k]·W[u, k], c = bias[u] or C[r, u]   (the forward X·W1ᵀ + b1),
 *        then max(·, 0) when relu is set
 *        tiles of 4 rows × 4 units: 16 accumulators, each a dot product along k 16 lanes
 *        wide; 8 loads feed 16 FMAs; the 16 are reduced together (red16) at the tile's end.
 *   tn:  D[u, k] = (add ? D[u, k] : 0) + Σ_i G[i, u]·X[i, k]   (D = Gᵀ·X, the weight gradient)
 *        tiles of 8 units × 3 vectors of k: 24 accumulators; per row of the batch 3 loads of
 *        X and 8 broadcasts of G feed 24 FMAs; the tile's 48 columns of X (24 kB at batch
 *        128) stay in L1 across the units.
 * Every output element is computed in one fixed order whatever tile, share or edge it falls
 * in (edge tiles repeat a valid row or unit and store only theirs), so a split by rows or by
 * units leaves the results unchanged: a thread count never changes the numbers. */
#include <immintrin.h>

/* lane i of the result = the sum of a[i]'s 16 lanes, in one tree: within each 128-bit
 * quarter (e0 + e2) + (e1 + e3), then (q0 + q1) + (q2 + q3) */
static inline __m512 red16(const __m512 a[16])
{
    __m512 b[8], c[4], d[2];
    for (int i = 0; i < 8; i++)
        b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                             _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 4; i++) {
        __m512d x = _mm512_castps_pd(b[2 * i]), y = _mm512_castps_pd(b[2 * i + 1]);
        c[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    for (int i = 0; i < 2; i++)
        d[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(d[0], d[1], 0x88),
                         _mm512_shuffle_f32x4(d[0], d[1], 0xdd));
}

static inline int kmin(int a, int b) { return a < b ? a : b; }

static void gemm_nt_avx512(float *C, int ldc, const float *A, int lda, const float *W, int ldw,
                           int R, int U, int K, const float *bias, int relu)
{
    if (R <= 0 || U <= 0)
        return;
    /* units in blocks of about 256 kB of W, so a block stays in L2 while every row passes
     * (K = 0: no loads; each output is its bias, or stays, then ReLU) */
    int ub = K > 0 ? (65536 / K) & ~3 : U;
    ub = ub < 4 ? 4 : ub;
    __mmask16 tail = (__mmask16)((1u << (K % 16)) - 1);
    int kv = K - K % 16;
    for (int u0 = 0; u0 < U; u0 += ub)
        for (int r = 0; r < R; r += 4)
            for (int u = u0; u < kmin(u0 + ub, U); u += 4) {
                const float *a[4], *w[4];
                for (int i = 0; i < 4; i++) {
                    a[i] = A + (size_t)kmin(r + i, R - 1) * lda;
                    w[i] = W + (size_t)kmin(u + i, U - 1) * ldw;
                }
                __m512 acc[16];
                _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
                for (int k = 0; k < kv; k += 16) {
                    __m512 x[4], y[4];
                    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {
                        x[i] = _mm512_loadu_ps(a[i] + k);
                        y[i] = _mm512_loadu_ps(w[i] + k);
                    }
                    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++)
                        _Pragma("GCC unroll 4") for (int o = 0; o < 4; o++)
                            acc[i * 4 + o] = _mm512_fmadd_ps(x[i], y[o], acc[i * 4 + o]);
                }
                if (tail) { /* the last K % 16 columns, zero beyond K: 0·0 adds nothing */
                    __m512 x[4], y[4];
                    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {
                        x[i] = _mm512_maskz_loadu_ps(tail, a[i] + kv);
                        y[i] = _mm512_maskz_loadu_ps(tail, w[i] + kv);
                    }
                    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++)
                        _Pragma("GCC unroll 4") for (int o = 0; o < 4; o++)
                            acc[i * 4 + o] = _mm512_fmadd_ps(x[i], y[o], acc[i * 4 + o]);
                }
                float s[16];
                _mm512_storeu_ps(s, red16(acc));
                for (int i = 0; i < 4 && r + i < R; i++)
                    for (int o = 0; o < 4 && u + o < U; o++) {
                        float *c = C + (size_t)(r + i) * ldc + u + o;
                        float v = (bias ? bias[u + o] : *c) + s[i * 4 + o];
                        *c = relu && !(v > 0.0f) ? 0.0f : v;
                    }
            }
}

/* Units [u, u + 8) (clamped to U) × NV vectors of k from column k0, the last one masked. */
static inline __attribute__((always_inline)) void
tn_tile(float *D, int ldd, const float *G, int ldg, const float *X, int ldx, int B, int U, int u,
        int k0, const int NV, __mmask16 last, int add)
{
    const float *g[8];
    for (int a = 0; a < 8; a++)
        g[a] = G + kmin(u + a, U - 1);
    __m512 acc[8][3];
    _Pragma("GCC unroll 8") for (int a = 0; a < 8; a++)
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) acc[a][v] = _mm512_setzero_ps();
    for (int i = 0; i < B; i++) {
        const float *xr = X + (size_t)i * ldx + k0;
        __m512 x[3];
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++)
            x[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(last, xr + 16 * v)
                               : _mm512_loadu_ps(xr + 16 * v);
        size_t gi = (size_t)i * ldg;
        _Pragma("GCC unroll 8") for (int a = 0; a < 8; a++) {
            __m512 s = _mm512_set1_ps(g[a][gi]);
            _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++)
                acc[a][v] = _mm512_fmadd_ps(s, x[v], acc[a][v]);
        }
    }
    for (int a = 0; a < 8 && u + a < U; a++) {
        float *d = D + (size_t)(u + a) * ldd + k0;
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) {
            __mmask16 m = v == NV - 1 ? last : (__mmask16)0xffff;
            __m512 r = acc[a][v];
            if (add)
                r = _mm512_add_ps(_mm512_maskz_loadu_ps(m, d + 16 * v), r);
            _mm512_mask_storeu_ps(d + 16 * v, m, r);
        }
    }
}

static void gemm_tn_avx512(float *D, int ldd, const float *G, int ldg, const float *X, int ldx,
                           int B, int U, int K, int add)
{
    if (U <= 0 || K <= 0 || (B <= 0 && add)) /* an empty sum leaves D as it is */
        return;
    int k = 0;
    for (; k + 48 <= K; k += 48) /* whole blocks of three vectors */
        for (int u = 0; u < U; u += 8)
            tn_tile(D, ldd, G, ldg, X, ldx, B, U, u, k, 3, 0xffff, add);
    for (; k < K; k += 16) { /* then one vector at a time, the last one masked */
        __mmask16 m = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
        for (int u = 0; u < U; u += 8)
            tn_tile(D, ldd, G, ldg, X, ldx, B, U, u, k, 1, m, add);
    }
}

#define KGEMM_NT gemm_nt_avx512
#define KGEMM_TN gemm_tn_avx512
