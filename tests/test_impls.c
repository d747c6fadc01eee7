/* The three implementations of one training step must agree: blas (batched GEMMs, fused
 * dV = (Y − T)/B), jacobian (the same GEMMs with dL/dy = −T/(B·Y) and the explicit softmax
 * Jacobian) and naive (the seminar's per-sample loops). Compared through bp_grad_agree, the
 * library's one agreement check that the benchmark's validation uses too: the whole gradient
 * block, every tensor on its own (each W_l and b_l), dX, the summed loss and the count of
 * correct predictions, for B = 1, 7, 128 on 784→10 and three MLPs, and B = 1, 7 on a small CNN.
 * Also: bp_forward matches the step's loss, bp_grad without dX gives the same gradients, and
 * bad arguments are refused.
 *
 * Tolerance: the implementations differ only in float summation order (GEMM blocking vs plain
 * loops, 784-long dot products) and in the two algebraically equal softmax backward forms. Each
 * gradient entry is a sum of up to B·784 float products, so rounding is ~1e-7 relative to the
 * magnitude of the summands; we bound max |a − b| by IMPL_REL_TOL · max |gradient| of the tensor
 * (1e-5: the largest difference measured on these cases is ~5e-7, so a 20× margin, while any
 * real formula difference — a factor of B, a sign, a missing act' — is of the order of the
 * gradient itself). The loss sums are compared with relative tolerance 1e-5 and the correct
 * counts must be equal (the random logits are nowhere near a tie at float precision).
 * bp_grad_agree poisons its outputs with NaN before each pass, so a gradient a pass does not
 * overwrite fails here as NaN. */
#include "check.h"
#include "fixtures.h"

#include <stdlib.h>
#include <string.h>

#define IMPL_REL_TOL 1e-5
#define LOSS_REL_TOL 1e-5

/* impl against ref on one model and batch, every measure bp_grad_agree reports. */
static void compare(const char *what, bp_model *m, bp_work *w, bp_impl impl, bp_impl ref,
                    const float *X, const uint8_t *labels, int B)
{
    char label[160];
    bp_agreement a;
    bp_error err = {0};
    const char *name = bp_impl_name(impl), *ref_name = bp_impl_name(ref);
    if (!CHECKF(bp_grad_agree(m, w, impl, ref, X, labels, B, &a, &err) == BP_OK, "%s: %s", what,
                err.msg))
        return;
    snprintf(label, sizeof label, "%.60s %s vs %s grads /max", what, name, ref_name);
    CHECK_MAXDIFF(label, a.grad_rel, IMPL_REL_TOL);
    snprintf(label, sizeof label, "%.60s %s vs %s worst tensor", what, name, ref_name);
    CHECK_MAXDIFF(label, a.tensor_rel, IMPL_REL_TOL);
    snprintf(label, sizeof label, "%.60s %s vs %s dX /max", what, name, ref_name);
    CHECK_MAXDIFF(label, a.dX_rel, IMPL_REL_TOL);
    snprintf(label, sizeof label, "%.60s %s vs %s loss_sum rel", what, name, ref_name);
    CHECK_MAXDIFF(label, a.loss_rel, LOSS_REL_TOL);
    CHECK(isfinite(a.loss_ref) && a.loss_ref > 0);
    CHECK(a.correct_ref >= 0 && a.correct_ref <= B);
    CHECKF(a.correct == a.correct_ref, "%s: correct %d (%s) vs %d (%s)", what, a.correct, name,
           a.correct_ref, ref_name);
}

