/* Result files of completed blocks, run.dir/done/block-NNNN.h5 (docs/design.md 5.2), written by
 * root when a block's result arrives and read back on resume and for the checkpoint.
 *
 * Layout (every dataset chunked + zstd, filter 32015):
 *   /                attrs: format = "nupes-mpi-block", format_version = 3, quantizer
 *                    ("power"), block, bits, group_size, exponent ("tensor" | "channel"),
 *                    fingerprint (of the run that wrote it), loss_init, loss_final, seconds,
 *                    attrs_checksum
 *   every dataset    attr checksum (io/h5sum.h)
 *   /wq/<array>      the arrays the quantizer describes (src/quantizer.h); power:
 *   /wq/codes        int8 [out][in]        (quantized matrices)
 *   /wq/scale        float16 [out][groups]
 *   /wq/exponent     float16 [1] or [out]
 *   /wq/weight       float32 [out][in]     (matrices kept fp32, instead of the arrays above)
 *   ... wk wv wo w1 w2 w3 alike.
 * Older versions are refused (a resumed run then computes the block again): version 1 had
 * no checksums, version 2 fp32 scales and exponents.
 * The checkpoint stores a block the same way under /blocks/NNNN (see checkpoint.h), with
 * the same helpers below. */
#ifndef NUPES_BLOCK_FILE_H
#define NUPES_BLOCK_FILE_H

#include <hdf5.h>

#include "result.h"
#include "status.h"

#define BLOCK_FILE_FORMAT "nupes-mpi-block"
#define BLOCK_FILE_VERSION RESULT_FORMAT_VERSION

/* Writes r to path atomically (temporary name, fsync, rename, fsync dir). zstd_level
 * 1..22. NQ_ERR_RUNTIME on I/O failure, with no file left behind. */
nq_status block_file_save(const char *path, const BlockResult *r, int zstd_level);
/* The same, recording the fingerprint of the run that owns the file. */
nq_status block_file_save_owned(const char *path, const BlockResult *r, const char *fingerprint,
                                int zstd_level);

/* Reads path into out (allocated here; free with block_result_free), after validating
 * format, version, spec and every shape against the model c. A missing, truncated or
 * corrupt file is NQ_ERR_INPUT naming the file and what is wrong; out is then zeroed. */
nq_status block_file_load(const char *path, const ModelConfig *c, BlockResult *out);

/* What a resumed run expects of its done file for block `block`. */
typedef struct {
    int block;
    QuantSpec spec;
    unsigned skip_mask;      /* bit i: matrix i kept fp32 */
    const char *fingerprint; /* the run's */
} BlockFileExpect;
/* block_file_load, then the file must be the one this run wrote for that block: its
 * block index, spec, kept matrices and fingerprint are compared ("done/block-0003.h5:
 * fingerprint = 1a2b..., expected 9f8e... (a file from another run)"), NQ_ERR_INPUT. */
nq_status block_file_load_expected(const char *path, const ModelConfig *c,
                                   const BlockFileExpect *want, BlockResult *out);

/* ---- shared with io/checkpoint.c: a BlockResult under an open HDF5 group ---- */

/* The seven matrices of r under g ("wq/codes", ...), and the attributes loss_init,
 * loss_final and seconds on g. */
nq_status block_result_write_h5(hid_t g, const char *file, const BlockResult *r, int zstd_level);

/* Reads the matrices and metrics under g into out (allocated here) for the model c and
 * quantization spec: the arrays the spec's quantizer describes for format_version (their
 * names, element types and shapes are checked), then the quantizer's value check (power:
 * codes outside [-m, m], negative scales and non-positive exponents are NQ_ERR_INPUT); a
 * matrix stored as "weight" comes back unquantized. checked: every dataset must carry its
 * checksum (files written with checksums), else checked when present. */
nq_status block_result_read_h5(hid_t g, const char *file, const ModelConfig *c, QuantSpec spec,
                               int block, int checked, int format_version, BlockResult *out);

/* Checks a spec read from a file against the model: bits 2..8, group_size >= 0 (a row's
 * last group is shorter when group_size does not divide it), per_row 0 or 1. */
nq_status quant_spec_check(const char *file, QuantSpec spec, const ModelConfig *c);

#endif
