/* transformer_forward (sgemm, fp32) against the independent double-precision naive loops of
 * tests/support/naive_block.c, on a small random model, for both RoPE styles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "naive_block.h"
#include "test_random.h"
#include "status.h"
#include "transformer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Model with L blocks; every tensor malloc'ed, freed by free_model. */
typedef struct {
    ModelConfig c;
    HeadWeights head;
    BlockWeights *blocks;
    float *owned[64];
    int n_owned;
} TestModel;

static float *own(TestModel *m, float *t) {
    assert_true(m->n_owned < 64);
    m->owned[m->n_owned++] = t;
    return t;
}

static void make_model(TestModel *m, RopeStyle style, int tied, unsigned long long seed) {
    *m = (TestModel){0};
    m->c = (ModelConfig){.dim = 32, .hidden_dim = 64, .n_layers = 2, .n_heads = 4,
                         .n_kv_heads = 2, .vocab_size = 50, .seq_len = 16,
                         .rope_theta = 10000.0f, .norm_eps = 1e-5f, .rope_style = style,
                         .tied_embeddings = tied};
    test_random_seed(seed);
    const ModelConfig *c = &m->c;
    size_t const vd = (size_t)c->vocab_size * c->dim;
    m->head.tok_embeddings = own(m, test_random_tensor(vd, 1.0f, 0.0f));
    m->head.norm_final = own(m, test_random_tensor(c->dim, 0.3f, 1.0f));
    m->head.classifier = tied ? m->head.tok_embeddings : own(m, test_random_tensor(vd, 1.0f, 0.0f));
    m->blocks = calloc(c->n_layers, sizeof *m->blocks);
    assert_non_null(m->blocks);
    for (int l = 0; l < c->n_layers; l++) {
        BlockWeights *w = &m->blocks[l];
        w->attn_norm = own(m, test_random_tensor(c->dim, 0.3f, 1.0f));
        w->ffn_norm = own(m, test_random_tensor(c->dim, 0.3f, 1.0f));
        for (int i = 0; i < N_MATS; i++) {
            int const cols = mat_cols(c, i);
            /* scale 1/sqrt(in) keeps activations of order 1; larger for wq/wk so that
             * the softmax is far from uniform */
            float const s = (i == MAT_WQ || i == MAT_WK ? 3.0f : 1.0f) / sqrtf((float)cols);
            w->mat[i] = own(m, test_random_tensor((size_t)mat_rows(c, i) * cols, s, 0.0f));
        }
    }
}

static void free_model(TestModel *m) {
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->blocks);
}

static void check_model(RopeStyle style, int tied) {
    unsigned long long const seed = 0x5eed0000ULL + 17 * style + tied;
    TestModel m;
    make_model(&m, style, tied, seed);
    int const B = 3, T = 12, V = m.c.vocab_size;
    size_t const nl = (size_t)B * T * V;
    int *tokens = malloc((size_t)B * T * sizeof(int));
    float *logits = malloc(nl * sizeof(float));
    float *again = malloc(nl * sizeof(float));
    double *ref = malloc(nl * sizeof(double));
    assert_true(tokens && logits && again && ref);
    for (int n = 0; n < B * T; n++) tokens[n] = (int)((test_random_uniform() + 1.0f) * 0.5f * V) % V;

    Transformer *t = transformer_create(&m.c, B, T);
    assert_non_null(t);
    transformer_forward(t, &m.head, m.blocks, tokens, logits);
    transformer_forward(t, &m.head, m.blocks, tokens, again); /* scratch reuse */
    assert_int_equal(naive_model_forward(&m.c, &m.head, m.blocks, tokens, B, T, ref), 0);

    double max_err = 0.0, max_ref = 0.0;
    size_t bad = 0;
    for (size_t i = 0; i < nl; i++) {
        double const err = fabs(logits[i] - ref[i]);
        if (err > max_err) max_err = err;
        if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
        if (err > 1e-4 + 1e-4 * fabs(ref[i])) {
            if (bad++ < 5) printf("  logit %zu: %.7g vs naive %.7g\n", i, logits[i], ref[i]);
        }
        assert_true(logits[i] == again[i]);
    }
    printf("rope %s, %s: max |logit - naive| = %.3g (max |logit| %.3g), seed %#llx\n",
           style == ROPE_INTERLEAVED ? "interleaved" : "half", tied ? "tied" : "untied",
           max_err, max_ref, seed);
    assert_true(max_ref > 0.5); /* the comparison is not vacuous */
    assert_int_equal(bad, 0);

    transformer_free(t);
    free(tokens);
    free(logits);
    free(again);
    free(ref);
    free_model(&m);
}

