/* The data-free exponent search of docs/design.md 3.2 (PowerQuant) and small quantizer reports.
 *
 * The objective ||W - W_hat(a)||^2 is piecewise smooth in a (codes jump at thresholds)
 * and not convex everywhere, so a coarse grid picks the basin and golden-section search
 * refines inside the bracket around the best grid point. */
#include "quant.h"

#include <math.h>
#include <stdlib.h>

#include "parallel.h"

#define SEARCH_GRID_POINTS 53 /* step 0.025 over [0.2, 1.5]; a = 1 is a grid point */
#define SEARCH_TOLERANCE 1e-4

static int group_len(QuantSpec s, QuantShape sh) {
    return s.group_size > 0 && s.group_size < sh.cols ? s.group_size : sh.cols;
}

/* The squared error of a row is summed in double over 8 lanes, element i of a group into
 * lane i % 8, and the lanes are added in order at the row's end: the AVX2 loop below adds
 * 8 elements at a time into the same lanes with the same operations, so a rank with AVX2
 * and one without find the same exponent, bit for bit. */
#define ERROR_LANES 8

/* Elements [from, n) of a group into the lanes, z formed exactly as quant_normalise does. */
static void group_error(const QuantTable *t, const float *wg, float M, int from, int n,
                        double lane[ERROR_LANES]) {
    const float *value = t->value + t->m;
    if (!(M > 0.0f)) { /* an all-zero group: w_hat = 0 */
        for (int i = from; i < n; i++) lane[i % ERROR_LANES] += (double)wg[i] * wg[i];
        return;
    }
    for (int i = from; i < n; i++) {
        float const z = quant_clamp_unit(wg[i] / M);
        float const d = wg[i] - M * value[quant_table_code(t, z)];
        lane[i % ERROR_LANES] += (double)d * d;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SEARCH_HAVE_AVX2_PATH 1

/* group_error for the first n - n % 8 elements, for M > 0 and m <= 7 (bits <= 4): the
 * scalar loop's float operations 8 at a time (division, clamp, the code, M C, the
 * difference; its square and sum in double, no FMA). |k| = #{j < m : |z| >= t_j} is
 * counted with m compares, what quant_table_code's look-up gives. Returns how many
 * elements it did. A 7B block's search makes ~85 passes over its 202 M weights: at 4 bits
 * on one thread 290 ns per weight in all with libm's fminf in the scalar loop, 185
 * without, 46 with this loop (bench/search). With more bits the thresholds need gathers,
 * which were no faster than the scalar loop here, so those run scalar. */
__attribute__((target("avx2"))) static int group_error_avx2(const QuantTable *t,
                                                            const float *wg, float M, int n,
                                                            double lane[ERROR_LANES]) {
    __m256i const abs_mask = _mm256_set1_epi32(0x7fffffff);
    __m256i const sign_bit = _mm256_set1_epi32((int)0x80000000u);
    __m256 const scale = _mm256_set1_ps(M), one = _mm256_set1_ps(1.0f),
                 minus_one = _mm256_set1_ps(-1.0f);
    __m256 const val8 = _mm256_loadu_ps(t->value + t->m); /* C_a[0..m], m <= 7 */
    __m256 thr[7];
    for (int j = 0; j < t->m; j++) thr[j] = _mm256_set1_ps(t->threshold[j]);
    __m256d acc_lo = _mm256_loadu_pd(lane), acc_hi = _mm256_loadu_pd(lane + 4);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 const w = _mm256_loadu_ps(wg + i);
        /* quant_clamp_unit: min then max give the same for every non-NaN, -0 included */
        __m256 const z = _mm256_max_ps(_mm256_min_ps(_mm256_div_ps(w, scale), one), minus_one);
        __m256i const bits = _mm256_castps_si256(z);
        __m256i const abs_bits = _mm256_and_si256(bits, abs_mask);
        __m256 const abs_z = _mm256_castsi256_ps(abs_bits);
        __m256i k = _mm256_setzero_si256();
        for (int j = 0; j < t->m; j++) { /* mask -1: k + 1 */
            __m256 const above = _mm256_cmp_ps(abs_z, thr[j], _CMP_GE_OQ);
            k = _mm256_sub_epi32(k, _mm256_castps_si256(above));
        }
        /* C_a[-k] = -C_a[k], but C_a[0] stays +0 as in the table */
        __m256i const flip = _mm256_and_si256(_mm256_and_si256(_mm256_srai_epi32(bits, 31), sign_bit),
                                              _mm256_cmpgt_epi32(k, _mm256_setzero_si256()));
        __m256 const c = _mm256_castsi256_ps(
            _mm256_xor_si256(_mm256_castps_si256(_mm256_permutevar8x32_ps(val8, k)), flip));
        __m256 const d = _mm256_sub_ps(w, _mm256_mul_ps(scale, c));
        __m256d const d_lo = _mm256_cvtps_pd(_mm256_castps256_ps128(d));
        __m256d const d_hi = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
        acc_lo = _mm256_add_pd(acc_lo, _mm256_mul_pd(d_lo, d_lo));
        acc_hi = _mm256_add_pd(acc_hi, _mm256_mul_pd(d_hi, d_hi));
    }
    _mm256_storeu_pd(lane, acc_lo);
    _mm256_storeu_pd(lane + 4, acc_hi);
    return i;
}
#endif

/* sum over row r of (w - M C_a[k(w/M)])^2 */
static double row_error(const QuantTable *t, QuantSpec s, QuantShape sh, const float *w,
                        const float *scales, int r) {
    int const len = group_len(s, sh), use_avx2 = quant_uses_avx2();
    double lane[ERROR_LANES] = {0};
    for (int g = 0; g < sh.groups; g++) {
        const float *wg = w + (size_t)r * sh.cols + (size_t)g * len;
        float const M = scales[(size_t)r * sh.groups + g];
        int const n = quant_group_len(s, sh, g);
        int done = 0;
#ifdef SEARCH_HAVE_AVX2_PATH
        if (use_avx2 && M > 0.0f && t->m <= 7) done = group_error_avx2(t, wg, M, n, lane);
#else
        (void)use_avx2;
#endif
        group_error(t, wg, M, done, n, lane);
    }
    double err = 0.0;
    for (int l = 0; l < ERROR_LANES; l++) err += lane[l];
    return err;
}

double quant_error(QuantSpec s, QuantShape sh, const float *w, const float *scales, float a,
                   int row) {
    QuantTable t;
    quant_table_init(&t, s.bits, a);
    if (row >= 0) return row_error(&t, s, sh, w, scales, row);
    double err = 0.0;
    for (int r = 0; r < sh.rows; r++) err += row_error(&t, s, sh, w, scales, r);
    return err;
}

/* One search: its table (reused between exponents) and, for a search over many rows, a
 * buffer of per-row errors that the rank's threads fill (the search is most of a
 * block's setup: ~10 s of a 7B block's on one thread with AVX2, a minute without). */
typedef struct {
    QuantTable *t;
    double *row_err; /* [rows], or NULL: one thread */
    int threads;
} SearchCtx;

typedef struct {
    QuantSpec s;
    QuantShape sh;
    const float *w, *scales;
    float a;
    int r0;
    double *row_err;
} RowsPass;

static void rows_error_range(void *arg, int i0, int i1) {
    RowsPass const *p = arg;
    QuantTable t; /* as the one-thread path builds it: init at 1, then the exponent */
    quant_table_init(&t, p->s.bits, 1.0f);
    quant_table_set_exponent(&t, p->a);
    for (int r = p->r0 + i0; r < p->r0 + i1; r++) p->row_err[r] = row_error(&t, p->s, p->sh, p->w, p->scales, r);
}

/* Error of rows [r0, r1) with exponent a. The per-row errors are added in row order
 * whatever the thread count, so the sum (and the exponent found) does not depend on it. */
static double rows_error(SearchCtx *x, QuantSpec s, QuantShape sh, const float *w,
                         const float *scales, float a, int r0, int r1) {
    double err = 0.0;
    if (x->row_err && x->threads > 1 && r1 - r0 > 1) {
        RowsPass pass = {s, sh, w, scales, a, r0, x->row_err};
        parallel_ranges(x->threads, r1 - r0, rows_error_range, &pass);
        for (int r = r0; r < r1; r++) err += x->row_err[r];
        return err;
    }
    quant_table_set_exponent(x->t, a);
    for (int r = r0; r < r1; r++) err += row_error(x->t, s, sh, w, scales, r);
    return err;
}

/* Tracks the best exponent evaluated so far: the search never returns worse than any
 * point it looked at. */
typedef struct {
    double err;
    float a;
} SearchBest;

static double search_eval(SearchCtx *x, QuantSpec s, QuantShape sh, const float *w,
                          const float *scales, double a, int r0, int r1, SearchBest *best) {
    double const err = rows_error(x, s, sh, w, scales, (float)a, r0, r1);
    if (err < best->err) best->err = err, best->a = (float)a;
    return err;
}

/* The best of n + 1 evenly spaced points over [lo, hi]; *at gets its index. */
static void search_grid(SearchCtx *x, QuantSpec s, QuantShape sh, const float *w,
                        const float *scales, double lo, double hi, int n, int r0, int r1,
                        SearchBest *best, int *at) {
    double best_err = INFINITY;
    for (int i = 0; i <= n; i++) {
        double const err = search_eval(x, s, sh, w, scales, lo + (hi - lo) * i / n, r0, r1, best);
        if (err < best_err) best_err = err, *at = i;
    }
}

/* Best a in [QUANT_MIN_EXPONENT, QUANT_MAX_EXPONENT] for rows [r0, r1): the coarse grid,
 * a finer grid of 10 steps across the best grid point's bracket (the curve has small
 * jumps where codes change), then golden section in the best fine bracket. */
static float search_rows(SearchCtx *x, QuantSpec s, QuantShape sh, const float *w,
                         const float *scales, int r0, int r1) {
    SearchBest best = {INFINITY, 1.0f};
    double lo = QUANT_MIN_EXPONENT, hi = QUANT_MAX_EXPONENT;
    int stages[2] = {SEARCH_GRID_POINTS - 1, 10};
    for (int stage = 0; stage < 2; stage++) {
        int const n = stages[stage];
        double const step = (hi - lo) / n;
        int at = 0;
        search_grid(x, s, sh, w, scales, lo, hi, n, r0, r1, &best, &at);
        double const new_lo = lo + step * (at > 0 ? at - 1 : 0);
        hi = lo + step * (at < n ? at + 1 : n);
        lo = new_lo;
    }
    double const inv_phi = 0.6180339887498949;
    double c = hi - inv_phi * (hi - lo), d = lo + inv_phi * (hi - lo);
    double fc = search_eval(x, s, sh, w, scales, c, r0, r1, &best);
    double fd = search_eval(x, s, sh, w, scales, d, r0, r1, &best);
    while (hi - lo > SEARCH_TOLERANCE) {
        if (fc <= fd) {
            hi = d, d = c, fd = fc;
            c = hi - inv_phi * (hi - lo);
            fc = search_eval(x, s, sh, w, scales, c, r0, r1, &best);
        } else {
            lo = c, c = d, fc = fd;
            d = lo + inv_phi * (hi - lo);
            fd = search_eval(x, s, sh, w, scales, d, r0, r1, &best);
        }
    }
    return best.a;
}

typedef struct {
    QuantSpec s;
    QuantShape sh;
    const float *w, *scales;
    float *a;
} RowSearchPass;

static void search_rows_range(void *arg, int r0, int r1) {
    RowSearchPass const *p = arg;
    QuantTable t;
    quant_table_init(&t, p->s.bits, 1.0f);
    SearchCtx x = {&t, NULL, 1};
    for (int r = r0; r < r1; r++) p->a[r] = search_rows(&x, p->s, p->sh, p->w, p->scales, r, r + 1);
}

void quant_search_exponent(QuantSpec s, QuantShape sh, const float *w, const float *scales,
                           float *a) {
    if (s.per_row) { /* rows are independent searches: each thread takes its own rows */
        RowSearchPass pass = {s, sh, w, scales, a};
        parallel_ranges(parallel_threads(), sh.rows, search_rows_range, &pass);
        return;
    }
    QuantTable t;
    quant_table_init(&t, s.bits, 1.0f);
    SearchCtx x = {&t, NULL, parallel_threads()};
    if (x.threads > 1) x.row_err = malloc((size_t)sh.rows * sizeof(double)); /* NULL: one thread */
    a[0] = search_rows(&x, s, sh, w, scales, 0, sh.rows);
    free(x.row_err);
}

double quant_code_entropy(const int8_t *codes, size_t n) {
    size_t count[256] = {0};
    for (size_t i = 0; i < n; i++) count[(uint8_t)codes[i]]++;
    double h = 0.0;
    for (int c = 0; c < 256; c++) {
        if (count[c] == 0) continue;
        double const p = (double)count[c] / (double)n;
        h -= p * log2(p);
    }
    return h;
}

nq_status quant_check_finite(const float *x, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            return nq_fail(NQ_ERR_INPUT, "%s: element %zu = %g, expected a finite value",
                           what, i, (double)x[i]);
    }
    return NQ_OK;
}
