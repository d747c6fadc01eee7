/* The CLI's option parsing: cmd_train, cmd_eval and cmd_gradcheck on an argv cut from the
 * input at its NUL bytes, and the value parsers of src/cli/opts.c on their own.
 *
 * The first token picks the mode: "train", "eval" or "gradcheck" call that command with the
 * other tokens as its arguments; anything else gives every token to opt_int, opt_u64,
 * opt_float and opt_widths. The tokens "@model" and "@ckpt" become the paths of a small model
 * file and a checkpoint made at start-up, so the model-loading paths (eval --model,
 * train --resume) are reached too.
 *
 * Nothing heavy may run: train and eval get "--data" with a directory that does not exist as
 * their last arguments, and gradcheck a 4-input, 3-unit model on a batch of 2. getopt takes
 * the last of a repeated option, so these win over the input's; should the input end with an
 * option that takes a value, that value is "--data" (or "--inputs"), every parser refuses it,
 * and the command stops before any work.
 *
 * The commands print: stdout and stderr are swapped for memory streams around each call
 * (glibc's stdout and stderr are assignable variables). The sanitizers and libFuzzer write to
 * file descriptor 2 directly, so their reports still reach the terminal.
 *
 * Properties of a command: its exit status is 0, 1 or 2; train and eval succeed only for
 * --help or --version (there is no data), so with anything else they exit 2; a failure leaves
 * stdout empty (gradcheck's verdict excepted: a tolerance some tensor misses gives FAIL lines
 * and exit 1) and prints lines that each start with "backprop CMD" or the --help hint, and an
 * unknown option is named as the user wrote it, starting with '-'.
 * Properties of the value parsers: each accepts exactly what a reference reading of the
 * syntax accepts (for integers: optional blanks, a sign, digits, nothing else, in range),
 * with the same value, and prints one line when it refuses. */
#include "fuzz.h"
#include "internal.h"
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static char model_path[4096], ckpt_path[4096], nodata[4096];

/* A 2x2-input model trained one epoch of three on 20 tiny images, saved and checkpointed. */
static void make_models(void)
{
    uint8_t px[20 * 4], lab[20];
    for (int i = 0; i < 20; i++) {
        lab[i] = (uint8_t)(i % 10);
        for (int k = 0; k < 4; k++)
            px[4 * i + k] = (uint8_t)(25 * (i % 10) + 60 * k);
    }
    bp_dataset ds = {20, 2, 2, 4, BP_CLASSES, px, lab};
    int sizes[3] = {4, 3, BP_CLASSES};
    bp_model *m = NULL;
    bp_error err;
    bp_train_config cfg;
    bp_train_config_default(&cfg);
    cfg.epochs = 3, cfg.stop_after = 1, cfg.batch = 5, cfg.threads = 1;
    cfg.opt.kind = BP_OPT_ADAM;
    cfg.save_path = model_path;
    cfg.checkpoint_path = ckpt_path;
    int st = bp_model_create(&m, sizes, 2, BP_ACT_TANH, &err);
    if (!st) {
        m->input_rows = m->input_cols = 2;
        st = bp_model_init(m, BP_INIT_AUTO, 1, &err);
    }
    if (st || bp_train(m, &ds, &ds, &cfg, NULL, NULL, &err)) {
        fprintf(stderr, "fuzz_cli: cannot make the model files: %s\n", err.msg);
        abort();
    }
    bp_model_free(m);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_path(model_path, sizeof model_path, "model.safetensors");
    fuzz_path(ckpt_path, sizeof ckpt_path, "checkpoint.safetensors");
    fuzz_path(nodata, sizeof nodata, "no-data-here");
    make_models();
    return 0;
}

/* ---- capturing what the CLI prints ---- */

typedef struct {
    FILE *out, *err, *saved_out, *saved_err;
    char *out_buf, *err_buf;
    size_t out_len, err_len;
} capture;

static void capture_start(capture *c)
{
    memset(c, 0, sizeof *c);
    c->out = open_memstream(&c->out_buf, &c->out_len);
    c->err = open_memstream(&c->err_buf, &c->err_len);
    if (!c->out || !c->err)
        abort();
    fflush(stdout);
    fflush(stderr);
    c->saved_out = stdout, c->saved_err = stderr;
    stdout = c->out;
    stderr = c->err;
}

static void capture_end(capture *c)
{
    stdout = c->saved_out;
    stderr = c->saved_err;
    fclose(c->out); /* sets out_buf and out_len */
    fclose(c->err);
}

static void capture_free(capture *c)
{
    free(c->out_buf);
    free(c->err_buf);
}

/* ---- the commands ---- */

#define MAX_ARGS 256

/* Every line of the captured stderr starts with "backprop CMD" or the hint, and each line
 * that reports an unknown option names one that starts with '-'. */
