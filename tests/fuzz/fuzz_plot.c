/* The training-log reader and plotter (bp_plot_log) on the input as the CSV log.
 *
 * Properties:
 *  - the log is accepted exactly when it follows the format, judged by a reader of its own
 *    here: the header line, then at least one row of 9 numbers (strtod, whole field, no
 *    leading blank), epochs integers 1..100000 that increase, test_loss and test_acc NaN on
 *    every row or on none, losses 0..1e9, accuracies 0..1, lines of at most 1023 bytes, no
 *    NUL;
 *  - an accepted log gives an SVG that starts with the XML declaration and the svg element and
 *    ends with </svg>, holds no NaN or infinite coordinate, and whose loss and accuracy curves
 *    have one point per row;
 *  - a refused log leaves no SVG behind, and its message starts with "PATH:LINE:" for a
 *    format error, LINE at most one past the last line. */
#include "fuzz.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char csv[4096], svg[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_path(csv, sizeof csv, "log.csv");
    fuzz_path(svg, sizeof svg, "curves.svg");
    return 0;
}

#define HEADER "epoch,step,train_loss,train_acc,test_loss,test_acc,lr,seconds,samples_per_s"

static int field_number(const char *s, double *v)
{
    if (!*s || isspace((unsigned char)*s))
        return 0;
    char *end;
    *v = strtod(s, &end);
    return *end == '\0';
}

/* The lines in the file: each ended by '\n', the last possibly by the end of the file. */
static size_t count_lines(const uint8_t *d, size_t n)
{
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += d[i] == '\n';
    return lines + (n > 0 && d[n - 1] != '\n');
}

/* The number of data rows if the log is valid, else 0. */
static size_t log_reference(const uint8_t *d, size_t n)
{
    if (memchr(d, '\0', n))
        return 0;
    size_t rows = 0, lines = 0;
    double last_epoch = 0;
    int has_test = -1, ok = 1;
    for (size_t at = 0; at < n && ok;) {
        const uint8_t *nl = memchr(d + at, '\n', n - at);
        size_t len = nl ? (size_t)(nl - (d + at)) : n - at;
        if (len > 1023) { /* the reader's line buffer holds 1023 bytes and the NUL */
            ok = 0;
            break;
        }
        char line[1024];
        memcpy(line, d + at, len);
        line[len] = '\0';
        if (len && line[len - 1] == '\r')
            line[len - 1] = '\0';
        at += len + 1;
        if (++lines == 1) {
            ok = strcmp(line, HEADER) == 0;
            continue;
        }
        double v[9];
        int k = 0;
        for (char *p = line, *comma;; p = comma + 1, k++) {
            comma = strchr(p, ',');
            if (comma)
                *comma = '\0';
            if (k >= 9 || !field_number(p, &v[k]))
                ok = 0;
            if (!comma || !ok)
                break;
        }
        if (!ok || k != 8)
            return 0;
        int test = !(isnan(v[4]) && isnan(v[5]));
        if (!(v[0] >= 1 && v[0] <= 100000 && v[0] == floor(v[0]) && v[0] > last_epoch))
            return 0;
        if (has_test >= 0 && test != has_test)
            return 0;
        for (int i = 2; i < (test ? 6 : 4); i++)
            if (!(v[i] >= 0 && v[i] <= (i % 2 ? 1 : 1e9)))
                return 0;
        last_epoch = v[0];
        has_test = test;
        rows++;
    }
    return ok ? rows : 0;
}

/* The points in the polyline with the given id: its "x,y" pairs, one comma each. */
static size_t points(const char *s, const char *id)
{
    char key[64];
    snprintf(key, sizeof key, "<polyline id=\"%s\"", id);
    const char *p = strstr(s, key);
    FUZZ_REQUIRE(p, "the SVG has no %s curve", id);
    p = strstr(p, "points=\"");
    FUZZ_REQUIRE(p, "the %s curve has no points", id);
    size_t n = 0;
    for (p += 8; *p && *p != '"'; p++)
        n += *p == ',';
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write(csv, data, size);
    unlink(svg);
    size_t lines = count_lines(data, size), rows = log_reference(data, size);
    bp_error err;
    fuzz_err_reset(&err);
    int st = bp_plot_log(csv, svg, &err);
    FUZZ_REQUIRE((st == BP_OK) == (rows > 0), "bp_plot_log gives %d (%s); the log is %s", st,
                 st ? err.msg : "ok", rows ? "valid" : "not valid");
    if (st) {
        fuzz_check_failure("bp_plot_log", st, &err, csv);
        FUZZ_REQUIRE(access(svg, F_OK) != 0, "a refused log left %s", svg);
        if (st == BP_ERR_FORMAT) {
            size_t plen = strlen(csv);
            char *end;
            long line = strtol(err.msg + plen + 1, &end, 10);
            FUZZ_REQUIRE(err.msg[plen] == ':' && end != err.msg + plen + 1 && *end == ':' &&
                             line >= 1 && (size_t)line <= lines + 1,
                         "not 'PATH:LINE:' with LINE in 1..%zu: %s", lines + 1, err.msg);
        }
        return 0;
    }
    size_t n;
    uint8_t *out = fuzz_read(svg, &n);
    FUZZ_REQUIRE(out && n > 0 && !memchr(out, '\0', n), "no SVG, or one with a NUL");
    char *s = realloc(out, n + 1);
    if (!s)
        abort();
    s[n] = '\0';
    static const char head[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg ";
    FUZZ_REQUIRE(strncmp(s, head, sizeof head - 1) == 0, "the SVG does not start as one");
    FUZZ_REQUIRE(n >= 7 && strcmp(s + n - 7, "</svg>\n") == 0, "the SVG does not end as one");
    /* The words nan and inf occur nowhere in what the plot writes but a broken number. */
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    FUZZ_REQUIRE(!strstr(s, "nan") && !strstr(s, "inf"), "a non-finite number in the SVG");
    static const char *const curves[] = {"loss-train", "accuracy-train"};
    for (int k = 0; k < 2; k++)
        FUZZ_REQUIRE(points(s, curves[k]) == rows, "%s has %zu points for %zu rows", curves[k],
                     points(s, curves[k]), rows);
    free(s);
    return 0;
}
