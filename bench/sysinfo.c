/* What the numbers were measured on: CPU and flags (/proc/cpuinfo), cores, memory, kernel, the
 * OpenBLAS build and the kernel family it chose (OPENBLAS_CORETYPE overrides that choice), the
 * compiler and build options (from meson, bench/meson.build) and the commit. Anything unreadable
 * is "unknown" or null, never fatal. */
#include "bench.h"
#include "bench_commit.h"
#include "bench_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

/* The value after "key<blanks>:" on a /proc line, without its newline; NULL if not that key. */
static const char *field(char *line, const char *key)
{
    size_t k = strlen(key);
    if (strncmp(line, key, k))
        return NULL;
    char *p = line + k + strspn(line + k, " \t");
    if (*p != ':')
        return NULL;
    p += 1 + strspn(p + 1, " ");
    p[strcspn(p, "\n")] = 0;
    return p;
}

static int has_flag(const char *flags, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = flags; (p = strstr(p, name)); p += n)
        if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
            return 1;
    return 0;
}

json_t *bench_loadavg(void)
{
    double l[3];
    FILE *f = fopen("/proc/loadavg", "r");
    int ok = f && fscanf(f, "%lf %lf %lf", &l[0], &l[1], &l[2]) == 3;
    if (f)
        fclose(f);
    return ok ? json_pack("[f, f, f]", l[0], l[1], l[2]) : json_null();
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v ? v : "(unset)";
}

json_t *bench_sysinfo(void)
{
    char model[256] = "unknown", line[8192], kernel[400] = "unknown";
    int avx2 = 0, fma = 0, avx512f = 0, got_flags = 0;
    double mem_kib = 0.0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        const char *v;
        if (!strcmp(model, "unknown") && (v = field(line, "model name")))
            snprintf(model, sizeof model, "%s", v);
        else if (!got_flags && (v = field(line, "flags"))) {
            avx2 = has_flag(v, "avx2"), fma = has_flag(v, "fma"), avx512f = has_flag(v, "avx512f");
            got_flags = 1;
        }
    }
    if (f)
        fclose(f);
    if ((f = fopen("/proc/meminfo", "r"))) {
        const char *v;
        while (fgets(line, sizeof line, f))
            if ((v = field(line, "MemTotal")))
                mem_kib = atof(v);
        fclose(f);
    }
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(kernel, sizeof kernel, "%s %s %s", u.sysname, u.release, u.machine);
    char blas[512];
    snprintf(blas, sizeof blas, "%s", bp_blas_config());
    blas[strcspn(blas, "\n")] = 0;
    return json_pack("{s:{s:s, s:b, s:b, s:b, s:b, s:i, s:f, s:s}, "
                     "s:{s:s, s:s, s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s}, s:s, s:s}",
                     "machine", "cpu_model", model, "flags_known", got_flags, "avx2", avx2,
                     "fma", fma, "avx512f", avx512f, "cores", (int)sysconf(_SC_NPROCESSORS_ONLN),
                     "mem_gib", mem_kib / (1024.0 * 1024.0), "kernel", kernel,
                     "blas", "config", blas, "corename", bp_blas_corename(),
                     "OPENBLAS_CORETYPE", env("OPENBLAS_CORETYPE"),
                     "OPENBLAS_NUM_THREADS", env("OPENBLAS_NUM_THREADS"),
                     "build", "compiler", BENCH_CC, "buildtype", BENCH_BUILDTYPE,
                     "optimization", BENCH_OPTIMIZATION,
                     "c_args", BENCH_C_ARGS[0] ? BENCH_C_ARGS : "(none)",
                     "sanitize", BENCH_SANITIZE, "commit", BENCH_COMMIT,
                     "kernel_set", bp_kernel_name());
}
