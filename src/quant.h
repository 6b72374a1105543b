/* The NUPES power quantizer (DESIGN.md 3.1), the data-free exponent search (3.2) and
 * the straight-through gradients of 3.3.
 *
 * b bits, m = 2^(b-1) - 1, codes k in [-m, m]. A group is one output row (group_size 0)
 * or group_size consecutive inputs of a row; its scale M starts as max |w| of the group.
 *   z = w / M,  k = clamp(round(m sign(z) |z|^a), -m, m),  w_hat = M sign(k) (|k|/m)^(1/a)
 * Exponents: one per tensor (a[0]) or one per output row (a[r]) when per_row is set. */
#ifndef NUPES_QUANT_H
#define NUPES_QUANT_H

#include <stddef.h>
#include <stdint.h>

#define QUANT_MIN_BITS 2
#define QUANT_MAX_BITS 8
#define QUANT_MIN_EXPONENT 0.2f
#define QUANT_MAX_EXPONENT 1.5f

typedef struct {
    int bits;       /* 2..8 */
    int group_size; /* 0: one group per output row; else divides the row length */
    int per_row;    /* 1: one exponent per output row ("channel"); 0: one per tensor */
} QuantSpec;

/* A learned or final quantized matrix [rows][cols]. */
typedef struct {
    int rows, cols;
    int groups;      /* groups per row: 1 when group_size == 0, else cols / group_size */
    int n_exponents; /* 1, or rows when per_row */
} QuantShape;

QuantShape quant_shape(QuantSpec s, int rows, int cols);
int quant_max_code(int bits); /* m */

/* scales: [rows][groups] = max |w| over each group (0 for an all-zero group). */
void quant_init_scales(QuantSpec s, QuantShape sh, const float *w, float *scales);

/* z: [rows][cols] = w / M (0 where M == 0), clamped to [-1, 1]. */
void quant_normalise(QuantSpec s, QuantShape sh, const float *w, const float *scales, float *z);

/* z: [rows][cols] normalised latents; scales [rows][groups]; a [n_exponents].
 * codes: [rows][cols] k; w_hat (may be NULL): [rows][cols] = M C_a[k]. */
void quant_forward(QuantSpec s, QuantShape sh, const float *z, const float *scales,
                   const float *a, int8_t *codes, float *w_hat);

/* The inference path: w [rows][cols] = M C_a[k] from codes through the 2^b-entry table. */
void quant_dequantize(QuantSpec s, QuantShape sh, const int8_t *codes, const float *scales,
                      const float *a, float *w);

/* Straight-through backward of 3.3, given dw_hat = dL/dw_hat [rows][cols]:
 *   dz [rows][cols] = dw_hat * M
 *   da [n_exponents] = sum dw_hat w_hat [(u/|k|) ln|z| / a - ln(|k|/m) / a^2], |k| >= 1
 *   dM [rows][groups] (NULL when the scale is not learned) = sum dw_hat w_hat / M
 * Sums are accumulated in double and the results overwrite the outputs. */
void quant_backward(QuantSpec s, QuantShape sh, const float *z, const float *scales,
                    const float *a, const int8_t *codes, const float *w_hat,
                    const float *dw_hat, float *dz, double *da, double *dM);

/* ||W - W_hat(a)||^2 for weights w with scales from quant_init_scales: the objective of
 * the exponent search; row = -1 sums over all rows, else that row only. */
double quant_error(QuantSpec s, QuantShape sh, const float *w, const float *scales, float a,
                   int row);

/* Data-free exponent search (3.2): a coarse grid of >= 25 points over [0.2, 1.5], then
 * golden-section refinement of the best bracket to |da| < 1e-4. Fills a [n_exponents]
 * (one search per row when per_row). */
void quant_search_exponent(QuantSpec s, QuantShape sh, const float *w, const float *scales,
                           float *a);

/* Shannon entropy of the codes in bits per weight (for reporting). */
double quant_code_entropy(const int8_t *codes, size_t n);

#endif
