/* Training curves: the CSV log of `backprop train --log` drawn as a standalone SVG 1.1 file,
 * two panels side by side (loss, accuracy) against epoch, train and test.
 *
 * The log is untrusted. It is stat-ed before it is opened (opening a FIFO would wait for a
 * writer), read with a bounded line length and row count, and every field must be a number in
 * its range; each refusal names the file and the line. Numbers are read and written in the C
 * locale whatever the caller's, so a comma-decimal locale neither misreads "0.5" nor writes
 * "0,5" into the SVG's coordinates. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_HEADER "epoch,step,train_loss,train_acc,test_loss,test_acc,lr,seconds,samples_per_s"
#define LOG_FIELDS 9
#define LOG_MAX_LINE 1024 /* nine %.9g numbers take under 160 bytes */
/* What bp_train can run. Epochs must increase, so this bounds the rows, and the memory, too. */
#define LOG_MAX_EPOCH BP_MAX_EPOCHS
#define LOG_MAX_LOSS 1e9 /* a mean cross-entropy of float probabilities stays below ~104 */

static const char *const field_name[LOG_FIELDS] = {
    "epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds",
    "samples_per_s"};

typedef struct {
    double epoch;
    double loss[2], acc[2]; /* [0] train, [1] test */
} log_row;

typedef struct {
    log_row *rows;
    size_t n, cap;
    int has_test;
} train_log;

/* ---- reading ---- */

/* One line without its line end into buf (LOG_MAX_LINE bytes): 1 a line, 0 end of file,
 * -1 too long, -2 a NUL byte (not a text file), -3 a read error. A CRLF line end is taken as
 * LF: a log that went through a Windows editor is still the same log. */
static int read_line(FILE *f, char *buf)
{
    size_t n = 0;
    int c;
    while ((c = getc(f)) != EOF && c != '\n') {
        if (c == '\0')
            return -2;
        if (n + 1 >= LOG_MAX_LINE)
            return -1;
        buf[n++] = (char)c;
    }
    if (c == EOF && ferror(f))
        return -3;
    if (c == EOF && n == 0)
        return 0;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    return 1;
}

/* A field quoted for a message: at most 32 bytes, anything but printable ASCII as '?', so a
 * hostile log cannot put terminal escapes into the caller's stderr. */
static const char *quoted(const char *s, char *buf, size_t len)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len && i < 32; i++)
        buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    buf[i] = '\0';
    return buf;
}

/* The whole field as a number. strtod would skip leading blanks: those are refused. */
static int parse_number(const char *s, double *out)
{
    if (*s == '\0' || *s == ' ' || (*s >= '\t' && *s <= '\r'))
        return 0;
    char *end;
    *out = strtod(s, &end);
    return *end == '\0';
}

/* Splits line at its commas in place; returns the field count (fields[] gets the first ones). */
static int split_fields(char *line, char *fields[LOG_FIELDS])
{
    int n = 0;
    for (char *p = line;; n++) {
        char *comma = strchr(p, ',');
        if (n < LOG_FIELDS)
            fields[n] = p;
        if (!comma)
            return n + 1;
        *comma = '\0';
        p = comma + 1;
    }
}

/* Checks one row's values and appends them to lg. */
static int add_row(train_log *lg, const double *v, const char *path, long line, bp_error *err)
{
    const int st = BP_ERR_FORMAT;
    if (!(v[0] >= 1 && v[0] <= LOG_MAX_EPOCH && v[0] == floor(v[0])))
        return bp_fail(err, st, "%s:%ld: epoch %.9g is not an integer from 1 to %d (so a log "
                       "has at most %d rows)", path, line, v[0], LOG_MAX_EPOCH, LOG_MAX_EPOCH);
    if (lg->n > 0 && v[0] <= lg->rows[lg->n - 1].epoch)
        return bp_fail(err, st, "%s:%ld: epoch %.0f does not follow epoch %.0f (epochs must "
                       "increase)", path, line, v[0], lg->rows[lg->n - 1].epoch);
    int test = !(isnan(v[4]) && isnan(v[5]));
    if (lg->n > 0 && test != lg->has_test)
        return bp_fail(err, st, "%s:%ld: test_loss and test_acc are %s here but not on line 2 "
                       "(a log has a test set on every row or on none)", path, line,
                       test ? "numbers" : "nan");
    for (int i = 2; i < (test ? 6 : 4); i++) {
        double hi = i % 2 ? 1 : LOG_MAX_LOSS; /* odd columns are accuracies */
        if (!(v[i] >= 0 && v[i] <= hi))
            return bp_fail(err, st, "%s:%ld: %s %.9g is outside 0 to %.9g", path, line,
                           field_name[i], v[i], hi);
    }
    if (lg->n == lg->cap) {
        size_t cap = lg->cap ? 2 * lg->cap : 64;
        log_row *r = realloc(lg->rows, cap * sizeof *r);
        if (!r)
            return bp_fail(err, BP_ERR_NOMEM, "%s:%ld: out of memory", path, line);
        lg->rows = r;
        lg->cap = cap;
    }
    lg->has_test = test;
    lg->rows[lg->n++] = (log_row){v[0], {v[2], v[4]}, {v[3], v[5]}};
    return BP_OK;
}

