/* The seeded generator (src/rng.c) and shuffling:
 *   - same seed → same sequence; different seeds → different sequences; no hidden state;
 *   - the outputs are xoshiro256** seeded through splitmix64, as documented: checked against
 *     an implementation written here from the published algorithms (Vigna; Blackman & Vigna
 *     2018), whose splitmix64 is itself checked against its widely published first outputs;
 *   - bp_rng_below stays below n and is uniform (chi-square, generous bound), also for n that
 *     do not divide 2^64; bp_rng_uniform is in [0,1); bp_rng_normal has mean 0, variance 1;
 *   - bp_shuffle yields a permutation, depends only on the seed, and picks each of the 6
 *     orders of 3 elements equally often. */
#include "check.h"
#include "backprop.h"

#include <math.h>
#include <stdint.h>

/* ---- the reference, from the published algorithms ---- */
static uint64_t ref_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t ref_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t ref_xoshiro(uint64_t s[4])
{
    const uint64_t result = ref_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ref_rotl(s[3], 45);
    return result;
}

static void reference_sequence(void)
{
    /* splitmix64 from state 0: the first outputs published with the algorithm's reference
     * code and reproduced by every port (e.g. Java's SplittableRandom test vectors). */
    uint64_t x = 0;
    CHECK(ref_splitmix64(&x) == 0xe220a8397b1dcdafULL);
    CHECK(ref_splitmix64(&x) == 0x6e789e6aa1b965f4ULL);
    CHECK(ref_splitmix64(&x) == 0x06c45d188009454fULL);

    const uint64_t seeds[4] = {0, 1, 42, 0xdeadbeefcafef00dULL};
    for (int k = 0; k < 4; k++) {
        uint64_t sm = seeds[k], s[4];
        for (int i = 0; i < 4; i++)
            s[i] = ref_splitmix64(&sm);
        bp_rng rng;
        bp_rng_seed(&rng, seeds[k]);
        int same = 1;
        for (int i = 0; i < 1000; i++)
            same &= bp_rng_next(&rng) == ref_xoshiro(s);
        CHECKF(same, "seed %llu: bp_rng_next is not xoshiro256** seeded by splitmix64",
               (unsigned long long)seeds[k]);
    }
}

static void seeds(void)
{
    enum { K = 1000 };
    bp_rng a, b, c;
    bp_rng_seed(&a, 123);
    bp_rng_seed(&b, 123);
    bp_rng_seed(&c, 124);
    int same = 1, differ = 0, zeros = 0;
    for (int i = 0; i < K; i++) {
        uint64_t x = bp_rng_next(&a), y = bp_rng_next(&b), z = bp_rng_next(&c);
        same &= x == y;
        differ += x != z;
        zeros += x == 0;
    }
    CHECK(same);
    CHECKF(differ == K, "seeds 123 and 124 agree on %d of %d outputs", K - differ, K);
    CHECK(zeros == 0);
    /* re-seeding restarts the sequence: no state outside the struct */
    bp_rng_seed(&a, 123);
    bp_rng_seed(&b, 999);
    bp_rng_seed(&b, 123);
    CHECK(bp_rng_next(&a) == bp_rng_next(&b));
    /* seed 0 is a valid seed (splitmix64 never yields the all-zero state) */
    bp_rng_seed(&a, 0);
    CHECK(a.s[0] | a.s[1] | a.s[2] | a.s[3]);
    CHECK(bp_rng_next(&a) != bp_rng_next(&a));
}

/* Pearson's chi-square of counts against equal expectation. */
static double chi2(const long *counts, int k, long total)
{
    double e = (double)total / k, x = 0.0;
    for (int i = 0; i < k; i++)
        x += (counts[i] - e) * (counts[i] - e) / e;
    return x;
}

/* Bounds: for k − 1 degrees of freedom the chi-square has mean k − 1 and standard deviation
 * √(2(k − 1)); mean + 8 sd is exceeded with probability well below 1e-9, so the test does not
 * flake, yet a bias of a few percent in one bucket (or a stuck bit) blows through it at these
 * sample sizes. */
static double chi2_bound(int k) { return (k - 1) + 8.0 * sqrt(2.0 * (k - 1)); }

