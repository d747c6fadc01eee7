/* Model files: the reader. A model file may come from anywhere, so nothing in it is trusted:
 * the header length is checked against the file, the JSON is parsed by jansson (duplicate keys
 * refused), every tensor's dtype and shape must be the ones the architecture implies, the data
 * offsets must tile the data section exactly (no overlap, no hole, nothing past the end), the
 * CRC-32 must match, and no weight may be NaN or infinite. Each failure is one line naming the
 * file and what is wrong. */
#include "modelfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define MF_MAX_FILE ((uint64_t)1 << 32)   /* 4 GiB: far above any model this tool trains */
#define MF_MAX_HEADER ((uint64_t)1 << 24) /* 16 MiB of JSON */

typedef struct {
    const char *path;
    bp_error *err;
    json_t *md;
} loader;

#define BAD(ld, ...) bad_(ld, __VA_ARGS__)
static int bad_(loader *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad_(loader *ld, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    /* The messages quote the file's strings, and a JSON string may hold any control character
     * (\n, \u001b): as '?', so the message stays one line and cannot drive a terminal. */
    for (char *p = what; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return bp_fail(ld->err, BP_ERR_FORMAT, "%s: %s", ld->path, what);
}

/* The whole file, read after checking that it is a regular file (a FIFO would block). */
static int read_file(const char *path, uint8_t **buf, size_t *len, bp_error *err)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0)
        return bp_fail(err, BP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    int st = BP_OK;
    if (fstat(fd, &sb) != 0)
        st = bp_fail(err, BP_ERR_IO, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        st = bp_fail(err, BP_ERR_IO, "%s: not a regular file", path);
    else if ((uint64_t)sb.st_size > MF_MAX_FILE)
        st = bp_fail(err, BP_ERR_FORMAT, "%s: %jd bytes is larger than a model file can be",
                     path, (intmax_t)sb.st_size);
    else if (!(*buf = malloc((size_t)sb.st_size + 1)))
        st = bp_fail(err, BP_ERR_NOMEM, "%s: out of memory for %jd bytes", path,
                     (intmax_t)sb.st_size);
    size_t got = 0;
    while (!st && got < (size_t)sb.st_size) {
        ssize_t r = read(fd, *buf + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            st = bp_fail(err, BP_ERR_IO, "%s: read failed: %s", path,
                         r < 0 ? strerror(errno) : "the file shrank while it was read");
        else
            got += (size_t)r;
    }
    close(fd);
    if (st) {
        free(*buf);
        *buf = NULL;
    }
    *len = got;
    return st;
}

/* ---- telling jansson's allocation failures from bad JSON ----
 * jansson's decoder says little when an allocation fails inside it: most such failures return
 * NULL with no error set at all, and a failed token copy is reported as a syntax error ("invalid
 * token", "string or '}' expected") at a place where the text is fine. A model file's header is
 * untrusted, so a real syntax error must stay BP_ERR_FORMAT; a text that is well-formed JSON
 * which jansson still refused with a syntax-class error was refused for memory. The check
 * below allocates nothing (it would be no use otherwise) and is exactly as strict as jansson's
 * decoder is here: an object or array at the top, RFC 8259 strings, numbers and literals, and
 * \u escapes whose surrogates come in pairs (jansson calls a lone one a syntax error). What
 * jansson refuses for other reasons (duplicate keys, \u0000, invalid UTF-8, overflowing
 * numbers, depth) it reports under codes of their own, which stay BP_ERR_FORMAT. */
typedef struct {
    const unsigned char *p, *end;
} json_scan;

static void scan_ws(json_scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int scan_word(json_scan *s, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
        return 0;
    s->p += n;
    return 1;
}

static int scan_hex4(json_scan *s, unsigned *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++, s->p++) {
        if (s->p >= s->end)
            return 0;
        unsigned c = *s->p, d = c >= '0' && c <= '9' ? c - '0'
                                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : 16;
        if (d == 16)
            return 0;
        *v = *v << 4 | d;
    }
    return 1;
}

static int scan_string(json_scan *s)
{
    s->p++; /* the opening quote */
    while (s->p < s->end) {
        unsigned c = *s->p++;
        if (c == '"')
            return 1;
        if (c < 0x20)
            return 0;
        if (c != '\\')
            continue;
        if (s->p >= s->end)
            return 0;
        c = *s->p++;
        if (c && strchr("\"\\/bfnrt", (int)c))
            continue;
        unsigned u;
        if (c != 'u' || !scan_hex4(s, &u) || (u >= 0xDC00 && u <= 0xDFFF))
            return 0;
        if (u >= 0xD800 && u <= 0xDBFF &&
            (!scan_word(s, "\\u") || !scan_hex4(s, &u) || u < 0xDC00 || u > 0xDFFF))
            return 0;
    }
    return 0;
}

static int scan_digits(json_scan *s)
{
    const unsigned char *start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > start;
}

static int scan_number(json_scan *s)
{
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (s->p >= s->end || *s->p < '1' || *s->p > '9' || !scan_digits(s))
        return 0;
    if (s->p < s->end && *s->p == '.' && (s->p++, !scan_digits(s)))
        return 0;
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!scan_digits(s))
            return 0;
    }
    return 1;
}

#define SCAN_MAX_DEPTH 2048 /* jansson's own limit: deeper is its own error code anyway */

static int scan_value(json_scan *s, int depth)
{
    scan_ws(s);
    if (s->p >= s->end)
        return 0;
    switch (*s->p) {
    case '"': return scan_string(s);
    case 't': return scan_word(s, "true");
    case 'f': return scan_word(s, "false");
    case 'n': return scan_word(s, "null");
    case '{':
    case '[': break;
    default: return scan_number(s);
    }
    unsigned char close = *s->p++ == '{' ? '}' : ']';
    if (depth >= SCAN_MAX_DEPTH)
        return 0;
    scan_ws(s);
    if (s->p < s->end && *s->p == close)
        return s->p++, 1;
    for (;;) {
        if (close == '}') {
            scan_ws(s);
            if (s->p >= s->end || *s->p != '"' || !scan_string(s))
                return 0;
            scan_ws(s);
            if (s->p >= s->end || *s->p++ != ':')
                return 0;
        }
        if (!scan_value(s, depth + 1))
            return 0;
        scan_ws(s);
        if (s->p >= s->end)
            return 0;
        unsigned char c = *s->p++;
        if (c == close)
            return 1;
        if (c != ',')
            return 0;
    }
}

static int json_well_formed(const char *text, size_t n)
{
    json_scan s = {(const unsigned char *)text, (const unsigned char *)text + n};
    scan_ws(&s);
    if (s.p >= s.end || (*s.p != '{' && *s.p != '['))
        return 0;
    if (!scan_value(&s, 0))
        return 0;
    scan_ws(&s);
    return s.p == s.end;
}

/* After jansson refused text[0..n-1] with je: was it for memory? (je must have been zeroed
 * before the call: jansson does not set every field when it reports nothing.) */
static int json_failed_for_memory(const json_error_t *je, const char *text, size_t n)
{
    if (je->text[0] == '\0')
        return 1; /* every input error of jansson's decoder comes with a message */
    switch (json_error_code(je)) {
    case json_error_out_of_memory: return 1;
    case json_error_invalid_syntax:
    case json_error_premature_end_of_input:
    case json_error_end_of_input_expected: return json_well_formed(text, n);
    default: return 0;
    }
}

/* Metadata string key, or NULL (then, if required, an error is set in *st). */
static const char *md_get(loader *ld, const char *key, int required, int *st)
{
    const char *s = json_string_value(json_object_get(ld->md, key));
    if (!s && required && !*st)
        *st = BAD(ld, "metadata lacks \"%s\"", key);
    return s;
}

static int md_long(loader *ld, const char *key, long lo, long hi, long *out, int *st)
{
    const char *s = md_get(ld, key, 1, st);
    if (!s)
        return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) {
        *st = BAD(ld, "metadata \"%s\" is '%.40s', not an integer from %ld to %ld", key, s, lo,
                  hi);
        return 0;
    }
    *out = v;
    return 1;
}

