/* block_forward against the naive double forward, and block_backward's gradient of every
 * element of the seven matrices against central finite differences of the naive double
 * forward, for loss L = sum(R * Y) with a random R (so dY = R). block_forward_only (the
 * capture's pass) against block_forward: bit for bit, out of place and in place. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "block.h"
#include "naive_block.h"
#include "parallel.h"
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

/* block_forward_only gives block_forward's y bit for bit, out of place and in place. */
static void check_forward_only(const ModelConfig *c, const BlockWeights *w, int B, int T, const float *x,
                               const float *y) {
    size_t const nd = (size_t)B * T * c->dim;
    BlockScratch *s = block_scratch_create(c, B, T);
    assert_non_null(s);
    assert_int_equal(block_scratch_batch(s), B);
    assert_true(block_scratch_bytes(c, B, T) >= sizeof(float) * (nd + (size_t)T * T));
    float *out = malloc(nd * sizeof(float)), *inplace = malloc(nd * sizeof(float));
    assert_true(out && inplace);
    memset(out, 0xff, nd * sizeof(float)); /* NaN: every element must be written */
    memcpy(inplace, x, nd * sizeof(float));
    block_forward_only(c, w, x, out, s);
    block_forward_only(c, w, inplace, inplace, s);
    assert_memory_equal(out, y, nd * sizeof(float));
    assert_memory_equal(inplace, y, nd * sizeof(float));
    free(out);
    free(inplace);
    block_scratch_free(s);
}

/* A block whose products are cut into gemm()'s tiles (>= 2^22 multiply-adds), 2 sequences
 * of 96 tokens, 8 heads over n_kv_heads; random weights (q and k scaled by qk_gain) into
 * w, owned by norms and mats (tiled_block_free). */
static ModelConfig tiled_block(int n_kv_heads, float qk_gain, BlockWeights *w, float *norms[2], float *mats[N_MATS]) {
    ModelConfig const c = {.dim = 256, .hidden_dim = 688, .n_layers = 1, .n_heads = 8, .n_kv_heads = n_kv_heads,
                           .vocab_size = 8, .seq_len = 96, .rope_theta = 10000.0f, .norm_eps = 1e-5f,
                           .rope_style = ROPE_HALF};
    for (int i = 0; i < 2; i++) norms[i] = test_random_tensor(c.dim, 0.3f, 1.0f);
    for (int m = 0; m < N_MATS; m++)
        w->mat[m] = mats[m] = test_random_tensor((size_t)mat_rows(&c, m) * mat_cols(&c, m),
                                                 (m == MAT_WQ || m == MAT_WK ? qk_gain : 1.0f) / sqrtf(mat_cols(&c, m)), 0.0f);
    w->attn_norm = norms[0];
    w->ffn_norm = norms[1];
    return c;
}

static void tiled_block_free(float *norms[2], float *mats[N_MATS]) {
    for (int i = 0; i < 2; i++) free(norms[i]);
    for (int m = 0; m < N_MATS; m++) free(mats[m]);
}

static void test_forward_only_tiled(void **state) {
    (void)state;
    int const B = 2, T = 96;
    test_random_seed(0xf0f0);
    BlockWeights w;
    float *norms[2], *mats[N_MATS];
    ModelConfig const c = tiled_block(2, 1.0f, &w, norms, mats);
    size_t const nd = (size_t)B * T * c.dim;
    float *x = test_random_tensor(nd, 1.0f, 0.0f), *y = malloc(nd * sizeof(float));
    BlockActs *acts = block_acts_create(&c, B, T);
    assert_true(y && acts);
    block_forward(&c, &w, x, y, acts);
    check_forward_only(&c, &w, B, T, x, y);
    block_acts_free(acts);
    tiled_block_free(norms, mats);
    free(x);
    free(y);
}

