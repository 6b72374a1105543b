/* The power quantizer of docs/design.md 3.1 and its straight-through backward (3.3).
 *
 * Every per-element step is a table look-up (see QuantTable in quant.h): the code from
 * the threshold buckets, the value from C_a, ln(|k|/m) from a table. Only the exponent
 * gradient needs one log and one exp per nonzero code. Shapes: w, z, codes, w_hat,
 * dw_hat, dz are [rows][cols] row-major; scales, dM [rows][groups]; a, da [n_exponents]. */
#include "quant.h"

#include <math.h>
#include <string.h>

QuantShape quant_shape(QuantSpec s, int rows, int cols) {
    QuantShape sh;
    sh.rows = rows;
    sh.cols = cols;
    /* ceil: the last group of a row is shorter when group_size does not divide it */
    sh.groups = (s.group_size > 0) ? (cols + s.group_size - 1) / s.group_size : 1;
    sh.n_exponents = s.per_row ? rows : 1;
    return sh;
}

int quant_max_code(int bits) { return (1 << (bits - 1)) - 1; }

/* Elements per full group (the whole row when group_size is 0): group g starts at g * len. */
static int group_len(QuantSpec s, QuantShape sh) {
    return s.group_size > 0 && s.group_size < sh.cols ? s.group_size : sh.cols;
}

int quant_group_len(QuantSpec s, QuantShape sh, int g) {
    int const len = group_len(s, sh), rest = sh.cols - g * len;
    return rest < len ? rest : len;
}

static size_t row_offset(QuantShape sh, int r) { return (size_t)r * (size_t)sh.cols; }

// ----------------------------------------------------------------------------- tables

void quant_table_init(QuantTable *t, int bits, float a) {
    memset(t, 0, sizeof *t);
    t->bits = bits;
    t->m = quant_max_code(bits);
    for (int j = 0; j < t->m; j++) t->ln_half_d[j] = log((j + 0.5) / t->m);
    for (int k = 1; k <= t->m; k++) {
        t->ln_level_d[k] = log((double)k / t->m);
        t->ln_level[k] = (float)t->ln_level_d[k];
    }
    quant_table_set_exponent(t, a);
}

/* The smallest float >= x (x > 0, finite): |z| >= it in float iff |z| >= x exactly. */
static float float_at_or_above(double x) {
    float f = (float)x;
    if ((double)f < x) f = nextafterf(f, INFINITY);
    return f;
}

/* first_code[i] = #{ j : t_j <= lower end of bucket i }; a threshold's first bucket
 * at or above it is ceil(bits(t_j) / 2^15). */
static void fill_first_codes(QuantTable *t) {
    int const m = t->m;
    uint32_t pos = 0, prev_bucket = UINT32_MAX;
    t->single_step = 1;
    for (int j = 0; j < m; j++) {
        uint32_t bits;
        memcpy(&bits, &t->threshold[j], sizeof bits);
        uint32_t bucket = (bits + 0x7fffu) >> 15;
        if (bucket > QUANT_TABLE_BUCKETS) bucket = QUANT_TABLE_BUCKETS;
        if (bucket == prev_bucket) t->single_step = 0; /* two thresholds in one bucket */
        prev_bucket = bucket;
        if (bucket > pos) {
            memset(t->first_code + pos, j, bucket - pos);
            pos = bucket;
        }
    }
    if (pos < QUANT_TABLE_BUCKETS) memset(t->first_code + pos, m, QUANT_TABLE_BUCKETS - pos);
}

void quant_table_set_exponent(QuantTable *t, float a) {
    int const m = t->m;
    double const inv_a = 1.0 / (double)a;
    t->a = a;
    for (int j = 0; j < m; j++) t->threshold[j] = float_at_or_above(exp(t->ln_half_d[j] * inv_a));
    t->threshold[m] = INFINITY;
    t->value[m] = 0.0f;
    for (int k = 1; k <= m; k++) {
        float const c = (k == m) ? 1.0f : (float)exp(t->ln_level_d[k] * inv_a);
        t->value[m + k] = c;
        t->value[m - k] = -c;
    }
    fill_first_codes(t);
}

