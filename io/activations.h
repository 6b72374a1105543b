/* The activations file of a run (docs/design.md 5.2), shared by all ranks through parallel
 * HDF5 (MPI-IO driver):
 *   /inputs   float32 [L+1][N][T][d]  input of block l for every calibration sequence
 *                                     (level L = the last block's output)
 *   attr on /: complete = 1 once capture has finished.
 * The inputs through the quantized blocks (sequential and pipelined modes) are handed on
 * in files of their own, written by one block group each (io/qlevel_file.h).
 * Raw fp32 in contiguous layout, allocated without fill: a 7B run writes 100+ GB here,
 * and MPI-IO writes contiguous slabs at full bandwidth.
 *
 * Writes and attribute updates are collective over the communicator the file was opened
 * on; reads are independent (any rank, any sequences, any time). */
#ifndef NUPES_ACTIVATIONS_H
#define NUPES_ACTIVATIONS_H

#include <mpi.h>

#include "status.h"

typedef struct Activations Activations;

/* Collective. Creates (truncates) path for L blocks, N sequences of T tokens, width d. */
nq_status activations_create(const char *path, MPI_Comm comm, int L, int N, int T, int d,
                             Activations **out);
/* Collective. Opens an existing file and checks its shape against L, N, T, d (a file
 * from another model or calibration set is an NQ_ERR_INPUT error naming the dataset). */
nq_status activations_open(const char *path, MPI_Comm comm, int L, int N, int T, int d,
                           Activations **out);
/* Collective. Closes and frees (NULL is fine). */
nq_status activations_close(Activations *a);

int activations_complete(const Activations *a);
/* Collective: marks capture as finished. */
nq_status activations_set_complete(Activations *a);

/* Collective: every rank writes sequences [first, first + count) of `level` (count may be
 * 0 on some ranks). data: [count][T][d]. */
nq_status activations_write(Activations *a, int level, int first, int count, const float *data);

/* Independent: reads sequences seqs[0..n) of `level` into out [n][T][d]. */
nq_status activations_read(Activations *a, int level, const int *seqs, int n, float *out);

/* Flushes written data to storage (collective), so that a kill after it loses nothing. */
nq_status activations_flush(Activations *a);

#endif
