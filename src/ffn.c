#include "ffn.h"

#include <math.h>

void swiglu_forward(float *hh, const float *u, const float *g, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float val = u[i];
        val *= 1.0f / (1.0f + expf(-val));
        val *= g[i];
        hh[i] = val;
    }
}

/* With s = sigmoid(u): silu(u) = u s and silu'(u) = s (1 + u (1 - s)). */
void swiglu_backward(float *du, float *dg, const float *dhh, const float *u, const float *g,
                     size_t n) {
    for (size_t i = 0; i < n; i++) {
        /* all three read before either gradient is written: du may alias dhh or u, dg g */
        float const ui = u[i], gi = g[i], d = dhh[i];
        float const s = 1.0f / (1.0f + expf(-ui));
        dg[i] = d * ui * s;
        du[i] = d * gi * s * (1.0f + ui * (1.0f - s));
    }
}
