/* Inverted dropout (docs/derivation.md §12): in training each value is kept with probability
 * 1 − p and scaled by 1/(1 − p), or set to 0, so its expectation is unchanged and the network
 * needs no rescaling at test time, where the layer is the identity:
 *   y = x ⊙ mask,  mask_i ∈ {0, 1/(1 − p)},  dL/dx = dL/dy ⊙ mask.
 * The masks come from a stream derived from the run's seed and the step, so a run is
 * deterministic for its seed and a resumed run draws the masks the uninterrupted one did. */
#include "internal.h"

void dropout_stream(bp_rng *rng, uint64_t seed, long step)
{
    /* splitmix64 inside bp_rng_seed spreads neighbouring steps apart */
    bp_rng_seed(rng, (seed ^ BP_DROPOUT_STREAM) + 0x9e3779b97f4a7c15ULL * (uint64_t)step);
}

void dropout_mask(float *mask, size_t n, float p, bp_rng *rng)
{
    float keep = 1.0f / (1.0f - p);
    /* 24-bit uniforms, two from each 64-bit draw: u < p drops the value */
    uint32_t thresh = (uint32_t)((double)p * (double)(1u << 24));
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        uint64_t r = bp_rng_next(rng);
        mask[i] = (uint32_t)(r >> 40) < thresh ? 0.0f : keep;
        mask[i + 1] = (uint32_t)((r >> 8) & 0xffffff) < thresh ? 0.0f : keep;
    }
    if (i < n)
        mask[i] = (uint32_t)(bp_rng_next(rng) >> 40) < thresh ? 0.0f : keep;
}

void dropout_apply(float *Y, const float *X, const float *mask, size_t n)
{
    for (size_t i = 0; i < n; i++)
        Y[i] = X[i] * mask[i];
}
