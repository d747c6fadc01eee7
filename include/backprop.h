/* backprop — mini-batch backpropagation on OpenBLAS, derived from the per-sample formulas.
 *
 * Conventions: row-major, one sample per row. A batch X is B×I floats exactly as the IDX bytes
 * lie; a linear layer stores W as [O,I] and computes V = X·Wᵀ + 1·bᵀ (the seminar's column-major
 * V = W·U + b·1ᵀ with U = Xᵀ). Every function returns BP_OK (0) or a negative bp_status; where a
 * bp_error is passed, a one-line message is written into it. The library never prints or exits. */
#ifndef BACKPROP_H
#define BACKPROP_H

#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "backprop_version.h" /* BP_VERSION, generated from the Meson project version */

/* Every public function carries BP_API; the shared library exports these and nothing else. */
#if defined(__GNUC__)
#define BP_API __attribute__((visibility("default")))
#else
#define BP_API
#endif

typedef enum {
    BP_OK = 0,
    BP_ERR_IO = -1,      /* a file could not be opened, read or written */
    BP_ERR_FORMAT = -2,  /* a file's contents are invalid */
    BP_ERR_NOMEM = -3,   /* an allocation failed */
    BP_ERR_ARG = -4,     /* an argument is out of range */
    BP_ERR_NUMERIC = -5, /* training diverged: a loss or parameter became NaN or infinite, or
                          * a loss grew far above its start (bp_train) */
    BP_ERR_INTERRUPTED = -6, /* bp_train stopped early because cfg.interrupt was set; what was
                              * asked to be saved was saved */
} bp_status;

/* A message buffer the caller owns. A function that fails writes one line into msg; when the
 * fault is one setting of a configuration struct, field names it as in C ("opt.lr", "batch"),
 * else field is "". */
typedef struct {
    char field[32];
    char msg[512];
} bp_error;

BP_API const char *bp_status_str(int status);

/* Seconds on a monotonic clock (CLOCK_MONOTONIC): for intervals only. */
BP_API double bp_now(void);

/* ---- random numbers: xoshiro256** seeded through splitmix64 (see src/rng.c) ---- */
typedef struct {
    uint64_t s[4];
} bp_rng;

BP_API void bp_rng_seed(bp_rng *rng, uint64_t seed);
BP_API uint64_t bp_rng_next(bp_rng *rng);
BP_API uint32_t bp_rng_below(bp_rng *rng, uint32_t n); /* uniform in [0, n), unbiased; n > 0 */
BP_API double bp_rng_uniform(bp_rng *rng);             /* uniform in [0, 1) with 53 bits */
BP_API double bp_rng_normal(bp_rng *rng);              /* standard normal (Box–Muller) */

/* ---- datasets ---- */
typedef struct {
    uint32_t n;       /* number of samples */
    uint32_t rows;    /* image height */
    uint32_t cols;    /* image width */
    uint32_t dim;     /* rows·cols */
    uint32_t classes; /* labels are < classes */
    uint8_t *pixels;  /* n×dim bytes, row-major, as in the file */
    uint8_t *labels;  /* n bytes */
} bp_dataset;

#define BP_CLASSES 10

/* Reads an IDX image file (magic 0x00000803) or label file (0x00000801), raw or gzip. */
BP_API int bp_idx_read_images(const char *path, uint8_t **pixels, uint32_t *n, uint32_t *rows,
                              uint32_t *cols, bp_error *err);
BP_API int bp_idx_read_labels(const char *path, uint8_t **labels, uint32_t *n, bp_error *err);

/* Loads an image file and its label file and checks they agree (count, label < classes). */
BP_API int bp_dataset_load(bp_dataset **out, const char *images_path, const char *labels_path,
                           uint32_t classes, bp_error *err);
/* Loads the four MNIST-layout files of dir (each as NAME or NAME.gz); train and test must have
 * the same image size. */
BP_API int bp_dataset_load_dir(const char *dir, bp_dataset **train, bp_dataset **test,
                               bp_error *err);
BP_API void bp_dataset_free(bp_dataset *ds);

/* X[b,:] = pixels[idx[b],:] / 255 for b < B (idx == NULL: samples first..first+B-1);
 * labels_out[b] likewise. */
BP_API void bp_dataset_gather(const bp_dataset *ds, const uint32_t *idx, uint32_t first, int B,
                              float *X, uint8_t *labels_out);
