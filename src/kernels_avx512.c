/* The kernels of kernels_body.h for AVX-512F CPUs (Zen 4, Skylake-SP on): this file alone is
 * built with -mavx512f -mfma (meson.build), and kernels.c uses it only where the CPU has them. */
#define KVW 16
#define KSUFFIX avx512
#define KSTR "avx512"
#include "kernels_gemm512.h"
#include "kernels_body.h"