static void run(const int *sizes, int L, bp_act act, int B, uint64_t seed)
{
    char what[96];
    int n = snprintf(what, sizeof what, "%d", sizes[0]);
    for (int l = 1; l <= L && n > 0 && (size_t)n < sizeof what; l++)
        n += snprintf(what + n, sizeof what - (size_t)n, "-%d", sizes[l]);
    if (n > 0 && (size_t)n < sizeof what)
        snprintf(what + n, sizeof what - (size_t)n, " %s B=%d", L > 1 ? bp_act_name(act) : "softmax", B);

    bp_model *m = fx_model(sizes, L, act, seed);
    bp_work *w = NULL;
    bp_error err = {0};
    size_t nx = (size_t)B * sizes[0];
    float *X = malloc(nx * sizeof *X), *dX = malloc(nx * sizeof *dX);
    uint8_t *labels = malloc((size_t)B);
    float *probs = malloc((size_t)B * sizes[L] * sizeof *probs);
    float *grads = m ? malloc(m->nparams * sizeof *grads) : NULL;
    if (!CHECK(m && X && dX && labels && probs && grads))
        goto done;
    if (!CHECKF(bp_work_create(&w, m, B, 0, &err) == BP_OK, "%s", err.msg))
        goto done;
    fx_batch(X, labels, B, sizes[0], sizes[L], seed + 1);
    compare(what, m, w, BP_IMPL_JACOBIAN, BP_IMPL_BLAS, X, labels, B);
    compare(what, m, w, BP_IMPL_NAIVE, BP_IMPL_BLAS, X, labels, B);

    /* The forward-only pass reports the same loss and hits, and probabilities that sum to 1. */
    double loss = NAN, fl = NAN;
    int correct = -1, fc = -1;
    CHECK_INT_EQ(bp_grad(m, w, BP_IMPL_BLAS, X, labels, B, &loss, &correct, dX, NULL), BP_OK);
    memcpy(grads, m->grads, m->nparams * sizeof *grads);
    CHECK_INT_EQ(bp_forward(m, w, X, labels, B, probs, &fl, &fc, NULL), BP_OK);
    CHECK_NEAR(fl, loss, LOSS_REL_TOL * loss);
    CHECK_INT_EQ(fc, correct);
    double worst = 0.0;
    for (int b = 0; b < B; b++) {
        double s = 0.0;
        for (int c = 0; c < sizes[L]; c++)
            s += probs[(size_t)b * sizes[L] + c];
        worst = fmax(worst, fabs(s - 1.0));
    }
    char label[160];
    snprintf(label, sizeof label, "%.60s bp_forward |sum(probs) - 1|", what);
    CHECK_MAXDIFF(label, worst, 1e-6);

    /* A step with dX == NULL gives the same parameter gradients (the first layer's input
     * gradient is simply not formed). */
    CHECK_INT_EQ(bp_grad(m, w, BP_IMPL_BLAS, X, labels, B, NULL, NULL, NULL, NULL), BP_OK);
    snprintf(label, sizeof label, "%.60s blas dX=NULL vs dX grads", what);
    CHECK_MAXDIFF(label, check_max_abs_diff(m->grads, grads, m->nparams), 0.0);
done:
    bp_work_free(w);
    bp_model_free(m);
    free(X);
    free(dX);
    free(grads);
    free(labels);
    free(probs);
}

/* A small CNN (no dropout: bp_grad_agree's two passes would draw different masks): every
 * tensor compared on its own must be a conv2d's or linear layer's own W and b, whose sizes are
 * not the flat widths' product (a conv2d's W is C_out·C_in·kh·kw). */
static void cnn(int B, uint64_t seed)
{
    bp_layer list[16];
    int n = 0;
    bp_error err = {0};
    bp_model *m = NULL;
    bp_work *w = NULL;
    float *X = malloc((size_t)B * 81 * sizeof *X);
    uint8_t *labels = malloc((size_t)B);
    if (!CHECK(X && labels) ||
        !CHECKF(bp_arch_parse("conv3x3:4,relu,conv3x3:3:same,tanh,maxpool2,fc:6,relu", list, 15,
                              &n, &err) == BP_OK, "%s", err.msg))
        goto done;
    list[n++] = (bp_layer){.kind = BP_LAYER_LINEAR, .units = 10};
    if (!CHECKF(bp_model_create_layers(&m, 1, 9, 9, list, n, &err) == BP_OK, "%s", err.msg) ||
        !CHECKF(bp_model_init(m, BP_INIT_AUTO, seed, &err) == BP_OK, "%s", err.msg) ||
        !CHECKF(bp_work_create(&w, m, B, 0, &err) == BP_OK, "%s", err.msg))
        goto done;
    fx_batch(X, labels, B, 81, 10, seed + 1);
    char what[64];
    snprintf(what, sizeof what, "cnn 9x9 B=%d", B);
    compare(what, m, w, BP_IMPL_JACOBIAN, BP_IMPL_BLAS, X, labels, B);
    compare(what, m, w, BP_IMPL_NAIVE, BP_IMPL_BLAS, X, labels, B);
done:
    bp_work_free(w);
    bp_model_free(m);
    free(X);
    free(labels);
}

/* bp_grad refuses batches it has no room for, labels outside the classes and unknown
 * implementations, without touching anything. */