static int parse_row(train_log *lg, char *line, const char *path, long lineno, bp_error *err)
{
    char *fields[LOG_FIELDS], q[40];
    int n = split_fields(line, fields);
    if (n != LOG_FIELDS)
        return bp_fail(err, BP_ERR_FORMAT, "%s:%ld: %d fields, expected %d", path, lineno, n,
                       LOG_FIELDS);
    double v[LOG_FIELDS];
    for (int i = 0; i < LOG_FIELDS; i++)
        if (!parse_number(fields[i], &v[i]))
            return bp_fail(err, BP_ERR_FORMAT, "%s:%ld: %s '%s' is not a number", path, lineno,
                           field_name[i], quoted(fields[i], q, sizeof q));
    return add_row(lg, v, path, lineno, err);
}

/* Opens path for reading if it is a regular file. O_NONBLOCK: should a FIFO replace the file
 * between stat and open, the open does not wait for a writer, and fstat refuses it. */
static int open_log(const char *path, FILE **out, bp_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return bp_fail(err, BP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return bp_fail(err, BP_ERR_FORMAT, "%s: not a regular file", path);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return bp_fail(err, BP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        close(fd);
        return bp_fail(err, BP_ERR_FORMAT, "%s: not a regular file", path);
    }
    if (!(*out = fdopen(fd, "r"))) {
        int e = errno;
        close(fd);
        return bp_fail(err, BP_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    return BP_OK;
}

static int read_log(const char *path, train_log *lg, bp_error *err)
{
    FILE *f;
    int st = open_log(path, &f, err);
    if (st)
        return st;
    char buf[LOG_MAX_LINE];
    long line = 0;
    int r;
    while (st == BP_OK && (r = read_line(f, buf)) != 0) {
        line++;
        if (r == -1)
            st = bp_fail(err, BP_ERR_FORMAT, "%s:%ld: line longer than %d bytes", path, line,
                         LOG_MAX_LINE - 1);
        else if (r == -2)
            st = bp_fail(err, BP_ERR_FORMAT, "%s:%ld: NUL byte: not a text file", path, line);
        else if (r == -3)
            st = bp_fail(err, BP_ERR_IO, "%s:%ld: read failed: %s", path, line,
                         strerror(errno));
        else if (line == 1 && strcmp(buf, LOG_HEADER) != 0)
            st = bp_fail(err, BP_ERR_FORMAT, "%s:1: not a training log: the header must be "
                         "'%s'", path, LOG_HEADER);
        else if (line > 1)
            st = parse_row(lg, buf, path, line, err);
    }
    fclose(f);
    if (st == BP_OK && lg->n == 0)
        st = bp_fail(err, BP_ERR_FORMAT, "%s:%ld: no rows after the header%s", path, line + 1,
                     line ? "" : " (the file is empty)");
    return st;
}

/* ---- drawing ---- */

#define SVG_W 960
#define SVG_H 440
#define PANEL_W (SVG_W / 2)
/* The plot area inside a panel: room at the left for tick labels and the rotated axis title,
 * below for the epoch labels and title, above for the panel title and the legend, which so
 * never covers data. */
#define PAD_LEFT 74
#define PAD_RIGHT 28
#define PAD_TOP 96
#define PAD_BOTTOM 56
#define FEW_EPOCHS 30 /* up to this many rows, every point gets a marker */
#define CHAR_W 6.8    /* about the advance of a 12 px sans-serif character */

/* Okabe–Ito blue and vermilion: distinct in colour-blind vision too, and test is also dashed. */
static const struct {
    const char *name, *colour, *dash;
} style[2] = {{"train", "#0072b2", ""}, {"test", "#d55e00", " stroke-dasharray=\"7 4\""}};

typedef struct {
    double lo, hi, step;
} axis;

/* How an axis is fitted to data: the margin (a fraction of the data's span), the least span,
 * absolute and relative to the values (so one epoch or a flat curve still gets an axis, and its
 * labels differ within a few digits), the quantity's bounds, the least tick step and about how
 * many tick intervals to aim for. */
typedef struct {
    double pad, min_span, rel_span, min, max, min_step, ticks;
} axis_fit;

static const axis_fit epoch_fit = {0, 2, 0, 0, LOG_MAX_EPOCH + 1, 1, 5};
static const axis_fit loss_fit = {0.05, 0.01, 1e-3, 0, LOG_MAX_LOSS, 0, 6};
static const axis_fit acc_fit = {0.05, 0.5, 1e-3, 0, 100, 0, 6}; /* percent */

/* 1, 2 or 5 times a power of ten, near raw: an axis aiming at n intervals gets 2n/3 to 3n/2. */
static double nice_step(double raw)
{
    double p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}

/* An axis over the data lo..hi: padded, kept within the quantity's bounds, its ends rounded out
 * to multiples of a 1-2-5 step so that the first and last ticks are its ends. */
static axis fit_axis(double lo, double hi, const axis_fit *fit)
{
    double span = hi - lo, least = fmax(fit->min_span, fit->rel_span * fmax(fabs(lo), fabs(hi)));
    if (span < least) {
        double mid = 0.5 * (lo + hi);
        lo = mid - 0.5 * least;
        hi = mid + 0.5 * least;
    } else {
        lo -= fit->pad * span;
        hi += fit->pad * span;
    }
    lo = fmax(lo, fit->min);
    hi = fmin(hi, fit->max);
    axis a = {0, 0, fmax(nice_step((hi - lo) / fit->ticks), fit->min_step)};
    /* The slack keeps 100 % from rounding up to 100.2 through 100/0.2 = 500.00000000000006. */
    a.lo = floor(lo / a.step + 1e-9) * a.step;
    a.hi = ceil(hi / a.step - 1e-9) * a.step;
    return a;
}

static int tick_count(const axis *a) { return (int)lround((a->hi - a->lo) / a->step); }

/* A tick value with as many decimals as the step needs ("0.25" never, the steps are 1-2-5). */
static void tick_label(char *buf, size_t len, double v, double step)
{
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(v) < 1e-6 * step)
        v = 0; /* not "-0.0" */
    if (decimals > 6 || fabs(v) >= 1e7)
        snprintf(buf, len, "%.4g", v);
    else
        snprintf(buf, len, "%.*f", decimals, v);
}

typedef struct {
    double left, top, w, h; /* the plot area */
    axis x, y;
} frame;

static double px(const frame *fr, double v)
{
    return fr->left + (v - fr->x.lo) / (fr->x.hi - fr->x.lo) * fr->w;
}

static double py(const frame *fr, double v)
{
    return fr->top + fr->h - (v - fr->y.lo) / (fr->y.hi - fr->y.lo) * fr->h;
}

/* The length of the UTF-8 sequence at p if it encodes a character XML allows, else 0. */
static int xml_char_len(const unsigned char *p)
{
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000}; /* overlong below these */
    if (p[0] < 0x80)
        return p[0] >= 0x20 && p[0] != 0x7f;
    int len = p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc0 ? 2 : 0;
    if (len == 0)
        return 0;
    uint32_t c = p[0] & (0x7fu >> len);
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        c = c << 6 | (p[i] & 0x3fu);
    }
    if (c < least[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) || c == 0xfffe ||
        c == 0xffff)
        return 0;
    return len;
}

