/* Gradients against finite differences.
 *
 * Part 1: bp_gradcheck (central differences of the library's double-precision loss) on every
 * entry (per_tensor 0) of every tensor and of X, for small models — softmax regression, one
 * hidden layer per activation, two hidden layers per activation — and for all three impls.
 *
 * Part 2: an independent check written here: the 784→10 softmax regression's loss in double,
 * central differences over every W, b and X entry, against bp_grad's m->grads and dX for
 * B = 1, 7, 128. Then one analytic entry is corrupted to prove this comparison can fail, and
 * bp_gradcheck is run with an absurd step to prove its measurement can exceed the tolerance.
 *
 * Part 3: what bp_gradcheck must not hide or misreport: NaN analytic gradients fail any
 * tolerance; an entry whose step straddles a ReLU kink is skipped and counted, exactly those
 * entries and only with ReLU; with a large step, ReLU skipping leaves real errors visible. */
#include "check.h"
#include "fixtures.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

/* Tolerances for part 1. The numeric gradient is a double central difference with step 1e-5:
 * truncation error ~h²·L''' ≈ 1e-10 and cancellation error ~1e-16·L/h ≈ 1e-11, far below what
 * we test. What remains is the float32 analytic gradient: each entry is a sum of B·width
 * products with relative rounding ~1e-7, so its absolute error is ~1e-8 against gradients of
 * order 1e-3…1e-1. Relative error is |a − n| / max(|a|, |n|, 1e-6): for entries near zero the
 * 1e-6 floor turns a 1e-8 absolute error into 1e-2 at worst, hence REL_TOL 1e-2. A wrong
 * formula (a missing act', a transposed W, a dropped 1/B) gives relative errors of order 1 and
 * absolute errors ≥ 1e-3 on these models, so both bounds keep a wide gap to real bugs. The step
 * is small so that a ReLU pre-activation rarely crosses its kink between ±h; bp_gradcheck skips
 * (and counts) the entries where one does. */
#define GC_STEP 1e-5
#define GC_REL_TOL 1e-2
#define GC_ABS_TOL 1e-5

static const bp_impl impls[3] = {BP_IMPL_BLAS, BP_IMPL_JACOBIAN, BP_IMPL_NAIVE};

/* *mx = max(*mx, e) where NaN wins as infinity: fmax would drop a NaN and let it pass. */
static void max_err(double *mx, double e)
{
    if (!(e <= *mx))
        *mx = isnan(e) ? INFINITY : e;
}

/* Entries of tensor t (W0, b0, W1, …, X) of a model with sizes[0..L] on a batch of B. */
static size_t tensor_size(const int *sizes, int L, int B, int t)
{
    return t == 2 * L ? (size_t)B * sizes[0]
           : t % 2    ? (size_t)sizes[t / 2 + 1]
                      : (size_t)sizes[t / 2 + 1] * sizes[t / 2];
}

