/* The IQ4_NL and IQ4_XS members through the quantizer interface (src/quantizer.h):
 * what the forward computes while learning is what decode gives from the stored arrays,
 * bit for bit (so the exported model is the one learned); the stored arrays have the
 * shapes and values of llama.cpp's blocks (checked against the block-scale routines and
 * a naive loop); IQ4_XS falls back to IQ4_NL's arrays for rows that are not a multiple
 * of 256; the gradient against a naive loop; damaged stored values are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "float16.h"
#include "quant_iq4.h"
#include "quantizer.h"
#include "rng.h"

typedef struct {
    int rows, cols;
    QuantSpec spec;
    QuantShape sh;
    float *w, *z, *M, *a, *w_hat, *decoded;
    int8_t *codes;
    QArrayDesc desc[QM_MAX_ARRAYS];
    void *stored[QM_MAX_ARRAYS];
    int n_arrays;
} Fixture;

static void fixture_make(Fixture *f, int which, int rows, int cols, uint64_t seed) {
    memset(f, 0, sizeof *f);
    f->rows = rows, f->cols = cols;
    f->spec = (QuantSpec){.bits = 4, .group_size = IQ4_GROUP, .per_row = 0, .quantizer = which};
    f->sh = quant_shape(f->spec, rows, cols);
    size_t const n = (size_t)rows * cols, ng = (size_t)rows * f->sh.groups;
    assert_int_equal(f->sh.groups, iq4_groups(cols));
    f->w = malloc(n * sizeof(float)), f->z = malloc(n * sizeof(float));
    f->M = malloc(ng * sizeof(float)), f->a = malloc(sizeof(float) * (size_t)f->sh.n_exponents);
    f->w_hat = malloc(n * sizeof(float)), f->decoded = malloc(n * sizeof(float));
    f->codes = malloc(n);
    assert_true(f->w && f->z && f->M && f->a && f->w_hat && f->decoded && f->codes);
    Rng rng;
    rng_seed(&rng, seed, 0);
    for (size_t i = 0; i < n; i++)
        f->w[i] = 0.03f * (rng_uniform_float(&rng) + rng_uniform_float(&rng) - 1.0f) *
                  (i % 61 == 0 ? 8.0f : 1.0f);
    const Quantizer *q = quantizer_of(f->spec);
    assert_non_null(q);
    QuantLatents l = {f->z, f->M, f->a};
    q->init(f->spec, f->sh, f->w, QUANT_INIT_SEARCH, &l);
    q->forward(f->spec, f->sh, &l, f->codes, f->w_hat);
    f->n_arrays = q->describe(f->spec, f->sh, 3, f->desc);
    for (int k = 0; k < f->n_arrays; k++) {
        f->stored[k] = calloc(qarray_count(&f->desc[k]), qarray_type_size(f->desc[k].type));
        assert_non_null(f->stored[k]);
    }
    assert_int_equal(q->encode(f->spec, f->sh, &l, f->codes, f->desc, f->stored), NQ_OK);
    assert_int_equal(q->decode(f->spec, f->sh, f->desc, (const void *const *)f->stored, f->decoded), NQ_OK);
}

static void fixture_free(Fixture *f) {
    free(f->w), free(f->z), free(f->M), free(f->a), free(f->w_hat), free(f->decoded), free(f->codes);
    for (int k = 0; k < f->n_arrays; k++) free(f->stored[k]);
}

/* Squared error of the fixture's decoded weights against w. */
static double decoded_error(const Fixture *f) {
    double e = 0.0;
    for (size_t i = 0; i < (size_t)f->rows * f->cols; i++) {
        double const d = (double)f->w[i] - f->decoded[i];
        e += d * d;
    }
    return e;
}

static void test_nl_learned_is_stored(void **state) {
    (void)state;
    Fixture f;
    fixture_make(&f, QUANTIZER_IQ4_NL, 6, 172, 21); /* ragged: 5 groups of 32 and one of 12 */
    assert_int_equal(f.n_arrays, 2);
    assert_string_equal(f.desc[0].name, "codes");
    assert_string_equal(f.desc[1].name, "scale");
    assert_int_equal(f.desc[1].type, QA_F16);
    assert_int_equal(f.desc[1].dims[1], 6);
    size_t const n = (size_t)f.rows * f.cols;
    assert_memory_equal(f.decoded, f.w_hat, n * sizeof(float));
    assert_memory_equal(f.stored[0], f.codes, n);
    /* naive: stored d = fp16(M / 127), w = d K[code] */
    const uint16_t *d = f.stored[1];
    for (int r = 0; r < f.rows; r++)
        for (int c = 0; c < f.cols; c++) {
            size_t const g = (size_t)r * 6 + c / 32, i = (size_t)r * f.cols + c;
            assert_int_equal(d[g], float_to_half(f.M[g] / 127.0f));
            assert_true(f.decoded[i] == half_to_float(d[g]) * (float)iq4_grid[f.codes[i]]);
        }
    /* the quantization is good: measured 0.0098 of ||w||^2 on this fixture (triangular
     * weights, one in 61 eight times larger); 0.0125 allowed */
    double ww = 0.0;
    for (size_t i = 0; i < n; i++) ww += (double)f.w[i] * f.w[i];
    print_message("IQ4_NL relative squared error %.4f\n", decoded_error(&f) / ww);
    assert_true(decoded_error(&f) / ww < 0.0125);
    fixture_free(&f);
}

