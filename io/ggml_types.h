/* llama.cpp's (ggml's) tensor element types as a GGUF file stores them, and the row
 * encoders this tool writes. Each type stores a row of n values as n / block_size blocks
 * of block_bytes bytes; a row whose length the block size does not divide cannot be
 * stored in that type.
 *
 *   F32   value as IEEE binary32                        block 1, 4 bytes
 *   F16   value as IEEE binary16                        block 1, 2 bytes
 *   Q8_0  {fp16 d; int8 q[32]}, x = d * q               block 32, 34 bytes
 *         (ggml's reference: d = max|x| / 127, q = round-half-away(x / d))
 *
 *   IQ4_NL {fp16 d; uint8 qs[16]}, x[j] = d K[qs[j] & 15], x[j + 16] = d K[qs[j] >> 4]
 *                                                       block 32, 18 bytes
 *   IQ4_XS {fp16 D; uint16 scales_h; uint8 scales_l[4]; uint8 qs[128]}: sub-block ib of
 *         32 has ls = low 4 bits (scales_l[ib / 2] >> 4 (ib % 2)) | 2 high bits
 *         (scales_h >> 2 ib) << 4, dl = D (ls - 32), and its 16 bytes of qs as IQ4_NL's
 *                                                       block 256, 136 bytes
 * (K: src/quant_iq4.h's grid.) The type ids are ggml's enum ggml_type values (ggml.h),
 * which GGUF stores. IQ4_NL and IQ4_XS are not encoded from floats here: the quantizers
 * that learn codes on those grids hand over their codes and scales, written as learned
 * (ggml_encode_iq4nl_row, ggml_encode_iq4xs_row), never requantized. */
#ifndef NUPES_GGML_TYPES_H
#define NUPES_GGML_TYPES_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    GGML_F32 = 0,
    GGML_F16 = 1,
    GGML_Q8_0 = 8,
    GGML_IQ4_NL = 20,
    GGML_IQ4_XS = 23,
} GgmlType;

#define GGML_QK8_0 32

typedef struct {
    GgmlType type;
    const char *name;   /* "f32", "f16", "q8_0", "iq4_nl", "iq4_xs" (llama.cpp's spelling) */
    int block_size;     /* values per block */
    int block_bytes;    /* bytes per block */
    int can_encode;     /* 1 when ggml_encode_row writes it from floats */
} GgmlTypeInfo;

/* NULL for a type not in the table. */
const GgmlTypeInfo *ggml_type_info(GgmlType type);

/* Parses a name (case-insensitive) among the encodable types; -1 when unknown. */
int ggml_type_parse(const char *name, GgmlType *out);

/* Bytes of a row of n values (n a multiple of the block size). */
size_t ggml_row_bytes(GgmlType type, int64_t n);

/* What llama.cpp stores instead of `want` for a row of n values that want's block size
 * does not divide (llama-quant.cpp's llama_tensor_get_type: IQ4_XS falls back to IQ4_NL,
 * and whatever still does not fit, or has no fallback of its own, to F16; F16 always
 * fits). Returns want when it fits. For Q8_0 llama-quantize itself refuses such a tensor;
 * llama.cpp's converter (convert_hf_to_gguf.py) writes it as F16, which is what this
 * returns. */
GgmlType ggml_fallback_type(GgmlType want, int64_t n);

/* Encodes x[0..n) as one row of `type` into out (ggml_row_bytes(type, n) bytes).
 * type must be encodable and n a multiple of its block size. */
void ggml_encode_row(GgmlType type, const float *x, int64_t n, void *out);

/* One row of n values (a multiple of 32) of learned IQ4_NL indices codes [n] (0..15)
 * and block scales d [n / 32], stored as fp16 (d should be fp16 values already: the
 * learner rounds them, so that what is written is what it evaluated). */
void ggml_encode_iq4nl_row(const int8_t *codes, const float *d, int64_t n, void *out);

/* One row of n values (a multiple of 256) of learned IQ4_XS indices codes [n], super-
 * block scales D [n / 256] (fp16 values) and sub-block integers l [n / 32] in [-32, 31]. */
void ggml_encode_iq4xs_row(const int8_t *codes, const float *D, const int8_t *l, int64_t n,
                           void *out);

/* Decodes one row back to floats (every type in the table), for tests and checks. */
void ggml_decode_row(GgmlType type, const void *in, int64_t n, float *x);

#endif