// ----------------------------------------------------------------------------- scales

void quant_init_scales(QuantSpec s, QuantShape sh, const float *w, float *scales) {
    int const len = group_len(s, sh);
    for (int r = 0; r < sh.rows; r++) {
        const float *w_row = w + row_offset(sh, r);
        for (int g = 0; g < sh.groups; g++) {
            const float *wg = w_row + (size_t)g * len;
            int const n = quant_group_len(s, sh, g);
            float amax = 0.0f;
            for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(wg[i]));
            scales[(size_t)r * sh.groups + g] = amax;
        }
    }
}

void quant_normalise(QuantSpec s, QuantShape sh, const float *w, const float *scales, float *z) {
    int const len = group_len(s, sh);
    for (int r = 0; r < sh.rows; r++) {
        for (int g = 0; g < sh.groups; g++) {
            size_t const off = row_offset(sh, r) + (size_t)g * len;
            int const n = quant_group_len(s, sh, g);
            float const M = scales[(size_t)r * sh.groups + g];
            if (M > 0.0f) {
                for (int i = 0; i < n; i++) z[off + i] = quant_clamp_unit(w[off + i] / M);
            } else {
                memset(z + off, 0, (size_t)n * sizeof *z); /* all-zero group: no 0/0 */
            }
        }
    }
}

// ----------------------------------------------------------------------------- forward

/* One group: codes[i] = k(z[i]); w_hat[i] = M C_a[k] when w_hat is not NULL. The
 * common case (one comparison per element, w_hat wanted) has its own loop so that the
 * compiler sees no loop-invariant branch in it. */