/* Fisher–Yates shuffle of perm[0..n-1]. */
BP_API void bp_shuffle(uint32_t *perm, uint32_t n, bp_rng *rng);

/* ---- names of the enums: one table, used by the CLI, the bench and the tests ---- */
typedef enum { BP_ACT_RELU, BP_ACT_TANH, BP_ACT_SIGMOID } bp_act;
typedef enum { BP_IMPL_BLAS, BP_IMPL_JACOBIAN, BP_IMPL_NAIVE } bp_impl;
typedef enum {
    BP_INIT_AUTO,    /* He for ReLU, Xavier/Glorot for tanh/sigmoid and the output layer; normal */
    BP_INIT_ZEROS,   /* every parameter 0: needs no RNG, so runs compare with other tools */
    BP_INIT_UNIFORM, /* W ~ U(−a, a), a = sqrt(6/(I+O)) (Glorot uniform); b = 0 */
    BP_INIT_NORMAL,  /* W ~ N(0, 2/(I+O)) (Glorot normal); b = 0 */
    BP_INIT_TORCH,   /* PyTorch's nn.Linear default: W and b ~ U(−1/√I, 1/√I) */
} bp_init;
typedef enum { BP_OPT_SGD, BP_OPT_MOMENTUM, BP_OPT_NESTEROV, BP_OPT_ADAM } bp_opt_kind;
typedef enum { BP_SCHED_CONSTANT, BP_SCHED_STEP, BP_SCHED_COSINE } bp_sched_kind;

/* bp_X_name: the lower-case name ("relu", "jacobian", "adam", …); NULL for a value that is not
 * one of the enum's. bp_X_parse: the value of a name, or BP_ERR_ARG with a message that lists
 * the names ("unknown activation 'foo' (one of: relu, tanh, sigmoid)"). */
BP_API const char *bp_act_name(bp_act v);
BP_API const char *bp_impl_name(bp_impl v);
BP_API const char *bp_init_name(bp_init v);
BP_API const char *bp_opt_name(bp_opt_kind v);
BP_API const char *bp_sched_name(bp_sched_kind v);
BP_API int bp_act_parse(const char *s, bp_act *out, bp_error *err);
BP_API int bp_impl_parse(const char *s, bp_impl *out, bp_error *err);
BP_API int bp_init_parse(const char *s, bp_init *out, bp_error *err);
BP_API int bp_opt_parse(const char *s, bp_opt_kind *out, bp_error *err);
BP_API int bp_sched_parse(const char *s, bp_sched_kind *out, bp_error *err);

/* ---- threads ----
 * Each bp_work carries a thread count n. A product big enough to share is split into n parts
 * on the library's own pool of threads (started on first use, at most one per online core,
 * the caller being one of them): rows of the batch for the forward pass and the input
 * gradient, rows (output units) or columns of dW for the weight gradient, rows of the batch for
 * the gather of training samples. Each part is a single-threaded OpenBLAS GEMM or one of the
 * library's small-output kernels, so OpenBLAS is held at one thread while the pool runs and
 * the two never add up to more than n; no part needs a reduction, and results are the same
 * for every n. Products too small to share run on the calling thread (OpenBLAS may then use
 * up to n threads for a wide one). OpenBLAS's thread setting is process-wide and is not
 * restored afterwards. */

/* The thread count to use: requested if > 0, else OPENBLAS_NUM_THREADS when it is a positive
 * integer, else the online cores; never more than the online cores (*capped, if not NULL, is
 * set to 1 when the count had to be lowered to the cores, else 0). */
BP_API int bp_threads_resolve(int requested, int *capped);
BP_API const char *bp_blas_config(void);   /* OpenBLAS build configuration */
BP_API const char *bp_blas_corename(void); /* the kernel family OpenBLAS chose for this CPU */
/* The library's own kernels (output layers of at most 16 units, the uint8 → float gather)
 * exist for several instruction sets; the widest the CPU supports is used unless
 * bp_kernel_select names another: "auto", "generic" (any CPU), "avx2" (AVX2 + FMA), "avx512"
 * (AVX-512F). Selecting a set the CPU lacks, or an unknown name, fails with BP_ERR_ARG and
 * changes nothing. Meant for tests and benchmarks: all sets compute the same sums, in an order
 * that differs with the vector width (results agree to float rounding, not bit for bit). */
