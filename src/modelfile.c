/* Model files in safetensors form (docs/model-format.md): the writer. The header is built as
 * jansson values and printed by print_json below, with the escapes JSON needs, so it is
 * well-formed whatever the strings hold; it is padded with spaces to a multiple of 8 bytes so
 * the tensors start aligned. Everything written is a pure function of the model, its info and
 * the checkpoint state: no time, no host name, so saving a loaded model again gives the same
 * bytes. The reader is src/modelload.c. */
#include "modelfile.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

void tensor_name(char *buf, size_t len, int index, int is_bias)
{
    snprintf(buf, len, "%d.%s", index, is_bias ? "bias" : "weight");
}

void tensor_shape(mf_tensor *t, const bp_layer *ly, int is_bias)
{
    t->u32 = 0;
    t->shape[0] = (uint64_t)ly->units;
    if (is_bias) {
        t->ndim = 1;
    } else if (ly->kind == BP_LAYER_CONV2D) {
        t->ndim = 4; /* PyTorch's Conv2d: [C_out, C_in, kh, kw] */
        t->shape[1] = (uint64_t)ly->in_c, t->shape[2] = (uint64_t)ly->kh;
        t->shape[3] = (uint64_t)ly->kw;
    } else {
        t->ndim = 2; /* Linear: [out, in] */
        t->shape[1] = (uint64_t)ly->in_c * ly->in_h * ly->in_w;
    }
}

const char *model_act_desc(const bp_model *m)
{
    const char *name = "none";
    for (int i = 0; i < m->nlist; i++)
        if (m->list[i].kind == BP_LAYER_ACT) {
            const char *a = bp_act_name(m->list[i].act);
            if (strcmp(name, "none") != 0 && strcmp(name, a) != 0)
                return "mixed";
            name = a;
        }
    return name;
}

/* The tensors of m (and ck) in file order; returns their number. */
static int list_tensors(const bp_model *m, const bp_checkpoint *ck, mf_tensor *t)
{
    int n = 0;
    for (int i = 0; i < m->nlist; i++) {
        const bp_layer *ly = &m->list[i];
        if (ly->param < 0)
            continue;
        mf_tensor *w = &t[n++], *b = &t[n++];
        tensor_name(w->name, sizeof w->name, i, 0);
        tensor_name(b->name, sizeof b->name, i, 1);
        tensor_shape(w, ly, 0);
        tensor_shape(b, ly, 1);
        w->data = m->W[ly->param];
        b->data = m->b[ly->param];
    }
    if (!ck)
        return n;
    const void *extra[3] = {ck->opt_m, ck->opt_s, ck->perm};
    const char *names[3] = {"optimizer.m", "optimizer.s", "trainer.perm"};
    for (int k = 0; k < 3; k++) {
        if (!extra[k])
            continue;
        mf_tensor *x = &t[n++];
        snprintf(x->name, sizeof x->name, "%s", names[k]);
        x->u32 = k == 2;
        x->ndim = 1;
        x->shape[0] = k == 2 ? ck->nperm : ck->nparams;
        x->data = extra[k];
    }
    return n;
}

size_t tensor_bytes(const mf_tensor *t)
{
    size_t n = 4;
    for (int d = 0; d < t->ndim; d++)
        n *= (size_t)t->shape[d];
    return n;
}

static int set_str(json_t *obj, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_str(json_t *obj, const char *key, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return json_object_set_new(obj, key, json_string(buf));
}

/* ---- printing the header ----
 * Not json_dumps: jansson's encoder ignores the result of writing an object's key (do_dump drops
 * dump_string's status), so when an allocation fails there it returns a header with a key
 * missing and no error, and the model file written from it would replace a good one. The
 * header holds only objects, arrays, strings and integers; print_json prints them exactly as
 * json_dumps(JSON_COMPACT) does (keys in insertion order, the same escapes, so files keep their
 * bytes), into a buffer sized by a first pass, so its one allocation is checked. */
typedef struct {
    char *buf; /* NULL: only count */
    size_t len;
} json_out;

static void put(json_out *o, const char *s, size_t n)
{
    if (o->buf)
        memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void put_string(json_out *o, const char *s, size_t n)
{
    put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t" : NULL;
        char u[8];
        if (esc)
            put(o, esc, 2);
        else if (c < 0x20)
            put(o, u, (size_t)snprintf(u, sizeof u, "\\u%04X", c));
        else
            put(o, s + i, 1);
    }
    put(o, "\"", 1);
}

static int put_value(json_out *o, json_t *v)
{
    char num[32];
    const char *key;
    json_t *x;
    int first = 1;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        put(o, "{", 1);
        json_object_foreach(v, key, x)
        {
            if (!first)
                put(o, ",", 1);
            first = 0;
            put_string(o, key, strlen(key));
            put(o, ":", 1);
            if (put_value(o, x))
                return -1;
        }
        put(o, "}", 1);
        return 0;
    case JSON_ARRAY:
        put(o, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                put(o, ",", 1);
            if (put_value(o, json_array_get(v, i)))
                return -1;
        }
        put(o, "]", 1);
        return 0;
    case JSON_STRING:
        put_string(o, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER:
        put(o, num, (size_t)snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
                                     json_integer_value(v)));
        return 0;
    default:
        return -1; /* the header holds no other type */
    }
}

