/* The library's rules, as a C caller meets them: every setting out of range is refused with a
 * message that names the field (err.field is its C name and err.msg starts with it); every
 * BP_ERR_ARG path of the step, forward, evaluation, model and work says what is wrong; the
 * enum names round-trip and unknown names list the choices; defaults come from the library. */
#include "backprop.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* st must be BP_ERR_ARG, err.field must be field and the message must start with it and
 * contain phrase. */
static void expect_field(const char *what, int st, const bp_error *err, const char *field,
                         const char *phrase)
{
    CHECKF(st == BP_ERR_ARG, "%s: status %d, expected BP_ERR_ARG", what, st);
    CHECKF(strcmp(err->field, field) == 0, "%s: field '%s', expected '%s'", what, err->field,
           field);
    CHECKF(strncmp(err->msg, field, strlen(field)) == 0 && strstr(err->msg, phrase),
           "%s: message '%s' should start with '%s' and contain '%s'", what, err->msg, field,
           phrase);
}

/* st must be BP_ERR_ARG with a message containing phrase. */
static void expect_msg(const char *what, int st, const bp_error *err, const char *phrase)
{
    CHECKF(st == BP_ERR_ARG && strstr(err->msg, phrase),
           "%s: status %d, message '%s', expected BP_ERR_ARG and '%s'", what, st, err->msg,
           phrase);
}

