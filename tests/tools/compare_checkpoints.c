/* compare_checkpoints A B [--codes F] [--scale R] [--exponent E]
 *
 * Compares two quantized checkpoints block by block, tensor by tensor, through the
 * checkpoint reader (datasets, not file bytes: the files also hold the config text and
 * HDF5 layout details that may differ). Prints, per tensor, how many codes differ, the
 * largest relative scale difference and the largest exponent difference, then a total.
 *
 * Without options the checkpoints must be identical: every code, scale and exponent (and
 * the fp32 weight of a skipped matrix) bit for bit. With options, the job passes when
 *   differing codes / all codes <= F      (over every quantized weight of every block),
 *   |sa - sb| / max(|sa|, |sb|) <= R      (every scale),
 *   |ea - eb| <= E                        (every exponent).
 * Exit 0 on pass, 1 on a difference beyond the bounds, 2 on bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

typedef struct {
    double codes, scale, exponent; /* the bounds (all 0: identical) */
} Bounds;

typedef struct {
    size_t codes_total, codes_differ;
    double scale_rel, exponent;
    int bit_mismatch; /* some float differs in its bits (matters when the bounds are 0) */
} Diff;

static double rel_diff(float a, float b) {
    double const m = fmax(fabs(a), fabs(b));
    return m > 0 ? fabs((double)a - (double)b) / m : 0.0;
}

static void diff_floats(const float *a, const float *b, size_t n, int relative, double *max, Diff *d) {
    if (memcmp(a, b, n * sizeof(float)) != 0) d->bit_mismatch = 1;
    for (size_t i = 0; i < n; i++) {
        double const v = relative ? rel_diff(a[i], b[i]) : fabs((double)a[i] - (double)b[i]);
        if (!(v <= *max)) *max = v; /* NaN counts as a difference */
    }
}

/* Array `name` of a and b as floats (whatever their stored type), compared; the stored
 * bits must match too when the bounds are 0. */
static void diff_array(const QuantMatrix *a, const QuantMatrix *b, const char *name, int relative,
                       double *max, Diff *d) {
    for (int k = 0; k < a->n_arrays; k++) {
        if (strcmp(a->desc[k].name, name) != 0) continue;
        size_t const n = qarray_count(&a->desc[k]);
        float *fa = malloc((n ? n : 1) * sizeof *fa), *fb = malloc((n ? n : 1) * sizeof *fb);
        if (!fa || !fb) {
            fprintf(stderr, "compare_checkpoints: out of memory\n");
            exit(2);
        }
        for (size_t i = 0; i < n; i++) {
            fa[i] = qarray_float(&a->desc[k], a->array[k], i);
            fb[i] = qarray_float(&b->desc[k], b->array[k], i);
        }
        if (a->desc[k].type != b->desc[k].type ||
            memcmp(a->array[k], b->array[k], n * qarray_type_size(a->desc[k].type)) != 0)
            d->bit_mismatch = 1;
        diff_floats(fa, fb, n, relative, max, d);
        free(fa), free(fb);
    }
}

static void diff_matrix(const QuantMatrix *a, const QuantMatrix *b, Diff *total) {
    Diff d = {0};
    size_t const n = (size_t)a->shape.rows * a->shape.cols;
    if (a->quantized) {
        const int8_t *ca = quant_matrix_array(a, "codes"), *cb = quant_matrix_array(b, "codes");
        for (size_t i = 0; i < n; i++) d.codes_differ += ca[i] != cb[i];
        d.codes_total = n;
        diff_array(a, b, "scale", 1, &d.scale_rel, &d);
        diff_array(a, b, "exponent", 0, &d.exponent, &d);
    } else {
        diff_floats(a->weight, b->weight, n, 1, &d.scale_rel, &d);
    }
    total->codes_total += d.codes_total;
    total->codes_differ += d.codes_differ;
    total->scale_rel = fmax(total->scale_rel, d.scale_rel);
    total->exponent = fmax(total->exponent, d.exponent);
    total->bit_mismatch |= d.bit_mismatch;
    printf(" codes %zu/%zu differ (%.3f%%), max scale rel diff %.3g, max exponent diff %.3g\n",
           d.codes_differ, d.codes_total, d.codes_total ? 100.0 * d.codes_differ / d.codes_total : 0.0,
           d.scale_rel, d.exponent);
}

