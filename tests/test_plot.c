/* bp_plot_log (src/plot.c) on logs written here, in a private temporary directory removed at
 * the end: what the SVG holds (one polyline per series with a point per row, legends, the
 * accuracy axis fitted to the data, escaped title, C-locale numbers), and what only C can see
 * of a refusal: the old SVG left as it was and no temporary beside it, a FIFO refused without
 * blocking, the row limit, a NULL bp_error. tests/plot.sh checks the malformed logs one by one
 * and that the SVG parses and renders.
 *
 * `test_plot --plot CSV SVG` makes one call for plot.sh: prints "STATUS MESSAGE", exits 0 on
 * BP_OK, else 1. */
#include "check.h"
#include "backprop.h"

#include <dirent.h>
#include <errno.h>
#include <locale.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER "epoch,step,train_loss,train_acc,test_loss,test_acc,lr,seconds,samples_per_s\n"

static char root[4096];

static const char *at(char *buf, const char *name)
{
    snprintf(buf, 4200, "%s/%s", root, name);
    return buf;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0);
}

/* A log of n epochs: loss falling from 2.3, accuracy rising to about 0.97. */
static void write_log(const char *path, int n, int with_test)
{
    FILE *f = fopen(path, "wb");
    if (!CHECK(f))
        return;
    fputs(HEADER, f);
    for (int e = 1; e <= n; e++) {
        double l = 0.1 + 2.2 / e, a = 0.97 - 0.5 / ((double)e * e + 1);
        if (with_test)
            fprintf(f, "%d,%d,%.9g,%.9g,%.9g,%.9g,0.1,1.5,40000\n", e, 600 * e, l, a, l + 0.05,
                    a - 0.01);
        else
            fprintf(f, "%d,%d,%.9g,%.9g,nan,-nan,0.1,1.5,40000\n", e, 600 * e, l, a);
    }
    CHECK(fclose(f) == 0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s)
        s[fread(s, 1, (size_t)n, f)] = '\0';
    fclose(f);
    return s;
}

/* The points of polyline id in svg: -1 if there is no such polyline or a pair is not
 * "digits.digit,digits.digit" (a comma decimal would show here). */
static long points_of(const char *svg, const char *id)
{
    char key[64];
    snprintf(key, sizeof key, "<polyline id=\"%s\"", id);
    const char *p = strstr(svg, key);
    if (!p || !(p = strstr(p, "points=\"")))
        return -1;
    long n = 0;
    for (p += 8; *p != '"';) {
        double x, y;
        int used = 0;
        if (sscanf(p, "%lf,%lf%n", &x, &y, &used) != 2 || used == 0)
            return -1;
        for (int i = 0, commas = 0; i < used; i++)
            if ((p[i] == ',' && ++commas > 1) || !strchr("0123456789.,-", p[i]))
                return -1;
        n++;
        p += used;
        while (*p == ' ' || *p == '\n')
            p++;
    }
    return n;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void good_logs(void)
{
    char csv[4200], svg[4200];
    bp_error err = {0};
    static const struct {
        int epochs, test;
    } cases[] = {{10, 1}, {10, 0}, {1, 1}, {1, 0}, {31, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int n = cases[c].epochs, test = cases[c].test;
        write_log(at(csv, "good.csv"), n, test);
        CHECKF(bp_plot_log(csv, at(svg, "good.svg"), &err) == BP_OK, "%s", err.msg);
        char *s = slurp(svg);
        if (!CHECK(s))
            continue;
        CHECK_CONTAINS(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" "
                          "width=\"960\" height=\"440\" viewBox=\"0 0 960 440\"");
        CHECK_CONTAINS(s, "<title>Training curves: good.csv</title>");
        CHECK_INT_EQ(count(s, "<polyline"), test ? 4 : 2);
        CHECK_INT_EQ(points_of(s, "loss-train"), n);
        CHECK_INT_EQ(points_of(s, "accuracy-train"), n);
        CHECK_INT_EQ(points_of(s, "loss-test"), test ? n : -1);
        CHECK_INT_EQ(points_of(s, "accuracy-test"), test ? n : -1);
        CHECK_INT_EQ(count(s, ">no test set</text>"), test ? 0 : 2);
        CHECK_INT_EQ(count(s, ">test</text>"), test ? 2 : 0);
        /* markers up to 30 epochs, in both panels and their legends: circles for train,
         * squares for test (the other two rects with an x are the plot frames) */
        CHECK_INT_EQ(count(s, "<circle"), n <= 30 ? 2 * n + 2 : 0);
        CHECK_INT_EQ(count(s, "<rect x="), 2 + (n <= 30 && test ? 2 * n + 2 : 0));
        CHECKF(!strstr(s, "nan") && !strstr(s, "inf"), "a NaN or infinity in the SVG (%d epochs)",
               n);
        free(s);
    }

    /* The accuracy axis spans the data (about 72 % to 97 %), not 0 to 100; its labels say so. */
    write_log(csv, 10, 1);
    CHECKF(bp_plot_log(csv, svg, &err) == BP_OK, "%s", err.msg);
    char *s = slurp(svg);
    const char *acc = s ? strstr(s, "<g id=\"accuracy\">") : NULL;
    if (CHECK(acc)) {
        /* y tick labels are the end-anchored ones */
        CHECK(!strstr(acc, "end\">0</text>") && !strstr(acc, "end\">20</text>"));
        CHECK_CONTAINS(acc, "end\">100</text>");
        CHECK_CONTAINS(acc, "end\">80</text>");
    }
    free(s);

    /* CRLF line ends and a last line without one are the same log. */
    write_text(csv, "epoch,step,train_loss,train_acc,test_loss,test_acc,lr,seconds,samples_per_s"
                    "\r\n1,6,2,0.5,2,0.5,0.1,1,1\r\n2,12,1,0.7,1.5,0.6,0.1,1,1");
    CHECKF(bp_plot_log(csv, svg, &err) == BP_OK, "%s", err.msg);
    s = slurp(svg);
    CHECK_INT_EQ(s ? points_of(s, "loss-test") : -2, 2);
    free(s);
}

/* A file name with markup characters and a byte that is not UTF-8 becomes escaped text. */
static void escaped_title(void)
{
    char csv[4200], svg[4200];
    bp_error err = {0};
    write_log(at(csv, "a&b<c>\"\xff.csv"), 3, 1);
    CHECKF(bp_plot_log(csv, at(svg, "title.svg"), &err) == BP_OK, "%s", err.msg);
    char *s = slurp(svg);
    CHECK_CONTAINS(s, "<title>Training curves: a&amp;b&lt;c&gt;\"\xef\xbf\xbd.csv</title>");
    free(s);
}

/* Numbers in the SVG are C-locale whatever the caller's locale, when one with a decimal comma
 * is installed to try. */
static void comma_locale(void)
{
    static const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "ru_RU.UTF-8"};
    const char *found = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !found; i++)
        if (setlocale(LC_ALL, names[i]))
            found = names[i];
    if (!found) {
        printf("no decimal-comma locale installed: locale check not run\n");
        return;
    }
    char csv[4200], svg[4200];
    bp_error err = {0};
    write_log(at(csv, "locale.csv"), 5, 1);
    CHECKF(bp_plot_log(csv, at(svg, "locale.svg"), &err) == BP_OK, "%s: %s", found, err.msg);
    char *s = slurp(svg);
    CHECKF(s && points_of(s, "loss-test") == 5, "%s: coordinates not in the C locale", found);
    free(s);
    setlocale(LC_ALL, "C");
}

