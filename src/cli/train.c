/* backprop train: parse, load, train, print one line per epoch and a final key=value summary. */
#include "cli.h"

#include <getopt.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void help(FILE *f)
{
    fputs(
        "usage: backprop train [OPTIONS]\n"
        "Train [linear → act]* → linear → softmax + cross-entropy with mini-batch gradients.\n"
        "\n"
        "data and model:\n"
        "  --data DIR           MNIST-layout IDX files, raw or .gz (default data/mnist)\n"
        "  --hidden W[,W...]    hidden layer widths, e.g. 256 or 512,256 (default none:\n"
        "                       the seminar's 784→10 softmax regression)\n"
        "  --act relu|tanh|sigmoid   hidden activation (default relu)\n"
        "  --arch LIST          the layers instead of --hidden/--act, comma-separated:\n"
        "                       convKxK:C[:same][:s2], maxpoolK, avgpoolK, fc:N, relu, tanh,\n"
        "                       sigmoid, dropout:P, flatten; the 10-way output layer is\n"
        "                       added last, e.g. conv5x5:32,relu,maxpool2,fc:128,relu\n"
        "  --init auto|zeros|uniform|normal|torch  weights (default auto: He for ReLU\n"
        "                       layers, Glorot otherwise, biases 0; torch: PyTorch's\n"
        "                       nn.Linear default, W and b uniform in ±1/sqrt(inputs))\n"
        "training:\n"
        "  --epochs N           passes over the training set (default 10)\n"
        "  --batch N            samples per step; the last partial batch is kept (default 100)\n"
        "  --lr F               learning rate (default 0.5 for sgd, 0.05 for momentum and\n"
        "                       nesterov, 0.001 for adam)\n"
        "  --optim sgd|momentum|nesterov|adam   (default sgd)\n"
        "  --momentum F         μ for momentum and nesterov (default 0.9)\n"
        "  --weight-decay F     L2 for the sgd family, decoupled for adam (AdamW) (default 0)\n"
        "  --lr-schedule constant|step|cosine   (default cosine: from --lr down to --lr-min\n"
        "                       over the whole run, updated every step)\n"
        "  --lr-step N          step: decay every N epochs (default 1)\n"
        "  --lr-gamma F         step: multiply the rate by F (default 0.5)\n"
        "  --lr-min F           cosine: final rate (default 0)\n"
        "  --seed N             shuffling and initialisation seed (default 1)\n"
        "  --no-shuffle         visit samples in file order\n"
        "  --impl blas|jacobian|naive   blas: fused GEMMs; jacobian: GEMMs with the explicit\n"
        "                       softmax Jacobian; naive: per-sample loops (default blas)\n"
        "  --threads N          OpenBLAS threads (default OPENBLAS_NUM_THREADS, else all cores)\n"
        "files:\n"
        "  --save FILE          write the trained model (safetensors) after the last epoch\n"
        "  --checkpoint FILE    write model + optimizer + RNG state after the last epoch run\n"
        "  --checkpoint-every N   ... and every N epochs\n"
        "  --stop-after N       stop after N epochs of this run; the schedule still spans\n"
        "                       --epochs, so --resume continues the same run\n"
        "  --resume FILE        continue from a checkpoint, with its settings (only --epochs,\n"
        "                       --threads, --impl, --data and the file and output options may\n"
        "                       be given; --epochs may extend the run)\n"
        "  --log FILE           CSV, one row per epoch, flushed as it goes\n"
        "output:\n"
        "  --quiet              print only the final summary line\n"
        "  -h, --help           this text\n"
        "  --version            print the version\n"
        "\n"
        "The last line is: final test_acc=… best_test_acc=… train_loss=… epochs=… seconds=…\n"
        "samples_per_s=…  (seconds: training loops only, without loading and evaluation).\n"
        "Exit status: 0 ok, 1 runtime failure (e.g. the loss diverged), 2 bad usage or data,\n"
        "130/143 stopped by SIGINT/SIGTERM (after saving what was asked for; a second\n"
        "signal stops at once).\n",
        f);
}

