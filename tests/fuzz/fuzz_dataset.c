/* bp_dataset_load_dir on a directory of the four MNIST-layout files cut from the input, then
 * one training step (bp_grad and an optimizer step) on a small batch of what it loaded.
 *
 * Input layout: byte 0 is a set of flags (bits 0-3: file k is written gzip-compressed as
 * NAME.gz; bit 4: a hidden layer of 3 units; bits 5-6: the implementation, blas, jacobian,
 * naive, blas; bit 7: zero initialisation instead of the default; flags mod 3: the hidden
 * activation, relu, tanh, sigmoid), bytes 1-6 the lengths of the
 * first three files (16-bit little-endian, each cut to what is left), and the rest is the
 * fourth file. Files in the order train images, train labels, test images, test labels.
 *
 * Properties:
 *  - the directory loads exactly when each file reads on its own (bp_idx_read_*), each split
 *    has as many labels as images, every label is below 10, and train and test images have
 *    the same size; the data sets then hold those very sizes and bytes, dim = rows·cols;
 *  - a failure returns a bp_status, NULL data sets and a message that starts with the
 *    directory's path;
 *  - on the first min(n, 8) training samples, every implementation's loss is finite and
 *    non-negative, correct is 0..B, every gradient is finite and all three agree, and one SGD
 *    step leaves the parameters finite; with zero weights every class has probability 1/10, so
 *    the summed loss is B·ln 10. */
#include "fuzz.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
static char dir[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_path(dir, sizeof dir, "data");
    if (mkdir(dir, 0700) != 0)
        abort();
    return 0;
}

/* The four files read one by one, and whether they make a data set. */
typedef struct {
    int ok;
    uint8_t *px[2], *lab[2];
    uint32_t n[2], rows[2], cols[2];
} reference;

static void reference_load(reference *r, char path[4][4200])
{
    memset(r, 0, sizeof *r);
    int ok = 1;
    for (int s = 0; s < 2; s++) {
        bp_error err;
        uint32_t nl = 0;
        if (bp_idx_read_images(path[2 * s], &r->px[s], &r->n[s], &r->rows[s], &r->cols[s],
                               &err) ||
            bp_idx_read_labels(path[2 * s + 1], &r->lab[s], &nl, &err))
            ok = 0;
        else if (nl != r->n[s] || (uint64_t)r->rows[s] * r->cols[s] > (1u << 24))
            ok = 0;
        for (uint32_t i = 0; ok && i < nl; i++)
            ok = r->lab[s][i] < BP_CLASSES;
    }
    r->ok = ok && r->rows[0] == r->rows[1] && r->cols[0] == r->cols[1];
}

static void reference_free(reference *r)
{
    for (int s = 0; s < 2; s++)
        free(r->px[s]), free(r->lab[s]);
}

static void same_set(const char *which, const bp_dataset *ds, const reference *r, int s)
{
    FUZZ_REQUIRE(ds && ds->n == r->n[s] && ds->rows == r->rows[s] && ds->cols == r->cols[s],
                 "%s set: sizes differ from its files'", which);
    FUZZ_REQUIRE(ds->dim == ds->rows * ds->cols && ds->classes == BP_CLASSES,
                 "%s set: dim %u for %ux%u, %u classes", which, ds->dim, ds->rows, ds->cols,
                 ds->classes);
    FUZZ_REQUIRE(memcmp(ds->pixels, r->px[s], (size_t)ds->n * ds->dim) == 0 &&
                     memcmp(ds->labels, r->lab[s], ds->n) == 0,
                 "%s set: data differ from its files'", which);
}

static double max_abs(const float *x, size_t n, int *finite)
{
    double m = 0;
    *finite = 1;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            *finite = 0;
        else if (fabs(x[i]) > m)
            m = fabs(x[i]);
    }
    return m;
}

