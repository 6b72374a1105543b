#include "result.h"

#include <stdlib.h>
#include <string.h>

#include "status.h"

int block_result_alloc(BlockResult *r, const ModelConfig *c, QuantSpec spec, int block,
                       unsigned skip_mask) {
    return block_result_alloc_version(r, c, spec, block, skip_mask, RESULT_FORMAT_VERSION);
}

int block_result_alloc_version(BlockResult *r, const ModelConfig *c, QuantSpec spec, int block,
                               unsigned skip_mask, int format_version) {
    memset(r, 0, sizeof *r);
    r->block = block;
    const Quantizer *quant = quantizer_of(spec);
    if (!quant) return nq_fail(NQ_ERR_INPUT, "quantizer %d, expected 0..%d", spec.quantizer, QUANTIZER_COUNT - 1);
    for (int i = 0; i < N_MATS; i++) {
        QuantMatrix *q = &r->mat[i];
        q->quant = quant;
        q->spec = spec;
        q->shape = quant_shape(spec, mat_rows(c, i), mat_cols(c, i));
        q->quantized = !(skip_mask & (1u << i));
        if (q->quantized) {
            q->n_arrays = quant->describe(spec, q->shape, format_version, q->desc);
            for (int k = 0; k < q->n_arrays; k++) {
                size_t const n = qarray_count(&q->desc[k]);
                q->array[k] = nq_calloc(n ? n : 1, qarray_type_size(q->desc[k].type), q->desc[k].name);
                if (!q->array[k]) goto oom;
            }
        } else {
            size_t const n = (size_t)q->shape.rows * (size_t)q->shape.cols;
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
        for (int k = 0; k < QM_MAX_ARRAYS; k++) free(r->mat[i].array[k]);
        free(r->mat[i].weight);
    }
    memset(r, 0, sizeof *r);
}

void *quant_matrix_array(const QuantMatrix *q, const char *name) {
    for (int k = 0; k < q->n_arrays; k++)
        if (strcmp(q->desc[k].name, name) == 0) return q->array[k];
    return NULL;
}

nq_status quant_matrix_dequantize(const QuantMatrix *q, float *w) {
    if (q->quantized) return q->quant->decode(q->spec, q->shape, q->desc, (const void *const *)q->array, w);
    memcpy(w, q->weight, (size_t)q->shape.rows * q->shape.cols * sizeof(float));
    return NQ_OK;
}
