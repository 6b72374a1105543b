#include "rope.h"

#include <math.h>
#include <stddef.h>

void rope_tables_init(float *cos_table, float *sin_table, int T, int hs, float theta) {
    int const pairs = hs / 2;
    for (int i = 0; i < pairs; i++) {
        float const freq = 1.0f / powf(theta, (float)(2 * i) / (float)hs);
        for (int t = 0; t < T; t++) {
            float const angle = (float)t * freq;
            cos_table[(size_t)t * pairs + i] = cosf(angle);
            sin_table[(size_t)t * pairs + i] = sinf(angle);
        }
    }
}

/* Rotates every pair of every head by +angle (sign 1) or -angle (sign -1). */
static void rope_rotate_(float *x, const float *cos_table, const float *sin_table, int B, int T,
                         int n_heads, int hs, RopeStyle style, float sign) {
    int const pairs = hs / 2;
    /* element offsets of the two members of pair i within a head */
    int const stride_first = style == ROPE_INTERLEAVED ? 2 : 1;
    int const second_offset = style == ROPE_INTERLEAVED ? 1 : pairs;
    size_t const row = (size_t)n_heads * hs;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float *cosr = cos_table + (size_t)t * pairs;
            const float *sinr = sin_table + (size_t)t * pairs;
            float *xr = x + ((size_t)b * T + t) * row;
            for (int h = 0; h < n_heads; h++) {
                float *xh = xr + (size_t)h * hs;
                for (int i = 0; i < pairs; i++) {
                    float *v0 = xh + i * stride_first;
                    float *v1 = v0 + second_offset;
                    float const c = cosr[i], s = sign * sinr[i];
                    float const a = *v0, bb = *v1;
                    *v0 = a * c - bb * s;
                    *v1 = a * s + bb * c;
                }
            }
        }
    }
}

void rope_forward(float *x, const float *cos_table, const float *sin_table, int B, int T,
                  int n_heads, int hs, RopeStyle style) {
    rope_rotate_(x, cos_table, sin_table, B, T, n_heads, hs, style, 1.0f);
}

void rope_backward(float *dx, const float *cos_table, const float *sin_table, int B, int T,
                   int n_heads, int hs, RopeStyle style) {
    rope_rotate_(dx, cos_table, sin_table, B, T, n_heads, hs, style, -1.0f);
}
