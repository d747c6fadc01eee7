/* The model-file reader (bp_model_load) on the input as a safetensors file, and the writer
 * on whatever it accepts.
 *
 * The file's CRC-32 guards the tensor data, so almost every mutation of a weight is refused at
 * the CRC and the checks behind it (finite weights, the checkpoint's permutation) would never
 * be reached. So each input is tried twice: as it is, and, if its header has a "crc32" value of
 * 8 characters, with that value replaced by the data's real CRC-32.
 *
 * Properties of an accepted file:
 *  - 1..BP_MAX_LAYERS layers of 1..BP_MAX_WIDTH units, nparams the sum of the layer sizes,
 *    every weight and bias finite; *ck is set exactly for a checkpoint (info.is_checkpoint),
 *    and its optimizer state is finite and its permutation one;
 *  - loading with info and ck NULL gives the same model;
 *  - save∘load is idempotent: saving the model (with its info, and for a checkpoint its
 *    training state) gives a file that loads, to the same parameters, counters and state, and
 *    saving that again gives the same bytes;
 *  - a forward pass on one zero image gives probabilities in [0, 1] summing to 1 (when they
 *    are finite: finite but huge weights may overflow a logit).
 * A refused file: a bp_status, NULL model and checkpoint, a one-line message naming the file. */
#include "fuzz.h"
#include "internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static char in_path[4096], out1[4096], out2[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_path(in_path, sizeof in_path, "input.safetensors");
    fuzz_path(out1, sizeof out1, "saved1.safetensors");
    fuzz_path(out2, sizeof out2, "saved2.safetensors");
    return 0;
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

static void same_model(const char *how, const bp_model *a, const bp_model *b)
{
    FUZZ_REQUIRE(a->nlayers == b->nlayers &&
                     memcmp(a->sizes, b->sizes, sizeof(int) * (size_t)(a->nlayers + 1)) == 0,
                 "%s: the architecture changed", how);
    FUZZ_REQUIRE(a->nlayers == 1 || a->act == b->act, "%s: the activation changed", how);
    FUZZ_REQUIRE(a->nparams == b->nparams &&
                     memcmp(a->params, b->params, a->nparams * sizeof(float)) == 0,
                 "%s: the parameters changed", how);
    FUZZ_REQUIRE(a->input_rows == b->input_rows && a->input_cols == b->input_cols &&
                     a->init == b->init && a->init_seed == b->init_seed,
                 "%s: the input shape or the initialisation record changed", how);
}

static void same_checkpoint(const bp_checkpoint *a, const bp_checkpoint *b)
{
    FUZZ_REQUIRE(memcmp(&a->rng, &b->rng, sizeof a->rng) == 0 && a->opt_t == b->opt_t &&
                     a->nparams == b->nparams && a->nperm == b->nperm,
                 "checkpoint: RNG, step or sizes changed");
    FUZZ_REQUIRE(!a->opt_m == !b->opt_m && !a->opt_s == !b->opt_s && !a->perm == !b->perm,
                 "checkpoint: the tensors present changed");
    size_t bytes = a->nparams * sizeof(float);
    FUZZ_REQUIRE((!a->opt_m || memcmp(a->opt_m, b->opt_m, bytes) == 0) &&
                     (!a->opt_s || memcmp(a->opt_s, b->opt_s, bytes) == 0) &&
                     (!a->perm || memcmp(a->perm, b->perm, a->nperm * sizeof(uint32_t)) == 0),
                 "checkpoint: the optimizer state or the permutation changed");
}

static void check_loaded(const bp_model *m, const bp_model_info *info, const bp_checkpoint *ck)
{
    FUZZ_REQUIRE(m->nlayers >= 1 && m->nlayers <= BP_MAX_LAYERS, "%d layers", m->nlayers);
    size_t n = 0;
    for (int l = 0; l <= m->nlayers; l++) {
        FUZZ_REQUIRE(m->sizes[l] >= 1 && m->sizes[l] <= BP_MAX_WIDTH, "sizes[%d] = %d", l,
                     m->sizes[l]);
        if (l < m->nlayers)
            n += (size_t)m->sizes[l + 1] * (size_t)m->sizes[l] + (size_t)m->sizes[l + 1];
    }
    FUZZ_REQUIRE(n == m->nparams, "nparams %zu, the sizes give %zu", m->nparams, n);
    FUZZ_REQUIRE(all_finite(m->params, m->nparams), "a loaded weight is not finite");
    FUZZ_REQUIRE(!info->is_checkpoint == !ck, "is_checkpoint %d, checkpoint %p",
                 info->is_checkpoint, (const void *)ck);
    if (!ck)
        return;
    FUZZ_REQUIRE(ck->nparams == m->nparams, "checkpoint of %zu parameters for %zu",
                 ck->nparams, m->nparams);
    FUZZ_REQUIRE((!ck->opt_m || all_finite(ck->opt_m, ck->nparams)) &&
                     (!ck->opt_s || all_finite(ck->opt_s, ck->nparams)),
                 "the loaded optimizer state is not finite");
    if (ck->perm) {
        uint8_t *seen = calloc(ck->nperm, 1);
        if (!seen)
            abort();
        for (uint32_t i = 0; i < ck->nperm; i++) {
            FUZZ_REQUIRE(ck->perm[i] < ck->nperm && !seen[ck->perm[i]],
                         "trainer.perm is not a permutation at %u", i);
            seen[ck->perm[i]] = 1;
        }
        free(seen);
    }
}