static void run_gradcheck(const char *what, const int *sizes, int L, bp_act act, int B,
                          uint64_t seed)
{
    bp_model *m = fx_model(sizes, L, act, seed);
    float *X = malloc((size_t)B * sizes[0] * sizeof *X);
    uint8_t *labels = malloc((size_t)B);
    if (!CHECK(m && X && labels))
        goto done;
    fx_batch(X, labels, B, sizes[0], sizes[L], seed + 1000);
    for (int k = 0; k < 3; k++) {
        bp_gradcheck_tensor res[2 * BP_MAX_LAYERS + 1];
        int nres = 0;
        bp_error err = {0};
        int st = bp_gradcheck(m, impls[k], X, labels, B, GC_STEP, 0, seed, 0, res, &nres, &err);
        CHECKF(st == BP_OK, "bp_gradcheck: %s", err.msg);
        if (st)
            continue;
        CHECK_INT_EQ(nres, 2 * L + 1);
        double ab = 0.0;
        for (int t = 0; t < nres; t++) {
            size_t n = tensor_size(sizes, L, B, t);
            /* per_tensor 0 must mean every entry; only ReLU may skip any, and then few: at
             * step 1e-5 a crossing needs |z| < 1e-5·|dz/dθ| */
            CHECKF(res[t].checked + res[t].skipped == n, "%s: %s checked %zu + skipped %zu of %zu",
                   what, res[t].name, res[t].checked, res[t].skipped, n);
            CHECKF(act == BP_ACT_RELU ? res[t].skipped * 100 <= n : res[t].skipped == 0,
                   "%s: %s skipped %zu of %zu entries", what, res[t].name, res[t].skipped, n);
            char label[128];
            snprintf(label, sizeof label, "%.60s %s %.15s rel", what, bp_impl_name(impls[k]),
                     res[t].name);
            CHECK_MAXDIFF(label, res[t].max_rel_err, GC_REL_TOL);
            max_err(&ab, res[t].max_abs_err);
        }
        char label[96];
        snprintf(label, sizeof label, "%.60s %s all tensors abs", what, bp_impl_name(impls[k]));
        CHECK_MAXDIFF(label, ab, GC_ABS_TOL);
    }
done:
    bp_model_free(m);
    free(X);
    free(labels);
}

/* ---- part 2: an independent finite-difference check of softmax regression ---- */

/* −log softmax(v)_c for one row of C logits, in double, through log-sum-exp. */
static double row_loss(const double *v, int C, int c)
{
    double mx = v[0], s = 0.0;
    for (int i = 1; i < C; i++)
        mx = v[i] > mx ? v[i] : mx;
    for (int i = 0; i < C; i++)
        s += exp(v[i] - mx);
    return mx + log(s) - v[c];
}

/* The loss with logit o of row s moved by d; the other logits are unchanged. */
static double row_loss_moved(double *v, int C, int c, int o, double d)
{
    double keep = v[o];
    v[o] = keep + d;
    double l = row_loss(v, C, c);
    v[o] = keep;
    return l;
}

typedef struct {
    double max_rel, max_abs;
} fd_err;

static void fd_acc(fd_err *e, double analytic, double numeric)
{
    double d = fabs(analytic - numeric);
    double scale = fmax(fmax(fabs(analytic), fabs(numeric)), 1e-6);
    max_err(&e->max_abs, d);
    max_err(&e->max_rel, d / scale);
}

/* Central differences (step h) of the mean loss L(W, b, X) = (1/B) Σ_s row_loss(W·x_s + b)
 * for every entry of W [C,I], b [C] and X [B,I], against the analytic dW, db, dX. V holds the
 * double logits [B,C]. A parameter's perturbation moves exactly the logits it enters; those
 * are recomputed, everything else is reused. */
static void fd_softmax_regression(const bp_model *m, const float *dW, const float *db,
                                  const float *dX, const float *X, const uint8_t *labels, int B,
                                  double h, double *V, fd_err *eW, fd_err *eb, fd_err *eX)
{
    int I = m->sizes[0], C = m->sizes[1];
    const float *W = m->W[0], *b = m->b[0];
    for (int s = 0; s < B; s++)
        for (int o = 0; o < C; o++) {
            double v = b[o];
            for (int i = 0; i < I; i++)
                v += (double)W[(size_t)o * I + i] * X[(size_t)s * I + i];
            V[(size_t)s * C + o] = v;
        }
    for (int o = 0; o < C; o++) {
        for (int i = 0; i <= I; i++) { /* i == I: the bias b[o] (its "input" is 1) */
            double lp = 0.0, lm = 0.0;
            for (int s = 0; s < B; s++) {
                double x = i < I ? (double)X[(size_t)s * I + i] : 1.0;
                double *v = V + (size_t)s * C;
                lp += row_loss_moved(v, C, labels[s], o, h * x);
                lm += row_loss_moved(v, C, labels[s], o, -h * x);
            }
            double num = (lp - lm) / (2.0 * h * B);
            if (i < I)
                fd_acc(eW, dW[(size_t)o * I + i], num);
            else
                fd_acc(eb, db[o], num);
        }
    }
    /* X[s,i] moves every logit of row s by ±h·W[:,i] and nothing else. */
    double *vp = malloc((size_t)C * sizeof *vp), *vm = malloc((size_t)C * sizeof *vm);
    if (!CHECK(vp && vm))
        goto done;
    for (int s = 0; s < B; s++)
        for (int i = 0; i < I; i++) {
            for (int o = 0; o < C; o++) {
                double wi = W[(size_t)o * I + i];
                vp[o] = V[(size_t)s * C + o] + h * wi;
                vm[o] = V[(size_t)s * C + o] - h * wi;
            }
            double num = (row_loss(vp, C, labels[s]) - row_loss(vm, C, labels[s])) / (2.0 * h * B);
            fd_acc(eX, dX[(size_t)s * I + i], num);
        }
done:
    free(vp);
    free(vm);
}

