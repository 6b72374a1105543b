/* Quantized checkpoints and done/ block files (io/checkpoint.c, io/block_file.c,
 * io/checkpoint_model.c) on arbitrary bytes: checkpoint_open, every block and the head of
 * an accepted checkpoint, the checkpoint model backend, and block_file_load against a
 * fixed tiny model (the one the seeds in fuzz/corpus/checkpoint were written for). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block_file.h"
#include "checkpoint.h"
#include "fuzz_common.h"
#include "model_file.h"

/* dim 8, hidden 16, 2 layers, 2 heads (1 kv head), vocab 12. */
static const ModelConfig ckpt_model = {8, 16, 2, 2, 1, 12, 16, 10000.0f, 1e-5f, ROPE_INTERLEAVED, 1};

static void ckpt_read_all(CheckpointReader *r) {
    CheckpointInfo const *info = checkpoint_info(r);
    ModelConfig const *c = &info->config;
    size_t const d = (size_t)c->dim, V = (size_t)c->vocab_size;
    if (d * V > (1u << 22) || c->n_layers > 4096) return; /* valid but too big to read here */
    for (int l = 0; l < c->n_layers; l++) {
        if (!checkpoint_has_block(r, l)) continue;
        BlockResult b;
        float *norms = calloc(2 * d, sizeof *norms);
        FUZZ_CHECK(norms != NULL);
        if (checkpoint_read_block(r, l, &b, norms, norms + d) == NQ_OK) block_result_free(&b);
        free(norms);
        nq_clear_error();
    }
    float *head = calloc(2 * V * d + d, sizeof *head);
    FUZZ_CHECK(head != NULL);
    (void)checkpoint_read_head(r, head, head + 2 * V * d, head + V * d);
    free(head);
}

static void ckpt_as_model(const char *path) {
    Model *m = NULL;
    if (model_open(path, "checkpoint", &m) == NQ_OK) {
        ModelConfig const *c = model_config(m);
        BlockWeights w;
        if ((size_t)c->dim * (size_t)c->vocab_size <= (1u << 22) && model_block(m, 0, &w) == NQ_OK) {
            fuzz_sink = w.mat[MAT_W2][(size_t)c->dim * (size_t)c->hidden_dim - 1];
            model_release_block(m, 0);
        }
    }
    model_close(m);
    nq_clear_error();
}

int fuzz_checkpoint(const uint8_t *data, size_t size) {
    char path[128];
    if (fuzz_write_temp(data, size, ".h5", path, sizeof path) != 0) return 0;
    CheckpointReader *r = NULL;
    if (checkpoint_open(path, &r) == NQ_OK) ckpt_read_all(r);
    checkpoint_close(r);
    nq_clear_error();
    ckpt_as_model(path);
    BlockResult b;
    if (block_file_load(path, &ckpt_model, &b) == NQ_OK) {
        FUZZ_CHECK(b.block >= 0);
        block_result_free(&b);
    }
    unlink(path);
    nq_clear_error();
    return 0;
}

/* Valid seeds for fuzz/make_seeds.c: a checkpoint of ckpt_model (block 1 missing when
 * partial) and a done file of block 1. */
int fuzz_checkpoint_seeds(const char *ckpt_path, const char *block_path, int partial);
int fuzz_checkpoint_seeds(const char *ckpt_path, const char *block_path, int partial) {
    ModelConfig const *c = &ckpt_model;
    size_t const d = (size_t)c->dim, V = (size_t)c->vocab_size;
    float *weights = calloc(V * d + 3 * d, sizeof *weights);
    if (!weights) return -1;
    for (size_t i = 0; i < V * d + 3 * d; i++) weights[i] = (float)((int)(i % 7) - 3) * 0.25f;
    HeadWeights const head = {weights, weights + V * d, weights};
    QuantSpec const spec = {.bits = 3, .group_size = 4, .per_row = partial};
    CheckpointMeta const meta = {"nupes", spec, "0123456789abcdef0123456789abcdef",
                                 "[quantization]\nbits = 3\n", partial ? "partial" : NULL,
                                 "OpenBLAS fuzz", "", 1, partial ? 1u << MAT_WV : 0};
    CheckpointWriter *w = NULL;
    int rc = checkpoint_create(ckpt_path, &meta, c, &head, 3, &w) == NQ_OK ? 0 : -1;
    for (int l = 0; l < c->n_layers - partial && rc == 0; l++) {
        BlockResult b;
        if (block_result_alloc(&b, c, spec, l, partial ? 1u << MAT_WV : 0) != NQ_OK) { rc = -1; break; }
        for (int i = 0; i < N_MATS; i++) {
            QuantMatrix *q = &b.mat[i];
            QuantShape const sh = quant_shape(spec, mat_rows(c, i), mat_cols(c, i));
            size_t const n = (size_t)sh.rows * (size_t)sh.cols;
            /* the arrays the quantizer describes: codes, then scales 0.1 and exponents 1.5 */
            for (int a = 0; q->quantized && a < q->n_arrays; a++)
                for (size_t k = 0; k < qarray_count(&q->desc[a]); k++)
                    qarray_set_float(&q->desc[a], q->array[a], k,
                                     a == 0 ? (float)((int)(k % 7) - 3) : a == 1 ? 0.1f : 1.5f);
            for (size_t k = 0; !q->quantized && k < n; k++) q->weight[k] = 0.5f;
        }
        b.loss_init = 1.0f;
        b.loss_final = 0.5f;
        if (checkpoint_write_block(w, &b, weights + V * d, weights + V * d + d) != NQ_OK) rc = -1;
        if (rc == 0 && l == 1 && block_file_save(block_path, &b, 3) != NQ_OK) rc = -1;
        block_result_free(&b);
    }
    if (rc == 0) rc = checkpoint_commit(w) == NQ_OK ? 0 : -1;
    else checkpoint_abort(w);
    free(weights);
    return rc;
}

FUZZ_ENTRY(fuzz_checkpoint)