/* The compact text of v, to free(); NULL when out of memory. */
static char *print_json(json_t *v)
{
    json_out o = {NULL, 0};
    if (!v || put_value(&o, v))
        return NULL;
    size_t n = o.len;
    if (!(o.buf = malloc(n + 1)))
        return NULL;
    o.len = 0;
    put_value(&o, v);
    o.buf[n] = '\0';
    return o.buf;
}

/* The architecture as its own small JSON document: a list of typed layers, so that layers of
 * other types (conv2d, pool, …) extend it without a new format. NULL when out of memory.
 * jansson's _new calls take their value whatever happens (they free it when they fail, and fail
 * on a NULL one, which is what a failed json_integer or json_object returns), so the results are
 * or-ed together and checked once: nothing leaks, and no half-built document is printed. */
static char *arch_json(const bp_model *m)
{
    json_t *a = json_object(), *layers = json_array(), *shape = json_array();
    int r = 0;
    int c = m->input_channels > 0 ? m->input_channels : 1;
    if (m->input_rows && m->input_cols &&
        (uint64_t)c * m->input_rows * m->input_cols == (uint64_t)m->sizes[0]) {
        if (c > 1)
            r |= json_array_append_new(shape, json_integer(c));
        r |= json_array_append_new(shape, json_integer(m->input_rows));
        r |= json_array_append_new(shape, json_integer(m->input_cols));
    } else {
        r |= json_array_append_new(shape, json_integer(m->sizes[0]));
    }
    r |= json_object_set_new(a, "input", shape);
    for (int i = 0; i < m->nlist; i++) {
        const bp_layer *ly = &m->list[i];
        json_t *o = json_object();
        switch (ly->kind) {
        case BP_LAYER_LINEAR:
            r |= json_object_set_new(o, "type", json_string("linear"));
            r |= json_object_set_new(o, "in", json_integer((json_int_t)layer_in_size(ly)));
            r |= json_object_set_new(o, "out", json_integer(ly->units));
            break;
        case BP_LAYER_ACT:
            r |= json_object_set_new(o, "type", json_string(bp_act_name(ly->act)));
            break;
        case BP_LAYER_CONV2D: {
            json_t *k = json_array();
            r |= json_array_append_new(k, json_integer(ly->kh));
            r |= json_array_append_new(k, json_integer(ly->kw));
            r |= json_object_set_new(o, "type", json_string("conv2d"));
            r |= json_object_set_new(o, "in_channels", json_integer(ly->in_c));
            r |= json_object_set_new(o, "out_channels", json_integer(ly->units));
            r |= json_object_set_new(o, "kernel", k);
            r |= json_object_set_new(o, "stride", json_integer(ly->stride));
            r |= json_object_set_new(o, "padding",
                                     json_string(ly->pad == BP_PAD_SAME ? "same" : "valid"));
            break;
        }
        case BP_LAYER_MAXPOOL:
        case BP_LAYER_AVGPOOL:
            r |= json_object_set_new(o, "type", json_string(layer_kind_name(ly->kind)));
            r |= json_object_set_new(o, "kernel", json_integer(ly->kh));
            break;
        case BP_LAYER_FLATTEN:
            r |= json_object_set_new(o, "type", json_string("flatten"));
            break;
        case BP_LAYER_DROPOUT: {
            char p[32];
            snprintf(p, sizeof p, "%.9g", (double)ly->p); /* the header holds no reals */
            r |= json_object_set_new(o, "type", json_string("dropout"));
            r |= json_object_set_new(o, "p", json_string(p));
            break;
        }
        }
        r |= json_array_append_new(layers, o);
    }
    r |= json_object_set_new(a, "layers", layers);
    char *s = r ? NULL : print_json(a);
    json_decref(a);
    return s;
}

