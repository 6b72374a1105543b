/* The activations file of a run (docs/design.md 5.2), shared by all ranks through parallel
 * HDF5 (MPI-IO driver):
 *   /inputs   dtype   [L+1][N][T][d]  input of block l for every calibration sequence
 *                                     (level L = the last block's output); dtype float32,
 *                                     or fp16 / bf16 (calibration.activation_dtype)
 *   /checksums uint64  [L+1][N]       XXH3-64 of each sequence's [T][d] stored values (their
 *                                     bytes as in the file), computed by the rank that
 *                                     wrote it, as it wrote it
 *   attr on /: complete = 1 once capture has finished; dtype = "fp32" | "fp16" | "bf16"
 *   (io/act_dtype_h5.h; absent in files from before it: fp32).
 * Every read checks the sequences it reads against their checksums; activations_verify
 * checks a rank's share of the whole file (a resume does before it reuses the file).
 * The inputs through the quantized blocks (sequential and pipelined modes) are handed on
 * in files of their own, written by one block group each (io/qlevel_file.h).
 * Contiguous layout, allocated without fill: a 7B run writes 100+ GB here (half that in
 * 16 bits), and MPI-IO writes contiguous slabs at full bandwidth. Callers see fp32 only:
 * 16-bit values are encoded and decoded here (src/float16.h, round to nearest even).
 *
 * Writes and attribute updates are collective over the communicator the file was opened
 * on; reads are independent (any rank, any sequences, any time). */
#ifndef NUPES_ACTIVATIONS_H
#define NUPES_ACTIVATIONS_H

#include <mpi.h>

#include "float16.h"
#include "status.h"

typedef struct Activations Activations;

/* Collective. Creates (truncates) path for L blocks, N sequences of T tokens, width d,
 * values stored as dtype. */
nq_status activations_create(const char *path, MPI_Comm comm, int L, int N, int T, int d, ActDtype dtype,
                             Activations **out);
/* Collective. Opens an existing file and checks its dtype and shape against dtype, L, N,
 * T, d (a file from another model, calibration set or dtype is an NQ_ERR_INPUT error
 * naming the dataset or attribute). */
nq_status activations_open(const char *path, MPI_Comm comm, int L, int N, int T, int d, ActDtype dtype,
                           Activations **out);
/* Collective. Closes and frees (NULL is fine). */
nq_status activations_close(Activations *a);

int activations_complete(const Activations *a);
/* Collective: marks capture as finished. */
nq_status activations_set_complete(Activations *a);

/* Collective: every rank writes sequences [first, first + count) of `level` (count may be
 * 0 on some ranks). data: [count][T][d]; it is used as the encoding buffer and left
 * holding the values stored (rounded to the dtype: exactly what a read returns), so that
 * a capture goes on with what a resumed capture reads back. A finite value the dtype
 * cannot hold (fp16: |x| >= 65520) is an NQ_ERR_RUNTIME error naming the level and the
 * dtype to use instead, once the collective write is done. */
nq_status activations_write(Activations *a, int level, int first, int count, float *data);

/* Independent: reads sequences seqs[0..n) of `level` into out [n][T][d]. */
nq_status activations_read(Activations *a, int level, const int *seqs, int n, float *out);

/* Independent: reads sequences [first, first + count) of every level and checks them
 * against their checksums: NQ_ERR_INPUT "path: /inputs level 3 sequence 17: checksum
 * mismatch (damaged file)" at the first damaged one. */
nq_status activations_verify(Activations *a, int first, int count);

/* Flushes written data to storage (collective), so that a kill after it loses nothing. */
nq_status activations_flush(Activations *a);

/* A capture in progress (run.dir/activations.h5.partial, io/run_dir.h) records how many
 * levels are complete: levels 0..levels_done-1 are durable, so a resumed capture starts at
 * levels_done. Collective: flushes the data, then writes the mark and flushes again. */
nq_status activations_mark_levels_done(Activations *a, int levels);
/* The mark (0 when the file has none). */
nq_status activations_levels_done(Activations *a, int *levels);

#endif