static void forward_group(const QuantTable *t, const float *z, float M, int len,
                          int8_t *codes, float *w_hat) {
    const float *value = t->value + t->m;
    if (!w_hat) {
        for (int i = 0; i < len; i++) codes[i] = (int8_t)quant_table_code(t, z[i]);
        return;
    }
    if (!t->single_step) {
        for (int i = 0; i < len; i++) {
            int const k = quant_table_code(t, z[i]);
            codes[i] = (int8_t)k;
            w_hat[i] = M * value[k];
        }
        return;
    }
    const uint8_t *first_code = t->first_code;
    const float *threshold = t->threshold;
    for (int i = 0; i < len; i++) {
        uint32_t bits;
        memcpy(&bits, &z[i], sizeof bits);
        uint32_t const abs_bits = bits & 0x7fffffffu;
        uint32_t const b = abs_bits >> 15;
        float abs_z;
        memcpy(&abs_z, &abs_bits, sizeof abs_z);
        int k = first_code[b < QUANT_TABLE_BUCKETS - 1 ? b : QUANT_TABLE_BUCKETS - 1];
        k += abs_z >= threshold[k];
        int const neg = -(int)(bits >> 31);
        k = (k ^ neg) - neg;
        codes[i] = (int8_t)k;
        w_hat[i] = M * value[k];
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define QUANT_HAVE_AVX2_PATH 1

/* forward_group for the first len - len % 8 elements with AVX2 gathers (the tables are
 * in L1): the same operations as the scalar loop, so the results are bit-identical.
 * Returns how many elements it did. */
__attribute__((target("avx2"))) static int forward_group_avx2(const QuantTable *t,
                                                              const float *z, float M,
                                                              int len, int8_t *codes,
                                                              float *w_hat) {
    __m256i const abs_mask = _mm256_set1_epi32(0x7fffffff);
    __m256i const last_bucket = _mm256_set1_epi32(QUANT_TABLE_BUCKETS - 1);
    __m256i const low_byte = _mm256_set1_epi32(0xff);
    __m256i const m = _mm256_set1_epi32(t->m);
    __m256 const scale = _mm256_set1_ps(M);
    __m256i const sign_bit = _mm256_set1_epi32((int)0x80000000u);
    int const small = t->m <= 7;
    __m256 const thr8 = _mm256_loadu_ps(t->threshold);  /* [0..7]: t_0..t_m, rest unused */
    __m256 const val8 = _mm256_loadu_ps(t->value + t->m); /* C_a[0..7] */
    int i = 0;
    for (; i + 8 <= len; i += 8) {
        __m256i const bits = _mm256_loadu_si256((const __m256i *)(z + i));
        __m256i const abs_bits = _mm256_and_si256(bits, abs_mask);
        __m256i const bucket = _mm256_min_epu32(_mm256_srli_epi32(abs_bits, 15), last_bucket);
        __m256i k = _mm256_and_si256(
            _mm256_i32gather_epi32((const int *)(const void *)t->first_code, bucket, 1),
            low_byte);
        __m256i const neg = _mm256_srai_epi32(bits, 31);
        __m256 c;
        if (small) { /* m <= 7: thresholds and values fit in one register each */
            __m256 const thr = _mm256_permutevar8x32_ps(thr8, k);
            __m256 const above = _mm256_cmp_ps(_mm256_castsi256_ps(abs_bits), thr, _CMP_GE_OQ);
            k = _mm256_sub_epi32(k, _mm256_castps_si256(above)); /* mask -1: k + 1 */
            /* C_a[-k] = -C_a[k], but C_a[0] stays +0 as in the table */
            __m256i const flip = _mm256_and_si256(
                _mm256_and_si256(neg, sign_bit), _mm256_cmpgt_epi32(k, _mm256_setzero_si256()));
            c = _mm256_castsi256_ps(_mm256_xor_si256(
                _mm256_castps_si256(_mm256_permutevar8x32_ps(val8, k)), flip));
            k = _mm256_sub_epi32(_mm256_xor_si256(k, neg), neg);
        } else {
            __m256 const thr = _mm256_i32gather_ps(t->threshold, k, 4);
            __m256 const above = _mm256_cmp_ps(_mm256_castsi256_ps(abs_bits), thr, _CMP_GE_OQ);
            k = _mm256_sub_epi32(k, _mm256_castps_si256(above));
            k = _mm256_sub_epi32(_mm256_xor_si256(k, neg), neg);
            c = _mm256_i32gather_ps(t->value, _mm256_add_epi32(k, m), 4);
        }
        _mm256_storeu_ps(w_hat + i, _mm256_mul_ps(scale, c));
        __m128i const k16 = _mm_packs_epi32(_mm256_castsi256_si128(k),
                                            _mm256_extracti128_si256(k, 1));
        _mm_storel_epi64((__m128i *)(void *)(codes + i), _mm_packs_epi16(k16, k16));
    }
    return i;
}
#endif

/* The group loop: the AVX2 kernel when the CPU has it and one comparison suffices. */
static void forward_group_fast(const QuantTable *t, const float *z, float M, int len,
                               int8_t *codes, float *w_hat, int use_avx2) {
    int done = 0;
#ifdef QUANT_HAVE_AVX2_PATH
    if (use_avx2 && w_hat && t->single_step)
        done = forward_group_avx2(t, z, M, len, codes, w_hat);
#else
    (void)use_avx2;
#endif
    forward_group(t, z + done, M, len - done, codes + done, w_hat ? w_hat + done : NULL);
}

static int avx2_allowed = 1; /* set by tests and benchmarks only, before any work */

void quant_allow_avx2(int allowed) { avx2_allowed = allowed; }

int quant_uses_avx2(void) {
#ifdef QUANT_HAVE_AVX2_PATH
    return avx2_allowed && __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

void quant_forward(QuantSpec s, QuantShape sh, const float *z, const float *scales,
                   const float *a, int8_t *codes, float *w_hat) {
    QuantTable t;
    int const len = group_len(s, sh), use_avx2 = quant_uses_avx2();
    quant_table_init(&t, s.bits, a[0]);
    for (int r = 0; r < sh.rows; r++) {
        if (s.per_row && r > 0) quant_table_set_exponent(&t, a[r]);
        for (int g = 0; g < sh.groups; g++) {
            size_t const off = row_offset(sh, r) + (size_t)g * len;
            forward_group_fast(&t, z + off, scales[(size_t)r * sh.groups + g], quant_group_len(s, sh, g),
                               codes + off, w_hat ? w_hat + off : NULL, use_avx2);
        }
    }
}

void quant_dequantize(QuantSpec s, QuantShape sh, const int8_t *codes, const float *scales,
                      const float *a, float *w) {
    QuantTable t;
    int const len = group_len(s, sh);
    quant_table_init(&t, s.bits, a[0]);
    const float *value = t.value + t.m;
    for (int r = 0; r < sh.rows; r++) {
        if (s.per_row && r > 0) quant_table_set_exponent(&t, a[r]);
        for (int g = 0; g < sh.groups; g++) {
            size_t const off = row_offset(sh, r) + (size_t)g * len;
            float const M = scales[(size_t)r * sh.groups + g];
            int const n = quant_group_len(s, sh, g);
            for (int i = 0; i < n; i++) w[off + i] = M * value[codes[off + i]];
        }
    }
}

// ----------------------------------------------------------------------------- backward
/* The exponent gradient needs ln|z| and u = m |z|^a = m exp(a ln|z|) for every nonzero
 * code. Both come from short polynomials fitted for this file (relative error < 2e-7
 * over the range used), written once for the scalar path and once for the AVX2 path with
 * the same float operations in the same order (no FMA), so that the two paths give
 * bit-identical results: one machine's AVX2 rank and another's scalar rank agree.
 * Sums run in double over 8 lanes (element i of a group in lane i % 8), the lanes then
 * added in order: the same on both paths too. */

#define GRAD_LANES 8
#define SQRT2_F 1.41421354f
#define LN2_F 0.693147182f
#define LOG2E_F 1.44269502f
#define EXP_LN2_HI 0.693359375f   /* ln 2 = HI + LO; n * HI is exact for |n| < 2^9 */
#define EXP_LN2_LO -2.12194442e-4f
#define ROUND_MAGIC 12582912.0f   /* 1.5 * 2^23: (x + it) - it rounds x to an integer */
#define EXP_MIN_ARG -87.0f        /* exp stays a normal float; codes need >= ln(1/254) */

/* ln(1 + f) = f - f^2/2 + f^3 P(f), f in [sqrt(1/2) - 1, sqrt(2) - 1] */
static const float ln_coef[7] = {0.333339691f,  -0.250012606f, 0.19961147f,  -0.165789589f,
                                 0.149341747f,  -0.142628312f, 0.0864277035f};
/* exp(r) = 1 + r + r^2/2 + r^3 Q(r), |r| <= ln(2)/2 */
static const float exp_coef[4] = {0.166665167f, 0.0416664556f, 0.0083691515f, 0.00139357778f};

/* ln x for a normal float x > 0. */
static inline float poly_log(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    int e = (int)(bits >> 23) - 127;
    uint32_t const mant_bits = (bits & 0x7fffffu) | 0x3f800000u; /* x = mant 2^e, [1, 2) */
    float mant;
    memcpy(&mant, &mant_bits, sizeof mant);
    if (mant > SQRT2_F) mant *= 0.5f, e += 1; /* mant in (sqrt(1/2), sqrt(2)] */
    float const f = mant - 1.0f;
    float p = ln_coef[6];
    for (int i = 5; i >= 0; i--) p = p * f + ln_coef[i];
    float const f2 = f * f;
    return (float)e * LN2_F + ((f - 0.5f * f2) + (f2 * f) * p);
}

/* exp y for y <= 0 (clamped below at EXP_MIN_ARG). */
static inline float poly_exp(float y) {
    y = y < EXP_MIN_ARG ? EXP_MIN_ARG : y;
    float const n = (y * LOG2E_F + ROUND_MAGIC) - ROUND_MAGIC;
    float const r = (y - n * EXP_LN2_HI) - n * EXP_LN2_LO;
    float q = exp_coef[3];
    for (int i = 2; i >= 0; i--) q = q * r + exp_coef[i];
    float const r2 = r * r;
    float const e = 1.0f + (r + (0.5f * r2 + (r2 * r) * q));
    uint32_t bits;
    memcpy(&bits, &e, sizeof bits);
    bits += (uint32_t)(int32_t)n << 23; /* times 2^n */
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

/* Lane sums of one group: a[] of dw_hat w_hat bracket (da), m[] of dw_hat C_a[k] (dM). */
typedef struct {
    double a[GRAD_LANES], m[GRAD_LANES];
} GradLanes;

/* Elements [from, len) of a group (from a multiple of GRAD_LANES): dz = dw_hat M (when dz
 * is not NULL) and the lane sums, with
 *   bracket = (u/|k|) ln|z| / a - ln(|k|/m) / a^2,  u = m |z|^a   (0 when k = 0: w_hat = 0)
 * and w_hat = M C_a[k], bit for bit the forward's value. */
static void grad_group_scalar(const QuantTable *t, const float *z, const int8_t *codes,
                              const float *dw_hat, float M, int from, int len, float *dz,
                              GradLanes *acc) {
    float const a = t->a, m = (float)t->m, inv_a = 1.0f / a, inv_a2 = inv_a * inv_a;
    const float *value = t->value + t->m;
    for (int i = from; i < len; i++) {
        int const k = codes[i], abs_k = k < 0 ? -k : k;
        float const c = value[k], g = dw_hat[i];
        if (dz) dz[i] = g * M;
        float const ln_z = poly_log(abs_k ? fabsf(z[i]) : 1.0f); /* k = 0: no log of 0 */
        float const u = m * poly_exp(a * ln_z);
        float const bracket =
            ((u / (float)(abs_k ? abs_k : 1)) * ln_z) * inv_a - t->ln_level[abs_k] * inv_a2;
        acc->a[i % GRAD_LANES] += (double)(g * (M * c)) * (double)bracket;
        acc->m[i % GRAD_LANES] += (double)(g * c);
    }
}

#ifdef QUANT_HAVE_AVX2_PATH
__attribute__((target("avx2"))) static inline __m256 poly_log_avx2(__m256 x) {
    __m256i const bits = _mm256_castps_si256(x);
    __m256i e = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127));
    __m256 mant = _mm256_castsi256_ps(_mm256_or_si256(
        _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffff)), _mm256_set1_epi32(0x3f800000)));
    __m256 const big = _mm256_cmp_ps(mant, _mm256_set1_ps(SQRT2_F), _CMP_GT_OQ);
    mant = _mm256_blendv_ps(mant, _mm256_mul_ps(mant, _mm256_set1_ps(0.5f)), big);
    e = _mm256_sub_epi32(e, _mm256_castps_si256(big)); /* mask -1: e + 1 */
    __m256 const f = _mm256_sub_ps(mant, _mm256_set1_ps(1.0f));
    __m256 p = _mm256_set1_ps(ln_coef[6]);
    for (int i = 5; i >= 0; i--) p = _mm256_add_ps(_mm256_mul_ps(p, f), _mm256_set1_ps(ln_coef[i]));
    __m256 const f2 = _mm256_mul_ps(f, f);
    __m256 const poly = _mm256_add_ps(_mm256_sub_ps(f, _mm256_mul_ps(_mm256_set1_ps(0.5f), f2)),
                                      _mm256_mul_ps(_mm256_mul_ps(f2, f), p));
    return _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(e), _mm256_set1_ps(LN2_F)), poly);
}

