/* A quantizer, described once (docs/design.md 3.5). A quantized matrix [rows][cols] is
 * a short table of named arrays (QArrayDesc: name, element type, shape): what a done file
 * and the checkpoint store under the matrix's group, what gather sends, what inspect
 * counts. A quantizer is that table plus a few operations (Quantizer):
 *
 *   init      fp32 weights -> starting latents (scales, normalised weights z, exponents)
 *   forward   latents -> codes and w_hat (the weights the block uses while learning)
 *   backward  dL/dw_hat -> the latents' gradients (straight through the rounding)
 *   encode    latents -> the stored arrays (what the user gets)
 *   decode    stored arrays -> fp32 weights
 *   check     stored arrays read from a file -> valid for decode, or a one-line error
 *
 * Everything else (block_file, checkpoint, gather, inspect, the model backend, export,
 * eval) reads and writes the arrays the table names, generically. Array 0 is always the
 * codes, int8 [rows][cols] (what zstd compresses towards their entropy). Numerics only here:
 * no HDF5, no MPI. Members: the power quantizer (RTN, PowerQuant, NUPES: src/quant.h),
 * row QUANTIZER_POWER of quantizer_table; llama.cpp's IQ4_NL and IQ4_XS grids
 * (src/quantizer_iq4.c), rows QUANTIZER_IQ4_NL and QUANTIZER_IQ4_XS. */
#ifndef NUPES_QUANTIZER_H
#define NUPES_QUANTIZER_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"
#include "status.h"

/* The element types of stored arrays (little-endian in files). QA_F16 is IEEE binary16,
 * held in memory as its uint16_t bit pattern (src/float16.h). */
typedef enum { QA_I8, QA_F16, QA_F32 } QArrayType;
size_t qarray_type_size(QArrayType t);
const char *qarray_type_name(QArrayType t); /* "int8", "float16", "float32" */

#define QM_MAX_ARRAYS 4

typedef struct {
    const char *name; /* dataset name under the matrix's group ("codes", "scale", ...) */
    QArrayType type;
    int rank;         /* 1 or 2 */
    size_t dims[2];
} QArrayDesc;
size_t qarray_count(const QArrayDesc *d); /* elements */
/* Element i of array a (described by d) as a float: fp16 widened exactly, int8 converted. */
float qarray_float(const QArrayDesc *d, const void *a, size_t i);
/* Stores v as element i (fp16: rounded to nearest, overflow to inf; int8: truncated). */
void qarray_set_float(const QArrayDesc *d, void *a, size_t i, float v);

/* The learned quantities of one matrix, fp32 (docs/design.md 3.3). A quantizer uses the
 * ones it has (shape.n_exponents may be 0 for a grid without an exponent). */
typedef struct {
    float *z;         /* [rows][cols] normalised latents, in [-1, 1] */
    float *scales;    /* [rows][groups] group scales M */
    float *exponents; /* [n_exponents] */
} QuantLatents;

typedef enum {
    QUANT_INIT_SCALES, /* scales only (a resume restores the rest) */
    QUANT_INIT_FIXED,  /* scales, z, and the grid's fixed default (power: a = 1, RTN) */
    QUANT_INIT_SEARCH  /* scales, z, and the data-free search (power: PowerQuant, 3.2) */
} QuantInit;

typedef struct Quantizer {
    const char *name; /* the checkpoint's "quantizer" attribute */
    /* The stored arrays of a matrix of shape sh in files of format_version (a member may
     * have stored other types in older versions): fills desc, returns the count. */
    int (*describe)(QuantSpec s, QuantShape sh, int format_version, QArrayDesc *desc);
    void (*init)(QuantSpec s, QuantShape sh, const float *w, QuantInit how, QuantLatents *out);
    /* codes [rows][cols]; w_hat [rows][cols] (may be NULL). sh may be a run of rows of
     * a matrix (rows, and n_exponents when per_row, cut to the run; l points at it). */
    void (*forward)(QuantSpec s, QuantShape sh, const QuantLatents *l, int8_t *codes, float *w_hat);
    /* Rows [r0, r1): dz (NULL: not formed), da_rows [r1 - r0] per-row sums of the
     * exponent gradient, dM [rows][groups] (NULL: scales not learned). Sums in double. */
    void (*backward_rows)(QuantSpec s, QuantShape sh, int r0, int r1, const QuantLatents *l,
                          const int8_t *codes, const float *dw_hat, float *dz, double *da_rows,
                          double *dM);
    /* The stored arrays (desc from describe, current format) of the latents l, whose
     * forward gave codes. NQ_ERR_INPUT when a value cannot be stored (message names it). */
    nq_status (*encode)(QuantSpec s, QuantShape sh, const QuantLatents *l, const int8_t *codes,
                        const QArrayDesc *desc, void *const *stored);
    /* w [rows][cols] from the stored arrays (any format_version's desc). */
    nq_status (*decode)(QuantSpec s, QuantShape sh, const QArrayDesc *desc,
                        const void *const *stored, float *w); /* NQ_ERR_RUNTIME: out of memory */
    /* Values a damaged but readable file may hold that decode must not see: NQ_ERR_INPUT
     * "file: where/name[i] = v, expected ...". */
    nq_status (*check)(QuantSpec s, QuantShape sh, const QArrayDesc *desc, const void *const *stored,
                       const char *file, const char *where);
} Quantizer;

enum { QUANTIZER_POWER, QUANTIZER_IQ4_NL, QUANTIZER_IQ4_XS, QUANTIZER_COUNT };
extern const Quantizer iq4nl_quantizer, iq4xs_quantizer; /* src/quantizer_iq4.c */
extern const Quantizer *const quantizer_table[QUANTIZER_COUNT];

/* The quantizer of spec (spec.quantizer indexes quantizer_table). */
const Quantizer *quantizer_of(QuantSpec s);
/* Index of the quantizer called name, or -1. */
int quantizer_find(const char *name);

/* A stored scale or exponent v (element i of array `what`) as fp16 into *out; NQ_ERR_INPUT
 * naming it when |v| > 65504 or v is not finite. Every member's encode uses it. */
nq_status quantizer_encode_half(float v, uint16_t *out, const char *what, size_t i);

/* Bits a matrix's stored arrays take before compression (every element at its type's
 * width), for the plan's estimates. */
double quantizer_raw_bits(const QArrayDesc *desc, int n);

#endif
