/* block_forward against the naive double forward, and block_backward's gradient of every
 * element of the seven matrices against central finite differences of the naive double
 * forward, for loss L = sum(R * Y) with a random R (so dY = R). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "block.h"
#include "naive_block.h"
#include "test_random.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* One random block in float (for block_forward) and the same values in double. */
typedef struct {
    ModelConfig c;
    int B, T;
    float *norms[2], *mats[N_MATS], *x, *r; /* r: dL/dY */
    double *dnorms[2], *dmats[N_MATS], *dx, *dr;
    BlockWeights w;
    NaiveBlockWeights nw;
} Fixture;

static void fixture_make(Fixture *f, RopeStyle style, int n_kv_heads, unsigned long long seed) {
    memset(f, 0, sizeof *f);
    f->c = (ModelConfig){.dim = 16, .hidden_dim = 40, .n_layers = 1, .n_heads = 4,
                         .n_kv_heads = n_kv_heads, .vocab_size = 8, .seq_len = 8,
                         .rope_theta = 10000.0f, .norm_eps = 1e-5f, .rope_style = style};
    f->B = 2;
    f->T = 8;
    test_random_seed(seed);
    const ModelConfig *c = &f->c;
    size_t const nd = (size_t)f->B * f->T * c->dim;
    for (int i = 0; i < 2; i++) {
        f->norms[i] = test_random_tensor(c->dim, 0.3f, 1.0f);
        f->dnorms[i] = naive_to_double(f->norms[i], c->dim);
    }
    for (int m = 0; m < N_MATS; m++) {
        size_t const n = (size_t)mat_rows(c, m) * mat_cols(c, m);
        /* larger q/k weights make the softmax peaked, so its gradient is exercised */
        float const s = (m == MAT_WQ || m == MAT_WK ? 3.0f : 1.0f) / sqrtf(mat_cols(c, m));
        f->mats[m] = test_random_tensor(n, s, 0.0f);
        f->dmats[m] = naive_to_double(f->mats[m], n);
        f->w.mat[m] = f->mats[m];
        f->nw.mat[m] = f->dmats[m];
    }
    f->w.attn_norm = f->norms[0];
    f->w.ffn_norm = f->norms[1];
    f->nw.attn_norm = f->dnorms[0];
    f->nw.ffn_norm = f->dnorms[1];
    f->x = test_random_tensor(nd, 1.0f, 0.0f);
    f->dx = naive_to_double(f->x, nd);
    f->r = test_random_tensor(nd, 1.0f, 0.0f);
    f->dr = naive_to_double(f->r, nd);
}

static void fixture_free(Fixture *f) {
    for (int i = 0; i < 2; i++) free(f->norms[i]), free(f->dnorms[i]);
    for (int m = 0; m < N_MATS; m++) free(f->mats[m]), free(f->dmats[m]);
    free(f->x), free(f->dx), free(f->r), free(f->dr);
}

/* L = sum(R * Y) of the naive double forward with the current double weights. */
static double naive_loss(const Fixture *f, double *y) {
    size_t const nd = (size_t)f->B * f->T * f->c.dim;
    assert_int_equal(naive_block_forward(&f->c, &f->nw, f->B, f->T, f->dx, y), 0);
    double loss = 0.0;
    for (size_t i = 0; i < nd; i++) loss += f->dr[i] * y[i];
    return loss;
}

static void check_block(RopeStyle style, int n_kv_heads) {
    unsigned long long const seed = 0xb10c0000ULL + 10 * style + n_kv_heads;
    Fixture f;
    fixture_make(&f, style, n_kv_heads, seed);
    const ModelConfig *c = &f.c;
    size_t const nd = (size_t)f.B * f.T * c->dim;
    printf("rope %s, H %d, Hkv %d, seed %#llx\n",
           style == ROPE_INTERLEAVED ? "interleaved" : "half", c->n_heads, n_kv_heads, seed);

    /* forward vs naive */
    BlockActs *acts = block_acts_create(c, f.B, f.T);
    assert_non_null(acts);
    assert_int_equal(block_acts_batch(acts), f.B);
    assert_int_equal(block_acts_seq_len(acts), f.T);
    float *y = malloc(nd * sizeof(float));
    double *yref = malloc(nd * sizeof(double));
    assert_true(y && yref);
    block_forward(c, &f.w, f.x, y, acts);
    naive_loss(&f, yref);
    double max_err = 0.0;
    for (size_t i = 0; i < nd; i++) max_err = fmax(max_err, fabs(y[i] - yref[i]));
    printf("  forward: max |Y - naive| = %.3g\n", max_err);
    assert_true(max_err < 1e-5);

    /* backward, twice: grads are overwritten, not accumulated */
    BlockGrads grads, again;
    for (int m = 0; m < N_MATS; m++) {
        size_t const n = (size_t)mat_rows(c, m) * mat_cols(c, m);
        grads.mat[m] = malloc(n * sizeof(float));
        again.mat[m] = malloc(n * sizeof(float));
        assert_true(grads.mat[m] && again.mat[m]);
    }
    block_backward(c, &f.w, acts, f.r, &grads);
    block_backward(c, &f.w, acts, f.r, &again);

    double const h = 1e-4;
    for (int m = 0; m < N_MATS; m++) {
        size_t const n = (size_t)mat_rows(c, m) * mat_cols(c, m);
        double max_diff = 0.0, max_grad = 0.0;
        for (size_t i = 0; i < n; i++) {
            assert_true(grads.mat[m][i] == again.mat[m][i]);
            double *wd = f.dmats[m];
            double const saved = wd[i];
            wd[i] = saved + h;
            double const lp = naive_loss(&f, yref);
            wd[i] = saved - h;
            double const lm = naive_loss(&f, yref);
            wd[i] = saved;
            double const fd = (lp - lm) / (2 * h);
            max_diff = fmax(max_diff, fabs(grads.mat[m][i] - fd));
            max_grad = fmax(max_grad, fabs(fd));
        }
        double const rel = max_diff / max_grad;
        printf("  d%-2s: %4zu elements, max |grad - fd| / max |fd| = %.2e (max |fd| %.3g)\n",
               mat_names[m], n, rel, max_grad);
        assert_true(max_grad > 1e-3); /* a vanishing gradient would make the check vacuous */
        assert_true(rel < 1e-3);
    }

    for (int m = 0; m < N_MATS; m++) free(grads.mat[m]), free(again.mat[m]);
    block_acts_free(acts);
    free(y);
    free(yref);
    fixture_free(&f);
}

static void test_interleaved_gqa(void **state) { (void)state; check_block(ROPE_INTERLEAVED, 2); }
static void test_half_gqa(void **state) { (void)state; check_block(ROPE_HALF, 2); }
static void test_interleaved_mha(void **state) { (void)state; check_block(ROPE_INTERLEAVED, 4); }
static void test_half_mqa(void **state) { (void)state; check_block(ROPE_HALF, 1); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interleaved_gqa),
        cmocka_unit_test(test_half_gqa),
        cmocka_unit_test(test_interleaved_mha),
        cmocka_unit_test(test_half_mqa),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
