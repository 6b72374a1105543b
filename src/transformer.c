#include "transformer.h"

#include "linear.h"
#include "rmsnorm.h"
#include "status.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct Transformer {
    ModelConfig config;
    int B, T;
    float *memory; /* the allocation x and y are carved from (they swap every block) */
    float *x;      /* [B][T][d] block input */
    float *y;      /* [B][T][d] block output */
    BlockActs *acts;
};

void embedding_forward(const ModelConfig *c, const HeadWeights *head, const int *tokens, int B,
                       int T, float *x) {
    size_t const d = c->dim, N = (size_t)B * T;
    for (size_t n = 0; n < N; n++) {
        assert(tokens[n] >= 0 && tokens[n] < c->vocab_size);
        memcpy(x + n * d, head->tok_embeddings + (size_t)tokens[n] * d, d * sizeof(float));
    }
}

void logits_forward(const ModelConfig *c, const HeadWeights *head, const float *x, int B, int T,
                    float *xnorm, float *logits) {
    int const N = B * T;
    rmsnorm_forward(xnorm, NULL, x, head->norm_final, N, c->dim, c->norm_eps);
    linear_forward(logits, xnorm, head->classifier, N, c->dim, c->vocab_size, 0);
}

Transformer *transformer_create(const ModelConfig *c, int B, int T) {
    Transformer *t = nq_calloc(1, sizeof *t, "transformer");
    if (!t) return NULL;
    t->config = *c;
    t->B = B;
    t->T = T;
    t->acts = block_acts_create(c, B, T); /* checks the config, B and T */
    if (!t->acts) goto fail;
    size_t const nd = (size_t)B * T * c->dim;
    t->memory = nq_calloc(2 * nd, sizeof(float), "transformer activations");
    if (!t->memory) goto fail;
    t->x = t->memory;
    t->y = t->memory + nd;
    return t;
fail:
    transformer_free(t);
    return NULL;
}

void transformer_free(Transformer *t) {
    if (!t) return;
    block_acts_free(t->acts);
    free(t->memory);
    free(t);
}

void transformer_forward(Transformer *t, const HeadWeights *head, const BlockWeights *blocks,
                         const int *tokens, float *logits) {
    const ModelConfig *c = &t->config;
    embedding_forward(c, head, tokens, t->B, t->T, t->x);
    for (int l = 0; l < c->n_layers; l++) {
        block_forward(c, &blocks[l], t->x, t->y, t->acts);
        float *swap = t->x; /* the output is the next block's input */
        t->x = t->y;
        t->y = swap;
    }
    /* t->y is free now: it holds the normalized rows */
    logits_forward(c, head, t->x, t->B, t->T, t->y, logits);
}
