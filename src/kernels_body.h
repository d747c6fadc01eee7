/* The small-output kernels, written once over a vector of KVW floats and compiled once per
 * instruction set (kernels_generic.c, kernels_avx2.c, kernels_avx512.c include this file with
 * KVW and KSUFFIX set; kernels.c picks one set at run time). GCC's vector extensions: a
 * vector op is KVW float ops, and -ffp-contract=fast in those files' flags turns a*b + c into
 * one fused multiply-add.
 *
 * For an output layer of O ≤ 16 units (the seminar's 10 classes) OpenBLAS packs both operands
 * into its tile layout on every call and splits the products badly; these loops instead keep
 * the few output rows of W (10 × 784 floats = 31 KB) hot in L1/L2 and read X once:
 *   fwd:  V[r, o] = b[o] + Σ_i X[r, i]·W[o, i]   (V = X·Wᵀ + 1·bᵀ): a dot product along i,
 *         two rows of X at a time against every row of W, so each W load feeds two FMAs;
 *   dw:   dW[o, c] = Σ_r dV[r, o]·X[r, c]      (dW = dVᵀ·X): for a block of columns, the O×2
 *         vectors of dW stay in registers while the rows of X stream past;
 *   dx:   dX[r, c] = Σ_o dV[r, o]·W[o, c]      (dX = dV·W).
 * Every output element is computed the same way whatever range of rows (fwd, dx) or columns
 * (dw) a call is given, so splitting the work between threads leaves the results unchanged. */
#include "kernels.h"

#include <math.h>
#include <string.h>

#define KCAT2(a, b) a##b
#define KCAT(a, b) KCAT2(a, b)
#define KNAME(f) KCAT(f, KSUFFIX)

typedef float kvec __attribute__((vector_size(KVW * 4)));
typedef int kvi __attribute__((vector_size(KVW * 4)));
typedef float kv4 __attribute__((vector_size(16)));
typedef float kv8 __attribute__((vector_size(32)));

