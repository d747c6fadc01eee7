/* bp_model_load's messages quote what the file holds, and a file may hold anything: a JSON
 * string can carry a newline or an escape character (\n, \u001b). The message must still be
 * one line of printable text that names the file (found by tests/fuzz/fuzz_model.c: a newline
 * in "train.optimizer" split the message in two).
 *
 * Each case saves a small model, replaces one metadata value in the header by one with control
 * characters in it, and loads the file. */
#include "check.h"
#include "backprop.h"

#include <stdint.h>
#include <unistd.h>

static char dir[] = "/tmp/bp-test-model-messages.XXXXXX";

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = f ? malloc(1 << 16) : NULL;
    *n = buf ? fread(buf, 1, 1 << 16, f) : 0;
    if (f)
        fclose(f);
    return buf;
}

/* model.st with the header's `from` replaced by `to` (the 8-byte length adjusted) into out. */
static int rewrite(const char *model, const char *out, const char *from, const char *to)
{
    size_t n;
    unsigned char *buf = read_all(model, &n);
    if (!buf || n < 8)
        return -1;
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--)
        hlen = hlen << 8 | buf[k];
    char *head = (char *)buf + 8, *at = NULL;
    for (size_t i = 0; i + strlen(from) <= hlen && !at; i++)
        if (memcmp(head + i, from, strlen(from)) == 0)
            at = head + i;
    int st = -1;
    FILE *f = at ? fopen(out, "wb") : NULL;
    if (f) {
        uint64_t nlen = hlen - strlen(from) + strlen(to);
        for (int k = 0; k < 8; k++)
            fputc((int)(nlen >> (8 * k) & 255), f);
        fwrite(head, 1, (size_t)(at - head), f);
        fputs(to, f);
        fwrite(at + strlen(from), 1, n - 8 - (size_t)(at - head) - strlen(from), f);
        st = fclose(f) == 0 ? 0 : -1;
    }
    free(buf);
    return st;
}

static void one_line(const char *model, const char *from, const char *to, const char *phrase)
{
    char path[256];
    snprintf(path, sizeof path, "%s/bad.st", dir);
    if (!CHECKF(rewrite(model, path, from, to) == 0, "cannot rewrite %s into %s", from, to))
        return;
    bp_model *m = NULL;
    bp_error err = {0};
    int st = bp_model_load(path, &m, NULL, NULL, &err);
    CHECKF(st == BP_ERR_FORMAT && !m, "%s: status %d", to, st);
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, phrase);
    int printable = 1;
    for (const char *p = err.msg; *p; p++)
        printable &= (unsigned char)*p >= 0x20 && *p != 0x7f;
    CHECKF(printable, "a control character in the message: %s", err.msg);
    unlink(path);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char model[256];
    snprintf(model, sizeof model, "%s/model.st", dir);
    int sizes[2] = {4, 10};
    bp_model *m = NULL;
    bp_error err = {0};
    bp_model_info info = {.format_version = BP_MODEL_FORMAT_VERSION, .best_test_acc = 0.5,
                          .has_train = 1};
    bp_train_config_default(&info.train);
    if (!CHECK(bp_model_create(&m, sizes, 1, BP_ACT_RELU, &err) == BP_OK) ||
        !CHECK(bp_model_save(model, m, &info, &err) == BP_OK))
        return check_exit("test_model_messages");
    bp_model_free(m);
    /* through a name parser's message, and through the loader's own */
    one_line(model, "\"train.optimizer\":\"sgd\"", "\"train.optimizer\":\"mom\\ntum\"",
             "unknown optimizer 'mom?tum'");
    one_line(model, "\"format\":\"backprop\"", "\"format\":\"back\\u001b[31mprop\"",
             "is 'back?[31mprop', not 'backprop'");
    one_line(model, "\"crc32\":\"", "\"crc32\":\"\\r\\t", "not 8 hex digits");
    unlink(model);
    rmdir(dir);
    return check_exit("test_model_messages");
}
