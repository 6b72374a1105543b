/* Exporting a model as a Hugging Face LLaMA directory: config.json and one
 * model.safetensors with the transformers names (model.embed_tokens.weight,
 * model.layers.N.self_attn.q_proj.weight, ..., model.norm.weight, lm_head.weight when
 * untied), in F32, F16 or BF16. HF rotates halves of each head, so an interleaved model's
 * q/k rows are permuted as convert_llama_weights_to_hf.py does; a "half" model is written
 * as it is. The directory is created if needed; each file is written under a temporary
 * name and renamed (model.safetensors first, config.json last). See export_llama2c.h. */
#ifndef NUPES_EXPORT_SAFETENSORS_H
#define NUPES_EXPORT_SAFETENSORS_H

#include "model_file.h"
#include "status.h"

typedef enum { EXPORT_F32, EXPORT_F16, EXPORT_BF16 } ExportDtype;

/* "f32" | "f16" | "bf16" -> dtype; -1 for anything else. */
int export_dtype_parse(const char *name, ExportDtype *out);

/* Writes m as an HF directory at dir. Refuses a directory that holds a sharded index
 * (model.safetensors.index.json would take precedence over the new file when read). */
nq_status export_safetensors(Model *m, const char *dir, ExportDtype dtype);

/* q/k rows between rope layouts, per head of hs rows (hs = rows / n_heads):
 *   to_half = 1: interleaved row 2i + j -> half row j * hs/2 + i (the HF permutation);
 *   to_half = 0: the inverse. w, out: [rows][cols], distinct. */
void export_permute_rope_rows(const float *w, int n_heads, int rows, int cols, int to_half, float *out);

#endif
