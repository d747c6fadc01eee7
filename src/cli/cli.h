/* The backprop tool: shared option parsing and the subcommands. Only the CLI prints or exits;
 * ranges, defaults and names come from the library, so the tool and a C caller agree. */
#ifndef BP_CLI_H
#define BP_CLI_H

#include "backprop.h"

#define EXIT_USAGE 2

/* The program the messages below name first: "backprop" (the tool; then "backprop CMD: …"). The
 * benchmark sets "bp_bench" and passes cmd "", so its messages read "bp_bench: …". */
extern const char *cli_prog;

/* Each parser returns 0 and stores the value, or prints "backprop CMD: --opt: …" and returns
 * −1. They check syntax only (a complete number that fits the type; NaN, infinities and a
 * non-zero value that rounds to 0 in single precision are refused): the library checks the
 * ranges, through bp_train_config_check and friends. */
int opt_int(const char *cmd, const char *opt, const char *s, int *out);
int opt_u64(const char *cmd, const char *opt, const char *s, uint64_t *out);
int opt_float(const char *cmd, const char *opt, const char *s, float *out);
/* "256,128" → widths; "" or "none" → 0 widths. */
int opt_widths(const char *cmd, const char *opt, const char *s, int *widths, int max, int *n);
/* The outcome st of a library parser (bp_act_parse, …): 0, or the message under the flag's
 * name and −1. */
int opt_parsed(const char *cmd, const char *opt, int st, const bp_error *err);

/* Prints a library error: "backprop CMD: MSG", with the field's C name replaced by the flag
 * that sets it when flags maps it (pairs of field, flag; NULL-terminated). */
void cli_error(const char *cmd, const bp_error *err, const char *const *flags);
/* bp_threads_resolve, with a warning on stderr when the request had to be capped. */
int cli_threads(const char *cmd, int requested);
/* The exit status for a failure to load input: 2 for bad input (a missing, unreadable or
 * invalid file, a bad argument), 1 for anything else (out of memory). */
int cli_exit(int st);

/* Loads a model file; on failure prints "backprop CMD: MSG" and returns the exit status (2 for
 * a bad or unreadable file), else 0. info may be NULL. */
int cli_load_model(const char *cmd, const char *path, bp_model **m, bp_model_info *info);
/* "784-256-10 relu" into buf. */
const char *cli_model_desc(const bp_model *m, char *buf, size_t len);
/* The model's input image shape: its recorded rows×cols, else a square if its width is one.
 * 0 if neither. */
int cli_input_shape(const bp_model *m, uint32_t *rows, uint32_t *cols);

/* --arch: the layer list of s with the classes-wide output layer appended (a flatten before it
 * when the list ends spatial), on inputs of rows×cols (a flat input when the list has no
 * spatial layer). m NULL: only the syntax is checked. On failure prints
 * "backprop CMD: --arch: …" and returns EXIT_USAGE (1 when out of memory). */
int cli_arch_model(const char *cmd, const char *s, int classes, uint32_t rows, uint32_t cols,
                   bp_model **m);

/* The getopt loop's common cases: ':' (a value missing), '?' (unknown, ambiguous, or a value
 * given to a flag that takes none), each said as it is, then the --help hint. Returns −1. */
struct option;
int cli_opt_error(const char *cmd, int c, char **argv, const struct option *longopts);

int cmd_train(int argc, char **argv);
int cmd_gradcheck(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_weights(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_derive(int argc, char **argv);

#endif
