/* Exporting a model as a Hugging Face LLaMA directory: config.json and one
 * model.safetensors with the transformers names (model.embed_tokens.weight,
 * model.layers.N.self_attn.q_proj.weight, ..., model.norm.weight, lm_head.weight when
 * untied), in F32, F16 or BF16. HF rotates halves of each head, so an interleaved model's
 * q/k rows are permuted as convert_llama_weights_to_hf.py does; a "half" model is written
 * as it is. The directory is created if needed; each file is written under a temporary
 * name and renamed (model.safetensors first, config.json last). See export_llama2c.h. */
#ifndef NUPES_EXPORT_SAFETENSORS_H
#define NUPES_EXPORT_SAFETENSORS_H

#include <stdint.h>

#include "model_file.h"
#include "status.h"

typedef enum { EXPORT_F32, EXPORT_F16, EXPORT_BF16 } ExportDtype;

/* "f32" | "f16" | "bf16" -> dtype; -1 for anything else. */
int export_dtype_parse(const char *name, ExportDtype *out);

/* Writes m as an HF directory at dir: config.json and model.safetensors, or, when the data
 * exceeds max_shard_bytes, model-0000k-of-0000n.safetensors files of at most that much data
 * each (a larger tensor alone in its file, as transformers does) and
 * model.safetensors.index.json {"metadata": {"total_size"}, "weight_map"}. All shards are
 * written under temporary names and renamed once complete, then the index, then
 * config.json. Refuses a directory that already holds an index (it would take precedence
 * over a new single file when read). */
nq_status export_safetensors(Model *m, const char *dir, ExportDtype dtype, uint64_t max_shard_bytes);

/* "5GB", "500MB", "2GiB", "1000000" (bytes; KB/MB/GB/TB decimal as transformers' max_shard_size,
 * KiB/MiB/GiB binary) -> bytes; -1 for anything else. */
int export_parse_size(const char *text, uint64_t *bytes);

/* q/k rows between rope layouts, per head of hs rows (hs = rows / n_heads):
 *   to_half = 1: interleaved row 2i + j -> half row j * hs/2 + i (the HF permutation);
 *   to_half = 0: the inverse. w, out: [rows][cols], distinct. */
void export_permute_rope_rows(const float *w, int n_heads, int rows, int cols, int to_half, float *out);

#endif
