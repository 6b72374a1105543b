/* The quantized checkpoint (docs/design.md 5.3): one HDF5 file written by root, every dataset
 * chunked and zstd-compressed (filter 32015), readable by h5dump/h5py with the plugin.
 *
 *   /                attrs: format = "nupes-mpi", format_version = 3, status ("complete" |
 *                    "partial"), method, quantizer ("power"), bits, group_size, exponent
 *                    ("tensor" | "channel"), fingerprint, config (TOML text), dequant (the
 *                    formula of 3.1 as text)
 *   /model           attrs: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 *                    seq_len, rope_theta, norm_eps, rope_style ("interleaved" | "half"),
 *                    tied_embeddings
 *   /model/tok_embeddings float32 [V][d]; /model/norm_final [d]; /model/output [V][d]
 *                    (untied only)
 *   /blocks/0007     attrs loss_init, loss_final, seconds
 *   /blocks/0007/attn_norm [d], /blocks/0007/ffn_norm [d]
 *   /blocks/0007/wq/ the arrays the quantizer describes (src/quantizer.h); power: codes
 *                    int8 [out][in], scale float16 [out][groups], exponent float16 [1] or
 *                    [out]; a matrix kept fp32 has /blocks/0007/wq/weight instead.
 *
 * Versions: 3 stores scales and exponents as fp16 and names the quantizer; 2 (fp32 scales
 * and exponents, the power quantizer) and 1 are still read exactly as they were written.
 * Checksums (format_version >= 2, io/h5sum.h): every dataset carries attribute checksum
 * (XXH3-64 of its elements), and /, /model and /blocks/NNNN carry attrs_checksum over their
 * attributes. Readers verify what they read (a mismatch is NQ_ERR_INPUT naming the
 * object); checkpoint_verify reads the whole file. A format_version 1 checkpoint (written
 * before checksums) is still read, with a warning on stderr that says how to rewrite it.
 *
 * Writing: checkpoint_create, checkpoint_write_block for each block (any order; root holds
 * one block at a time), then checkpoint_commit (or checkpoint_abort). The file lives under
 * a temporary name until the commit renames it: a crash or failure never damages an
 * earlier checkpoint at the same path. */
#ifndef NUPES_CHECKPOINT_H
#define NUPES_CHECKPOINT_H

#include "model.h"
#include "quant.h"
#include "result.h"
#include "status.h"

#define CHECKPOINT_FORMAT "nupes-mpi"
#define CHECKPOINT_VERSION RESULT_FORMAT_VERSION /* 3 */
#define CHECKPOINT_VERSION_CHECKSUMS 2  /* from this version on every dataset has a checksum */
#define CHECKPOINT_VERSION_UNCHECKED 1  /* before checksums: read with a warning */

typedef struct {
    const char *method;      /* "nupes" | "powerquant" | "rtn" */
    QuantSpec spec;          /* bits, group_size, per_row (exponent "channel") */
    const char *fingerprint; /* the run's fingerprint (docs/design.md 5.2) */
    const char *config_toml; /* the resolved config */
    const char *status;      /* "complete" | "partial"; NULL: decided at commit
                                ("complete" when every block was written) */
    const char *blas;        /* the BLAS library and kernel the results were computed with
                                ("OpenBLAS 0.3.21 ..., kernel Haswell"); NULL: "" */
    const char *blas_note;   /* "" or why the results are not bit-identical to an
                                uninterrupted run under one kernel; NULL: "" */
    int threads_per_rank;    /* the threads each rank ran (results do not depend on it) */
    unsigned skip_mask;      /* matrices kept fp32 (bit i: matrix i), for the disk reserve */
} CheckpointMeta;

typedef struct CheckpointWriter CheckpointWriter;

/* Creates the file under a temporary name in path's directory and writes the root
 * attributes and /model (head: embeddings, final norm, classifier when untied). */
nq_status checkpoint_create(const char *path, const CheckpointMeta *meta, const ModelConfig *c,
                            const HeadWeights *head, int zstd_level, CheckpointWriter **out);

