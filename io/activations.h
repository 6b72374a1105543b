/* The activations file of a run (DESIGN.md 5.2), shared by all ranks through parallel
 * HDF5 (MPI-IO driver):
 *   /inputs   float32 [L+1][N][T][d]  input of block l for every calibration sequence
 *                                     (level L = the last block's output)
 *   /qinputs  float32 [L+1][N][T][d]  the same through the quantized blocks (sequential and
 *                                     pipelined modes; level 0 is not stored: it is /inputs/0)
 *   attrs on /: complete = 1 once capture has finished; qlevels = number of /qinputs levels
 *   written so far (level l is valid when l < qlevels; level 0 always).
 * Raw fp32 in contiguous layout, allocated without fill: a 7B run writes 100+ GB here,
 * and MPI-IO writes contiguous slabs at full bandwidth.
 *
 * Writes and attribute updates are collective over the communicator the file was opened
 * on; reads are independent (any rank, any sequences, any time). */
#ifndef NUPES_ACTIVATIONS_H
#define NUPES_ACTIVATIONS_H

#include <mpi.h>

#include "status.h"

typedef enum { ACT_INPUTS, ACT_QINPUTS } ActivationSet;

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
int activations_qlevels(const Activations *a);
/* Collective: set the attributes (same value on every rank). */
nq_status activations_set_complete(Activations *a);
nq_status activations_set_qlevels(Activations *a, int qlevels);

/* Collective: every rank writes sequences [first, first + count) of `level` (count may be
 * 0 on some ranks). data: [count][T][d]. */
nq_status activations_write(Activations *a, ActivationSet set, int level, int first, int count,
                            const float *data);

/* Independent: reads sequences seqs[0..n) of `level` into out [n][T][d]. For ACT_QINPUTS,
 * level 0 reads /inputs. */
nq_status activations_read(Activations *a, ActivationSet set, int level, const int *seqs, int n,
                           float *out);

/* Flushes written data to storage (collective), so that a kill after it loses nothing. */
nq_status activations_flush(Activations *a);

#endif
