/* Strict option parsing: a value is a whole number or it is an error, never a silent 0. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *cli_prog = "backprop";
/* "backprop train", or the program alone when cmd is "" (the benchmark's own options). */
#define WHO "%s%s%s"
#define WHO_ARGS(cmd) cli_prog, *(cmd) ? " " : "", (cmd)

int opt_int(const char *cmd, const char *opt, const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < INT_MIN || v > INT_MAX) {
        fprintf(stderr, WHO ": %s: expected an integer, got '%s'\n", WHO_ARGS(cmd), opt, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int opt_u64(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || errno || s[strspn(s, " \t\n\v\f\r")] == '-') {
        fprintf(stderr, WHO ": %s: expected a non-negative integer, got '%s'\n", WHO_ARGS(cmd), opt,
                s);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

int opt_float(const char *cmd, const char *opt, const char *s, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v) || fabs(v) > FLT_MAX) {
        fprintf(stderr, WHO ": %s: expected a finite number, got '%s'\n", WHO_ARGS(cmd), opt, s);
        return -1;
    }
    if (v != 0.0 && (float)v == 0.0f) { /* e.g. 1e-50: 0 as a float, which means "default" */
        fprintf(stderr, WHO ": %s: %g is too small for single precision\n", WHO_ARGS(cmd), opt, v);
        return -1;
    }
    *out = (float)v;
    return 0;
}

int opt_widths(const char *cmd, const char *opt, const char *s, int *widths, int max, int *n)
{
    *n = 0;
    if (!*s || strcmp(s, "none") == 0)
        return 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > BP_MAX_WIDTH || (*end && *end != ',')) {
            fprintf(stderr,
                    WHO ": %s: expected widths like 256 or 512,256 (each 1 to %d), "
                    "got '%s'\n",
                    WHO_ARGS(cmd), opt, BP_MAX_WIDTH, s);
            return -1;
        }
        if (*n == max) {
            fprintf(stderr, WHO ": %s: at most %d hidden layers\n", WHO_ARGS(cmd), opt, max);
            return -1;
        }
        widths[(*n)++] = (int)v;
        if (!*end)
            return 0;
        p = end + 1;
    }
}

int opt_parsed(const char *cmd, const char *opt, int st, const bp_error *err)
{
    if (st == BP_OK)
        return 0;
    fprintf(stderr, WHO ": %s: %s\n", WHO_ARGS(cmd), opt, err->msg);
    return -1;
}

void cli_error(const char *cmd, const bp_error *err, const char *const *flags)
{
    size_t n = strlen(err->field);
    for (int i = 0; n && flags && flags[i]; i += 2)
        if (strcmp(flags[i], err->field) == 0 && strncmp(err->msg, err->field, n) == 0) {
            fprintf(stderr, WHO ": %s%s\n", WHO_ARGS(cmd), flags[i + 1], err->msg + n);
            return;
        }
    fprintf(stderr, WHO ": %s\n", WHO_ARGS(cmd), err->msg);
}

int cli_threads(const char *cmd, int requested)
{
    int capped = 0, n = bp_threads_resolve(requested, &capped);
    if (capped)
        fprintf(stderr, WHO ": warning: more threads requested than the %d cores online; "
                "using %d\n", WHO_ARGS(cmd), n, n);
    return n;
}

int cli_exit(int st)
{
    return st == BP_ERR_ARG || st == BP_ERR_FORMAT || st == BP_ERR_IO ? EXIT_USAGE : 1;
}

int cli_load_model(const char *cmd, const char *path, bp_model **m, bp_model_info *info)
{
    bp_error err = {0};
    int st = bp_model_load(path, m, info, NULL, &err);
    if (st) {
        fprintf(stderr, WHO ": %s\n", WHO_ARGS(cmd), err.msg);
        return cli_exit(st);
    }
    return 0;
}

