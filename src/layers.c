/* The layer list: each kind's name, its shape rule and its parameters, and the architecture
 * strings of `backprop train --arch`. Shapes are (channels, height, width) per sample, NCHW; a
 * flat vector of n values is (n, 1, 1), so flattening moves no data and a linear layer after a
 * flatten reads its input in PyTorch's (c, h, w) order. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *layer_kind_name(bp_layer_kind k)
{
    switch (k) {
    case BP_LAYER_LINEAR: return "linear";
    case BP_LAYER_ACT: return "act";
    case BP_LAYER_CONV2D: return "conv2d";
    case BP_LAYER_MAXPOOL: return "maxpool2d";
    case BP_LAYER_AVGPOOL: return "avgpool2d";
    case BP_LAYER_FLATTEN: return "flatten";
    case BP_LAYER_DROPOUT: return "dropout";
    }
    return "unknown";
}

size_t layer_out_size(const bp_layer *ly) { return (size_t)ly->out_c * ly->out_h * ly->out_w; }
size_t layer_in_size(const bp_layer *ly) { return (size_t)ly->in_c * ly->in_h * ly->in_w; }

size_t layer_weights(const bp_layer *ly)
{
    if (ly->kind == BP_LAYER_LINEAR)
        return (size_t)ly->units * layer_in_size(ly);
    if (ly->kind == BP_LAYER_CONV2D)
        return (size_t)ly->units * ly->in_c * ly->kh * ly->kw;
    return 0;
}

/* One layer's output shape from its input's (already in ly->in_*). */
static int infer_one(bp_layer *ly, int i, bp_error *err)
{
    const char *name = layer_kind_name(ly->kind);
    int c = ly->in_c, h = ly->in_h, w = ly->in_w;
    ly->param = -1;
    switch (ly->kind) {
    case BP_LAYER_LINEAR:
        if (h != 1 || w != 1)
            return bp_fail(err, BP_ERR_ARG, "layer %d (linear): its input is %dx%dx%d; a "
                           "flatten must come before it", i, c, h, w);
        if (ly->units < 1 || ly->units > BP_MAX_WIDTH)
            return bp_fail(err, BP_ERR_ARG, "layer %d (linear): %d outputs; a width must be 1 "
                           "to %d", i, ly->units, BP_MAX_WIDTH);
        ly->out_c = ly->units, ly->out_h = ly->out_w = 1;
        break;
    case BP_LAYER_ACT:
        if (!bp_act_name(ly->act))
            return bp_fail(err, BP_ERR_ARG, "layer %d: unknown activation %d", i, (int)ly->act);
        ly->out_c = c, ly->out_h = h, ly->out_w = w;
        break;
    case BP_LAYER_CONV2D: {
        if (ly->units < 1 || ly->units > BP_MAX_CHANNELS)
            return bp_fail(err, BP_ERR_ARG, "layer %d (conv2d): %d output channels; 1 to %d",
                           i, ly->units, BP_MAX_CHANNELS);
        if (ly->kh < 1 || ly->kh > BP_MAX_KERNEL || ly->kw < 1 || ly->kw > BP_MAX_KERNEL)
            return bp_fail(err, BP_ERR_ARG, "layer %d (conv2d): a %dx%d kernel; each side 1 to "
                           "%d", i, ly->kh, ly->kw, BP_MAX_KERNEL);
        if (ly->stride == 0)
            ly->stride = 1;
        if (ly->stride != 1 && ly->stride != 2)
            return bp_fail(err, BP_ERR_ARG, "layer %d (conv2d): stride %d; 1 or 2", i,
                           ly->stride);
        if (ly->pad != BP_PAD_VALID && ly->pad != BP_PAD_SAME)
            return bp_fail(err, BP_ERR_ARG, "layer %d (conv2d): unknown padding %d", i,
                           (int)ly->pad);
        if (ly->pad == BP_PAD_SAME && (ly->stride != 1 || ly->kh % 2 == 0 || ly->kw % 2 == 0))
            return bp_fail(err, BP_ERR_ARG, "layer %d (conv2d): 'same' padding needs an odd "
                           "kernel and stride 1, not %dx%d stride %d", i, ly->kh, ly->kw,
                           ly->stride);
        int ph = ly->pad == BP_PAD_SAME ? (ly->kh - 1) / 2 : 0;
        int pw = ly->pad == BP_PAD_SAME ? (ly->kw - 1) / 2 : 0;
        if (h + 2 * ph < ly->kh || w + 2 * pw < ly->kw)
            return bp_fail(err, BP_ERR_ARG, "layer %d (conv2d): a %dx%d kernel does not fit a "
                           "%dx%d input", i, ly->kh, ly->kw, h, w);
        ly->out_c = ly->units;
        ly->out_h = (h + 2 * ph - ly->kh) / ly->stride + 1;
        ly->out_w = (w + 2 * pw - ly->kw) / ly->stride + 1;
        break;
    }
    case BP_LAYER_MAXPOOL:
    case BP_LAYER_AVGPOOL:
        if (ly->kh < 1 || ly->kh > BP_MAX_KERNEL)
            return bp_fail(err, BP_ERR_ARG, "layer %d (%s): window %d; 1 to %d", i, name, ly->kh,
                           BP_MAX_KERNEL);
        ly->kw = ly->stride = ly->kh;
        if (h < ly->kh || w < ly->kh)
            return bp_fail(err, BP_ERR_ARG, "layer %d (%s): a %dx%d window does not fit a %dx%d "
                           "input", i, name, ly->kh, ly->kh, h, w);
        ly->out_c = c, ly->out_h = h / ly->kh, ly->out_w = w / ly->kh;
        break;
    case BP_LAYER_FLATTEN:
        ly->out_c = c * h * w, ly->out_h = ly->out_w = 1;
        break;
    case BP_LAYER_DROPOUT:
        if (!(ly->p >= 0.0f && ly->p < 1.0f))
            return bp_fail(err, BP_ERR_ARG, "layer %d (dropout): rate %g must be at least 0 "
                           "and below 1", i, (double)ly->p);
        ly->out_c = c, ly->out_h = h, ly->out_w = w;
        break;
    default:
        return bp_fail(err, BP_ERR_ARG, "layer %d: unknown kind %d", i, (int)ly->kind);
    }
    if (layer_out_size(ly) > BP_MAX_WIDTH)
        return bp_fail(err, BP_ERR_ARG, "layer %d (%s): %zu outputs per sample, more than %d",
                       i, name, layer_out_size(ly), BP_MAX_WIDTH);
    return BP_OK;
}

