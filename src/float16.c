#include "float16.h"

#include <math.h>
#include <string.h>

static float bits_to_float(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint32_t float_to_bits(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

float half_to_float(uint16_t h) {
    uint32_t const sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t const exp = (h >> 10) & 0x1f;
    uint32_t const mant = h & 0x3ff;
    if (exp == 0) /* zero or subnormal: mant * 2^-24, exact in fp32 */
        return bits_to_float(float_to_bits((float)mant * 0x1p-24f) | sign);
    if (exp == 31) return bits_to_float(sign | 0x7f800000u | (mant << 13)); /* inf, NaN */
    return bits_to_float(sign | ((exp + 112) << 23) | (mant << 13));
}

float bf16_to_float(uint16_t b) { return bits_to_float((uint32_t)b << 16); }

/* Rounds m >> shift to nearest, ties to even. */
static uint32_t shift_round_even(uint32_t m, uint32_t shift) {
    uint32_t q = m >> shift;
    uint32_t const rem = m & ((1u << shift) - 1);
    uint32_t const half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return q;
}

uint16_t float_to_half(float x) {
    uint32_t const f = float_to_bits(x);
    uint32_t const sign = (f >> 16) & 0x8000;
    uint32_t const absf = f & 0x7fffffff;
    if (absf > 0x7f800000u) return (uint16_t)(sign | 0x7e00);  /* NaN */
    if (absf >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* >= 65520 rounds to inf */
    uint32_t const e = absf >> 23; /* fp32 biased exponent */
    if (e < 113) {                 /* below 2^-14: a half subnormal, units of 2^-24 */
        if (e < 102) return (uint16_t)sign; /* below 2^-25: rounds to zero */
        uint32_t const m = (absf & 0x7fffff) | 0x800000;
        return (uint16_t)(sign | shift_round_even(m, 126 - e));
    }
    /* normal: rebias the exponent, keep 10 mantissa bits; a carry may bump the exponent */
    uint32_t const h = ((e - 112) << 10) | ((absf & 0x7fffff) >> 13);
    uint32_t const rem = absf & 0x1fff;
    uint32_t const up = rem > 0x1000 || (rem == 0x1000 && (h & 1));
    return (uint16_t)(sign | (h + up));
}

uint16_t float_to_bf16(float x) {
    uint32_t const f = float_to_bits(x);
    if ((f & 0x7fffffff) > 0x7f800000u) return (uint16_t)((f >> 16) | 0x40); /* quiet NaN */
    return (uint16_t)((f + 0x7fff + ((f >> 16) & 1)) >> 16);
}

size_t act_dtype_bytes(ActDtype t) { return t == ACT_FP32 ? 4 : 2; }

const char *act_dtype_name(ActDtype t) {
    switch (t) {
    case ACT_FP16: return "fp16";
    case ACT_BF16: return "bf16";
    default: return "fp32";
    }
}

size_t act_overflows(ActDtype t, const float *x, size_t n) {
    if (t == ACT_FP32) return 0;
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t const h = t == ACT_FP16 ? float_to_half(x[i]) : float_to_bf16(x[i]);
        uint16_t const inf = t == ACT_FP16 ? 0x7c00 : 0x7f80;
        count += (h & 0x7fff) == inf && isfinite(x[i]);
    }
    return count;
}

/* Value i moves from bytes [4i, 4i+4) to [2i, 2i+2): going up, no float is overwritten
 * before it is read (2i + 1 < 4j for every j > i); going down, no 16-bit value is. */
void *act_encode_in_place(ActDtype t, float *x, size_t n) {
    if (t == ACT_FP32) return x;
    unsigned char *out = (unsigned char *)x;
    for (size_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, out + 4 * i, sizeof v);
        uint16_t const h = t == ACT_FP16 ? float_to_half(v) : float_to_bf16(v);
        memcpy(out + 2 * i, &h, sizeof h);
    }
    return x;
}

void act_decode_in_place(ActDtype t, void *buf, size_t n) {
    if (t == ACT_FP32) return;
    unsigned char *p = buf;
    for (size_t i = n; i-- > 0;) {
        uint16_t h;
        memcpy(&h, p + 2 * i, sizeof h);
        float const v = t == ACT_FP16 ? half_to_float(h) : bf16_to_float(h);
        memcpy(p + 4 * i, &v, sizeof v);
    }
}
