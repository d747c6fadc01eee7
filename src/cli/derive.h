/* backprop derive: what the derivation (derive.c), its checks (derive_check.c) and the steps as
 * they are printed (derive_print.c) share. Everything is double precision: the command is the
 * slides' arithmetic written out for a reader, not a fast path. */
#ifndef BP_CLI_DERIVE_H
#define BP_CLI_DERIVE_H

#include "cli.h"

#include <stddef.h>

#if defined(__GNUC__)
#define DV_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DV_PRINTF(a, b)
#endif

#define DV_STEP 1e-5     /* central differences: truncation O(h²) ~ 1e-11, rounding ~ 1e-16·L/h */
#define DV_TOL_REF 1e-10 /* double against double: only the order of the sums differs */
#define DV_TOL_FD 1e-6   /* 1e4 above the differences' own error, far below a wrong formula's */
#define DV_TOL_LIB 1e-4  /* float32 (24-bit) sums of up to a few hundred terms against double */
#define DV_ALL_UP_TO 1024 /* gradients up to this size are compared entry by entry, all of them */
#define DV_PICKED 10      /* of a larger one, this many largest |entries| and as many at random */

/* One sample through the model, as the slides compute it (a, z, y, L, then the gradients), and
 * the separate reference pass the checks compare it with. Layer l maps a_l (a_0 = u) to
 * z_l = W_l·a_l + b_l and a_(l+1) = act(z_l); the last z is v. */
typedef struct {
    const bp_model *m;
    int L, C, label;
    bp_act act;
    double *W[BP_MAX_LAYERS], *b[BP_MAX_LAYERS]; /* the parameters, in double */
    double *a[BP_MAX_LAYERS];  /* a[0] = u; a[l] = act(z[l−1]), the input of layer l */
    double *z[BP_MAX_LAYERS];  /* z[l] = W_l·a_l + b_l; z[L−1] = v */
    double *y, *dy, *J, loss;  /* softmax(v), dL/dy, the Jacobian (C×C), L */
    double *dz[BP_MAX_LAYERS]; /* dL/dz_l; dz[L−1] = dL/dv = Jᵀ·dL/dy; dL/db_l is dz[l] */
    double *da[BP_MAX_LAYERS]; /* dL/da_l = W_lᵀ·dL/dz_l; da[0] = dL/du */
    double *dW[BP_MAX_LAYERS]; /* dL/dW_l = dL/dz_l·a_lᵀ */
    /* the slides' names: W, b, v, u for softmax regression; W0, b0, z0, a1, … for an MLP */
    char Wn[BP_MAX_LAYERS][16], bn[BP_MAX_LAYERS][16], zn[BP_MAX_LAYERS][16], an[BP_MAX_LAYERS][16];
    /* the reference pass (dv_ref_loss) keeps its own z, a and y */
    double *rz[BP_MAX_LAYERS], *ra[BP_MAX_LAYERS], *ry;
    unsigned char *sign, *sign_plus; /* ReLU: [z > 0] of every hidden z, last pass and at +h */
    size_t nsign;
    size_t idx[DV_ALL_UP_TO]; /* the entries a check compares */
    bp_rng rng;               /* draws the random entries */
    double *mem;
} dv_net;

/* The verdicts so far: every check line counts once. */
typedef struct {
    int total, failed;
} dv_tally;

/* ---- derive_check.c: the reference and the checks ---- */

/* The reference loss from layer l on, starting at in (z_l if is_z, else a_l): its own loops,
 * writing its z, a and y into rz, ra, ry. */
double dv_ref_loss(dv_net *n, int l, const double *in, int is_z);
/* g (the derivation's gradient of L with respect to p) against central differences of the
 * reference loss, p being a parameter (level 0, in = u) or the reference's input at `level`. */
void dv_check_fd(dv_net *n, dv_tally *t, const char *what, double *p, const double *g,
                 size_t len, int level, const double *in, int is_z);
void dv_check_dy(dv_net *n, dv_tally *t); /* dL/dy against differences of L(y) */
void dv_check_J(dv_net *n, dv_tally *t);  /* J against differences of softmax(v) */
/* The library's float32 pass (bp_forward, bp_grad with impl blas) against the derivation.
 * Returns 0, or 1 (message printed) when the library call itself failed. */
int dv_check_library(dv_net *n, bp_model *m, const float *X, dv_tally *t);

/* ---- derive_print.c: the steps as printed, and their formatting ---- */

/* The steps of the slides, each quantity printed and checked in their order. */
void dv_step_forward(dv_net *n, dv_tally *t, unsigned rows, unsigned cols);
void dv_step_softmax(dv_net *n, dv_tally *t);
void dv_step_layers(dv_net *n, dv_tally *t, unsigned rows, unsigned cols);
void dv_step_input(dv_net *n, unsigned rows, unsigned cols, int fresh);

/* The error of a value a against its reference r: |a − r| / max(1, |a|, |r|), absolute below
 * 1 and relative above, so neither tiny entries nor large ones (dL/dy = −1/y_c) decide alone.
 * dv_err is the largest over n entries. A NaN or infinity makes it infinite. */
double dv_err1(double a, double r);
double dv_err(const double *a, const double *r, size_t n);
double dv_err_float(const float *a, const double *r, size_t n);
/* max(worst, e), where a NaN e gives infinity (fmax would drop the NaN). */
double dv_worse(double worst, double e);
/* One check line, "  check  WHAT  err E  tol T  ok" (or FAIL, also for a NaN error): the test
 * (tests/derive.sh) parses exactly these fields. */
void dv_check(dv_tally *t, double err, double tol, const char *fmt, ...) DV_PRINTF(4, 5);
/* The k largest |x_i|, largest first (ties: the lower index first), into idx[k]; returns how
 * many there are (fewer than k only when n < k). */
int dv_largest(const double *x, size_t n, size_t *idx, int k);

#endif
