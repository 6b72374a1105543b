/* The IQ4_NL and IQ4_XS members of the quantizer table (src/quantizer.h): llama.cpp's
 * 16-entry grid (src/quant_iq4.h) learned over by block reconstruction, stored as
 * llama.cpp stores it so that the GGUF export writes the learned codes and scales as they
 * are. Groups are 32 inputs (QuantSpec.group_size is 32 for these members); the grid
 * has no exponent (the latents' exponent array is unused: its gradient is 0).
 *
 * Stored arrays (format_version 3):
 *   IQ4_NL   codes int8 [rows][cols] (indices 0..15), scale fp16 [rows][groups] (d)
 *   IQ4_XS   codes, super_scale fp16 [rows][cols / 256] (D), sub_scale int8
 *            [rows][groups] (l in [-32, 31]); a matrix whose rows are not a multiple of
 *            256 is stored as IQ4_NL instead (llama.cpp's own fallback for such rows).
 * The forward computes w_hat from the scales as stored (d rounded to fp16; IQ4_XS's D l),
 * so the weights learned against are the weights the user gets, bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "float16.h"
#include "quant_iq4.h"
#include "quantizer.h"

enum { IQ4_CODES, IQ4_SCALE, IQ4_N_NL };              /* IQ4_NL */
enum { IQ4XS_CODES, IQ4XS_SUPER_SCALE, IQ4XS_SUB, IQ4_N_XS }; /* IQ4_XS */

static int xs_fits(QuantShape sh) { return sh.cols % IQ4XS_SUPER == 0; }

static int nl_describe(QuantSpec s, QuantShape sh, int format_version, QArrayDesc *desc) {
    (void)s, (void)format_version;
    desc[IQ4_CODES] = (QArrayDesc){"codes", QA_I8, 2, {(size_t)sh.rows, (size_t)sh.cols}};
    desc[IQ4_SCALE] = (QArrayDesc){"scale", QA_F16, 2, {(size_t)sh.rows, (size_t)iq4_groups(sh.cols)}};
    return IQ4_N_NL;
}

static int xs_describe(QuantSpec s, QuantShape sh, int format_version, QArrayDesc *desc) {
    if (!xs_fits(sh)) return nl_describe(s, sh, format_version, desc);
    desc[IQ4XS_CODES] = (QArrayDesc){"codes", QA_I8, 2, {(size_t)sh.rows, (size_t)sh.cols}};
    desc[IQ4XS_SUPER_SCALE] =
        (QArrayDesc){"super_scale", QA_F16, 2, {(size_t)sh.rows, (size_t)(sh.cols / IQ4XS_SUPER)}};
    desc[IQ4XS_SUB] = (QArrayDesc){"sub_scale", QA_I8, 2, {(size_t)sh.rows, (size_t)iq4_groups(sh.cols)}};
    return IQ4_N_XS;
}

/* Start scales: M0 times the fitted multiplier (a resume recomputes the same from w), and
 * z = w / M. RTN (QUANT_INIT_FIXED) keeps M0, the plain max scale. */
static void iq4_member_init(QuantSpec s, QuantShape sh, const float *w, QuantInit how,
                            QuantLatents *out) {
    (void)s;
    size_t const ng = (size_t)sh.rows * iq4_groups(sh.cols);
    iq4_init_scales(sh.rows, sh.cols, w, out->scales);
    if (how != QUANT_INIT_FIXED) {
        float *mult = malloc(ng * sizeof *mult);
        if (mult) { /* out of memory: M0 is a valid, slightly worse start */
            iq4_fit_scales(sh.rows, sh.cols, w, out->scales, mult);
            for (size_t g = 0; g < ng; g++) out->scales[g] *= mult[g];
            free(mult);
        }
    }
    if (how == QUANT_INIT_SCALES) return;
    iq4_normalise(sh.rows, sh.cols, w, out->scales, out->z);
    for (int e = 0; e < sh.n_exponents; e++) out->exponents[e] = 1.0f; /* unused */
}

