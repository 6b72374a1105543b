#include "quantizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "float16.h"

size_t qarray_type_size(QArrayType t) { return t == QA_I8 ? 1 : t == QA_F16 ? 2 : 4; }

const char *qarray_type_name(QArrayType t) {
    return t == QA_I8 ? "int8" : t == QA_F16 ? "float16" : "float32";
}

size_t qarray_count(const QArrayDesc *d) {
    size_t n = 1;
    for (int i = 0; i < d->rank; i++) n *= d->dims[i];
    return n;
}

double quantizer_raw_bits(const QArrayDesc *desc, int n) {
    double bits = 0;
    for (int i = 0; i < n; i++) bits += 8.0 * (double)qarray_count(&desc[i]) * (double)qarray_type_size(desc[i].type);
    return bits;
}

float qarray_float(const QArrayDesc *d, const void *a, size_t i) {
    switch (d->type) {
    case QA_I8: return (float)((const int8_t *)a)[i];
    case QA_F16: return half_to_float(((const uint16_t *)a)[i]);
    default: return ((const float *)a)[i];
    }
}

void qarray_set_float(const QArrayDesc *d, void *a, size_t i, float v) {
    switch (d->type) {
    case QA_I8: ((int8_t *)a)[i] = (int8_t)v; break;
    case QA_F16: ((uint16_t *)a)[i] = float_to_half(v); break;
    default: ((float *)a)[i] = v; break;
    }
}

static float stored_float(const QArrayDesc *d, const void *a, size_t i) { return qarray_float(d, a, i); }

/* ------------------------------------------------------------------ the power quantizer
 * Stored: codes int8 [rows][cols], scale [rows][groups] and exponent [n_exponents], the
 * latter two fp16 from format_version 3 on (fp32 before). */

enum { POWER_CODES, POWER_SCALE, POWER_EXPONENT, POWER_N_ARRAYS };

static int power_describe(QuantSpec s, QuantShape sh, int format_version, QArrayDesc *desc) {
    (void)s;
    QArrayType const side = format_version >= 3 ? QA_F16 : QA_F32;
    desc[POWER_CODES] = (QArrayDesc){"codes", QA_I8, 2, {(size_t)sh.rows, (size_t)sh.cols}};
    desc[POWER_SCALE] = (QArrayDesc){"scale", side, 2, {(size_t)sh.rows, (size_t)sh.groups}};
    desc[POWER_EXPONENT] = (QArrayDesc){"exponent", side, 1, {(size_t)sh.n_exponents, 0}};
    return POWER_N_ARRAYS;
}

static void power_init(QuantSpec s, QuantShape sh, const float *w, QuantInit how, QuantLatents *out) {
    quant_init_scales(s, sh, w, out->scales);
    if (how == QUANT_INIT_SCALES) return;
    quant_normalise(s, sh, w, out->scales, out->z);
    if (how == QUANT_INIT_FIXED) {
        for (int e = 0; e < sh.n_exponents; e++) out->exponents[e] = 1.0f;
    } else {
        quant_search_exponent(s, sh, w, out->scales, out->exponents);
    }
}

static void power_forward(QuantSpec s, QuantShape sh, const QuantLatents *l, int8_t *codes, float *w_hat) {
    quant_forward(s, sh, l->z, l->scales, l->exponents, codes, w_hat);
}

static void power_backward_rows(QuantSpec s, QuantShape sh, int r0, int r1, const QuantLatents *l,
                                const int8_t *codes, const float *dw_hat, float *dz, double *da_rows,
                                double *dM) {
    quant_backward_rows(s, sh, r0, r1, l->z, l->scales, l->exponents, codes, dw_hat, dz, da_rows, dM);
}

/* A scale or exponent as a half. Round to nearest: a scale below 2^-14 becomes a half
 * subnormal (absolute step 2^-24, so every weight of its group moves by at most 2^-25:
 * far below what the codes resolve) and one below 2^-25 becomes 0 (the group's weights,
 * all under 2^-25, become 0). A value above 65504 has no half: refused, naming it. */
nq_status quantizer_encode_half(float v, uint16_t *out, const char *what, size_t i) {
    if (!(fabsf(v) <= HALF_MAX))
        return nq_fail(NQ_ERR_INPUT, "%s[%zu] = %g cannot be stored as fp16, expected a finite value of "
                       "magnitude <= %g (weights that large are not a LLaMA model's)", what, i, (double)v,
                       (double)HALF_MAX);
    *out = float_to_half(v);
    return NQ_OK;
}