static void check_stderr(const char *cmd, const capture *c, int rc)
{
    char want[64], hint[64];
    snprintf(want, sizeof want, "backprop %s", cmd);
    snprintf(hint, sizeof hint, "Try 'backprop %s --help'.", cmd);
    FUZZ_REQUIRE(c->err_len == 0 || c->err_buf[c->err_len - 1] == '\n',
                 "%s: stderr does not end with a newline: %s", cmd, c->err_buf);
    for (const char *line = c->err_buf; line < c->err_buf + c->err_len;) {
        const char *end = memchr(line, '\n', (size_t)(c->err_buf + c->err_len - line));
        size_t len = (size_t)(end - line);
        FUZZ_REQUIRE((len >= strlen(want) && memcmp(line, want, strlen(want)) == 0) ||
                         (len == strlen(hint) && memcmp(line, hint, len) == 0),
                     "%s (exit %d): a line of stderr is neither a message nor the hint: %.*s",
                     cmd, rc, (int)len, line);
        char unknown[64];
        size_t ulen = (size_t)snprintf(unknown, sizeof unknown, "%s: unknown option '", want);
        if (len > ulen && memcmp(line, unknown, ulen) == 0)
            FUZZ_REQUIRE(line[ulen] == '-', "%s: the unknown option named is not an option: %.*s",
                         cmd, (int)len, line);
        line = end + 1;
    }
}

static void run_command(const char *cmd, char **tokens, int ntok)
{
    static const char *const train_tail[] = {"--data", NULL};
    static const char *const grad_tail[] = {"--inputs", "4",  "--hidden", "3", "--batch", "2",
                                            "--entries", "3", "--threads", "1"};
    char *argv[MAX_ARGS + 16];
    int argc = 0;
    argv[argc++] = (char *)cmd;
    for (int i = 0; i < ntok; i++)
        argv[argc++] = strcmp(tokens[i], "@model") == 0  ? model_path
                       : strcmp(tokens[i], "@ckpt") == 0 ? ckpt_path
                                                         : tokens[i];
    int grad = strcmp(cmd, "gradcheck") == 0;
    if (grad) {
        for (size_t k = 0; k < sizeof grad_tail / sizeof *grad_tail; k++)
            argv[argc++] = (char *)grad_tail[k];
    } else {
        argv[argc++] = (char *)train_tail[0];
        argv[argc++] = nodata;
    }
    argv[argc] = NULL;
    capture c;
    capture_start(&c);
    int rc = strcmp(cmd, "train") == 0 ? cmd_train(argc, argv)
             : grad                    ? cmd_gradcheck(argc, argv)
                                       : cmd_eval(argc, argv);
    capture_end(&c);
    FUZZ_REQUIRE(rc == 0 || rc == 1 || rc == EXIT_USAGE, "%s: exit status %d", cmd, rc);
    if (!grad)
        FUZZ_REQUIRE(rc == EXIT_USAGE || (rc == 0 && c.out_len && !c.err_len) ||
                         (rc == 1 && strstr(c.err_buf, "out of memory")),
                     "%s without data: exit %d, stdout '%.80s', stderr '%.200s'", cmd, rc,
                     c.out_buf, c.err_buf);
    if (rc == 0) {
        FUZZ_REQUIRE(strncmp(c.out_buf, "usage: backprop ", 16) == 0 ||
                         strncmp(c.out_buf, "backprop ", 9) == 0 ||
                         (grad && strncmp(c.out_buf, "gradcheck: impl ", 16) == 0),
                     "%s: exit 0 with stdout '%.80s'", cmd, c.out_buf);
    } else if (grad && rc == 1 && c.out_len) {
        FUZZ_REQUIRE(strstr(c.out_buf, "FAIL") && !c.err_len,
                     "gradcheck: exit 1 with stdout '%.200s' and stderr '%.200s'", c.out_buf,
                     c.err_buf);
    } else {
        FUZZ_REQUIRE(c.out_len == 0, "%s: exit %d, but stdout has '%.80s'", cmd, rc, c.out_buf);
        FUZZ_REQUIRE(c.err_len > 0, "%s: exit %d without a message", cmd, rc);
    }
    check_stderr(cmd, &c, rc);
    capture_free(&c);
}

/* ---- the value parsers against a reference reading of their syntax ---- */

/* Optional blanks (as strtol skips them), a sign if sign_ok, decimal digits, nothing else.
 * *neg says if it was negative; *mag the magnitude, saturated at UINT64_MAX (*over set). */
static int ref_integer(const char *s, int sign_ok, int *neg, uint64_t *mag, int *over)
{
    *neg = *over = 0;
    *mag = 0;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '+' || *s == '-') {
        if (*s == '-' && !sign_ok)
            return 0;
        *neg = *s++ == '-';
    }
    if (!isdigit((unsigned char)*s))
        return 0;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (*mag > (UINT64_MAX - d) / 10)
            *over = 1, *mag = UINT64_MAX;
        else if (!*over)
            *mag = 10 * *mag + d;
    }
    return *s == '\0';
}

/* One opt_* call on s: it must print one line when it refuses (a value with newlines in it is
 * echoed as it is, so those may add lines) and nothing when it accepts. */
