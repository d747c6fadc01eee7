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

/* gemm.c: the two products of a layer's step, on one thread, through the kernel set's own
 * unpacked GEMMs where it has them (kernels.h), else OpenBLAS:
 *   gemm_nt1  C[R, U] = (bias ? 1·biasᵀ : C) + A[R, K]·W[U, K]ᵀ, then ReLU if relu (a forward)
 *   gemm_tn1  D[U, K] = (add ? D : 0) + G[B, U]ᵀ·X[B, K]   (a weight gradient, or W += it) */
void gemm_nt1(float *C, int ldc, const float *A, int lda, const float *W, int ldw, int R, int U,
              int K, const float *bias, int relu);
void gemm_tn1(float *D, int ldd, const float *G, int ldg, const float *X, int ldx, int B, int U,
              int K, int add);

/* gemm.c: put OpenBLAS at one thread before the pool's tasks call gemm(1, …); it stays so
 * until a gemm with more threads raises it again. */
void gemm_hold_single(void);

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

/* optim.c: an optimizer step in progress (opt_begin below). */
typedef struct {
    bp_opt *o;
    float *p;
    const float *g;
    float lr, c1, c2;
} opt_fuse;

/* linear.c */
void linear_forward(int threads, float *V, const float *X, const float *W, const float *b, int B,
                    int I, int O);
/* The parts of linear_backward, for a caller that splits the batch itself: dX = dV·W on
 * threads, and share t of n of the weight gradients (and of the fused update). */
void linear_input_grad(int threads, float *dX, const float *dV, const float *W, int B, int I,
                       int O);
void linear_weight_share(float *dW, float *db, float *dV, const float *X, const float *W,
                         int B, int I, int O, const opt_fuse *fuse, int t, int n);
/* Output units [lo, hi) of the weight gradient of a layer of more than KERNEL_MAX_O outputs
 * (and of the fused update), on the calling thread. */
void linear_weight_units(float *dW, float *db, float *dV, const float *X, const float *W,
                         int B, int I, int O, const opt_fuse *fuse, int lo, int hi);
/* Input columns [lo, hi) of the weight gradient for every output unit (and of the fused
 * update); with bias, db and its update too. On the calling thread. */
void linear_weight_cols(float *dW, float *db, float *dV, const float *X, const float *W, int B,
                        int I, int O, const opt_fuse *fuse, int lo, int hi, int bias);
/* fuse: NULL, or the step in progress (optim.c): W and b are then also updated, after dX has
 * been computed from the old W. With plain SGD (opt_fuse_sgd) and more than KERNEL_MAX_O
 * outputs dW is not written, and dV is left scaled by −η. */
void linear_backward(int threads, float *dX, float *dW, float *db, float *dV,
                     const float *X, const float *W, int B, int I, int O, const opt_fuse *fuse);

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
/* The same for B rows of a batch whose mean is taken over 1/scale samples. */
void softmax_xent_backward_rows(float *dV, const float *Y, const uint8_t *labels, int B, int C,
                                float scale);
void xent_backward_dy(float *dY, const float *Y, const uint8_t *labels, int B, int C);
void softmax_jacobian(float *J, const float *y, int C);
void softmax_backward_jacobian(float *dV, const float *dY, const float *Y, float *J, int B, int C);

/* conv.c: conv2d over NCHW batches by im2col + GEMMs, split by samples on the pool.
 * The geometry of one conv2d layer: */
typedef struct {
    int C, H, W;      /* input channels and size */
    int O, OH, OW;    /* output channels and size */
    int kh, kw, stride, ph, pw; /* kernel, stride, zero padding on each side */
} conv_shape;
void conv_shape_of(conv_shape *s, const bp_layer *ly);
/* col[k·ld + p] for k = (c, i, j) of the kernel and p = (oy, ox) of the output: the input
 * pixel under kernel tap (i, j) when the kernel sits at output pixel (oy, ox), 0 in the padding. */
void im2col(const float *x, const conv_shape *s, float *col, size_t ld);
/* The adjoint: dx (zeroed by the caller) += each col entry at the pixel it was read from. */
void col2im(const float *col, const conv_shape *s, float *dx, size_t ld);
/* A batch of B samples is cut into conv_chunks(B) ranges of consecutive samples (about
 * CONV_BLOCK each, at most CONV_SLOTS ranges), the same for every thread count: the order in
 * which dW and db are summed follows them. Each range has a slot of scratch,
 * conv_slot_floats(s) floats: one sample's columns (K × P, K = C·kh·kw, P = OH·OW) and a
 * partial dW and db. */
#define CONV_BLOCK 4
#define CONV_SLOTS 32
int conv_chunks(int B);
size_t conv_slot_floats(const conv_shape *s);
/* The floats to keep a layer's columns from the forward to the backward pass (K × P per
 * sample), or 0 when a batch of max_batch would need more than CONV_KEEP_FLOATS: then the
 * backward pass forms them again. */
