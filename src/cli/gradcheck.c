/* backprop gradcheck: every gradient tensor of a (random) model on a random batch against
 * central differences in double precision. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void help(FILE *f)
{
    fputs("usage: backprop gradcheck [OPTIONS]\n"
          "Check the analytic gradients of a randomly initialised model on a random batch\n"
          "(inputs uniform in [0,1]) against central differences of a double-precision\n"
          "loss. Prints one line per tensor. With ReLU, an entry whose step moves a\n"
          "pre-activation across 0 is not differentiable there: it is skipped and\n"
          "counted (\"skipped N (ReLU kink)\"). Exit status: 0 all within the tolerance,\n"
          "1 some tensor is not (a NaN or infinite gradient never is), 2 bad usage.\n"
          "\n"
          "  --hidden W[,W...]   hidden widths (default none)\n"
          "  --act relu|tanh|sigmoid  (default relu)\n"
          "  --arch LIST         layers as for train --arch (the input is a square image of\n"
          "                      --inputs pixels when the list has spatial layers)\n"
          "  --impl blas|jacobian|naive  (default blas)\n"
          "  --batch N           samples in the batch (default 8)\n"
          "  --inputs N          input width (default 784)\n"
          "  --entries N         entries drawn per tensor, 0 for all (default 100)\n"
          "  --step H            finite-difference step (default 1e-5; the reference is\n"
          "                      double, so its rounding error is ~1e-11)\n"
          "  --tol F             largest relative error accepted (default 1e-2)\n"
          "  --seed N            (default 1)\n"
          "  --threads N         OpenBLAS threads (default OPENBLAS_NUM_THREADS, else all\n"
          "                      cores)\n",
          f);
}

/* --arch on a square image of inputs pixels (a flat input of that width without spatial
 * layers); -100 after printing why not. */
static int gradcheck_arch(const char *arch, int inputs, bp_model **m)
{
    uint32_t r = 1;
    while ((r + 1) * (r + 1) <= (uint32_t)inputs)
        r++;
    if (inputs < 1 || r * r != (uint32_t)inputs) {
        fprintf(stderr, "backprop gradcheck: --inputs: %d is not a square image for --arch\n",
                inputs);
        return -100;
    }
    return cli_arch_model("gradcheck", arch, BP_CLASSES, r, r, m) ? -100 : 0;
}