int layers_infer(bp_layer *list, int n, int c, int h, int w, bp_error *err)
{
    if (c < 1 || h < 1 || w < 1 || (uint64_t)c * h * w > BP_MAX_WIDTH)
        return bp_fail(err, BP_ERR_ARG, "an input of %dx%dx%d; each side from 1, at most %d "
                       "values", c, h, w, BP_MAX_WIDTH);
    for (int i = 0; i < n; i++) {
        bp_layer *ly = &list[i];
        ly->in_c = c, ly->in_h = h, ly->in_w = w;
        int st = infer_one(ly, i, err);
        if (st)
            return st;
        c = ly->out_c, h = ly->out_h, w = ly->out_w;
    }
    return BP_OK;
}

/* ---- architecture strings ---- */

static int token_fail(bp_error *err, int k, const char *tok, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int token_fail(bp_error *err, int k, const char *tok, size_t len, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return bp_fail(err, BP_ERR_ARG, "token %d '%.*s': %s", k, (int)(len > 64 ? 64 : len), tok,
                   what);
}

/* A whole decimal integer in [p, end), else -1 (or -2 when it is too large). */
static long whole(const char *p, const char *end)
{
    if (p == end)
        return -1;
    long v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
        if (v > 100000000L)
            return -2;
    }
    return v;
}