/* Tolerance for part 2: softmax regression's gradients are (Y − T)ᵀX/B and (Y − T)/B·W, sums
 * of at most B·C float products of magnitude ≤ 1, so float rounding stays below ~1e-7 in
 * absolute terms; the double difference quotient (h = 1e-4) is accurate to ~1e-9. 2e-6
 * absolute leaves a margin of ~10× over the rounding, while any formula error moves entries by
 * ≥ 1e-3 (the smallest nonzero |Y − T|·x/B here). */
#define FD_STEP 1e-4
#define FD_ABS_TOL 2e-6

static void check_softmax_regression(int B)
{
    const int sizes[2] = {784, 10};
    bp_model *m = fx_model(sizes, 1, BP_ACT_RELU, 77 + (uint64_t)B);
    bp_work *w = NULL;
    bp_error err = {0};
    float *X = malloc((size_t)B * 784 * sizeof *X), *dX = malloc((size_t)B * 784 * sizeof *dX);
    uint8_t *labels = malloc((size_t)B);
    double *V = malloc((size_t)B * 10 * sizeof *V);
    if (!CHECK(m && X && dX && labels && V))
        goto done;
    if (!CHECKF(bp_work_create(&w, m, B, 0, &err) == BP_OK, "%s", err.msg))
        goto done;
    fx_batch(X, labels, B, 784, 10, 5000 + (uint64_t)B);
    for (int k = 0; k < 3; k++) {
        double loss = NAN;
        CHECK_INT_EQ(bp_grad(m, w, impls[k], X, labels, B, &loss, NULL, dX, NULL), BP_OK);
        CHECK(isfinite(loss));
        fd_err eW = {0, 0}, eb = {0, 0}, eX = {0, 0};
        fd_softmax_regression(m, m->dW[0], m->db[0], dX, X, labels, B, FD_STEP, V, &eW, &eb,
                              &eX);
        char label[96];
        snprintf(label, sizeof label, "784-10 B=%d %s W0 abs (rel %.1e)", B,
                 bp_impl_name(impls[k]), eW.max_rel);
        CHECK_MAXDIFF(label, eW.max_abs, FD_ABS_TOL);
        snprintf(label, sizeof label, "784-10 B=%d %s b0 abs (rel %.1e)", B,
                 bp_impl_name(impls[k]), eb.max_rel);
        CHECK_MAXDIFF(label, eb.max_abs, FD_ABS_TOL);
        snprintf(label, sizeof label, "784-10 B=%d %s X abs (rel %.1e)", B,
                 bp_impl_name(impls[k]), eX.max_rel);
        CHECK_MAXDIFF(label, eX.max_abs, FD_ABS_TOL);

        if (impls[k] != BP_IMPL_BLAS)
            continue;
        /* The comparison above must be able to fail: flip the sign of the largest dW entry and
         * of one dX entry and expect errors far beyond the tolerance. */
        size_t big = 0;
        for (size_t i = 0; i < (size_t)10 * 784; i++)
            if (fabsf(m->dW[0][i]) > fabsf(m->dW[0][big]))
                big = i;
        m->dW[0][big] = -m->dW[0][big];
        dX[(size_t)(B - 1) * 784 + 3] += 1e-3f;
        fd_err cW = {0, 0}, cb = {0, 0}, cX = {0, 0};
        fd_softmax_regression(m, m->dW[0], m->db[0], dX, X, labels, B, FD_STEP, V, &cW, &cb,
                              &cX);
        printf("  corrupted B=%d: W0 max abs err %.3e, X max abs err %.3e (must exceed %.1e)\n",
               B, cW.max_abs, cX.max_abs, FD_ABS_TOL);
        CHECK(cW.max_abs > 100 * FD_ABS_TOL);
        CHECK(cX.max_abs > 100 * FD_ABS_TOL);
    }
done:
    bp_work_free(w);
    bp_model_free(m);
    free(X);
    free(dX);
    free(labels);
    free(V);
}

