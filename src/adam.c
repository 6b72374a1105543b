/* Adam with the parameter clamp fused into the update (one pass over memory). */
#include "adam.h"

#include <math.h>

float adam_cosine_lr(float lr, int step, int iterations) {
    if (iterations <= 0) return lr;
    if (step >= iterations) return 0.0f;
    double const pi = 3.14159265358979323846;
    return (float)((double)lr * 0.5 * (1.0 + cos(pi * (double)step / (double)iterations)));
}

/* The per-call constants: lr / (1 - b1^t) and 1 / sqrt(1 - b2^t). */
typedef struct {
    float step_size, inv_sqrt_bias2;
} AdamFactors;

static AdamFactors adam_factors(float lr, int step) {
    double const bias1 = 1.0 - pow(ADAM_BETA1, step);
    double const bias2 = 1.0 - pow(ADAM_BETA2, step);
    AdamFactors f = {(float)(lr / bias1), (float)(1.0 / sqrt(bias2))};
    return f;
}

static inline float adam_update_one(float p, float g, float *m, float *v, AdamFactors f,
                                    float lo, float hi) {
    /* 1 - beta as its own float constant: 1.0f - 0.9f would be 0.100000024 */
    float const b1 = (float)ADAM_BETA1, b2 = (float)ADAM_BETA2;
    float const c1 = (float)(1.0 - ADAM_BETA1), c2 = (float)(1.0 - ADAM_BETA2);
    float const mi = b1 * *m + c1 * g;
    float const vi = b2 * *v + c2 * g * g;
    *m = mi;
    *v = vi;
    p -= f.step_size * mi / (sqrtf(vi) * f.inv_sqrt_bias2 + (float)ADAM_EPS);
    return fminf(hi, fmaxf(lo, p));
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ADAM_HAVE_AVX2_PATH 1

/* adam_update_one on 8 elements with gradient grad * scale: the same float operations in
 * the same order (IEEE sqrt and division, no FMA), so bit-identical to the scalar loop. */
__attribute__((target("avx2"))) static size_t adam_run_avx2(float *param, const float *grad,
                                                            float scale, float *m, float *v,
                                                            size_t n, AdamFactors f,
                                                            float lo, float hi) {
    __m256 const b1 = _mm256_set1_ps((float)ADAM_BETA1), b2 = _mm256_set1_ps((float)ADAM_BETA2);
    __m256 const c1 = _mm256_set1_ps((float)(1.0 - ADAM_BETA1));
    __m256 const c2 = _mm256_set1_ps((float)(1.0 - ADAM_BETA2));
    __m256 const step_size = _mm256_set1_ps(f.step_size);
    __m256 const inv_bias2 = _mm256_set1_ps(f.inv_sqrt_bias2);
    __m256 const eps = _mm256_set1_ps((float)ADAM_EPS), s = _mm256_set1_ps(scale);
    __m256 const vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 const g = _mm256_mul_ps(_mm256_loadu_ps(grad + i), s);
        __m256 const mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(c1, g));
        __m256 const vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)),
                                        _mm256_mul_ps(_mm256_mul_ps(c2, g), g));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        __m256 const denom = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), inv_bias2), eps);
        __m256 const p = _mm256_sub_ps(_mm256_loadu_ps(param + i),
                                       _mm256_div_ps(_mm256_mul_ps(step_size, mi), denom));
        _mm256_storeu_ps(param + i, _mm256_min_ps(_mm256_max_ps(p, vlo), vhi));
    }
    return i;
}
#endif

static int adam_use_avx2(void) {
#ifdef ADAM_HAVE_AVX2_PATH
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

/* n elements with gradient grad[i] * scale (scale 1: exactly grad[i]). */
static void adam_run(float *param, const float *grad, float scale, float *m, float *v,
                     size_t n, AdamFactors f, float lo, float hi, int use_avx2) {
    size_t i = 0;
#ifdef ADAM_HAVE_AVX2_PATH
    if (use_avx2) i = adam_run_avx2(param, grad, scale, m, v, n, f, lo, hi);
#else
    (void)use_avx2;
#endif
    for (; i < n; i++)
        param[i] = adam_update_one(param[i], grad[i] * scale, &m[i], &v[i], f, lo, hi);
}

void adam_step(float *param, const float *grad, float *m, float *v, size_t n, float lr,
               int step, float clamp_lo, float clamp_hi) {
    adam_run(param, grad, 1.0f, m, v, n, adam_factors(lr, step), clamp_lo, clamp_hi,
             adam_use_avx2());
}

void adam_step_grouped(float *param, const float *grad, const float *grad_scale,
                       size_t group_len, float *m, float *v, size_t n, float lr, int step,
                       float clamp_lo, float clamp_hi) {
    AdamFactors const f = adam_factors(lr, step);
    int const use_avx2 = adam_use_avx2();
    for (size_t at = 0, g = 0; at < n; at += group_len, g++) {
        size_t const len = n - at < group_len ? n - at : group_len;
        adam_run(param + at, grad + at, grad_scale[g], m + at, v + at, len, f, clamp_lo,
                 clamp_hi, use_avx2);
    }
}

void adam_step_double_grad(float *param, const double *grad, float *m, float *v, size_t n,
                           float lr, int step, float clamp_lo, float clamp_hi) {
    AdamFactors const f = adam_factors(lr, step);
    for (size_t i = 0; i < n; i++)
        param[i] = adam_update_one(param[i], (float)grad[i], &m[i], &v[i], f, clamp_lo,
                                   clamp_hi);
}
