/* Linear layers y = x W^T and their backward passes, all through gemm() (gemm.h).
 * Weights are row-major [out_dim][in_dim], activations row-major [N][in_dim]. */
#ifndef NUPES_LINEAR_H
#define NUPES_LINEAR_H

/* out: [N][out_dim] = inp [N][in_dim] W^T, plus the previous out when accumulate (used for
 * residual connections: out holds the residual on entry). w: [out_dim][in_dim]. */
void linear_forward(float *out, const float *inp, const float *w, int N, int in_dim, int out_dim,
                    int accumulate);

/* dw: [out_dim][in_dim] = dout^T inp (overwritten). dout: [N][out_dim]; inp: [N][in_dim]. */
void linear_backward_weight(float *dw, const float *dout, const float *inp, int N, int in_dim,
                            int out_dim);

/* dinp: [N][in_dim] = dout W, plus the previous dinp when accumulate. */
void linear_backward_input(float *dinp, const float *dout, const float *w, int N, int in_dim,
                           int out_dim, int accumulate);

#endif
