/* The kernels of kernels_body.h for AVX2 + FMA CPUs (Zen 3, Haswell on): this file alone is
 * built with -mavx2 -mfma (meson.build), and kernels.c uses it only where the CPU has both. */
#define KVW 8
#define KSUFFIX avx2
#define KSTR "avx2"
#include "kernels_body.h"
