/* Independent double-precision reference of the LLaMA block and model forward passes
 * (docs/design.md 2), written as plain textbook loops, one token at a time, with no BLAS.
 * Tests compare the sgemm implementation (src/block.c, src/transformer.c) against it and
 * take finite differences of it. */
#ifndef NUPES_NAIVE_BLOCK_H
#define NUPES_NAIVE_BLOCK_H

#include "model.h"

#include <stddef.h>

/* A block's weights in double, same shapes as BlockWeights. */
typedef struct {
    const double *attn_norm;   /* [d] */
    const double *ffn_norm;    /* [d] */
    const double *mat[N_MATS]; /* [rows][cols], see mat_rows / mat_cols */
} NaiveBlockWeights;

/* x, y: [B][T][d]. Allocates its scratch; returns 0, or -1 when out of memory. */
int naive_block_forward(const ModelConfig *c, const NaiveBlockWeights *w, int B, int T,
                        const double *x, double *y);

/* tokens: [B][T] -> logits: [B][T][V], from the float weights (converted to double).
 * blocks: [L]. Returns 0, or -1 when out of memory. */
int naive_model_forward(const ModelConfig *c, const HeadWeights *head,
                        const BlockWeights *blocks, const int *tokens, int B, int T,
                        double *logits);

/* A malloc'ed double copy of n floats (NULL when out of memory); free with free(). */
double *naive_to_double(const float *src, size_t n);

#endif