static void test_xs_learned_is_stored(void **state) {
    (void)state;
    Fixture f;
    fixture_make(&f, QUANTIZER_IQ4_XS, 4, 512, 22);
    assert_int_equal(f.n_arrays, 3);
    assert_string_equal(f.desc[1].name, "super_scale");
    assert_int_equal(f.desc[1].dims[1], 2);
    assert_string_equal(f.desc[2].name, "sub_scale");
    assert_int_equal(f.desc[2].dims[1], 16);
    size_t const n = (size_t)f.rows * f.cols, ng = (size_t)f.rows * 16;
    assert_memory_equal(f.decoded, f.w_hat, n * sizeof(float));
    /* the stored D and l are iq4xs_block_scales of the learned M (tested against brute
     * force in test_quant_iq4) */
    float *d_hat = malloc(ng * sizeof *d_hat), D[8];
    int8_t *l = malloc(ng);
    assert_true(d_hat && l);
    iq4xs_block_scales(f.rows, f.cols, f.M, d_hat, D, l);
    assert_memory_equal(f.stored[2], l, ng);
    for (int k = 0; k < f.rows * 2; k++)
        assert_int_equal(((const uint16_t *)f.stored[1])[k], float_to_half(D[k]));
    double ww = 0.0;
    for (size_t i = 0; i < n; i++) ww += (double)f.w[i] * f.w[i];
    /* IQ4_XS's 6-bit sub-scales under one fp16 scale per 256 cost some accuracy where
     * outliers set the super-block's range: measured 0.0146 of ||w||^2 here; 0.018
     * allowed */
    print_message("IQ4_XS relative squared error %.4f\n", decoded_error(&f) / ww);
    assert_true(decoded_error(&f) / ww < 0.018);
    free(d_hat), free(l);
    fixture_free(&f);

    /* rows of 172: not whole super-blocks, stored as IQ4_NL (llama.cpp's fallback) */
    fixture_make(&f, QUANTIZER_IQ4_XS, 2, 172, 23);
    assert_int_equal(f.n_arrays, 2);
    assert_string_equal(f.desc[1].name, "scale");
    assert_memory_equal(f.decoded, f.w_hat, (size_t)f.rows * f.cols * sizeof(float));
    fixture_free(&f);
}

/* dM = sum dw_hat K[code] / 127 by a naive loop; dz = dw_hat M; no exponent gradient. */
static void test_backward_against_naive_loop(void **state) {
    (void)state;
    for (int which = QUANTIZER_IQ4_NL; which <= QUANTIZER_IQ4_XS; which++) {
        Fixture f;
        fixture_make(&f, which, 3, 256, 24);
        size_t const n = (size_t)f.rows * f.cols, ng = (size_t)f.rows * f.sh.groups;
        float *g = malloc(n * sizeof *g), *dz = malloc(n * sizeof *dz);
        double *dM = malloc(ng * sizeof *dM), da[3] = {9, 9, 9};
        assert_true(g && dz && dM);
        Rng rng;
        rng_seed(&rng, 25, 0);
        for (size_t i = 0; i < n; i++) g[i] = rng_uniform_float(&rng) - 0.5f;
        QuantLatents const l = {f.z, f.M, f.a};
        quantizer_of(f.spec)->backward_rows(f.spec, f.sh, 0, f.rows, &l, f.codes, g, dz, da, dM);
        for (int r = 0; r < f.rows; r++) {
            assert_true(da[r] == 0.0);
            for (int k = 0; k < f.sh.groups; k++) {
                double ref = 0.0;
                for (int c = 32 * k; c < 32 * k + 32; c++)
                    ref += (double)g[(size_t)r * f.cols + c] * iq4_grid[f.codes[(size_t)r * f.cols + c]];
                ref /= 127.0;
                /* the same sum in the same order: measured equal; 1e-12 relative allowed */
                assert_true(fabs(dM[(size_t)r * f.sh.groups + k] - ref) <= 1e-12 * (fabs(ref) + 1e-12));
                float const M = f.M[(size_t)r * f.sh.groups + k];
                for (int c = 32 * k; c < 32 * k + 32; c++) {
                    size_t const i = (size_t)r * f.cols + c;
                    /* dz = dw_hat 127 (M / 127): within 1 ulp of dw_hat M */
                    assert_true(fabsf(dz[i] - g[i] * M) <= 2.4e-7f * fabsf(g[i] * M));
                }
            }
        }
        free(g), free(dz), free(dM);
        fixture_free(&f);
    }
}

static void test_damaged_arrays_refused(void **state) {
    (void)state;
    Fixture f;
    fixture_make(&f, QUANTIZER_IQ4_XS, 2, 256, 26);
    const Quantizer *q = quantizer_of(f.spec);
    assert_int_equal(q->check(f.spec, f.sh, f.desc, (const void *const *)f.stored, "f.h5", "w1"), NQ_OK);
    ((int8_t *)f.stored[0])[5] = 16;
    assert_int_equal(q->check(f.spec, f.sh, f.desc, (const void *const *)f.stored, "f.h5", "w1"), NQ_ERR_INPUT);
    ((int8_t *)f.stored[0])[5] = 3;
    ((int8_t *)f.stored[2])[1] = 40;
    assert_int_equal(q->check(f.spec, f.sh, f.desc, (const void *const *)f.stored, "f.h5", "w1"), NQ_ERR_INPUT);
    ((int8_t *)f.stored[2])[1] = 0;
    ((uint16_t *)f.stored[1])[0] = 0x7c00; /* +inf */
    assert_int_equal(q->check(f.spec, f.sh, f.desc, (const void *const *)f.stored, "f.h5", "w1"), NQ_ERR_INPUT);
    fixture_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nl_learned_is_stored),
        cmocka_unit_test(test_xs_learned_is_stored),
        cmocka_unit_test(test_backward_against_naive_loop),
        cmocka_unit_test(test_damaged_arrays_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