/* d of one row as stored: IQ4_NL fp16(M / 127); IQ4_XS D l (D [cols / 256] fp16). */
static void row_block_scales(int xs, int cols, const float *M, float *d, float *D) {
    if (xs) {
        iq4xs_block_scales(1, cols, M, d, D, NULL);
        return;
    }
    iq4nl_block_scales(1, cols, M, d);
    for (int g = 0; g < iq4_groups(cols); g++) d[g] = half_to_float(float_to_half(d[g]));
}

static void forward_rows(int xs, QuantShape sh, const QuantLatents *l, int8_t *codes, float *w_hat) {
    int const groups = iq4_groups(sh.cols);
    /* groups + cols / 256 floats: a few KB beside the caller's gigabytes; the forward has
     * no error path, so running out here is fatal */
    float *d = malloc(((size_t)groups + (size_t)sh.cols / IQ4XS_SUPER + 1) * sizeof *d);
    if (!d) abort();
    for (int r = 0; r < sh.rows; r++) {
        size_t const off = (size_t)r * sh.cols;
        row_block_scales(xs, sh.cols, l->scales + (size_t)r * groups, d, d + groups);
        iq4_forward(1, sh.cols, l->z + off, d, codes + off, w_hat ? w_hat + off : NULL);
    }
    free(d);
}

static void nl_forward(QuantSpec s, QuantShape sh, const QuantLatents *l, int8_t *codes, float *w_hat) {
    (void)s;
    forward_rows(0, sh, l, codes, w_hat);
}

static void xs_forward(QuantSpec s, QuantShape sh, const QuantLatents *l, int8_t *codes, float *w_hat) {
    (void)s;
    forward_rows(xs_fits(sh), sh, l, codes, w_hat);
}

/* Straight through both roundings: the gradient reaches M as if w_hat = M C[code]. */
static void iq4_member_backward_rows(QuantSpec s, QuantShape sh, int r0, int r1,
                                     const QuantLatents *l, const int8_t *codes,
                                     const float *dw_hat, float *dz, double *da_rows, double *dM) {
    (void)s;
    int const groups = iq4_groups(sh.cols);
    float *d = malloc((size_t)groups * sizeof *d);
    if (!d) abort();
    for (int r = r0; r < r1; r++) {
        const float *M = l->scales + (size_t)r * groups;
        for (int g = 0; g < groups; g++) d[g] = M[g] / 127.0f; /* dz = dw_hat M */
        size_t const off = (size_t)r * sh.cols;
        iq4_backward_rows(sh.cols, 0, 1, d, codes + off, dw_hat + off, dz ? dz + off : NULL,
                          dM ? dM + (size_t)r * groups : NULL);
        if (da_rows) da_rows[r - r0] = 0.0; /* no exponent */
    }
    free(d);
}

static nq_status iq4_member_encode(QuantSpec s, QuantShape sh, const QuantLatents *l,
                                   const int8_t *codes, const QArrayDesc *desc, void *const *stored) {
    (void)s;
    memcpy(stored[0], codes, (size_t)sh.rows * sh.cols);
    int const groups = iq4_groups(sh.cols);
    size_t const ng = (size_t)sh.rows * groups;
    if (strcmp(desc[1].name, "scale") == 0) { /* IQ4_NL (or an IQ4_XS matrix stored so) */
        uint16_t *out = stored[IQ4_SCALE];
        for (size_t g = 0; g < ng; g++) {
            nq_status const st = quantizer_encode_half(l->scales[g] / 127.0f, &out[g], "scale", g);
            if (st != NQ_OK) return st;
        }
        return NQ_OK;
    }
    int const supers = sh.cols / IQ4XS_SUPER;
    float *d_hat = malloc(ng * sizeof *d_hat), *D = malloc((size_t)sh.rows * supers * sizeof *D);
    if (!d_hat || !D) {
        free(d_hat), free(D);
        return nq_fail(NQ_ERR_RUNTIME, "out of memory encoding IQ4_XS scales");
    }
    iq4xs_block_scales(sh.rows, sh.cols, l->scales, d_hat, D, stored[IQ4XS_SUB]);
    uint16_t *out = stored[IQ4XS_SUPER_SCALE];
    nq_status st = NQ_OK;
    for (size_t k = 0; k < (size_t)sh.rows * supers && st == NQ_OK; k++) {
        st = quantizer_encode_half(D[k], &out[k], "super_scale", k); /* D is fp16 already: exact */
    }
    free(d_hat), free(D);
    return st;
}

