/* backprop predict: a saved model on image files: PGM (P2, P5), PNG, and IDX image files (every
 * image in them). The images are scaled exactly as in training (x/255, through the same gather
 * and forward pass as evaluation), so a test image predicted from a PNG gets the probabilities
 * eval computes for it. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fputs("usage: backprop predict --model FILE [OPTIONS] INPUT...\n"
          "Print the three most probable classes of each input image.\n"
          "\n"
          "INPUT is a PGM (P2 or P5), PNG or IDX image file (raw or .gz; every image in it),\n"
          "told apart by their first bytes. Each image must have the size the model was\n"
          "trained on (28x28 for MNIST): nothing is resized. MNIST digits are white on\n"
          "black; for black-on-white scans pass --invert. Colour and alpha are converted\n"
          "to gray as docs/images.md says (alpha over black, BT.601 luma).\n"
          "\n"
          "  --model FILE   a model file written by train --save or --checkpoint\n"
          "  --invert       use 255 − v for every pixel v\n"
          "  --json         print one JSON array, an object per image\n"
          "  --threads N    OpenBLAS threads (default OPENBLAS_NUM_THREADS, else all cores)\n"
          "\n"
          "Exit status: 0 ok, 1 runtime failure, 2 bad usage or a bad model or input file.\n",
          f);
}

/* What the first bytes say a file is. */
typedef enum { KIND_IMAGE, KIND_IDX, KIND_UNKNOWN, KIND_UNREADABLE } input_kind;

/* Opened without blocking and read only if it is a regular file: a FIFO would hang here
 * before the library's readers, which refuse it, were ever called. */
static input_kind sniff(const char *path, int *errnum)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        *errnum = errno;
        if (fd >= 0)
            close(fd);
        return KIND_UNREADABLE;
    }
    unsigned char b[4] = {0};
    ssize_t n = S_ISREG(sb.st_mode) ? read(fd, b, 4) : 0;
    close(fd);
    if (!S_ISREG(sb.st_mode)) {
        *errnum = S_ISDIR(sb.st_mode) ? EISDIR : EINVAL;
        return KIND_UNREADABLE;
    }
    if (n >= 2 && b[0] == 'P' && (b[1] == '2' || b[1] == '5'))
        return KIND_IMAGE;
    if (n == 4 && b[0] == 0x89 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G')
        return KIND_IMAGE;
    if ((n == 4 && b[0] == 0 && b[1] == 0 && b[2] == 0x08 && b[3] == 0x03) ||
        (n >= 2 && b[0] == 0x1f && b[1] == 0x8b))
        return KIND_IDX;
    return KIND_UNKNOWN;
}

typedef struct {
    const bp_model *m;
    uint32_t rows, cols;
    int invert, json, threads;
    json_t *out; /* --json: the array being built */
} predictor;

static void print_top(predictor *p, const char *path, long index, const float *y)
{
    int C = p->m->sizes[p->m->nlayers], top[3] = {-1, -1, -1};
    for (int t = 0; t < 3 && t < C; t++)
        for (int k = 0; k < C; k++) {
            int taken = (t > 0 && top[0] == k) || (t > 1 && top[1] == k);
            if (!taken && (top[t] < 0 || y[k] > y[top[t]]))
                top[t] = k;
        }
    if (p->json) {
        json_t *o = json_object(), *arr = json_array();
        json_object_set_new(o, "input", json_string(path));
        if (index >= 0)
            json_object_set_new(o, "index", json_integer(index));
        for (int t = 0; t < 3 && top[t] >= 0; t++) {
            json_t *e = json_object();
            json_object_set_new(e, "class", json_integer(top[t]));
            json_object_set_new(e, "p", json_real(y[top[t]]));
            json_array_append_new(arr, e);
        }
        json_object_set_new(o, "top", arr);
        json_array_append_new(p->out, o);
        return;
    }
    if (index >= 0)
        printf("%s[%ld]:", path, index);
    else
        printf("%s:", path);
    for (int t = 0; t < 3 && top[t] >= 0; t++)
        printf("  %d (%.6f)", top[t], y[top[t]]);
    printf("\n");
}