__attribute__((target("avx2"))) static inline __m256 poly_exp_avx2(__m256 y) {
    y = _mm256_max_ps(y, _mm256_set1_ps(EXP_MIN_ARG));
    __m256 const magic = _mm256_set1_ps(ROUND_MAGIC);
    __m256 const n =
        _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(y, _mm256_set1_ps(LOG2E_F)), magic), magic);
    __m256 const r = _mm256_sub_ps(_mm256_sub_ps(y, _mm256_mul_ps(n, _mm256_set1_ps(EXP_LN2_HI))),
                                   _mm256_mul_ps(n, _mm256_set1_ps(EXP_LN2_LO)));
    __m256 q = _mm256_set1_ps(exp_coef[3]);
    for (int i = 2; i >= 0; i--) q = _mm256_add_ps(_mm256_mul_ps(q, r), _mm256_set1_ps(exp_coef[i]));
    __m256 const r2 = _mm256_mul_ps(r, r);
    __m256 const inner = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), r2),
                                       _mm256_mul_ps(_mm256_mul_ps(r2, r), q));
    __m256 const e = _mm256_add_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(r, inner));
    __m256i const shift = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(e), shift));
}

/* grad_group_scalar for the first len - len % 8 elements; returns how many it did. */
__attribute__((target("avx2"))) static int grad_group_avx2(const QuantTable *t, const float *z,
                                                           const int8_t *codes,
                                                           const float *dw_hat, float M,
                                                           int len, float *dz, GradLanes *acc) {
    float const inv_a = 1.0f / t->a;
    __m256 const a = _mm256_set1_ps(t->a), m = _mm256_set1_ps((float)t->m);
    __m256 const va_inv = _mm256_set1_ps(inv_a), va_inv2 = _mm256_set1_ps(inv_a * inv_a);
    __m256 const scale = _mm256_set1_ps(M), one = _mm256_set1_ps(1.0f);
    __m256i const abs_mask = _mm256_set1_epi32(0x7fffffff), mi = _mm256_set1_epi32(t->m);
    __m256d acc_a[2] = {_mm256_loadu_pd(acc->a), _mm256_loadu_pd(acc->a + 4)};
    __m256d acc_m[2] = {_mm256_loadu_pd(acc->m), _mm256_loadu_pd(acc->m + 4)};
    int i = 0;
    for (; i + 8 <= len; i += 8) {
        __m256i const k = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(codes + i)));
        __m256i const abs_k = _mm256_abs_epi32(k);
        __m256 const nonzero = _mm256_castsi256_ps(_mm256_cmpgt_epi32(abs_k, _mm256_setzero_si256()));
        __m256 const abs_z = _mm256_castsi256_ps(
            _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(z + i)), abs_mask));
        __m256 const ln_z = poly_log_avx2(_mm256_blendv_ps(one, abs_z, nonzero));
        __m256 const u = _mm256_mul_ps(m, poly_exp_avx2(_mm256_mul_ps(a, ln_z)));
        __m256 const k_f = _mm256_cvtepi32_ps(_mm256_max_epi32(abs_k, _mm256_set1_epi32(1)));
        __m256 const ln_level = _mm256_i32gather_ps(t->ln_level, abs_k, 4);
        __m256 const bracket = _mm256_sub_ps(
            _mm256_mul_ps(_mm256_mul_ps(_mm256_div_ps(u, k_f), ln_z), va_inv),
            _mm256_mul_ps(ln_level, va_inv2));
        __m256 const c = _mm256_i32gather_ps(t->value, _mm256_add_epi32(k, mi), 4);
        __m256 const g = _mm256_loadu_ps(dw_hat + i);
        if (dz) _mm256_storeu_ps(dz + i, _mm256_mul_ps(g, scale));
        __m256 const ga = _mm256_mul_ps(g, _mm256_mul_ps(scale, c));
        __m256 const gm = _mm256_mul_ps(g, c);
        for (int h = 0; h < 2; h++) { /* lanes 0-3, then 4-7 */
            __m128 const ga_h = h ? _mm256_extractf128_ps(ga, 1) : _mm256_castps256_ps128(ga);
            __m128 const br_h = h ? _mm256_extractf128_ps(bracket, 1) : _mm256_castps256_ps128(bracket);
            __m128 const gm_h = h ? _mm256_extractf128_ps(gm, 1) : _mm256_castps256_ps128(gm);
            acc_a[h] = _mm256_add_pd(acc_a[h], _mm256_mul_pd(_mm256_cvtps_pd(ga_h), _mm256_cvtps_pd(br_h)));
            acc_m[h] = _mm256_add_pd(acc_m[h], _mm256_cvtps_pd(gm_h));
        }
    }
    _mm256_storeu_pd(acc->a, acc_a[0]);
    _mm256_storeu_pd(acc->a + 4, acc_a[1]);
    _mm256_storeu_pd(acc->m, acc_m[0]);
    _mm256_storeu_pd(acc->m + 4, acc_m[1]);
    return i;
}
#endif