static int md_int(loader *ld, const char *key, long lo, long hi, int *out, int *st)
{
    long v;
    if (!md_long(ld, key, lo, hi, &v, st))
        return 0;
    *out = (int)v;
    return 1;
}

static void md_float(loader *ld, const char *key, float *out, int *st)
{
    const char *s = md_get(ld, key, 1, st);
    if (!s)
        return;
    char *end;
    float v = strtof(s, &end);
    if (end == s || *end || !isfinite(v))
        *st = BAD(ld, "metadata \"%s\" is '%.40s', not a finite number", key, s);
    else
        *out = v;
}

static void md_u64(loader *ld, const char *key, uint64_t *out, int *st)
{
    const char *s = md_get(ld, key, 1, st);
    if (!s)
        return;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    /* digits only: strtoull would skip blanks and wrap a sign ("-1" → 2^64 − 1) */
    if (end == s || *end || errno || *s < '0' || *s > '9')
        *st = BAD(ld, "metadata \"%s\" is '%.40s', not an unsigned 64-bit integer", key, s);
    else
        *out = (uint64_t)v;
}

/* A name metadata value through the library's parser (bp_act_parse, …). */
#define MD_NAME(ld, key, parser, out, st)                                                      \
    do {                                                                                       \
        const char *s_ = md_get(ld, key, 1, st);                                               \
        bp_error e_;                                                                           \
        if (s_ && parser(s_, out, &e_))                                                        \
            *(st) = BAD(ld, "metadata \"%s\": %s", key, e_.msg);                               \
    } while (0)

