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

#ifdef __cplusplus
extern "C" {
#endif

#define BP_VERSION "0.1.0"

typedef enum {
    BP_OK = 0,
    BP_ERR_IO = -1,      /* a file could not be opened, read or written */
    BP_ERR_FORMAT = -2,  /* a file's contents are invalid */
    BP_ERR_NOMEM = -3,   /* an allocation failed */
    BP_ERR_ARG = -4,     /* an argument is out of range */
    BP_ERR_NUMERIC = -5, /* a loss or gradient became NaN or infinite */
} bp_status;

/* A message buffer the caller owns; functions that fail fill it with one line. */
typedef struct {
    char msg[512];
} bp_error;

const char *bp_status_str(int status);

/* ---- random numbers: xoshiro256** seeded through splitmix64 (see src/rng.c) ---- */
typedef struct {
    uint64_t s[4];
} bp_rng;

void bp_rng_seed(bp_rng *rng, uint64_t seed);
uint64_t bp_rng_next(bp_rng *rng);
uint32_t bp_rng_below(bp_rng *rng, uint32_t n); /* uniform in [0, n), unbiased; n > 0 */
double bp_rng_uniform(bp_rng *rng);             /* uniform in [0, 1) with 53 bits */
double bp_rng_normal(bp_rng *rng);              /* standard normal (Box–Muller) */

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
int bp_idx_read_images(const char *path, uint8_t **pixels, uint32_t *n, uint32_t *rows,
                       uint32_t *cols, bp_error *err);
int bp_idx_read_labels(const char *path, uint8_t **labels, uint32_t *n, bp_error *err);

/* Loads an image file and its label file and checks they agree (count, label < classes). */
int bp_dataset_load(bp_dataset **out, const char *images_path, const char *labels_path,
                    uint32_t classes, bp_error *err);
/* Loads the four MNIST-layout files of dir (each as NAME or NAME.gz); train and test must have
 * the same image size. */
int bp_dataset_load_dir(const char *dir, bp_dataset **train, bp_dataset **test, bp_error *err);
void bp_dataset_free(bp_dataset *ds);

/* X[b,:] = pixels[idx[b],:] / 255 for b < B (idx == NULL: samples first..first+B-1);
 * labels_out[b] likewise. */
void bp_dataset_gather(const bp_dataset *ds, const uint32_t *idx, uint32_t first, int B,
                       float *X, uint8_t *labels_out);
/* Fisher–Yates shuffle of perm[0..n-1]. */
void bp_shuffle(uint32_t *perm, uint32_t n, bp_rng *rng);

/* ---- models: [linear → act]* → linear → softmax + cross-entropy ---- */
typedef enum { BP_ACT_RELU, BP_ACT_TANH, BP_ACT_SIGMOID } bp_act;
typedef enum { BP_IMPL_BLAS, BP_IMPL_JACOBIAN, BP_IMPL_NAIVE } bp_impl;
typedef enum {
    BP_INIT_AUTO,    /* He for ReLU, Xavier/Glorot for tanh/sigmoid and the output layer; normal */
    BP_INIT_ZEROS,   /* every parameter 0: needs no RNG, so runs compare with other tools */
    BP_INIT_UNIFORM, /* W ~ U(−a, a), a = sqrt(6/(I+O)) (Glorot uniform); b = 0 */
    BP_INIT_NORMAL,  /* W ~ N(0, 2/(I+O)) (Glorot normal); b = 0 */
} bp_init;

#define BP_MAX_LAYERS 16

typedef struct {
    int nlayers;                 /* linear layers: L */
    int sizes[BP_MAX_LAYERS + 1];/* sizes[0] = input, sizes[L] = classes */
    bp_act act;                  /* activation after every linear layer but the last */
    size_t nparams;              /* floats in params (and grads) */
    float *params;               /* one flat block: W0, b0, W1, b1, ... */
    float *grads;                /* same layout as params */
    float *W[BP_MAX_LAYERS];     /* W[l] is [sizes[l+1], sizes[l]], row-major, into params */
    float *b[BP_MAX_LAYERS];     /* b[l] is [sizes[l+1]] */
    float *dW[BP_MAX_LAYERS];    /* into grads */
    float *db[BP_MAX_LAYERS];
} bp_model;

/* sizes has nlayers+1 entries. */
int bp_model_create(bp_model **out, const int *sizes, int nlayers, bp_act act, bp_error *err);
void bp_model_init(bp_model *m, bp_init init, bp_rng *rng);
void bp_model_free(bp_model *m);

/* Scratch for one model and batches of at most max_batch samples; the step never allocates. */
typedef struct bp_work bp_work;
int bp_work_create(bp_work **out, const bp_model *m, int max_batch, bp_error *err);
void bp_work_free(bp_work *w);

/* Forward + backward on one batch X[B, sizes[0]] with labels[B]: writes the mean cross-entropy
 * gradient into m->grads (overwritten, not accumulated), the summed (not mean) loss into
 * *loss_sum and the number of correct arg-max predictions into *correct (either may be NULL).
 * dX, if not NULL, receives dL/dX [B, sizes[0]]. Returns BP_ERR_ARG for B outside
 * 1..max_batch, a label not below the class count, or an unknown impl. */
int bp_step_grad(bp_model *m, bp_work *w, bp_impl impl, const float *X, const uint8_t *labels,
                 int B, double *loss_sum, int *correct, float *dX);

/* Forward only: probabilities into probs[B, classes] (may be NULL); loss and correct as above
 * (labels may be NULL, then loss and correct are not computed). */
int bp_forward(const bp_model *m, bp_work *w, const float *X, const uint8_t *labels, int B,
               float *probs, double *loss_sum, int *correct);

/* Mean loss and accuracy of m over a whole dataset, in batches of the work's size. Returns
 * BP_ERR_ARG if the dataset's width is not the model's input width or a label is out of range. */
int bp_evaluate(const bp_model *m, bp_work *w, const bp_dataset *ds, double *loss,
                double *accuracy);

/* ---- optimizers: each a single loop over the flat parameter block ---- */
typedef enum { BP_OPT_SGD, BP_OPT_MOMENTUM, BP_OPT_NESTEROV, BP_OPT_ADAM } bp_opt_kind;
typedef enum { BP_SCHED_CONSTANT, BP_SCHED_STEP, BP_SCHED_COSINE } bp_sched_kind;

typedef struct {
    bp_opt_kind kind;
    float lr;
    float momentum;     /* momentum and nesterov: velocity decay μ */
    float weight_decay; /* SGD family: L2 (λ·p added to the gradient); Adam: decoupled (AdamW) */
    float beta1, beta2, eps;
    bp_sched_kind sched;
    int step_epochs;    /* step schedule: multiply lr by gamma every step_epochs epochs */
    float gamma;
    float min_lr;       /* cosine: the rate it decays to at the last step */
} bp_opt_config;

void bp_opt_config_default(bp_opt_config *c);

typedef struct bp_opt bp_opt;
int bp_opt_create(bp_opt **out, const bp_opt_config *cfg, size_t nparams, bp_error *err);
void bp_opt_free(bp_opt *o);
/* The scheduled learning rate at a given epoch (0-based) and step within the whole run. */
float bp_opt_lr(const bp_opt_config *cfg, int epoch, long step, long total_steps);
/* params -= update(grads) with learning rate lr; advances the optimizer's step counter. */
void bp_opt_step(bp_opt *o, float *params, const float *grads, float lr);

/* ---- training ---- */
typedef struct {
    int epoch;             /* 1-based */
    int epochs;
    double train_loss;     /* mean cross-entropy over the epoch's samples, as trained */
    double train_acc;      /* fraction correct during the epoch, as trained */
    double test_loss;
    double test_acc;       /* NAN when there is no test set */
    double seconds;        /* training loop only: no data loading, no evaluation */
    double samples_per_s;
    float lr;              /* learning rate at the epoch's last step */
} bp_epoch_stats;

typedef void (*bp_epoch_fn)(const bp_epoch_stats *s, void *user);
typedef void (*bp_progress_fn)(int epoch, uint32_t done, uint32_t total, void *user);

typedef struct {
    int epochs;
    int batch;
    uint64_t seed;
    int shuffle;           /* 0: samples in file order every epoch */
    bp_impl impl;
    bp_opt_config opt;
    bp_epoch_fn on_epoch;  /* may be NULL */
    bp_progress_fn on_progress; /* may be NULL; called after every batch */
    void *user;
} bp_train_config;

void bp_train_config_default(bp_train_config *c);

/* Trains m on train, evaluating on test (may be NULL) after every epoch. The last epoch's stats
 * go to *last (may be NULL); the best test accuracy to *best_test_acc (may be NULL). */
int bp_train(bp_model *m, const bp_dataset *train, const bp_dataset *test,
             const bp_train_config *cfg, bp_epoch_stats *last, double *best_test_acc,
             bp_error *err);

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
 * ±h evaluations differ in the sign of some hidden pre-activation are skipped (checked +
 * skipped = drawn); an entry with a non-finite analytic gradient is never skipped. res needs
 * 2·nlayers + 1 entries; *nres gets their number. Returns BP_ERR_ARG for B < 1 or h not > 0. */
int bp_gradcheck(bp_model *m, bp_impl impl, const float *X, const uint8_t *labels, int B,
                 double h, size_t per_tensor, uint64_t seed, bp_gradcheck_tensor *res, int *nres,
                 bp_error *err);

/* ---- BLAS backend ---- */
void bp_blas_set_threads(int n);
int bp_blas_threads(void);
const char *bp_blas_config(void);   /* OpenBLAS build configuration */
const char *bp_blas_corename(void); /* the kernel family OpenBLAS chose for this CPU */

#ifdef __cplusplus
}
#endif
#endif