static double lanes_sum(const double *lanes) {
    double sum = 0.0;
    for (int l = 0; l < GRAD_LANES; l++) sum += lanes[l];
    return sum;
}

/* Rows [r0, r1): dz, dM, and each row's own exponent-gradient sum (its groups added in
 * order, from 0) into row_sum[r - r0], or, when row_sum is NULL, added to da[e] (e = r
 * per row, else 0) in row order: the same arithmetic either way. */
static void backward_rows(QuantSpec s, QuantShape sh, int r0, int r1, const float *z,
                          const float *scales, const float *a, const int8_t *codes,
                          const float *dw_hat, float *dz, double *row_sum, double *da,
                          double *dM) {
    QuantTable t;
    int const len = group_len(s, sh), use_avx2 = quant_uses_avx2();
    quant_table_init(&t, s.bits, a[s.per_row ? r0 : 0]);
    for (int r = r0; r < r1; r++) {
        if (s.per_row && r > r0) quant_table_set_exponent(&t, a[r]);
        double sum = 0.0;
        for (int g = 0; g < sh.groups; g++) {
            size_t const off = row_offset(sh, r) + (size_t)g * len;
            size_t const gi = (size_t)r * sh.groups + g;
            int const n = quant_group_len(s, sh, g);
            GradLanes acc;
            memset(&acc, 0, sizeof acc);
            int done = 0;
#ifdef QUANT_HAVE_AVX2_PATH
            if (use_avx2)
                done = grad_group_avx2(&t, z + off, codes + off, dw_hat + off, scales[gi], n,
                                       dz ? dz + off : NULL, &acc);
#else
            (void)use_avx2;
#endif
            grad_group_scalar(&t, z + off, codes + off, dw_hat + off, scales[gi], done, n,
                              dz ? dz + off : NULL, &acc);
            sum += lanes_sum(acc.a);
            if (dM) dM[gi] = lanes_sum(acc.m); /* w_hat / M = C_a[k]: exact even when M = 0 */
        }
        if (row_sum) row_sum[r - r0] = sum;
        else da[s.per_row ? r : 0] += sum;
    }
}

void quant_backward_rows(QuantSpec s, QuantShape sh, int r0, int r1, const float *z,
                         const float *scales, const float *a, const int8_t *codes,
                         const float *dw_hat, float *dz, double *da_rows, double *dM) {
    backward_rows(s, sh, r0, r1, z, scales, a, codes, dw_hat, dz, da_rows, NULL, dM);
}

void quant_backward(QuantSpec s, QuantShape sh, const float *z, const float *scales,
                    const float *a, const int8_t *codes, const float *w_hat,
                    const float *dw_hat, float *dz, double *da, double *dM) {
    (void)w_hat; /* = M C_a[k]: recomputed from the codes, one stream less to read */
    for (int e = 0; e < sh.n_exponents; e++) da[e] = 0.0;
    backward_rows(s, sh, 0, sh.rows, z, scales, a, codes, dw_hat, dz, NULL, da, dM);
}
