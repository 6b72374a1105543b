/* Quantized activations handed from one block to the next (sequential and pipelined
 * modes, docs/design.md 3.3 and 4): run.dir/qinputs/level-NNNN.h5 holds the input of block l as
 * computed by the finished quantized blocks 0..l-1:
 *   /qinputs float32 [N][T][d]
 * The group that finishes block l - 1 writes level l with collective writes on its own
 * communicator (the other groups are busy with their own blocks), under a temporary name
 * that its first rank renames when every rank's share is on disk: the file exists only
 * when complete, so "the hand-on has arrived" is "the file exists", and a resumed run
 * finds every level that was handed on before the stop. */
#ifndef NUPES_QLEVEL_FILE_H
#define NUPES_QLEVEL_FILE_H

#include <mpi.h>
#include <stddef.h>

#include "status.h"

/* run.dir/qinputs/level-NNNN.h5 */
nq_status qlevel_path(const char *run_dir, int level, char *buf, size_t size);
/* 1 when the level has been handed on (its file exists). */
int qlevel_exists(const char *run_dir, int level);

/* Collective over comm: rank r of comm writes sequences [first, first + count) of the
 * N [T][d] sequences; the file appears under its final name when all are written. */
nq_status qlevel_write(const char *run_dir, int level, MPI_Comm comm, int N, int T, int d,
                       int first, int count, const float *data);

typedef struct QLevelReader QLevelReader;
/* Opens a complete level for independent reads; checks its shape. */
nq_status qlevel_open(const char *run_dir, int level, int N, int T, int d, QLevelReader **out);
/* out [n][T][d] = sequences seqs[0..n). */
nq_status qlevel_read(QLevelReader *r, const int *seqs, int n, float *out);
void qlevel_close(QLevelReader *r); /* NULL is fine */

#endif
