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

/* sum over row r of (w - M C_a[k(w/M)])^2, z formed exactly as quant_normalise does. */
static double row_error(const QuantTable *t, QuantSpec s, QuantShape sh, const float *w,
                        const float *scales, int r) {
    int const len = group_len(s, sh);
    const float *value = t->value + t->m;
    double err = 0.0;
    for (int g = 0; g < sh.groups; g++) {
        const float *wg = w + (size_t)r * sh.cols + (size_t)g * len;
        float const M = scales[(size_t)r * sh.groups + g];
        int const n = quant_group_len(s, sh, g);
        if (!(M > 0.0f)) {
            for (int i = 0; i < n; i++) err += (double)wg[i] * wg[i];
            continue;
        }
        for (int i = 0; i < n; i++) {
            float const z = quant_clamp_unit(wg[i] / M);
            float const d = wg[i] - M * value[quant_table_code(t, z)];
            err += (double)d * d;
        }
    }
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
 * buffer of per-row errors that the rank's threads fill (minutes per 7B block on one
 * thread, the longest silent phase of a block's setup). */
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