static void forward_once(const bp_model *m)
{
    bp_work *w = NULL;
    bp_error err;
    int C = m->sizes[m->nlayers];
    FUZZ_REQUIRE(bp_work_create(&w, m, 1, 1, &err) == BP_OK, "bp_work_create: %s", err.msg);
    float *X = calloc((size_t)m->sizes[0], sizeof *X), *p = malloc((size_t)C * sizeof *p);
    if (!X || !p)
        abort();
    FUZZ_REQUIRE(bp_forward(m, w, X, NULL, 1, p, NULL, NULL, &err) == BP_OK, "bp_forward: %s",
                 err.msg);
    if (all_finite(p, (size_t)C)) {
        double sum = 0;
        for (int k = 0; k < C; k++) {
            FUZZ_REQUIRE(p[k] >= 0 && p[k] <= 1, "probability %d is %g", k, p[k]);
            sum += p[k];
        }
        FUZZ_REQUIRE(fabs(sum - 1) < 1e-4, "the probabilities sum to %.9g", sum);
    }
    free(X), free(p);
    bp_work_free(w);
}

/* Writes m (with ck, if any) to path, and requires success. */
static void save(const char *path, const bp_model *m, const bp_model_info *info,
                 const bp_checkpoint *ck)
{
    bp_error err;
    int st = ck ? modelfile_write(path, m, info, ck, &err) : bp_model_save(path, m, info, &err);
    FUZZ_REQUIRE(st == BP_OK, "saving a loaded model: %s", err.msg);
}

static void try_file(const uint8_t *data, size_t size)
{
    fuzz_write(in_path, data, size);
    static bp_model poison_m; /* the loader must overwrite both pointers, also on failure */
    static bp_checkpoint poison_ck;
    bp_model *m = &poison_m;
    bp_checkpoint *ck = &poison_ck;
    bp_model_info info;
    bp_error err;
    fuzz_err_reset(&err);
    int st = bp_model_load(in_path, &m, &info, &ck, &err);
    if (st) {
        fuzz_check_failure("bp_model_load", st, &err, in_path);
        FUZZ_REQUIRE(!m && !ck, "a refused file left a model or a checkpoint");
        return;
    }
    check_loaded(m, &info, ck);

    bp_model *bare = NULL;
    FUZZ_REQUIRE(bp_model_load(in_path, &bare, NULL, NULL, &err) == BP_OK,
                 "accepted with info and checkpoint, refused without: %s", err.msg);
    same_model("loading without info", m, bare);
    bp_model_free(bare);

    save(out1, m, &info, ck);
    bp_model *m2 = NULL;
    bp_checkpoint *ck2 = NULL;
    bp_model_info info2;
    st = bp_model_load(out1, &m2, &info2, &ck2, &err);
    FUZZ_REQUIRE(st == BP_OK, "a saved model does not load: %s", err.msg);
    same_model("save and load", m, m2);
    FUZZ_REQUIRE(info2.epoch == info.epoch && info2.step == info.step &&
                     info2.has_train == info.has_train &&
                     info2.is_checkpoint == info.is_checkpoint &&
                     (info2.best_test_acc == info.best_test_acc ||
                      (isnan(info2.best_test_acc) && isnan(info.best_test_acc))),
                 "save and load: the counters changed");
    if (ck)
        same_checkpoint(ck, ck2);
    save(out2, m2, &info2, ck2);
    size_t n1, n2;
    uint8_t *b1 = fuzz_read(out1, &n1), *b2 = fuzz_read(out2, &n2);
    FUZZ_REQUIRE(b1 && b2 && n1 == n2 && memcmp(b1, b2, n1) == 0,
                 "save(load(save(load(f)))) differs from save(load(f)): %zu and %zu bytes", n1,
                 n2);
    free(b1), free(b2);
    forward_once(m);
    bp_checkpoint_free(ck2);
    bp_model_free(m2);
    bp_checkpoint_free(ck);
    bp_model_free(m);
}

/* The input with its header's "crc32" value set to the CRC-32 of its data section, or NULL
 * if it has no header of that form or the value is already right. */
static uint8_t *with_crc(const uint8_t *data, size_t size)
{
    if (size < 8)
        return NULL;
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--)
        hlen = hlen << 8 | data[k];
    if (hlen > size - 8)
        return NULL;
    static const char key[] = "\"crc32\":\"";
    const uint8_t *head = data + 8, *at = NULL;
    for (size_t i = 0; i + sizeof key - 1 + 8 < hlen && !at; i++)
        if (memcmp(head + i, key, sizeof key - 1) == 0)
            at = head + i + sizeof key - 1;
    if (!at)
        return NULL;
    unsigned long crc = crc32_z(crc32_z(0L, Z_NULL, 0), data + 8 + hlen, size - 8 - hlen);
    char hex[9];
    snprintf(hex, sizeof hex, "%08lx", crc);
    if (memcmp(at, hex, 8) == 0)
        return NULL;
    uint8_t *fixed = malloc(size);
    if (!fixed)
        abort();
    memcpy(fixed, data, size);
    memcpy(fixed + (at - data), hex, 8);
    return fixed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try_file(data, size);
    uint8_t *fixed = with_crc(data, size);
    if (fixed) {
        try_file(fixed, size);
        free(fixed);
    }
    return 0;
}
