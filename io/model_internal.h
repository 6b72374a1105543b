/* What a model backend implements (llama2.c file, HF directory, nupes checkpoint).
 * Only io/ sees this; everyone else uses model_file.h. */
#ifndef NUPES_MODEL_INTERNAL_H
#define NUPES_MODEL_INTERNAL_H

#include <limits.h>
#include <stdint.h>

#include "model_file.h"

typedef struct {
    nq_status (*block)(Model *m, int l, BlockWeights *w);
    void (*release_block)(Model *m, int l);
    /* Optional: block l's two norm gains [dim] copied out without the matrices (else
     * model_block_norms loads the whole block). */
    nq_status (*block_norms)(Model *m, int l, float *attn_norm, float *ffn_norm);
    nq_status (*head)(Model *m, HeadWeights *h);
    nq_status (*content_hash)(Model *m, uint64_t *hash);
    void (*close)(Model *m); /* frees m->backend */
} ModelOps;

struct Model {
    const ModelOps *ops;
    ModelConfig config;
    char path[PATH_MAX];
    void *backend; /* owned by the backend */
    unsigned char *finite_checked; /* [n_layers + 1]: block l's (or, last, the head's) weights
                                      were found finite (model_file.c) */
};

/* Each fills m->ops, m->config and m->backend, or returns an error with m untouched
 * except for what its own close would free (the caller then frees nothing else). */
/* "hf" for a directory, "checkpoint" for a file with the HDF5 signature, else "llama2c". */
nq_status model_detect_format(const char *path, const char **format);

/* A llama2.c header {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (< 0:
 * untied), seq_len} as a checked config; errors name path and the header field. */
#define LLAMA2C_HEADER_INTS 7
nq_status llama2c_config_from_header(const char *path, const int32_t h[LLAMA2C_HEADER_INTS],
                                     ModelConfig *c);

nq_status llama2c_model_open(const char *path, Model *m);
nq_status hf_model_open(const char *path, Model *m);
nq_status checkpoint_model_open(const char *path, Model *m);

/* The model config from config.json only (no safetensors opened). */
nq_status hf_model_read_config(const char *dir, ModelConfig *c);
/* config.json's torch_dtype: "float16" or "bfloat16", else "float32". */
nq_status hf_model_read_torch_dtype(const char *dir, char *dtype, size_t size);

#endif
