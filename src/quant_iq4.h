/* llama.cpp's IQ4_NL and IQ4_XS grids as learned quantizers: weights learned over the
 * grid by block reconstruction, as NUPES learns over its power grid (docs/design.md
 * 3.3), so that the result is stored in llama.cpp's own formats with no requantization.
 *
 * The grid is ggml's fixed 16-entry non-uniform table K (kvalues_iq4nl, a format
 * constant: GGUF readers decode with it). A row is cut into groups of 32 inputs (the
 * last group of a row is shorter when 32 does not divide it; GGUF cannot store such a
 * row in these types and the exporter falls back); each group has one signed scale M:
 *   C[i] = K[i] / 127 (C[0] = -1, C[15] = 113/127)
 *   M0 = -(the group's element of largest |w|): that element maps to C[0] = -1, as in
 *        ggml's d = max / K[0]; latent z = w / M0 in [-1, 1]
 *   code i = argmin_i |z - C[i]|, ties to the larger index (as ggml's best_index_int8)
 *   d = M / 127 (the block scale llama.cpp stores),  w_hat = d K[i]   (~ M C[i])
 * The forward computes w_hat = d K[i] in float: exactly what llama.cpp computes from a
 * block {fp16 d; 4-bit i} once d is an fp16 value (rounding d is the caller's step).
 *
 * IQ4_XS (rows a multiple of 256) stores the same indices, but the eight d of a
 * super-block of 256 inputs as integers l in [-32, 31] times one fp16 D per super-block:
 *   D = fp16(-(the d of largest |d|) / 32),  l = clamp(round(d / D), -32, 31),  d_hat = D l
 * (llama.cpp's block_iq4_xs: ls = l + 32 in 6 bits, dl = D (ls - 32)). Learning keeps
 * the fp32 M and forwards with d_hat; the gradient passes to M straight through the
 * scale rounding, as it passes to z straight through the index rounding.
 *
 * Shapes: w, z, codes, w_hat, dw_hat, dz [rows][cols] row-major; M, d, dM [rows][groups]
 * with groups = ceil(cols / 32); D [rows][cols / 256]. */
#ifndef NUPES_QUANT_IQ4_H
#define NUPES_QUANT_IQ4_H

#include <stdint.h>

#define IQ4_GROUP 32
#define IQ4_LEVELS 16
#define IQ4XS_SUPER 256 /* inputs per IQ4_XS super-block: 8 groups */

extern const int8_t iq4_grid[IQ4_LEVELS]; /* K, ascending */

int iq4_groups(int cols);   /* ceil(cols / 32) */
float iq4_value(int index); /* C[index] = K[index] / 127 */

/* The index of the entry of C nearest to z (finite), ties to the larger index. */
int iq4_index(float z);

/* M [rows][groups] = M0 (0 for an all-zero group). */
void iq4_init_scales(int rows, int cols, const float *w, float *M);

/* z [rows][cols] = w / M clamped to [-1, 1] (0 in a group whose M is 0). */
void iq4_normalise(int rows, int cols, const float *w, const float *M, float *z);

/* The multiplier s per group that starts the learned scale M = M0 s: the best of a fixed
 * set of candidates by ||w - M C[index(w / M)]||^2, each candidate's M refit in closed
 * form for its codes (as ggml searches d). s [rows][groups] in [1e-3, 1e3]; 1 for an
 * all-zero group. Never worse than s = 1. */
void iq4_fit_scales(int rows, int cols, const float *w, const float *M0, float *s);

/* d [rows][groups] = M / 127: IQ4_NL's block scales. */
void iq4nl_block_scales(int rows, int cols, const float *M, float *d);

/* IQ4_XS's block scales, cols a multiple of 256: d_hat [rows][groups] = D l, with
 * D [rows][cols / 256] (fp16 values) and l [rows][groups] in [-32, 31] (NULL: not
 * stored). A super-block whose scales are all 0, or whose D underflows fp16, gets D = 0
 * and l = 0 (it decodes to zeros, as llama.cpp would decode it). */
void iq4xs_block_scales(int rows, int cols, const float *M, float *d_hat, float *D, int8_t *l);

/* codes [rows][cols] = index(z); w_hat (may be NULL) = d K[code] with the group's d. */
void iq4_forward(int rows, int cols, const float *z, const float *d, int8_t *codes,
                 float *w_hat);

/* Straight-through backward over rows [r0, r1), given dw_hat = dL/dw_hat and the d the
 * forward used (w_hat = d K[i] ~ 127 d z and d ~ M / 127):
 *   dz (NULL: not written) = dw_hat 127 d
 *   dM (NULL: not written) [rows][groups] = sum over the group of dw_hat K[code] / 127
 * (the codes depend on z only, so w_hat is linear in d). Sums in double. */
void iq4_backward_rows(int cols, int r0, int r1, const float *d, const int8_t *codes,
                       const float *dw_hat, float *dz, double *dM);

/* w [rows][cols] = d K[code]: decoding stored codes and block scales. */
void iq4_dequantize(int rows, int cols, const int8_t *codes, const float *d, float *w);

#endif
