/* compare_models A B [--logits-tol X] [--weights-tol Y]
 *
 * Opens two models with model_open(.., "auto") (llama2.c file, HF directory or nupes-mpi
 * checkpoint) and compares them independently of how they store RoPE:
 *   shape   every config field (dim .. seq_len, tied, rope_theta, norm_eps) equal;
 *   weights every tensor, q/k rows brought to the interleaved layout first (the inverse of
 *           convert_llama_weights_to_hf.py's permutation, tests/support/hf_fixture.c):
 *           max |a - b| <= Y (0: bit for bit);
 *   logits  transformer_forward on 2 fixed pseudo-random sequences of min(64, seq_len)
 *           tokens: max |a - b| <= X (0: bit for bit).
 * Prints the maxima; exit 0 on pass, 1 on a difference beyond the bounds, 2 on bad input. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_fixture.h"
#include "model_file.h"
#include "transformer.h"

typedef struct {
    Model *m;
    HeadWeights head;
    BlockWeights *blocks;
} Loaded;

static int load(const char *path, Loaded *x) {
    memset(x, 0, sizeof *x);
    if (model_open(path, "auto", &x->m) != NQ_OK) return -1;
    const ModelConfig *c = model_config(x->m);
    x->blocks = calloc((size_t)c->n_layers, sizeof *x->blocks);
    if (!x->blocks || model_head(x->m, &x->head) != NQ_OK) return -1;
    for (int l = 0; l < c->n_layers; l++)
        if (model_block(x->m, l, &x->blocks[l]) != NQ_OK) return -1;
    return 0;
}

static void unload(Loaded *x) {
    free(x->blocks);
    model_close(x->m);
}

static double max_diff(const float *a, const float *b, size_t n, int *bits_differ) {
    double m = 0;
    if (memcmp(a, b, n * sizeof(float)) != 0) *bits_differ = 1;
    for (size_t i = 0; i < n; i++) {
        double const v = fabs((double)a[i] - (double)b[i]);
        if (!(v <= m)) m = v; /* NaN propagates */
    }
    return m;
}

/* Matrix i of block w in the interleaved layout (a copy into buf when it had to move). */
static const float *interleaved(const ModelConfig *c, const BlockWeights *w, int i, float *buf) {
    if (c->rope_style != ROPE_HALF || (i != MAT_WQ && i != MAT_WK)) return w->mat[i];
    hf_unpermute_rows(w->mat[i], i == MAT_WQ ? c->n_heads : c->n_kv_heads, mat_rows(c, i), mat_cols(c, i), buf);
    return buf;
}

static int same_shape(const ModelConfig *a, const ModelConfig *b) {
    return a->dim == b->dim && a->hidden_dim == b->hidden_dim && a->n_layers == b->n_layers &&
           a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads && a->vocab_size == b->vocab_size &&
           a->seq_len == b->seq_len && a->tied_embeddings == b->tied_embeddings &&
           a->rope_theta == b->rope_theta && a->norm_eps == b->norm_eps;
}

static double compare_weights(const Loaded *a, const Loaded *b, int *bits) {
    const ModelConfig *ca = model_config(a->m), *cb = model_config(b->m);
    size_t const vd = (size_t)ca->vocab_size * ca->dim;
    double m = max_diff(a->head.tok_embeddings, b->head.tok_embeddings, vd, bits);
    m = fmax(m, max_diff(a->head.norm_final, b->head.norm_final, (size_t)ca->dim, bits));
    m = fmax(m, max_diff(a->head.classifier, b->head.classifier, vd, bits));
    float *ba = malloc((size_t)ca->dim * ca->dim * sizeof(float));
    float *bb = malloc((size_t)ca->dim * ca->dim * sizeof(float));
    for (int l = 0; l < ca->n_layers; l++) {
        m = fmax(m, max_diff(a->blocks[l].attn_norm, b->blocks[l].attn_norm, (size_t)ca->dim, bits));
        m = fmax(m, max_diff(a->blocks[l].ffn_norm, b->blocks[l].ffn_norm, (size_t)ca->dim, bits));
        for (int i = 0; i < N_MATS; i++) {
            size_t const n = (size_t)mat_rows(ca, i) * mat_cols(ca, i);
            m = fmax(m, max_diff(interleaved(ca, &a->blocks[l], i, ba), interleaved(cb, &b->blocks[l], i, bb), n, bits));
        }
    }
    free(ba);
    free(bb);
    return m;
}

static double compare_logits(const Loaded *a, const Loaded *b, int *bits) {
    const ModelConfig *ca = model_config(a->m), *cb = model_config(b->m);
    int const B = 2, T = ca->seq_len < 64 ? ca->seq_len : 64;
    size_t const n = (size_t)B * T * ca->vocab_size;
    int *tokens = malloc((size_t)B * T * sizeof(int));
    float *la = malloc(n * sizeof(float)), *lb = malloc(n * sizeof(float));
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < B * T; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        tokens[i] = i % T == 0 ? 1 : (int)((s >> 33) % (uint64_t)ca->vocab_size);
    }
    Transformer *ta = transformer_create(ca, B, T), *tb = transformer_create(cb, B, T);
    transformer_forward(ta, &a->head, a->blocks, tokens, la);
    transformer_forward(tb, &b->head, b->blocks, tokens, lb);
    double const m = max_diff(la, lb, n, bits);
    transformer_free(ta);
    transformer_free(tb);
    free(tokens);
    free(la);
    free(lb);
    return m;
}

int main(int argc, char **argv) {
    double logits_tol = 0, weights_tol = 0;
    if (argc < 3) {
        fprintf(stderr, "usage: compare_models A B [--logits-tol X] [--weights-tol Y]\n");
        return 2;
    }
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--logits-tol") == 0) logits_tol = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--weights-tol") == 0) weights_tol = atof(argv[i + 1]);
        else {
            fprintf(stderr, "compare_models: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    Loaded a, b;
    if (load(argv[1], &a) != 0 || load(argv[2], &b) != 0) {
        fprintf(stderr, "compare_models: %s\n", nq_last_error());
        return 2;
    }
    int rc = 0;
    if (!same_shape(model_config(a.m), model_config(b.m))) {
        printf("config differs\n");
        rc = 1;
    } else {
        int wbits = 0, lbits = 0;
        double const w = compare_weights(&a, &b, &wbits);
        double const lg = compare_logits(&a, &b, &lbits);
        printf("weights: max |diff| %.3e (%s)\nlogits: max |diff| %.3e (%s)\n", w, wbits ? "differ" : "bit-identical",
               lg, lbits ? "differ" : "bit-identical");
        if (weights_tol == 0 ? wbits : !(w <= weights_tol)) rc = 1;
        if (logits_tol == 0 ? lbits : !(lg <= logits_tol)) rc = 1;
    }
    unload(&a);
    unload(&b);
    return rc;
}
