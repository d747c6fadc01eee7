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
    uint64_t shape[2];
    const void *data;   /* writer: where the bytes come from */
} mf_tensor;

/* "0.weight", "0.bias", "2.weight", …: the names nn.Sequential gives Linear layers that
 * alternate with activation modules. */
void tensor_name(char *buf, size_t len, int layer, int is_bias);
size_t tensor_bytes(const mf_tensor *t);

#endif