enum {
    O_DATA = 256, O_HIDDEN, O_ACT, O_INIT, O_EPOCHS, O_BATCH, O_LR, O_OPTIM, O_MOMENTUM, O_WD,
    O_SCHED, O_LRSTEP, O_LRGAMMA, O_LRMIN, O_SEED, O_NOSHUF, O_IMPL, O_THREADS, O_QUIET, O_VERSION,
    O_SAVE, O_CKPT, O_CKPT_EVERY, O_STOP, O_RESUME, O_LOG, O_ARCH, O_END
};

typedef struct {
    int quiet;
    int bar; /* a progress bar on stderr: only on a terminal */
    double seconds; /* summed training-loop time of all epochs */
    int epochs_run;
} report;

static void on_progress(int epoch, uint32_t done, uint32_t total, void *user)
{
    report *r = user;
    if (!r->bar)
        return;
    /* redraw at most ~50 times an epoch */
    uint32_t step = total / 50 ? total / 50 : 1;
    if (done % step && done != total)
        return;
    int filled = (int)(40.0 * done / total);
    fprintf(stderr, "\repoch %d [%.*s%*s] %3d%%", epoch, filled,
            "########################################", 40 - filled, "",
            (int)(100.0 * done / total));
    if (done == total)
        fputs("\r\033[K", stderr);
    fflush(stderr);
}

static void on_epoch(const bp_epoch_stats *s, void *user)
{
    report *r = user;
    r->seconds += s->seconds;
    r->epochs_run++;
    if (r->quiet)
        return;
    printf("epoch %*d/%d  train_loss %.4f  train_acc %.4f  test_acc %.4f  %.2f s  %.0f samples/s\n",
           s->epochs >= 10 ? 2 : 1, s->epoch, s->epochs, s->train_loss, s->train_acc,
           s->test_acc, s->seconds, s->samples_per_s);
    fflush(stdout);
}

/* SIGINT/SIGTERM: the first asks bp_train to stop after its current step (it saves what was
 * asked for); a second one, of either kind, ends the process at once by its default action. */
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    if (stop_signal) {
        signal(sig, SIG_DFL); /* both async-signal-safe */
        raise(sig);
        return;
    }
    stop_signal = sig;
}

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* a write to stdout or a checkpoint is not cut short by EINTR */
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT); /* one handler at a time: the first signal is the first */
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int bad_usage(void)
{
    fputs("Try 'backprop train --help'.\n", stderr);
    return EXIT_USAGE;
}

/* Where a library message names a bp_train_config field, the user reads the flag instead. */
static const char *const field_flags[] = {
    "epochs", "--epochs", "batch", "--batch", "threads", "--threads", "opt.lr", "--lr",
    "opt.momentum", "--momentum", "opt.weight_decay", "--weight-decay",
    "opt.step_epochs", "--lr-step", "opt.gamma", "--lr-gamma", "opt.min_lr", "--lr-min",
    "opt.kind", "--optim", "opt.sched", "--lr-schedule", "seed", "--seed", "shuffle",
    "--no-shuffle", "stop_after", "--stop-after", "checkpoint_every", "--checkpoint-every", NULL};

/* The options that set the run's model or settings: with --resume they come from the file. */
static int sets_run(int opt)
{
    return opt == O_HIDDEN || opt == O_ACT || opt == O_ARCH || opt == O_INIT || opt == O_BATCH || opt == O_LR ||
           opt == O_OPTIM || opt == O_MOMENTUM || opt == O_WD || opt == O_SCHED ||
           opt == O_LRSTEP || opt == O_LRGAMMA || opt == O_LRMIN || opt == O_SEED ||
           opt == O_NOSHUF;
}

/* --resume FILE: the model and the settings of the run it continues. */
static int load_resume(const char *path, bp_train_config *cfg, bp_model **m, bp_checkpoint **ck,
                       int epochs_given, int *done_epochs)
{
    bp_error err = {0};
    bp_model_info info;
    int st = bp_model_load(path, m, &info, ck, &err);
    if (st) {
        fprintf(stderr, "backprop train: --resume: %s\n", err.msg);
        return cli_exit(st);
    }
    if (!*ck) {
        fprintf(stderr, "backprop train: --resume: %s is a model, not a checkpoint (write one "
                "with --checkpoint)\n", path);
        bp_model_free(*m); /* the caller frees only what a successful load_resume returns */
        *m = NULL;
        return EXIT_USAGE;
    }
    bp_train_config keep = *cfg;
    *cfg = info.train;
    *done_epochs = info.epoch;
    cfg->epochs = epochs_given ? keep.epochs : info.train.epochs;
    cfg->threads = keep.threads;
    cfg->impl = keep.impl;
    cfg->stop_after = keep.stop_after;
    cfg->save_path = keep.save_path;
    cfg->checkpoint_path = keep.checkpoint_path;
    cfg->checkpoint_every = keep.checkpoint_every;
    cfg->log_path = keep.log_path;
    cfg->resume = *ck;
    return 0;
}

