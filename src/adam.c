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

void adam_step(float *param, const float *grad, float *m, float *v, size_t n, float lr,
               int step, float clamp_lo, float clamp_hi) {
    AdamFactors const f = adam_factors(lr, step);
    for (size_t i = 0; i < n; i++)
        param[i] = adam_update_one(param[i], grad[i], &m[i], &v[i], f, clamp_lo, clamp_hi);
}

void adam_step_double_grad(float *param, const double *grad, float *m, float *v, size_t n,
                           float lr, int step, float clamp_lo, float clamp_hi) {
    AdamFactors const f = adam_factors(lr, step);
    for (size_t i = 0; i < n; i++)
        param[i] = adam_update_one(param[i], (float)grad[i], &m[i], &v[i], f, clamp_lo,
                                   clamp_hi);
}
