/* The IQ4_NL / IQ4_XS grid quantizers against independent references: indices against
 * an exhaustive nearest-value search in double, values and dequantization against the
 * table formula, IQ4_XS's scale rounding against a brute-force search over its 64
 * integers, the straight-through gradients against a naive double loop and central
 * finite differences in double, the scale fit against a dense scan; ragged rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "float16.h"
#include "quant_iq4.h"
#include "rng.h"

// ----------------------------------------------------------------------------- references

/* argmin over i of |z - K[i] / 127| in double, ties to the larger index. */
static int ref_index(float z) {
    int best = 0;
    double best_d = INFINITY;
    for (int i = 0; i < IQ4_LEVELS; i++) {
        double const d = fabs((double)z - (double)iq4_grid[i] / 127.0);
        if (d <= best_d) best = i, best_d = d;
    }
    return best;
}

/* Latents that probe every decision: uniform over [-1.1, 1.1], floats within a few ulps
 * of each real midpoint, the grid values themselves, zeros and the ends. */
static void fill_latents(Rng *rng, float *z, size_t n) {
    for (size_t i = 0; i < n; i++) {
        switch (i % 4) {
        case 0: z[i] = 2.2f * rng_uniform_float(rng) - 1.1f; break;
        case 1: {
            int const j = (int)rng_below(rng, IQ4_LEVELS - 1);
            float t = (float)(((double)iq4_grid[j] + iq4_grid[j + 1]) / 254.0);
            for (int s = (int)rng_below(rng, 9) - 4; s != 0; s += s > 0 ? -1 : 1)
                t = nextafterf(t, s > 0 ? 2.0f : -2.0f);
            z[i] = t;
            break;
        }
        case 2: z[i] = iq4_value((int)rng_below(rng, IQ4_LEVELS)); break;
        default: {
            static const float ends[] = {0.0f, -0.0f, 1.0f, -1.0f, 1e-30f, -1e-30f};
            z[i] = ends[rng_below(rng, 6)];
        }
        }
    }
}

static void fill_weights(Rng *rng, float *w, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float const u = rng_uniform_float(rng) + rng_uniform_float(rng) - 1.0f;
        w[i] = (i % 97 == 5) ? 0.4f * u * 20.0f : 0.02f * u; /* a few outliers per row */
    }
}

// ----------------------------------------------------------------------------- tests

static void test_index_matches_exhaustive_search(void **state) {
    (void)state;
    Rng rng;
    rng_seed(&rng, 11, 0);
    enum { N = 400000 };
    float *z = malloc(N * sizeof *z);
    assert_non_null(z);
    fill_latents(&rng, z, N);
    for (size_t i = 0; i < N; i++) {
        if (iq4_index(z[i]) != ref_index(z[i]))
            fail_msg("z = %.9g: index %d, exhaustive search %d", z[i], iq4_index(z[i]),
                     ref_index(z[i]));
    }
    /* the grid's own values decode to themselves, and the ends clamp */
    for (int i = 0; i < IQ4_LEVELS; i++) assert_int_equal(iq4_index(iq4_value(i)), i);
    assert_int_equal(iq4_index(-5.0f), 0);
    assert_int_equal(iq4_index(5.0f), IQ4_LEVELS - 1);
    free(z);
}

/* Ragged: 172 inputs = 5 groups of 32 and one of 12 (the bundled model's w2). */
static const int shapes[][2] = {{3, 64}, {5, 172}, {2, 31}, {4, 33}, {1, 1}};
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

