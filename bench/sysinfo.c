/* What the numbers were measured on: CPU (from /proc/cpuinfo), cores, memory, kernel, the
 * OpenBLAS build and the kernel family it picked (and OPENBLAS_CORETYPE, which overrides that
 * choice), the compiler and flags and the commit (from meson, see bench/meson.build). Anything
 * unreadable is reported as unknown, never fatal. */
#include "bench.h"
#include "bench_commit.h"
#include "bench_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
}

/* The value after "key<spaces>:" on a /proc line, or NULL. */
static const char *field(const char *line, const char *key)
{
    size_t k = strlen(key);
    if (strncmp(line, key, k))
        return NULL;
    const char *p = line + k;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

static int has_flag(const char *flags, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = flags; (p = strstr(p, name)); p += n)
        if ((p == flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == 0))
            return 1;
    return 0;
}

static void read_cpuinfo(bench_sysinfo *s)
{
    snprintf(s->cpu_model, sizeof s->cpu_model, "unknown");
    s->cpu_family = s->cpu_model_id = -1;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[8192];
    int got_model = 0, got_flags = 0;
    while (fgets(line, sizeof line, f)) {
        const char *v;
        if (!got_model && (v = field(line, "model name"))) {
            snprintf(s->cpu_model, sizeof s->cpu_model, "%s", v);
            trim(s->cpu_model);
            got_model = 1;
        } else if (s->cpu_family < 0 && (v = field(line, "cpu family"))) {
            s->cpu_family = atoi(v);
        } else if (s->cpu_model_id < 0 && (v = field(line, "model"))) {
            s->cpu_model_id = atoi(v);
        } else if (s->cpu_mhz == 0 && (v = field(line, "cpu MHz"))) {
            s->cpu_mhz = atof(v);
        } else if (!got_flags && (v = field(line, "flags"))) {
            s->avx2 = has_flag(v, "avx2");
            s->fma = has_flag(v, "fma");
            s->avx512f = has_flag(v, "avx512f");
            got_flags = 1;
        }
    }
    fclose(f);
}

static double mem_gib(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0.0;
    char line[256];
    double kib = 0.0;
    while (fgets(line, sizeof line, f)) {
        const char *v = field(line, "MemTotal");
        if (v)
            kib = atof(v);
    }
    fclose(f);
    return kib / (1024.0 * 1024.0);
}

void bench_loadavg(double load[3])
{
    load[0] = load[1] = load[2] = -1.0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f)
        return;
    if (fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
        load[0] = load[1] = load[2] = -1.0;
    fclose(f);
}

static void env_or_unset(char *dst, size_t len, const char *name)
{
    const char *v = getenv(name);
    snprintf(dst, len, "%s", v ? v : "(unset)");
}

void bench_sysinfo_read(bench_sysinfo *s)
{
    memset(s, 0, sizeof *s);
    read_cpuinfo(s);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    s->cores = n > 0 ? (int)n : -1;
    s->mem_gib = mem_gib();
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(s->kernel, sizeof s->kernel, "%s %s %s", u.sysname, u.release, u.machine);
    else
        snprintf(s->kernel, sizeof s->kernel, "unknown");
    snprintf(s->blas_config, sizeof s->blas_config, "%s", bp_blas_config());
    trim(s->blas_config);
    snprintf(s->blas_core, sizeof s->blas_core, "%s", bp_blas_corename());
    env_or_unset(s->coretype_env, sizeof s->coretype_env, "OPENBLAS_CORETYPE");
    env_or_unset(s->blas_threads_env, sizeof s->blas_threads_env, "OPENBLAS_NUM_THREADS");
    snprintf(s->cc, sizeof s->cc, "%s %s", BENCH_CC_ID, BENCH_CC_VERSION);
    snprintf(s->buildtype, sizeof s->buildtype, "%s", BENCH_BUILDTYPE);
    snprintf(s->optimization, sizeof s->optimization, "%s", BENCH_OPTIMIZATION);
    snprintf(s->c_args, sizeof s->c_args, "%s", BENCH_C_ARGS[0] ? BENCH_C_ARGS : "(none)");
    snprintf(s->sanitize, sizeof s->sanitize, "%s", BENCH_SANITIZE);
    snprintf(s->commit, sizeof s->commit, "%s", BENCH_COMMIT);
    time_t t = time(NULL);
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(s->date_utc, sizeof s->date_utc, "%Y-%m-%dT%H:%M:%SZ", &tm);
    bench_loadavg(s->load_before);
}
