#include "model.h"

#include <stdio.h>
#include <string.h>

const char *const mat_names[N_MATS] = {"wq", "wk", "wv", "wo", "w1", "w2", "w3"};

static int kv_dim(const ModelConfig *c) { return c->n_kv_heads * (c->dim / c->n_heads); }

int mat_rows(const ModelConfig *c, int which) {
    switch (which) {
    case MAT_WK: case MAT_WV: return kv_dim(c);
    case MAT_W1: case MAT_W3: return c->hidden_dim;
    default: return c->dim; /* wq, wo, w2 */
    }
}

int mat_cols(const ModelConfig *c, int which) {
    return which == MAT_W2 ? c->hidden_dim : c->dim;
}

size_t block_matrix_weights(const ModelConfig *c) {
    size_t n = 0;
    for (int i = 0; i < N_MATS; i++) n += (size_t)mat_rows(c, i) * (size_t)mat_cols(c, i);
    return n;
}

int mat_index(const char *name) {
    for (int i = 0; i < N_MATS; i++)
        if (strcmp(name, mat_names[i]) == 0) return i;
    return -1;
}

int model_config_check(const ModelConfig *c, char *why, int why_size) {
    const struct { const char *name; int value; } positive[] = {
        {"dim", c->dim},           {"hidden_dim", c->hidden_dim}, {"n_layers", c->n_layers},
        {"n_heads", c->n_heads},   {"n_kv_heads", c->n_kv_heads}, {"vocab_size", c->vocab_size},
        {"seq_len", c->seq_len},
    };
    for (size_t i = 0; i < sizeof positive / sizeof positive[0]; i++) {
        if (positive[i].value <= 0) {
            snprintf(why, why_size, "%s = %d, expected > 0", positive[i].name, positive[i].value);
            return -1;
        }
    }
    if (c->dim % c->n_heads != 0) {
        snprintf(why, why_size, "dim = %d is not divisible by n_heads = %d", c->dim, c->n_heads);
        return -1;
    }
    if (c->n_heads % c->n_kv_heads != 0) {
        snprintf(why, why_size, "n_heads = %d is not divisible by n_kv_heads = %d", c->n_heads,
                 c->n_kv_heads);
        return -1;
    }
    if ((c->dim / c->n_heads) % 2 != 0) {
        snprintf(why, why_size, "head size dim / n_heads = %d, expected an even number for RoPE",
                 c->dim / c->n_heads);
        return -1;
    }
    if (!(c->rope_theta > 0) || !(c->norm_eps > 0)) {
        snprintf(why, why_size, "rope_theta = %g and norm_eps = %g, expected both > 0",
                 c->rope_theta, c->norm_eps);
        return -1;
    }
    return 0;
}
