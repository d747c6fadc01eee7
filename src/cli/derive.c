/* backprop derive: the seminar's derivation, step by step, with the numbers of one test image.
 * Each step is computed here by plain double-precision loops in the slides' order (v = W·u + b,
 * y = softmax(v), L, dL/dy, the Jacobian J, dL/dv = Jᵀ·dL/dy, dL/du, dL/db, dL/dW, dL/dx),
 * through every layer of an MLP. derive_check.c checks each result (against a second forward
 * pass, central differences of its loss, and the library's float pass) and derive_print.c
 * prints the steps. None of the library's arithmetic is called on purpose: agreeing with
 * bp_grad only means something if the derivation shares no code with it. */
#include "derive.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double act_of(double z, bp_act act) /* a = act(z), as docs/derivation.md §5 writes it */
{
    switch (act) {
    case BP_ACT_RELU: return z > 0 ? z : 0;
    case BP_ACT_TANH: return tanh(z);
    case BP_ACT_SIGMOID: return 1 / (1 + exp(-z));
    }
    return z;
}

static double act_slope(double z, bp_act act) /* act'(z) */
{
    double s = act_of(z, act);
    switch (act) {
    case BP_ACT_RELU: return z > 0;
    case BP_ACT_TANH: return 1 - s * s;
    case BP_ACT_SIGMOID: return s * (1 - s);
    }
    return 1;
}

/* The slides' forward pass: v = W·u + b row by row (layer after layer for an MLP), then
 * y = softmax(v) and L = −Σ_i t_i·log y_i. */
static void derive_forward(dv_net *n)
{
    const int *s = n->m->sizes;
    for (int l = 0; l < n->L; l++)
        for (int o = 0; o < s[l + 1]; o++) {
            double v = n->b[l][o];
            for (int i = 0; i < s[l]; i++)
                v += n->W[l][(size_t)o * s[l] + i] * n->a[l][i];
            n->z[l][o] = v;
            if (l + 1 < n->L)
                n->a[l + 1][o] = act_of(v, n->act);
        }
    /* y_i = e^(v_i) / Σ_j e^(v_j), with the largest v_j subtracted from every v_i first: the
     * fraction does not change, and no e^(v_i) can overflow */
    const double *v = n->z[n->L - 1];
    double mx = v[0], S = 0;
    for (int i = 1; i < n->C; i++)
        mx = fmax(mx, v[i]);
    for (int i = 0; i < n->C; i++)
        S += exp(v[i] - mx);
    n->loss = 0;
    for (int i = 0; i < n->C; i++) {
        n->y[i] = exp(v[i] - mx) / S;
        double t = i == n->label;
        if (t != 0) /* a t_i = 0 term is 0, even where y_i underflowed (0·log 0 is NaN) */
            n->loss -= t * log(n->y[i]);
    }
}

/* The slides' backward pass, each formula as a loop of its own. */
static void derive_backward(dv_net *n)
{
    const int *s = n->m->sizes;
    int C = n->C;
    for (int i = 0; i < C; i++) { /* dL/dy_i = −t_i / y_i */
        double t = i == n->label;
        n->dy[i] = t != 0 ? -t / n->y[i] : 0;
    }
    for (int i = 0; i < C; i++) /* J_ij = y_i (1[i=j] − y_j) */
        for (int j = 0; j < C; j++)
            n->J[(size_t)i * C + j] = n->y[i] * ((i == j) - n->y[j]);
    for (int j = 0; j < C; j++) { /* dL/dv_j = Σ_i J_ij·dL/dy_i, i.e. Jᵀ·dL/dy */
        double g = 0;
        for (int i = 0; i < C; i++)
            g += n->J[(size_t)i * C + j] * n->dy[i];
        n->dz[n->L - 1][j] = g;
    }
    for (int l = n->L - 1; l >= 0; l--) {
        int I = s[l], O = s[l + 1];
        const double *g = n->dz[l];
        for (int i = 0; i < I; i++) { /* dL/du_i = Σ_o w_oi·dL/dv_o, i.e. Wᵀ·dL/dv */
            double d = 0;
            for (int o = 0; o < O; o++)
                d += n->W[l][(size_t)o * I + i] * g[o];
            n->da[l][i] = d;
        }
        /* dL/db = Eᵀ·dL/dv = dL/dv: nothing to compute, dz[l] is it */
        for (int o = 0; o < O; o++) /* dL/dw_oi = dL/dv_o·u_i, i.e. dL/dv·uᵀ */
            for (int i = 0; i < I; i++)
                n->dW[l][(size_t)o * I + i] = g[o] * n->a[l][i];
        if (l > 0) /* into the layer below: dL/dz = dL/da ⊙ act'(z) */
            for (int i = 0; i < I; i++)
                n->dz[l - 1][i] = n->da[l][i] * act_slope(n->z[l - 1][i], n->act);
    }
}

