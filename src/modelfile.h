/* What the model-file writer (modelfile.c) and reader (modelload.c) share: the tensor list and
 * its naming. */
#ifndef BP_MODELFILE_H
#define BP_MODELFILE_H

#include "internal.h"

/* weights and biases of every layer, plus a checkpoint's optimizer.m, optimizer.s, trainer.perm */
#define MF_MAX_TENSORS (2 * BP_MAX_LAYERS + 3)

typedef struct {
    char name[32];
    int u32;            /* dtype U32 (trainer.perm), else F32 */
    int ndim;
    uint64_t shape[4];
    const void *data;   /* writer: where the bytes come from */
} mf_tensor;

/* "0.weight", "0.bias", "2.weight", …: nn.Sequential numbers every module of the list, those
 * without parameters too, so the name is the layer's index in the list. */
void tensor_name(char *buf, size_t len, int index, int is_bias);
/* The shape of a parameter layer's weight ([O, I] or [O, C, kh, kw]) or bias ([O]). */
void tensor_shape(mf_tensor *t, const bp_layer *ly, int is_bias);
/* The "activation" metadata: the one activation of the list, "none" without any (a softmax
 * regression), "mixed" when they differ. */
const char *model_act_desc(const bp_model *m);
size_t tensor_bytes(const mf_tensor *t);

#endif
