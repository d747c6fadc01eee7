/* The subcommands one after another in one process. They parse with getopt_long, whose state
 * is the C library's: besides optind it keeps a pointer to where it is inside a cluster of
 * short options ("-xh"). A command that stops at the first bad option of a cluster leaves
 * that pointer inside its own argv; the next command must start afresh and not resume there
 * (found by tests/fuzz/fuzz_cli.c: with the first argv freed, that is a read after free).
 *
 * Each case runs a command that stops inside a cluster, overwrites that argv's strings (as
 * freeing and reusing them would), and runs a second command whose options must be read as
 * given. Output goes to memory streams (glibc's stdout and stderr are assignable). */
#include "check.h"
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *out, *err;
    size_t out_len, err_len;
} output;

static int run(int (*cmd)(int, char **), int argc, char **argv, output *o)
{
    FILE *saved_out = stdout, *saved_err = stderr;
    FILE *out = open_memstream(&o->out, &o->out_len), *err = open_memstream(&o->err, &o->err_len);
    if (!out || !err)
        abort();
    fflush(stdout);
    fflush(stderr);
    stdout = out;
    stderr = err;
    int rc = cmd(argc, argv);
    stdout = saved_out;
    stderr = saved_err;
    fclose(out);
    fclose(err);
    return rc;
}

typedef struct {
    const char *name;
    int (*cmd)(int, char **);
} command;

int main(void)
{
    static const command cmds[] = {{"train", cmd_train},     {"gradcheck", cmd_gradcheck},
                                   {"eval", cmd_eval},       {"predict", cmd_predict},
                                   {"weights", cmd_weights}, {"plot", cmd_plot}};
    int n = (int)(sizeof cmds / sizeof cmds[0]);
    for (int i = 0; i < n; i++) {
        const command *first = &cmds[i], *second = &cmds[(i + 1) % n];
        /* 1. stops at -x, inside the cluster -xh */
        char name1[16], cluster[] = "-xh";
        snprintf(name1, sizeof name1, "%s", first->name);
        char *argv1[] = {name1, cluster, NULL};
        output o = {0};
        int rc = run(first->cmd, 2, argv1, &o);
        CHECKF(rc == EXIT_USAGE, "%s -xh: exit %d", first->name, rc);
        CHECK_CONTAINS(o.err, "unknown option '-x'");
        free(o.out), free(o.err);
        memcpy(cluster, "-vv", 4); /* the first argv's memory, reused */

        /* 2. --help must print the second command's usage, nothing else */
        char name2[16], help[] = "--help";
        snprintf(name2, sizeof name2, "%s", second->name);
        char *argv2[] = {name2, help, NULL};
        o = (output){0};
        rc = run(second->cmd, 2, argv2, &o);
        char want[64];
        snprintf(want, sizeof want, "usage: backprop %s", second->name);
        CHECKF(rc == 0 && o.err_len == 0 && strncmp(o.out, want, strlen(want)) == 0,
               "%s -xh, then %s --help: exit %d, stdout '%.40s', stderr '%s'", first->name,
               second->name, rc, o.out, o.err);
        free(o.out), free(o.err);
    }
    return check_exit("test_cli_getopt");
}
