/* The kernels of kernels_body.h for any CPU: 4-float vectors in the compiler's baseline
 * instruction set (SSE2 on x86-64). */
#define KVW 4
#define KSUFFIX generic
#define KSTR "generic"
#include "kernels_body.h"
