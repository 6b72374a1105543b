/* Eval metrics against naive long-double formulas on random logits; their statistics
 * (mean with uncertainty, percentiles, top-1) against brute force (two-pass long double,
 * insertion-sorted order statistics). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void test_records(void **state) {
    (void)state;
    int const T = 5, V = 40;
    float lg[5 * 40], lq[5 * 40];
    int tokens[5] = {1, 7, 39, 0, 12};
    double scratch[80];
    random_logits(lg, T * V, 4.0);
    for (int i = 0; i < T * V; i++) lq[i] = lg[i] + (float)(0.5 * (2 * uniform() - 1));
    lq[2 * V + 3] = 100.0f; /* position 2: the quantized argmax surely differs */
    EvalRecords rq, rf;
    assert_int_equal(eval_records_alloc(&rq, 1, T, 1), NQ_OK);
    assert_int_equal(eval_records_alloc(&rf, 1, T, 0), NQ_OK);
    eval_records_add(&rq, lg, lq, tokens, T, V, scratch);
    eval_records_add(&rf, lg, NULL, tokens, T, V, scratch); /* fp32 only */
    assert_null(rf.kl);
    assert_int_equal(rq.n_predicted, T - 1);
    assert_int_equal(rq.n_positions, T);
    long double p[40];
    int agree = 0;
    for (int t = 0; t < T; t++) {
        if (t + 1 < T) {
            naive_probs(lg + t * V, V, p);
            assert_true(fabs(rq.nll[t] + (double)logl(p[tokens[t + 1]])) < 1e-12);
            assert_true(rf.nll[t] == rq.nll[t]);
            naive_probs(lq + t * V, V, p);
            assert_true(fabs(rq.nll_q[t] + (double)logl(p[tokens[t + 1]])) < 1e-12);
        }
        assert_true(fabs(rq.kl[t] - (double)naive_kl(lg + t * V, lq + t * V, V)) < 1e-12);
        int ia = 0, ib = 0;
        for (int i = 1; i < V; i++) {
            if (lg[t * V + i] > lg[t * V + ia]) ia = i;
            if (lq[t * V + i] > lq[t * V + ib]) ib = i;
        }
        assert_int_equal(rq.agree[t], ia == ib);
        agree += ia == ib;
    }
    assert_true(agree < T);
    eval_records_free(&rq);
    eval_records_free(&rf);
}

/* Brute force in long double, two passes: the mean, and its standard error
 * sqrt(sum (x - m)^2 / (n (n - 1))), which is llama.cpp's sqrt((S2/n - m^2) / (n - 1)). */
static void naive_mean_se(const double *x, size_t n, double *mean, double *se) {
    long double m = 0, ss = 0;
    for (size_t i = 0; i < n; i++) m += x[i];
    m /= n;
    for (size_t i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    *mean = (double)m;
    *se = (double)sqrtl(ss / ((long double)n * (long double)(n - 1)));
}

static int close_to(double got, double want, double rel) { return fabs(got - want) <= rel * (fabs(want) + 1e-300); }

static void test_mean_estimate(void **state) {
    (void)state;
    double x[1000];
    for (int i = 0; i < 1000; i++) x[i] = 3.0 + 2.0 * uniform() * uniform();
    double mean, se;
    naive_mean_se(x, 1000, &mean, &se);
    Estimate const e = mean_estimate(x, 1000);
    /* One-pass S2/n - m^2 loses digits to cancellation: ~1e-16 * m^2 / var relative, ~1e-13 here. */
    assert_true(close_to(e.value, mean, 1e-14));
    assert_true(close_to(e.uncertainty, se, 1e-10));
    /* llama.cpp's rule: no error bar from 10 values or fewer, nor for constant values. */
    assert_true(mean_estimate(x, 10).uncertainty == 0.0);
    assert_true(mean_estimate(x, 11).uncertainty > 0.0);
    double const same[20] = {0};
    assert_true(mean_estimate(same, 20).uncertainty == 0.0);
}

/* Insertion sort (not the qsort the code under test uses). */
static void naive_sort(double *x, size_t n) {
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && x[j - 1] > x[j]; j--) {
            double const t = x[j];
            x[j] = x[j - 1];
            x[j - 1] = t;
        }
}

