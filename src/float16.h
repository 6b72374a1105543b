/* 16-bit storage of fp32 activations (calibration.activation_dtype, docs/design.md 5.2):
 * IEEE 754 binary16 (fp16: 1 sign, 5 exponent, 10 mantissa bits) and bfloat16 (bf16: the
 * top 16 bits of an fp32). Encoding rounds to nearest, ties to even; values beyond the
 * format's range become +-Inf (fp16 overflows above 65504, at 65520 and up); fp16
 * subnormals (multiples of 2^-24) are kept; NaN stays NaN (quiet), Inf stays Inf.
 * Decoding is exact (every 16-bit value is an fp32). Also the safetensors and GGUF
 * readers and writers' conversions (io/safetensors.h, io/ggml_types.c), and of the stored
 * scales and exponents of quantized matrices (src/quantizer.h). */
#ifndef NUPES_FLOAT16_H
#define NUPES_FLOAT16_H

#include <stddef.h>
#include <stdint.h>

/* The dtype of stored activations; fp32 stores the floats as they are. */
typedef enum { ACT_FP32, ACT_FP16, ACT_BF16 } ActDtype;

#define HALF_MAX 65504.0f                 /* largest finite fp16 */
#define HALF_MIN_NORMAL 6.103515625e-05f  /* 2^-14 */

uint16_t float_to_half(float x);
float half_to_float(uint16_t h);
/* The float nearest to x among fp16 values: what storing x as fp16 keeps. */
static inline float half_round(float x) { return half_to_float(float_to_half(x)); }
uint16_t float_to_bf16(float x);
float bf16_to_float(uint16_t b);

/* Bytes per stored value: 4 or 2. */
size_t act_dtype_bytes(ActDtype t);
/* "fp32", "fp16", "bf16" (config and file attribute spelling). */
const char *act_dtype_name(ActDtype t);

/* How many of x [n] are finite but would be stored as +-Inf (fp16: |x| >= 65520; bf16:
 * within half a bf16 ulp of FLT_MAX; fp32: none). */
size_t act_overflows(ActDtype t, const float *x, size_t n);

/* In place: x [n] floats become n stored values at the start of the same memory (fp32:
 * unchanged). Returns the stored bytes' address (x itself). */
void *act_encode_in_place(ActDtype t, float *x, size_t n);
/* In place: n stored values at the start of buf become n floats (the inverse). */
void act_decode_in_place(ActDtype t, void *buf, size_t n);

#endif