BP_API const char *bp_kernel_name(void);
BP_API int bp_kernel_select(const char *name, bp_error *err);

/* ---- models: an ordered list of typed layers → softmax + cross-entropy ----
 * A model is a list of layers, each a forward/backward pair with its output shape inferred from
 * its input's. Activations are NCHW: one sample is C channels of H×W, row-major, exactly as
 * PyTorch lays out a [B, C, H, W] tensor; a flat vector of n values has shape (n, 1, 1). The
 * MLP of bp_model_create is the list linear, act, linear, …, linear. */
#define BP_MAX_LAYERS 16     /* layers with parameters (linear, conv2d) */
#define BP_MAX_LIST 64       /* layers in the list, those without parameters included */
#define BP_MAX_WIDTH (1 << 20) /* the widest layer, and the largest input, a model may have */
#define BP_MAX_CHANNELS 4096   /* conv2d output channels */
#define BP_MAX_KERNEL 15       /* conv2d kernel side */

typedef enum {
    BP_LAYER_LINEAR,  /* y = W·x + b over the flattened input (c, h, w order); units outputs */
    BP_LAYER_ACT,     /* act elementwise */
    BP_LAYER_CONV2D,  /* units output channels, kernel kh×kw, stride, padding, with bias */
    BP_LAYER_MAXPOOL, /* window kh×kh, stride kh (floor: a ragged edge is dropped) */
    BP_LAYER_AVGPOOL, /* the same windows, their mean */
    BP_LAYER_FLATTEN, /* (c, h, w) → (c·h·w, 1, 1); no data moves */
    BP_LAYER_DROPOUT, /* inverted dropout of rate p, in bp_grad only (bp_forward: identity) */
} bp_layer_kind;
typedef enum { BP_PAD_VALID, BP_PAD_SAME } bp_padding; /* same: odd kernels, stride 1 */

typedef struct {
    bp_layer_kind kind;
    int units;      /* linear: outputs; conv2d: output channels */
    int kh, kw;     /* conv2d: kernel; pools: the window side in kh (kw = kh) */
    int stride;     /* conv2d: 1 or 2 (0 reads as 1); pools: set to the window */
    bp_padding pad; /* conv2d */
    bp_act act;     /* act */
    float p;        /* dropout: 0 ≤ p < 1 */
    /* Filled in by the model (shape inference), ignored on input: */
    int in_c, in_h, in_w;
    int out_c, out_h, out_w;
    int param;      /* linear, conv2d: index into W, b, dW, db; else −1 */
} bp_layer;

typedef struct {
    int nlayers;                 /* layers with parameters (linear and conv2d), in list order */
    int sizes[BP_MAX_LAYERS + 1];/* sizes[l]: the flat input width of parameter layer l;
                                  * sizes[0] = input, sizes[nlayers] = classes */
    bp_act act;                  /* the activation, when every act layer has the same one */
    size_t nparams;              /* floats in params (and grads) */
    float *params;               /* one flat block: W0, b0, W1, b1, ... */
    float *grads;                /* same layout as params */
    float *W[BP_MAX_LAYERS];     /* linear: [units, in]; conv2d: [C_out, C_in, kh, kw] */
    float *b[BP_MAX_LAYERS];     /* b[l] is [units] */
    float *dW[BP_MAX_LAYERS];    /* into grads */
    float *db[BP_MAX_LAYERS];
    uint32_t input_rows;         /* the input's image shape, rows·cols = sizes[0], when known */
    uint32_t input_cols;         /* (model files record it; 0 × 0: a flat vector) */
    bp_init init;                /* how bp_model_init drew the parameters, and from which seed */
    uint64_t init_seed;
    int nlist;                   /* the layer list, shapes inferred */
    bp_layer list[BP_MAX_LIST];
    int input_channels;          /* 1 for the images this tool reads */
    int mlp;                     /* 1: the list is linear (act linear)*, one activation */
} bp_model;

/* A model from a layer list on inputs of in_c channels of in_h×in_w (a flat input: in_h =
 * in_w = 1). The last layer must be linear (its outputs are the classes). Shapes are inferred
 * and checked: BP_ERR_ARG names the layer ("layer 3 (conv2d): a 5x5 kernel does not fit a 4x4
 * input"). Parameters start at 0; input_rows, input_cols are set when in_h·in_w > 1. */
