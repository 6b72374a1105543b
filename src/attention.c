#include "attention.h"

#include <math.h>
#include <stddef.h>

#include "gemm.h"

/* Row t of the causal softmax: p[0..t] = softmax(p[0..t]) with max subtraction (as
 * llama2.c's run.c), p[t+1..T) = 0. */
static void causal_softmax_row_(float *p, int t, int T) {
    float max = p[0];
    for (int s = 1; s <= t; s++)
        if (p[s] > max) max = p[s];
    float sum = 0.0f;
    for (int s = 0; s <= t; s++) {
        p[s] = expf(p[s] - max);
        sum += p[s];
    }
    float const inv = 1.0f / sum;
    for (int s = 0; s <= t; s++) p[s] *= inv;
    for (int s = t + 1; s < T; s++) p[s] = 0.0f;
}

/* One (sequence, head)'s probabilities: p [T][T] = causal softmax(scale Q_h K_g^T). The
 * backward recomputes them with this same call, so they are bit-identical to the forward's. */
static void head_probabilities_(float *p, const float *qh, const float *kg, int T, int d, int dkv, int hs) {
    float const scale = 1.0f / sqrtf((float)hs);
    /* S = scale * Q_h K_g^T */
    gemm(0, 1, T, T, hs, scale, qh, d, kg, dkv, 0.0f, p, T);
    for (int t = 0; t < T; t++) causal_softmax_row_(p + (size_t)t * T, t, T);
}

void attention_forward(float *out, float *p, const float *q, const float *k, const float *v, int B, int T,
                       int H, int Hkv, int hs) {
    int const d = H * hs, dkv = Hkv * hs, group = H / Hkv;
    for (int b = 0; b < B; b++) {
        size_t const row0 = (size_t)b * T;
        for (int h = 0; h < H; h++) {
            int const g = h / group;
            const float *qh = q + row0 * d + (size_t)h * hs;   /* [T][hs], ld d */
            const float *kg = k + row0 * dkv + (size_t)g * hs; /* [T][hs], ld dkv */
            const float *vg = v + row0 * dkv + (size_t)g * hs; /* [T][hs], ld dkv */
            float *oh = out + row0 * d + (size_t)h * hs;       /* [T][hs], ld d */
            head_probabilities_(p, qh, kg, T, d, dkv, hs);
            /* O_h = P V_g */
            gemm(0, 0, T, hs, T, 1.0f, p, T, vg, dkv, 0.0f, oh, d);
        }
    }
}

/* In place on dp (row t of dP): dS = P * (dP - sum_s P dP), zero above the diagonal. The
 * 1/sqrt(hs) of S is applied by the sgemm that consumes dS. */
static void causal_softmax_backward_row_(float *dp, const float *p, int t, int T) {
    float dot = 0.0f;
    for (int s = 0; s <= t; s++) dot += p[s] * dp[s];
    for (int s = 0; s <= t; s++) dp[s] = p[s] * (dp[s] - dot);
    for (int s = t + 1; s < T; s++) dp[s] = 0.0f;
}

void attention_backward(float *dq, float *dk, float *dv, float *p, float *datt, const float *dout,
                        const float *q, const float *k, const float *v, int B, int T, int H, int Hkv,
                        int hs) {
    int const d = H * hs, dkv = Hkv * hs, group = H / Hkv;
    float const scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++) {
        size_t const row0 = (size_t)b * T;
        for (int h = 0; h < H; h++) {
            int const g = h / group;
            /* the first head of a group overwrites dK_g, dV_g; the others accumulate */
            float const beta = h % group == 0 ? 0.0f : 1.0f;
            const float *qh = q + row0 * d + (size_t)h * hs;
            const float *kg = k + row0 * dkv + (size_t)g * hs;
            const float *vg = v + row0 * dkv + (size_t)g * hs;
            const float *doh = dout + row0 * d + (size_t)h * hs;
            float *dqh = dq + row0 * d + (size_t)h * hs;
            float *dkg = dk + row0 * dkv + (size_t)g * hs;
            float *dvg = dv + row0 * dkv + (size_t)g * hs;
            head_probabilities_(p, qh, kg, T, d, dkv, hs); /* recomputed: B H T^2 floats not kept */
            /* dV_g += P^T dO_h */
            gemm(1, 0, T, hs, T, 1.0f, p, T, doh, d, beta, dvg, dkv);
            /* dP = dO_h V_g^T */
            gemm(0, 1, T, T, hs, 1.0f, doh, d, vg, dkv, 0.0f, datt, T);
            for (int t = 0; t < T; t++)
                causal_softmax_backward_row_(datt + (size_t)t * T, p + (size_t)t * T, t, T);
            /* dQ_h = scale * dS K_g */
            gemm(0, 0, T, hs, T, scale, datt, T, kg, dkv, 0.0f, dqh, d);
            /* dK_g += scale * dS^T Q_h */
            gemm(1, 0, T, hs, T, scale, datt, T, qh, d, beta, dkg, dkv);
        }
    }
}