static int parse_train(loader *ld, bp_train_config *c)
{
    int st = BP_OK;
    bp_train_config_default(c);
    bp_opt_config *o = &c->opt;
    md_int(ld, "train.epochs", 1, BP_MAX_EPOCHS, &c->epochs, &st);
    md_int(ld, "train.batch", 1, BP_MAX_BATCH, &c->batch, &st);
    md_u64(ld, "train.seed", &c->seed, &st);
    md_int(ld, "train.shuffle", 0, 1, &c->shuffle, &st);
    MD_NAME(ld, "train.impl", bp_impl_parse, &c->impl, &st);
    md_int(ld, "train.threads", 0, INT_MAX, &c->threads, &st);
    MD_NAME(ld, "train.optimizer", bp_opt_parse, &o->kind, &st);
    md_float(ld, "train.lr", &o->lr, &st);
    md_float(ld, "train.momentum", &o->momentum, &st);
    md_float(ld, "train.weight_decay", &o->weight_decay, &st);
    md_float(ld, "train.beta1", &o->beta1, &st);
    md_float(ld, "train.beta2", &o->beta2, &st);
    md_float(ld, "train.eps", &o->eps, &st);
    MD_NAME(ld, "train.schedule", bp_sched_parse, &o->sched, &st);
    md_int(ld, "train.step_epochs", 1, BP_MAX_EPOCHS, &o->step_epochs, &st);
    md_float(ld, "train.gamma", &o->gamma, &st);
    md_float(ld, "train.min_lr", &o->min_lr, &st);
    bp_error e;
    if (!st && bp_train_config_check(c, &e))
        st = BAD(ld, "training settings: %s", e.msg);
    return st;
}

/* A non-negative integer member of a layer object, or -1. */
static long layer_int(json_t *layer, const char *key, long hi)
{
    json_t *v = json_object_get(layer, key);
    json_int_t x = json_integer_value(v);
    return json_is_integer(v) && x >= 0 && x <= hi ? (long)x : -1;
}

/* One layer object of "arch" into ly; *in gets a linear layer's "in" (else -1). */
static int parse_layer(loader *ld, json_t *layer, size_t i, bp_layer *ly, long *in)
{
    const char *type = json_string_value(json_object_get(layer, "type"));
    memset(ly, 0, sizeof *ly);
    *in = -1;
    if (!type)
        return BAD(ld, "arch: layer %zu has no \"type\"", i);
    if (strcmp(type, "linear") == 0) {
        long O = layer_int(layer, "out", BP_MAX_WIDTH);
        *in = layer_int(layer, "in", BP_MAX_WIDTH);
        if (O < 1)
            return BAD(ld, "arch: layer %zu has no \"out\" from 1 to %d", i, BP_MAX_WIDTH);
        ly->kind = BP_LAYER_LINEAR, ly->units = (int)O;
        return BP_OK;
    }
    if (strcmp(type, "conv2d") == 0) {
        json_t *k = json_object_get(layer, "kernel");
        json_t *k0 = json_array_get(k, 0), *k1 = json_array_get(k, 1);
        const char *pad = json_string_value(json_object_get(layer, "padding"));
        long O = layer_int(layer, "out_channels", BP_MAX_CHANNELS);
        long C = layer_int(layer, "in_channels", BP_MAX_WIDTH);
        long s = layer_int(layer, "stride", 2);
        if (!json_is_array(k) || json_array_size(k) != 2 || !json_is_integer(k0) ||
            !json_is_integer(k1) || json_integer_value(k0) < 1 ||
            json_integer_value(k0) > BP_MAX_KERNEL || json_integer_value(k1) < 1 ||
            json_integer_value(k1) > BP_MAX_KERNEL)
            return BAD(ld, "arch: layer %zu (conv2d): \"kernel\" must be [kh, kw], each 1 to "
                       "%d", i, BP_MAX_KERNEL);
        if (O < 1 || C < 1 || s < 1)
            return BAD(ld, "arch: layer %zu (conv2d): \"in_channels\", \"out_channels\" and "
                       "\"stride\" must be integers from 1 (out at most %d, stride at most 2)", i,
                       BP_MAX_CHANNELS);
        if (!pad || (strcmp(pad, "valid") != 0 && strcmp(pad, "same") != 0))
            return BAD(ld, "arch: layer %zu (conv2d): \"padding\" must be \"valid\" or \"same\"",
                       i);
        ly->kind = BP_LAYER_CONV2D, ly->units = (int)O, ly->stride = (int)s;
        ly->kh = (int)json_integer_value(k0), ly->kw = (int)json_integer_value(k1);
        ly->pad = strcmp(pad, "same") == 0 ? BP_PAD_SAME : BP_PAD_VALID;
        *in = C; /* checked against the channels that arrive */
        return BP_OK;
    }
    if (strcmp(type, "maxpool2d") == 0 || strcmp(type, "avgpool2d") == 0) {
        long k = layer_int(layer, "kernel", BP_MAX_KERNEL);
        if (k < 1)
            return BAD(ld, "arch: layer %zu (%s): \"kernel\" must be 1 to %d", i, type,
                       BP_MAX_KERNEL);
        ly->kind = type[0] == 'm' ? BP_LAYER_MAXPOOL : BP_LAYER_AVGPOOL;
        ly->kh = ly->kw = ly->stride = (int)k;
        return BP_OK;
    }
    if (strcmp(type, "flatten") == 0) {
        ly->kind = BP_LAYER_FLATTEN;
        return BP_OK;
    }
    if (strcmp(type, "dropout") == 0) {
        const char *ps = json_string_value(json_object_get(layer, "p"));
        char *end;
        float p = ps ? strtof(ps, &end) : -1.0f;
        if (!ps || end == ps || *end || !(p >= 0.0f && p < 1.0f))
            return BAD(ld, "arch: layer %zu (dropout): \"p\" must be a rate at least 0 and "
                       "below 1, as a string", i);
        ly->kind = BP_LAYER_DROPOUT, ly->p = p;
        return BP_OK;
    }
    bp_act a;
    if (bp_act_parse(type, &a, NULL) == BP_OK) {
        ly->kind = BP_LAYER_ACT, ly->act = a;
        return BP_OK;
    }
    return BAD(ld, "arch: layer %zu: unknown layer type '%.32s' (linear, conv2d, maxpool2d, "
               "avgpool2d, flatten, dropout, relu, tanh, sigmoid)", i, type);
}

