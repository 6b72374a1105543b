/* RMSNorm over the rows of x, as llama2.c's run.c computes it:
 *   ss = mean(x^2) + eps;  out = g * (x * (1 / sqrt(ss))). */
#ifndef NUPES_RMSNORM_H
#define NUPES_RMSNORM_H

/* x, out: [N][d] (out may alias x); g: [d]; rstd: [N] 1/sqrt(ss) of each row, kept for the
 * backward pass, or NULL when not needed. */
void rmsnorm_forward(float *out, float *rstd, const float *x, const float *g, int N, int d,
                     float eps);

/* dx: [N][d] += gradient w.r.t. x given dout [N][d] and the forward's x, g and rstd. */
void rmsnorm_backward(float *dx, const float *dout, const float *x, const float *g,
                      const float *rstd, int N, int d);

#endif