static int parse_token(const char *t, size_t len, int k, bp_layer *ly, bp_error *err)
{
    char buf[128];
    if (len == 0)
        return token_fail(err, k, t, len, "empty (two commas, or a comma at an end)");
    if (len >= sizeof buf)
        return token_fail(err, k, t, len, "too long");
    memcpy(buf, t, len);
    buf[len] = '\0';
    memset(ly, 0, sizeof *ly);
    bp_act a;
    if (bp_act_parse(buf, &a, NULL) == BP_OK) {
        ly->kind = BP_LAYER_ACT, ly->act = a;
        return BP_OK;
    }
    if (strcmp(buf, "flatten") == 0) {
        ly->kind = BP_LAYER_FLATTEN;
        return BP_OK;
    }
    char *colon = strchr(buf, ':');
    const char *arg = colon ? colon + 1 : NULL;
    if (colon)
        *colon = '\0';
    if (strcmp(buf, "fc") == 0 || strcmp(buf, "linear") == 0) {
        long v = arg ? whole(arg, arg + strlen(arg)) : -1;
        if (v < 1 || v > BP_MAX_WIDTH)
            return token_fail(err, k, t, len, "fc:N needs a width N from 1 to %d",
                              BP_MAX_WIDTH);
        ly->kind = BP_LAYER_LINEAR, ly->units = (int)v;
        return BP_OK;
    }
    if (strcmp(buf, "dropout") == 0) {
        char *end;
        errno = 0;
        double p = arg && *arg ? strtod(arg, &end) : -1.0;
        if (!arg || !*arg || *end || errno || !(p >= 0.0 && p < 1.0))
            return token_fail(err, k, t, len, "dropout:P needs a rate P at least 0 and below 1");
        ly->kind = BP_LAYER_DROPOUT, ly->p = (float)p;
        return BP_OK;
    }
    if (strncmp(buf, "maxpool", 7) == 0 || strncmp(buf, "avgpool", 7) == 0) {
        long v = whole(buf + 7, buf + strlen(buf));
        if (arg)
            return token_fail(err, k, t, len, "a pool takes no ':' value (maxpool2, avgpool2)");
        if (v < 1 || v > BP_MAX_KERNEL)
            return token_fail(err, k, t, len, "the window must be from 1 to %d (maxpool2)",
                              BP_MAX_KERNEL);
        ly->kind = buf[0] == 'm' ? BP_LAYER_MAXPOOL : BP_LAYER_AVGPOOL;
        ly->kh = ly->kw = ly->stride = (int)v;
        return BP_OK;
    }
    if (strncmp(buf, "conv", 4) == 0) {
        char *x = strchr(buf + 4, 'x');
        long kh = x ? whole(buf + 4, x) : -1, kw = x ? whole(x + 1, x + 1 + strlen(x + 1)) : -1;
        if (kh < 1 || kw < 1 || kh > BP_MAX_KERNEL || kw > BP_MAX_KERNEL)
            return token_fail(err, k, t, len, "convKxK: each kernel side must be from 1 to %d "
                              "(conv3x3:32)", BP_MAX_KERNEL);
        ly->kind = BP_LAYER_CONV2D, ly->kh = (int)kh, ly->kw = (int)kw, ly->stride = 1;
        ly->pad = BP_PAD_VALID;
        if (!arg)
            return token_fail(err, k, t, len, "convKxK:C needs its output channels C");
        const char *c2 = strchr(arg, ':');
        long ch = whole(arg, c2 ? c2 : arg + strlen(arg));
        if (ch < 1 || ch > BP_MAX_CHANNELS)
            return token_fail(err, k, t, len, "channels must be from 1 to %d", BP_MAX_CHANNELS);
        ly->units = (int)ch;
        while (c2) {
            const char *o = c2 + 1;
            c2 = strchr(o, ':');
            size_t ol = c2 ? (size_t)(c2 - o) : strlen(o);
            if (ol == 4 && strncmp(o, "same", 4) == 0)
                ly->pad = BP_PAD_SAME;
            else if (ol == 5 && strncmp(o, "valid", 5) == 0)
                ly->pad = BP_PAD_VALID;
            else if (ol == 2 && strncmp(o, "s1", 2) == 0)
                ly->stride = 1;
            else if (ol == 2 && strncmp(o, "s2", 2) == 0)
                ly->stride = 2;
            else
                return token_fail(err, k, t, len, "unknown conv option '%.*s' (same, valid, s1, "
                                  "s2)", (int)(ol > 16 ? 16 : ol), o);
        }
        if (ly->pad == BP_PAD_SAME && (ly->stride != 1 || kh % 2 == 0 || kw % 2 == 0))
            return token_fail(err, k, t, len, "'same' padding needs an odd kernel and stride 1");
        return BP_OK;
    }
    return token_fail(err, k, t, len, "unknown layer (one of: convKxK:C[:same][:s2], maxpoolK, "
                      "avgpoolK, fc:N, relu, tanh, sigmoid, dropout:P, flatten)");
}