static void help(FILE *f)
{
    fputs("usage: backprop derive [--model FILE] [--data DIR] [--sample N] [--seed N]\n"
          "Follow the seminar's derivation on one test image, step by step, with its real\n"
          "numbers: the image, u, v = W*u + b, y = softmax(v), L, dL/dy, the Jacobian J,\n"
          "dL/dv = J^T*dL/dy, dL/du, dL/db, dL/dW and dL/dx (through every layer of an MLP).\n"
          "Each step is computed in double precision by its own loops and checked: values\n"
          "against a second forward pass, gradients against central differences of its\n"
          "loss, and all against the library's float gradient (bp_grad, impl blas).\n"
          "\n"
          "  --model FILE   a model file (default: a fresh softmax regression, initialised\n"
          "                 with bp_model_init auto from --seed)\n"
          "  --data DIR     MNIST-layout IDX files, raw or .gz (default data/mnist)\n"
          "  --sample N     which test image, from 0 (default 0)\n"
          "  --seed N       the fresh model's seed, and which entries of a large tensor are\n"
          "                 compared at random (default 1)\n"
          "\n"
          "Exit status: 0 every check ok, 1 a check failed, 2 bad usage or a bad model or\n"
          "data file.\n",
          f);
}

/* Carves the double arrays out of one block and copies the parameters and the image in. */
static int net_init(dv_net *n, const bp_model *m, const float *X, int label, uint64_t seed)
{
    int L = m->nlayers;
    const int *s = m->sizes;
    size_t total = 3 * (size_t)s[L] + (size_t)s[L] * s[L], nsign = 0;
    for (int l = 0; l < L; l++)
        total += 2 * (size_t)s[l + 1] * s[l] + 4 * (size_t)s[l + 1] + 3 * (size_t)s[l];
    for (int l = 1; l < L; l++)
        nsign += (size_t)s[l];
    memset(n, 0, sizeof *n);
    n->mem = malloc(total * sizeof *n->mem);
    n->sign = malloc(2 * nsign + 1);
    if (!n->mem || !n->sign)
        return -1;
    n->sign_plus = n->sign + nsign;
    n->m = m, n->L = L, n->C = s[L], n->label = label, n->act = m->act, n->nsign = nsign;
    double *p = n->mem;
#define TAKE(k) (p += (k), p - (k))
    for (int l = 0; l < L; l++) {
        size_t I = (size_t)s[l], O = (size_t)s[l + 1];
        n->W[l] = TAKE(O * I), n->dW[l] = TAKE(O * I), n->b[l] = TAKE(O);
        n->z[l] = TAKE(O), n->dz[l] = TAKE(O), n->rz[l] = TAKE(O);
        n->a[l] = TAKE(I), n->da[l] = TAKE(I), n->ra[l] = TAKE(I);
        for (size_t k = 0; k < O * I; k++)
            n->W[l][k] = m->W[l][k];
        for (size_t k = 0; k < O; k++)
            n->b[l][k] = m->b[l][k];
    }
    n->y = TAKE((size_t)s[L]), n->dy = TAKE((size_t)s[L]), n->ry = TAKE((size_t)s[L]);
    n->J = TAKE((size_t)s[L] * s[L]);
#undef TAKE
    for (int i = 0; i < s[0]; i++)
        n->a[0][i] = X[i];
    /* The slides' names for one layer; numbered for an MLP, as bp_grad's tensors are, with v
     * and u kept at the two ends of the chain. */
    for (int l = 0; l < L; l++) {
        snprintf(n->Wn[l], sizeof n->Wn[l], "W%d", l);
        snprintf(n->bn[l], sizeof n->bn[l], "b%d", l);
        snprintf(n->zn[l], sizeof n->zn[l], "z%d", l);
        snprintf(n->an[l], sizeof n->an[l], "a%d", l);
    }
    strcpy(n->zn[L - 1], "v"), strcpy(n->an[0], "u");
    if (L == 1)
        strcpy(n->Wn[0], "W"), strcpy(n->bn[0], "b");
    bp_rng_seed(&n->rng, seed);
    return 0;
}