static int parsed(capture *c, int rc, const char *s)
{
    capture_end(c);
    size_t lines = 0, in_value = 0;
    for (size_t i = 0; i < c->err_len; i++)
        lines += c->err_buf[i] == '\n';
    for (const char *p = s; *p; p++)
        in_value += *p == '\n';
    if (rc)
        FUZZ_REQUIRE(c->err_len > 0 && c->err_buf[c->err_len - 1] == '\n' &&
                         lines <= 1 + in_value &&
                         strncmp(c->err_buf, "backprop fuzz: --opt: ", 22) == 0,
                     "a refusal that is not one line naming the option: %s", c->err_buf);
    else
        FUZZ_REQUIRE(c->err_len == 0 && c->out_len == 0, "an accepted value printed");
    capture_free(c);
    return rc;
}

static void check_values(const char *s)
{
    capture c;
    int neg, over;
    uint64_t mag;

    int iv = 12345;
    capture_start(&c);
    int r = parsed(&c, opt_int("fuzz", "--opt", s, &iv), s);
    int ok = ref_integer(s, 1, &neg, &mag, &over) && !over &&
             mag <= (neg ? (uint64_t)INT_MAX + 1 : (uint64_t)INT_MAX);
    FUZZ_REQUIRE((r == 0) == ok, "opt_int('%s') gives %d", s, r);
    if (ok)
        FUZZ_REQUIRE((long long)iv == (neg ? -(long long)mag : (long long)mag),
                     "opt_int('%s') = %d", s, iv);

    uint64_t uv = 12345;
    capture_start(&c);
    r = parsed(&c, opt_u64("fuzz", "--opt", s, &uv), s);
    ok = ref_integer(s, 0, &neg, &mag, &over) && !over;
    FUZZ_REQUIRE((r == 0) == ok, "opt_u64('%s') gives %d", s, r);
    if (ok)
        FUZZ_REQUIRE(uv == mag, "opt_u64('%s') = %llu", s, (unsigned long long)uv);

    float fv = 1.5f;
    capture_start(&c);
    r = parsed(&c, opt_float("fuzz", "--opt", s, &fv), s);
    char *end;
    double d = strtod(s, &end);
    ok = end != s && *end == '\0' && isfinite(d) && fabs(d) <= FLT_MAX &&
         !(d != 0 && (float)d == 0);
    FUZZ_REQUIRE((r == 0) == ok, "opt_float('%s') gives %d", s, r);
    if (ok)
        FUZZ_REQUIRE(fv == (float)d && isfinite(fv), "opt_float('%s') = %g", s, (double)fv);

    int w[BP_MAX_LAYERS], n = -1, max = BP_MAX_LAYERS - 1;
    capture_start(&c);
    r = parsed(&c, opt_widths("fuzz", "--opt", s, w, max, &n), s);
    /* The reference: "" or "none", or comma-separated integers of 1..BP_MAX_WIDTH. */
    int want[BP_MAX_LAYERS], nwant = 0;
    ok = 1;
    if (*s && strcmp(s, "none") != 0) {
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", s);
        for (char *p = buf, *comma;; p = comma + 1) {
            comma = strchr(p, ',');
            if (comma)
                *comma = '\0';
            if (!ref_integer(p, 1, &neg, &mag, &over) || neg || over || mag < 1 ||
                mag > BP_MAX_WIDTH || nwant == max) {
                ok = 0;
                break;
            }
            want[nwant++] = (int)mag;
            if (!comma)
                break;
        }
    }
    FUZZ_REQUIRE((r == 0) == ok, "opt_widths('%s') gives %d", s, r);
    if (ok) {
        FUZZ_REQUIRE(n == nwant, "opt_widths('%s'): %d widths, %d expected", s, n, nwant);
        for (int k = 0; k < n; k++)
            FUZZ_REQUIRE(w[k] == want[k], "opt_widths('%s'): width %d is %d", s, k, w[k]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0; /* a command line, not a file */
    char *buf = malloc(size + 1), *tokens[MAX_ARGS];
    if (!buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = '\0';
    int ntok = 0;
    /* NUL ends a token; one at the very end of the input ends the last, adds no empty one. */
    for (char *p = buf; ntok < MAX_ARGS && p < buf + size; p += strlen(p) + 1)
        tokens[ntok++] = p;
    static const char *const cmds[] = {"train", "eval", "gradcheck"};
    int cmd = -1;
    for (int k = 0; ntok && k < 3; k++)
        if (strcmp(tokens[0], cmds[k]) == 0)
            cmd = k;
    if (cmd >= 0) {
        /* The messages quote arguments as given: a newline in one would split a message into
         * lines that check_stderr cannot tell from others, so it becomes a space here. */
        for (size_t i = 0; i < size; i++)
            if (buf[i] == '\n')
                buf[i] = ' ';
        run_command(cmds[cmd], tokens + 1, ntok - 1);
    } else {
        for (int i = 0; i < ntok; i++)
            check_values(tokens[i]);
    }
    free(buf);
    return 0;
}
