/* The whole model's forward pass: embedding, blocks, final norm and logits. */
#ifndef NUPES_TRANSFORMER_H
#define NUPES_TRANSFORMER_H

#include "block.h"

/* tokens: [B][T] ids in [0, V); x: [B][T][d] embedding rows. */
void embedding_forward(const ModelConfig *c, const HeadWeights *head, const int *tokens, int B,
                       int T, float *x);

/* x: [B][T][d] last block output; logits: [B][T][V] = (rmsnorm(x) * g_final) E^T.
 * xnorm: [B][T][d] scratch for rmsnorm(x) * g_final; it may be x itself (x is then
 * overwritten). */
void logits_forward(const ModelConfig *c, const HeadWeights *head, const float *x, int B, int T,
                    float *xnorm, float *logits);

/* Scratch for model_forward: two [B][T][d] buffers, one BlockActs, reused across calls
 * with the same B and T. */
typedef struct Transformer Transformer;
/* Copies *c. Returns NULL (with nq_fail recorded) when out of memory or the config or
 * B, T are invalid. */
Transformer *transformer_create(const ModelConfig *c, int B, int T);
void transformer_free(Transformer *t); /* NULL is fine */

/* tokens: [B][T] (B, T as created) -> logits: [B][T][V]. blocks: [L]. Token t of each
 * sequence is at position t. */
void transformer_forward(Transformer *t, const HeadWeights *head, const BlockWeights *blocks,
                         const int *tokens, float *logits);

#endif