static void below(void)
{
    bp_rng rng;
    bp_rng_seed(&rng, 5);
    const uint32_t ns[] = {1, 2, 3, 7, 10, 1000, 2147483649u, 3000000000u, UINT32_MAX};
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
        int ok = 1;
        for (int i = 0; i < 20000; i++)
            ok &= bp_rng_below(&rng, ns[k]) < ns[k];
        CHECKF(ok, "bp_rng_below(%u) left its range", ns[k]);
    }
    /* uniformity over small n */
    const int small[] = {2, 7, 10, 97};
    for (size_t k = 0; k < sizeof small / sizeof *small; k++) {
        long counts[97] = {0};
        const long draws = 2000L * small[k];
        for (long i = 0; i < draws; i++)
            counts[bp_rng_below(&rng, (uint32_t)small[k])]++;
        char label[64];
        snprintf(label, sizeof label, "chi2 bp_rng_below(%d), %ld draws", small[k], draws);
        CHECK_BOUND(label, chi2(counts, small[k], draws), chi2_bound(small[k]));
    }
    /* and over a large n that does not divide 2^32: 10 equal ranges of [0, 3e9) */
    long counts[10] = {0};
    const uint32_t big = 3000000000u;
    for (long i = 0; i < 100000; i++)
        counts[bp_rng_below(&rng, big) / (big / 10)]++;
    CHECK_BOUND("chi2 bp_rng_below(3e9) in 10 ranges", chi2(counts, 10, 100000),
                  chi2_bound(10));
}

static void uniform_and_normal(void)
{
    bp_rng rng;
    bp_rng_seed(&rng, 6);
    enum { K = 200000 };
    double sum = 0.0, lo = 1.0, hi = 0.0;
    long counts[20] = {0};
    for (int i = 0; i < K; i++) {
        double u = bp_rng_uniform(&rng);
        sum += u;
        lo = fmin(lo, u);
        hi = fmax(hi, u);
        if (u >= 0.0 && u < 1.0)
            counts[(int)(u * 20)]++;
    }
    CHECK(lo >= 0.0 && hi < 1.0);
    /* the mean of K uniforms has sd 0.289/√K = 6.5e-4; 5e-3 is ~8 sd */
    CHECK_MAXDIFF("bp_rng_uniform |mean - 0.5|", fabs(sum / K - 0.5), 5e-3);
    CHECK_BOUND("chi2 bp_rng_uniform in 20 bins", chi2(counts, 20, K), chi2_bound(20));

    double s1 = 0.0, s2 = 0.0;
    int finite = 1;
    for (int i = 0; i < K; i++) {
        double z = bp_rng_normal(&rng);
        finite &= isfinite(z);
        s1 += z;
        s2 += z * z;
    }
    double mean = s1 / K, var = s2 / K - mean * mean;
    CHECK(finite);
    /* sd of the mean 1/√K = 2.2e-3, of the variance √(2/K) = 3.2e-3: bounds at ~8 sd */
    CHECK_MAXDIFF("bp_rng_normal |mean|", fabs(mean), 0.02);
    CHECK_MAXDIFF("bp_rng_normal |variance - 1|", fabs(var - 1.0), 0.03);
}

static void shuffle(void)
{
    enum { N = 1000 };
    static uint32_t a[N], b[N], c[N];
    int seen[N] = {0};
    for (uint32_t i = 0; i < N; i++)
        a[i] = b[i] = c[i] = i;
    bp_rng ra, rb, rc;
    bp_rng_seed(&ra, 77);
    bp_rng_seed(&rb, 77);
    bp_rng_seed(&rc, 78);
    bp_shuffle(a, N, &ra);
    bp_shuffle(b, N, &rb);
    bp_shuffle(c, N, &rc);
    int perm = 1, fixed = 0, same = 1, other = 0;
    for (int i = 0; i < N; i++) {
        perm &= a[i] < N && !seen[a[i]];
        if (a[i] < N)
            seen[a[i]] = 1;
        fixed += a[i] == (uint32_t)i;
        same &= a[i] == b[i];
        other += a[i] != c[i];
    }
    CHECKF(perm, "bp_shuffle did not produce a permutation of 0..%d", N - 1);
    CHECK(same);
    CHECK(other > N / 2);
    /* a uniform permutation has ~1 fixed point on average (Poisson(1)) */
    CHECKF(fixed < 10, "%d of %d elements did not move", fixed, N);

    /* n = 0 and n = 1 are no-ops */
    uint32_t one = 5;
    bp_shuffle(&one, 1, &ra);
    bp_shuffle(&one, 0, &ra);
    CHECK(one == 5);

    /* all 6 orders of 3 elements, equally often */
    long counts[6] = {0};
    const long draws = 60000;
    for (long k = 0; k < draws; k++) {
        uint32_t p[3] = {0, 1, 2};
        bp_shuffle(p, 3, &ra);
        /* index of the permutation: first element · 2 + (second > third) */
        counts[p[0] * 2 + (p[1] > p[2])]++;
    }
    CHECK_BOUND("chi2 bp_shuffle over the 6 orders of 3", chi2(counts, 6, draws),
                  chi2_bound(6));
}

int main(void)
{
    printf("random numbers and shuffling\n");
    reference_sequence();
    seeds();
    below();
    uniform_and_normal();
    shuffle();
    return check_exit("test_rng");
}
