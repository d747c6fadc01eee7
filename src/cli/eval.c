/* backprop eval: a saved model on a data set's test split: accuracy, mean loss, the confusion
 * matrix and per-class precision, recall and F1, as tables or one JSON object; optionally a
 * picture of the worst mistakes. */
#include "cli.h"

#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fputs("usage: backprop eval --model FILE [OPTIONS]\n"
          "Evaluate a saved model on the test set of a data directory (t10k-* files).\n"
          "\n"
          "  --model FILE       a model file written by train --save or --checkpoint\n"
          "  --data DIR         MNIST-layout IDX files, raw or .gz (default data/mnist)\n"
          "  --json             print one JSON object instead of tables\n"
          "  --errors FILE.png  also draw the worst misclassified test images (the most\n"
          "                     confident mistakes first), captioned true>predicted\n"
          "  --errors-count N   how many to draw (default 36, at most 400)\n"
          "  --threads N        OpenBLAS threads (default OPENBLAS_NUM_THREADS, else all cores)\n"
          "\n"
          "Exit status: 0 ok, 1 runtime failure, 2 bad usage or a bad model or data file.\n",
          f);
}

typedef struct {
    double precision, recall, f1;
    uint32_t support, predicted;
} class_stats;

/* Precision = TP / predicted as c, recall = TP / truly c, F1 their harmonic mean; 0 where a
 * denominator is 0 (no sample predicted or truly of that class), as scikit-learn reports it. */
static void per_class(const bp_eval_result *r, int C, class_stats *cs)
{
    for (int c = 0; c < C; c++) {
        uint32_t tp = r->confusion[c][c], truly = 0, pred = 0;
        for (int k = 0; k < C; k++) {
            truly += r->confusion[c][k];
            pred += r->confusion[k][c];
        }
        cs[c].support = truly;
        cs[c].predicted = pred;
        cs[c].precision = pred ? (double)tp / pred : 0.0;
        cs[c].recall = truly ? (double)tp / truly : 0.0;
        double s = cs[c].precision + cs[c].recall;
        cs[c].f1 = s > 0 ? 2 * cs[c].precision * cs[c].recall / s : 0.0;
    }
}

static void print_tables(const char *model, const char *desc, const char *data,
                         const bp_eval_result *r, int C, const class_stats *cs)
{
    printf("model %s: %s\n", model, desc);
    printf("data  %s: %u test samples\n", data, r->n);
    printf("accuracy %.4f  mean loss %.4f  (%u of %u correct)\n\n", r->accuracy, r->loss,
           (uint32_t)llround(r->accuracy * r->n), r->n);
    printf("confusion matrix (rows: true class, columns: predicted class)\n      ");
    for (int k = 0; k < C; k++)
        printf("%6d", k);
    printf("\n");
    for (int c = 0; c < C; c++) {
        printf("%6d", c);
        for (int k = 0; k < C; k++)
            printf("%6u", r->confusion[c][k]);
        printf("\n");
    }
    printf("\nclass  precision  recall      f1  support\n");
    double mp = 0, mr = 0, mf = 0;
    for (int c = 0; c < C; c++) {
        printf("%5d  %9.4f  %6.4f  %6.4f  %7u\n", c, cs[c].precision, cs[c].recall, cs[c].f1,
               cs[c].support);
        mp += cs[c].precision, mr += cs[c].recall, mf += cs[c].f1;
    }
    printf("macro  %9.4f  %6.4f  %6.4f  %7u\n", mp / C, mr / C, mf / C, r->n);
}

static int print_json(const char *model, const char *desc, const char *data,
                      const bp_eval_result *r, int C, const class_stats *cs)
{
    json_t *o = json_object(), *conf = json_array(), *pc = json_array();
    json_object_set_new(o, "model", json_string(model));
    json_object_set_new(o, "architecture", json_string(desc));
    json_object_set_new(o, "data", json_string(data));
    json_object_set_new(o, "samples", json_integer(r->n));
    json_object_set_new(o, "accuracy", json_real(r->accuracy));
    json_object_set_new(o, "loss", json_real(r->loss));
    for (int c = 0; c < C; c++) {
        json_t *row = json_array();
        for (int k = 0; k < C; k++)
            json_array_append_new(row, json_integer(r->confusion[c][k]));
        json_array_append_new(conf, row);
        json_t *e = json_object();
        json_object_set_new(e, "class", json_integer(c));
        json_object_set_new(e, "precision", json_real(cs[c].precision));
        json_object_set_new(e, "recall", json_real(cs[c].recall));
        json_object_set_new(e, "f1", json_real(cs[c].f1));
        json_object_set_new(e, "support", json_integer(cs[c].support));
        json_array_append_new(pc, e);
    }
    json_object_set_new(o, "confusion", conf);
    json_object_set_new(o, "per_class", pc);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(o);
    if (!s)
        return 1;
    printf("%s\n", s);
    free(s);
    return 0;
}

typedef struct {
    uint32_t index;
    float p_pred; /* probability of the (wrong) predicted class */
    uint8_t pred;
} mistake;

static int by_confidence(const void *a, const void *b)
{
    const mistake *x = a, *y = b;
    if (x->p_pred != y->p_pred)
        return x->p_pred < y->p_pred ? 1 : -1;
    return (x->index > y->index) - (x->index < y->index); /* ties: file order */
}

