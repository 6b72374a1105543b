#include "linear.h"

#include "gemm.h"

void linear_forward(float *out, const float *inp, const float *w, int N, int in_dim, int out_dim,
                    int accumulate) {
    /* out [N][out] = inp [N][in] * w^T ([in][out]) */
    gemm(0, 1, N, out_dim, in_dim, 1.0f, inp, in_dim, w, in_dim, accumulate ? 1.0f : 0.0f, out,
         out_dim);
}

void linear_backward_weight(float *dw, const float *dout, const float *inp, int N, int in_dim,
                            int out_dim) {
    /* dw [out][in] = dout^T ([out][N]) * inp [N][in] */
    gemm(1, 0, out_dim, in_dim, N, 1.0f, dout, out_dim, inp, in_dim, 0.0f, dw, in_dim);
}

void linear_backward_input(float *dinp, const float *dout, const float *w, int N, int in_dim,
                           int out_dim, int accumulate) {
    /* dinp [N][in] = dout [N][out] * w [out][in] */
    gemm(0, 0, N, in_dim, out_dim, 1.0f, dout, out_dim, w, in_dim, accumulate ? 1.0f : 0.0f, dinp,
         in_dim);
}
