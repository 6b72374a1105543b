#include "attention.h"

#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include "gemm.h"
#include "parallel.h"

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

/* The (sequence, head) pairs run side by side on parallel_threads() threads, each with its
 * own [T][T] scratch: slot 0 is the caller's, the others are allocated for the call. Every
 * pair runs the same products as one after another would (a gemm() inside a range runs on
 * that range's thread, src/parallel.h), so results do not depend on the thread count. */
typedef struct {
    float *out, *dq, *dk, *dv;
    const float *q, *k, *v, *dout;
    int T, H, Hkv, hs;
    float *p[PARALLEL_MAX_THREADS], *datt[PARALLEL_MAX_THREADS];
    atomic_int next_slot;
} HeadsJob;

/* Workers for `units` pairs: up to parallel_threads(), as many as have scratch (slots
 * 1.. allocated here, `per_slot` [T][T] buffers each); a slot that cannot be allocated
 * leaves fewer workers, the same results. */
static int heads_workers_(HeadsJob *job, int units, int per_slot) {
    int workers = parallel_threads();
    if (workers > units) workers = units;
    size_t const tt = (size_t)job->T * job->T;
    for (int w = 1; w < workers; w++) {
        job->p[w] = malloc(tt * sizeof(float));
        job->datt[w] = per_slot > 1 ? malloc(tt * sizeof(float)) : NULL;
        if (!job->p[w] || (per_slot > 1 && !job->datt[w])) {
            free(job->p[w]);
            free(job->datt[w]);
            job->p[w] = job->datt[w] = NULL;
            return w;
        }
    }
    return workers < 1 ? 1 : workers;
}

static void heads_free_(HeadsJob *job, int workers) {
    for (int w = 1; w < workers; w++) {
        free(job->p[w]);
        free(job->datt[w]);
    }
}

/* Pairs u in [u0, u1) of u = b H + h: O_h of sequence b. */
static void forward_heads_(void *arg, int u0, int u1) {
    HeadsJob *job = arg;
    int const T = job->T, H = job->H, hs = job->hs, d = H * hs, dkv = job->Hkv * hs, group = H / job->Hkv;
    float *p = job->p[atomic_fetch_add(&job->next_slot, 1)];
    for (int u = u0; u < u1; u++) {
        int const b = u / H, h = u % H, g = h / group;
        size_t const row0 = (size_t)b * T;
        const float *qh = job->q + row0 * d + (size_t)h * hs;   /* [T][hs], ld d */
        const float *kg = job->k + row0 * dkv + (size_t)g * hs; /* [T][hs], ld dkv */
        const float *vg = job->v + row0 * dkv + (size_t)g * hs; /* [T][hs], ld dkv */
        float *oh = job->out + row0 * d + (size_t)h * hs;       /* [T][hs], ld d */
        head_probabilities_(p, qh, kg, T, d, dkv, hs);
        /* O_h = P V_g */
        gemm(0, 0, T, hs, T, 1.0f, p, T, vg, dkv, 0.0f, oh, d);
    }
}

void attention_forward(float *out, float *p, const float *q, const float *k, const float *v, int B, int T,
                       int H, int Hkv, int hs) {
    HeadsJob job = {.out = out, .q = q, .k = k, .v = v, .T = T, .H = H, .Hkv = Hkv, .hs = hs};
    job.p[0] = p;
    atomic_init(&job.next_slot, 0);
    int const workers = heads_workers_(&job, B * H, 1);
    parallel_ranges(workers, B * H, forward_heads_, &job);
    heads_free_(&job, workers);
}

/* In place on dp (row t of dP): dS = P * (dP - sum_s P dP), zero above the diagonal. The
 * 1/sqrt(hs) of S is applied by the sgemm that consumes dS. */
static void causal_softmax_backward_row_(float *dp, const float *p, int t, int T) {
    float dot = 0.0f;
    for (int s = 0; s <= t; s++) dot += p[s] * dp[s];
    for (int s = 0; s <= t; s++) dp[s] = p[s] * (dp[s] - dot);
    for (int s = t + 1; s < T; s++) dp[s] = 0.0f;
}

/* Pairs u in [u0, u1) of u = b Hkv + g: every head h of kv group g of sequence b, in order
 * (the first head of a group overwrites dK_g, dV_g; the others accumulate, as one after
 * another would). */
static void backward_groups_(void *arg, int u0, int u1) {
    HeadsJob *job = arg;
    int const T = job->T, H = job->H, Hkv = job->Hkv, hs = job->hs, d = H * hs, dkv = Hkv * hs;
    int const group = H / Hkv;
    float const scale = 1.0f / sqrtf((float)hs);
    int const slot = atomic_fetch_add(&job->next_slot, 1);
    float *p = job->p[slot], *datt = job->datt[slot];
    for (int u = u0; u < u1; u++) {
        int const b = u / Hkv, g = u % Hkv;
        size_t const row0 = (size_t)b * T;
        for (int h = g * group; h < (g + 1) * group; h++) {
            float const beta = h % group == 0 ? 0.0f : 1.0f;
            const float *qh = job->q + row0 * d + (size_t)h * hs;
            const float *kg = job->k + row0 * dkv + (size_t)g * hs;
            const float *vg = job->v + row0 * dkv + (size_t)g * hs;
            const float *doh = job->dout + row0 * d + (size_t)h * hs;
            float *dqh = job->dq + row0 * d + (size_t)h * hs;
            float *dkg = job->dk + row0 * dkv + (size_t)g * hs;
            float *dvg = job->dv + row0 * dkv + (size_t)g * hs;
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

void attention_backward(float *dq, float *dk, float *dv, float *p, float *datt, const float *dout,
                        const float *q, const float *k, const float *v, int B, int T, int H, int Hkv,
                        int hs) {
    HeadsJob job = {.dq = dq, .dk = dk, .dv = dv, .q = q, .k = k, .v = v, .dout = dout,
                    .T = T, .H = H, .Hkv = Hkv, .hs = hs};
    job.p[0] = p;
    job.datt[0] = datt;
    atomic_init(&job.next_slot, 0);
    int const workers = heads_workers_(&job, B * Hkv, 2);
    parallel_ranges(workers, B * Hkv, backward_groups_, &job);
    heads_free_(&job, workers);
}