static void test_init_forward_and_dequantize(void **state) {
    (void)state;
    Rng rng;
    rng_seed(&rng, 12, 0);
    for (int s = 0; s < N_SHAPES; s++) {
        int const rows = shapes[s][0], cols = shapes[s][1], groups = iq4_groups(cols);
        assert_int_equal(groups, (cols + 31) / 32);
        size_t const n = (size_t)rows * cols, ng = (size_t)rows * groups;
        float *w = malloc(n * sizeof *w), *z = malloc(n * sizeof *z), *w_hat = malloc(n * sizeof *w_hat);
        float *M = malloc(ng * sizeof *M), *d = malloc(ng * sizeof *d), *deq = malloc(n * sizeof *deq);
        int8_t *codes = malloc(n);
        assert_true(w && z && w_hat && M && d && deq && codes);
        fill_weights(&rng, w, n);
        if (rows > 1) memset(w + cols, 0, (size_t)cols * sizeof *w); /* an all-zero row */
        iq4_init_scales(rows, cols, w, M);
        iq4_normalise(rows, cols, w, M, z);
        iq4nl_block_scales(rows, cols, M, d);
        iq4_forward(rows, cols, z, d, codes, w_hat);
        iq4_dequantize(rows, cols, codes, d, deq);
        for (int r = 0; r < rows; r++) {
            for (int g = 0; g < groups; g++) {
                int const c0 = g * 32, c1 = c0 + 32 < cols ? c0 + 32 : cols;
                /* M0 = -(element of largest |w|), by a naive scan */
                float amax = 0.0f, max = 0.0f;
                for (int c = c0; c < c1; c++)
                    if (fabsf(w[(size_t)r * cols + c]) > amax) amax = fabsf(w[(size_t)r * cols + c]), max = w[(size_t)r * cols + c];
                float const Mg = M[(size_t)r * groups + g];
                assert_true(Mg == -max);
                assert_true(d[(size_t)r * groups + g] == Mg / 127.0f);
                for (int c = c0; c < c1; c++) {
                    size_t const i = (size_t)r * cols + c;
                    float const zi = Mg != 0.0f ? fminf(1.0f, fmaxf(-1.0f, w[i] / Mg)) : 0.0f;
                    assert_true(z[i] == zi);
                    assert_int_equal(codes[i], ref_index(zi));
                    /* the forward is the decoder's formula, bit for bit */
                    assert_true(w_hat[i] == (Mg / 127.0f) * (float)iq4_grid[codes[i]]);
                    assert_true(deq[i] == w_hat[i]);
                    if (fabsf(w[i]) == amax && amax > 0.0f) assert_int_equal(codes[i], 0);
                }
            }
        }
        free(w), free(z), free(w_hat), free(M), free(d), free(deq), free(codes);
    }
}

/* L = sum g w_hat with fixed codes: dL/dM by central differences in double, dL/dz by the
 * straight-through rule, both against the library. */