/* Writes block r->block (its norm gains attn_norm, ffn_norm [d] come from the model). The
 * result's spec and shapes must match the checkpoint's (NQ_ERR_RUNTIME otherwise). */
nq_status checkpoint_write_block(CheckpointWriter *w, const BlockResult *r,
                                 const float *attn_norm, const float *ffn_norm);

/* Writes the status, closes, fsyncs, renames over path and fsyncs the directory. Refuses
 * status "complete" with blocks missing. Always frees w; on failure the temporary file is
 * removed and an earlier file at path is untouched. */
nq_status checkpoint_commit(CheckpointWriter *w);

/* Removes the temporary file and frees w (NULL is fine). */
void checkpoint_abort(CheckpointWriter *w);

/* ------------------------------------------------------------------ reading */

typedef struct {
    int format_version;
    char status[16];      /* "complete" | "partial" */
    char method[16];
    QuantSpec spec;
    char fingerprint[160];
    char *config_toml;    /* malloc'd; checkpoint_info_free */
    char *dequant;        /* malloc'd */
    char *blas;           /* malloc'd; "" in checkpoints written before it was recorded */
    char *blas_note;      /* malloc'd; "" when the results came from one kernel */
    int threads_per_rank; /* 0 when not recorded */
    ModelConfig config;
} CheckpointInfo;

typedef struct CheckpointReader CheckpointReader;

/* Opens and validates path: format, format_version, status, spec, model config. Errors are
 * NQ_ERR_INPUT naming the file and the field ("ck.h5: attribute format = \"x\", expected
 * \"nupes-mpi\"", "ck.h5: not an HDF5 file"). */
nq_status checkpoint_open(const char *path, CheckpointReader **out);
void checkpoint_close(CheckpointReader *r); /* NULL is fine */
const CheckpointInfo *checkpoint_info(const CheckpointReader *r);

/* 1 when /blocks/NNNN exists (a partial checkpoint lacks some). */
int checkpoint_has_block(CheckpointReader *r, int l);

/* Block l: out is allocated here (block_result_free); attn_norm, ffn_norm [d] may be NULL. */
nq_status checkpoint_read_block(CheckpointReader *r, int l, BlockResult *out, float *attn_norm,
                                float *ffn_norm);

/* What block l's quantized matrices take in the file: per stored array of their
 * quantizer (names[k]: "codes", "scale", ...) the bytes as stored (H5Dget_storage_size:
 * compressed, chunk overhead included), the quantized weights, and with want_entropy the
 * sum over matrices of n H(codes) in bits (reads the codes; without it code_bits = 0). */
typedef struct {
    int n_arrays;
    const char *names[QM_MAX_ARRAYS];
    unsigned long long stored_bytes[QM_MAX_ARRAYS];
    unsigned long long weights;
    double code_bits;
} CheckpointStorage;
nq_status checkpoint_block_storage(CheckpointReader *r, int l, int want_entropy, CheckpointStorage *out);

/* tok_embeddings [V][d], norm_final [d]; output [V][d] is filled from /model/output when
 * untied and copied from the embeddings when tied (NULL to skip it). */
nq_status checkpoint_read_head(CheckpointReader *r, float *tok_embeddings, float *norm_final,
                               float *output);

/* Reads every dataset and attribute of an open checkpoint and checks them against their
 * checksums, then every block through checkpoint_read_block (value checks). NQ_ERR_INPUT
 * naming the first damaged object; a format_version 1 file cannot be verified (error
 * saying how to rewrite it). Counts what was checked. */
nq_status checkpoint_verify(CheckpointReader *r, int *n_datasets, int *n_attr_sets);

/* checkpoint_open + copy of the info + close. Free with checkpoint_info_free. */
nq_status checkpoint_read_info(const char *path, CheckpointInfo *out);
void checkpoint_info_free(CheckpointInfo *info);

#endif