/* s as XML character data, at most max characters (then "…"). A file name is any bytes: those
 * that are not valid UTF-8, and control characters, become U+FFFD, so the SVG stays XML. */
static void put_text(FILE *f, const char *s, int max)
{
    const unsigned char *p = (const unsigned char *)s;
    for (int count = 0; *p; count++) {
        if (count == max) {
            fputs("\xe2\x80\xa6", f); /* U+2026 … */
            return;
        }
        int len = xml_char_len(p);
        if (len == 0)
            fputs("\xef\xbf\xbd", f); /* U+FFFD */
        else if (*p == '&' || *p == '<' || *p == '>')
            fputs(*p == '&' ? "&amp;" : *p == '<' ? "&lt;" : "&gt;", f);
        else
            fwrite(p, 1, (size_t)len, f);
        p += len ? len : 1;
    }
}

static double value(const log_row *r, int panel, int series)
{
    return panel == 0 ? r->loss[series] : 100 * r->acc[series];
}

/* Grid, frame, ticks with their labels, and the two axis titles. */
static void draw_axes(FILE *f, const frame *fr, const char *ytitle)
{
    char label[32];
    double bottom = fr->top + fr->h;
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fafafa\" "
            "stroke=\"#888\"/>\n", fr->left, fr->top, fr->w, fr->h);
    fputs("<g font-size=\"11\" fill=\"#333\">\n", f);
    for (int i = 0, n = tick_count(&fr->y); i <= n; i++) {
        double v = fr->y.lo + i * fr->y.step, y = py(fr, v);
        tick_label(label, sizeof label, v, fr->y.step);
        if (i > 0 && i < n) /* grid lines inside only: at the ends they would pale the frame */
            fprintf(f, "<path d=\"M%.1f %.1fH%.1f\" stroke=\"#e2e2e2\"/>", fr->left, y,
                    fr->left + fr->w);
        fprintf(f, "<path d=\"M%.1f %.1fh-5\" stroke=\"#888\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                fr->left, y, fr->left - 8, y + 4, label);
    }
    for (int i = 0; i <= tick_count(&fr->x); i++) {
        double v = fr->x.lo + i * fr->x.step, x = px(fr, v);
        tick_label(label, sizeof label, v, fr->x.step);
        fprintf(f, "<path d=\"M%.1f %.1fv5\" stroke=\"#888\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                x, bottom, x, bottom + 18, label);
    }
    fprintf(f, "</g>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">epoch</text>\n"
            "<text transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\">%s"
            "</text>\n", fr->left + 0.5 * fr->w, bottom + 40, fr->left - 54,
            fr->top + 0.5 * fr->h, ytitle);
}

/* Train's marker is a circle, test's a square: the series differ in shape as well. */
static void put_marker(FILE *f, int s, double x, double y)
{
    if (s == 0)
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>", x, y,
                style[s].colour);
    else
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\" fill=\"%s\"/>",
                x - 3.5, y - 3.5, style[s].colour);
}

