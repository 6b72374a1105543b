/* Eval metrics against naive long-double formulas on random logits. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "eval_metrics.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double uniform(void) { /* splitmix64 -> [0, 1) */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

/* Logits spread over +-scale, like a model's (scale 10 gives peaked distributions). */
static void random_logits(float *x, int V, double scale) {
    for (int i = 0; i < V; i++) x[i] = (float)(scale * (2.0 * uniform() - 1.0));
}

/* Naive softmax probabilities without the max shift (fine for |logits| <= 30 in long double). */
static void naive_probs(const float *x, int V, long double *p) {
    long double z = 0;
    for (int i = 0; i < V; i++) z += expl((long double)x[i]);
    for (int i = 0; i < V; i++) p[i] = expl((long double)x[i]) / z;
}

static long double naive_kl(const float *a, const float *b, int V) {
    long double *p = malloc((size_t)V * sizeof *p), *q = malloc((size_t)V * sizeof *q), kl = 0;
    naive_probs(a, V, p);
    naive_probs(b, V, q);
    for (int i = 0; i < V; i++) kl += p[i] * logl(p[i] / q[i]);
    free(p);
    free(q);
    return kl;
}

static void test_nll_and_log_softmax(void **state) {
    (void)state;
    int const V = 512;
    float x[512];
    double logp[512];
    long double p[512];
    for (int trial = 0; trial < 50; trial++) {
        random_logits(x, V, trial % 2 ? 10.0 : 1.0);
        naive_probs(x, V, p);
        log_softmax(x, V, logp);
        double sum = 0;
        for (int i = 0; i < V; i++) {
            assert_true(fabs(logp[i] - (double)logl(p[i])) < 1e-12 * (1 + fabs(logp[i])));
            sum += exp(logp[i]);
        }
        assert_true(fabs(sum - 1.0) < 1e-12);
        int const target = (int)(uniform() * V);
        double const nll = nll_of(x, V, target);
        assert_true(fabs(nll + (double)logl(p[target])) < 1e-12 * (1 + nll));
    }
    /* Large logits must not overflow: softmax is shift-invariant. */
    random_logits(x, V, 1.0);
    double const base = nll_of(x, V, 7);
    for (int i = 0; i < V; i++) x[i] += 1000.0f;
    assert_true(fabs(nll_of(x, V, 7) - base) < 1e-3); /* float rounding of x + 1000 only */
}

static void test_kl(void **state) {
    (void)state;
    int const V = 300;
    float a[300], b[300];
    double scratch[600];
    for (int trial = 0; trial < 50; trial++) {
        double const scale = trial % 2 ? 8.0 : 1.0;
        random_logits(a, V, scale);
        assert_true(kl_divergence(a, a, V, scratch) == 0.0); /* KL(p || p) is exactly 0 */
        for (int i = 0; i < V; i++) b[i] = a[i] + (float)(0.3 * scale * (2 * uniform() - 1));
        double const kl = kl_divergence(a, b, V, scratch);
        long double const want = naive_kl(a, b, V);
        assert_true(kl > 0);
        assert_true(fabs(kl - (double)want) < 1e-10 * (1 + (double)want));
        /* KL is not symmetric: the reverse differs (and is checked the same way). */
        assert_true(fabs(kl_divergence(b, a, V, scratch) - (double)naive_kl(b, a, V)) < 1e-10);
    }
}

static void test_argmax(void **state) {
    (void)state;
    float x[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f, 0.0f};
    assert_int_equal(argmax(x, 6), 1); /* the first of equal maxima */
    x[5] = 3.0f;
    assert_int_equal(argmax(x, 6), 5);
    assert_int_equal(argmax(x, 1), 0);
}

static void test_totals(void **state) {
    (void)state;
    int const T = 5, V = 40;
    float lg[5 * 40], lq[5 * 40];
    int tokens[5] = {1, 7, 39, 0, 12};
    double scratch[80];
    random_logits(lg, T * V, 4.0);
    for (int i = 0; i < T * V; i++) lq[i] = lg[i] + (float)(0.5 * (2 * uniform() - 1));
    lq[2 * V + 3] = 100.0f; /* position 2: the quantized argmax surely differs */
    EvalTotals acc = {0};
    eval_totals_add(&acc, lg, lq, tokens, T, V, scratch);
    eval_totals_add(&acc, lg, NULL, tokens, T, V, scratch); /* fp32 only */
    long double nll = 0, nll_q = 0, kl = 0;
    long double p[40];
    int agree = 0;
    for (int t = 0; t < T; t++) {
        if (t + 1 < T) {
            naive_probs(lg + t * V, V, p);
            nll -= logl(p[tokens[t + 1]]);
            naive_probs(lq + t * V, V, p);
            nll_q -= logl(p[tokens[t + 1]]);
        }
        kl += naive_kl(lg + t * V, lq + t * V, V);
        int ia = 0, ib = 0;
        for (int i = 1; i < V; i++) {
            if (lg[t * V + i] > lg[t * V + ia]) ia = i;
            if (lq[t * V + i] > lq[t * V + ib]) ib = i;
        }
        agree += ia == ib;
    }
    assert_int_equal(acc.n_predicted, 2 * (T - 1));
    assert_int_equal(acc.n_positions, 2 * T);
    assert_true(fabs(acc.nll_sum - 2 * (double)nll) < 1e-10);
    assert_true(fabs(acc.nll_sum_q - (double)nll_q) < 1e-10);
    assert_true(fabs(acc.kl_sum - (double)kl) < 1e-10);
    assert_int_equal(acc.n_agree, agree);
    assert_true(agree < T);
    assert_true(fabs(eval_perplexity(acc.nll_sum, acc.n_predicted) - exp((double)nll / (T - 1))) < 1e-9);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nll_and_log_softmax),
        cmocka_unit_test(test_kl),
        cmocka_unit_test(test_argmax),
        cmocka_unit_test(test_totals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
