/* fp16 and bf16 conversion (src/float16.h) against an independent reference in double:
 * every one of the 65536 codes of each format decodes to the value its bit fields define
 * (ldexp, no bit tricks); encoding matches a brute-force nearest search over the sorted
 * table of every finite code (ties to the even code, the value after the largest finite
 * one standing for Inf, so overflow follows from the same rule) on every fp32 exponent,
 * on every tie and its two neighbours, on subnormals and on specials. Exact: no tolerance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "float16.h"

/* Reference decoding from the bit fields: sign, exponent (bias 15 / 127), mantissa (10 / 7
 * bits), subnormals at exponent 0, Inf and NaN at the top exponent. */
static double ref_decode(int bf16, uint16_t h) {
    int const mbits = bf16 ? 7 : 10, ebits = bf16 ? 8 : 5, bias = bf16 ? 127 : 15;
    int const e = (h >> mbits) & ((1 << ebits) - 1), m = h & ((1 << mbits) - 1);
    double const sign = (h & 0x8000) ? -1.0 : 1.0;
    if (e == (1 << ebits) - 1) return m ? NAN : sign * INFINITY;
    if (e == 0) return sign * ldexp(m, 1 - bias - mbits);
    return sign * ldexp((1 << mbits) + m, e - bias - mbits);
}

/* table[c] = value of the non-negative code c for c < inf_code, and table[inf_code] = the
 * value the next exponent would start at (2^16 for fp16, 2^128 for bf16). */
typedef struct {
    int bf16;
    uint16_t inf_code;
    double *table;
} RefTable;

static RefTable ref_table(int bf16) {
    RefTable r = {.bf16 = bf16, .inf_code = bf16 ? 0x7f80 : 0x7c00};
    r.table = malloc(((size_t)r.inf_code + 1) * sizeof *r.table);
    assert_non_null(r.table);
    for (unsigned c = 0; c < r.inf_code; c++) r.table[c] = ref_decode(bf16, (uint16_t)c);
    r.table[r.inf_code] = bf16 ? ldexp(1, 128) : ldexp(1, 16);
    return r;
}

/* Brute force: the nearest code by binary search over the table, ties to the even code. */
static uint16_t ref_encode(const RefTable *r, float x) {
    if (isnan(x)) return 0xffff; /* any NaN: checked separately */
    uint16_t const sign = signbit(x) ? 0x8000 : 0;
    double const a = fabs((double)x);
    if (a >= r->table[r->inf_code]) return sign | r->inf_code;
    unsigned lo = 0, hi = r->inf_code; /* table[lo] <= a < table[hi] */
    while (hi - lo > 1) {
        unsigned const mid = (lo + hi) / 2;
        if (r->table[mid] <= a) lo = mid;
        else hi = mid;
    }
    double const below = a - r->table[lo], above = r->table[hi] - a;
    unsigned const c = below < above ? lo : above < below ? hi : (lo % 2 == 0 ? lo : hi);
    return sign | (uint16_t)c;
}

static uint16_t encode(int bf16, float x) { return bf16 ? float_to_bf16(x) : float_to_half(x); }
static float decode(int bf16, uint16_t h) { return bf16 ? bf16_to_float(h) : half_to_float(h); }

static float from_bits(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static uint64_t lcg_state = 0x9e3779b97f4a7c15ull;
static uint32_t next_u32(void) {
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(lcg_state >> 32);
}

static void check_one(const RefTable *r, float x) {
    uint16_t const got = encode(r->bf16, x);
    if (isnan(x)) {
        assert_true(isnan(decode(r->bf16, got)));
        return;
    }
    uint16_t const want = ref_encode(r, x);
    if (got != want) fail_msg("%s(%a): got 0x%04x, expected 0x%04x", r->bf16 ? "bf16" : "fp16", (double)x, got, want);
}

static void decode_all(int bf16) {
    for (unsigned c = 0; c < 65536; c++) {
        double const want = ref_decode(bf16, (uint16_t)c);
        float const got = decode(bf16, (uint16_t)c);
        if (isnan(want)) {
            assert_true(isnan(got));
            continue;
        }
        if ((double)got != want || !signbit(got) != !signbit(want))
            fail_msg("code 0x%04x: got %a, expected %a", c, (double)got, want);
        /* every non-NaN code round-trips */
        assert_int_equal(encode(bf16, got), c);
    }
}

static void encode_checked(int bf16) {
    RefTable r = ref_table(bf16);
    /* every tie between neighbouring codes (exact in fp32: 1 bit more than the format),
     * and the floats just below and above it; the Inf boundary's tie included */
    for (unsigned c = 0; c < r.inf_code; c++) {
        float const tie = (float)((r.table[c] + r.table[c + 1]) / 2);
        assert_true((double)tie == (r.table[c] + r.table[c + 1]) / 2);
        float const near[3] = {nextafterf(tie, 0), tie, nextafterf(tie, INFINITY)};
        for (int i = 0; i < 3; i++) {
            check_one(&r, near[i]);
            check_one(&r, -near[i]);
        }
    }
    /* random mantissas on every fp32 exponent (fp32 subnormals included), both signs */
    for (uint32_t e = 0; e < 255; e++)
        for (int i = 0; i < 4096; i++) check_one(&r, from_bits((next_u32() & 0x807fffffu) | e << 23));
    /* specials */
    float const special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, from_bits(0x7f800001u),
                             from_bits(0xffc00001u), FLT_MAX, -FLT_MAX, FLT_MIN, from_bits(1), 65504.0f,
                             65519.996f, 65520.0f, 65536.0f, 0x1p-24f, 0x1p-25f, 0x1.000002p-25f, 0x1p-14f};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) check_one(&r, special[i]);
    free(r.table);
}