static int add_train(json_t *md, const bp_train_config *c)
{
    const bp_opt_config *o = &c->opt;
    int r = 0;
    r |= set_str(md, "train.epochs", "%d", c->epochs);
    r |= set_str(md, "train.batch", "%d", c->batch);
    r |= set_str(md, "train.seed", "%" PRIu64, c->seed);
    r |= set_str(md, "train.shuffle", "%d", c->shuffle);
    r |= set_str(md, "train.impl", "%s", bp_impl_name(c->impl));
    r |= set_str(md, "train.threads", "%d", c->threads);
    r |= set_str(md, "train.optimizer", "%s", bp_opt_name(o->kind));
    /* %.9g: every float prints back to the same float */
    r |= set_str(md, "train.lr", "%.9g", (double)bp_opt_base_lr(o));
    r |= set_str(md, "train.momentum", "%.9g", (double)o->momentum);
    r |= set_str(md, "train.weight_decay", "%.9g", (double)o->weight_decay);
    r |= set_str(md, "train.beta1", "%.9g", (double)o->beta1);
    r |= set_str(md, "train.beta2", "%.9g", (double)o->beta2);
    r |= set_str(md, "train.eps", "%.9g", (double)o->eps);
    r |= set_str(md, "train.schedule", "%s", bp_sched_name(o->sched));
    r |= set_str(md, "train.step_epochs", "%d", o->step_epochs);
    r |= set_str(md, "train.gamma", "%.9g", (double)o->gamma);
    r |= set_str(md, "train.min_lr", "%.9g", (double)o->min_lr);
    return r;
}

static json_t *metadata(const bp_model *m, const bp_model_info *info, const bp_checkpoint *ck,
                        uLong crc)
{
    json_t *md = json_object();
    char *arch = arch_json(m);
    int r = !md || !arch;
    if (!r) {
        r |= set_str(md, "format", "backprop");
        r |= set_str(md, "format_version", "%d", BP_MODEL_FORMAT_VERSION);
        r |= set_str(md, "arch", "%s", arch);
        r |= set_str(md, "activation", "%s", model_act_desc(m));
        r |= set_str(md, "classes", "%d", m->sizes[m->nlayers]);
        r |= set_str(md, "input_scale", "x/255");
        r |= set_str(md, "init", "%s", bp_init_name(m->init));
        r |= set_str(md, "init_seed", "%" PRIu64, m->init_seed);
        r |= set_str(md, "crc32", "%08lx", (unsigned long)crc);
    }
    /* epoch and step always (0 without info): the reader returns 0 for both when they are
     * absent, so writing them always keeps save(load(file)) byte-identical to file. */
    if (!r) {
        r |= set_str(md, "epoch", "%d", info ? info->epoch : 0);
        r |= set_str(md, "step", "%ld", info ? info->step : 0L);
    }
    if (!r && info) {
        if (info->best_test_acc == info->best_test_acc) /* not NaN */
            r |= set_str(md, "best_test_acc", "%.17g", info->best_test_acc);
        if (info->has_train)
            r |= add_train(md, &info->train);
    }
    if (!r && ck) {
        const uint64_t *s = ck->rng.s;
        r |= set_str(md, "checkpoint", "1");
        r |= set_str(md, "rng", "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, s[0],
                     s[1], s[2], s[3]);
        r |= set_str(md, "optimizer.t", "%ld", ck->opt_t);
        r |= set_str(md, "samples", "%u", ck->samples);
        r |= set_str(md, "epoch_pos", "%u", ck->epoch_pos);
        r |= set_str(md, "epoch_loss", "%.17g", ck->epoch_loss);
        r |= set_str(md, "epoch_hits", "%ld", ck->epoch_hits);
    }
    free(arch);
    if (r) {
        json_decref(md);
        return NULL;
    }
    return md;
}

