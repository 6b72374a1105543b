/* The NUPES power quantizer (docs/design.md 3.1), the data-free exponent search (3.2) and
 * the straight-through gradients of 3.3.
 *
 * b bits, m = 2^(b-1) - 1, codes k in [-m, m]. A group is one output row (group_size 0)
 * or group_size consecutive inputs of a row (the last group of a row is shorter when
 * group_size does not divide the row); its scale M starts as max |w| of the group.
 *   z = w / M,  k = clamp(round(m sign(z) |z|^a), -m, m),  w_hat = M sign(k) (|k|/m)^(1/a)
 * Exponents: one per tensor (a[0]) or one per output row (a[r]) when per_row is set. */
#ifndef NUPES_QUANT_H
#define NUPES_QUANT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "status.h"

#define QUANT_MIN_BITS 2
#define QUANT_MAX_BITS 8
#define QUANT_MIN_EXPONENT 0.2f
#define QUANT_MAX_EXPONENT 1.5f

typedef struct {
    int bits;       /* 2..8 */
    int group_size; /* 0: one group per output row; else inputs per group (the last one of a
                       row may be shorter) */
    int per_row;    /* 1: one exponent per output row ("channel"); 0: one per tensor */
    int quantizer;  /* row of quantizer_table (src/quantizer.h); 0: the power quantizer */
} QuantSpec;

/* A learned or final quantized matrix [rows][cols]. */
typedef struct {
    int rows, cols;
    int groups;      /* groups per row: 1 when group_size == 0, else ceil(cols / group_size) */
    int n_exponents; /* 1, or rows when per_row */
} QuantShape;

QuantShape quant_shape(QuantSpec s, int rows, int cols);
int quant_max_code(int bits); /* m */

/* Elements of group g (0 <= g < groups) of a row: group g covers columns
 * [g * group_size, min((g + 1) * group_size, cols)) (the whole row when group_size is 0). */
int quant_group_len(QuantSpec s, QuantShape sh, int g);

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
 *   dz [rows][cols] = dw_hat * M (NULL: not written; recon forms it inside Adam)
 *   da [n_exponents] = sum dw_hat w_hat [(u/|k|) ln|z| / a - ln(|k|/m) / a^2], |k| >= 1
 *   dM [rows][groups] (NULL when the scale is not learned) = sum dw_hat w_hat / M
 * (computed as sum dw_hat C_a[k], equal for w_hat = M C_a[k] and defined when M = 0).
 * Elements with k = 0 add nothing to da (no log of 0). z must be finite. Cost: one logf
 * and one expf per nonzero code; everything else is tables.
 * Sums are accumulated in double and the results overwrite the outputs. */
void quant_backward(QuantSpec s, QuantShape sh, const float *z, const float *scales,
                    const float *a, const int8_t *codes, const float *w_hat,
                    const float *dw_hat, float *dz, double *da, double *dM);

/* quant_backward on rows [r0, r1) only, for splitting a matrix between threads: dz and
 * dM (full-size arrays, as above) for those rows, and da_rows [r1 - r0] = each row's own
 * exponent-gradient sum. quant_backward's da is these row sums added in row order (for a
 * per-tensor exponent), so any split of the rows gives it bit for bit. */
void quant_backward_rows(QuantSpec s, QuantShape sh, int r0, int r1, const float *z,
                         const float *scales, const float *a, const int8_t *codes,
                         const float *dw_hat, float *dz, double *da_rows, double *dM);

/* ||W - W_hat(a)||^2 for weights w with scales from quant_init_scales: the objective of
 * the exponent search; row = -1 sums over all rows, else that row only. */
double quant_error(QuantSpec s, QuantShape sh, const float *w, const float *scales, float a,
                   int row);

/* Data-free exponent search (3.2): a coarse grid of >= 25 points over [0.2, 1.5], then
 * golden-section refinement of the best bracket to |da| < 1e-4. Fills a [n_exponents]
 * (one search per row when per_row). */
void quant_search_exponent(QuantSpec s, QuantShape sh, const float *w, const float *scales,
                           float *a);