static nq_status power_encode(QuantSpec s, QuantShape sh, const QuantLatents *l, const int8_t *codes,
                              const QArrayDesc *desc, void *const *stored) {
    (void)s;
    memcpy(stored[POWER_CODES], codes, (size_t)sh.rows * (size_t)sh.cols);
    const float *const src[2] = {l->scales, l->exponents};
    for (int k = 0; k < 2; k++) {
        const QArrayDesc *d = &desc[POWER_SCALE + k];
        size_t const n = qarray_count(d);
        if (d->type == QA_F32) {
            memcpy(stored[POWER_SCALE + k], src[k], n * sizeof(float));
            continue;
        }
        uint16_t *out = stored[POWER_SCALE + k];
        for (size_t i = 0; i < n; i++) {
            nq_status const st = quantizer_encode_half(src[k][i], &out[i], d->name, i);
            if (st != NQ_OK) return st;
        }
    }
    return NQ_OK;
}

/* The side arrays as fp32 (fp16 ones widened exactly) into out (count floats). */
static void stored_floats(const QArrayDesc *d, const void *a, float *out) {
    size_t const n = qarray_count(d);
    for (size_t i = 0; i < n; i++) out[i] = stored_float(d, a, i);
}

static nq_status power_decode(QuantSpec s, QuantShape sh, const QArrayDesc *desc,
                              const void *const *stored, float *w) {
    const int8_t *codes = stored[POWER_CODES];
    if (desc[POWER_SCALE].type == QA_F32 && desc[POWER_EXPONENT].type == QA_F32) {
        quant_dequantize(s, sh, codes, stored[POWER_SCALE], stored[POWER_EXPONENT], w);
        return NQ_OK;
    }
    size_t const ns = qarray_count(&desc[POWER_SCALE]), ne = qarray_count(&desc[POWER_EXPONENT]);
    float *side = nq_calloc(ns + ne, sizeof(float), "decoded scales and exponents");
    if (!side) return NQ_ERR_RUNTIME;
    stored_floats(&desc[POWER_SCALE], stored[POWER_SCALE], side);
    stored_floats(&desc[POWER_EXPONENT], stored[POWER_EXPONENT], side + ns);
    quant_dequantize(s, sh, codes, side, side + ns, w);
    free(side);
    return NQ_OK;
}

/* Codes within [-m, m] (the dequantization table is indexed by them), finite scales >= 0
 * and finite exponents > 0: a damaged but readable file must not crash a reader. */
static nq_status power_check(QuantSpec s, QuantShape sh, const QArrayDesc *desc, const void *const *stored,
                             const char *file, const char *where) {
    int const m = quant_max_code(s.bits);
    const int8_t *codes = stored[POWER_CODES];
    size_t const n = (size_t)sh.rows * sh.cols;
    for (size_t i = 0; i < n; i++)
        if (codes[i] < -m || codes[i] > m)
            return nq_fail(NQ_ERR_INPUT, "%s: %s/codes[%zu] = %d, expected a code in [%d, %d]", file, where, i,
                           codes[i], -m, m);
    for (size_t i = 0; i < qarray_count(&desc[POWER_SCALE]); i++) {
        float const v = stored_float(&desc[POWER_SCALE], stored[POWER_SCALE], i);
        if (!(v >= 0) || !isfinite(v))
            return nq_fail(NQ_ERR_INPUT, "%s: %s/scale[%zu] = %g, expected a finite value >= 0", file, where, i,
                           (double)v);
    }
    for (size_t i = 0; i < qarray_count(&desc[POWER_EXPONENT]); i++) {
        float const v = stored_float(&desc[POWER_EXPONENT], stored[POWER_EXPONENT], i);
        if (!(v > 0) || !isfinite(v))
            return nq_fail(NQ_ERR_INPUT, "%s: %s/exponent[%zu] = %g, expected a finite value > 0", file, where,
                           i, (double)v);
    }
    return NQ_OK;
}

static const Quantizer power_quantizer = {
    .name = "power",
    .describe = power_describe,
    .init = power_init,
    .forward = power_forward,
    .backward_rows = power_backward_rows,
    .encode = power_encode,
    .decode = power_decode,
    .check = power_check,
};

/* ------------------------------------------------------------------ the table */

const Quantizer *const quantizer_table[QUANTIZER_COUNT] = {
    [QUANTIZER_POWER] = &power_quantizer,
    [QUANTIZER_IQ4_NL] = &iq4nl_quantizer,
    [QUANTIZER_IQ4_XS] = &iq4xs_quantizer,
};

const Quantizer *quantizer_of(QuantSpec s) {
    return s.quantizer >= 0 && s.quantizer < QUANTIZER_COUNT ? quantizer_table[s.quantizer] : NULL;
}

int quantizer_find(const char *name) {
    for (int i = 0; i < QUANTIZER_COUNT; i++)
        if (strcmp(quantizer_table[i]->name, name) == 0) return i;
    return -1;
}