/* bp_gradcheck's own measurement must be able to exceed the tolerance: with a step of 0.5 the
 * central difference of a curved loss is off by ~h²·L'''/6, far more than GC_REL_TOL allows. */
static void check_gradcheck_can_fail(void)
{
    const int sizes[3] = {20, 16, 10};
    const int B = 4;
    bp_model *m = fx_model(sizes, 2, BP_ACT_SIGMOID, 31);
    float X[4 * 20];
    uint8_t labels[4];
    if (!CHECK(m))
        return;
    fx_batch(X, labels, B, 20, 10, 32);
    /* Larger weights make the loss clearly curved over a step of 0.5. */
    for (size_t i = 0; i < m->nparams; i++)
        m->params[i] *= 4.0f;
    bp_gradcheck_tensor res[5];
    int nres = 0;
    bp_error err = {0};
    CHECKF(bp_gradcheck(m, BP_IMPL_BLAS, X, labels, B, 0.5, 0, 1, 0, res, &nres, &err) == BP_OK,
           "%s", err.msg);
    double worst = 0.0;
    for (int t = 0; t < nres; t++)
        max_err(&worst, res[t].max_rel_err);
    printf("  gradcheck with step 0.5: max rel err %.3e (must exceed %.1e)\n", worst, GC_REL_TOL);
    CHECK(worst > GC_REL_TOL);
    bp_model_free(m);
}

/* ---- part 3: NaN, ReLU kinks ---- */

/* A model with every parameter 0, to be filled in by hand. NULL on failure. */
static bp_model *hand_model(const int *sizes, int L, bp_act act)
{
    bp_model *m = NULL;
    bp_error err = {0};
    if (bp_model_create(&m, sizes, L, act, &err)) {
        fprintf(stderr, "bp_model_create: %s\n", err.msg);
        return NULL;
    }
    for (size_t i = 0; i < m->nparams; i++)
        m->params[i] = 0.0f;
    return m;
}

/* A NaN analytic gradient must fail every tolerance. Weights of 3e38 overflow the float logits
 * to +inf, so softmax computes inf − inf = NaN and every gradient is NaN, while the double
 * reference (6e38 and 1.2e39 are finite there) stays finite. With ReLU and a step that makes
 * some of those entries straddle a kink, the NaN entries must still be compared, not skipped. */