static void train_step(const bp_dataset *train, unsigned flags)
{
    int hidden = flags >> 4 & 1, zero = flags >> 7 & 1;
    bp_impl impls[3] = {BP_IMPL_BLAS, BP_IMPL_JACOBIAN, BP_IMPL_NAIVE};
    bp_impl first = impls[(flags >> 5 & 3) % 3];
    bp_act act = (bp_act)(flags % 3);
    int sizes[3] = {(int)train->dim, hidden ? 3 : BP_CLASSES, BP_CLASSES}, L = 1 + hidden;
    bp_model *m = NULL;
    bp_work *w = NULL;
    bp_error err;
    int st = bp_model_create(&m, sizes, L, act, &err);
    if (train->dim > BP_MAX_WIDTH) { /* too wide for a model: refused, not trained */
        FUZZ_REQUIRE(st == BP_ERR_ARG, "a model %u wide was created", train->dim);
        return;
    }
    FUZZ_REQUIRE(st == BP_OK, "bp_model_create: %s", err.msg);
    st = bp_model_init(m, zero ? BP_INIT_ZEROS : BP_INIT_AUTO, flags, &err);
    FUZZ_REQUIRE(st == BP_OK, "bp_model_init: %s", err.msg);
    int B = train->n < 8 ? (int)train->n : 8;
    st = bp_work_create(&w, m, B, 1, &err);
    FUZZ_REQUIRE(st == BP_OK, "bp_work_create: %s", err.msg);
    float *X = malloc((size_t)B * train->dim * sizeof *X);
    float *g0 = malloc(m->nparams * sizeof *g0);
    uint8_t labels[8];
    if (!X || !g0)
        abort();
    bp_dataset_gather(train, NULL, 0, B, X, labels);
    for (int k = 0; k < 3; k++) {
        bp_impl impl = impls[(first + (unsigned)k) % 3];
        double loss = NAN;
        int correct = -1, finite;
        fuzz_err_reset(&err);
        st = bp_grad(m, w, impl, X, labels, B, &loss, &correct, NULL, &err);
        FUZZ_REQUIRE(st == BP_OK, "bp_grad (%s): %s", bp_impl_name(impl), err.msg);
        FUZZ_REQUIRE(isfinite(loss) && loss >= 0, "bp_grad (%s): loss %g", bp_impl_name(impl),
                     loss);
        FUZZ_REQUIRE(correct >= 0 && correct <= B, "bp_grad: %d of %d correct", correct, B);
        if (zero)
            FUZZ_REQUIRE(fabs(loss - B * log(10.0)) <= 1e-4 * B,
                         "zero weights: loss %.9g, expected %d·ln 10", loss, B);
        double scale = max_abs(m->grads, m->nparams, &finite);
        FUZZ_REQUIRE(finite, "bp_grad (%s): a gradient is not finite", bp_impl_name(impl));
        if (k == 0) {
            memcpy(g0, m->grads, m->nparams * sizeof *g0);
            continue;
        }
        /* Float sums in other orders: agreement to a small fraction of the largest entry. */
        for (size_t i = 0; i < m->nparams; i++)
            FUZZ_REQUIRE(fabs(m->grads[i] - g0[i]) <= 1e-3 * (1 + scale),
                         "gradient %zu: %s %.9g, %s %.9g", i, bp_impl_name(impl), m->grads[i],
                         bp_impl_name(first), g0[i]);
    }
    bp_opt_config oc;
    bp_opt_config_default(&oc);
    bp_opt *o = NULL;
    st = bp_opt_create(&o, &oc, m->nparams, &err);
    FUZZ_REQUIRE(st == BP_OK, "bp_opt_create: %s", err.msg);
    bp_opt_step(o, m->params, m->grads, bp_opt_base_lr(&oc));
    int finite;
    max_abs(m->params, m->nparams, &finite);
    FUZZ_REQUIRE(finite, "one SGD step made a parameter non-finite");
    bp_opt_free(o);
    free(X), free(g0);
    bp_work_free(w);
    bp_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned flags = size ? data[0] : 0;
    size_t at = size < 7 ? size : 7, len[4];
    for (int k = 0; k < 3; k++) {
        size_t want = size >= 7 ? (size_t)data[1 + 2 * k] | (size_t)data[2 + 2 * k] << 8 : 0;
        len[k] = want < size - at ? want : size - at;
        at += len[k];
    }
    len[3] = size - at;
    char path[4][4200];
    at = size < 7 ? size : 7;
    for (int k = 0; k < 4; k++) {
        int gz = flags >> k & 1;
        snprintf(path[k], sizeof path[k], "%s/%s%s", dir, names[k], gz ? ".gz" : "");
        char other[4200];
        snprintf(other, sizeof other, "%s/%s%s", dir, names[k], gz ? "" : ".gz");
        unlink(other); /* the loader prefers NAME to NAME.gz: only the one written may exist */
        if (gz) {
            size_t n;
            uint8_t *z = fuzz_gzip(data + at, len[k], 6, NULL, &n);
            fuzz_write(path[k], z, n);
            free(z);
        } else {
            fuzz_write(path[k], data + at, len[k]);
        }
        at += len[k];
    }
    reference ref;
    reference_load(&ref, path);
    static bp_dataset poison; /* the loader must overwrite both pointers, also on failure */
    bp_dataset *train = &poison, *test = &poison;
    bp_error err;
    fuzz_err_reset(&err);
    int st = bp_dataset_load_dir(dir, &train, &test, &err);
    FUZZ_REQUIRE((st == BP_OK) == ref.ok, "bp_dataset_load_dir gives %d (%s), the files %s",
                 st, st ? err.msg : "ok", ref.ok ? "make a data set" : "do not");
    if (st) {
        fuzz_check_failure("bp_dataset_load_dir", st, &err, dir);
        FUZZ_REQUIRE(!train && !test, "a failed load left a data set");
    } else {
        same_set("training", train, &ref, 0);
        same_set("test", test, &ref, 1);
        train_step(train, flags);
    }
    bp_dataset_free(train);
    bp_dataset_free(test);
    reference_free(&ref);
    return 0;
}
