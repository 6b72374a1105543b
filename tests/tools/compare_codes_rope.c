/* compare_codes_rope A.h5 B.h5 [--codes F] [--scale R] [--exponent E]
 *
 * Like compare_checkpoints, for two checkpoints of the same model stored with different
 * RoPE layouts (a llama2.c model and its HF conversion): the rows of wq and wk (codes,
 * scales, per-row exponents) of a "half" checkpoint are brought back to the interleaved
 * order (the inverse of convert_llama_weights_to_hf.py's permutation) before comparing.
 * Prints per tensor and in total the fraction of differing codes, the largest relative
 * scale difference and the largest exponent difference; passes when
 *   differing codes / all codes <= F, scale rel diff <= R, exponent diff <= E (default 0).
 * Exit 0 on pass, 1 beyond the bounds, 2 on bad input. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

/* Interleaved row index of half-layout row r (per head of hs rows). */
static int interleaved_row(int r, int hs) {
    int const h = r / hs, k = r % hs, half = hs / 2;
    int const j = k / half, i = k % half; /* half row j * hs/2 + i <- interleaved 2i + j */
    return h * hs + 2 * i + j;
}

/* Rows of m (codes, scales, per-row exponents) moved from the half to the interleaved layout. */
static int unpermute(QuantMatrix *m, int hs) {
    int const rows = m->shape.rows, cols = m->shape.cols, groups = m->shape.groups;
    int8_t *codes = malloc((size_t)rows * cols);
    float *scales = malloc((size_t)rows * groups * sizeof(float));
    float *exps = malloc((size_t)m->shape.n_exponents * sizeof(float));
    if (!codes || !scales || !exps) return -1;
    memcpy(exps, m->exponents, (size_t)m->shape.n_exponents * sizeof(float));
    for (int r = 0; r < rows; r++) {
        int const to = interleaved_row(r, hs);
        memcpy(codes + (size_t)to * cols, m->codes + (size_t)r * cols, (size_t)cols);
        memcpy(scales + (size_t)to * groups, m->scales + (size_t)r * groups, (size_t)groups * sizeof(float));
        if (m->shape.n_exponents == rows) exps[to] = m->exponents[r];
    }
    memcpy(m->codes, codes, (size_t)rows * cols);
    memcpy(m->scales, scales, (size_t)rows * groups * sizeof(float));
    memcpy(m->exponents, exps, (size_t)m->shape.n_exponents * sizeof(float));
    free(codes);
    free(scales);
    free(exps);
    return 0;
}

typedef struct {
    size_t total, differ;
    double scale, exponent;
} Diff;

static void diff(const QuantMatrix *a, const QuantMatrix *b, const char *name, int l, Diff *t) {
    size_t const n = (size_t)a->shape.rows * a->shape.cols, ns = (size_t)a->shape.rows * a->shape.groups;
    size_t differ = 0;
    double s = 0, e = 0;
    for (size_t i = 0; i < n; i++) differ += a->codes[i] != b->codes[i];
    for (size_t i = 0; i < ns; i++) {
        double const m = fmax(fabs(a->scales[i]), fabs(b->scales[i]));
        double const v = m > 0 ? fabs((double)a->scales[i] - b->scales[i]) / m : 0;
        if (!(v <= s)) s = v;
    }
    for (int i = 0; i < a->shape.n_exponents; i++) {
        double const v = fabs((double)a->exponents[i] - b->exponents[i]);
        if (!(v <= e)) e = v;
    }
    printf("block %d %s: codes %zu/%zu differ (%.3f%%), max scale rel diff %.3g, max exponent diff %.3g\n", l, name,
           differ, n, 100.0 * differ / n, s, e);
    t->total += n;
    t->differ += differ;
    t->scale = fmax(t->scale, s);
    t->exponent = fmax(t->exponent, e);
}

int main(int argc, char **argv) {
    double bound_codes = 0, bound_scale = 0, bound_exp = 0;
    if (argc < 3) {
        fprintf(stderr, "usage: compare_codes_rope A.h5 B.h5 [--codes F] [--scale R] [--exponent E]\n");
        return 2;
    }
    for (int i = 3; i + 1 < argc; i += 2) {
        double *t = !strcmp(argv[i], "--codes") ? &bound_codes : !strcmp(argv[i], "--scale") ? &bound_scale
                  : !strcmp(argv[i], "--exponent") ? &bound_exp : NULL;
        if (!t) return 2;
        *t = atof(argv[i + 1]);
    }
    CheckpointReader *ra = NULL, *rb = NULL;
    if (checkpoint_open(argv[1], &ra) != NQ_OK || checkpoint_open(argv[2], &rb) != NQ_OK) {
        fprintf(stderr, "compare_codes_rope: %s\n", nq_last_error());
        checkpoint_close(ra);
        return 2;
    }
    const ModelConfig *ca = &checkpoint_info(ra)->config, *cb = &checkpoint_info(rb)->config;
    int const hs = ca->dim / ca->n_heads;
    printf("rope: %s / %s\n", ca->rope_style == ROPE_HALF ? "half" : "interleaved",
           cb->rope_style == ROPE_HALF ? "half" : "interleaved");
    Diff t = {0};
    int rc = 0;
    for (int l = 0; l < ca->n_layers && rc == 0; l++) {
        BlockResult a = {0}, b = {0};
        if (checkpoint_read_block(ra, l, &a, NULL, NULL) != NQ_OK || checkpoint_read_block(rb, l, &b, NULL, NULL) != NQ_OK) {
            fprintf(stderr, "compare_codes_rope: %s\n", nq_last_error());
            rc = 2;
        }
        for (int i = 0; i < N_MATS && rc == 0; i++) {
            if (!a.mat[i].quantized || !b.mat[i].quantized) continue;
            int const qk = i == MAT_WQ || i == MAT_WK;
            if (qk && ca->rope_style == ROPE_HALF && unpermute(&a.mat[i], hs) != 0) rc = 2;
            if (qk && cb->rope_style == ROPE_HALF && unpermute(&b.mat[i], hs) != 0) rc = 2;
            if (rc == 0) diff(&a.mat[i], &b.mat[i], mat_names[i], l, &t);
        }
        block_result_free(&a);
        block_result_free(&b);
    }
    checkpoint_close(ra);
    checkpoint_close(rb);
    if (rc != 0) return rc;
    double const frac = t.total ? (double)t.differ / t.total : 0;
    int const pass = frac <= bound_codes && t.scale <= bound_scale && t.exponent <= bound_exp;
    printf("total: codes %zu/%zu differ (%.4f%%), max scale rel diff %.3g, max exponent diff %.3g: %s\n", t.differ,
           t.total, 100 * frac, t.scale, t.exponent, pass ? "PASS" : "FAIL");
    return pass ? 0 : 1;
}