#define CONV_KEEP_FLOATS ((size_t)1 << 22)
size_t conv_keep_floats(const conv_shape *s, int max_batch);
/* keep: NULL, or room for the batch's columns (conv_keep_floats), which forward fills and
 * backward reads; scratch: conv_chunks(B) slots. dX may be NULL (not wanted).
 * act: CONV_NO_ACT, or a bp_act applied to Y in place after the product (the activation layer
 * that follows, fused); backward then first turns dY in place into dY ⊙ act'(A), A the
 * forward's (activated) Y. */
#define CONV_NO_ACT (-1)
void conv_forward(int threads, float *Y, const float *X, const float *W, const float *b, int B,
                  const conv_shape *s, float *keep, float *scratch, int act);
void conv_backward(int threads, float *dX, float *dW, float *db, float *dY, const float *X,
                   const float *W, int B, const conv_shape *s, float *keep, float *scratch,
                   const float *A, int act);

/* pooling.c: k×k windows with stride k over [B, C, H, W] → [B, C, H/k, W/k] (floor). Max pooling
 * records in arg the input index (within the sample) each output came from; backward routes
 * dY there. Average pooling spreads dY/k² over the window. dX is overwritten. */
void maxpool_forward(float *Y, int32_t *arg, const float *X, int B, int C, int H, int W, int k);
void maxpool_backward(float *dX, const float *dY, const int32_t *arg, int B, int C, int H,
                      int W, int k);
void avgpool_forward(float *Y, const float *X, int B, int C, int H, int W, int k);
void avgpool_backward(float *dX, const float *dY, int B, int C, int H, int W, int k);

/* dropout.c: mask[i] = 0 with probability p, else 1/(1 − p), from rng; Y = X ⊙ mask. */
void dropout_mask(float *mask, size_t n, float p, bp_rng *rng);
void dropout_apply(float *Y, const float *X, const float *mask, size_t n);
/* The stream of the masks of bp_grad's call at step of a run with seed. */
void dropout_stream(bp_rng *rng, uint64_t seed, long step);

/* layers.c: what a layer list needs from each kind: names and shapes. */
size_t layer_out_size(const bp_layer *ly); /* out_c·out_h·out_w */
size_t layer_in_size(const bp_layer *ly);
size_t layer_weights(const bp_layer *ly);  /* floats of W (0 without parameters) */
/* Infers the shapes of list[0..n-1] from (c, h, w), checking each layer; BP_ERR_ARG naming the
 * layer otherwise. */
int layers_infer(bp_layer *list, int n, int c, int h, int w, bp_error *err);
const char *layer_kind_name(bp_layer_kind k); /* "linear", "conv2d", "maxpool2d", … */

/* hidden.c: at most this many threads split a one-hidden-layer MLP's step (each keeps its
 * own copy of the batch). */
#define HIDDEN_MAX_THREADS 8
/* ... and copies its batch for itself up to this size: a bigger copy would not stay in a core's
 * cache anyway (Zen 4, 1 MB of L2, 2 threads, 3 alternated runs: batch 2048 trained at
 * 178–191 k samples/s with a 6 MB copy per thread, 186–210 k with one shared; batch 512 the
 * same either way). A work whose max_batch exceeds it makes no copies. */
#define HIDDEN_PRIVATE_FLOATS ((size_t)1 << 17)

/* The scratch of one model at one maximum batch size. */
struct bp_work {
    int max_batch;
    int threads;                /* OpenBLAS threads for this work's GEMMs */
    int max_width;              /* the widest layer output (and input) of the list */
    float *H[BP_MAX_LIST];      /* H[i]: layer i's output [B, out size]; in-place activations
                                 * and flatten share their input's buffer; H[nlist−1] = V */
    float *mask[BP_MAX_LIST];   /* dropout layers: the masks of the last bp_grad */
    int32_t *arg[BP_MAX_LIST];  /* max pools: the arg-max of each output */
    float *cslots;              /* conv2d: conv_chunks(max_batch) slots of the widest layer */
    float *ccol[BP_MAX_LIST];   /* conv2d whose batch's columns are kept from forward to
                                 * backward (conv_keep_floats); else NULL, formed again */
    float *V;                   /* logits [B, C] */
    float *Y;                   /* probabilities [B, C] */
    float *D[2];                /* ping-pong gradient buffers [B, max_width] */
    float *J;                   /* one sample's softmax Jacobian [C, C] */
    float *na, *nd;             /* naive: per-sample activations (all layers) and two gradients */
    size_t na_floats;           /* naive: floats at na (one sample's outputs of every layer) */
    int32_t *narg;              /* naive: one sample's pooling arg-max, every max pool */
    int rows;                   /* rows_model: bp_grad runs by rows (step.c) */
    int hidden;                 /* hidden_model: bp_grad runs by hidden units (hidden.c) */
    float *XP[HIDDEN_MAX_THREADS]; /* hidden: each thread's own copy of a gathered batch */
    int nxp, xprivate;          /* copies made (for the threads at creation); 1 while the
                                 * last batch was gathered so */
    float *GX[BP_MAX_LIST];     /* rows: linear layers but the first, dL/d(their input) */
    double *rloss;              /* rows: each sample's loss of the last batch */
    unsigned char *rhit;        /* rows: 1 where its top class was the label */
    uint64_t drop_seed;         /* dropout: the run's seed and the step of the next bp_grad */
    long drop_step;
    int has_dropout;
    void *mem;
    void *imem;
};