/* 1 when the AVX2 loops of the forward, the backward and the search's error run: the CPU
 * has AVX2 and quant_allow_avx2(0) was not called. Both paths give bit-identical results,
 * so ranks on machines with and without AVX2 agree; tests and bench/search compare them
 * by turning the AVX2 loops off (call it before any work, not while threads run). */
int quant_uses_avx2(void);
void quant_allow_avx2(int allowed);

/* Shannon entropy of the codes in bits per weight (for reporting). */
double quant_code_entropy(const int8_t *codes, size_t n);

/* NQ_OK when all n values are finite; else NQ_ERR_INPUT with "what: element i = nan,
 * expected a finite value". The quantizer functions above assume finite inputs (a NaN
 * or Inf weight would poison the group's scale): callers check at the boundary. */
nq_status quant_check_finite(const float *x, size_t n, const char *what);

/* ------------------------------------------------------------------ fast path tables
 * For one exponent a, everything per element is a table look-up (docs/design.md 9: no pow):
 *   |k| = #{ j in [0, m) : |z| >= t_j },  t_j = ((j + 0.5)/m)^(1/a)
 * which is round(m |z|^a) with ties rounded away from zero (as roundf): |z| exactly on
 * a threshold takes the larger |k|. t_j is stored as the smallest float >= the exact
 * threshold, so the float comparison decides exactly as the real one would.
 * To avoid a search over m thresholds, |z|'s bit pattern >> 15 (exponent and 8 mantissa
 * bits) indexes first_code, the code at the bucket's lower end; for a <= 1.5 no bucket
 * holds two thresholds, so one more comparison finishes (else a short scan does).
 * Inputs z must be finite; |z| > 1 gives m (the clamp). */
#define QUANT_TABLE_BUCKETS 32769 /* (bits of 2.0f >> 15) + 1 */

typedef struct {
    int bits, m;
    float a;
    int single_step;           /* 1: at most one threshold inside any bucket */
    float threshold[128];      /* [m + 1] t_j rounded up to float; t_m = +inf */
    float value[255];          /* [2m + 1] C_a[k] = sign(k)(|k|/m)^(1/a) at index k + m */
    float ln_level[128];       /* [m + 1] ln(k/m) for k >= 1 (entry 0 unused, 0) */
    double ln_half_d[128];     /* [m] ln((j + 0.5)/m): tables for a new a without log */
    double ln_level_d[128];    /* [m + 1] ln(k/m) in double */
    uint8_t first_code[QUANT_TABLE_BUCKETS + 3]; /* + 3 zero bytes: 32-bit SIMD gathers */
} QuantTable;

/* Fills the tables for bits and exponent a (> 0). ~33 KB: fine on the stack. */
void quant_table_init(QuantTable *t, int bits, float a);
/* Same bits, new exponent: ~2m exp() and a 33 KB fill, no log (per-row exponents). */
void quant_table_set_exponent(QuantTable *t, float a);

/* x clamped to [-1, 1], for finite or infinite x (w / M with M > 0). Not fminf/fmaxf:
 * their NaN rules keep GCC from inlining them, and the libm calls were 39% of a 7B
 * block's exponent search (perf). Same result for every non-NaN x, -0.0 included. */
static inline float quant_clamp_unit(float x) {
    return x < -1.0f ? -1.0f : x > 1.0f ? 1.0f : x;
}

/* The signed code k of a normalised latent z (finite). */
static inline int quant_table_code(const QuantTable *t, float z) {
    uint32_t bits;
    memcpy(&bits, &z, sizeof bits);
    uint32_t const abs_bits = bits & 0x7fffffffu;
    uint32_t bucket = abs_bits >> 15;
    if (bucket > QUANT_TABLE_BUCKETS - 1) bucket = QUANT_TABLE_BUCKETS - 1;
    float abs_z;
    memcpy(&abs_z, &abs_bits, sizeof abs_z);
    int k = t->first_code[bucket];
    if (t->single_step) {
        k += abs_z >= t->threshold[k];
    } else {
        while (abs_z >= t->threshold[k]) k++; /* threshold[m] = +inf stops it */
    }
    int const neg = -(int)(bits >> 31); /* 0 or -1: branch-free sign (signs are random) */
    return (k ^ neg) - neg;
}

#endif