/* The "arch" metadata: input shape and layer list, shapes inferred and checked. */
static int parse_arch(loader *ld, bp_layer *list, int *nlist, int *in_c, int *in_h, int *in_w,
                      uint32_t *rows, uint32_t *cols)
{
    int st = BP_OK;
    const char *s = md_get(ld, "arch", 1, &st);
    if (!s)
        return st;
    json_error_t je;
    memset(&je, 0, sizeof je);
    json_t *a = json_loads(s, JSON_REJECT_DUPLICATES, &je), *in = NULL, *layers = NULL;
    if (!a && json_failed_for_memory(&je, s, strlen(s)))
        st = bp_fail(ld->err, BP_ERR_NOMEM, "%s: out of memory reading the architecture",
                     ld->path);
    else if (!a || !json_is_object(a))
        st = BAD(ld, "metadata \"arch\" is not a JSON object%s%s", a ? "" : ": ",
                 a ? "" : je.text);
    else if (!json_is_array(in = json_object_get(a, "input")) || json_array_size(in) < 1 ||
             json_array_size(in) > 3)
        st = BAD(ld, "arch: \"input\" must be a shape of 1 to 3 dimensions");
    else if (!json_is_array(layers = json_object_get(a, "layers")) ||
             json_array_size(layers) < 1)
        st = BAD(ld, "arch: \"layers\" must be a non-empty list");
    else if (json_array_size(layers) > BP_MAX_LIST)
        st = BAD(ld, "arch: more than %d layers", BP_MAX_LIST);
    if (st)
        goto done;
    size_t nd = json_array_size(in);
    uint64_t dims[3] = {1, 1, 1};
    for (size_t d = 0; d < nd; d++) {
        json_int_t v = json_integer_value(json_array_get(in, d));
        if (!json_is_integer(json_array_get(in, d)) || v < 1 || v > BP_MAX_WIDTH) {
            st = BAD(ld, "arch: input dimension %zu is not 1 to %d", d, BP_MAX_WIDTH);
            goto done;
        }
        dims[d] = (uint64_t)v;
    }
    if (dims[0] * dims[1] * dims[2] > BP_MAX_WIDTH) {
        st = BAD(ld, "arch: an input of %" PRIu64 " values is wider than %d",
                 dims[0] * dims[1] * dims[2], BP_MAX_WIDTH);
        goto done;
    }
    /* [n]: flat; [h, w]: one channel; [c, h, w] */
    int c = nd == 3 ? (int)dims[0] : 1, h = nd == 1 ? 1 : (int)dims[nd - 2];
    int w = nd == 1 ? (int)dims[0] : (int)dims[nd - 1];
    *rows = nd >= 2 ? (uint32_t)h : 0;
    *cols = nd >= 2 ? (uint32_t)w : 0;
    size_t n = json_array_size(layers);
    long ins[BP_MAX_LIST];
    int spatial = 0;
    for (size_t i = 0; i < n; i++) {
        if ((st = parse_layer(ld, json_array_get(layers, i), i, &list[i], &ins[i])))
            goto done;
        bp_layer_kind k = list[i].kind;
        spatial |= k == BP_LAYER_CONV2D || k == BP_LAYER_MAXPOOL || k == BP_LAYER_AVGPOOL;
    }
    if (list[n - 1].kind != BP_LAYER_LINEAR) {
        st = BAD(ld, "arch: the last layer must be linear");
        goto done;
    }
    /* A model without spatial layers takes its input flat (an MLP's image is only its shape). */
    if (!spatial)
        c = c * h * w, h = w = 1;
    bp_error e;
    if (layers_infer(list, (int)n, c, h, w, &e)) {
        st = BAD(ld, "arch: %s", e.msg);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const bp_layer *ly = &list[i];
        long arrive = ly->kind == BP_LAYER_LINEAR ? (long)layer_in_size(ly) : ly->in_c;
        if (ly->kind == BP_LAYER_LINEAR && ins[i] != arrive) {
            st = BAD(ld, "arch: layer %zu takes %ld inputs, but %ld arrive", i, ins[i], arrive);
            goto done;
        }
        if (ly->kind == BP_LAYER_CONV2D && ins[i] != arrive) {
            st = BAD(ld, "arch: layer %zu takes %ld channels, but %ld arrive", i, ins[i],
                     arrive);
            goto done;
        }
    }
    *nlist = (int)n;
    *in_c = c, *in_h = h, *in_w = w;
done:
    json_decref(a);
    return st;
}