int cmd_derive(int argc, char **argv)
{
    enum { O_MODEL = 256, O_DATA, O_SAMPLE, O_SEED };
    static const struct option longopts[] = {
        {"model", required_argument, 0, O_MODEL}, {"data", required_argument, 0, O_DATA},
        {"sample", required_argument, 0, O_SAMPLE}, {"seed", required_argument, 0, O_SEED},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *C = "derive", *model = NULL, *data = "data/mnist";
    int sample = 0, c;
    uint64_t seed = 1;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_DATA: data = optarg; break;
        case O_SAMPLE: bad = opt_int(C, "--sample", optarg, &sample); break;
        case O_SEED: bad = opt_u64(C, "--seed", optarg, &seed); break;
        case 'h': help(stdout); return 0;
        default: cli_opt_error(C, c, argv, longopts); return EXIT_USAGE;
        }
        if (!bad && c == O_SAMPLE && sample < 0) {
            fprintf(stderr, "backprop derive: --sample: %d is out of range: test images are "
                    "numbered from 0\n", sample);
            bad = -1;
        }
        if (bad) {
            fputs("Try 'backprop derive --help'.\n", stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "backprop derive: unexpected argument '%s'\nTry 'backprop derive "
                "--help'.\n", argv[optind]);
        return EXIT_USAGE;
    }
    bp_model *m = NULL;
    bp_dataset *train = NULL, *test = NULL;
    bp_error err = {0};
    dv_net n = {0};
    int status = model ? cli_load_model(C, model, &m, NULL) : 0, st;
    if (status)
        return status;
    status = EXIT_USAGE;
    if ((st = bp_dataset_load_dir(data, &train, &test, &err))) {
        fprintf(stderr, "backprop derive: %s\n", err.msg);
        status = cli_exit(st);
        goto done;
    }
    if ((uint32_t)sample >= test->n) {
        fprintf(stderr, "backprop derive: --sample: %d is out of range: the test set of %s has "
                "%u images (0 to %u)\n", sample, data, test->n, test->n - 1);
        goto done;
    }
    /* no --model: v = W·u + b as on the slides (the activation is unused without a hidden
     * layer); auto, since a zero W would make every gradient but dL/db trivial */
    int sizes[2] = {(int)test->dim, BP_CLASSES};
    if (!m && ((st = bp_model_create(&m, sizes, 1, BP_ACT_RELU, &err)) ||
               (st = bp_model_init(m, BP_INIT_AUTO, seed, &err)))) {
        fprintf(stderr, "backprop derive: %s\n", err.msg);
        status = cli_exit(st);
        goto done;
    }
    if (!m->mlp) {
        fprintf(stderr, "backprop derive: %s is not an MLP: derive follows the seminar's "
                "linear and activation layers only (try gradcheck --arch for the others)\n",
                model);
        status = EXIT_USAGE;
        goto done;
    }
    if ((uint32_t)m->sizes[0] != test->dim || (uint32_t)m->sizes[m->nlayers] != test->classes) {
        fprintf(stderr, "backprop derive: %s has %d inputs and %d outputs; the test images of "
                "%s have %ux%u = %u pixels and %u classes\n", model, m->sizes[0],
                m->sizes[m->nlayers], data, test->cols, test->rows, test->dim, test->classes);
        goto done;
    }
    /* x/255 as the library gathers it: the derivation starts from the very floats bp_grad
     * is given, so that the last step compares like with like */
    float *X = malloc((size_t)test->dim * sizeof *X);
    uint8_t label = 0;
    status = 1;
    if (X)
        bp_dataset_gather(test, NULL, (uint32_t)sample, 1, X, &label);
    if (!X || net_init(&n, m, X, label, seed)) {
        fprintf(stderr, "backprop derive: out of memory\n");
        free(X);
        goto done;
    }

    char desc[256];
    cli_model_desc(m, desc, sizeof desc);
    printf("backprop derive: the seminar's steps on one test image, with its numbers\n");
    if (model)
        printf("  model   %s: %s\n", model, desc);
    else
        printf("  model   fresh %s, bp_model_init auto, seed %llu\n", desc,
               (unsigned long long)seed);
    printf("  image   %s, test image %d of %u, label %d\n", data, sample, test->n, label);
    printf("  indices from 0, as in the code (the slides count from 1)\n");
    printf("  checks  err = |value - reference| / max(1, |value|, |reference|) against, in "
           "double,\n          a second forward pass (tol %.0e) and central differences\n"
           "          (L(p + h) - L(p - h)) / 2h with h = %g (tol %.0e); then the library's\n"
           "          float32 pass (tol %.0e)\n", DV_TOL_REF, DV_STEP, DV_TOL_FD, DV_TOL_LIB);
    dv_tally t = {0, 0};
    derive_forward(&n);
    derive_backward(&n);
    dv_step_forward(&n, &t, test->rows, test->cols);
    dv_step_softmax(&n, &t);
    dv_step_layers(&n, &t, test->rows, test->cols);
    dv_step_input(&n, test->rows, test->cols, !model);
    printf("\nStep 6. The library's float32 pass on the same image: bp_forward, then bp_grad "
           "(impl blas)\n");
    if (dv_check_library(&n, m, X, &t) == 0) {
        if (t.failed)
            printf("\n%d checks, %d FAILED\n", t.total, t.failed);
        else
            printf("\n%d checks, all ok\n", t.total);
        status = t.failed ? 1 : 0;
    }
    free(X);
done:
    free(n.mem);
    free(n.sign);
    bp_model_free(m);
    bp_dataset_free(train);
    bp_dataset_free(test);
    return status;
}
