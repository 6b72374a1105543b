/* Exporting a model (typically a nupes-mpi checkpoint, dequantized to fp32 by its model
 * backend) to other tools' formats. Both writers hold at most one block of weights and go
 * through io/atomic_file.h: a failed export leaves no partial file at the final path.
 *
 * llama2.c legacy format (what llama2.c's run.c reads):
 *   int32 {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len}
 *   (vocab_size < 0: an untied classifier [V][d] is appended at the end), then fp32
 *   tok_embeddings [V][d], rms_att [L][d], wq [L][d][d], wk [L][dkv][d], wv [L][dkv][d],
 *   wo [L][d][d], rms_ffn [L][d], w1 [L][f][d], w2 [L][d][f], w3 [L][f][d], rms_final [d],
 *   freq_cis_real [seq_len][hs/2], freq_cis_imag [seq_len][hs/2], classifier (untied).
 * The format is interleaved-rope only and has no field for rope_theta or norm_eps (run.c
 * assumes 10000 and 1e-5): a "half" rope model has its q/k rows un-permuted on the way
 * out, and a model with another theta or eps is refused rather than silently changed. */
#ifndef NUPES_EXPORT_LLAMA2C_H
#define NUPES_EXPORT_LLAMA2C_H

#include "model_file.h"
#include "status.h"

/* Writes m to path in llama2.c's legacy format (fp32). Blocks are loaded one at a time
 * and released. Errors: NQ_ERR_INPUT (the model does not fit the format), NQ_ERR_RUNTIME
 * (I/O). */
nq_status export_llama2c(Model *m, const char *path);

/* The RoPE tables llama2.c's export.py stores (real = cos, imag = sin):
 * freq_i = 1 / theta^(2i / hs), angle = t * freq_i, for t < seq_len, i < hs / 2.
 * cos_table, sin_table: [seq_len][hs / 2]. */
void export_llama2c_freq_cis(int seq_len, int hs, float theta, float *cos_table, float *sin_table);

#endif