static void test_backward_against_finite_differences(void **state) {
    (void)state;
    Rng rng;
    rng_seed(&rng, 13, 0);
    for (int s = 0; s < N_SHAPES; s++) {
        int const rows = shapes[s][0], cols = shapes[s][1], groups = iq4_groups(cols);
        size_t const n = (size_t)rows * cols, ng = (size_t)rows * groups;
        float *z = malloc(n * sizeof *z), *g = malloc(n * sizeof *g), *dz = malloc(n * sizeof *dz);
        float *M = malloc(ng * sizeof *M);
        double *dM = malloc(ng * sizeof *dM);
        int8_t *codes = malloc(n);
        assert_true(z && g && dz && M && dM && codes);
        fill_latents(&rng, z, n);
        for (size_t i = 0; i < n; i++) g[i] = 2.0f * rng_uniform_float(&rng) - 1.0f;
        for (size_t k = 0; k < ng; k++) M[k] = (rng_uniform_float(&rng) - 0.5f) * 0.1f;
        float *d = malloc(ng * sizeof *d);
        assert_non_null(d);
        iq4nl_block_scales(rows, cols, M, d);
        iq4_forward(rows, cols, z, d, codes, NULL);
        /* two splits of the rows give the same sums (threads may split anywhere) */
        iq4_backward_rows(cols, 0, rows, d, codes, g, dz, dM);
        double *dM_split = malloc(ng * sizeof *dM_split);
        assert_non_null(dM_split);
        iq4_backward_rows(cols, 0, rows / 2, d, codes, g, NULL, dM_split);
        iq4_backward_rows(cols, rows / 2, rows, d, codes, g, NULL, dM_split);
        assert_memory_equal(dM, dM_split, ng * sizeof *dM);
        for (int r = 0; r < rows; r++) {
            for (int k = 0; k < groups; k++) {
                int const c0 = k * 32, c1 = c0 + 32 < cols ? c0 + 32 : cols;
                /* w_hat = (M / 127) K[code] in double */
                double const Mg = M[(size_t)r * groups + k], h = 1e-3 * (fabs(Mg) + 1e-3);
                double lp = 0.0, lm = 0.0;
                for (int c = c0; c < c1; c++) {
                    size_t const i = (size_t)r * cols + c;
                    double const K = iq4_grid[codes[i]];
                    lp += g[i] * (Mg + h) / 127.0 * K;
                    lm += g[i] * (Mg - h) / 127.0 * K;
                    assert_true(dz[i] == g[i] * (127.0f * d[(size_t)r * groups + k]));
                }
                double const fd = (lp - lm) / (2.0 * h), an = dM[(size_t)r * groups + k];
                /* linear in M: only rounding separates them, measured 7.7e-14
                 * relative to sum |g|; 1e-9 allowed (a wrong factor of 127 is 1e-2) */
                double scale_ref = 1e-12;
                for (int c = c0; c < c1; c++) scale_ref += fabs(g[(size_t)r * cols + c]);
                if (fabs(fd - an) > 1e-9 * scale_ref)
                    fail_msg("shape %dx%d row %d group %d: dM %.12g, finite differences %.12g",
                             rows, cols, r, k, an, fd);
            }
        }
        free(z), free(g), free(dz), free(M), free(d), free(dM), free(dM_split), free(codes);
    }
}

/* IQ4_XS: D is fp16(-(the d of largest |d|) / 32) per super-block, each l the integer in
 * [-32, 31] nearest d / D by brute force (ties: either neighbour is as near; the rounding
 * is checked by distance, not by rule), d_hat = D l. */
static void test_xs_block_scales_against_brute_force(void **state) {
    (void)state;
    Rng rng;
    rng_seed(&rng, 15, 0);
    int const rows = 7, cols = 3 * IQ4XS_SUPER, groups = iq4_groups(cols), supers = 3;
    size_t const ng = (size_t)rows * groups;
    float *M = malloc(ng * sizeof *M), *d_hat = malloc(ng * sizeof *d_hat);
    float *D = malloc((size_t)rows * supers * sizeof *D);
    int8_t *l = malloc(ng);
    assert_true(M && d_hat && D && l);
    for (size_t k = 0; k < ng; k++) M[k] = (rng_uniform_float(&rng) - 0.5f) * 0.2f;
    for (int k = 0; k < 8; k++) M[groups + k] = 0.0f;       /* row 1, super-block 0: all zero */
    for (int k = 0; k < 8; k++) M[2 * groups + k] = 1e-12f; /* row 2: D underflows fp16 */
    M[3 * groups + 9] = 3.0f;                               /* one dominant scale */
    iq4xs_block_scales(rows, cols, M, d_hat, D, l);
    for (int r = 0; r < rows; r++) {
        for (int sb = 0; sb < supers; sb++) {
            size_t const g0 = (size_t)r * groups + (size_t)sb * 8;
            float dmax = 0.0f;
            for (int b = 0; b < 8; b++)
                if (fabsf(M[g0 + b] / 127.0f) > fabsf(dmax)) dmax = M[g0 + b] / 127.0f;
            float const Dref = half_to_float(float_to_half(-dmax / 32.0f));
            assert_true(D[(size_t)r * supers + sb] == Dref);
            for (int b = 0; b < 8; b++) {
                double const target = (double)M[g0 + b] / 127.0;
                double best = INFINITY;
                for (int li = -32; li <= 31; li++) {
                    double const e = fabs(target - (double)Dref * li);
                    if (e < best) best = e;
                }
                if (Dref == 0.0f) {
                    assert_int_equal(l[g0 + b], 0);
                } else {
                    assert_true(l[g0 + b] >= -32 && l[g0 + b] <= 31);
                    /* the chosen l is a nearest one (distance within rounding of the best) */
                    double const e = fabs(target - (double)Dref * l[g0 + b]);
                    assert_true(e <= best + 1e-6 * fabs((double)Dref));
                }
                assert_true(d_hat[g0 + b] == Dref * (float)l[g0 + b]);
            }
        }
    }
    free(M), free(d_hat), free(D), free(l);
}

