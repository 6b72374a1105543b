/* Opening a model for reading, whatever its format: a llama2.c checkpoint, a Hugging Face
 * directory of safetensors, or a nupes-mpi checkpoint (dequantized to fp32 on access).
 *
 * Weights are reached one block at a time so that a rank only ever touches the blocks it
 * owns: files are mapped, not read whole, and converted (F16/BF16, dequantization) into a
 * per-block buffer only when a block is asked for. */
#ifndef NUPES_MODEL_FILE_H
#define NUPES_MODEL_FILE_H

#include <stdint.h>

#include "model.h"
#include "status.h"

typedef struct Model Model;

/* format: "auto" (a directory is "hf", a file starting with the HDF5 signature is a
 * nupes-mpi checkpoint, anything else "llama2c"), "llama2c", "hf" or "checkpoint".
 * Validates the header/config and the file sizes before returning; errors name the file
 * and the field (NQ_ERR_INPUT). */
nq_status model_open(const char *path, const char *format, Model **out);
void model_close(Model *m); /* NULL is fine */

const ModelConfig *model_config(const Model *m);
const char *model_path(const Model *m);

/* Views of block l's weights, valid until model_release_block(m, l) or model_close. */
nq_status model_block(Model *m, int l, BlockWeights *w);
void model_release_block(Model *m, int l);

/* Block l's norm gains copied into attn_norm [dim] and ffn_norm [dim]. A Hugging Face
 * directory converts only those two tensors (a 7B block's matrices are 400 MB of BF16 the
 * checkpoint's assembly does not need); a nupes checkpoint loads block l and releases it,
 * so do not hold views of block l across this call. */
nq_status model_block_norms(Model *m, int l, float *attn_norm, float *ffn_norm);

/* Embeddings, final norm and classifier, valid until model_close. */
nq_status model_head(Model *m, HeadWeights *h);

/* 64-bit hash (xxHash3) of the weights' contents, for the run fingerprint. */
nq_status model_content_hash(Model *m, uint64_t *hash);

#endif
