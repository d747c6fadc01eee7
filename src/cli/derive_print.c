/* backprop derive: the steps as a reader follows them next to the slides, each quantity
 * printed with the formula that made it and then checked, and the pictures, tables and check
 * lines they are printed with. Nothing here computes a step of the derivation (derive.c). */
#include "derive.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

double dv_worse(double worst, double e)
{
    if (!(e <= worst))
        return isnan(e) ? INFINITY : e;
    return worst;
}

double dv_err1(double a, double r)
{
    if (!isfinite(a) || !isfinite(r))
        return INFINITY;
    return fabs(a - r) / fmax(1.0, fmax(fabs(a), fabs(r)));
}

double dv_err(const double *a, const double *r, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++)
        worst = dv_worse(worst, dv_err1(a[i], r[i]));
    return worst;
}

double dv_err_float(const float *a, const double *r, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++)
        worst = dv_worse(worst, dv_err1(a[i], r[i]));
    return worst;
}

void dv_check(dv_tally *t, double err, double tol, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int ok = err <= tol; /* false for NaN */
    printf("  check  %-60s err %.1e  tol %.0e  %s\n", what, err, tol, ok ? "ok" : "FAIL");
    t->total++;
    t->failed += !ok;
}

static void title(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    putchar('\n');
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

static void frame(unsigned cols)
{
    printf("    +");
    for (unsigned k = 0; k < 2 * cols; k++)
        putchar('-');
    printf("+\n");
}

static void picture(const double *x, unsigned rows, unsigned cols)
{
    static const char shades[] = " .:-=+*#%@"; /* 0 … 1 in ten steps */
    printf("    shades \"%s\" stand for 0 to 1\n", shades);
    frame(cols);
    for (unsigned r = 0; r < rows; r++) {
        printf("    |");
        for (unsigned k = 0; k < cols; k++) {
            double v = x[(size_t)r * cols + k];
            int s = !(v > 0) ? 0 : v >= 1 ? 9 : (int)lround(v * 9);
            printf("%c%c", shades[s], shades[s]);
        }
        printf("|\n");
    }
    frame(cols);
}

static void signed_map(const double *x, unsigned rows, unsigned cols)
{
    double big = 0.0;
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        big = fmax(big, fabs(x[i]));
    printf("    each cell: the sign and |value| in ninths of the largest, %.3e; blank: ~0\n",
           big);
    frame(cols);
    for (unsigned r = 0; r < rows; r++) {
        printf("    |");
        for (unsigned k = 0; k < cols; k++) {
            double v = x[(size_t)r * cols + k];
            double r = big > 0 ? 9 * fabs(v) / big : 0;
            int s = !(r >= 0.5) ? 0 : r >= 9 ? 9 : (int)lround(r); /* a NaN stays blank */
            if (s == 0)
                printf("  ");
            else
                printf("%c%d", v < 0 ? '-' : '+', s);
        }
        printf("|\n");
    }
    frame(cols);
}

int dv_largest(const double *x, size_t n, size_t *idx, int k)
{
    int got = 0;
    for (size_t i = 0; i < n; i++) {
        double v = fabs(x[i]);
        if (got == k && !(v > fabs(x[idx[k - 1]])))
            continue; /* not among the k largest so far */
        int p = got < k ? got++ : k - 1; /* a free slot, or the smallest one's */
        while (p > 0 && v > fabs(x[idx[p - 1]])) {
            idx[p] = idx[p - 1];
            p--;
        }
        idx[p] = i;
    }
    return got;
}

static void summary(const char *name, const double *x, size_t n)
{
    size_t nz = 0, lo = 0, hi = 0, idx[4];
    for (size_t i = 0; i < n; i++) {
        nz += x[i] != 0;
        lo = x[i] < x[lo] ? i : lo;
        hi = x[i] > x[hi] ? i : hi;
    }
    printf("    %s: %zu entries, %zu nonzero, min % .3e at [%zu], max % .3e at [%zu]\n", name, n,
           nz, x[lo], lo, x[hi], hi);
    int k = dv_largest(x, n, idx, 4);
    printf("    largest |entries|:");
    for (int j = 0; j < k; j++)
        printf("  [%zu] % .3e", idx[j], x[idx[j]]);
    putchar('\n');
}

static void values(const char *name, const double *x, size_t n)
{
    if (n > 40) {
        summary(name, x, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        printf("%s%2zu: % .3e%s", i % 5 ? "  " : "    ", i, x[i] == 0 ? 0.0 : x[i], /* no -0 */
               i % 5 == 4 || i + 1 == n ? "\n" : "");
}

static void grid(const char *name, const double *J, int C)
{
    printf("  %-2s", name);
    for (int j = 0; j < C; j++)
        printf(" %9d", j);
    putchar('\n');
    for (int i = 0; i < C; i++) {
        printf("  %2d", i);
        for (int j = 0; j < C; j++)
            printf(" %9.2e", J[(size_t)i * C + j]);
        putchar('\n');
    }
}

static void top_outer(const char *name, const double *dW, const double *g, const double *a,
                      int O, int I, int k, const char *gname, const char *aname)
{
    size_t idx[8];
    int got = dv_largest(dW, (size_t)O * I, idx, k > 8 ? 8 : k);
    for (int j = 0; j < got; j++) {
        size_t o = idx[j] / (size_t)I, i = idx[j] % (size_t)I;
        printf("    %s[%zu][%zu] = % .4e = %s_%zu (% .4e) * %s_%zu (%.4g)\n", name, o, i,
               dW[idx[j]], gname, o, g[o], aname, i, a[i]);
    }
}

/* ---- the steps ---- */

void dv_step_forward(dv_net *n, dv_tally *t, unsigned rows, unsigned cols)
{
    const int *s = n->m->sizes;
    const char *act = bp_act_name(n->act);
    double rloss = dv_ref_loss(n, 0, n->a[0], 0); /* its z, a, y: before the differences */
    title("Step 1. Forward pass: L and every intermediate value");
    printf("  x: the image, %ux%u pixels, each byte/255 in [0,1]\n", rows, cols);
    picture(n->a[0], rows, cols);
    printf("  u = reshape(x): the %d pixels row by row, u[%u*r + k] = x[r][k]\n", s[0], cols);
    size_t nz = 0, first = 0;
    double lo = n->a[0][0], hi = lo;
    for (int i = s[0] - 1; i >= 0; i--) {
        nz += n->a[0][i] != 0;
        first = n->a[0][i] != 0 ? (size_t)i : first;
        lo = fmin(lo, n->a[0][i]), hi = fmax(hi, n->a[0][i]);
    }
    size_t last = first + 8 < (size_t)s[0] ? first + 8 : (size_t)s[0];
    printf("    %d entries, %zu nonzero, min %.4f, max %.4f; from the first nonzero one,\n"
           "    u[%zu..%zu] =", s[0], nz, lo, hi, first, last - 1);
    for (size_t i = first; i < last; i++)
        printf(" %.4f", n->a[0][i]);
    putchar('\n');
    for (int l = 0; l < n->L; l++) {
        const char *W = n->Wn[l], *b = n->bn[l], *z = n->zn[l], *a = n->an[l];
        printf("  %s = %s*%s + %s   (%s is %dx%d: %s_o = sum_i w_oi*%s_i + %s_o)\n", z, W, a, b,
               W, s[l + 1], s[l], z, a, b);
        values(z, n->z[l], (size_t)s[l + 1]);
        dv_check(t, dv_err(n->z[l], n->rz[l], (size_t)s[l + 1]), DV_TOL_REF,
                 "%s: summed again over the columns of %s", z, W);
        if (l + 1 < n->L) {
            const char *a1 = n->an[l + 1];
            printf("  %s = %s(%s)\n", a1, act, z);
            values(a1, n->a[l + 1], (size_t)s[l + 1]);
            dv_check(t, dv_err(n->a[l + 1], n->ra[l + 1], (size_t)s[l + 1]), DV_TOL_REF,
                     "%s: %s by another formula", a1, act);
        }
    }
    printf("  y = softmax(v): y_i = e^(v_i) / sum_j e^(v_j)\n");
    values("y", n->y, (size_t)n->C);
    dv_check(t, dv_err(n->y, n->ry, (size_t)n->C), DV_TOL_REF, "y: e^(v_i - logsumexp(v))");
    printf("  L = -sum_i labels_i*log y_i = -log y_%d = %.6f   (labels_%d = 1, the others 0;\n"
           "      the slide writes L without the minus: docs/derivation.md section 2)\n",
           n->label, n->loss, n->label);
    dv_check(t, dv_err1(n->loss, rloss), DV_TOL_REF, "L: logsumexp(v) - v_%d", n->label);
}

void dv_step_softmax(dv_net *n, dv_tally *t)
{
    int C = n->C, L = n->L;
    const double *dv = n->dz[L - 1];
    title("Step 2. dL/dy: dL/dy_i = -labels_i / y_i");
    values("dL/dy", n->dy, (size_t)C);
    dv_check_dy(n, t);
    title("Step 3. dL/dv = J^T * dL/dy, the softmax's Jacobian J_ij = dy_i/dv_j = "
          "y_i (1[i=j] - y_j)");
    grid("J", n->J, C);
    dv_check_J(n, t);
    printf("  J^T * dL/dy next to y - labels: the y_i cancel (docs/derivation.md section 3)\n"
           "       i     J^T*dL/dy    y_i - labels_i    difference\n");
    double yt[BP_CLASSES];
    for (int i = 0; i < C; i++) {
        yt[i] = n->y[i] - (i == n->label);
        printf("    %4d  % .6e  % .6e  % .1e\n", i, dv[i], yt[i], dv[i] - yt[i]);
    }
    dv_check(t, dv_err(dv, yt, (size_t)C), DV_TOL_REF, "J^T*dL/dy against y - labels");
    dv_check_fd(n, t, "dL/dv", n->z[L - 1], n->dz[L - 1], (size_t)C, L - 1, n->z[L - 1], 1);
}

/* Step 4, layer by layer from the output down: the slides' dL/du, dL/db, dL/dW of one linear
 * layer, in their order; for an MLP first the step through the activation from the layer
 * above, dL/dz = dL/da (.) act'(z). */
void dv_step_layers(dv_net *n, dv_tally *t, unsigned rows, unsigned cols)
{
    static const char *slope[] = {"1[z > 0]", "1 - tanh(z)^2", "sigmoid(z) (1 - sigmoid(z))"};
    const int *s = n->m->sizes;
    const char *act = bp_act_name(n->act);
    char dz[24], da[24], db[24], dW[24];
    title(n->L == 1 ? "Step 4. dL/du, dL/db, dL/dW of v = W*u + b"
                    : "Step 4. dL/da, dL/db, dL/dW, layer by layer from the output down");
    for (int l = n->L - 1; l >= 0; l--) {
        int I = s[l], O = s[l + 1];
        const char *W = n->Wn[l], *b = n->bn[l], *z = n->zn[l], *a = n->an[l];
        snprintf(dz, sizeof dz, "dL/d%s", z), snprintf(da, sizeof da, "dL/d%s", a);
        snprintf(db, sizeof db, "dL/d%s", b), snprintf(dW, sizeof dW, "dL/d%s", W);
        if (n->L > 1)
            printf("  layer %d: %s = %s*%s + %s\n", l, z, W, a, b);
        if (l < n->L - 1) {
            printf("  %s = dL/d%s (.) %s'(%s), elementwise   (%s'(z) = %s)\n", dz,
                   n->an[l + 1], act, z, act, slope[n->act]);
            values(dz, n->dz[l], (size_t)O);
            dv_check_fd(n, t, dz, n->z[l], n->dz[l], (size_t)O, l, n->z[l], 1);
        }
        printf("  %s = %s^T * %s\n", da, W, dz);
        values(da, n->da[l], (size_t)I);
        dv_check_fd(n, t, da, n->a[l], n->da[l], (size_t)I, l, n->a[l], 0);
        printf("  %s = E^T * %s = %s\n", db, dz, dz);
        values(db, n->dz[l], (size_t)O);
        dv_check_fd(n, t, db, n->b[l], n->dz[l], (size_t)O, 0, n->a[0], 0);
        printf("  %s = %s * %s^T   (%dx%d, rank one: dL/dw_oi = %s_o * %s_i)\n", dW, dz, a, O, I,
               dz, a);
        top_outer(dW, n->dW[l], n->dz[l], n->a[l], O, I, 5, dz, a);
        if (l == 0) {
            /* a row of dL/dW is one number times uᵀ: the image, scaled */
            size_t o = (size_t)n->label;
            if (n->L > 1)
                dv_largest(n->dz[0], (size_t)O, &o, 1);
            printf("  row %zu of %s (%s) as a %ux%u map: %s_%zu * x\n", o, dW,
                   n->L == 1 ? "the true class" : "the unit with the largest |dL/dz0|", rows,
                   cols, dz, o);
            signed_map(n->dW[0] + o * (size_t)I, rows, cols);
        }
        dv_check_fd(n, t, dW, n->W[l], n->dW[l], (size_t)O * I, 0, n->a[0], 0);
    }
}

void dv_step_input(dv_net *n, unsigned rows, unsigned cols, int fresh)
{
    title("Step 5. dL/dx = reshape^-1(dL/du): dL/du as the %ux%u image it came from "
          "(checked as dL/du)", rows, cols);
    if (fresh)
        printf("  (a fresh model's W is random, and so is this map: try --model with a trained "
               "one)\n");
    signed_map(n->da[0], rows, cols);
}
