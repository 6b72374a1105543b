/* The seeded generator and the per-epoch batch sampler: determinism, streams, unbiased
 * ranges, permutations, epoch coverage, and resume from a saved state or from
 * (seed, batches drawn). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

static void test_determinism_and_streams(void **state) {
    (void)state;
    Rng a, b, c, d;
    rng_seed(&a, 1234, 7);
    rng_seed(&b, 1234, 7);
    rng_seed(&c, 1234, 8);
    rng_seed(&d, 1235, 7);
    int same_c = 0, same_d = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t const x = rng_next_u64(&a);
        assert_true(x == rng_next_u64(&b));
        same_c += x == rng_next_u64(&c);
        same_d += x == rng_next_u64(&d);
    }
    assert_int_equal(same_c, 0);
    assert_int_equal(same_d, 0);
    /* The state is plain data: a copy continues identically. */
    Rng saved = a;
    uint64_t first[8];
    for (int i = 0; i < 8; i++) first[i] = rng_next_u64(&a);
    for (int i = 0; i < 8; i++) assert_true(first[i] == rng_next_u64(&saved));
}

static void test_uniform_and_below(void **state) {
    (void)state;
    Rng r;
    rng_seed(&r, 99, 0);
    double sum = 0.0;
    enum { N = 200000 };
    for (int i = 0; i < N; i++) {
        double const u = rng_uniform_double(&r);
        float const f = rng_uniform_float(&r);
        assert_true(u >= 0.0 && u < 1.0 && f >= 0.0f && f < 1.0f);
        sum += u;
    }
    assert_true(fabs(sum / N - 0.5) < 0.005);
    /* rng_below(7): each value ~1/7, chi-square far below the 0.999 quantile (22.5). */
    int count[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint64_t const k = rng_below(&r, 7);
        assert_true(k < 7);
        count[k]++;
    }
    double chi2 = 0.0;
    for (int k = 0; k < 7; k++) chi2 += (count[k] - 10000.0) * (count[k] - 10000.0) / 10000.0;
    assert_true(chi2 < 22.5);
    assert_true(rng_below(&r, 1) == 0 && rng_below(&r, 0) == 0);
    uint64_t const big = (1ull << 63) + 12345; /* the rejection path matters here */
    for (int i = 0; i < 100; i++) assert_true(rng_below(&r, big) < big);
}

static void test_shuffle_is_permutation(void **state) {
    (void)state;
    Rng r;
    rng_seed(&r, 5, 5);
    enum { N = 397 };
    int a[N], seen[N], moved = 0;
    for (int rep = 0; rep < 20; rep++) {
        for (int i = 0; i < N; i++) a[i] = i;
        rng_shuffle(&r, a, N);
        memset(seen, 0, sizeof seen);
        for (int i = 0; i < N; i++) {
            assert_true(a[i] >= 0 && a[i] < N && !seen[a[i]]);
            seen[a[i]] = 1;
            moved += a[i] != i;
        }
    }
    assert_true(moved > 20 * N / 2);
    int one = 0;
    rng_shuffle(&r, &one, 1);
    assert_int_equal(one, 0);
}

/* Batches of 4 over 397 sequences: each epoch's indices are exactly 0..396 once. */
static void test_sampler_covers_each_epoch(void **state) {
    (void)state;
    enum { N = 397, B = 4, EPOCHS = 5 };
    BatchSampler bs;
    assert_int_equal(batch_sampler_create(&bs, N, B, 42, 3), NQ_OK);
    int *stream = malloc(sizeof(int) * (N * EPOCHS + B));
    assert_non_null(stream);
    int const batches = (N * EPOCHS) / B + 1;
    for (int b = 0; b < batches; b++) batch_sampler_next(&bs, stream + (size_t)b * B);
    assert_true(bs.state.batches_drawn == (uint64_t)batches);
    int differs = 0;
    for (int e = 0; e < EPOCHS; e++) {
        int seen[N] = {0};
        for (int i = 0; i < N; i++) {
            int const x = stream[e * N + i];
            assert_true(x >= 0 && x < N && !seen[x]);
            seen[x] = 1;
            if (e > 0) differs += x != stream[(e - 1) * N + i];
        }
    }
    assert_true(differs > N); /* reshuffled at each epoch start */
    free(stream);
    batch_sampler_free(&bs);
    batch_sampler_free(NULL);
}

/* A saved state, or (seed, batches drawn), continues the same stream of batches. */
static void test_sampler_restore(void **state) {
    (void)state;
    enum { N = 37, B = 5, TOTAL = 40 };
    BatchSampler ref, restored, sought;
    assert_int_equal(batch_sampler_create(&ref, N, B, 7, 11), NQ_OK);
    int want[TOTAL][B];
    BatchSamplerState saved[TOTAL];
    for (int b = 0; b < TOTAL; b++) {
        saved[b] = ref.state;
        batch_sampler_next(&ref, want[b]);
    }
    for (int at = 0; at < TOTAL; at += 3) {
        assert_int_equal(batch_sampler_create(&restored, N, B, 7, 11), NQ_OK);
        assert_int_equal(batch_sampler_create(&sought, N, B, 7, 11), NQ_OK);
        BatchSamplerState copy; /* as if written to and read from a file */
        memcpy(&copy, &saved[at], sizeof copy);
        assert_int_equal(batch_sampler_restore(&restored, &copy), NQ_OK);
        batch_sampler_seek(&sought, (uint64_t)at);
        assert_memory_equal(&sought.state, &saved[at], sizeof saved[at]);
        for (int b = at; b < TOTAL; b++) {
            int got[B], got2[B];
            batch_sampler_next(&restored, got);
            batch_sampler_next(&sought, got2);
            assert_memory_equal(got, want[b], sizeof got);
            assert_memory_equal(got2, want[b], sizeof got2);
        }
        batch_sampler_free(&restored);
        batch_sampler_free(&sought);
    }
    BatchSamplerState bad = saved[3];
    bad.position = N + 1;
    assert_int_equal(batch_sampler_restore(&ref, &bad), NQ_ERR_INPUT);
    nq_clear_error();
    batch_sampler_free(&ref);
    BatchSampler none;
    assert_int_equal(batch_sampler_create(&none, 0, 4, 1, 1), NQ_ERR_INPUT);
    assert_null(none.perm);
    nq_clear_error();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism_and_streams),
        cmocka_unit_test(test_uniform_and_below),
        cmocka_unit_test(test_shuffle_is_permutation),
        cmocka_unit_test(test_sampler_covers_each_epoch),
        cmocka_unit_test(test_sampler_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