BP_API int bp_model_create_layers(bp_model **out, int in_c, int in_h, int in_w,
                                  const bp_layer *layers, int nlist, bp_error *err);

/* Parses an architecture such as "conv3x3:32,relu,maxpool2,dropout:0.25,fc:128,relu" into
 * layers (at most max); the tokens are:
 *   convKxK:C[:same|valid][:s2]   conv2d, C output channels (default valid padding, stride 1)
 *   maxpool2, avgpool2 (maxpoolK)  pooling windows of K×K, stride K
 *   fc:N                           linear, N outputs (a flatten is put before the first fc
 *                                  that follows a spatial layer)
 *   relu, tanh, sigmoid            activations
 *   dropout:P                      0 ≤ P < 1
 *   flatten
 * The output layer is not part of the string: the caller appends it. BP_ERR_ARG with a message
 * naming the token: "token 3 'conv3x3:0': channels must be from 1 to 4096". */
BP_API int bp_arch_parse(const char *s, bp_layer *layers, int max, int *n, bp_error *err);
/* The list in the same syntax ("conv3x3:32,relu,…,fc:10"), into buf (always terminated). */
BP_API const char *bp_arch_format(const bp_model *m, char *buf, size_t len);

/* sizes has nlayers+1 entries, each 1..BP_MAX_WIDTH. Parameters start at 0. */
BP_API int bp_model_create(bp_model **out, const int *sizes, int nlayers, bp_act act,
                           bp_error *err);
/* Draws the parameters. seed is the run's seed (bp_train_config.seed): the draws come from a
 * stream derived from it (seed ^ BP_INIT_STREAM), apart from the shuffling stream that bp_train
 * seeds with seed itself, so a C caller and `backprop train --seed N` start from the same
 * weights. BP_ERR_ARG for an unknown init. */
#define BP_INIT_STREAM 0x5eedULL
BP_API int bp_model_init(bp_model *m, bp_init init, uint64_t seed, bp_error *err);
BP_API void bp_model_free(bp_model *m);

/* Scratch of the forward and backward pass for one model and batches of at most max_batch
 * samples: the passes never allocate. threads as for bp_threads_resolve (0: the default). The
 * work holds no input batch: callers keep their own X and labels. */
typedef struct bp_work bp_work;
BP_API int bp_work_create(bp_work **out, const bp_model *m, int max_batch, int threads,
                          bp_error *err);
BP_API void bp_work_set_threads(bp_work *w, int threads); /* as bp_threads_resolve */
/* Dropout: bp_grad's k-th call after this draws its masks from a stream derived from (seed,
 * step + k) alone, so a run's masks depend on its seed and step, not on what ran before (a
 * resumed run draws the same ones). A new work starts at (m->init_seed, 0); bp_train sets
 * (cfg->seed, the run's step). */
#define BP_DROPOUT_STREAM 0xd20c0a7ULL
BP_API void bp_work_set_seed(bp_work *w, uint64_t seed, long step);
BP_API int bp_work_threads(const bp_work *w);
BP_API void bp_work_free(bp_work *w);

/* Gradients of the mean cross-entropy on one batch X[B, sizes[0]] (NCHW for a CNN: each row is
 * the image's channels, rows, columns) with labels[B], forward and backward through every
 * layer, dropout drawing its masks (bp_work_set_seed): writes them into m->grads (overwritten, not accumulated) and
 * changes no parameter. The summed (not mean) loss goes to *loss_sum and the number of correct
 * arg-max predictions to *correct (either may be NULL). dX, if not NULL, receives dL/dX
 * [B, sizes[0]]. BP_ERR_ARG, with a message, for B outside 1..max_batch, a label not below the
 * class count, or an unknown impl. */
BP_API int bp_grad(bp_model *m, bp_work *w, bp_impl impl, const float *X, const uint8_t *labels,
                   int B, double *loss_sum, int *correct, float *dX, bp_error *err);

/* Forward only: probabilities into probs[B, classes] (may be NULL); loss and correct as above
 * (labels may be NULL, then loss and correct are not computed). */
BP_API int bp_forward(const bp_model *m, bp_work *w, const float *X, const uint8_t *labels,
                      int B, float *probs, double *loss_sum, int *correct, bp_error *err);

