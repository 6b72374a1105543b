/* Test fixture: a random model in llama2.c's legacy format (docs/design.md 5.4) of any shape,
 * for MPI tests and benchmarks that need more or fewer blocks, or bigger ones, than the
 * bundled stories260K. Weights are seeded normals at the scales of a trained model, so
 * that activations stay in a sane range through the blocks:
 *   embeddings N(0, 1) * 0.1; wq wk wv w1 w3 N(0, 1) / sqrt(d); wo N(0, 1) / sqrt(d) * 0.5;
 *   w2 N(0, 1) / sqrt(f) * 0.5 (the residual branches are damped); norm gains 1 +- 0.1.
 * The classifier is tied (vocab_size > 0 in the header). */
#ifndef NUPES_TEST_SYNTH_MODEL_H
#define NUPES_TEST_SYNTH_MODEL_H

#include <stdint.h>

#include "model.h"
#include "status.h"

/* The header fields of c (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 * seq_len) give the shape; the other fields are ignored (llama2.c: theta 10000, tied).
 * Writes path atomically. NQ_ERR_INPUT for an invalid shape, NQ_ERR_RUNTIME on I/O. */
nq_status synth_model_write(const char *path, const ModelConfig *c, uint64_t seed);

/* Floats after the header for that shape (the file is 28 + 4 * this bytes). */
uint64_t synth_model_floats(const ModelConfig *c);

#endif
