/* Run-time choice of the kernel set: the widest the CPU supports (__builtin_cpu_supports), or
 * the one bp_kernel_select names. No -march flag is needed: the default build runs anywhere. */
#include "internal.h"
#include "kernels.h"

#include <stdatomic.h>
#include <string.h>

static _Atomic(const kernel_set *) chosen;

static const kernel_set *best(void)
{
#if defined(BP_HAVE_X86_KERNELS)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return &kernels_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return &kernels_avx2;
#endif
    return &kernels_generic;
}

const kernel_set *kernels(void)
{
    const kernel_set *k = atomic_load_explicit(&chosen, memory_order_acquire);
    if (!k) {
        k = best();
        atomic_store_explicit(&chosen, k, memory_order_release);
    }
    return k;
}

const char *bp_kernel_name(void) { return kernels()->name; }

int bp_kernel_select(const char *name, bp_error *err)
{
    const kernel_set *k = NULL;
    if (!name || !strcmp(name, "auto"))
        k = best();
    else if (!strcmp(name, "generic"))
        k = &kernels_generic;
#if defined(BP_HAVE_X86_KERNELS)
    else if (!strcmp(name, "avx2") || !strcmp(name, "avx512")) {
        __builtin_cpu_init();
        int ok = name[3] == '2' ? __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                                : __builtin_cpu_supports("avx512f");
        if (!ok)
            return bp_fail(err, BP_ERR_ARG, "this CPU has no %s", name);
        k = name[3] == '2' ? &kernels_avx2 : &kernels_avx512;
    }
#endif
    if (!k)
        return bp_fail(err, BP_ERR_ARG, "unknown kernel set '%s' (auto, generic%s)", name,
#if defined(BP_HAVE_X86_KERNELS)
                       ", avx2, avx512"
#else
                       ""
#endif
        );
    atomic_store_explicit(&chosen, k, memory_order_release);
    return BP_OK;
}