/* One series: a polyline through every row (ten points a line of the file) and, when there are
 * few rows, a marker on each: a single epoch is then a visible dot, not an empty line. */
static void draw_series(FILE *f, const frame *fr, const train_log *lg, int panel, int s,
                        const char *id)
{
    fprintf(f, "<polyline id=\"%s-%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
            "stroke-linejoin=\"round\"%s points=\"", id, style[s].name, style[s].colour,
            style[s].dash);
    for (size_t i = 0; i < lg->n; i++)
        fprintf(f, "%s%.1f,%.1f", i == 0 ? "" : i % 10 ? " " : "\n", px(fr, lg->rows[i].epoch),
                py(fr, value(&lg->rows[i], panel, s)));
    fputs("\"/>\n", f);
    for (size_t i = 0; lg->n <= FEW_EPOCHS && i < lg->n; i++)
        put_marker(f, s, px(fr, lg->rows[i].epoch), py(fr, value(&lg->rows[i], panel, s)));
    fputs("\n", f);
}

/* A legend entry: a stretch of the series' line, with its marker if the points have them. */
static void legend_item(FILE *f, double x, double y, int s, int marked)
{
    fprintf(f, "<path d=\"M%.1f %.1fh24\" stroke=\"%s\" stroke-width=\"2\"%s/>", x, y,
            style[s].colour, style[s].dash);
    if (marked)
        put_marker(f, s, x + 12, y);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", x + 28, y + 4, style[s].name);
}

/* The legend, right-aligned in the band above the plot area; its width is estimated from the
 * labels' lengths, as SVG 1.1 has no way to measure text. */
static void draw_legend(FILE *f, const frame *fr, int has_test, int marked)
{
    const char *none = "no test set";
    double first = 28 + CHAR_W * (double)strlen(style[0].name) + 18;
    double second = has_test ? 28 + CHAR_W * (double)strlen(style[1].name)
                             : CHAR_W * (double)strlen(none);
    double x = fr->left + fr->w - first - second, y = fr->top - 12;
    legend_item(f, x, y, 0, marked);
    if (has_test)
        legend_item(f, x + first, y, 1, marked);
    else
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#666\" font-style=\"italic\">%s"
                "</text>\n", x + first, y + 4, none);
}