int bp_arch_parse(const char *s, bp_layer *layers, int max, int *n, bp_error *err)
{
    *n = 0;
    if (!s || !*s)
        return bp_fail(err, BP_ERR_ARG, "an empty architecture");
    int spatial = 0, k = 0;
    const char *p = s;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        bp_layer ly;
        k++;
        int st = parse_token(p, len, k, &ly, err);
        if (st)
            return st;
        if (ly.kind == BP_LAYER_CONV2D || ly.kind == BP_LAYER_MAXPOOL ||
            ly.kind == BP_LAYER_AVGPOOL)
            spatial = 1;
        /* PyTorch needs nn.Flatten between the spatial layers and the first nn.Linear */
        int flat = ly.kind == BP_LAYER_LINEAR && spatial;
        if (*n + flat + 1 > max)
            return token_fail(err, k, p, len, "more than %d layers", max);
        if (flat) {
            memset(&layers[*n], 0, sizeof layers[*n]);
            layers[(*n)++].kind = BP_LAYER_FLATTEN;
        }
        if (ly.kind == BP_LAYER_FLATTEN || ly.kind == BP_LAYER_LINEAR)
            spatial = 0;
        if ((ly.kind == BP_LAYER_CONV2D || ly.kind == BP_LAYER_MAXPOOL ||
             ly.kind == BP_LAYER_AVGPOOL) && *n > 0) {
            for (int i = 0; i < *n; i++)
                if (layers[i].kind == BP_LAYER_LINEAR || layers[i].kind == BP_LAYER_FLATTEN)
                    return token_fail(err, k, p, len, "a spatial layer after fc or flatten");
        }
        layers[(*n)++] = ly;
        if (!end)
            return BP_OK;
        p = end + 1;
    }
}

const char *bp_arch_format(const bp_model *m, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < m->nlist && n < len; i++) {
        const bp_layer *ly = &m->list[i];
        char t[64];
        switch (ly->kind) {
        case BP_LAYER_LINEAR: snprintf(t, sizeof t, "fc:%d", ly->units); break;
        case BP_LAYER_ACT: snprintf(t, sizeof t, "%s", bp_act_name(ly->act)); break;
        case BP_LAYER_CONV2D:
            snprintf(t, sizeof t, "conv%dx%d:%d%s%s", ly->kh, ly->kw, ly->units,
                     ly->pad == BP_PAD_SAME ? ":same" : "", ly->stride == 2 ? ":s2" : "");
            break;
        case BP_LAYER_MAXPOOL: snprintf(t, sizeof t, "maxpool%d", ly->kh); break;
        case BP_LAYER_AVGPOOL: snprintf(t, sizeof t, "avgpool%d", ly->kh); break;
        case BP_LAYER_FLATTEN: snprintf(t, sizeof t, "flatten"); break;
        case BP_LAYER_DROPOUT: snprintf(t, sizeof t, "dropout:%g", (double)ly->p); break;
        default: snprintf(t, sizeof t, "?"); break;
        }
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? "," : "", t);
    }
    return buf;
}
