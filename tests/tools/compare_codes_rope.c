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

/* Rows of m moved from the half to the interleaved layout: every stored array with one
 * entry (or row of entries) per output row (codes, scales, per-row exponents). */
static int unpermute(QuantMatrix *m, int hs) {
    int const rows = m->shape.rows;
    for (int k = 0; k < m->n_arrays; k++) {
        const QArrayDesc *d = &m->desc[k];
        if (d->dims[0] != (size_t)rows || (d->rank == 1 && rows == 1)) continue; /* per tensor */
        size_t const row_bytes = (d->rank == 2 ? d->dims[1] : 1) * qarray_type_size(d->type);
        unsigned char *moved = malloc((size_t)rows * row_bytes + 1), *src = m->array[k];
        if (!moved) return -1;
        for (int r = 0; r < rows; r++)
            memcpy(moved + (size_t)interleaved_row(r, hs) * row_bytes, src + (size_t)r * row_bytes, row_bytes);
        memcpy(src, moved, (size_t)rows * row_bytes);
        free(moved);
    }
    return 0;
}

typedef struct {
    size_t total, differ;
    double scale, exponent;
} Diff;

/* Largest difference of array `name` of a and b as floats (relative or absolute). */
static double max_diff(const QuantMatrix *a, const QuantMatrix *b, const char *name, int relative) {
    double worst = 0;
    for (int k = 0; k < a->n_arrays; k++) {
        if (strcmp(a->desc[k].name, name) != 0) continue;
        for (size_t i = 0; i < qarray_count(&a->desc[k]); i++) {
            double const x = qarray_float(&a->desc[k], a->array[k], i), y = qarray_float(&b->desc[k], b->array[k], i);
            double const m = fmax(fabs(x), fabs(y));
            double const v = relative ? (m > 0 ? fabs(x - y) / m : 0) : fabs(x - y);
            if (!(v <= worst)) worst = v;
        }
    }
    return worst;
}

static void diff(const QuantMatrix *a, const QuantMatrix *b, const char *name, int l, Diff *t) {
    size_t const n = (size_t)a->shape.rows * a->shape.cols;
    size_t differ = 0;
    const int8_t *ca = quant_matrix_array(a, "codes"), *cb = quant_matrix_array(b, "codes");
    for (size_t i = 0; i < n; i++) differ += ca[i] != cb[i];
    double const s = max_diff(a, b, "scale", 1), e = max_diff(a, b, "exponent", 0);
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