static void check_gradcheck_nan(void)
{
    /* 4→3 softmax regression, X = 1: each logit is 4·3e38 → +inf */
    const int soft[2] = {4, 3};
    /* 2→2→3 ReLU: z = (0.5 − 0.5 + 1e-7, 1 + 1) = (1e-7, 2), each logit 3e38·(1e-7 + 2) → +inf;
     * at step 1e-3 the entries of W0 row 0, b0[0] and X move z[0] across 0 */
    const int relu[3] = {2, 2, 3};
    for (int c = 0; c < 2; c++) {
        const int *sizes = c ? relu : soft;
        int L = c ? 2 : 1, B = 1;
        bp_model *m = hand_model(sizes, L, BP_ACT_RELU);
        if (!CHECK(m))
            return;
        float X[4] = {1, 1, 1, 1};
        uint8_t labels[1] = {0};
        if (c) {
            const float W0[4] = {0.5f, -0.5f, 1.0f, 1.0f};
            for (int i = 0; i < 4; i++)
                m->W[0][i] = W0[i];
            m->b[0][0] = 1e-7f;
        }
        for (int i = 0; i < 3 * sizes[L - 1]; i++)
            m->W[L - 1][i] = 3e38f;
        bp_gradcheck_tensor res[5];
        int nres = 0;
        bp_error err = {0};
        int st = bp_gradcheck(m, BP_IMPL_BLAS, X, labels, B, c ? 1e-3 : GC_STEP, 0, 1, 0, res,
                              &nres, &err);
        CHECKF(st == BP_OK, "bp_gradcheck: %s", err.msg);
        if (st) {
            bp_model_free(m);
            continue;
        }
        size_t nan_grads = 0;
        for (size_t i = 0; i < m->nparams; i++)
            nan_grads += isnan(m->grads[i]) != 0;
        /* the scenario itself: the analytic gradient really is NaN */
        CHECKF(nan_grads == m->nparams, "%zu of %zu gradients are NaN", nan_grads, m->nparams);
        for (int t = 0; t < nres; t++) {
            size_t n = tensor_size(sizes, L, B, t);
            printf("  NaN gradients, %s %-2s: checked %zu skipped %zu max_abs_err %g "
                   "max_rel_err %g (must fail)\n", c ? "2-2-3 relu" : "4-3", res[t].name,
                   res[t].checked, res[t].skipped, res[t].max_abs_err, res[t].max_rel_err);
            CHECKF(res[t].checked == n && res[t].skipped == 0, "%s: checked %zu skipped %zu of %zu",
                   res[t].name, res[t].checked, res[t].skipped, n);
            CHECK(!(res[t].max_rel_err <= 1.0) && !(res[t].max_abs_err <= DBL_MAX));
        }
        bp_model_free(m);
    }
}

/* 2→1→3 ReLU with its one pre-activation z = 0.5·0.25 − 0.5·0.25 + b0 = b0 = ±1e-7 exactly (in
 * float and in double). At step 1e-3 every entry of W0, b0 and X moves z by ≥ 0.25·1e-3, across
 * 0: the central difference there averages the slopes 0 and dL/dz (off by ~50%), so those
 * entries must be skipped, and exactly those: W1 and b1 do not move z and must be compared and
 * pass. At step 1e-8 no entry crosses, nothing is skipped, and every entry passes. */
static void check_relu_kink(void)
{
    const int sizes[3] = {2, 1, 3};
    const float X[2] = {0.25f, 0.25f};
    const uint8_t labels[1] = {0};
    const size_t kink_skips[5] = {2, 1, 0, 0, 2}; /* W0, b0, W1, b1, X */
    for (int sgn = 0; sgn < 2; sgn++) {
        bp_model *m = hand_model(sizes, 2, BP_ACT_RELU);
        if (!CHECK(m))
            return;
        m->W[0][0] = 0.5f, m->W[0][1] = -0.5f;
        m->b[0][0] = sgn ? -1e-7f : 1e-7f;
        m->W[1][0] = 1.0f, m->W[1][1] = -1.0f, m->W[1][2] = 0.5f;
        m->b[1][1] = 0.1f, m->b[1][2] = -0.1f;
        for (int k = 0; k < 2; k++) {
            double h = k ? 1e-8 : 1e-3;
            bp_gradcheck_tensor res[5];
            int nres = 0;
            bp_error err = {0};
            int st = bp_gradcheck(m, BP_IMPL_BLAS, X, labels, 1, h, 0, 1, 0, res, &nres, &err);
            if (!CHECKF(st == BP_OK && nres == 5, "bp_gradcheck: %s", err.msg))
                continue;
            for (int t = 0; t < 5; t++) {
                size_t n = tensor_size(sizes, 2, 1, t), skip = k ? 0 : kink_skips[t];
                char label[96], rel[112], ab[112];
                snprintf(label, sizeof label, "z = %s1e-7, step %g: %.8s (skipped %zu)",
                         sgn ? "-" : "+", h, res[t].name, res[t].skipped);
                snprintf(rel, sizeof rel, "%s rel", label);
                snprintf(ab, sizeof ab, "%s abs", label);
                CHECKF(res[t].skipped == skip && res[t].checked == n - skip,
                       "%s: checked %zu skipped %zu, expected %zu and %zu", label,
                       res[t].checked, res[t].skipped, n - skip, skip);
                /* at step 1e-8 the W1 gradients are (y − t)·1e-7 against a difference quotient
                 * with ~1e-8 rounding, so only the absolute error means something there */
                if (!(k && t == 2))
                    CHECK_MAXDIFF(rel, res[t].max_rel_err, GC_REL_TOL);
                CHECK_MAXDIFF(ab, res[t].max_abs_err, 1e-6);
            }
        }
        bp_model_free(m);
    }
}