/* ---- two implementations against each other (src/agree.c) ---- */
/* How far one pass is from a reference pass, each measure a relative difference
 *   rel(g, g_ref) = max_i |g_i − g_ref,i| / max_i |g_ref,i|   (max |g − g_ref| if g_ref is 0):
 * grad_rel over the whole flat gradient block (every W and b), tensor_rel the worst of rel
 * taken over each W_l and each b_l on its own, dX_rel over dL/dX. A NaN in either pass makes
 * the measure NaN, and NaN fails every `<= tolerance`. */
typedef struct {
    double grad_rel;
    double tensor_rel;
    double dX_rel;
    double loss, loss_ref;   /* the summed losses of the two passes */
    double loss_rel;         /* |loss − loss_ref| / |loss_ref| (the plain difference at 0) */
    int correct, correct_ref;/* correct arg-max predictions of each pass */
} bp_agreement;

/* Runs bp_grad with ref and then with impl on the same batch X[B, sizes[0]], labels[B], from
 * the same parameters (bp_grad changes none), and fills *out. m->grads and every dX entry are
 * set to NaN before each pass, so an entry a pass leaves unwritten shows as NaN. On return
 * m->grads holds impl's gradient. Allocates a copy of the reference gradient and the two dX
 * (freed before it returns): BP_ERR_NOMEM if that fails, else bp_grad's status (B outside
 * 1..the work's max_batch, a bad label or impl: BP_ERR_ARG). Thread count: the work's. */
BP_API int bp_grad_agree(bp_model *m, bp_work *w, bp_impl impl, bp_impl ref, const float *X,
                         const uint8_t *labels, int B, bp_agreement *out, bp_error *err);

/* ---- evaluation ---- */
#define BP_EVAL_BATCH 1000 /* the default evaluation batch. Any size gives the same results
                            * to float rounding; with the AVX-512 kernel set the same
                            * probabilities bit for bit (OpenBLAS rounds differently for other
                            * matrix sizes) and the mean loss to double rounding (summed batch
                            * by batch) */

typedef struct {
    uint32_t n;        /* samples evaluated */
    double loss;       /* mean cross-entropy */
    double accuracy;   /* fraction whose arg-max is the label */
    uint32_t confusion[BP_CLASSES][BP_CLASSES]; /* [true label][predicted class] */
} bp_eval_result;

/* Evaluates m on every sample of ds in batches of batch (0: BP_EVAL_BATCH), on threads as for
 * bp_threads_resolve. probs, if not NULL, receives every sample's probabilities
 * [ds->n, classes]. It allocates its own scratch. BP_ERR_ARG if the data's width is not the
 * model's input width or the model has more than BP_CLASSES outputs. */
BP_API int bp_evaluate(const bp_model *m, const bp_dataset *ds, int batch, int threads,
                       bp_eval_result *res, float *probs, bp_error *err);

/* ---- optimizers: each a single loop over the flat parameter block ---- */
typedef struct {
    bp_opt_kind kind;
    float lr;           /* base learning rate; 0: the optimizer's default (bp_opt_default_lr) */
    float momentum;     /* momentum and nesterov: velocity decay μ, 0 ≤ μ < 1 */
    float weight_decay; /* SGD family: L2 (λ·p added to the gradient); Adam: decoupled (AdamW);
                         * 0 ≤ λ ≤ 10 */
    float beta1, beta2; /* Adam: 0 ≤ β < 1 */
    float eps;          /* Adam: 0 < ε ≤ 1 */
    bp_sched_kind sched;
    int step_epochs;    /* step schedule: multiply lr by gamma every step_epochs epochs (≥ 1) */
    float gamma;        /* 0 < γ ≤ 1 */
    float min_lr;       /* cosine: the rate it decays to at the last step; 0 ≤ min_lr ≤ lr */
} bp_opt_config;

/* The defaults: SGD at its default rate, momentum 0.9, no weight decay, Adam β = (0.9, 0.999),
 * ε = 1e-8, cosine schedule to 0 (step schedule: every epoch, γ = 0.5). */
BP_API void bp_opt_config_default(bp_opt_config *c);
/* The default base rate of an optimizer: sgd 0.5, momentum and nesterov 0.05, adam 0.001
 * (0 for an unknown kind). */