static void bad_arguments(void)
{
    const int sizes[2] = {6, 3};
    bp_model *m = fx_model(sizes, 1, BP_ACT_RELU, 3);
    bp_work *w = NULL;
    bp_error err = {0};
    float X[4 * 6] = {0};
    uint8_t labels[4] = {0, 1, 2, 0};
    if (!CHECK(m) || !CHECKF(bp_work_create(&w, m, 4, 0, &err) == BP_OK, "%s", err.msg))
        goto done;
    CHECK_INT_EQ(bp_grad(m, w, BP_IMPL_BLAS, X, labels, 0, NULL, NULL, NULL, NULL), BP_ERR_ARG);
    CHECK_INT_EQ(bp_grad(m, w, BP_IMPL_BLAS, X, labels, 5, NULL, NULL, NULL, NULL), BP_ERR_ARG);
    CHECK_INT_EQ(bp_forward(m, w, X, labels, 5, NULL, NULL, NULL, NULL), BP_ERR_ARG);
    CHECK_INT_EQ(bp_grad(m, w, (bp_impl)7, X, labels, 4, NULL, NULL, NULL, NULL), BP_ERR_ARG);
    labels[2] = 3; /* = classes */
    for (int k = 0; k < 3; k++)
        CHECK_INT_EQ(bp_grad(m, w, (bp_impl)k, X, labels, 4, NULL, NULL, NULL, NULL), BP_ERR_ARG);
    /* bp_forward indexes the logits with the labels just the same (loss −log y_c), so it must
     * refuse them too, as bp_grad does; accepting them would read past the row (past the
     * buffer on the last row). */
    double loss = 0.0;
    int correct = 0;
    CHECKF(bp_forward(m, w, X, labels, 4, NULL, &loss, &correct, NULL) == BP_ERR_ARG,
           "bp_forward accepted label 3 for a 3-class model (loss %g)", loss);
    /* bp_grad_agree passes bp_grad's refusals on, and checks its own pointers. */
    bp_agreement a;
    labels[2] = 2;
    CHECK_INT_EQ(bp_grad_agree(m, w, BP_IMPL_BLAS, BP_IMPL_NAIVE, X, labels, 5, &a, &err),
                 BP_ERR_ARG);
    CHECK_INT_EQ(bp_grad_agree(m, w, (bp_impl)7, BP_IMPL_NAIVE, X, labels, 4, &a, &err),
                 BP_ERR_ARG);
    CHECK_INT_EQ(bp_grad_agree(m, w, BP_IMPL_BLAS, BP_IMPL_NAIVE, X, labels, 4, NULL, &err),
                 BP_ERR_ARG);
    /* The same implementation twice, one thread: the same sums in the same order, exactly. */
    CHECK_INT_EQ(bp_grad_agree(m, w, BP_IMPL_BLAS, BP_IMPL_BLAS, X, labels, 4, &a, &err), BP_OK);
    CHECKF(a.grad_rel == 0 && a.tensor_rel == 0 && a.dX_rel == 0 && a.loss_rel == 0,
           "blas vs blas: %g %g %g %g", a.grad_rel, a.tensor_rel, a.dX_rel, a.loss_rel);
    bp_work *w0 = w;
    CHECK_INT_EQ(bp_work_create(&w0, m, 0, 0, &err), BP_ERR_ARG);
    CHECK(w0 == NULL);
done:
    bp_work_free(w);
    bp_model_free(m);
}

int main(void)
{
    printf("blas vs jacobian vs naive: max |diff| / max |reference|, tolerance %.0e\n",
           IMPL_REL_TOL);
    const int batches[3] = {1, 7, 128};
    const int soft[2] = {784, 10}, mlp1[3] = {784, 64, 10}, mlp2[4] = {784, 32, 16, 10};
    for (int k = 0; k < 3; k++) {
        int B = batches[k];
        run(soft, 1, BP_ACT_RELU, B, 100 + (uint64_t)B);
        run(mlp1, 2, BP_ACT_RELU, B, 200 + (uint64_t)B);
        run(mlp2, 3, BP_ACT_TANH, B, 300 + (uint64_t)B);
        run(mlp2, 3, BP_ACT_SIGMOID, B, 400 + (uint64_t)B);
    }
    cnn(1, 500);
    cnn(7, 507);
    bad_arguments();
    return check_exit("test_impls");
}
