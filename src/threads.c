/* The thread policy (backprop.h, "threads"): how many OpenBLAS threads a bp_work asks for. The
 * count is resolved once, where a work is made, never read from the environment mid-run. */
#include "internal.h"

#include <stdlib.h>
#include <unistd.h>

int bp_threads_resolve(int requested, int *capped)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    long n = requested;
    if (n <= 0) {
        const char *env = getenv("OPENBLAS_NUM_THREADS");
        char *end;
        n = env ? strtol(env, &end, 10) : 0;
        if (!env || end == env || *end || n < 1)
            n = cores;
    }
    if (capped)
        *capped = n > cores;
    return (int)(n > cores ? cores : n);
}
