/* llama.cpp's IQ4_NL grid as a learned quantizer: weights learned over the grid by block
 * reconstruction, as NUPES learns over its power grid (docs/design.md 3.3), so that the
 * result is stored by llama.cpp's own format with no requantization.
 *
 * The grid is ggml's fixed 16-entry non-uniform table K (kvalues_iq4nl, a format
 * constant: GGUF readers decode with it). A row is cut into groups of 32 inputs (the
 * last group of a row is shorter when 32 does not divide it; GGUF cannot store such a
 * row as IQ4_NL and the exporter falls back); each group has one signed scale M:
 *   C[i] = K[i] / 127 (so C[0] = -1, C[15] = 113/127),  w_hat = M C[i]
 *   M0 = -(the group's element of largest |w|), so that element maps to C[0] = -1 as in
 *        ggml's d = max / K[0]; latent z = w / M0 in [-1, 1]
 *   code i = argmin_i |z - C[i]|, ties to the larger index (ggml's best_index_int8)
 * Stored: the index i (0..15) per weight and d = M / 127 per group, so w = d K[i] is
 * exactly what llama.cpp computes from a block {fp16 d; 4-bit i}.
 *
 * Shapes: w, z, codes, w_hat, dw_hat, dz [rows][cols] row-major; scales, dM [rows][groups]
 * with groups = ceil(cols / 32). */
#ifndef NUPES_QUANT_IQ4NL_H
#define NUPES_QUANT_IQ4NL_H

#include <stdint.h>

#define IQ4NL_GROUP 32
#define IQ4NL_LEVELS 16

extern const int8_t iq4nl_grid[IQ4NL_LEVELS]; /* K, ascending */

int iq4nl_groups(int cols);                   /* ceil(cols / 32) */
float iq4nl_value(int index);                 /* C[index] = K[index] / 127 */

/* The index of the entry of C nearest to z (finite), ties to the larger index. */
int iq4nl_index(float z);

/* scales [rows][groups] = M0 (0 for an all-zero group). */
void iq4nl_init_scales(int rows, int cols, const float *w, float *scales);

/* z [rows][cols] = w / M0 clamped to [-1, 1] (0 in an all-zero group). */
void iq4nl_normalise(int rows, int cols, const float *w, const float *scales, float *z);

/* The multiplier s per group that starts the learned scale M = M0 s: the best of a fixed
 * set of candidates by ||w - M C[index(w / M)]||^2, each candidate's M refit in closed
 * form for its codes (as ggml searches d). s [rows][groups]; 1 for an all-zero group.
 * Never worse than s = 1. */
void iq4nl_fit_scales(int rows, int cols, const float *w, const float *scales0, float *s);

/* codes [rows][cols] = index(z); w_hat (may be NULL) = M C[code] with M = scales. */
void iq4nl_forward(int rows, int cols, const float *z, const float *scales, int8_t *codes,
                   float *w_hat);

/* Straight-through backward over rows [r0, r1), given dw_hat = dL/dw_hat:
 *   dz (NULL: not written) = dw_hat M           (w_hat ~ M z through the rounding)
 *   dM (NULL: not written) [rows][groups] = sum over the group of dw_hat C[code]
 * (the codes depend on z only, so w_hat is exactly linear in M). Sums in double. */
void iq4nl_backward_rows(int rows, int cols, int r0, int r1, const float *scales,
                         const int8_t *codes, const float *dw_hat, float *dz, double *dM);

/* The stored form: d [rows][groups] = M / 127, and w = d K[code] from it. */
void iq4nl_stored_scales(int rows, int cols, const float *scales, float *d);
void iq4nl_dequantize(int rows, int cols, const int8_t *codes, const float *d, float *w);

#endif