static void test_interleaved_tied(void **state) { (void)state; check_model(ROPE_INTERLEAVED, 1); }
static void test_half_untied(void **state) { (void)state; check_model(ROPE_HALF, 0); }
static void test_interleaved_untied(void **state) { (void)state; check_model(ROPE_INTERLEAVED, 0); }

/* The two styles differ only in which elements are paired: a model and the same model with
 * the rows of wq and wk permuted within each head (the Hugging Face converter's permutation:
 * half-style row i < hs/2 is interleaved row 2i, row hs/2 + i is row 2i + 1) agree. */
static void test_styles_agree_after_permutation(void **state) {
    (void)state;
    TestModel m;
    make_model(&m, ROPE_INTERLEAVED, 1, 0xabcdefULL);
    int const B = 2, T = 9, V = m.c.vocab_size, d = m.c.dim, hs = d / m.c.n_heads;
    size_t const nl = (size_t)B * T * V;
    int tokens[18];
    for (int n = 0; n < B * T; n++) tokens[n] = (n * 7 + 3) % V;
    float *a = malloc(nl * sizeof(float)), *b = malloc(nl * sizeof(float));
    assert_true(a && b);
    Transformer *t = transformer_create(&m.c, B, T);
    assert_non_null(t);
    transformer_forward(t, &m.head, m.blocks, tokens, a);
    transformer_free(t);

    TestModel hf = m; /* shares the weights; permuted q/k replace the views */
    hf.c.rope_style = ROPE_HALF;
    BlockWeights blocks[2];
    float *perm[2][2];
    for (int l = 0; l < m.c.n_layers; l++) {
        blocks[l] = m.blocks[l];
        for (int which = 0; which < 2; which++) {
            int const mat = which == 0 ? MAT_WQ : MAT_WK, rows = mat_rows(&m.c, mat);
            perm[l][which] = malloc((size_t)rows * d * sizeof(float));
            assert_non_null(perm[l][which]);
            for (int r = 0; r < rows; r++) {
                int const head = r / hs, i = r % hs;
                int const src = head * hs + (i < hs / 2 ? 2 * i : 2 * (i - hs / 2) + 1);
                for (int j = 0; j < d; j++)
                    perm[l][which][(size_t)r * d + j] = m.blocks[l].mat[mat][(size_t)src * d + j];
            }
            blocks[l].mat[mat] = perm[l][which];
        }
    }
    t = transformer_create(&hf.c, B, T);
    assert_non_null(t);
    transformer_forward(t, &hf.head, blocks, tokens, b);
    transformer_free(t);
    double max_err = 0.0;
    for (size_t i = 0; i < nl; i++) max_err = fmax(max_err, fabs(a[i] - b[i]));
    printf("interleaved vs permuted half: max |diff| = %.3g\n", max_err);
    assert_true(max_err < 1e-4);
    for (int l = 0; l < 2; l++) free(perm[l][0]), free(perm[l][1]);
    free(a);
    free(b);
    free_model(&m);
}

static void test_create_refuses_bad_shapes(void **state) {
    (void)state;
    ModelConfig c = {.dim = 32, .hidden_dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 3,
                     .vocab_size = 50, .seq_len = 16, .rope_theta = 10000.0f, .norm_eps = 1e-5f};
    nq_clear_error();
    assert_null(transformer_create(&c, 2, 4)); /* 4 heads not divisible by 3 kv heads */
    assert_non_null(strstr(nq_last_error(), "n_kv_heads"));
    c.n_kv_heads = 2;
    nq_clear_error();
    assert_null(transformer_create(&c, 2, 0));
    assert_non_null(strstr(nq_last_error(), "T = 0"));
    nq_clear_error();
    transformer_free(NULL);
    block_acts_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interleaved_tied),
        cmocka_unit_test(test_half_untied),
        cmocka_unit_test(test_interleaved_untied),
        cmocka_unit_test(test_styles_agree_after_permutation),
        cmocka_unit_test(test_create_refuses_bad_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