/* The tensors' bytes in file order, little-endian. */
static uint8_t *pack(const mf_tensor *t, int n, size_t total)
{
    uint8_t *buf = malloc(total ? total : 1), *p = buf;
    if (!buf)
        return NULL;
    for (int i = 0; i < n; i++) {
        size_t bytes = tensor_bytes(&t[i]);
        memcpy(p, t[i].data, bytes);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        for (size_t k = 0; k < bytes; k += 4) {
            uint8_t b0 = p[k], b1 = p[k + 1];
            p[k] = p[k + 3], p[k + 1] = p[k + 2], p[k + 2] = b1, p[k + 3] = b0;
        }
#endif
        p += bytes;
    }
    return buf;
}

int modelfile_write(const char *path, const bp_model *m, const bp_model_info *info,
                    const bp_checkpoint *ck, bp_error *err)
{
    mf_tensor t[MF_MAX_TENSORS];
    int n = list_tensors(m, ck, t);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += tensor_bytes(&t[i]);
    uint8_t *data = pack(t, n, total);
    json_t *root = json_object(), *md = NULL;
    char *header = NULL;
    int st = BP_ERR_NOMEM;
    if (!data || !root)
        goto done;
    md = metadata(m, info, ck, crc32_z(crc32_z(0L, Z_NULL, 0), data, total));
    if (!md || json_object_set_new(root, "__metadata__", md))
        goto done;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        /* Or-ed, not short-circuited: every _new call must run to take its value (see
         * arch_json), else a failure part-way leaks what was not yet handed over. */
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        int r = 0;
        for (int d = 0; d < t[i].ndim; d++)
            r |= json_array_append_new(shape, json_integer((json_int_t)t[i].shape[d]));
        r |= json_array_append_new(offs, json_integer((json_int_t)off));
        off += tensor_bytes(&t[i]);
        r |= json_array_append_new(offs, json_integer((json_int_t)off));
        r |= json_object_set_new(e, "dtype", json_string(t[i].u32 ? "U32" : "F32"));
        r |= json_object_set_new(e, "shape", shape);
        r |= json_object_set_new(e, "data_offsets", offs);
        r |= json_object_set_new(root, t[i].name, e);
        if (r)
            goto done;
    }
    header = print_json(root);
    if (!header)
        goto done;
    size_t hlen = strlen(header), padded = (hlen + 7) / 8 * 8;
    uint8_t len8[8];
    for (int k = 0; k < 8; k++)
        len8[k] = (uint8_t)((uint64_t)padded >> (8 * k));
    bp_file *f = NULL;
    if ((st = bp_file_create(&f, path, err)))
        goto done;
    FILE *out = bp_file_stream(f);
    fwrite(len8, 1, 8, out);
    fwrite(header, 1, hlen, out);
    for (size_t k = hlen; k < padded; k++)
        fputc(' ', out);
    fwrite(data, 1, total, out);
    st = bp_file_commit(f, err);
done:
    if (st == BP_ERR_NOMEM)
        bp_fail(err, st, "%s: out of memory writing the model", path);
    free(header);
    json_decref(root);
    free(data);
    return st;
}

/* What the reader would refuse is refused here, so no file is written that cannot be read. */
static int check_info(const bp_model_info *info, bp_error *err)
{
    if (!info)
        return BP_OK;
    if (info->epoch < 0 || info->epoch > BP_MAX_EPOCHS || info->step < 0)
        return bp_fail(err, BP_ERR_ARG, "epoch %d and step %ld must be from 0 (epoch at most %d)",
                       info->epoch, info->step, BP_MAX_EPOCHS);
    if (!(info->best_test_acc >= 0 && info->best_test_acc <= 1) &&
        info->best_test_acc == info->best_test_acc)
        return bp_fail(err, BP_ERR_ARG, "best_test_acc %g is not a fraction (or NAN)",
                       info->best_test_acc);
    if (!info->has_train)
        return BP_OK;
    bp_train_config c = info->train; /* the settings written: files and callbacks are not */
    c.checkpoint_path = c.save_path = c.log_path = NULL;
    c.checkpoint_every = 0;
    return bp_train_config_check(&c, err);
}

int bp_model_save(const char *path, const bp_model *m, const bp_model_info *info, bp_error *err)
{
    int st = check_info(info, err);
    return st ? st : modelfile_write(path, m, info, NULL, err);
}

void bp_checkpoint_free(bp_checkpoint *ck)
{
    if (!ck)
        return;
    free(ck->opt_m);
    free(ck->opt_s);
    free(ck->perm);
    free(ck);
}