typedef struct {
    mf_tensor t;
    uint64_t begin, end;
    int seen;
} want_tensor;

static int cmp_begin(const void *a, const void *b)
{
    const want_tensor *x = *(want_tensor *const *)a, *y = *(want_tensor *const *)b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

/* Checks the header's tensors against want[0..n-1] and that they tile data_len bytes. */
static int check_tensors(loader *ld, json_t *root, want_tensor *want, int n, uint64_t data_len)
{
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        want_tensor *w = NULL;
        for (int i = 0; i < n && !w; i++)
            if (strcmp(want[i].t.name, key) == 0)
                w = &want[i];
        if (!w)
            return BAD(ld, "unexpected tensor '%.64s' (the architecture has no such tensor)",
                       key);
        const char *dtype = json_string_value(json_object_get(v, "dtype"));
        json_t *shape = json_object_get(v, "shape"), *offs = json_object_get(v, "data_offsets");
        const char *want_dtype = w->t.u32 ? "U32" : "F32";
        if (!dtype || strcmp(dtype, want_dtype) != 0)
            return BAD(ld, "tensor '%s' has dtype %.16s, expected %s", key,
                       dtype ? dtype : "(none)", want_dtype);
        int shape_ok = json_is_array(shape) && json_array_size(shape) == (size_t)w->t.ndim;
        for (int d = 0; shape_ok && d < w->t.ndim; d++) {
            json_t *x = json_array_get(shape, (size_t)d);
            shape_ok = json_is_integer(x) && (uint64_t)json_integer_value(x) == w->t.shape[d] &&
                       json_integer_value(x) >= 0;
        }
        if (!shape_ok) {
            char exp[96];
            size_t k = 0;
            for (int d = 0; d < w->t.ndim && k < sizeof exp; d++)
                k += (size_t)snprintf(exp + k, sizeof exp - k, "%s%" PRIu64, d ? ", " : "[",
                                      w->t.shape[d]);
            if (k < sizeof exp)
                snprintf(exp + k, sizeof exp - k, "]");
            return BAD(ld, "tensor '%s' does not have the shape %s the architecture implies",
                       key, exp);
        }
        json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
        if (!json_is_array(offs) || json_array_size(offs) != 2 || !json_is_integer(b) ||
            !json_is_integer(e) || json_integer_value(b) < 0 || json_integer_value(e) < 0)
            return BAD(ld, "tensor '%s': data_offsets must be two non-negative integers", key);
        w->begin = (uint64_t)json_integer_value(b);
        w->end = (uint64_t)json_integer_value(e);
        if (w->end < w->begin || w->end > data_len)
            return BAD(ld, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] lie outside "
                       "the %" PRIu64 " bytes of tensor data", key, w->begin, w->end, data_len);
        if (w->end - w->begin != tensor_bytes(&w->t))
            return BAD(ld, "tensor '%s': data_offsets span %" PRIu64 " bytes, its shape needs "
                       "%zu", key, w->end - w->begin, tensor_bytes(&w->t));
        w->seen = 1;
    }
    want_tensor *order[MF_MAX_TENSORS];
    for (int i = 0; i < n; i++) {
        if (!want[i].seen)
            return BAD(ld, "tensor '%s' is missing", want[i].t.name);
        order[i] = &want[i];
    }
    qsort(order, (size_t)n, sizeof *order, cmp_begin);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        if (order[i]->begin < at)
            return BAD(ld, "tensors '%s' and '%s' overlap", order[i - 1]->t.name,
                       order[i]->t.name);
        if (order[i]->begin > at)
            return BAD(ld, "%" PRIu64 " bytes before tensor '%s' belong to no tensor",
                       order[i]->begin - at, order[i]->t.name);
        at = order[i]->end;
    }
    if (at != data_len)
        return BAD(ld, "%" PRIu64 " bytes after the last tensor belong to no tensor",
                   data_len - at);
    return BP_OK;
}

/* Little-endian 4-byte words from the file into dst. */
static void copy_words(void *dst, const uint8_t *src, size_t count)
{
    uint32_t *d = dst;
    for (size_t i = 0; i < count; i++, src += 4)
        d[i] = (uint32_t)src[0] | (uint32_t)src[1] << 8 | (uint32_t)src[2] << 16 |
               (uint32_t)src[3] << 24;
}

static int finite_floats(loader *ld, const char *name, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return BAD(ld, "tensor '%s' holds %s at index %zu", name,
                       isnan(x[i]) ? "NaN" : "an infinity", i);
    return BP_OK;
}

