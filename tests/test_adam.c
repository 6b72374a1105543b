/* Adam against a naive double-precision implementation; the cosine schedule; clamps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "adam.h"
#include "rng.h"

/* The textbook update in double, with the clamp. */
static void naive_adam(double *p, const double *g, double *m, double *v, int n, double lr,
                       int t, double lo, double hi) {
    for (int i = 0; i < n; i++) {
        m[i] = 0.9 * m[i] + 0.1 * g[i];
        v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
        double const mh = m[i] / (1.0 - pow(0.9, t)), vh = v[i] / (1.0 - pow(0.999, t));
        p[i] = fmin(hi, fmax(lo, p[i] - lr * mh / (sqrt(vh) + 1e-8)));
    }
}

static void test_adam_vs_naive(void **state) {
    (void)state;
    enum { N = 64, STEPS = 20 };
    float p[N], m[N] = {0}, v[N] = {0}, g[N];
    double pd[N], md[N] = {0}, vd[N] = {0}, gd[N];
    Rng rng;
    rng_seed(&rng, 1, 0);
    for (int i = 0; i < N; i++) p[i] = 2.0f * rng_uniform_float(&rng) - 1.0f, pd[i] = p[i];
    for (int t = 1; t <= STEPS; t++) {
        float const lr = adam_cosine_lr(1e-2f, t - 1, STEPS);
        for (int i = 0; i < N; i++) {
            g[i] = (2.0f * rng_uniform_float(&rng) - 1.0f) * (i % 3 ? 1.0f : 1e-3f);
            if (i == 5) g[i] = 0.0f; /* a zero gradient: no update, no NaN */
            gd[i] = g[i];
        }
        adam_step(p, g, m, v, N, lr, t, -1.0f, 1.0f);
        naive_adam(pd, gd, md, vd, N, lr, t, -1.0, 1.0);
        for (int i = 0; i < N; i++) {
            assert_true(isfinite(p[i]));
            if (fabs(p[i] - pd[i]) > 1e-6 + 1e-5 * fabs(pd[i]))
                fail_msg("step %d i %d: %.9g vs naive %.9g", t, i, (double)p[i], pd[i]);
            if (fabs(m[i] - md[i]) > 1e-7 + 1e-5 * fabs(md[i])) /* |g| <= 1: float rounding */
                fail_msg("step %d i %d: m %.9g vs naive %.9g", t, i, (double)m[i], md[i]);
        }
    }
}

/* The double-gradient variant is exactly adam_step on the gradients rounded to float. */
static void test_double_grad_variant(void **state) {
    (void)state;
    float p1[4] = {0.5f, 0.7f, 1.2f, 0.2f}, p2[4], m1[4] = {0}, v1[4] = {0}, m2[4] = {0},
          v2[4] = {0};
    memcpy(p2, p1, sizeof p1);
    double const gd[4] = {1e-3, -2.5e-4, 3.0, -1e-9};
    float const gf[4] = {(float)gd[0], (float)gd[1], (float)gd[2], (float)gd[3]};
    for (int t = 1; t <= 3; t++) {
        adam_step(p1, gf, m1, v1, 4, 1e-2f, t, 0.2f, 1.5f);
        adam_step_double_grad(p2, gd, m2, v2, 4, 1e-2f, t, 0.2f, 1.5f);
    }
    assert_memory_equal(p1, p2, sizeof p1);
    assert_memory_equal(v1, v2, sizeof v1);
}

static void test_cosine_schedule(void **state) {
    (void)state;
    assert_true(adam_cosine_lr(1e-3f, 0, 500) == 1e-3f);
    assert_true(fabsf(adam_cosine_lr(1e-3f, 250, 500) - 5e-4f) < 1e-10f);
    float const last = adam_cosine_lr(1e-3f, 499, 500);
    assert_true(last > 0.0f && last < 1e-7f);
    assert_true(adam_cosine_lr(1e-3f, 500, 500) == 0.0f);
    assert_true(adam_cosine_lr(1e-3f, 7, 0) == 1e-3f);
    for (int t = 1; t < 500; t++) /* monotone decay */
        assert_true(adam_cosine_lr(1.0f, t, 500) <= adam_cosine_lr(1.0f, t - 1, 500));
}

/* A big step hits the clamp exactly; the scale clamp keeps M > 0; lr 0 changes nothing
 * but the moments. */
static void test_clamping(void **state) {
    (void)state;
    float z[3] = {0.999f, -0.999f, 0.0f}, gz[3] = {-1.0f, 1.0f, 1.0f}, m[3] = {0}, v[3] = {0};
    adam_step(z, gz, m, v, 3, 0.5f, 1, -1.0f, 1.0f);
    assert_true(z[0] == 1.0f && z[1] == -1.0f && fabsf(z[2] + 0.5f) < 1e-6f);
    float M[1] = {1e-6f}, gM[1] = {1.0f}, mM[1] = {0}, vM[1] = {0};
    adam_step(M, gM, mM, vM, 1, 1.0f, 1, ADAM_MIN_SCALE, INFINITY);
    assert_true(M[0] == ADAM_MIN_SCALE);
    float a[1] = {0.21f}, ga[1] = {1.0f}, ma[1] = {0}, va[1] = {0};
    adam_step(a, ga, ma, va, 1, 1.0f, 1, 0.2f, 1.5f);
    assert_true(a[0] == 0.2f);
    float p[1] = {0.3f}, gp[1] = {2.0f}, mp[1] = {0}, vp[1] = {0};
    adam_step(p, gp, mp, vp, 1, 0.0f, 1, -1.0f, 1.0f);
    assert_true(p[0] == 0.3f && mp[0] != 0.0f && vp[0] != 0.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam_vs_naive),
        cmocka_unit_test(test_double_grad_variant),
        cmocka_unit_test(test_cosine_schedule),
        cmocka_unit_test(test_clamping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
