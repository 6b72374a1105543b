/* Evaluation under MPI (docs/design.md 7.1): every rank evaluates its share of the windows and
 * root gathers the per-position values. With one process both are no-ops. */
#ifndef NUPES_EVAL_SHARD_H
#define NUPES_EVAL_SHARD_H

#include <mpi.h>

#include "eval_metrics.h"

/* 1 when started by mpirun or srun (their environment says so): only then does eval
 * initialise MPI, so that a plain process stays a plain process. */
int eval_launched_by_mpi(void);

/* This rank's windows [first, first + count) of n (all of them without MPI). */
void eval_shard(int n_windows, int *first, int *count);

/* Collective: root receives every rank's records concatenated in rank order, which is
 * window order (eval_shard gives rank r the r-th contiguous share), into *all; the other
 * ranks get empty records. Without MPI, *all takes over local's arrays (local is left
 * empty). *seconds becomes the slowest rank's. */
nq_status eval_records_gather(EvalRecords *local, EvalRecords *all, double *seconds);

/* Collective: the worst status over the ranks (a failure on any rank fails all), so that
 * no rank walks into a collective the others have left. */
nq_status eval_agree(nq_status st);

/* MPI_COMM_WORLD under MPI, MPI_COMM_NULL for a plain process. */
MPI_Comm eval_comm(void);

int eval_rank(void);

/* Collective: root's value on every rank (a decision made once, e.g. "the base exists"). */
int eval_root_value(int value);

#endif