int cmd_train(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, 0, O_DATA},     {"hidden", required_argument, 0, O_HIDDEN},
        {"act", required_argument, 0, O_ACT},       {"init", required_argument, 0, O_INIT},
        {"epochs", required_argument, 0, O_EPOCHS}, {"batch", required_argument, 0, O_BATCH},
        {"lr", required_argument, 0, O_LR},         {"optim", required_argument, 0, O_OPTIM},
        {"momentum", required_argument, 0, O_MOMENTUM},
        {"weight-decay", required_argument, 0, O_WD},
        {"lr-schedule", required_argument, 0, O_SCHED},
        {"lr-step", required_argument, 0, O_LRSTEP}, {"lr-gamma", required_argument, 0, O_LRGAMMA},
        {"lr-min", required_argument, 0, O_LRMIN},  {"seed", required_argument, 0, O_SEED},
        {"no-shuffle", no_argument, 0, O_NOSHUF},   {"impl", required_argument, 0, O_IMPL},
        {"threads", required_argument, 0, O_THREADS}, {"quiet", no_argument, 0, O_QUIET},
        {"help", no_argument, 0, 'h'},              {"version", no_argument, 0, O_VERSION},
        {"save", required_argument, 0, O_SAVE},     {"checkpoint", required_argument, 0, O_CKPT},
        {"checkpoint-every", required_argument, 0, O_CKPT_EVERY},
        {"stop-after", required_argument, 0, O_STOP}, {"resume", required_argument, 0, O_RESUME},
        {"log", required_argument, 0, O_LOG},       {"arch", required_argument, 0, O_ARCH},
        {0, 0, 0, 0}};
    const char *C = "train", *data = "data/mnist", *resume = NULL, *arch = NULL;
    char given[O_END] = {0};
    int hidden[BP_MAX_LAYERS], nhidden = 0;
    bp_act act = BP_ACT_RELU;
    bp_init init = BP_INIT_AUTO;
    bp_train_config cfg;
    bp_train_config_default(&cfg);
    bp_error err = {0};
    report rep = {0, 0, 0.0, 0};

    opterr = 0;
    optind = 0; /* a full reset (glibc, musl); 1 would resume a cluster left half-read */
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_DATA: data = optarg; break;
        case O_HIDDEN: bad = opt_widths(C, "--hidden", optarg, hidden, BP_MAX_LAYERS - 1, &nhidden); break;
        case O_ACT: bad = opt_parsed(C, "--act", bp_act_parse(optarg, &act, &err), &err); break;
        case O_INIT: bad = opt_parsed(C, "--init", bp_init_parse(optarg, &init, &err), &err); break;
        case O_EPOCHS: bad = opt_int(C, "--epochs", optarg, &cfg.epochs); break;
        case O_BATCH: bad = opt_int(C, "--batch", optarg, &cfg.batch); break;
        case O_LR:
            bad = opt_float(C, "--lr", optarg, &cfg.opt.lr);
            if (!bad && cfg.opt.lr <= 0.0f) { /* the library reads 0 as "default" */
                fprintf(stderr, "backprop train: --lr: %g must be greater than 0\n", cfg.opt.lr);
                bad = -1;
            }
            break;
        case O_OPTIM: bad = opt_parsed(C, "--optim", bp_opt_parse(optarg, &cfg.opt.kind, &err), &err); break;
        case O_MOMENTUM: bad = opt_float(C, "--momentum", optarg, &cfg.opt.momentum); break;
        case O_WD: bad = opt_float(C, "--weight-decay", optarg, &cfg.opt.weight_decay); break;
        case O_SCHED: bad = opt_parsed(C, "--lr-schedule", bp_sched_parse(optarg, &cfg.opt.sched, &err), &err); break;
        case O_LRSTEP: bad = opt_int(C, "--lr-step", optarg, &cfg.opt.step_epochs); break;
        case O_LRGAMMA: bad = opt_float(C, "--lr-gamma", optarg, &cfg.opt.gamma); break;
        case O_LRMIN: bad = opt_float(C, "--lr-min", optarg, &cfg.opt.min_lr); break;
        case O_SEED: bad = opt_u64(C, "--seed", optarg, &cfg.seed); break;
        case O_NOSHUF: cfg.shuffle = 0; break;
        case O_IMPL: bad = opt_parsed(C, "--impl", bp_impl_parse(optarg, &cfg.impl, &err), &err); break;
        case O_THREADS: bad = opt_int(C, "--threads", optarg, &cfg.threads); break;
        case O_QUIET: rep.quiet = 1; break;
        case O_SAVE: cfg.save_path = optarg; break;
        case O_CKPT: cfg.checkpoint_path = optarg; break;
        case O_CKPT_EVERY: bad = opt_int(C, "--checkpoint-every", optarg, &cfg.checkpoint_every); break;
        case O_STOP: bad = opt_int(C, "--stop-after", optarg, &cfg.stop_after); break;
        case O_RESUME: resume = optarg; break;
        case O_LOG: cfg.log_path = optarg; break;
        case O_ARCH:
            arch = optarg; /* the syntax now; the shapes once the data's image size is known */
            bad = cli_arch_model(C, arch, BP_CLASSES, 0, 0, NULL) ? -1 : 0;
            break;
        case 'h': help(stdout); return 0;
        case O_VERSION: printf("backprop %s\n", BP_VERSION); return 0;
        default: cli_opt_error(C, c, argv, longopts); return EXIT_USAGE;
        }
        if (bad)
            return bad_usage();
        if (c >= O_DATA && c < O_END)
            given[c] = 1;
    }
    for (int o = O_DATA; resume && o < O_END; o++)
        if (given[o] && sets_run(o)) {
            for (int i = 0; longopts[i].name; i++)
                if (longopts[i].val == o)
                    fprintf(stderr, "backprop train: --%s: not with --resume (the run's "
                            "settings come from the checkpoint)\n", longopts[i].name);
            return bad_usage();
        }
    if (arch && (given[O_HIDDEN] || given[O_ACT])) {
        fprintf(stderr, "backprop train: --arch: not with --%s (the architecture lists its own "
                "layers)\n", given[O_HIDDEN] ? "hidden" : "act");
        return bad_usage();
    }
    if (optind < argc) {
        fprintf(stderr, "backprop train: unexpected argument '%s'\n", argv[optind]);
        return bad_usage();
    }
    /* Every range is the library's: check now, before minutes of loading, and name the flag. */
    if (bp_train_config_check(&cfg, &err)) {
        cli_error(C, &err, field_flags);
        return bad_usage();
    }
    cfg.threads = cli_threads(C, cfg.threads);

    bp_dataset *train = NULL, *test = NULL;
    bp_model *m = NULL;
    bp_checkpoint *ck = NULL;
    int status = 0, resumed = 0;
    bp_epoch_stats last;
    double best;
    if (resume && (status = load_resume(resume, &cfg, &m, &ck, given[O_EPOCHS], &resumed)))
        goto done;
    if (ck && cfg.epochs <= resumed) { /* before the header: an error leaves stdout empty */
        fprintf(stderr, "backprop train: --epochs: %d: the checkpoint has already trained %d "
                "epochs (ask for more to continue)\n", cfg.epochs, resumed);
        status = EXIT_USAGE;
        goto done;
    }
    if ((status = bp_dataset_load_dir(data, &train, &test, &err))) {
        fprintf(stderr, "backprop train: %s\n", err.msg);
        status = cli_exit(status);
        goto done;
    }
    if (m && (uint32_t)m->sizes[0] != train->dim) {
        fprintf(stderr, "backprop train: --resume: the model takes %d inputs, %s has %u per "
                "image\n", m->sizes[0], data, train->dim);
        status = EXIT_USAGE;
        goto done;
    }
    if (!m && arch) {
        if ((status = cli_arch_model(C, arch, BP_CLASSES, train->rows, train->cols, &m)))
            goto done;
        if ((status = bp_model_init(m, init, cfg.seed, &err))) {
            fprintf(stderr, "backprop train: %s\n", err.msg);
            status = cli_exit(status);
            goto done;
        }
    }
    if (!m) {
        int sizes[BP_MAX_LAYERS + 1], L = nhidden + 1;
        sizes[0] = (int)train->dim;
        for (int l = 0; l < nhidden; l++)
            sizes[l + 1] = hidden[l];
        sizes[L] = BP_CLASSES;
        if ((status = bp_model_create(&m, sizes, L, act, &err)) ||
            (status = bp_model_init(m, init, cfg.seed, &err))) {
            fprintf(stderr, "backprop train: %s\n", err.msg);
            status = cli_exit(status);
            goto done;
        }
        m->input_rows = train->rows;
        m->input_cols = train->cols;
    }
    int L = m->nlayers;

    rep.bar = !rep.quiet && isatty(STDERR_FILENO);
    cfg.on_epoch = on_epoch;
    cfg.on_progress = on_progress;
    cfg.user = &rep;
    cfg.interrupt = &stop_signal;
    last = (bp_epoch_stats){.epoch = resumed, .train_loss = NAN, .test_acc = NAN};
    best = NAN;
    catch_signals();
    if (!rep.quiet) {
        printf("backprop %s: %s, model", BP_VERSION, data);
        char desc[600];
        if (!m->mlp)
            printf(" %s", cli_model_desc(m, desc, sizeof desc));
        for (int l = 0; m->mlp && l <= L; l++)
            printf("%c%d", l ? '-' : ' ', m->sizes[l]);
        printf(" (%s, %zu parameters), %s lr %g, batch %d, impl %s, %d thread%s\n",
               !m->mlp ? "layers" : L > 1 ? bp_act_name(m->act) : "softmax regression",
               m->nparams,
               bp_opt_name(cfg.opt.kind), bp_opt_base_lr(&cfg.opt),
               (uint32_t)cfg.batch < train->n ? cfg.batch : (int)train->n, /* as bp_train clamps */
               bp_impl_name(cfg.impl), cfg.threads, cfg.threads == 1 ? "" : "s");
        if (ck)
            printf("resuming %s after epoch %d of %d\n", resume, resumed, cfg.epochs);
        fflush(stdout);
    }
    int st = bp_train(m, train, test, &cfg, &last, &best, &err);
    if (rep.bar)
        fputs("\r\033[K", stderr);
    if (st == BP_OK && stop_signal) { /* after the last step: everything was done and saved */
        st = BP_ERR_INTERRUPTED;
        snprintf(err.msg, sizeof err.msg, "interrupted after the last step; the run is complete");
    }
    if (st == BP_ERR_INTERRUPTED) {
        /* the summary of the epochs completed, marked; then the usual 128 + signal */
        printf("final test_acc=%.4f best_test_acc=%.4f train_loss=%.4f epochs=%d seconds=%.2f "
               "samples_per_s=%.0f interrupted=1\n", last.test_acc, best, last.train_loss,
               last.epoch, rep.seconds,
               rep.seconds > 0 ? (double)train->n * rep.epochs_run / rep.seconds : 0.0);
        fflush(stdout);
        fprintf(stderr, "backprop train: %s (%s)\n", err.msg,
                stop_signal == SIGTERM ? "SIGTERM" : "SIGINT");
        status = 128 + (stop_signal ? (int)stop_signal : SIGINT);
        goto done;
    }
    if (st) {
        cli_error(C, &err, field_flags);
        status = st == BP_ERR_ARG ? EXIT_USAGE : 1;
        goto done;
    }
    /* Scripts parse this line: keep its keys stable. The totals sum the epochs' training loops. */
    printf("final test_acc=%.4f best_test_acc=%.4f train_loss=%.4f epochs=%d seconds=%.2f "
           "samples_per_s=%.0f\n",
           last.test_acc, best, last.train_loss, last.epoch, rep.seconds,
           rep.seconds > 0 ? (double)train->n * rep.epochs_run / rep.seconds : 0.0);
done:
    bp_checkpoint_free(ck);
    bp_model_free(m);
    bp_dataset_free(train);
    bp_dataset_free(test);
    return status;
}