int cmd_gradcheck(int argc, char **argv)
{
    enum { O_HIDDEN = 256, O_ACT, O_IMPL, O_BATCH, O_INPUTS, O_ENTRIES, O_STEP, O_TOL, O_SEED, O_THREADS, O_ARCH };
    static const struct option longopts[] = {
        {"hidden", required_argument, 0, O_HIDDEN}, {"act", required_argument, 0, O_ACT},
        {"impl", required_argument, 0, O_IMPL},     {"batch", required_argument, 0, O_BATCH},
        {"inputs", required_argument, 0, O_INPUTS}, {"entries", required_argument, 0, O_ENTRIES},
        {"step", required_argument, 0, O_STEP},     {"tol", required_argument, 0, O_TOL},
        {"seed", required_argument, 0, O_SEED},     {"threads", required_argument, 0, O_THREADS},
        {"arch", required_argument, 0, O_ARCH},     {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *C = "gradcheck", *arch = NULL;
    int given_net = 0;
    int hidden[BP_MAX_LAYERS], nhidden = 0, batch = 8, inputs = 784, entries = 100, threads = 0;
    bp_act act = BP_ACT_RELU;
    bp_impl impl = BP_IMPL_BLAS;
    float step = 1e-5f, tol = 1e-2f;
    bp_error err = {0};
    uint64_t seed = 1;
    opterr = 0;
    optind = 0; /* a full reset (glibc, musl); 1 would resume a cluster left half-read */
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_ARCH:
            arch = optarg;
            bad = cli_arch_model(C, arch, BP_CLASSES, 0, 0, NULL) ? -1 : 0;
            break;
        case O_HIDDEN: given_net = 1; bad = opt_widths(C, "--hidden", optarg, hidden, BP_MAX_LAYERS - 1, &nhidden); break;
        case O_ACT: given_net = 1; bad = opt_parsed(C, "--act", bp_act_parse(optarg, &act, &err), &err); break;
        case O_IMPL: bad = opt_parsed(C, "--impl", bp_impl_parse(optarg, &impl, &err), &err); break;
        case O_BATCH: bad = opt_int(C, "--batch", optarg, &batch); break;
        case O_INPUTS: bad = opt_int(C, "--inputs", optarg, &inputs); break;
        case O_ENTRIES: bad = opt_int(C, "--entries", optarg, &entries); break;
        case O_STEP: bad = opt_float(C, "--step", optarg, &step); break;
        case O_TOL:
            /* the tolerance is the tool's verdict, not a library setting */
            bad = opt_float(C, "--tol", optarg, &tol);
            if (!bad && !(tol > 0.0f && tol <= 1.0f)) {
                fprintf(stderr, "backprop gradcheck: --tol: %g must be greater than 0 and at "
                        "most 1\n", tol);
                bad = -1;
            }
            break;
        case O_SEED: bad = opt_u64(C, "--seed", optarg, &seed); break;
        case O_THREADS: bad = opt_int(C, "--threads", optarg, &threads); break;
        case 'h': help(stdout); return 0;
        default: cli_opt_error(C, c, argv, longopts); return EXIT_USAGE;
        }
        if (bad) {
            fputs("Try 'backprop gradcheck --help'.\n", stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "backprop gradcheck: unexpected argument '%s'\nTry 'backprop gradcheck --help'.\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (arch && given_net) {
        fprintf(stderr, "backprop gradcheck: --arch: not with --hidden or --act (the "
                "architecture lists its own layers)\nTry 'backprop gradcheck --help'.\n");
        return EXIT_USAGE;
    }
    int sizes[BP_MAX_LAYERS + 1], L = nhidden + 1, status = 1, nres = 0;
    sizes[0] = inputs;
    for (int l = 0; l < nhidden; l++)
        sizes[l + 1] = hidden[l];
    sizes[L] = BP_CLASSES;
    bp_model *m = NULL;
    float *X = NULL;
    uint8_t *labels = NULL;
    bp_gradcheck_tensor res[2 * BP_MAX_LAYERS + 1];
    /* The library checks every range (entries < 0 becomes a huge size_t: refuse it here) */
    if (entries < 0 || (status = bp_gradcheck_check(batch, step, &err)) ||
        (!arch && (status = bp_model_create(&m, sizes, L, act, &err))) ||
        (arch && (status = gradcheck_arch(arch, inputs, &m))) ||
        (status = bp_model_init(m, BP_INIT_AUTO, seed, &err))) {
        if (status == -100) { /* gradcheck_arch has said why */
            status = EXIT_USAGE;
            goto done;
        }
        if (entries < 0)
            fprintf(stderr, "backprop gradcheck: --entries: %d must be 0 (all) or positive\n",
                    entries);
        else
            cli_error(C, &err, (const char *const[]){"batch", "--batch", "h", "--step", NULL});
        status = EXIT_USAGE;
        goto done;
    }
    status = 1;
    X = malloc((size_t)batch * inputs * sizeof *X);
    labels = malloc((size_t)batch);
    if (!X || !labels) {
        fprintf(stderr, "backprop gradcheck: out of memory\n");
        goto done;
    }
    bp_rng rng;
    bp_rng_seed(&rng, seed);
    /* random biases too, so their gradients are not checked only at 0 */
    for (int l = 0; l < m->nlayers; l++)
        for (float *b = m->b[l]; b < (l + 1 < m->nlayers ? m->W[l + 1] : m->params + m->nparams);
             b++)
            *b = (float)(0.1 * bp_rng_normal(&rng));
    for (long i = 0; i < batch * inputs; i++)
        X[i] = (float)bp_rng_uniform(&rng);
    for (long i = 0; i < batch; i++)
        labels[i] = (uint8_t)bp_rng_below(&rng, BP_CLASSES);
    if (bp_gradcheck(m, impl, X, labels, batch, step, (size_t)entries, seed, cli_threads(C, threads),
                     res, &nres, &err)) {
        fprintf(stderr, "backprop gradcheck: %s\n", err.msg);
        goto done;
    }
    status = 0;
    printf("gradcheck: impl %s, batch %d, step %g, tolerance %g (relative, floor 1e-6)\n",
           bp_impl_name(impl), batch, step, tol);
    for (int t = 0; t < nres; t++) {
        int ok = res[t].max_rel_err <= tol;
        printf("%-4s checked %8zu  max_abs_err %.3e  max_rel_err %.3e  %s", res[t].name,
               res[t].checked, res[t].max_abs_err, res[t].max_rel_err, ok ? "ok" : "FAIL");
        if (res[t].skipped)
            printf("  skipped %zu (ReLU kink)", res[t].skipped);
        putchar('\n');
        if (!ok)
            status = 1;
    }
done:
    bp_model_free(m);
    free(X);
    free(labels);
    return status;
}
