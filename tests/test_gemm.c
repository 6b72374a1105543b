/* gemm() (src/gemm.h): every transpose combination, beta 0 and 1, leading dimensions
 * larger than the rows, shapes below the cut and cut into several tiles with ragged last
 * tiles: the result equals a naive double-precision loop within a measured bound, and is
 * bit-identical on 1, 2 and 3 threads (the tiles are fixed by the shapes alone). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "parallel.h"
#include "rng.h"

typedef struct {
    int M, N, K;
} Dims;

/* Small (one call), cut along M only, along N only, both, with ragged last tiles. */
static const Dims dims[] = {{7, 5, 3}, {33, 65, 17}, {2100, 40, 120}, {30, 4200, 90},
                            {1030, 2100, 4}, {2050, 2060, 2}};

static float *random_floats(Rng *rng, size_t n) {
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = 2.0f * rng_uniform_float(rng) - 1.0f;
    return x;
}

/* C = alpha op(A) op(B) + beta C in double, the reference. */
static void naive(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, const float *C0, double *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double const a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double const b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
            }
            C[(size_t)i * ldc + j] = alpha * s + beta * (double)C0[(size_t)i * ldc + j];
        }
}

static void test_gemm_reference_and_threads(void **state) {
    (void)state;
    Rng rng;
    rng_seed(&rng, 77, 0);
    double worst = 0;
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
        Dims const d = dims[di];
        for (int variant = 0; variant < 8; variant++) {
            int const ta = variant & 1, tb = (variant >> 1) & 1;
            float const beta = (variant >> 2) & 1 ? 1.0f : 0.0f, alpha = 0.75f;
            /* leading dimensions 3 beyond the rows read, so tiles must honour them */
            int const lda = (ta ? d.M : d.K) + 3, ldb = (tb ? d.K : d.N) + 3, ldc = d.N + 3;
            size_t const na = (size_t)(ta ? d.K : d.M) * lda, nb = (size_t)(tb ? d.N : d.K) * ldb;
            size_t const nc = (size_t)d.M * ldc;
            float *A = random_floats(&rng, na), *B = random_floats(&rng, nb);
            float *C0 = random_floats(&rng, nc), *C[3];
            double *ref = malloc(nc * sizeof *ref);
            assert_non_null(ref);
            naive(ta, tb, d.M, d.N, d.K, alpha, A, lda, B, ldb, beta, C0, ref, ldc);
            for (int t = 0; t < 3; t++) {
                parallel_set_threads(t + 1);
                C[t] = malloc(nc * sizeof(float));
                assert_non_null(C[t]);
                memcpy(C[t], C0, nc * sizeof(float));
                gemm(ta, tb, d.M, d.N, d.K, alpha, A, lda, B, ldb, beta, C[t], ldc);
            }
            parallel_set_threads(1);
            for (int i = 0; i < d.M; i++)
                for (int j = 0; j < d.N; j++) {
                    size_t const at = (size_t)i * ldc + j;
                    /* relative to the sum of |terms|, which bounds float rounding */
                    double const err = fabs(C[0][at] - ref[at]) / (d.K * 0.75 + 1.0);
                    if (err > worst) worst = err;
                }
            /* the padding beyond N in each row is never written */
            for (int i = 0; i < d.M; i++)
                for (int j = d.N; j < ldc; j++)
                    assert_true(C[0][(size_t)i * ldc + j] == C0[(size_t)i * ldc + j]);
            assert_memory_equal(C[1], C[0], nc * sizeof(float));
            assert_memory_equal(C[2], C[0], nc * sizeof(float));
            for (int t = 0; t < 3; t++) free(C[t]);
            free(A), free(B), free(C0), free(ref);
        }
    }
    /* measured 8.4e-8 (Haswell, Zen, Sandybridge kernels): float sums of up to 300 products
     * of numbers below 1, per unit of K; 1e-6 is 12x that, and a wrong tile offset or a
     * dropped beta gives errors of order 1e-2 and above */
    print_message("gemm: worst error against double loops, per unit of K: %.3g\n", worst);
    assert_true(worst < 1e-6);
}

/* The tiles depend on the shapes alone; small products are not cut. */
static void test_gemm_tiles(void **state) {
    (void)state;
    int tm, tn;
    gemm_tiles(7, 5, 3, &tm, &tn);
    assert_int_equal(tm, 7);
    assert_int_equal(tn, 5);
    gemm_tiles(4096, 11008, 4096, &tm, &tn);
    assert_true(tm < 4096 && tn < 11008);
    int tm2, tn2;
    for (int t = 1; t <= 3; t++) {
        parallel_set_threads(t);
        gemm_tiles(4096, 11008, 4096, &tm2, &tn2);
        assert_int_equal(tm2, tm);
        assert_int_equal(tn2, tn);
    }
    parallel_set_threads(1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_tiles),
        cmocka_unit_test(test_gemm_reference_and_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