/* The quantile at f (n - 1), interpolated, in long double. */
static double naive_percentile(const double *sorted, size_t n, double f) {
    long double const rank = (long double)f * (long double)(n - 1);
    size_t const lo = (size_t)floorl(rank);
    if (lo + 1 >= n) return sorted[n - 1];
    long double const w = rank - (long double)lo;
    return (double)((1 - w) * sorted[lo] + w * sorted[lo + 1]);
}

static void test_percentile(void **state) {
    (void)state;
    double const three[3] = {1.0, 2.0, 3.0};
    assert_true(percentile_sorted(three, 3, 0.5) == 2.0);
    assert_true(percentile_sorted(three, 3, 0.25) == 1.5);
    assert_true(percentile_sorted(three, 3, 1.0) == 3.0);
    assert_true(percentile_sorted(three, 3, 0.0) == 1.0);
    double const one = 7.0;
    assert_true(percentile_sorted(&one, 1, 0.99) == 7.0);
    size_t const sizes[] = {2, 7, 1000, 1001, 4096};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t const n = sizes[k];
        double *x = malloc(n * sizeof *x);
        for (size_t i = 0; i < n; i++) x[i] = uniform() * uniform() * 3.0; /* skewed, like KL */
        naive_sort(x, n);
        double const fs[] = {0.1, 0.5, 0.9, 0.99, 0.999};
        for (size_t j = 0; j < sizeof fs / sizeof fs[0]; j++) {
            double const got = percentile_sorted(x, n, fs[j]);
            assert_true(close_to(got, naive_percentile(x, n, fs[j]), 1e-12));
            /* It lies between the neighbouring order statistics. */
            size_t below = 0;
            for (size_t i = 0; i < n; i++) below += x[i] < got;
            assert_true(below <= (size_t)(fs[j] * (double)(n - 1)) + 1);
        }
        free(x);
    }
}

/* The whole summary against brute force on random windows; and the same summary whatever
 * the split of the windows over "ranks" (records concatenated in window order). */
