/* The result of quantizing one block: per matrix the stored arrays its quantizer describes
 * (src/quantizer.h; for the power quantizer codes, scale, exponent) or the fp32 weights of
 * a skipped matrix, plus the block's metrics. This is what a block group sends to root,
 * what done/block-NNNN.h5 holds and what the checkpoint stores under /blocks/NNNN. */
#ifndef NUPES_RESULT_H
#define NUPES_RESULT_H

#include "model.h"
#include "quant.h"
#include "quantizer.h"

typedef struct {
    const Quantizer *quant; /* quantizer_of(spec) */
    QuantSpec spec;
    QuantShape shape;
    int quantized;          /* 0: listed in quantization.skip, kept fp32 in `weight` */
    int n_arrays;           /* quantized: the stored arrays, as desc says */
    QArrayDesc desc[QM_MAX_ARRAYS];
    void *array[QM_MAX_ARRAYS];
    float *weight;          /* [rows][cols] fp32 (skipped only) */
} QuantMatrix;

typedef struct {
    int block;          /* index l */
    QuantMatrix mat[N_MATS];
    float loss_init;    /* block loss of the starting quantization (PowerQuant or RTN) */
    float loss_final;   /* after reconstruction */
    double seconds;     /* wall time of this block's reconstruction */
} BlockResult;

/* The format_version whose arrays block_result_alloc describes (done files and the
 * checkpoint write this one; readers of older files pass theirs). */
#define RESULT_FORMAT_VERSION 3 /* 3: fp16 scales and exponents; 2: fp32 */

/* Allocates the arrays of r for the model's shapes (zeroed), described as files of
 * RESULT_FORMAT_VERSION store them. skip_mask bit i keeps matrix i in fp32. Returns NQ_OK,
 * NQ_ERR_RUNTIME (out of memory) or NQ_ERR_INPUT (spec names no quantizer). */
int block_result_alloc(BlockResult *r, const ModelConfig *c, QuantSpec spec, int block,
                       unsigned skip_mask);
/* The same, with the arrays as files of format_version store them. */
int block_result_alloc_version(BlockResult *r, const ModelConfig *c, QuantSpec spec, int block,
                               unsigned skip_mask, int format_version);
void block_result_free(BlockResult *r); /* frees the arrays, leaves r zeroed; NULL-safe */

/* Stored array `name` of a quantized matrix, or NULL. */
void *quant_matrix_array(const QuantMatrix *q, const char *name);

/* Dequantized fp32 weights of matrix i into w [rows][cols] (the quantizer's decode).
 * NQ_ERR_RUNTIME when out of memory. */
nq_status quant_matrix_dequantize(const QuantMatrix *q, float *w);

#endif
