/* The backprop tool: shared option parsing and the subcommands. Only the CLI prints or exits. */
#ifndef BP_CLI_H
#define BP_CLI_H

#include "backprop.h"

#define EXIT_USAGE 2

/* Each parser returns 0 and stores the value, or prints "backprop CMD: --opt: …" and returns
 * −1. Values must be complete numbers; NaN and infinities are refused. */
int opt_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
int opt_u64(const char *cmd, const char *opt, const char *s, uint64_t *out);
int opt_float(const char *cmd, const char *opt, const char *s, double lo_excl, double hi,
              float *out);
/* s must equal one of names[0..n-1]; *out gets its index. */
int opt_choice(const char *cmd, const char *opt, const char *s, const char *const *names, int n,
               int *out);
/* "256,128" → widths; "" or "none" → 0 widths. */
int opt_widths(const char *cmd, const char *opt, const char *s, int *widths, int max, int *n);

/* The number of OpenBLAS threads to use: --threads if given (> 0), else OPENBLAS_NUM_THREADS,
 * else every online core; never more than the cores. Prints a warning when it has to cap. */
int cli_threads(const char *cmd, long requested);

int cmd_train(int argc, char **argv);
int cmd_gradcheck(int argc, char **argv);

#endif