static void test_summary(void **state) {
    (void)state;
    int const W = 6, T = 40, V = 64;
    float *lg = malloc(sizeof(float) * W * T * V), *lq = malloc(sizeof(float) * W * T * V);
    int *tok = malloc(sizeof(int) * W * T);
    double scratch[128];
    random_logits(lg, W * T * V, 5.0);
    for (int i = 0; i < W * T * V; i++) lq[i] = lg[i] + (float)(0.8 * (2 * uniform() - 1));
    for (int i = 0; i < W * T; i++) tok[i] = (int)(uniform() * V);
    EvalRecords all, part[2];
    assert_int_equal(eval_records_alloc(&all, (size_t)W, T, 1), NQ_OK);
    assert_int_equal(eval_records_alloc(&part[0], 2, T, 1), NQ_OK);
    assert_int_equal(eval_records_alloc(&part[1], (size_t)W - 2, T, 1), NQ_OK);
    for (int w = 0; w < W; w++) {
        size_t const off = (size_t)w * T * V;
        eval_records_add(&all, lg + off, lq + off, tok + w * T, T, V, scratch);
        eval_records_add(&part[w < 2 ? 0 : 1], lg + off, lq + off, tok + w * T, T, V, scratch);
    }
    /* Brute force from the logits. */
    size_t const np = (size_t)W * (T - 1), nq = (size_t)W * T;
    double *nll = malloc(np * sizeof *nll), *nll_q = malloc(np * sizeof *nll_q), *kl = malloc(nq * sizeof *kl);
    long double p[64];
    size_t ip = 0, agree = 0;
    for (int w = 0; w < W; w++)
        for (int t = 0; t < T; t++) {
            const float *a = lg + ((size_t)w * T + t) * V, *b = lq + ((size_t)w * T + t) * V;
            if (t + 1 < T) {
                naive_probs(a, V, p);
                nll[ip] = -(double)logl(p[tok[w * T + t + 1]]);
                naive_probs(b, V, p);
                nll_q[ip++] = -(double)logl(p[tok[w * T + t + 1]]);
            }
            kl[(size_t)w * T + t] = (double)naive_kl(a, b, V);
            int ia = 0, ib = 0;
            for (int i = 1; i < V; i++) {
                if (a[i] > a[ia]) ia = i;
                if (b[i] > b[ib]) ib = i;
            }
            agree += ia == ib;
        }
    EvalSummary s;
    assert_int_equal(eval_summarize(&all, &s), NQ_OK);
    double m, se;
    naive_mean_se(nll, np, &m, &se);
    assert_true(close_to(s.ppl.value, exp(m), 1e-11));
    assert_true(close_to(s.ppl.uncertainty, exp(m) * se, 1e-8));
    naive_mean_se(nll_q, np, &m, &se);
    assert_true(close_to(s.ppl_q.value, exp(m), 1e-11));
    assert_true(close_to(s.ppl_q.uncertainty, exp(m) * se, 1e-8));
    assert_true(s.ppl_q.value > s.ppl.value); /* noise on the logits costs likelihood */
    naive_mean_se(kl, nq, &m, &se);
    assert_true(close_to(s.kl.value, m, 1e-11));
    assert_true(close_to(s.kl.uncertainty, se, 1e-8));
    naive_sort(kl, nq);
    /* Per-position KL agrees with brute force to ~1e-12 relative (test_kl), and so do its
     * order statistics. */
    assert_true(close_to(s.kl_p90, naive_percentile(kl, nq, 0.90), 1e-10));
    assert_true(close_to(s.kl_p99, naive_percentile(kl, nq, 0.99), 1e-10));
    assert_true(close_to(s.kl_p999, naive_percentile(kl, nq, 0.999), 1e-10));
    assert_true(close_to(s.kl_max, kl[nq - 1], 1e-10));
    assert_true(s.kl_p90 <= s.kl_p99 && s.kl_p99 <= s.kl_p999 && s.kl_p999 <= s.kl_max);
    double const top = (double)agree / (double)nq;
    assert_true(s.top1.value == top);
    assert_true(close_to(s.top1.uncertainty, sqrt(top * (1 - top) / (double)(nq - 1)), 1e-12));
    assert_true(agree > 0 && agree < nq);
    /* Two "ranks", concatenated in window order: bit for bit the same statistics. */
    EvalRecords cat;
    assert_int_equal(eval_records_alloc(&cat, (size_t)W, T, 1), NQ_OK);
    for (int r = 0; r < 2; r++) {
        memcpy(cat.nll + cat.n_predicted, part[r].nll, part[r].n_predicted * sizeof(double));
        memcpy(cat.nll_q + cat.n_predicted, part[r].nll_q, part[r].n_predicted * sizeof(double));
        memcpy(cat.kl + cat.n_positions, part[r].kl, part[r].n_positions * sizeof(double));
        memcpy(cat.agree + cat.n_positions, part[r].agree, part[r].n_positions);
        cat.n_predicted += part[r].n_predicted;
        cat.n_positions += part[r].n_positions;
    }
    EvalSummary s2;
    assert_int_equal(eval_summarize(&cat, &s2), NQ_OK);
    assert_memory_equal(&s, &s2, sizeof s);
    eval_records_free(&cat);
    eval_records_free(&all);
    eval_records_free(&part[0]);
    eval_records_free(&part[1]);
    free(nll);
    free(nll_q);
    free(kl);
    free(lg);
    free(lq);
    free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nll_and_log_softmax),
        cmocka_unit_test(test_kl),
        cmocka_unit_test(test_argmax),
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_mean_estimate),
        cmocka_unit_test(test_percentile),
        cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