static double group_error(const float *w, int n, float M) {
    double e = 0.0;
    for (int i = 0; i < n; i++) {
        float const z = fminf(1.0f, fmaxf(-1.0f, w[i] / M));
        double const diff = (double)w[i] - (double)M * iq4_grid[ref_index(z)] / 127.0;
        e += diff * diff;
    }
    return e;
}

/* The fitted start is never worse than M0 and close to the best scale of a dense scan
 * (multipliers 0.5..1.5 in steps of 5e-4, each with its own codes). Ratios are means
 * over groups of each group's error over its scanned best. */
static void test_fit_scales_against_dense_scan(void **state) {
    (void)state;
    Rng rng;
    rng_seed(&rng, 14, 0);
    int const rows = 16, cols = 172, groups = iq4_groups(cols);
    size_t const n = (size_t)rows * cols, ng = (size_t)rows * groups;
    float *w = malloc(n * sizeof *w), *M0 = malloc(ng * sizeof *M0), *s = malloc(ng * sizeof *s);
    assert_true(w && M0 && s);
    for (size_t i = 0; i < n; i++) /* roughly normal: sum of four uniforms */
        w[i] = 0.02f * (rng_uniform_float(&rng) + rng_uniform_float(&rng) +
                        rng_uniform_float(&rng) + rng_uniform_float(&rng) - 2.0f);
    iq4_init_scales(rows, cols, w, M0);
    iq4_fit_scales(rows, cols, w, M0, s);
    double fit_ratio = 0.0, start_ratio = 0.0;
    for (int r = 0; r < rows; r++) {
        for (int g = 0; g < groups; g++) {
            const float *wg = w + (size_t)r * cols + g * 32;
            int const len = g * 32 + 32 <= cols ? 32 : cols - g * 32;
            float const m0 = M0[(size_t)r * groups + g];
            double const start = group_error(wg, len, m0);
            double const fit = group_error(wg, len, m0 * s[(size_t)r * groups + g]);
            double best = start;
            for (int k = 0; k <= 2000; k++) {
                double const e = group_error(wg, len, m0 * (0.5f + 5e-4f * (float)k));
                if (e < best) best = e;
            }
            /* the refit M's own codes may differ from the candidate's: measured never
             * above the start on this fixture */
            assert_true(fit <= start * (1.0 + 1e-9) + 1e-30);
            fit_ratio += fit / best / ng;
            start_ratio += start / best / ng;
        }
    }
    print_message("mean error over the scanned best: fit %.4f, M0 %.4f\n", fit_ratio, start_ratio);
    /* Measured on this fixture: fit 1.0009, M0 1.2020. The limit 1.02 fails a search
     * that kept M0; 1.10 below asserts the fixture has that room. */
    assert_true(fit_ratio <= 1.02);
    assert_true(start_ratio > 1.10);
    free(w), free(M0), free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_matches_exhaustive_search),
        cmocka_unit_test(test_init_forward_and_dequantize),
        cmocka_unit_test(test_backward_against_finite_differences),
        cmocka_unit_test(test_xs_block_scales_against_brute_force),
        cmocka_unit_test(test_fit_scales_against_dense_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