static inline kvec kload(const float *p)
{
    kvec v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void kstore(float *p, kvec v) { memcpy(p, &v, sizeof v); }

/* The sum of a vector's lanes as a tree: halves added until four lanes are left. */
static inline float khsum(kvec v)
{
#if KVW == 16
    kv8 lo, hi;
    memcpy(&lo, &v, sizeof lo);
    memcpy(&hi, (const char *)&v + sizeof lo, sizeof hi);
    lo += hi;
#elif KVW == 8
    kv8 lo = v;
#endif
#if KVW >= 8
    kv4 a, b;
    memcpy(&a, &lo, sizeof a);
    memcpy(&b, (const char *)&lo + sizeof a, sizeof b);
    a += b;
#else
    kv4 a = v;
#endif
    return (a[0] + a[2]) + (a[1] + a[3]);
}

/* fwd for a compile-time O, in groups of NG output units (NG divides O) and blocks of NR rows:
 * NR·NG accumulators. The group's rows of W and the block's rows of X (for O = 10: 5 + 4 rows
 * of 784 floats, 28 KB) stay in L1 while every FMA reads from it; all of W at once (31 KB)
 * beside two rows of X would not fit, and each W load would come from L2. */
#define KFWD(NO, NG, NR)                                                                          \
    static void KCAT(KNAME(fwd_), NO)(float *V, const float *X, const float *W, const float *b,   \
                                      int rows, int I)                                            \
    {                                                                                             \
        int iv = I - I % KVW, r = 0;                                                              \
        for (; r + (NR) <= rows; r += (NR))                                                       \
            for (int o0 = 0; o0 < (NO); o0 += (NG)) {                                             \
                const float *Wg = W + (size_t)o0 * I;                                             \
                kvec acc[NR][NG];                                                                 \
                _Pragma("GCC unroll 16") for (int o = 0; o < (NG); o++)                          \
                    _Pragma("GCC unroll 4") for (int k = 0; k < (NR); k++) acc[k][o] = (kvec){0};\
                for (int i = 0; i < iv; i += KVW) {                                               \
                    kvec x[NR];                                                                   \
                    _Pragma("GCC unroll 4") for (int k = 0; k < (NR); k++) x[k] =                \
                        kload(X + (size_t)(r + k) * I + i);                                       \
                    _Pragma("GCC unroll 16") for (int o = 0; o < (NG); o++)                      \
                    {                                                                             \
                        kvec w = kload(Wg + (size_t)o * I + i);                                   \
                        _Pragma("GCC unroll 4") for (int k = 0; k < (NR); k++) acc[k][o] +=      \
                            x[k] * w;                                                             \
                    }                                                                             \
                }                                                                                 \
                for (int k = 0; k < (NR); k++) {                                                  \
                    const float *xr = X + (size_t)(r + k) * I;                                    \
                    for (int o = 0; o < (NG); o++) {                                              \
                        float s = khsum(acc[k][o]);                                               \
                        for (int i = iv; i < I; i++)                                              \
                            s += xr[i] * Wg[(size_t)o * I + i];                                   \
                        V[(size_t)(r + k) * (NO) + o0 + o] = b[o0 + o] + s;                       \
                    }                                                                             \
                }                                                                                 \
            }                                                                                     \
        for (; r < rows; r++) { /* the last rows: the same sums, one row at a time */            \
            const float *xr = X + (size_t)r * I;                                                  \
            for (int o = 0; o < (NO); o++) {                                                      \
                kvec a = (kvec){0};                                                               \
                for (int i = 0; i < iv; i += KVW)                                                 \
                    a += kload(xr + i) * kload(W + (size_t)o * I + i);                            \
                float s = khsum(a);                                                               \
                for (int i = iv; i < I; i++)                                                      \
                    s += xr[i] * W[(size_t)o * I + i];                                            \
                V[(size_t)r * (NO) + o] = b[o] + s;                                               \
            }                                                                                     \
        }                                                                                         \
    }

/* dw for a compile-time O over columns [c0, c1): blocks of NC vectors, then single vectors,
 * then single columns; each element's sum runs over r = 0..B−1 in order. */
#define KDW(NO)                                                                                   \
    static void KCAT(KNAME(dw_), NO)(float *dW, const float *dV, const float *X, int B, int I,    \
                                     int c0, int c1)                                              \
    {                                                                                             \
        enum { NC = (NO) <= 12 ? 2 : 1 };                                                         \
        int c = c0;                                                                               \
        for (; c + NC * KVW <= c1; c += NC * KVW) {                                               \
            kvec acc[NO][NC];                                                                     \
            _Pragma("GCC unroll 16") for (int o = 0; o < (NO); o++)                              \
                _Pragma("GCC unroll 2") for (int k = 0; k < NC; k++) acc[o][k] = (kvec){0};      \
            for (int r = 0; r < B; r++) {                                                         \
                const float *xr = X + (size_t)r * I + c, *d = dV + (size_t)r * (NO);              \
                kvec x[NC];                                                                       \
                _Pragma("GCC unroll 2") for (int k = 0; k < NC; k++) x[k] = kload(xr + k * KVW); \
                _Pragma("GCC unroll 16") for (int o = 0; o < (NO); o++)                          \
                {                                                                                 \
                    float s = d[o];                                                               \
                    _Pragma("GCC unroll 2") for (int k = 0; k < NC; k++) acc[o][k] += x[k] * s;  \
                }                                                                                 \
            }                                                                                     \
            for (int o = 0; o < (NO); o++)                                                        \
                for (int k = 0; k < NC; k++)                                                      \
                    kstore(dW + (size_t)o * I + c + k * KVW, acc[o][k]);                          \
        }                                                                                         \
        for (; c + KVW <= c1; c += KVW) {                                                         \
            kvec acc[NO];                                                                         \
            for (int o = 0; o < (NO); o++)                                                        \
                acc[o] = (kvec){0};                                                               \
            for (int r = 0; r < B; r++) {                                                         \
                kvec x = kload(X + (size_t)r * I + c);                                            \
                for (int o = 0; o < (NO); o++)                                                    \
                    acc[o] += x * dV[(size_t)r * (NO) + o];                                       \
            }                                                                                     \
            for (int o = 0; o < (NO); o++)                                                        \
                kstore(dW + (size_t)o * I + c, acc[o]);                                           \
        }                                                                                         \
        for (; c < c1; c++)                                                                       \
            for (int o = 0; o < (NO); o++) {                                                      \
                float s = 0.0f;                                                                   \
                for (int r = 0; r < B; r++)                                                       \
                    s += X[(size_t)r * I + c] * dV[(size_t)r * (NO) + o];                         \
                dW[(size_t)o * I + c] = s;                                                        \
            }                                                                                     \
    }

/* dx for a compile-time O: per row, the O gradients as scalars times the rows of W. The rows
 * of W and dX lie ld floats apart (ld = I, or wider for a slice of columns). With gate (rows
 * ld apart too), ReLU's backward at the store: dX = 0 where gate ≤ 0 (or NaN). */
#define KDX(NO)                                                                                   \
    static void KCAT(KNAME(dx_), NO)(float *dX, const float *dV, const float *W, int rows, int I, \
                                     int ld, const float *gate)                                   \
    {                                                                                             \
        int iv = I - I % KVW;                                                                     \
        for (int r = 0; r < rows; r++) {                                                          \
            const float *d = dV + (size_t)r * (NO);                                               \
            float *out = dX + (size_t)r * ld;                                                     \
            const float *g = gate ? gate + (size_t)r * ld : NULL;                                 \
            for (int i = 0; i < iv; i += KVW) {                                                   \
                kvec a = kload(W + i) * d[0];                                                     \
                _Pragma("GCC unroll 16") for (int o = 1; o < (NO); o++) a +=                     \
                    kload(W + (size_t)o * ld + i) * d[o];                                         \
                if (g)                                                                            \
                    a = (kvec)((kvi)a & (kload(g + i) > 0.0f));                                   \
                kstore(out + i, a);                                                               \
            }                                                                                     \
            for (int i = iv; i < I; i++) {                                                        \
                float s = W[i] * d[0];                                                            \
                for (int o = 1; o < (NO); o++)                                                    \
                    s += W[(size_t)o * ld + i] * d[o];                                            \
                out[i] = g && !(g[i] > 0.0f) ? 0.0f : s;                                          \
            }                                                                                     \
        }                                                                                         \
    }

/* (O, group, rows per block): groups that divide O, and accumulators that leave room in the
 * vector registers for the rows of X and one row of W: at most 24 of AVX-512's 32 registers,
 * 13 of the 16 of AVX2 and SSE2. */
#define KALL(NO, NG, NR) KFWD(NO, NG, NR) KDW(NO) KDX(NO)
#if KVW == 16
KALL(1, 1, 4) KALL(2, 2, 4) KALL(3, 3, 4) KALL(4, 4, 4) KALL(5, 5, 4) KALL(6, 6, 4)
KALL(7, 7, 3) KALL(8, 4, 4) KALL(9, 3, 4) KALL(10, 5, 4) KALL(11, 11, 2) KALL(12, 6, 4)
KALL(13, 13, 1) KALL(14, 7, 3) KALL(15, 5, 4) KALL(16, 8, 3)
#else
KALL(1, 1, 4) KALL(2, 2, 4) KALL(3, 3, 3) KALL(4, 4, 2) KALL(5, 5, 2) KALL(6, 6, 2)
KALL(7, 7, 1) KALL(8, 4, 2) KALL(9, 3, 3) KALL(10, 5, 2) KALL(11, 11, 1) KALL(12, 6, 2)
KALL(13, 13, 1) KALL(14, 7, 1) KALL(15, 5, 2) KALL(16, 8, 1)
#endif

#define KROW(f, NO) KCAT(KNAME(f), NO)
#define KTABLE(f)                                                                                 \
    {NULL,          KROW(f, 1),  KROW(f, 2),  KROW(f, 3),  KROW(f, 4),  KROW(f, 5),               \
     KROW(f, 6),    KROW(f, 7),  KROW(f, 8),  KROW(f, 9),  KROW(f, 10), KROW(f, 11),              \
     KROW(f, 12),   KROW(f, 13), KROW(f, 14), KROW(f, 15), KROW(f, 16)}

/* X[r, :] = pixels[idx[r], :] / 255. Shuffled rows lie anywhere in the 47 MB training set,
 * beyond the last-level cache: the rows a few ahead are prefetched while this one converts. */
static void KNAME(gather_)(float *X, const uint8_t *pixels, size_t D, const uint32_t *idx,
                           uint32_t first, int rows)
{
    const float scale = 1.0f / 255.0f;
    enum { AHEAD = 4 };
    for (int r = 0; r < rows; r++) {
        uint32_t s = idx ? idx[r] : first + (uint32_t)r;
        if (idx && r + AHEAD < rows) {
            const char *next = (const char *)(pixels + (size_t)idx[r + AHEAD] * D);
            for (size_t o = 0; o < D; o += 64)
                __builtin_prefetch(next + o);
        }
        const uint8_t *src = pixels + (size_t)s * D;
        float *dst = X + (size_t)r * D;
        for (size_t i = 0; i < D; i++)
            dst[i] = (float)src[i] * scale;
    }
}

/* Adam, as optim.c writes it (AdamW's decoupled decay wd·p). Each parameter alone, so any split
 * of [0, n) gives the same numbers; -ffp-contract=fast makes the products-and-sums FMAs. On the
 * 2-core Zen 4: 48 µs per 100 k parameters with AVX2 or AVX-512, 102 µs in the SSE2 baseline. */
static void KNAME(adam_)(float *restrict p, const float *restrict g, float *restrict m,
                         float *restrict s, size_t n, float b1, float b2, float c1, float c2,
                         float lr, float eps, float wd)
{
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        s[i] = b2 * s[i] + (1.0f - b2) * g[i] * g[i];
        float mhat = m[i] * c1, shat = s[i] * c2;
        p[i] -= lr * (mhat / (sqrtf(shat) + eps) + wd * p[i]);
    }
}

const kernel_set KNAME(kernels_) = {
    .name = KSTR,
    .vector_floats = KVW,
    .fwd = KTABLE(fwd_),
    .dw = KTABLE(dw_),
    .dx = KTABLE(dx_),
    .gather = KNAME(gather_),
    .adam = KNAME(adam_),
#if defined(KGEMM_NT)
    .gemm_nt = KGEMM_NT,
    .gemm_tn = KGEMM_TN,
#endif
};