BP_API float bp_opt_default_lr(bp_opt_kind kind);
/* The base rate c uses: c->lr, or the kind's default when c->lr is 0. */
BP_API float bp_opt_base_lr(const bp_opt_config *c);
/* BP_OK, or BP_ERR_ARG naming the first field out of range (err->field "opt.momentum", …). */
BP_API int bp_opt_config_check(const bp_opt_config *c, bp_error *err);

typedef struct bp_opt bp_opt;
/* Checks cfg (bp_opt_config_check) and allocates the state for nparams parameters. */
BP_API int bp_opt_create(bp_opt **out, const bp_opt_config *cfg, size_t nparams, bp_error *err);
BP_API void bp_opt_free(bp_opt *o);
/* The scheduled learning rate at a given epoch (0-based) and step within the whole run. */
BP_API float bp_opt_lr(const bp_opt_config *cfg, int epoch, long step, long total_steps);
/* params -= update(grads) with learning rate lr; advances the optimizer's step counter. */
BP_API void bp_opt_step(bp_opt *o, float *params, const float *grads, float lr);

/* ---- training ---- */
typedef struct {
    int epoch;             /* 1-based */
    int epochs;
    long step;             /* optimizer steps taken so far in the run */
    double train_loss;     /* mean cross-entropy over the epoch's samples, as trained */
    double train_acc;      /* fraction correct during the epoch, as trained */
    double test_loss;      /* NAN when there is no test set */
    double test_acc;       /* NAN when there is no test set */
    double seconds;        /* training loop only: no data loading, no evaluation */
    double samples_per_s;
    float lr;              /* learning rate at the epoch's last step */
} bp_epoch_stats;

typedef void (*bp_epoch_fn)(const bp_epoch_stats *s, void *user);
typedef void (*bp_progress_fn)(int epoch, uint32_t done, uint32_t total, void *user);

#define BP_MAX_EPOCHS 100000
#define BP_MAX_BATCH 65536

typedef struct {
    int epochs;            /* 1..BP_MAX_EPOCHS (default 10) */
    int batch;             /* 1..BP_MAX_BATCH (default 100); a larger batch than the training
                            * set is clamped to its size */
    uint64_t seed;         /* shuffling; bp_model_init derives the initialisation from it too */
    int shuffle;           /* 0: samples in file order every epoch (default 1) */
    bp_impl impl;          /* default BP_IMPL_BLAS */
    int threads;           /* as for bp_threads_resolve (default 0) */
    int eval_batch;        /* batch of the per-epoch test evaluation (0: BP_EVAL_BATCH) */
    bp_opt_config opt;
    int stop_after;        /* stop after this many epochs of the run, 0: all; the schedule
                            * still spans `epochs`, so a checkpoint resumes the same run */
    /* Files (each may be NULL; written through bp_file, so never half-written): */
    const char *save_path;       /* the model after the last epoch run */
    const char *checkpoint_path; /* model + optimizer + RNG state, for `resume` */
    int checkpoint_every;        /* every N epochs (0: only after the last epoch run) */
    const char *log_path;        /* CSV, one row per epoch, flushed as it goes (appended to
                                  * when resuming a run whose log exists) */
    const struct bp_checkpoint *resume; /* continue the run a checkpoint stopped (NULL: new) */
    /* If not NULL, bp_train reads it after every step; once it is non-zero, the step just
     * taken is kept, the checkpoint (mid-epoch, resumable) and the model are written if asked
     * for, and bp_train returns BP_ERR_INTERRUPTED. A signal handler may set it. */
    const volatile sig_atomic_t *interrupt;
    bp_epoch_fn on_epoch;  /* may be NULL */
    bp_progress_fn on_progress; /* may be NULL; called after every batch */
    void *user;
} bp_train_config;

/* The defaults the CLI uses: 10 epochs, batch 100, seed 1, shuffled, blas, default threads,
 * bp_opt_config_default. */
BP_API void bp_train_config_default(bp_train_config *c);
/* BP_OK, or BP_ERR_ARG naming the first field out of range or unknown: err->field is its C
 * name ("epochs", "opt.lr", …) and err->msg says what is wrong with it. */
BP_API int bp_train_config_check(const bp_train_config *c, bp_error *err);

