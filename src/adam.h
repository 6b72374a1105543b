/* Adam (docs/design.md 3.3): beta1 0.9, beta2 0.999, eps 1e-8, with cosine learning-rate decay
 * and the parameter clamp applied in the same pass.
 *
 * Update for step t (1-based, the bias correction's exponent), element-wise in fp32:
 *   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
 *   p = clamp(p - lr_t * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps), lo, hi)
 * The bias corrections are computed once per call in double. Deterministic: the same
 * inputs give the same outputs bit for bit (no threads, no reordering across elements;
 * the AVX2 path does the scalar path's float operations in the same order).
 * Clamps used by NUPES: z to [-1, 1], a to [QUANT_MIN_EXPONENT, QUANT_MAX_EXPONENT],
 * M to [ADAM_MIN_SCALE, +inf). */
#ifndef NUPES_ADAM_H
#define NUPES_ADAM_H

#include <stddef.h>

#define ADAM_BETA1 0.9
#define ADAM_BETA2 0.999
#define ADAM_EPS 1e-8
#define ADAM_MIN_SCALE 1e-12f

/* Cosine decay to 0: lr * 0.5 * (1 + cos(pi * step / iterations)), step 0-based in
 * [0, iterations): the first step uses lr, the last one lr * (1 - cos(pi/iters))/2 > 0;
 * step >= iterations gives 0. iterations <= 0 gives lr (no schedule). */
float adam_cosine_lr(float lr, int step, int iterations);

/* param, m, v: [n] (m and v start at 0); grad [n]. step is 1-based (bias correction). */
void adam_step(float *param, const float *grad, float *m, float *v, size_t n, float lr,
               int step, float clamp_lo, float clamp_hi);

/* adam_step with the gradient of element i equal to grad[i] * grad_scale[i / group_len]
 * (one float product, as if those products had been stored first: bit-identical to
 * adam_step on them). NUPES's latents: dL/dz = dL/dw_hat * M per quantization group, so
 * the scaled gradient never needs a buffer of its own. */
void adam_step_grouped(float *param, const float *grad, const float *grad_scale,
                       size_t group_len, float *m, float *v, size_t n, float lr, int step,
                       float clamp_lo, float clamp_hi);

/* The same for the exponent and scale gradients, which quant_backward sums in double:
 * each gradient is rounded to float first, then the update is exactly adam_step's. */
void adam_step_double_grad(float *param, const double *grad, float *m, float *v, size_t n,
                           float lr, int step, float clamp_lo, float clamp_hi);

#endif