/* d [rows][groups] as float from the stored arrays (either layout). */
static void stored_block_scales(QuantShape sh, const QArrayDesc *desc, const void *const *stored, float *d) {
    int const groups = iq4_groups(sh.cols);
    size_t const ng = (size_t)sh.rows * groups;
    if (strcmp(desc[1].name, "scale") == 0) {
        for (size_t g = 0; g < ng; g++) d[g] = half_to_float(((const uint16_t *)stored[IQ4_SCALE])[g]);
        return;
    }
    const uint16_t *D = stored[IQ4XS_SUPER_SCALE];
    const int8_t *l = stored[IQ4XS_SUB];
    int const per = IQ4XS_SUPER / IQ4_GROUP, supers = sh.cols / IQ4XS_SUPER;
    for (int r = 0; r < sh.rows; r++)
        for (int g = 0; g < groups; g++) /* as llama.cpp: dl = D (ls - 32) */
            d[(size_t)r * groups + g] =
                half_to_float(D[(size_t)r * supers + g / per]) * (float)l[(size_t)r * groups + g];
}

static nq_status iq4_member_decode(QuantSpec s, QuantShape sh, const QArrayDesc *desc,
                                   const void *const *stored, float *w) {
    (void)s;
    float *d = nq_calloc((size_t)sh.rows * iq4_groups(sh.cols), sizeof *d, "decoded IQ4 scales");
    if (!d) return NQ_ERR_RUNTIME;
    stored_block_scales(sh, desc, stored, d);
    iq4_dequantize(sh.rows, sh.cols, stored[0], d, w);
    free(d);
    return NQ_OK;
}

/* Indices in [0, 15], finite scales, sub-block integers in [-32, 31]. */
static nq_status iq4_member_check(QuantSpec s, QuantShape sh, const QArrayDesc *desc,
                                  const void *const *stored, const char *file, const char *where) {
    (void)s;
    const int8_t *codes = stored[0];
    for (size_t i = 0; i < (size_t)sh.rows * sh.cols; i++)
        if (codes[i] < 0 || codes[i] >= IQ4_LEVELS)
            return nq_fail(NQ_ERR_INPUT, "%s: %s/codes[%zu] = %d, expected an index in [0, 15]", file,
                           where, i, codes[i]);
    const uint16_t *h = stored[1];
    for (size_t i = 0; i < qarray_count(&desc[1]); i++)
        if (!isfinite(half_to_float(h[i])))
            return nq_fail(NQ_ERR_INPUT, "%s: %s/%s[%zu] = %g, expected a finite value", file, where,
                           desc[1].name, i, (double)half_to_float(h[i]));
    if (strcmp(desc[1].name, "super_scale") == 0) {
        const int8_t *l = stored[IQ4XS_SUB];
        for (size_t i = 0; i < qarray_count(&desc[IQ4XS_SUB]); i++)
            if (l[i] < -32 || l[i] > 31)
                return nq_fail(NQ_ERR_INPUT, "%s: %s/sub_scale[%zu] = %d, expected an integer in [-32, 31]",
                               file, where, i, l[i]);
    }
    return NQ_OK;
}

const Quantizer iq4nl_quantizer = {
    .name = "iq4_nl",
    .describe = nl_describe,
    .init = iq4_member_init,
    .forward = nl_forward,
    .backward_rows = iq4_member_backward_rows,
    .encode = iq4_member_encode,
    .decode = iq4_member_decode,
    .check = iq4_member_check,
};

const Quantizer iq4xs_quantizer = {
    .name = "iq4_xs",
    .describe = xs_describe,
    .init = iq4_member_init,
    .forward = xs_forward,
    .backward_rows = iq4_member_backward_rows,
    .encode = iq4_member_encode,
    .decode = iq4_member_decode,
    .check = iq4_member_check,
};
