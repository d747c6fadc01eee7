/* Strict option parsing: a value is a whole number or it is an error, never a silent 0. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int opt_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno) {
        fprintf(stderr, "backprop %s: %s: expected an integer, got '%s'\n", cmd, opt, s);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "backprop %s: %s: %ld is out of range (%ld to %ld)\n", cmd, opt, v, lo,
                hi);
        return -1;
    }
    *out = v;
    return 0;
}

int opt_u64(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno || s[strspn(s, " \t\n\v\f\r")] == '-') {
        fprintf(stderr, "backprop %s: %s: expected a non-negative integer, got '%s'\n", cmd, opt,
                s);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

int opt_float(const char *cmd, const char *opt, const char *s, double lo_excl, double hi,
              float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v)) {
        fprintf(stderr, "backprop %s: %s: expected a finite number, got '%s'\n", cmd, opt, s);
        return -1;
    }
    if (!(v > lo_excl && v <= hi)) {
        fprintf(stderr, "backprop %s: %s: %g is out of range (above %g, at most %g)\n", cmd, opt,
                v, lo_excl, hi);
        return -1;
    }
    if (!((double)(float)v > lo_excl)) { /* e.g. 1e-50, which is 0 as a float */
        fprintf(stderr, "backprop %s: %s: %g is too small for single precision\n", cmd, opt, v);
        return -1;
    }
    *out = (float)v;
    return 0;
}

int opt_choice(const char *cmd, const char *opt, const char *s, const char *const *names, int n,
               int *out)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    fprintf(stderr, "backprop %s: %s: unknown value '%s' (one of:", cmd, opt, s);
    for (int i = 0; i < n; i++)
        fprintf(stderr, " %s", names[i]);
    fprintf(stderr, ")\n");
    return -1;
}

int opt_widths(const char *cmd, const char *opt, const char *s, int *widths, int max, int *n)
{
    *n = 0;
    if (!*s || strcmp(s, "none") == 0)
        return 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > 65536 || (*end && *end != ',')) {
            fprintf(stderr,
                    "backprop %s: %s: expected widths like 256 or 512,256 (each 1 to 65536), "
                    "got '%s'\n",
                    cmd, opt, s);
            return -1;
        }
        if (*n == max) {
            fprintf(stderr, "backprop %s: %s: at most %d hidden layers\n", cmd, opt, max);
            return -1;
        }
        widths[(*n)++] = (int)v;
        if (!*end)
            return 0;
        p = end + 1;
    }
}

int cli_threads(const char *cmd, long requested)
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
    if (n > cores) {
        fprintf(stderr, "backprop %s: warning: %ld threads requested, %ld cores online; using %ld\n",
                cmd, n, cores, cores);
        n = cores;
    }
    return (int)n;
}