/* n images of rows×cols pixels, one after the other: checked, inverted if asked, predicted. */
static int predict_pixels(predictor *p, const char *path, uint8_t *px, uint32_t n,
                          uint32_t rows, uint32_t cols, int many)
{
    if (rows != p->rows || cols != p->cols) {
        fprintf(stderr, "backprop predict: %s: %ux%u pixels; the model takes %ux%u images "
                "(resize it first)\n", path, cols, rows, p->cols, p->rows);
        return EXIT_USAGE;
    }
    size_t total = (size_t)n * rows * cols;
    if (p->invert)
        for (size_t i = 0; i < total; i++)
            px[i] = (uint8_t)(255 - px[i]);
    int C = p->m->sizes[p->m->nlayers];
    uint8_t *labels = calloc(n ? n : 1, 1);
    float *probs = malloc((size_t)n * C * sizeof *probs);
    if (!labels || !probs) {
        free(labels), free(probs);
        fprintf(stderr, "backprop predict: out of memory\n");
        return 1;
    }
    /* Through bp_evaluate: the same gather (x/255) and forward as eval, so the same numbers.
     * The labels are placeholders: only the probabilities are used. */
    bp_dataset ds = {n, rows, cols, rows * cols, (uint32_t)C, px, labels};
    bp_eval_result r;
    bp_error err = {0};
    int st = bp_evaluate(p->m, &ds, 0, p->threads, &r, probs, &err);
    if (st)
        fprintf(stderr, "backprop predict: %s: %s\n", path, err.msg);
    for (uint32_t i = 0; !st && i < n; i++)
        print_top(p, path, many ? (long)i : -1, probs + (size_t)i * C);
    free(labels), free(probs);
    return !st ? 0 : st == BP_ERR_ARG ? EXIT_USAGE : 1;
}

static int predict_file(predictor *p, const char *path)
{
    int errnum = 0;
    bp_error err = {0};
    switch (sniff(path, &errnum)) {
    case KIND_UNREADABLE:
        fprintf(stderr, "backprop predict: %s: cannot open: %s\n", path,
                errnum == EINVAL ? "not a regular file" : strerror(errnum));
        return EXIT_USAGE;
    case KIND_UNKNOWN:
        fprintf(stderr, "backprop predict: %s: not a PGM, PNG or IDX image file\n", path);
        return EXIT_USAGE;
    case KIND_IMAGE: {
        bp_image img = {0, 0, NULL};
        int st = bp_image_read(path, &img, &err);
        if (st) {
            fprintf(stderr, "backprop predict: %s\n", err.msg);
            return cli_exit(st);
        }
        st = predict_pixels(p, path, img.pixels, 1, img.rows, img.cols, 0);
        bp_image_free(&img);
        return st;
    }
    case KIND_IDX: {
        uint8_t *px = NULL;
        uint32_t n = 0, rows = 0, cols = 0;
        int st = bp_idx_read_images(path, &px, &n, &rows, &cols, &err);
        if (st) {
            fprintf(stderr, "backprop predict: %s\n", err.msg);
            return cli_exit(st);
        }
        st = predict_pixels(p, path, px, n, rows, cols, 1);
        free(px);
        return st;
    }
    }
    return 1;
}

int cmd_predict(int argc, char **argv)
{
    enum { O_MODEL = 256, O_INVERT, O_JSON, O_THREADS };
    static const struct option longopts[] = {
        {"model", required_argument, 0, O_MODEL}, {"invert", no_argument, 0, O_INVERT},
        {"json", no_argument, 0, O_JSON},         {"threads", required_argument, 0, O_THREADS},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    const char *C = "predict", *model = NULL;
    predictor p = {NULL, 0, 0, 0, 0, 0, NULL};
    int c;
    opterr = 0;
    optind = 0; /* a full reset (glibc, musl); 1 would resume a cluster left half-read */
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_INVERT: p.invert = 1; break;
        case O_JSON: p.json = 1; break;
        case O_THREADS: bad = opt_int(C, "--threads", optarg, &p.threads); break;
        case 'h': help(stdout); return 0;
        default: cli_opt_error(C, c, argv, longopts); return EXIT_USAGE;
        }
        if (bad || p.threads < 0) {
            if (!bad)
                fprintf(stderr, "backprop predict: --threads: %d must be 0 (the default) or "
                        "positive\n", p.threads);
            fputs("Try 'backprop predict --help'.\n", stderr);
            return EXIT_USAGE;
        }
    }
    if (!model || optind >= argc) {
        fprintf(stderr, "backprop predict: %s\nTry 'backprop predict --help'.\n",
                !model ? "--model FILE is required" : "no input image given");
        return EXIT_USAGE;
    }
    p.threads = cli_threads(C, p.threads);
    bp_model *m = NULL;
    int status = cli_load_model(C, model, &m, NULL);
    if (status)
        return status;
    p.m = m;
    if (!cli_input_shape(m, &p.rows, &p.cols)) {
        fprintf(stderr, "backprop predict: %s takes %d inputs, which are not an image shape\n",
                model, m->sizes[0]);
        bp_model_free(m);
        return EXIT_USAGE;
    }
    if (p.json)
        p.out = json_array();
    /* Every input is tried; the first failure's status is the exit status. */
    for (int i = optind; i < argc; i++) {
        int st = predict_file(&p, argv[i]);
        if (st && !status)
            status = st;
    }
    if (p.json) {
        char *s = json_dumps(p.out, JSON_INDENT(2) | JSON_REAL_PRECISION(8));
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(p.out);
    }
    bp_model_free(m);
    return status;
}