/* The count most confident mistakes, drawn by bp_picture_errors. */
static int draw_errors(const char *path, const bp_dataset *ds, const float *probs, int C,
                       int count)
{
    mistake *ms = malloc((size_t)ds->n * sizeof *ms);
    uint32_t *idx = malloc((size_t)count * sizeof *idx);
    uint8_t *pred = malloc((size_t)count);
    if (!ms || !idx || !pred) {
        fprintf(stderr, "backprop eval: out of memory\n");
        free(ms), free(idx), free(pred);
        return 1;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < ds->n; i++) {
        const float *y = probs + (size_t)i * C;
        int best = 0;
        for (int k = 1; k < C; k++)
            if (y[k] > y[best])
                best = k;
        if (best != ds->labels[i])
            ms[n++] = (mistake){i, y[best], (uint8_t)best};
    }
    qsort(ms, n, sizeof *ms, by_confidence);
    int k = (uint32_t)count < n ? count : (int)n;
    for (int i = 0; i < k; i++)
        idx[i] = ms[i].index, pred[i] = ms[i].pred;
    bp_error err = {0};
    int st = k ? bp_picture_errors(path, ds, idx, pred, k, &err) : BP_OK;
    if (!k)
        fprintf(stderr, "backprop eval: no misclassified test image: %s not written\n", path);
    else if (st)
        fprintf(stderr, "backprop eval: %s\n", err.msg);
    free(ms), free(idx), free(pred);
    return st ? 1 : 0;
}

int cmd_eval(int argc, char **argv)
{
    enum { O_MODEL = 256, O_DATA, O_JSON, O_ERRORS, O_ECOUNT, O_THREADS };
    static const struct option longopts[] = {
        {"model", required_argument, 0, O_MODEL},   {"data", required_argument, 0, O_DATA},
        {"json", no_argument, 0, O_JSON},           {"errors", required_argument, 0, O_ERRORS},
        {"errors-count", required_argument, 0, O_ECOUNT},
        {"threads", required_argument, 0, O_THREADS}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *C = "eval", *model = NULL, *data = "data/mnist", *errors = NULL;
    int json = 0, count = 36, threads = 0, c;
    opterr = 0;
    optind = 0; /* a full reset (glibc, musl); 1 would resume a cluster left half-read */
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_DATA: data = optarg; break;
        case O_JSON: json = 1; break;
        case O_ERRORS: errors = optarg; break;
        case O_ECOUNT:
            bad = opt_int(C, "--errors-count", optarg, &count);
            if (!bad && (count < 1 || count > 400)) {
                fprintf(stderr, "backprop eval: --errors-count: %d must be from 1 to 400\n",
                        count);
                bad = -1;
            }
            break;
        case O_THREADS: bad = opt_int(C, "--threads", optarg, &threads); break;
        case 'h': help(stdout); return 0;
        default: return cli_opt_error(C, c, argv, longopts) ? EXIT_USAGE : 0;
        }
        if (bad) {
            fputs("Try 'backprop eval --help'.\n", stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc || !model) {
        if (optind < argc)
            fprintf(stderr, "backprop eval: unexpected argument '%s'\n", argv[optind]);
        else
            fprintf(stderr, "backprop eval: --model FILE is required\n");
        fputs("Try 'backprop eval --help'.\n", stderr);
        return EXIT_USAGE;
    }
    if (threads < 0) {
        fprintf(stderr, "backprop eval: --threads: %d must be 0 (the default) or positive\n",
                threads);
        return EXIT_USAGE;
    }
    threads = cli_threads(C, threads);

    bp_model *m = NULL;
    bp_dataset *train = NULL, *test = NULL;
    float *probs = NULL;
    bp_error err = {0};
    int status = cli_load_model(C, model, &m, NULL), st;
    if (status)
        return status;
    if ((st = bp_dataset_load_dir(data, &train, &test, &err))) {
        fprintf(stderr, "backprop eval: %s\n", err.msg);
        status = cli_exit(st);
        goto done;
    }
    bp_dataset_free(train);
    train = NULL;
    int classes = m->sizes[m->nlayers];
    if ((uint32_t)m->sizes[0] != test->dim) {
        fprintf(stderr, "backprop eval: %s takes %d inputs per image, the images of %s have "
                "%ux%u = %u\n", model, m->sizes[0], data, test->cols, test->rows, test->dim);
        status = EXIT_USAGE;
        goto done;
    }
    if (errors && !(probs = malloc((size_t)test->n * classes * sizeof *probs))) {
        fprintf(stderr, "backprop eval: out of memory\n");
        status = 1;
        goto done;
    }
    bp_eval_result r;
    if ((st = bp_evaluate(m, test, 0, threads, &r, probs, &err))) {
        fprintf(stderr, "backprop eval: %s\n", err.msg);
        status = st == BP_ERR_ARG ? EXIT_USAGE : 1;
        goto done;
    }
    class_stats cs[BP_CLASSES];
    per_class(&r, classes, cs);
    char desc[256];
    cli_model_desc(m, desc, sizeof desc);
    status = json ? print_json(model, desc, data, &r, classes, cs)
                  : (print_tables(model, desc, data, &r, classes, cs), 0);
    if (!status && errors)
        status = draw_errors(errors, test, probs, classes, count);
done:
    free(probs);
    bp_model_free(m);
    bp_dataset_free(train);
    bp_dataset_free(test);
    return status;
}