/* Whether root holds a file whose name contains part (a temporary left behind). */
static int leftover(const char *part)
{
    DIR *d = opendir(root);
    int found = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        found |= strstr(e->d_name, part) != NULL;
    if (d)
        closedir(d);
    return found;
}

static void refusals(void)
{
    char csv[4200], svg[4200];
    bp_error err = {0};

    /* a bad log leaves the old SVG and nothing else */
    at(svg, "old.svg");
    write_text(svg, "old");
    write_text(at(csv, "bad.csv"), HEADER "1,6,2,0.5,2,0.5,0.1,1\n");
    CHECK_INT_EQ(bp_plot_log(csv, svg, &err), BP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "bad.csv:2:");
    char *s = slurp(svg);
    CHECK(s && strcmp(s, "old") == 0);
    free(s);
    CHECK(!leftover(".tmp"));
    CHECK_INT_EQ(bp_plot_log(csv, svg, NULL), BP_ERR_FORMAT);

    /* missing input; output in a missing directory */
    CHECK_INT_EQ(bp_plot_log(at(csv, "missing.csv"), svg, &err), BP_ERR_IO);
    CHECK_CONTAINS(err.msg, csv);
    CHECK_CONTAINS(err.msg, strerror(ENOENT));
    write_log(at(csv, "good.csv"), 2, 1);
    CHECK_INT_EQ(bp_plot_log(csv, at(svg, "no-dir/out.svg"), &err), BP_ERR_IO);
    CHECK_CONTAINS(err.msg, svg);

    /* A FIFO with no writer: refused at once. Were the open to wait, SIGALRM ends the test. */
    at(csv, "fifo.csv");
    if (CHECK(mkfifo(csv, 0600) == 0)) {
        alarm(20);
        CHECK_INT_EQ(bp_plot_log(csv, at(svg, "fifo.svg"), &err), BP_ERR_FORMAT);
        alarm(0);
        CHECK_CONTAINS(err.msg, "fifo.csv: not a regular file");
    }
    CHECK_INT_EQ(bp_plot_log(root, svg, &err), BP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "not a regular file");
}

/* As many rows as a run can have epochs (increasing), and not one more. */
static void row_limit(void)
{
    char csv[4200], svg[4200];
    bp_error err = {0};
    write_log(at(csv, "long.csv"), BP_MAX_EPOCHS, 1);
    CHECKF(bp_plot_log(csv, at(svg, "long.svg"), &err) == BP_OK, "%s", err.msg);
    char *s = slurp(svg);
    CHECK_INT_EQ(s ? points_of(s, "accuracy-test") : -2, BP_MAX_EPOCHS);
    free(s);
    write_log(csv, BP_MAX_EPOCHS + 1, 1);
    CHECK_INT_EQ(bp_plot_log(csv, svg, &err), BP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "long.csv:100002: epoch 100001 is not an integer from 1 to 100000 "
                            "(so a log has at most 100000 rows)");
}

static void remove_all(void)
{
    DIR *d = opendir(root);
    char p[4400];
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", root, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(root);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--plot") == 0) {
        bp_error err = {{0}, {0}};
        int st = bp_plot_log(argv[2], argv[3], &err);
        printf("%d %s\n", st, err.msg);
        return st == BP_OK ? 0 : 1;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/bp-test-plot.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        fprintf(stderr, "mkdtemp %s: %s\n", root, strerror(errno));
        return 1;
    }
    good_logs();
    escaped_title();
    comma_locale();
    refusals();
    row_limit();
    remove_all();
    struct stat sb;
    CHECKF(stat(root, &sb) != 0, "temporary directory %s was not removed", root);
    return check_exit("test_plot");
}
