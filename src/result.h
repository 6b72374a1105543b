/* The result of quantizing one block: per matrix the integer codes, group scales and
 * exponents (or the fp32 weights of a skipped matrix), plus the block's metrics. This is
 * what a block group sends to root, what done/block-NNNN.h5 holds and what the checkpoint
 * stores under /blocks/NNNN. */
#ifndef NUPES_RESULT_H
#define NUPES_RESULT_H

#include "model.h"
#include "quant.h"

typedef struct {
    QuantSpec spec;
    QuantShape shape;
    int quantized;    /* 0: listed in quantization.skip, kept fp32 in `weight` */
    int8_t *codes;    /* [rows][cols] (quantized) */
    float *scales;    /* [rows][groups] (quantized) */
    float *exponents; /* [n_exponents] (quantized) */
    float *weight;    /* [rows][cols] fp32 (skipped only) */
} QuantMatrix;

typedef struct {
    int block;          /* index l */
    QuantMatrix mat[N_MATS];
    float loss_init;    /* block loss of the starting quantization (PowerQuant or RTN) */
    float loss_final;   /* after reconstruction */
    double seconds;     /* wall time of this block's reconstruction */
} BlockResult;

/* Allocates the arrays of r for the model's shapes (zeroed). skip_mask bit i keeps
 * matrix i in fp32. Returns NQ_OK or NQ_ERR_RUNTIME (out of memory). */
int block_result_alloc(BlockResult *r, const ModelConfig *c, QuantSpec spec, int block,
                       unsigned skip_mask);
void block_result_free(BlockResult *r); /* frees the arrays, leaves r zeroed; NULL-safe */

/* Dequantized fp32 weights of matrix i into w [rows][cols]. */
void quant_matrix_dequantize(const QuantMatrix *q, float *w);

#endif