static int parse_double(const char *s, double *out) {
    char *end = NULL;
    double const v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= 0)) return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, const char **a, const char **b, Bounds *bounds) {
    int files = 0;
    for (int i = 1; i < argc; i++) {
        double *target = !strcmp(argv[i], "--codes") ? &bounds->codes
                         : !strcmp(argv[i], "--scale") ? &bounds->scale
                         : !strcmp(argv[i], "--exponent") ? &bounds->exponent : NULL;
        if (target) {
            if (i + 1 >= argc || parse_double(argv[++i], target) != 0) return -1;
        } else if (argv[i][0] == '-' || files == 2) {
            return -1;
        } else {
            *(files++ == 0 ? a : b) = argv[i];
        }
    }
    return files == 2 ? 0 : -1;
}

static int same_config(const CheckpointInfo *x, const CheckpointInfo *y) {
    const ModelConfig *p = &x->config, *q = &y->config;
    return p->dim == q->dim && p->hidden_dim == q->hidden_dim && p->n_layers == q->n_layers &&
           p->n_heads == q->n_heads && p->n_kv_heads == q->n_kv_heads && x->spec.bits == y->spec.bits &&
           x->spec.group_size == y->spec.group_size && x->spec.per_row == y->spec.per_row;
}

static int compare_blocks(CheckpointReader *ra, CheckpointReader *rb, int L, Diff *total) {
    for (int l = 0; l < L; l++) {
        BlockResult a = {0}, b = {0};
        if (checkpoint_read_block(ra, l, &a, NULL, NULL) != NQ_OK ||
            checkpoint_read_block(rb, l, &b, NULL, NULL) != NQ_OK) {
            fprintf(stderr, "compare_checkpoints: block %d: %s\n", l, nq_last_error());
            block_result_free(&a);
            block_result_free(&b);
            return -1;
        }
        printf("block %d: loss_init %.6e / %.6e, loss_final %.6e / %.6e\n", l, a.loss_init, b.loss_init,
               a.loss_final, b.loss_final);
        for (int i = 0; i < N_MATS; i++) {
            if (a.mat[i].quantized != b.mat[i].quantized) {
                fprintf(stderr, "compare_checkpoints: block %d %s quantized in one file only\n", l, mat_names[i]);
                block_result_free(&a);
                block_result_free(&b);
                return -1;
            }
            printf("  %s:", mat_names[i]);
            diff_matrix(&a.mat[i], &b.mat[i], total);
        }
        block_result_free(&a);
        block_result_free(&b);
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *path_a = NULL, *path_b = NULL;
    Bounds bounds = {0};
    if (parse_args(argc, argv, &path_a, &path_b, &bounds) != 0) {
        fprintf(stderr, "usage: compare_checkpoints A B [--codes F] [--scale R] [--exponent E]\n");
        return 2;
    }
    CheckpointReader *ra = NULL, *rb = NULL;
    int rc = 2;
    if (checkpoint_open(path_a, &ra) != NQ_OK || checkpoint_open(path_b, &rb) != NQ_OK) {
        fprintf(stderr, "compare_checkpoints: %s\n", nq_last_error());
        goto cleanup;
    }
    const CheckpointInfo *ia = checkpoint_info(ra), *ib = checkpoint_info(rb);
    if (!same_config(ia, ib)) {
        fprintf(stderr, "compare_checkpoints: %s and %s have different shapes or quantization specs\n", path_a,
                path_b);
        goto cleanup;
    }
    Diff total = {0};
    if (compare_blocks(ra, rb, ia->config.n_layers, &total) != 0) goto cleanup;
    int const exact = bounds.codes == 0 && bounds.scale == 0 && bounds.exponent == 0;
    double const frac = total.codes_total ? (double)total.codes_differ / total.codes_total : 0.0;
    int const pass = exact ? total.codes_differ == 0 && !total.bit_mismatch
                           : frac <= bounds.codes && total.scale_rel <= bounds.scale &&
                                 total.exponent <= bounds.exponent;
    printf("total: codes %zu/%zu differ (%.4f%%), max scale rel diff %.3g, max exponent diff %.3g: %s (%s)\n",
           total.codes_differ, total.codes_total, 100.0 * frac, total.scale_rel, total.exponent,
           pass ? "PASS" : "FAIL", exact ? "bit-identical required" : "within bounds required");
    rc = pass ? 0 : 1;
cleanup:
    checkpoint_close(ra);
    checkpoint_close(rb);
    return rc;
}
