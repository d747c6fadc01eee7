/* Internal interfaces: the layer pairs (forward/backward), the BLAS wrapper and the scratch
 * layout. Shapes are row-major with one sample per row; capitals name dimensions:
 * B batch, I layer input width, O layer output width, C classes. */
#ifndef BP_INTERNAL_H
#define BP_INTERNAL_H

#include "backprop.h"

#include <stdarg.h>

/* status.c: write a one-line message into err (may be NULL) and return status. */
int bp_fail(bp_error *err, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The same for a bad setting: BP_ERR_ARG, err->field = field, msg "field: …". */
int bp_fail_field(bp_error *err, const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* gemm.c — the only place that includes cblas.h. Row-major
 * C[M,N] = alpha·op(A)·op(B) + beta·C, op(X) = Xᵀ when trans_X is non-zero, on at most
 * threads OpenBLAS threads (the policy in backprop.h). */
void gemm(int threads, int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *Bm, int ldb, float beta, float *C, int ldc);

/* gemm.c: put OpenBLAS at one thread (on != 0) before the pool's tasks call gemm(1, …);
 * on = 0 leaves it so (the next gemm with more threads raises it again). */
void gemm_hold_single(int on);

/* pool.c: fn(ctx, c, chunks) for every chunk c < chunks, on up to n threads of the library's
 * pool (the caller is one), then return. n ≤ 1, one chunk, or a pool busy with another
 * caller: the chunks run in turn on the caller. Chunks must write disjoint outputs. */
typedef void (*pool_fn)(void *ctx, int chunk, int chunks);
void pool_run(int n, int chunks, pool_fn fn, void *ctx);
/* Workers still spinning after the last pool_run go to sleep at once: called before OpenBLAS
 * runs a product on several threads of its own, so the two never compete for the cores. */
void pool_park(void);
/* Share t of n of [0, total): [*lo, *hi), equal parts rounded up to multiples of align. */
void pool_range(int total, int align, int t, int n, int *lo, int *hi);

/* dataset.c: bp_dataset_gather with the rows split between threads the way linear_forward
 * splits them, so each thread's rows are still in its core's cache for its share of the
 * first layer. */
void dataset_gather_threads(int threads, const bp_dataset *ds, const uint32_t *idx,
                            uint32_t first, int B, float *X, uint8_t *labels_out);

/* dataset.c: ask for the rows idx[0..B) to be brought towards the caches (prefetch only;
 * they are read later by a gather). */
void dataset_prefetch(const bp_dataset *ds, const uint32_t *idx, int B);

/* linear.c */
void linear_forward(int threads, float *V, const float *X, const float *W, const float *b, int B,
                    int I, int O);
void linear_backward(int threads, float *dX, float *dW, float *db, const float *dV,
                     const float *X, const float *W, int B, int I, int O);

/* activation.c: A = act(Z) elementwise (A may alias Z); dZ = dA ⊙ act'(Z), where act' is
 * written through the output A (dZ may alias dA). */
void act_forward(float *A, const float *Z, size_t n, bp_act act);
void act_backward(float *dZ, const float *dA, const float *A, size_t n, bp_act act);
/* One sample's derivative act'(z) expressed through a = act(z). */
float act_derivative(float a, bp_act act);
float act_apply(float z, bp_act act);

/* softmax_xent.c */
void softmax_xent_forward(float *Y, const float *V, const uint8_t *labels, int B, int C,
                          double *loss_sum, int *correct);
void softmax_xent_backward(float *dV, const float *Y, const uint8_t *labels, int B, int C);
void xent_backward_dy(float *dY, const float *Y, const uint8_t *labels, int B, int C);
void softmax_jacobian(float *J, const float *y, int C);
void softmax_backward_jacobian(float *dV, const float *dY, const float *Y, float *J, int B, int C);

/* The scratch of one model at one maximum batch size. */
struct bp_work {
    int max_batch;
    int threads;                /* OpenBLAS threads for this work's GEMMs */
    int max_width;              /* largest of sizes[1..L] */
    float *H[BP_MAX_LAYERS];    /* H[l], l = 1..L-1: hidden activations [B, sizes[l]] */
    float *V;                   /* logits [B, C] */
    float *Y;                   /* probabilities [B, C] */
    float *D[2];                /* ping-pong gradient buffers [B, max_width] */
    float *J;                   /* one sample's softmax Jacobian [C, C] */
    float *na, *nd;             /* naive: per-sample activations (all layers) and two gradients */
    void *mem;
};

/* optim.c's state; the trainer and the model file read and restore it. */
struct bp_opt {
    bp_opt_config cfg;
    size_t n;
    long t;   /* steps taken (Adam's bias correction) */
    float *m; /* velocity (momentum, nesterov) or first moment (adam); NULL for sgd */
    float *s; /* second moment (adam); NULL otherwise */
};

/* The training state between two steps (at an epoch's end, or inside an interrupted epoch),
 * as a checkpoint stores it. */
struct bp_checkpoint {
    bp_model_info info;  /* epoch, step, best_test_acc, train settings */
    bp_rng rng;          /* the shuffling stream after the last epoch's shuffle */
    long opt_t;
    size_t nparams;
    float *opt_m, *opt_s; /* NULL where the optimizer has none */
    uint32_t *perm;       /* the permutation after the last epoch, nperm entries; NULL if the
                           * run does not shuffle */
    uint32_t nperm;
    uint32_t samples;     /* the training set's size: a resumed run must have the same */
    uint32_t epoch_pos;   /* samples of epoch info.epoch + 1 trained (an interrupted epoch) */
    double epoch_loss;    /* their summed loss and correct count */
    long epoch_hits;
};

/* modelfile.c: writes m with info and, if ck is not NULL, the training state (borrowed). */
int modelfile_write(const char *path, const bp_model *m, const bp_model_info *info,
                    const bp_checkpoint *ck, bp_error *err);

/* optim.c: bp_opt_step with the update split between up to threads threads (the same
 * numbers for any count). */
void opt_step_threads(bp_opt *o, float *p, const float *g, float lr, int threads);

/* model.c: the batched forward through every layer; leaves logits in w->V. */
void model_forward(const bp_model *m, bp_work *w, const float *X, int B);

/* step.c: a batch the work can hold, with labels (if any) below the class count; else
 * BP_ERR_ARG with a message. */
int batch_check(const bp_model *m, const bp_work *w, const uint8_t *labels, int B,
                bp_error *err);

/* naive.c: the seminar's per-sample loops, same contract as bp_grad (arguments checked). */
void naive_step(bp_model *m, bp_work *w, const float *X, const uint8_t *labels, int B,
                double *loss_sum, int *correct, float *dX);

#endif