static int parse_rng(loader *ld, bp_rng *rng)
{
    int st = BP_OK;
    const char *s = md_get(ld, "rng", 1, &st);
    if (!s)
        return st;
    if (strlen(s) != 64 || strspn(s, "0123456789abcdef") != 64)
        return BAD(ld, "metadata \"rng\" is not 64 lower-case hex digits");
    for (int k = 0; k < 4; k++) {
        char word[17];
        memcpy(word, s + 16 * k, 16);
        word[16] = '\0';
        rng->s[k] = (uint64_t)strtoull(word, NULL, 16);
    }
    if (!(rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]))
        return BAD(ld, "metadata \"rng\" is the all-zero state, which xoshiro256** never leaves");
    return BP_OK;
}

/* Checkpoint tensors wanted, from the optimizer kind and the permutation's presence. */
static int want_extras(loader *ld, json_t *root, const bp_model_info *info, size_t nparams,
                       want_tensor *want, int *n)
{
    int need_m = info->train.opt.kind != BP_OPT_SGD, need_s = info->train.opt.kind == BP_OPT_ADAM;
    const char *names[3] = {"optimizer.m", "optimizer.s", "trainer.perm"};
    int need[3] = {need_m, need_s, info->train.shuffle};
    for (int k = 0; k < 3; k++) {
        if (!need[k])
            continue;
        mf_tensor *t = &want[*n].t;
        snprintf(t->name, sizeof t->name, "%s", names[k]);
        t->u32 = k == 2;
        t->ndim = 1;
        t->shape[0] = nparams;
        if (k == 2) {
            json_t *shape = json_object_get(json_object_get(root, names[k]), "shape");
            json_int_t len = json_integer_value(json_array_get(shape, 0));
            if (len < 1 || len > UINT32_MAX)
                return BAD(ld, "tensor 'trainer.perm' is missing or has no valid length");
            t->shape[0] = (uint64_t)len;
        }
        (*n)++;
    }
    return BP_OK;
}

static int load_checkpoint(loader *ld, const uint8_t *data, const want_tensor *want, int n0,
                           int n, const bp_model_info *info, size_t nparams, bp_checkpoint **out)
{
    bp_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck)
        return bp_fail(ld->err, BP_ERR_NOMEM, "%s: out of memory", ld->path);
    int st = parse_rng(ld, &ck->rng);
    if (!st)
        md_long(ld, "optimizer.t", 0, LONG_MAX, &ck->opt_t, &st);
    long samples = 0;
    if (!st && md_long(ld, "samples", 1, UINT32_MAX, &samples, &st))
        ck->samples = (uint32_t)samples;
    long pos = 0;
    if (!st && md_long(ld, "epoch_pos", 0, UINT32_MAX, &pos, &st))
        ck->epoch_pos = (uint32_t)pos;
    if (!st)
        md_long(ld, "epoch_hits", 0, pos, &ck->epoch_hits, &st);
    const char *el = md_get(ld, "epoch_loss", 1, &st);
    if (!st) {
        char *end;
        ck->epoch_loss = strtod(el, &end);
        if (end == el || *end || !(ck->epoch_loss >= 0) || !isfinite(ck->epoch_loss))
            st = BAD(ld, "metadata \"epoch_loss\" is '%.40s', not a finite loss", el);
    }

    ck->info = *info;
    ck->nparams = nparams;
    for (int i = n0; i < n && !st; i++) {
        const want_tensor *w = &want[i];
        size_t count = (size_t)w->t.shape[0];
        void *dst = malloc(count * 4);
        if (!dst) {
            st = bp_fail(ld->err, BP_ERR_NOMEM, "%s: out of memory", ld->path);
            break;
        }
        copy_words(dst, data + w->begin, count);
        if (strcmp(w->t.name, "trainer.perm") == 0) {
            ck->perm = dst;
            ck->nperm = (uint32_t)count;
        } else {
            *(strcmp(w->t.name, "optimizer.m") == 0 ? &ck->opt_m : &ck->opt_s) = dst;
            st = finite_floats(ld, w->t.name, dst, count);
        }
    }
    /* The trainer indexes the data set through perm: it must be a permutation of 0..n−1. */
    if (!st && ck->perm) {
        uint8_t *seen = calloc(ck->nperm, 1);
        if (!seen)
            st = bp_fail(ld->err, BP_ERR_NOMEM, "%s: out of memory", ld->path);
        for (uint32_t i = 0; seen && i < ck->nperm && !st; i++) {
            uint32_t v = ck->perm[i];
            if (v >= ck->nperm || seen[v])
                st = BAD(ld, "tensor 'trainer.perm' is not a permutation (entry %u is %u)", i,
                         v);
            else
                seen[v] = 1;
        }
        free(seen);
    }
    if (st)
        bp_checkpoint_free(ck);
    else
        *out = ck;
    return st;
}