static void draw_panel(FILE *f, const train_log *lg, int panel)
{
    static const char *const id[2] = {"loss", "accuracy"};
    static const char *const title[2] = {"Loss", "Accuracy"};
    static const char *const ytitle[2] = {"mean cross-entropy", "accuracy (%)"};
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < lg->n; i++)
        for (int s = 0; s <= lg->has_test; s++) {
            lo = fmin(lo, value(&lg->rows[i], panel, s));
            hi = fmax(hi, value(&lg->rows[i], panel, s));
        }
    frame fr = {panel * PANEL_W + PAD_LEFT, PAD_TOP, PANEL_W - PAD_LEFT - PAD_RIGHT,
                SVG_H - PAD_TOP - PAD_BOTTOM, {0, 0, 0},
                fit_axis(lo, hi, panel == 0 ? &loss_fit : &acc_fit)};
    /* Fewer epoch ticks for longer numbers, so that the labels never touch even when the
     * 1-2-5 rounding gives half again as many intervals as aimed at. */
    axis_fit xfit = epoch_fit;
    double last = lg->rows[lg->n - 1].epoch, label_w = CHAR_W * (floor(log10(last + 1)) + 1);
    xfit.ticks = fmin(xfit.ticks, fr.w / (1.5 * (label_w + 16)));
    fr.x = fit_axis(lg->rows[0].epoch, last, &xfit);
    fprintf(f, "<g id=\"%s\">\n<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" "
            "font-weight=\"bold\">%s</text>\n", id[panel], fr.left, fr.top - 8, title[panel]);
    draw_axes(f, &fr, ytitle[panel]);
    for (int s = lg->has_test; s >= 0; s--) /* train last, on top */
        draw_series(f, &fr, lg, panel, s, id[panel]);
    draw_legend(f, &fr, lg->has_test, lg->n <= FEW_EPOCHS);
    fputs("</g>\n", f);
}

static void write_svg(FILE *f, const train_log *lg, const char *csv_path)
{
    const char *slash = strrchr(csv_path, '/');
    const char *name = slash && slash[1] ? slash + 1 : csv_path;
    const log_row *last = &lg->rows[lg->n - 1];
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" "
            "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Arial, Helvetica, "
            "sans-serif\" font-size=\"12\">\n<title>Training curves: ", SVG_W, SVG_H, SVG_W,
            SVG_H);
    put_text(f, name, 200);
    fprintf(f, "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n"
            "<text x=\"%d\" y=\"28\" text-anchor=\"middle\" font-size=\"17\" "
            "font-weight=\"bold\">Training curves: ", SVG_W, SVG_H, SVG_W / 2);
    put_text(f, name, 60);
    fprintf(f, "</text>\n<text x=\"%d\" y=\"50\" text-anchor=\"middle\" fill=\"#555\">%zu "
            "epoch%s; at epoch %.0f: train loss %.4g, accuracy %.2f%%", SVG_W / 2, lg->n,
            lg->n == 1 ? "" : "s", last->epoch, last->loss[0], 100 * last->acc[0]);
    if (lg->has_test)
        fprintf(f, "; test loss %.4g, accuracy %.2f%%", last->loss[1], 100 * last->acc[1]);
    fputs("</text>\n", f);
    draw_panel(f, lg, 0);
    draw_panel(f, lg, 1);
    fputs("</svg>\n", f);
}

int bp_plot_log(const char *csv_path, const char *svg_path, bp_error *err)
{
    if (!csv_path || !svg_path)
        return bp_fail(err, BP_ERR_ARG, "bp_plot_log: a path is NULL");
    /* This thread only, for this call only: the caller's locale is its own business. */
    locale_t c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (c_numeric == (locale_t)0)
        return bp_fail(err, BP_ERR_NOMEM, "%s: cannot make the C locale", csv_path);
    locale_t previous = uselocale(c_numeric);
    train_log lg = {0};
    int st = read_log(csv_path, &lg, err);
    bp_file *out = NULL;
    if (st == BP_OK)
        st = bp_file_create(&out, svg_path, err);
    if (st == BP_OK) {
        write_svg(bp_file_stream(out), &lg, csv_path);
        st = bp_file_commit(out, err); /* checks the stream's error flag: a full disk fails */
    }
    uselocale(previous);
    freelocale(c_numeric);
    free(lg.rows);
    return st;
}