/* step.c / naive.c: the work's buffers. */
int layer_in_place(const bp_model *m, int i); /* layer i writes into its input's buffer */
/* step.c: 1 when every layer is linear, an activation or flatten: each sample's forward pass
 * and input gradients then depend on that sample alone, and bp_grad runs them for a share of
 * the batch's rows per thread in one go, the weight gradients after. */
int rows_model(const bp_model *m);
/* step.c, for the paths by rows: samples [lo, hi) of a batch of B whose logits are in w->V:
 * softmax into w->Y, each one's loss and hit (w->rloss, w->rhit), dV = (Y − T)/B into w->D[0];
 * then, once every row is done, their sums in row order (the same for any split). */
void loss_rows(bp_work *w, const uint8_t *labels, int lo, int hi, int B, int C);
void loss_sum_rows(const bp_work *w, int B, double *loss_sum, int *correct);

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

/* optim.c: one step of o taken in pieces, so that each layer's parameters can be updated by
 * the thread that has just computed their gradient, while it is still in that core's cache.
 * opt_begin counts the step (Adam's bias corrections) for the flat blocks p and g; then
 * opt_apply updates p[i0, i1) from g[i0, i1); every parameter exactly once per step. The step
 * in progress is an opt_fuse (above). */
void opt_begin(bp_opt *o, float *p, const float *g, float lr, opt_fuse *f);
void opt_apply(const opt_fuse *f, size_t i0, size_t i1);
void opt_apply_threads(const opt_fuse *f, size_t i0, size_t i1, int threads);
/* 1 for plain SGD without weight decay, p ← p + (−η·g): a product can then add −η times the
 * gradient straight into the parameters; other kinds need the gradient itself (0). */
int opt_fuse_sgd(const opt_fuse *f);

/* step.c: the batched forward through every layer; leaves logits in w->V. train: dropout
 * draws its masks (bp_grad), else it is the identity (bp_forward). */
void model_forward(const bp_model *m, bp_work *w, const float *X, int B);
void model_forward_mode(const bp_model *m, bp_work *w, const float *X, int B, int train);

/* step.c: a batch the work can hold, with labels (if any) below the class count; else
 * BP_ERR_ARG with a message. */
int batch_check(const bp_model *m, const bp_work *w, const uint8_t *labels, int B,
                bp_error *err);

/* hidden.c: the step of linear, activation, linear (the first of more than KERNEL_MAX_O
 * units) split by hidden units. forward (src: see grad_forward) also leaves dV = (Y − T)/B in
 * D[0]; backward with fuse updates every parameter. */
int hidden_model(const bp_model *m);
int hidden_threads(const bp_work *w);
typedef struct batch_src batch_src;
void hidden_forward(bp_model *m, bp_work *w, const float *X, const uint8_t *labels, int B,
                    const batch_src *src, double *loss_sum, int *correct);
void hidden_backward(bp_model *m, bp_work *w, const float *X, int B, float *dX,
                     const opt_fuse *fuse);

/* step.c: bp_grad in two halves, so a trainer can look at the loss before the step:
 * grad_forward checks the arguments and runs the forward pass and the loss (the naive
 * implementation also its backward pass); grad_backward the rest, and with fuse (NULL: none)
 * the optimizer's update of every parameter as well. dX as in bp_grad. */
struct batch_src {
    const bp_dataset *ds; /* the batch is rows idx[0..B) of ds (idx NULL: first, first + 1, …) */
    const uint32_t *idx;
    uint32_t first;
    float *X;             /* to be gathered here: grad_forward's X and labels */
    uint8_t *labels;
};
/* src: NULL, or where X and labels come from (their labels checked by the caller): each
 * thread then gathers the rows it works on. */
int grad_forward(bp_model *m, bp_work *w, bp_impl impl, const float *X,
                 const uint8_t *labels, int B, double *loss_sum, int *correct, float *dX,
                 const batch_src *src, bp_error *err);
void grad_backward(bp_model *m, bp_work *w, bp_impl impl, const float *X,
                   const uint8_t *labels, int B, float *dX, const opt_fuse *fuse);

/* naive.c: the seminar's per-sample loops, same contract as bp_grad (arguments checked). */
void naive_step(bp_model *m, bp_work *w, const float *X, const uint8_t *labels, int B,
                double *loss_sum, int *correct, float *dX);

#endif
