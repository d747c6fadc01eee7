/* Small random models and batches for the unit tests, all from explicit seeds. */
#ifndef BP_TESTS_FIXTURES_H
#define BP_TESTS_FIXTURES_H

#include "backprop.h"

#include <stdio.h>

/* A model with the library's default initialisation and random (not zero) biases, so bias
 * gradients and activations are exercised away from their values at 0. NULL on failure. */
static inline bp_model *fx_model(const int *sizes, int nlayers, bp_act act, uint64_t seed)
{
    bp_model *m = NULL;
    bp_error err = {0};
    if (bp_model_create(&m, sizes, nlayers, act, &err)) {
        fprintf(stderr, "bp_model_create: %s\n", err.msg);
        return NULL;
    }
    if (bp_model_init(m, BP_INIT_AUTO, seed, &err)) {
        fprintf(stderr, "bp_model_init: %s\n", err.msg);
        bp_model_free(m);
        return NULL;
    }
    bp_rng rng;
    bp_rng_seed(&rng, seed);
    for (int l = 0; l < nlayers; l++)
        for (int o = 0; o < sizes[l + 1]; o++)
            m->b[l][o] = (float)(0.2 * bp_rng_normal(&rng));
    return m;
}

/* X[B,I] uniform in [0,1) like scaled pixels; labels uniform below C. */
static inline void fx_batch(float *X, uint8_t *labels, int B, int I, int C, uint64_t seed)
{
    bp_rng rng;
    bp_rng_seed(&rng, seed);
    for (size_t i = 0; i < (size_t)B * I; i++)
        X[i] = (float)bp_rng_uniform(&rng);
    for (int b = 0; b < B; b++)
        labels[b] = (uint8_t)bp_rng_below(&rng, (uint32_t)C);
}

#endif
