#include "rmsnorm.h"

#include <math.h>
#include <stddef.h>

void rmsnorm_forward(float *out, float *rstd, const float *x, const float *g, int N, int d,
                     float eps) {
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * d;
        float *outr = out + (size_t)n * d;
        float ss = 0.0f;
        for (int j = 0; j < d; j++) ss += xr[j] * xr[j];
        ss /= d;
        ss += eps;
        float const r = 1.0f / sqrtf(ss);
        for (int j = 0; j < d; j++) outr[j] = g[j] * (r * xr[j]);
        if (rstd) rstd[n] = r;
    }
}

/* With out_j = g_j x_j r and r = (mean(x^2) + eps)^(-1/2), dr/dx_k = -r^3 x_k / d, so
 *   dx_k = r g_k dout_k - (r^3 / d) x_k sum_j dout_j g_j x_j. */
void rmsnorm_backward(float *dx, const float *dout, const float *x, const float *g,
                      const float *rstd, int N, int d) {
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * d;
        const float *doutr = dout + (size_t)n * d;
        float *dxr = dx + (size_t)n * d;
        float const r = rstd[n];
        float dot = 0.0f;
        for (int j = 0; j < d; j++) dot += doutr[j] * g[j] * xr[j];
        float const coef = r * r * r * dot / d;
        for (int j = 0; j < d; j++) dxr[j] += r * g[j] * doutr[j] - coef * xr[j];
    }
}