/* Forward, backward and forward-only on 2, 3 and 5 threads give the 1-thread results bit
 * for bit: the attention runs its (sequence, head) pairs side by side (kv groups in the
 * backward, whose heads accumulate dK, dV in order), each with scratch of its own, and
 * the products are cut into gemm()'s fixed tiles. 16 and 8 pairs for 5 threads: some
 * threads take several, and with GQA several heads share one dK. */
static void check_threads_bit_identical(int n_kv_heads) {
    int const B = 2, T = 96, threads[] = {1, 2, 3, 5};
    test_random_seed(0x7417ULL + (unsigned long long)n_kv_heads);
    BlockWeights w;
    float *norms[2], *mats[N_MATS];
    ModelConfig const c = tiled_block(n_kv_heads, 3.0f, &w, norms, mats);
    size_t const nd = (size_t)B * T * c.dim;
    float *x = test_random_tensor(nd, 1.0f, 0.0f), *dy = test_random_tensor(nd, 1.0f, 0.0f);
    float *y[4], *grad[4][N_MATS];
    for (int k = 0; k < 4; k++) {
        parallel_set_threads(threads[k]);
        BlockActs *acts = block_acts_create(&c, B, T);
        y[k] = malloc(nd * sizeof(float));
        assert_true(acts && y[k]);
        BlockGrads g;
        for (int m = 0; m < N_MATS; m++) {
            g.mat[m] = grad[k][m] = malloc((size_t)mat_rows(&c, m) * mat_cols(&c, m) * sizeof(float));
            assert_non_null(g.mat[m]);
        }
        block_forward(&c, &w, x, y[k], acts);
        block_backward(&c, &w, acts, dy, &g);
        block_acts_free(acts);
        check_forward_only(&c, &w, B, T, x, y[k]);
        if (k == 0) continue;
        assert_memory_equal(y[k], y[0], nd * sizeof(float));
        for (int m = 0; m < N_MATS; m++)
            assert_memory_equal(grad[k][m], grad[0][m], (size_t)mat_rows(&c, m) * mat_cols(&c, m) * sizeof(float));
    }
    parallel_set_threads(1);
    for (int k = 0; k < 4; k++) {
        free(y[k]);
        for (int m = 0; m < N_MATS; m++) free(grad[k][m]);
    }
    tiled_block_free(norms, mats);
    free(x);
    free(dy);
}

static void test_threads_gqa(void **state) { (void)state; check_threads_bit_identical(2); }
static void test_threads_mha(void **state) { (void)state; check_threads_bit_identical(8); }

static void check_block(RopeStyle style, int n_kv_heads) {
    unsigned long long const seed = 0xb10c0000ULL + 10 * style + n_kv_heads;
    Fixture f;
    fixture_make(&f, style, n_kv_heads, seed);
    const ModelConfig *c = &f.c;
    size_t const nd = (size_t)f.B * f.T * c->dim;
    printf("rope %s, H %d, Hkv %d, seed %#llx, 3 threads\n",
           style == ROPE_INTERLEAVED ? "interleaved" : "half", c->n_heads, n_kv_heads, seed);
    parallel_set_threads(3); /* 8 (sequence, head) pairs side by side against the naive loops */

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
    check_forward_only(c, &f.w, f.B, f.T, f.x, y);

    /* backward, twice (a forward each: the backward consumes U and G): grads are
     * overwritten, not accumulated, and the same forward gives the same gradients */
    BlockGrads grads, again;
    for (int m = 0; m < N_MATS; m++) {
        size_t const n = (size_t)mat_rows(c, m) * mat_cols(c, m);
        grads.mat[m] = malloc(n * sizeof(float));
        again.mat[m] = malloc(n * sizeof(float));
        assert_true(grads.mat[m] && again.mat[m]);
    }
    block_backward(c, &f.w, acts, f.r, &grads);
    block_forward(c, &f.w, f.x, y, acts);
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

    parallel_set_threads(1);
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
        cmocka_unit_test(test_forward_only_tiled),
        cmocka_unit_test(test_threads_gqa),
        cmocka_unit_test(test_threads_mha),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
