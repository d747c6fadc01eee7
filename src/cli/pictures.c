/* backprop weights and backprop plot: the two picture commands. Each parses its options and
 * calls one library writer (bp_picture_weights, bp_plot_log), which writes atomically. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void weights_help(FILE *f)
{
    fputs("usage: backprop weights --model FILE --out FILE.png [--units N]\n"
          "Draw the first layer's weights as images in a diverging colour map (blue\n"
          "negative, white 0, red positive; each tile scaled to its own largest |w|).\n"
          "For softmax regression these are the ten class templates, in class order; for\n"
          "an MLP, the N hidden units with the largest weight norms, largest first.\n"
          "\n"
          "  --model FILE   a model file written by train --save or --checkpoint\n"
          "  --out FILE     the PNG to write (replaced only by a complete new file)\n"
          "  --units N      MLP: how many units to draw (default 64, at most 100)\n",
          f);
}

int cmd_weights(int argc, char **argv)
{
    enum { O_MODEL = 256, O_OUT, O_UNITS };
    static const struct option longopts[] = {
        {"model", required_argument, 0, O_MODEL}, {"out", required_argument, 0, O_OUT},
        {"units", required_argument, 0, O_UNITS}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *C = "weights", *model = NULL, *out = NULL;
    int units = 64, c;
    opterr = 0;
    optind = 0; /* a full reset (glibc, musl); 1 would resume a cluster left half-read */
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_OUT: out = optarg; break;
        case O_UNITS:
            if (opt_int(C, "--units", optarg, &units))
                return EXIT_USAGE;
            if (units < 1 || units > 100) {
                fprintf(stderr, "backprop weights: --units: %d must be from 1 to 100\n", units);
                return EXIT_USAGE;
            }
            break;
        case 'h': weights_help(stdout); return 0;
        default: cli_opt_error(C, c, argv, longopts); return EXIT_USAGE;
        }
    }
    if (optind < argc || !model || !out) {
        fprintf(stderr, "backprop weights: %s\nTry 'backprop weights --help'.\n",
                optind < argc ? "unexpected argument" : "--model FILE and --out FILE.png are required");
        return EXIT_USAGE;
    }
    bp_model *m = NULL;
    int status = cli_load_model(C, model, &m, NULL);
    if (status)
        return status;
    uint32_t rows, cols;
    bp_error err = {0};
    if (!cli_input_shape(m, &rows, &cols)) {
        fprintf(stderr, "backprop weights: %s takes %d inputs, which are not an image shape\n",
                model, m->sizes[0]);
        status = EXIT_USAGE;
    } else if (bp_picture_weights(out, m, rows, cols, m->nlayers > 1 ? units : 0, &err)) {
        fprintf(stderr, "backprop weights: %s\n", err.msg);
        status = 1;
    }
    bp_model_free(m);
    return status;
}

static void plot_help(FILE *f)
{
    fputs("usage: backprop plot LOG.csv --out FILE.svg\n"
          "Draw the loss and accuracy per epoch, train and test, from the CSV that\n"
          "`backprop train --log LOG.csv` writes.\n",
          f);
}

int cmd_plot(int argc, char **argv)
{
    enum { O_OUT = 256 };
    static const struct option longopts[] = {
        {"out", required_argument, 0, O_OUT}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *C = "plot", *out = NULL;
    int c;
    opterr = 0;
    optind = 0; /* a full reset (glibc, musl); 1 would resume a cluster left half-read */
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case O_OUT: out = optarg; break;
        case 'h': plot_help(stdout); return 0;
        default: cli_opt_error(C, c, argv, longopts); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || !out) {
        fprintf(stderr, "backprop plot: %s\nTry 'backprop plot --help'.\n",
                !out ? "--out FILE.svg is required" : "give exactly one LOG.csv");
        return EXIT_USAGE;
    }
    bp_error err = {0};
    int st = bp_plot_log(argv[optind], out, &err);
    if (st) {
        fprintf(stderr, "backprop plot: %s\n", err.msg);
        return cli_exit(st);
    }
    return 0;
}
