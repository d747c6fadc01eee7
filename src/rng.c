/* Seeded PRNG: xoshiro256** (Blackman & Vigna, 2018), its 256-bit state filled from the 64-bit
 * seed by splitmix64. The state lives in the caller's bp_rng: there is no global generator, so a
 * seed fully determines a run. */
#include "internal.h"

#include <math.h>

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void bp_rng_seed(bp_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

uint64_t bp_rng_next(bp_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t bp_rng_below(bp_rng *rng, uint32_t n)
{
    /* Rejection keeps every residue equally likely: drop draws from the incomplete last block. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = bp_rng_next(rng);
    while (x >= limit);
    return (uint32_t)(x % n);
}

double bp_rng_uniform(bp_rng *rng) { return (double)(bp_rng_next(rng) >> 11) * 0x1.0p-53; }

double bp_rng_normal(bp_rng *rng)
{
    /* Box–Muller: u1 in (0, 1] keeps log finite; one of the pair is used, so a draw always costs
     * two uniforms and the sequence does not depend on hidden cached state. */
    double u1 = 1.0 - bp_rng_uniform(rng);
    double u2 = bp_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}