static int load_meta(loader *ld, bp_model_info *info, int *is_ck)
{
    int st = BP_OK;
    const char *fmt = md_get(ld, "format", 1, &st);
    if (fmt && strcmp(fmt, "backprop") != 0)
        return BAD(ld, "metadata \"format\" is '%.32s', not 'backprop'", fmt);
    long version = 0;
    const char *vs = md_get(ld, "format_version", 1, &st);
    if (vs && !md_long(ld, "format_version", 1, 1000000, &version, &st))
        return st;
    if (!st && version > BP_MODEL_FORMAT_VERSION)
        return BAD(ld, "format version %ld is newer than this backprop's %d: upgrade backprop",
                   version, BP_MODEL_FORMAT_VERSION);
    const char *scale = md_get(ld, "input_scale", 1, &st);
    if (scale && strcmp(scale, "x/255") != 0)
        return BAD(ld, "input_scale '%.32s' is not the x/255 this tool trains with", scale);
    memset(info, 0, sizeof *info);
    info->format_version = (int)version;
    info->best_test_acc = NAN;
    if (!st && json_object_get(ld->md, "epoch"))
        md_int(ld, "epoch", 0, BP_MAX_EPOCHS, &info->epoch, &st);
    if (!st && json_object_get(ld->md, "step"))
        md_long(ld, "step", 0, LONG_MAX, &info->step, &st);
    const char *best = md_get(ld, "best_test_acc", 0, &st);
    if (!st && best) {
        char *end;
        info->best_test_acc = strtod(best, &end);
        if (end == best || *end || !(info->best_test_acc >= 0 && info->best_test_acc <= 1))
            return BAD(ld, "metadata \"best_test_acc\" is '%.40s', not a fraction", best);
    }
    if (!st && json_object_get(ld->md, "train.epochs")) {
        info->has_train = 1;
        st = parse_train(ld, &info->train);
    }
    const char *ck = md_get(ld, "checkpoint", 0, &st);
    *is_ck = ck && strcmp(ck, "1") == 0;
    if (!st && ck && !*is_ck)
        return BAD(ld, "metadata \"checkpoint\" is '%.16s', not 1", ck);
    if (!st && *is_ck && !info->has_train)
        return BAD(ld, "a checkpoint without its training settings");
    info->is_checkpoint = *is_ck;
    return st;
}

