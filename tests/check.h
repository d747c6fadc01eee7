/* Tiny check macros shared by the C tests. A failed check prints file:line and the expression
 * and is counted; the test goes on so one run shows every failure. check_exit() turns the count
 * into the exit status: 0 all passed, 1 a check failed, or no check ran at all (a test that
 * asserts nothing must not pass). Not assert(): release builds define NDEBUG.
 *
 * Skips use exit status 77, which Meson reports as SKIP, never as a pass. */
#ifndef BP_TESTS_CHECK_H
#define BP_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_SKIP 77

struct check_state {
    long checks;
    long failures;
};

static inline struct check_state *check_state(void)
{
    static struct check_state s;
    return &s;
}

static inline int check_record(int ok, const char *file, int line, const char *expr)
{
    struct check_state *s = check_state();
    s->checks++;
    if (!ok) {
        s->failures++;
        fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, expr);
    }
    return ok;
}

/* CHECK(cond): cond must hold. Evaluates to cond, so a test can stop early on a failure. */
#define CHECK(cond) check_record(!!(cond), __FILE__, __LINE__, #cond)

/* CHECKF(cond, fmt, ...): as CHECK, with a formatted explanation on failure. */
#define CHECKF(cond, ...)                                                                        \
    (check_record(!!(cond), __FILE__, __LINE__, #cond) ? 1                                      \
                                                       : (fprintf(stderr, "    "),              \
                                                          fprintf(stderr, __VA_ARGS__),          \
                                                          fputc('\n', stderr), 0))

#define CHECK_INT_EQ(a, b)                                                                       \
    do {                                                                                         \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                          \
        CHECKF(check_a_ == check_b_, "%s = %lld, %s = %lld", #a, check_a_, #b, check_b_);        \
    } while (0)

/* |a − b| ≤ tol, and neither is NaN. */
#define CHECK_NEAR(a, b, tol)                                                                    \
    do {                                                                                         \
        double check_a_ = (double)(a), check_b_ = (double)(b), check_t_ = (double)(tol);         \
        CHECKF(fabs(check_a_ - check_b_) <= check_t_, "%s = %.9g, %s = %.9g, |diff| %.3e > %.3e", \
               #a, check_a_, #b, check_b_, fabs(check_a_ - check_b_), check_t_);                 \
    } while (0)

/* needle must occur in hay. */
#define CHECK_CONTAINS(hay, needle)                                                              \
    do {                                                                                         \
        const char *check_h_ = (hay), *check_n_ = (needle);                                      \
        CHECKF(check_h_ && strstr(check_h_, check_n_), "'%s' does not contain '%s'",             \
               check_h_ ? check_h_ : "(null)", check_n_);                                        \
    } while (0)

static inline void check_bound(const char *file, int line, const char *what, const char *label,
                               double value, double bound)
{
    int ok = value <= bound; /* NaN fails */
    printf("  %-44s %s %.3e  tol %.1e  %s\n", label, what, value, bound, ok ? "ok" : "FAIL");
    if (!check_record(ok, file, line, label))
        fprintf(stderr, "    %s: %s %.3e exceeds %.1e\n", label, what, value, bound);
}

/* A measured error against its tolerance: always printed, a failure when err > tol (or NaN). */
#define CHECK_MAXDIFF(label, err, tol)                                                           \
    check_bound(__FILE__, __LINE__, "max diff", (label), (double)(err), (double)(tol))

/* A measured statistic (e.g. a chi-square) against its bound, printed the same way. */
#define CHECK_BOUND(label, value, bound)                                                         \
    check_bound(__FILE__, __LINE__, "value", (label), (double)(value), (double)(bound))

/* Ends main: prints a summary and returns the exit status. */
static inline int check_exit(const char *name)
{
    struct check_state *s = check_state();
    if (s->checks == 0) {
        fprintf(stderr, "%s: no checks ran\n", name);
        return 1;
    }
    printf("%s: %ld checks, %ld failed\n", name, s->checks, s->failures);
    fflush(stdout);
    return s->failures ? 1 : 0;
}

/* Max |a[i] − b[i]| over n floats; NaN anywhere makes it infinite so it cannot pass. */
static inline double check_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m))
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static inline double check_max_abs(const float *a, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i]) > m)
            m = fabs((double)a[i]);
    return m;
}

#endif
