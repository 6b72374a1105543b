#include "result.h"

#include <stdlib.h>
#include <string.h>

#include "status.h"

int block_result_alloc(BlockResult *r, const ModelConfig *c, QuantSpec spec, int block,
                       unsigned skip_mask) {
    memset(r, 0, sizeof *r);
    r->block = block;
    for (int i = 0; i < N_MATS; i++) {
        QuantMatrix *q = &r->mat[i];
        q->spec = spec;
        q->shape = quant_shape(spec, mat_rows(c, i), mat_cols(c, i));
        q->quantized = !(skip_mask & (1u << i));
        size_t const n = (size_t)q->shape.rows * (size_t)q->shape.cols;
        if (q->quantized) {
            q->codes = nq_calloc(n, sizeof *q->codes, "codes");
            q->scales = nq_calloc((size_t)q->shape.rows * q->shape.groups, sizeof(float), "scales");
            q->exponents = nq_calloc((size_t)q->shape.n_exponents, sizeof(float), "exponents");
            if (!q->codes || !q->scales || !q->exponents) goto oom;
        } else {
            q->weight = nq_calloc(n, sizeof(float), "fp32 weights of a skipped matrix");
            if (!q->weight) goto oom;
        }
    }
    return NQ_OK;
oom:
    block_result_free(r);
    return NQ_ERR_RUNTIME;
}

void block_result_free(BlockResult *r) {
    if (!r) return;
    for (int i = 0; i < N_MATS; i++) {
        free(r->mat[i].codes);
        free(r->mat[i].scales);
        free(r->mat[i].exponents);
        free(r->mat[i].weight);
    }
    memset(r, 0, sizeof *r);
}

void quant_matrix_dequantize(const QuantMatrix *q, float *w) {
    if (q->quantized) {
        quant_dequantize(q->spec, q->shape, q->codes, q->scales, q->exponents, w);
    } else {
        memcpy(w, q->weight, (size_t)q->shape.rows * q->shape.cols * sizeof(float));
    }
}
