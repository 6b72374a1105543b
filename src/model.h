/* The LLaMA model's shape and weight views (docs/design.md 2).
 *
 * Notation used in shape comments throughout src/:
 *   d = dim, f = hidden_dim, H = n_heads, Hkv = n_kv_heads, hs = d / H, dkv = Hkv * hs,
 *   V = vocab_size, L = n_layers, B sequences of T tokens, N = B * T rows.
 * Weights are row-major [out][in] and applied as y = x W^T to row-major x [N][in]. */
#ifndef NUPES_MODEL_H
#define NUPES_MODEL_H

#include <stddef.h>

typedef enum {
    ROPE_INTERLEAVED = 0, /* llama2.c / Meta: rotate pairs (2i, 2i+1) of each head */
    ROPE_HALF = 1,        /* Hugging Face: rotate pairs (i, i + hs/2) of each head */
} RopeStyle;

typedef struct {
    int dim;          /* d, e.g. 4096 for LLaMA-7B, 64 for stories260K */
    int hidden_dim;   /* f, e.g. 11008 */
    int n_layers;     /* L, e.g. 32 */
    int n_heads;      /* H, e.g. 32 */
    int n_kv_heads;   /* Hkv, divides H */
    int vocab_size;   /* V */
    int seq_len;      /* longest T the model supports */
    float rope_theta; /* 10000 */
    float norm_eps;   /* 1e-5 */
    RopeStyle rope_style;
    int tied_embeddings; /* 1: the classifier is the token embedding matrix */
} ModelConfig;

/* The seven linear layers of a block, in checkpoint order. */
enum { MAT_WQ, MAT_WK, MAT_WV, MAT_WO, MAT_W1, MAT_W2, MAT_W3, N_MATS };

extern const char *const mat_names[N_MATS]; /* "wq", "wk", "wv", "wo", "w1", "w2", "w3" */

/* Rows (out) and columns (in) of matrix `which` of a block. */
int mat_rows(const ModelConfig *c, int which);
int mat_cols(const ModelConfig *c, int which);
/* Weights of the seven matrices of one block (norm gains not included). */
size_t block_matrix_weights(const ModelConfig *c);

/* Index of a matrix name ("wq".."w3"), or -1. */
int mat_index(const char *name);

/* Weights of one transformer block; the views are borrowed from their owner. */
typedef struct {
    const float *attn_norm;   /* [d] */
    const float *ffn_norm;    /* [d] */
    const float *mat[N_MATS]; /* wq [d][d], wk [dkv][d], wv [dkv][d], wo [d][d],
                                 w1 [f][d], w2 [d][f], w3 [f][d] */
} BlockWeights;

/* Gradients of the seven matrices of a block (norm gains are not learned). */
typedef struct {
    float *mat[N_MATS]; /* same shapes as BlockWeights.mat */
} BlockGrads;

/* The parts of the model outside the blocks; they stay fp32 and are never quantized. */
typedef struct {
    const float *tok_embeddings; /* [V][d] */
    const float *norm_final;     /* [d] */
    const float *classifier;     /* [V][d]; == tok_embeddings when tied */
} HeadWeights;

/* Checks a config for consistency (positive sizes, d % H == 0, H % Hkv == 0, hs even).
 * Returns 0 when valid, else writes a reason ("n_heads = 0, expected > 0") to why. */
int model_config_check(const ModelConfig *c, char *why, int why_size);

#endif
