/* IEEE 754 binary16 ("fp16", "half"): conversions to and from float, no hardware needed.
 * float -> half rounds to nearest, ties to even, with subnormals (|x| < 2^-14 keeps an
 * absolute step of 2^-24) and overflow to +-inf (|x| >= 65520); NaN stays NaN. half ->
 * float is exact. The stored scales and exponents of a quantized matrix are halves
 * (src/quantizer.h). */
#ifndef NUPES_HALF_H
#define NUPES_HALF_H

#include <stdint.h>
#include <string.h>

#define HALF_MAX 65504.0f              /* largest finite half */
#define HALF_MIN_NORMAL 6.103515625e-05f /* 2^-14 */
#define HALF_MIN_SUBNORMAL 5.9604644775390625e-08f /* 2^-24 */

static inline uint16_t half_from_float(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t const sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t const abs = x & 0x7fffffffu;
    if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((abs >> 13) & 0x3ffu)); /* NaN */
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 (or inf): inf */
    if (abs < 0x38800000u) { /* below 2^-14: a subnormal half (or zero) */
        if (abs < 0x33000000u) return sign; /* below 2^-25: rounds to 0 (2^-25 ties to even 0) */
        uint32_t const e = abs >> 23;       /* 102..112 */
        uint32_t const mant = (abs & 0x7fffffu) | 0x800000u;
        uint32_t const shift = 126 - e;     /* value = mant * 2^(e - 150) = h * 2^-24 */
        uint32_t h = mant >> shift;
        uint32_t const rest = mant & ((1u << shift) - 1), half_way = 1u << (shift - 1);
        if (rest > half_way || (rest == half_way && (h & 1u))) h++;
        return (uint16_t)(sign | h); /* h may carry into the exponent: 2^-14, correct */
    }
    /* normal: rebias the exponent (127 -> 15), round 23 mantissa bits to 10 */
    uint32_t h = ((abs >> 13) - ((127u - 15u) << 10));
    uint32_t const rest = abs & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* a carry rounds up the exponent */
    return (uint16_t)(sign | h);
}

static inline float half_to_float(uint16_t h) {
    uint32_t const sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t const e = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    uint32_t x;
    if (e == 0x1f) {
        x = sign | 0x7f800000u | (mant << 13); /* inf, NaN */
    } else if (e != 0) {
        x = sign | ((e + 127u - 15u) << 23) | (mant << 13);
    } else { /* zero or subnormal: mant * 2^-24, exact in float */
        float const v = (float)mant * HALF_MIN_SUBNORMAL;
        memcpy(&x, &v, sizeof x);
        x |= sign;
    }
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* The float nearest to f among halves: what storing f as a half keeps. */
static inline float half_round(float f) { return half_to_float(half_from_float(f)); }

#endif
