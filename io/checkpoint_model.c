/* The nupes-mpi checkpoint as a model backend: model_open(ckpt) gives fp32 weights.
 * The head (embeddings, final norm, classifier) is read once, on first use; block l is
 * read and dequantized (its quantizer's decode, src/quantizer.h) into its own buffer when
 * asked for, and freed by release_block. Only complete checkpoints are models. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "checkpoint.h"
#include "model_internal.h"

typedef struct {
    CheckpointReader *reader;
    float *head;      /* tok_embeddings [V][d], norm_final [d], output [V][d] (untied) */
    float **blocks;   /* [L]: NULL, or attn_norm [d], ffn_norm [d], then the seven mats */
} CheckpointBackend;

static size_t block_floats_(const ModelConfig *c) { return 2 * (size_t)c->dim + block_matrix_weights(c); }

/* Carves the views of BlockWeights out of one block buffer. */
static void block_views_(const ModelConfig *c, float *buf, BlockWeights *w) {
    w->attn_norm = buf;
    w->ffn_norm = buf + c->dim;
    float *p = buf + 2 * (size_t)c->dim;
    for (int i = 0; i < N_MATS; i++) {
        w->mat[i] = p;
        p += (size_t)mat_rows(c, i) * (size_t)mat_cols(c, i);
    }
}

/* Reads block l and dequantizes its matrices into a new buffer. */
static nq_status load_block_(Model *m, int l, float **out) {
    CheckpointBackend *b = m->backend;
    const ModelConfig *c = &m->config;
    float *buf = nq_calloc(block_floats_(c), sizeof(float), "dequantized block");
    if (!buf) return NQ_ERR_RUNTIME;
    BlockWeights w;
    block_views_(c, buf, &w);
    BlockResult r;
    nq_status const st = checkpoint_read_block(b->reader, l, &r, buf, buf + c->dim);
    if (st != NQ_OK) {
        free(buf);
        return st;
    }
    nq_status dq = NQ_OK;
    for (int i = 0; i < N_MATS && dq == NQ_OK; i++) dq = quant_matrix_dequantize(&r.mat[i], (float *)w.mat[i]);
    block_result_free(&r);
    if (dq != NQ_OK) {
        free(buf);
        return dq;
    }
    *out = buf;
    return NQ_OK;
}

static nq_status ckpt_block(Model *m, int l, BlockWeights *w) {
    CheckpointBackend *b = m->backend;
    if (!b->blocks[l]) {
        nq_status const st = load_block_(m, l, &b->blocks[l]);
        if (st != NQ_OK) return st;
    }
    block_views_(&m->config, b->blocks[l], w);
    return NQ_OK;
}

static void ckpt_release_block(Model *m, int l) {
    CheckpointBackend *b = m->backend;
    if (l < 0 || l >= m->config.n_layers) return;
    free(b->blocks[l]);
    b->blocks[l] = NULL;
}

static nq_status ckpt_head(Model *m, HeadWeights *h) {
    CheckpointBackend *b = m->backend;
    const ModelConfig *c = &m->config;
    size_t const vd = (size_t)c->vocab_size * (size_t)c->dim;
    if (!b->head) {
        size_t const n = vd * (c->tied_embeddings ? 1 : 2) + (size_t)c->dim;
        float *buf = nq_calloc(n, sizeof(float), "checkpoint head weights");
        if (!buf) return NQ_ERR_RUNTIME;
        nq_status const st = checkpoint_read_head(b->reader, buf, buf + vd,
                                                  c->tied_embeddings ? NULL : buf + vd + c->dim);
        if (st != NQ_OK) {
            free(buf);
            return st;
        }
        b->head = buf;
    }
    h->tok_embeddings = b->head;
    h->norm_final = b->head + vd;
    h->classifier = c->tied_embeddings ? b->head : b->head + vd + c->dim;
    return NQ_OK;
}

/* xxHash3 of the checkpoint file's bytes (as the llama2.c backend hashes its file). */
static nq_status ckpt_content_hash(Model *m, uint64_t *hash) {
    FILE *f = fopen(m->path, "rb");
    if (!f) return nq_fail(NQ_ERR_INPUT, "%s: cannot open to hash", m->path);
    XXH3_state_t *state = XXH3_createState();
    unsigned char *buf = nq_calloc(1, 1 << 20, "hash buffer");
    nq_status st = state && buf ? NQ_OK : NQ_ERR_RUNTIME;
    if (st == NQ_OK && XXH3_64bits_reset(state) == XXH_ERROR) st = nq_fail(NQ_ERR_RUNTIME, "xxhash reset failed");
    size_t got;
    while (st == NQ_OK && (got = fread(buf, 1, 1 << 20, f)) > 0)
        if (XXH3_64bits_update(state, buf, got) == XXH_ERROR) st = nq_fail(NQ_ERR_RUNTIME, "xxhash failed");
    if (st == NQ_OK && ferror(f)) st = nq_fail(NQ_ERR_INPUT, "%s: read error while hashing", m->path);
    if (st == NQ_OK) *hash = XXH3_64bits_digest(state);
    free(buf);
    XXH3_freeState(state);
    fclose(f);
    return st;
}

static void ckpt_close(Model *m) {
    CheckpointBackend *b = m->backend;
    if (!b) return;
    for (int l = 0; b->blocks && l < m->config.n_layers; l++) free(b->blocks[l]);
    free(b->blocks);
    free(b->head);
    checkpoint_close(b->reader);
    free(b);
    m->backend = NULL;
}

static const ModelOps checkpoint_ops = {
    .block = ckpt_block,
    .release_block = ckpt_release_block,
    .head = ckpt_head,
    .content_hash = ckpt_content_hash,
    .close = ckpt_close,
};

nq_status checkpoint_model_open(const char *path, Model *m) {
    CheckpointReader *reader;
    nq_status st = checkpoint_open(path, &reader);
    if (st != NQ_OK) return st;
    const CheckpointInfo *info = checkpoint_info(reader);
    if (strcmp(info->status, "complete") != 0) {
        st = nq_fail(NQ_ERR_INPUT, "%s: status = \"%s\", expected \"complete\" (the job has not finished)",
                     path, info->status);
        checkpoint_close(reader);
        return st;
    }
    CheckpointBackend *b = nq_calloc(1, sizeof *b, "checkpoint backend");
    float **blocks = b ? nq_calloc((size_t)info->config.n_layers, sizeof *blocks, "block list") : NULL;
    if (!blocks) {
        free(b);
        checkpoint_close(reader);
        return NQ_ERR_RUNTIME;
    }
    b->reader = reader;
    b->blocks = blocks;
    m->ops = &checkpoint_ops;
    m->config = info->config;
    m->backend = b;
    return NQ_OK;
}