/* Everything past the header: metadata, architecture, tensors, CRC, values. */
static int load_body(loader *ld, json_t *root, const uint8_t *data, uint64_t data_len,
                     bp_model **out, bp_model_info *info, bp_checkpoint **ckp)
{
    const char *key;
    json_t *v;
    json_object_foreach(ld->md, key, v)
    {
        if (!json_is_string(v))
            return BAD(ld, "metadata \"%.64s\" is not a string", key);
    }
    int is_ck = 0, st = load_meta(ld, info, &is_ck);
    bp_layer list[BP_MAX_LIST];
    int nlist = 0, in_c = 1, in_h = 1, in_w = 1;
    uint32_t rows = 0, cols = 0;
    if (!st)
        st = parse_arch(ld, list, &nlist, &in_c, &in_h, &in_w, &rows, &cols);
    if (st)
        return st;
    int classes = 0, L = 0;
    for (int i = 0; i < nlist; i++)
        L += list[i].kind == BP_LAYER_LINEAR || list[i].kind == BP_LAYER_CONV2D;
    if (L > BP_MAX_LAYERS)
        return BAD(ld, "arch: more than %d layers with parameters", BP_MAX_LAYERS);
    int outs = list[nlist - 1].units;
    /* any width bp_model_create accepts: the writer saves every such model */
    if (md_int(ld, "classes", 1, BP_MAX_WIDTH, &classes, &st) && classes != outs)
        return BAD(ld, "metadata says %d classes, the architecture %d outputs", classes, outs);
    const char *act_md = md_get(ld, "activation", 1, &st);
    if (st)
        return st;
    const char *act_arch = "none";
    for (int i = 0; i < nlist; i++)
        if (list[i].kind == BP_LAYER_ACT) {
            const char *an = bp_act_name(list[i].act);
            act_arch = strcmp(act_arch, "none") != 0 && strcmp(act_arch, an) != 0 ? "mixed" : an;
            if (strcmp(act_arch, "mixed") == 0)
                break;
        }
    if (strcmp(act_md, act_arch) != 0)
        return BAD(ld, "metadata \"activation\" is '%.16s', the architecture says %s", act_md,
                   act_arch);
    bp_init init = BP_INIT_AUTO;
    uint64_t init_seed = 0;
    if (json_object_get(ld->md, "init")) {
        MD_NAME(ld, "init", bp_init_parse, &init, &st);
        md_u64(ld, "init_seed", &init_seed, &st);
    }
    /* Sizes first, so a header that promises more weights than the file holds is refused
     * before anything is allocated for them. */
    uint64_t nparams = 0;
    for (int i = 0; i < nlist; i++)
        if (list[i].kind == BP_LAYER_LINEAR || list[i].kind == BP_LAYER_CONV2D)
            nparams += (uint64_t)layer_weights(&list[i]) + (uint64_t)list[i].units;
    if (!st && nparams * 4 > data_len)
        return BAD(ld, "the architecture needs %" PRIu64 " bytes of weights, the file holds "
                   "%" PRIu64, nparams * 4, data_len);
    if (!st && nparams > ((uint64_t)1 << 31) / sizeof(float)) /* bp_model_create's limit */
        return BAD(ld, "the architecture has %" PRIu64 " parameters, more than this tool "
                   "allows", nparams);
    want_tensor want[MF_MAX_TENSORS];
    memset(want, 0, sizeof want);
    int n = 0;
    for (int i = 0; i < nlist; i++) {
        if (list[i].kind != BP_LAYER_LINEAR && list[i].kind != BP_LAYER_CONV2D)
            continue;
        for (int bias = 0; bias < 2; bias++) {
            mf_tensor *t = &want[n++].t;
            tensor_name(t->name, sizeof t->name, i, bias);
            tensor_shape(t, &list[i], bias);
        }
    }
    int n0 = n;
    if (!st && is_ck)
        st = want_extras(ld, root, info, (size_t)nparams, want, &n);
    if (!st)
        st = check_tensors(ld, root, want, n, data_len);
    const char *crc_s = md_get(ld, "crc32", 1, &st);
    if (st)
        return st;
    unsigned long crc = crc32_z(crc32_z(0L, Z_NULL, 0), data, (size_t)data_len), want_crc;
    /* strtoul alone would also take a sign, spaces or "0x" in place of leading zeros */
    if (strlen(crc_s) != 8 || strspn(crc_s, "0123456789abcdefABCDEF") != 8)
        return BAD(ld, "metadata \"crc32\" is '%.16s', not 8 hex digits", crc_s);
    want_crc = strtoul(crc_s, NULL, 16);
    if (crc != want_crc)
        return BAD(ld, "CRC-32 of the tensor data is %08lx, the header says %08lx: the file is "
                   "damaged", crc, want_crc);

    bp_model *m = NULL;
    if ((st = bp_model_create_layers(&m, in_c, in_h, in_w, list, nlist, ld->err)))
        return st;
    if (m->mlp && L == 1)
        m->act = BP_ACT_RELU; /* unused: no hidden layer */
    m->input_rows = rows, m->input_cols = cols, m->init = init, m->init_seed = init_seed;
    for (int l = 0; l < L && !st; l++) {
        const want_tensor *w = &want[2 * l], *b = &want[2 * l + 1];
        copy_words(m->W[l], data + w->begin, tensor_bytes(&w->t) / 4);
        copy_words(m->b[l], data + b->begin, tensor_bytes(&b->t) / 4);
        st = finite_floats(ld, w->t.name, m->W[l], tensor_bytes(&w->t) / 4);
        if (!st)
            st = finite_floats(ld, b->t.name, m->b[l], tensor_bytes(&b->t) / 4);
    }
    if (!st && is_ck && ckp)
        st = load_checkpoint(ld, data, want, n0, n, info, (size_t)nparams, ckp);
    if (st) {
        bp_model_free(m);
        return st;
    }
    *out = m;
    return BP_OK;
}

int bp_model_load(const char *path, bp_model **out, bp_model_info *info, bp_checkpoint **ck,
                  bp_error *err)
{
    *out = NULL;
    if (ck)
        *ck = NULL;
    bp_model_info scratch;
    if (!info)
        info = &scratch;
    loader ld = {path, err, NULL};
    uint8_t *buf = NULL;
    size_t len = 0;
    int st = read_file(path, &buf, &len, err);
    if (st)
        return st;
    json_t *root = NULL;
    if (len < 8) {
        st = BAD(&ld, "%zu bytes is too short for a safetensors file (8-byte header length, "
                 "header, data)", len);
        goto done;
    }
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--)
        hlen = hlen << 8 | buf[k];
    if (hlen > len - 8) {
        st = BAD(&ld, "header length %" PRIu64 " runs past the end of the file (%zu bytes)",
                 hlen, len);
        goto done;
    }
    if (hlen < 2 || hlen > MF_MAX_HEADER) {
        st = BAD(&ld, "header length %" PRIu64 " is not 2 to %" PRIu64 " bytes", hlen,
                 MF_MAX_HEADER);
        goto done;
    }
    json_error_t je;
    memset(&je, 0, sizeof je);
    root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root && json_failed_for_memory(&je, (const char *)buf + 8, (size_t)hlen)) {
        st = bp_fail(err, BP_ERR_NOMEM, "%s: out of memory reading the header", path);
        goto done;
    }
    if (!root) {
        st = BAD(&ld, "the header is not valid JSON: %s (line %d, column %d)", je.text, je.line,
                 je.column);
        goto done;
    }
    if (!json_is_object(root) || !json_is_object(ld.md = json_object_get(root, "__metadata__"))) {
        st = BAD(&ld, "the header has no \"__metadata__\" object: not a backprop model file");
        goto done;
    }
    st = load_body(&ld, root, buf + 8 + hlen, len - 8 - hlen, out, info, ck);
done:
    json_decref(root);
    free(buf);
    return st;
}
