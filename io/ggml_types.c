/* ggml element types and row encoders (see ggml_types.h). */
#include "ggml_types.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include "float16.h"
#include "quant_iq4.h" /* iq4_grid */

static const GgmlTypeInfo type_table[] = {
    {GGML_F32, "f32", 1, 4, 1},
    {GGML_F16, "f16", 1, 2, 1},
    {GGML_Q8_0, "q8_0", GGML_QK8_0, 2 + GGML_QK8_0, 1},
    {GGML_IQ4_NL, "iq4_nl", 32, 2 + 16, 0},
    {GGML_IQ4_XS, "iq4_xs", 256, 2 + 2 + 256 / 64 + 256 / 2, 0},
};

const GgmlTypeInfo *ggml_type_info(GgmlType type) {
    for (size_t i = 0; i < sizeof type_table / sizeof type_table[0]; i++)
        if (type_table[i].type == type) return &type_table[i];
    return NULL;
}

int ggml_type_parse(const char *name, GgmlType *out) {
    for (size_t i = 0; i < sizeof type_table / sizeof type_table[0]; i++)
        if (type_table[i].can_encode && strcasecmp(type_table[i].name, name) == 0) {
            *out = type_table[i].type;
            return 0;
        }
    return -1;
}

size_t ggml_row_bytes(GgmlType type, int64_t n) {
    const GgmlTypeInfo *t = ggml_type_info(type);
    return (size_t)(n / t->block_size) * (size_t)t->block_bytes;
}

GgmlType ggml_fallback_type(GgmlType want, int64_t n) {
    if (n % ggml_type_info(want)->block_size == 0) return want;
    GgmlType const next = want == GGML_IQ4_XS ? GGML_IQ4_NL : GGML_F16;
    return n % ggml_type_info(next)->block_size == 0 ? next : GGML_F16;
}

/* One Q8_0 block of 32 values: ggml's quantize_row_q8_0_ref. The scale is computed in
 * fp32 and its inverse used for the codes; only the stored scale is rounded to fp16. */
static void encode_q8_0_block(const float *x, unsigned char *out) {
    float amax = 0;
    for (int i = 0; i < GGML_QK8_0; i++) amax = fmaxf(amax, fabsf(x[i]));
    float const d = amax / 127.0f;
    float const id = d != 0 ? 1.0f / d : 0.0f;
    uint16_t const dh = float_to_half(d);
    memcpy(out, &dh, 2);
    for (int i = 0; i < GGML_QK8_0; i++) out[2 + i] = (unsigned char)(int8_t)roundf(x[i] * id);
}

void ggml_encode_row(GgmlType type, const float *x, int64_t n, void *out) {
    unsigned char *o = out;
    switch (type) {
    case GGML_F32: memcpy(o, x, (size_t)n * sizeof(float)); break;
    case GGML_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t const h = float_to_half(x[i]);
            memcpy(o + 2 * i, &h, 2);
        }
        break;
    case GGML_Q8_0:
        for (int64_t b = 0; b < n / GGML_QK8_0; b++) encode_q8_0_block(x + b * GGML_QK8_0, o + b * (2 + GGML_QK8_0));
        break;
    default: break; /* not encodable: callers check can_encode */
    }
}

static void put_half(unsigned char *o, float x) {
    uint16_t const h = float_to_half(x);
    memcpy(o, &h, 2);
}

/* 32 indices as 16 bytes: low nibbles the first 16, high nibbles the next 16. */
static void pack_nibbles(const int8_t *codes, unsigned char *qs) {
    for (int j = 0; j < 16; j++)
        qs[j] = (unsigned char)((codes[j] & 15) | (codes[j + 16] & 15) << 4);
}

static void unpack_nibbles(const unsigned char *qs, float d, float *x) {
    for (int j = 0; j < 16; j++) {
        x[j] = d * (float)iq4_grid[qs[j] & 15];
        x[j + 16] = d * (float)iq4_grid[qs[j] >> 4];
    }
}

void ggml_encode_iq4nl_row(const int8_t *codes, const float *d, int64_t n, void *out) {
    unsigned char *o = out;
    for (int64_t b = 0; b < n / 32; b++, o += 18) {
        put_half(o, d[b]);
        pack_nibbles(codes + 32 * b, o + 2);
    }
}

void ggml_encode_iq4xs_row(const int8_t *codes, const float *D, const int8_t *l, int64_t n,
                           void *out) {
    unsigned char *o = out;
    for (int64_t b = 0; b < n / 256; b++, o += 136) {
        put_half(o, D[b]);
        uint16_t scales_h = 0;
        unsigned char *scales_l = o + 4;
        memset(scales_l, 0, 4);
        for (int ib = 0; ib < 8; ib++) {
            int const ls = l[8 * b + ib] + 32; /* 0..63 */
            scales_l[ib / 2] |= (unsigned char)((ls & 15) << 4 * (ib % 2));
            scales_h |= (uint16_t)((ls >> 4) << 2 * ib);
            pack_nibbles(codes + 256 * b + 32 * ib, o + 8 + 16 * ib);
        }
        memcpy(o + 2, &scales_h, 2);
    }
}

void ggml_decode_row(GgmlType type, const void *in, int64_t n, float *x) {
    const unsigned char *p = in;
    switch (type) {
    case GGML_F32: memcpy(x, p, (size_t)n * sizeof(float)); break;
    case GGML_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            x[i] = half_to_float(h);
        }
        break;
    case GGML_Q8_0:
        for (int64_t b = 0; b < n / GGML_QK8_0; b++) {
            const unsigned char *blk = p + b * (2 + GGML_QK8_0);
            uint16_t dh;
            memcpy(&dh, blk, 2);
            float const d = half_to_float(dh);
            for (int i = 0; i < GGML_QK8_0; i++) x[b * GGML_QK8_0 + i] = d * (float)(int8_t)blk[2 + i];
        }
        break;
    case GGML_IQ4_NL:
        for (int64_t b = 0; b < n / 32; b++) {
            uint16_t dh;
            memcpy(&dh, p + 18 * b, 2);
            unpack_nibbles(p + 18 * b + 2, half_to_float(dh), x + 32 * b);
        }
        break;
    case GGML_IQ4_XS:
        for (int64_t b = 0; b < n / 256; b++) {
            const unsigned char *blk = p + 136 * b;
            uint16_t dh, scales_h;
            memcpy(&dh, blk, 2);
            memcpy(&scales_h, blk + 2, 2);
            for (int ib = 0; ib < 8; ib++) {
                int const ls = ((blk[4 + ib / 2] >> 4 * (ib % 2)) & 15) | ((scales_h >> 2 * ib) & 3) << 4;
                unpack_nibbles(blk + 8 + 16 * ib, half_to_float(dh) * (float)(ls - 32), x + 256 * b + 32 * ib);
            }
        }
        break;
    default: break;
    }
}