/* ReLU skipping must not hide real disagreement: with a step of 0.5 many entries straddle a
 * kink and are skipped, but the last layer's W and b never move a pre-activation, so they are
 * all compared, and the loss's curvature over the step must still show up as a failure there. */
static void check_relu_can_fail(void)
{
    const int sizes[3] = {20, 16, 10};
    const int B = 4;
    bp_model *m = fx_model(sizes, 2, BP_ACT_RELU, 41);
    float X[4 * 20];
    uint8_t labels[4];
    if (!CHECK(m))
        return;
    fx_batch(X, labels, B, 20, 10, 42);
    for (size_t i = 0; i < m->nparams; i++)
        m->params[i] *= 4.0f;
    bp_gradcheck_tensor res[5];
    int nres = 0;
    bp_error err = {0};
    if (CHECKF(bp_gradcheck(m, BP_IMPL_BLAS, X, labels, B, 0.5, 0, 1, 0, res, &nres, &err) == BP_OK,
               "%s", err.msg)) {
        size_t skipped = 0;
        double last = 0.0;
        for (int t = 0; t < nres; t++) {
            skipped += res[t].skipped;
            if (t == 2 || t == 3) {
                CHECK(res[t].skipped == 0 && res[t].checked == tensor_size(sizes, 2, B, t));
                max_err(&last, res[t].max_rel_err);
            }
        }
        printf("  relu, step 0.5: %zu entries skipped; W1/b1 max rel err %.3e (must exceed "
               "%.1e)\n", skipped, last, GC_REL_TOL);
        CHECK(skipped > 0);
        CHECK(last > GC_REL_TOL);
    }
    bp_model_free(m);
}

int main(void)
{
    printf("part 1: bp_gradcheck, every entry, step %g\n", GC_STEP);
    const int soft[2] = {20, 10};
    run_gradcheck("20-10 softmax", soft, 1, BP_ACT_RELU, 5, 1);
    const bp_act acts[3] = {BP_ACT_RELU, BP_ACT_TANH, BP_ACT_SIGMOID};
    for (int a = 0; a < 3; a++) {
        const int one[3] = {20, 16, 10};
        const int two[4] = {20, 12, 8, 10};
        char what[64];
        snprintf(what, sizeof what, "20-16-10 %s", bp_act_name(acts[a]));
        run_gradcheck(what, one, 2, acts[a], 5, 10 + (uint64_t)a);
        snprintf(what, sizeof what, "20-12-8-10 %s", bp_act_name(acts[a]));
        run_gradcheck(what, two, 3, acts[a], 5, 20 + (uint64_t)a);
    }
    check_gradcheck_can_fail();

    printf("part 2: independent central differences for 784-10, step %g\n", FD_STEP);
    const int batches[3] = {1, 7, 128};
    for (int k = 0; k < 3; k++)
        check_softmax_regression(batches[k]);

    printf("part 3: NaN gradients and ReLU kinks\n");
    check_gradcheck_nan();
    check_relu_kink();
    check_relu_can_fail();
    return check_exit("test_gradcheck");
}