#define BAD_CFG(field, phrase, assign)                                                           \
    do {                                                                                         \
        bp_train_config c;                                                                       \
        bp_train_config_default(&c);                                                             \
        assign;                                                                                  \
        bp_error e = {0};                                                                        \
        expect_field(#assign, bp_train_config_check(&c, &e), &e, field, phrase);                 \
    } while (0)

static void train_config(void)
{
    bp_train_config c;
    bp_train_config_default(&c);
    bp_error e = {0};
    CHECK_INT_EQ(bp_train_config_check(&c, &e), BP_OK);
    BAD_CFG("epochs", "0 must be from 1 to", c.epochs = 0);
    BAD_CFG("epochs", "100001", c.epochs = BP_MAX_EPOCHS + 1);
    BAD_CFG("batch", "0 must be from 1 to 65536", c.batch = 0);
    BAD_CFG("batch", "65537", c.batch = BP_MAX_BATCH + 1);
    BAD_CFG("shuffle", "2 must be 0 or 1", c.shuffle = 2);
    BAD_CFG("impl", "unknown implementation 9", c.impl = (bp_impl)9);
    BAD_CFG("threads", "-1 must be 0", c.threads = -1);
    BAD_CFG("eval_batch", "-2", c.eval_batch = -2);
    BAD_CFG("opt.kind", "unknown optimizer 7", c.opt.kind = (bp_opt_kind)7);
    BAD_CFG("opt.sched", "unknown learning-rate schedule 5", c.opt.sched = (bp_sched_kind)5);
    BAD_CFG("opt.lr", "-0.1 must be 0", c.opt.lr = -0.1f);
    BAD_CFG("opt.lr", "nan", c.opt.lr = NAN);
    BAD_CFG("opt.momentum", "1 must be at least 0 and below 1", c.opt.momentum = 1.0f);
    BAD_CFG("opt.weight_decay", "11 must be from 0 to 10", c.opt.weight_decay = 11.0f);
    BAD_CFG("opt.beta1", "1 must be", c.opt.beta1 = 1.0f);
    BAD_CFG("opt.beta2", "-0.5 must be", c.opt.beta2 = -0.5f);
    BAD_CFG("opt.eps", "0 must be greater than 0", c.opt.eps = 0.0f);
    BAD_CFG("opt.step_epochs", "0 must be from 1", c.opt.step_epochs = 0);
    BAD_CFG("opt.gamma", "0 must be greater than 0", c.opt.gamma = 0.0f);
    /* min_lr is checked against the rate actually used: the default 0.5 for SGD, 0.001 Adam */
    BAD_CFG("opt.min_lr", "0.6 must be at least 0 and at most the learning rate 0.5",
            c.opt.min_lr = 0.6f);
    BAD_CFG("opt.min_lr", "at most the learning rate 0.001",
            (c.opt.kind = BP_OPT_ADAM, c.opt.min_lr = 0.01f));

    /* bp_opt_create and bp_train check too, and say the same */
    bp_opt *o = NULL;
    c.opt.momentum = 2.0f;
    expect_field("bp_opt_create", bp_opt_create(&o, &c.opt, 10, &e), &e, "opt.momentum",
                 "must be at least 0");
    CHECK(o == NULL);
}

static void defaults(void)
{
    bp_opt_config oc;
    bp_opt_config_default(&oc);
    CHECK_NEAR(bp_opt_base_lr(&oc), 0.5, 0);
    oc.kind = BP_OPT_ADAM; /* a C caller who only changes the kind gets Adam's rate */
    CHECK_NEAR(bp_opt_base_lr(&oc), 0.001f, 0);
    CHECK_NEAR(bp_opt_lr(&oc, 0, 0, 10), 0.001f, 0);
    oc.kind = BP_OPT_MOMENTUM;
    CHECK_NEAR(bp_opt_base_lr(&oc), 0.05f, 0);
    oc.lr = 0.25f;
    CHECK_NEAR(bp_opt_base_lr(&oc), 0.25f, 0);
    CHECK_NEAR(bp_opt_default_lr((bp_opt_kind)42), 0.0, 0);
}

static void names(void)
{
    bp_error e = {0};
    for (int v = 0; v < 3; v++) {
        bp_act a = BP_ACT_TANH;
        CHECK(bp_act_name((bp_act)v) && bp_act_parse(bp_act_name((bp_act)v), &a, &e) == BP_OK &&
              a == (bp_act)v);
        bp_impl i = BP_IMPL_NAIVE;
        CHECK(bp_impl_parse(bp_impl_name((bp_impl)v), &i, &e) == BP_OK && i == (bp_impl)v);
        bp_sched_kind s = BP_SCHED_STEP;
        CHECK(bp_sched_parse(bp_sched_name((bp_sched_kind)v), &s, &e) == BP_OK &&
              s == (bp_sched_kind)v);
    }
    for (int v = 0; v < 4; v++) {
        bp_opt_kind k = BP_OPT_SGD;
        CHECK(bp_opt_parse(bp_opt_name((bp_opt_kind)v), &k, &e) == BP_OK && k == (bp_opt_kind)v);
        bp_init n = BP_INIT_AUTO;
        CHECK(bp_init_parse(bp_init_name((bp_init)v), &n, &e) == BP_OK && n == (bp_init)v);
    }
    CHECK(bp_act_name((bp_act)3) == NULL && bp_opt_name((bp_opt_kind)-1) == NULL);
    CHECK(bp_impl_name((bp_impl)3) == NULL && bp_init_name((bp_init)5) == NULL);
    bp_init t;
    CHECK(bp_init_parse("torch", &t, &e) == BP_OK && t == BP_INIT_TORCH);
    CHECK(bp_sched_name((bp_sched_kind)3) == NULL);
    bp_act a = BP_ACT_SIGMOID;
    expect_msg("bp_act_parse", bp_act_parse("gelu", &a, &e), &e,
               "unknown activation 'gelu' (one of: relu, tanh, sigmoid)");
    CHECK(a == BP_ACT_SIGMOID); /* untouched on failure */
    bp_opt_kind k;
    expect_msg("bp_opt_parse", bp_opt_parse("rmsprop", &k, &e), &e,
               "(one of: sgd, momentum, nesterov, adam)");
    bp_init n;
    expect_msg("bp_init_parse", bp_init_parse("", &n, &e), &e, "unknown initialisation ''");
    bp_impl i;
    expect_msg("bp_impl_parse", bp_impl_parse(NULL, &i, &e), &e, "unknown implementation");
    bp_sched_kind s;
    expect_msg("bp_sched_parse", bp_sched_parse("Cosine", &s, &e), &e, "'Cosine'");
}

static void passes(void)
{
    bp_error e = {0};
    bp_model *m = NULL;
    int bad_sizes[2] = {4, 0};
    expect_msg("bp_model_create width 0", bp_model_create(&m, bad_sizes, 1, BP_ACT_RELU, &e), &e,
               "sizes[1] (the classes) is 0");
    int sizes0[2] = {BP_MAX_WIDTH + 1, 3};
    expect_msg("bp_model_create input too wide", bp_model_create(&m, sizes0, 1, BP_ACT_RELU, &e),
               &e, "sizes[0] (the input) is 1048577");
    expect_msg("bp_model_create 0 layers", bp_model_create(&m, sizes0, 0, BP_ACT_RELU, &e), &e,
               "not 0");
    int sizes[3] = {4, 5, 3};
    expect_msg("bp_model_create act", bp_model_create(&m, sizes, 2, (bp_act)9, &e), &e,
               "unknown activation 9");
    CHECK(m == NULL);
    if (!CHECK(bp_model_create(&m, sizes, 2, BP_ACT_RELU, &e) == BP_OK))
        return;
    expect_msg("bp_model_init", bp_model_init(m, (bp_init)8, 1, &e), &e,
               "unknown initialisation 8");
    /* PyTorch's default: W and b uniform in ±1/√I, biases not zero */
    CHECK_INT_EQ(bp_model_init(m, BP_INIT_TORCH, 3, &e), BP_OK);
    for (int l = 0; l < 2; l++) {
        double bound = 1.0 / sqrt((double)sizes[l]), wmax = 0, bmax = 0;
        for (int i = 0; i < sizes[l] * sizes[l + 1]; i++)
            wmax = fmax(wmax, fabs(m->W[l][i]));
        for (int o = 0; o < sizes[l + 1]; o++)
            bmax = fmax(bmax, fabs(m->b[l][o]));
        CHECKF(wmax <= bound && wmax > 0.5 * bound && bmax <= bound && bmax > 0,
               "torch init layer %d: max|W| %g, max|b| %g, bound %g", l, wmax, bmax, bound);
    }
    CHECK_INT_EQ(bp_model_init(m, BP_INIT_AUTO, 1, &e), BP_OK);

    bp_work *w = NULL;
    expect_msg("bp_work_create batch 0", bp_work_create(&w, m, 0, 0, &e), &e, "not 0");
    expect_msg("bp_work_create batch", bp_work_create(&w, m, BP_MAX_BATCH + 1, 0, &e), &e,
               "65537");
    if (!CHECK(bp_work_create(&w, m, 4, 1, &e) == BP_OK))
        goto done;
    CHECK_INT_EQ(bp_work_threads(w), 1);
    float X[6 * 4] = {0};
    uint8_t labels[6] = {0, 1, 2, 0, 1, 2};
    expect_msg("bp_grad batch", bp_grad(m, w, BP_IMPL_BLAS, X, labels, 6, NULL, NULL, NULL, &e),
               &e, "batch 6 is outside 1 to the work's max_batch 4");
    expect_msg("bp_grad batch 0", bp_grad(m, w, BP_IMPL_BLAS, X, labels, 0, NULL, NULL, NULL, &e),
               &e, "batch 0");
    expect_msg("bp_grad labels", bp_grad(m, w, BP_IMPL_BLAS, X, NULL, 2, NULL, NULL, NULL, &e), &e,
               "needs labels");
    expect_msg("bp_grad impl", bp_grad(m, w, (bp_impl)5, X, labels, 2, NULL, NULL, NULL, &e), &e,
               "unknown implementation 5");
    uint8_t bad[4] = {0, 1, 12, 0};
    for (int k = 0; k < 3; k++)
        expect_msg("bp_grad label 12", bp_grad(m, w, (bp_impl)k, X, bad, 4, NULL, NULL, NULL, &e),
                   &e, "label 12 at sample 2 is not below 3");
    expect_msg("bp_forward label", bp_forward(m, w, X, bad, 4, NULL, NULL, NULL, &e), &e,
               "label 12 at sample 2");
    expect_msg("bp_forward batch", bp_forward(m, w, X, NULL, 5, NULL, NULL, NULL, &e), &e,
               "batch 5");
    CHECK_INT_EQ(bp_forward(m, w, X, NULL, 4, NULL, NULL, NULL, &e), BP_OK);

    /* evaluation: width, batch, and a label past the model's classes */
    uint8_t px[3 * 4] = {0}, lab[3] = {0, 1, 2};
    bp_dataset ds = {3, 2, 2, 4, 3, px, lab};
    bp_eval_result r;
    CHECK_INT_EQ(bp_evaluate(m, &ds, 0, 1, &r, NULL, &e), BP_OK);
    CHECK_INT_EQ(r.n, 3);
    ds.dim = 5;
    expect_msg("bp_evaluate width", bp_evaluate(m, &ds, 0, 1, &r, NULL, &e), &e,
               "the data has 5 inputs per sample, the model 4");
    ds.dim = 4;
    expect_msg("bp_evaluate batch", bp_evaluate(m, &ds, -1, 1, &r, NULL, &e), &e,
               "evaluation batch -1");
    lab[1] = 7;
    expect_msg("bp_evaluate label", bp_evaluate(m, &ds, 0, 1, &r, NULL, &e), &e,
               "label 7 at sample 1 is not below 3");
    lab[1] = 1;

    /* the trainer: data that does not fit the model */
    bp_train_config c;
    bp_train_config_default(&c);
    c.epochs = 1;
    ds.dim = 5;
    expect_msg("bp_train width", bp_train(m, &ds, NULL, &c, NULL, NULL, &e), &e,
               "the data has 5 inputs per sample, the model 4");
    ds.dim = 4;
    ds.classes = 10;
    expect_msg("bp_train classes", bp_train(m, &ds, NULL, &c, NULL, NULL, &e), &e,
               "the data has 10 classes, the model 3 outputs");
    ds.classes = 3;
    ds.n = 0;
    expect_msg("bp_train empty", bp_train(m, &ds, NULL, &c, NULL, NULL, &e), &e,
               "the training set is empty");
    ds.n = 3;
    c.batch = 0;
    expect_field("bp_train config", bp_train(m, &ds, NULL, &c, NULL, NULL, &e), &e, "batch",
                 "0 must be from 1");

    /* gradient check ranges */
    expect_field("bp_gradcheck_check B", bp_gradcheck_check(0, 1e-5, &e), &e, "batch", "0");
    expect_field("bp_gradcheck_check h", bp_gradcheck_check(2, 1e-38, &e), &e, "h", "1e-38");
    bp_gradcheck_tensor res[5];
    int nres = 0;
    expect_field("bp_gradcheck h", bp_gradcheck(m, BP_IMPL_BLAS, X, labels, 2, 0.0, 0, 1, 1, res,
                                                &nres, &e), &e, "h", "must be from");
done:
    bp_work_free(w);
    bp_model_free(m);
}

/* Regressions the fuzzers found: a message is one line whatever the input holds (a file name
 * with a newline here; jansson quoting a header's text in the fuzz case), and a PNG chunk that
 * declares more bytes than the file has is refused before libpng allocates them (a 161-byte
 * file declaring a 1.7 GB tEXt chunk took 1.9 GB). */
static void fuzz_regressions(void)
{
    bp_error e = {0};
    bp_model *m = NULL;
    CHECK_INT_EQ(bp_model_load("/nonexistent/a\nb\033[31m.st", &m, NULL, NULL, &e), BP_ERR_IO);
    CHECKF(!strchr(e.msg, '\n') && !strchr(e.msg, '\033') && strstr(e.msg, "a?b?[31m.st"),
           "message not one clean line: '%s'", e.msg);
    char path[] = "/tmp/bp-test-api-XXXXXX";
    int fd = mkstemp(path);
    if (!CHECK(fd >= 0))
        return;
    static const unsigned char png[] = {
        0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 0, 0, 2,
        0, 0, 0, 1, 8, 0, 0, 0, 0, 0xd1, 0x49, 0x20, 0x56, 0x67, 0x41, 0x4d, 0x41, 't', 'E',
        'X', 't', 'C', 'o', 'm', 'm', 'e', 'n', 't', 0, 's', 'e', 'e', 'd'};
    CHECK(write(fd, png, sizeof png) == (ssize_t)sizeof png);
    close(fd);
    bp_image img;
    CHECK_INT_EQ(bp_image_read(path, &img, &e), BP_ERR_FORMAT);
    CHECK_CONTAINS(e.msg, "declares 1732332865 bytes, more than the file has left");
    unlink(path);
}

int main(void)
{
    fuzz_regressions();
    train_config();
    defaults();
    names();
    passes();
    return check_exit("test_api");
}