int cli_arch_model(const char *cmd, const char *s, int classes, uint32_t rows, uint32_t cols,
                   bp_model **m)
{
    bp_error err = {0};
    bp_layer list[BP_MAX_LIST];
    int n = 0;
    if (bp_arch_parse(s, list, BP_MAX_LIST - 2, &n, &err)) {
        fprintf(stderr, "backprop %s: --arch: %s\n", cmd, err.msg);
        return EXIT_USAGE;
    }
    int spatial = 0;
    for (int i = 0; i < n; i++) {
        bp_layer_kind k = list[i].kind;
        if (k == BP_LAYER_CONV2D || k == BP_LAYER_MAXPOOL || k == BP_LAYER_AVGPOOL)
            spatial = 1;
        else if (k == BP_LAYER_FLATTEN || k == BP_LAYER_LINEAR)
            spatial = 0;
    }
    if (spatial) {
        memset(&list[n], 0, sizeof list[n]);
        list[n++].kind = BP_LAYER_FLATTEN;
    }
    memset(&list[n], 0, sizeof list[n]);
    list[n].kind = BP_LAYER_LINEAR, list[n++].units = classes;
    if (!m)
        return 0;
    int any_spatial = 0;
    for (int i = 0; i < n; i++)
        any_spatial |= list[i].kind == BP_LAYER_CONV2D || list[i].kind == BP_LAYER_MAXPOOL ||
                       list[i].kind == BP_LAYER_AVGPOOL;
    int st = any_spatial ? bp_model_create_layers(m, 1, (int)rows, (int)cols, list, n, &err)
                         : bp_model_create_layers(m, (int)(rows * cols), 1, 1, list, n, &err);
    if (st) {
        fprintf(stderr, "backprop %s: --arch: %s\n", cmd, err.msg);
        return st == BP_ERR_NOMEM ? 1 : EXIT_USAGE;
    }
    (*m)->input_rows = rows, (*m)->input_cols = cols;
    return 0;
}

const char *cli_model_desc(const bp_model *m, char *buf, size_t len)
{
    if (!m->mlp) {
        char arch[512];
        snprintf(buf, len, "%dx%ux%u %s", m->input_channels, m->input_rows, m->input_cols,
                 bp_arch_format(m, arch, sizeof arch));
        return buf;
    }
    size_t n = 0;
    buf[0] = '\0';
    for (int l = 0; l <= m->nlayers && n < len; l++)
        n += (size_t)snprintf(buf + n, len - n, "%s%d", l ? "-" : "", m->sizes[l]);
    if (n < len)
        snprintf(buf + n, len - n, " %s",
                 m->nlayers > 1 ? bp_act_name(m->act) : "softmax regression");
    return buf;
}

int cli_input_shape(const bp_model *m, uint32_t *rows, uint32_t *cols)
{
    if (m->input_rows && m->input_cols) {
        *rows = m->input_rows, *cols = m->input_cols;
        return 1;
    }
    uint32_t r = 1;
    while ((r + 1) * (r + 1) <= (uint32_t)m->sizes[0])
        r++;
    if (r * r != (uint32_t)m->sizes[0])
        return 0;
    *rows = *cols = r;
    return 1;
}

/* What is wrong with a long option getopt_long refused: unknown, ambiguous (a prefix of
 * several), given a value it takes none, or missing its value. */
static void long_opt_error(const char *cmd, int c, const char *arg, const struct option *lo)
{
    const char *name = arg + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    int matches = 0, exact = -1, first = -1;
    for (int i = 0; lo[i].name; i++)
        if (strncmp(lo[i].name, name, len) == 0) {
            if (strlen(lo[i].name) == len)
                exact = i;
            if (first < 0)
                first = i;
            matches++;
        }
    int hit = exact >= 0 ? exact : matches == 1 ? first : -1;
    if (c == ':' && hit >= 0)
        fprintf(stderr, WHO ": --%s needs a value\n", WHO_ARGS(cmd), lo[hit].name);
    else if (hit >= 0 && eq && lo[hit].has_arg == no_argument)
        fprintf(stderr, WHO ": --%s takes no value (got '%s')\n", WHO_ARGS(cmd), lo[hit].name, arg);
    else if (hit < 0 && matches > 1) {
        fprintf(stderr, WHO ": ambiguous option '--%.*s' (could be", WHO_ARGS(cmd), (int)len, name);
        for (int i = 0; lo[i].name; i++)
            if (strncmp(lo[i].name, name, len) == 0)
                fprintf(stderr, " --%s", lo[i].name);
        fprintf(stderr, ")\n");
    } else
        fprintf(stderr, WHO ": unknown option '--%.*s'\n", WHO_ARGS(cmd), (int)len, name);
}

int cli_opt_error(const char *cmd, int c, char **argv, const struct option *longopts)
{
    /* optind has moved past a long option, but not out of a cluster of short ones ("-xy"):
     * argv[optind - 1] is only the offending word for a long option. */
    /* optopt is 0 for an unknown long option and the option's val (≥ 256, or 'h' for --help)
     * for a long one given a value it takes none; any other character is a short option. */
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    int short_opt = c != ':' && optopt != 0 && optopt < 256 && optopt != 'h'; /* < 0: a byte
                                                                                * above 127 */
    if (!short_opt && strncmp(arg, "--", 2) == 0 && arg[2])
        long_opt_error(cmd, c, arg, longopts);
    else if (short_opt)
        fprintf(stderr, WHO ": unknown option '-%c'\n", WHO_ARGS(cmd), (char)optopt);
    else
        fprintf(stderr, WHO ": unknown option '%s'\n", WHO_ARGS(cmd), arg);
    fprintf(stderr, "Try '" WHO " --help'.\n", WHO_ARGS(cmd));
    return -1;
}
