/* backprop: dispatch to a subcommand. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs("usage: backprop COMMAND [OPTIONS]\n"
          "\n"
          "commands:\n"
          "  train       train a softmax regression or MLP on MNIST-style data\n"
          "  gradcheck   compare every gradient with central finite differences\n"
          "  derive      the seminar's derivation step by step on one test image, checked\n"
          "  eval        accuracy, loss, confusion matrix of a saved model\n"
          "  predict     the most probable classes of PGM, PNG or IDX images\n"
          "  weights     draw a saved model's first-layer weights as a PNG\n"
          "  plot        draw a training log's loss and accuracy curves as an SVG\n"
          "\n"
          "'backprop COMMAND --help' describes a command's options.\n",
          f);
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("backprop %s\n", BP_VERSION);
        return 0;
    }
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"train", cmd_train},     {"gradcheck", cmd_gradcheck}, {"eval", cmd_eval},
                {"predict", cmd_predict}, {"weights", cmd_weights},     {"plot", cmd_plot},
                {"derive", cmd_derive}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(cmd, cmds[i].name) == 0)
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "backprop: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    int status = dispatch(argc, argv);
    /* Scripts parse what we print: a full disk or closed pipe must not pass as success. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "backprop: error writing standard output: %s\n", strerror(errno));
        return status ? status : 1;
    }
    return status;
}