/* Divergence: bp_train fails with BP_ERR_NUMERIC when a training batch's or the test set's mean
 * loss is NaN, infinite or above BP_DIVERGE_FACTOR·log C (C classes: a model starts near log C
 * and a learning one goes down, so 20 times the start means the steps are blowing up), or when
 * a parameter is not finite after an epoch's last update. Nothing is saved then: a checkpoint
 * or model already on disk stays the last good one. */
#define BP_DIVERGE_FACTOR 20.0

/* Trains m on train, evaluating on test (may be NULL) after every epoch. The last epoch's stats
 * go to *last (may be NULL); the best test accuracy to *best_test_acc (may be NULL). Checks cfg
 * first (bp_train_config_check). */
BP_API int bp_train(bp_model *m, const bp_dataset *train, const bp_dataset *test,
                    const bp_train_config *cfg, bp_epoch_stats *last, double *best_test_acc,
                    bp_error *err);

/* ---- files written whole or not at all ----
 * bp_file_create opens a temporary file beside path (same directory, so the rename cannot
 * cross file systems); the caller writes through bp_file_stream; bp_file_commit flushes,
 * fsyncs, closes, renames it over path and fsyncs the directory. An existing file at path is
 * replaced only by a complete new one: on any error (a full disk included) the temporary is
 * removed and path is left as it was. (Only when the directory's fsync fails after the rename is
 * the new file already in place; the BP_ERR_IO message then says "written, but".)
 * bp_file_abort removes the temporary. Commit and abort
 * free f. */
typedef struct bp_file bp_file;
BP_API int bp_file_create(bp_file **out, const char *path, bp_error *err);
BP_API FILE *bp_file_stream(bp_file *f);
BP_API int bp_file_commit(bp_file *f, bp_error *err);
BP_API void bp_file_abort(bp_file *f);

/* ---- images: readers for predict, writers for pictures ---- */
typedef struct {
    uint32_t rows, cols;
    uint8_t *pixels; /* rows×cols gray levels, row-major, 0 black … 255 white */
} bp_image;

/* Reads a PGM (P2 or P5) or PNG file, chosen by its first bytes, not its name, into 8-bit
 * gray. docs/images.md gives the conversion rules (alpha, colour, 16-bit, maxval). */
BP_API int bp_image_read(const char *path, bp_image *img, bp_error *err);
BP_API void bp_image_free(bp_image *img);
/* Writes an 8-bit PNG through bp_file (atomically): channels 1 (gray) or 3 (RGB), pixels
 * row-major, height×width×channels bytes. */
BP_API int bp_png_write(const char *path, const uint8_t *pixels, uint32_t width,
                        uint32_t height, int channels, bp_error *err);

/* ---- pictures: what a model learned, where it fails, how training went ---- */

/* The first layer's weights as images: each unit's row of W[0] reshaped to rows×cols
 * (rows·cols must be the input width) in a diverging colour map (blue negative, white 0, red
 * positive; each tile scaled to its own largest |w|), tiles in a grid. For a softmax
 * regression these are the ten class templates, in class order; for an MLP, the max_tiles
 * units with the largest weight norms (0: all, up to 100), largest first. For a model whose first
 * parameter layer is a conv2d: its filters (input channel 0), one kh×kw tile per output channel
 * in channel order, up to max_tiles (rows and cols are then not used). PNG through bp_file. */
BP_API int bp_picture_weights(const char *path, const bp_model *m, uint32_t rows, uint32_t cols,
                              int max_tiles, bp_error *err);

/* A grid of n images of ds (indices idx[0..n-1]), each captioned with its true label and the
 * predicted class pred[i] ("7>2" in a built-in digit font), true label in green and the wrong
 * prediction in red. PNG through bp_file. */
BP_API int bp_picture_errors(const char *path, const bp_dataset *ds, const uint32_t *idx,
                             const uint8_t *pred, int n, bp_error *err);

/* Training curves: reads a training log (the CSV that `backprop train --log` writes: a header
 * line, then epoch,step,train_loss,train_acc,test_loss,test_acc,lr,seconds,samples_per_s per
 * epoch) and writes an SVG with two panels, loss and accuracy against epoch, train and test,
 * with axes, ticks and a legend. Through bp_file. BP_ERR_FORMAT naming the line for a log it
 * cannot read. */