static void test_fp16_decode_all(void **state) {
    (void)state;
    decode_all(0);
}
static void test_bf16_decode_all(void **state) {
    (void)state;
    decode_all(1);
}
static void test_fp16_encode(void **state) {
    (void)state;
    encode_checked(0);
    /* overflow and the largest finite value, stated plainly */
    assert_int_equal(float_to_half(65519.99f), 0x7bff);
    assert_int_equal(float_to_half(65520.0f), 0x7c00);
    assert_int_equal(float_to_half(0x1p-25f), 0x0000);         /* tie with 0: even */
    assert_int_equal(float_to_half(0x1.8p-24f), 0x0002);       /* tie 1.5 ulp: even */
}
static void test_bf16_encode(void **state) {
    (void)state;
    encode_checked(1);
    assert_int_equal(float_to_bf16(FLT_MAX), 0x7f80);          /* rounds up into Inf */
    assert_int_equal(float_to_bf16(from_bits(0x3f808000u)), 0x3f80); /* tie: even */
    assert_int_equal(float_to_bf16(from_bits(0x3f818000u)), 0x3f82);
}

/* The array forms give the scalar results in place, and decoding undoes them exactly. */
static void test_in_place(void **state) {
    (void)state;
    size_t const n = 10007;
    float *x = malloc(n * sizeof *x), *keep = malloc(n * sizeof *keep);
    assert_non_null(x);
    assert_non_null(keep);
    for (ActDtype t = ACT_FP32; t <= ACT_BF16; t++) {
        for (size_t i = 0; i < n; i++) keep[i] = x[i] = from_bits(next_u32() & 0xbfffffffu); /* no NaN, no Inf */
        uint16_t *h = act_encode_in_place(t, x, n);
        assert_ptr_equal(h, x);
        for (size_t i = 0; i < n && t != ACT_FP32; i++)
            assert_int_equal(h[i], t == ACT_FP16 ? float_to_half(keep[i]) : float_to_bf16(keep[i]));
        act_decode_in_place(t, x, n);
        for (size_t i = 0; i < n; i++) {
            float const want = t == ACT_FP32   ? keep[i]
                               : t == ACT_FP16 ? half_to_float(float_to_half(keep[i]))
                                               : bf16_to_float(float_to_bf16(keep[i]));
            assert_memory_equal(&x[i], &want, sizeof want);
        }
    }
    float const big[6] = {65504.0f, 65519.99f, 65520.0f, -1e5f, INFINITY, NAN};
    assert_int_equal(act_overflows(ACT_FP16, big, 6), 2); /* 65520 and -1e5: finite, stored as Inf */
    assert_int_equal(act_overflows(ACT_BF16, big, 6), 0);
    float const huge[2] = {FLT_MAX, -3.0e38f};
    assert_int_equal(act_overflows(ACT_BF16, huge, 2), 1); /* FLT_MAX rounds up to Inf */
    assert_int_equal(act_overflows(ACT_FP32, huge, 2), 0);
    assert_int_equal(act_dtype_bytes(ACT_FP32), 4);
    assert_int_equal(act_dtype_bytes(ACT_FP16), 2);
    assert_string_equal(act_dtype_name(ACT_BF16), "bf16");
    free(x);
    free(keep);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp16_decode_all), cmocka_unit_test(test_bf16_decode_all),
        cmocka_unit_test(test_fp16_encode),     cmocka_unit_test(test_bf16_encode),
        cmocka_unit_test(test_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
