/* Quantized activations handed from one block to the next (sequential and pipelined
 * modes, docs/design.md 3.3 and 4): run.dir/qinputs/level-NNNN.h5 holds the input of block l as
 * computed by the finished quantized blocks 0..l-1:
 *   /qinputs dtype [N][T][d]   float32, or fp16 / bf16 (calibration.activation_dtype)
 *   /checksums uint64 [N]      XXH3-64 of each sequence's stored bytes, computed by the
 *                              rank that wrote it
 *   attr on /: dtype = "fp32" | "fp16" | "bf16" (io/act_dtype_h5.h)
 * Every read checks what it reads; qlevel_verify checks a whole level (a resume does
 * before it reuses one). A level without /checksums (older version) is refused.
 * The group that finishes block l - 1 writes level l with collective writes on its own
 * communicator (the other groups are busy with their own blocks), under a temporary name
 * that its first rank renames when every rank's share is on disk: the file exists only
 * when complete, so "the hand-on has arrived" is "the file exists", and a resumed run
 * finds every level that was handed on before the stop. */
#ifndef NUPES_QLEVEL_FILE_H
#define NUPES_QLEVEL_FILE_H

#include <mpi.h>
#include <stddef.h>

#include "float16.h"
#include "status.h"

/* run.dir/qinputs/level-NNNN.h5 (names and temporaries: io/run_dir.h, their owner) */
nq_status qlevel_path(const char *run_dir, int level, char *buf, size_t size);
/* 1 when the level has been handed on (its file exists). */
int qlevel_exists(const char *run_dir, int level);

/* Collective over comm: rank r of comm writes sequences [first, first + count) of the
 * N [T][d] sequences as dtype; the file appears under its final name when all are
 * written. data is the encoding buffer and is left holding the values stored (what a
 * read returns). */
nq_status qlevel_write(const char *run_dir, int level, MPI_Comm comm, ActDtype dtype, int N, int T, int d,
                       int first, int count, float *data);

typedef struct QLevelReader QLevelReader;
/* Opens a complete level for independent reads; checks its dtype and shape. */
nq_status qlevel_open(const char *run_dir, int level, ActDtype dtype, int N, int T, int d, QLevelReader **out);
/* out [n][T][d] = sequences seqs[0..n). */
nq_status qlevel_read(QLevelReader *r, const int *seqs, int n, float *out);
void qlevel_close(QLevelReader *r); /* NULL is fine */

/* Reads every sequence of a level and checks it: NQ_ERR_INPUT naming the file and the
 * first damaged sequence. */
nq_status qlevel_verify(const char *run_dir, int level, ActDtype dtype, int N, int T, int d);

#endif