BP_API int bp_plot_log(const char *csv_path, const char *svg_path, bp_error *err);

/* ---- model files: safetensors (docs/model-format.md) ----
 * An 8-byte little-endian header length, a JSON header (tensor name → dtype, shape,
 * data_offsets, and "__metadata__", a map of strings), then the tensors' little-endian bytes.
 * Tensors are named as PyTorch's nn.Sequential state_dict names them for the same network
 * ("0.weight" [O,I], "0.bias", "2.weight", …), F32, so that safetensors.torch.load_file and
 * load_state_dict load a backprop model unchanged. A checkpoint adds "optimizer.m",
 * "optimizer.s" (F32, the flat parameter layout) and "trainer.perm" (U32) and more metadata. */
#define BP_MODEL_FORMAT_VERSION 1

typedef struct bp_checkpoint bp_checkpoint; /* the training state a checkpoint carries */

typedef struct {
    int format_version;    /* of the file read; bp_model_save writes BP_MODEL_FORMAT_VERSION */
    int epoch;             /* epochs trained when saved */
    long step;             /* optimizer steps taken when saved */
    double best_test_acc;  /* NAN when unknown */
    int has_train;         /* train holds the settings the model was trained with */
    bp_train_config train; /* those settings (file names, resume and callbacks NULL) */
    int is_checkpoint;     /* the file carries the training state (bp_checkpoint) */
} bp_model_info;

/* Writes m, with info's counters and settings as metadata (info may be NULL: epoch and step 0,
 * no settings). */
BP_API int bp_model_save(const char *path, const bp_model *m, const bp_model_info *info,
                         bp_error *err);
/* Reads a model file, trusting nothing in it: every failure is BP_ERR_FORMAT (BP_ERR_IO for
 * the file itself) with a one-line message naming the file and what is wrong. info may be
 * NULL. If ck is not NULL and the file is a checkpoint, *ck receives its training state (else
 * NULL); free it with bp_checkpoint_free. */
BP_API int bp_model_load(const char *path, bp_model **m, bp_model_info *info,
                         bp_checkpoint **ck, bp_error *err);
BP_API void bp_checkpoint_free(bp_checkpoint *ck);

/* ---- gradient checking ---- */
typedef struct {
    char name[16];      /* "W0", "b0", "W1", …, "X" */
    size_t checked;     /* entries compared */
    size_t skipped;     /* ReLU only: entries not compared because a pre-activation changes sign
                         * between θ − h and θ + h (the loss has a kink inside the step) */
    double max_abs_err; /* max |analytic − numeric| over the compared entries */
    double max_rel_err; /* max |a − n| / max(|a|, |n|, 1e-6); both are INFINITY if any a or n
                         * is NaN or infinite, so no tolerance accepts them */
} bp_gradcheck_tensor;

/* Compares impl's float gradient on one batch with central differences (step h) of a
 * double-precision forward pass, for every parameter tensor and the input X. At most per_tensor
 * entries of each tensor are drawn (0: all), chosen by the seed; with ReLU, drawn entries whose
 * ±h evaluations differ in the sign of some hidden pre-activation, or in the arg-max of some
 * max-pool window, are skipped (checked + skipped = drawn); dropout uses the masks of the
 * analytic pass; an entry with a non-finite analytic gradient is never skipped. res needs
 * 2·nlayers + 1 entries; *nres gets their number. The analytic gradient runs on threads as
 * for bp_threads_resolve. Checks B and h first (bp_gradcheck_check). */
BP_API int bp_gradcheck(bp_model *m, bp_impl impl, const float *X, const uint8_t *labels, int B,
                        double h, size_t per_tensor, uint64_t seed, int threads,
                        bp_gradcheck_tensor *res, int *nres, bp_error *err);
/* BP_OK, or BP_ERR_ARG naming "batch" (1..BP_GRADCHECK_MAX_BATCH) or "h" (BP_GRADCHECK_MIN_H
 * to 1: below it, θ ± h rounds so close to θ in double precision that the difference quotient
 * is mostly rounding error, and at 1e-38 it is exactly 0). */
#define BP_GRADCHECK_MAX_BATCH 4096
#define BP_GRADCHECK_MIN_H 1e-10
BP_API int bp_gradcheck_check(int B, double h, bp_error *err);

#ifdef __cplusplus
}
#endif
#endif
