/* Evaluation under MPI (DESIGN.md 7): every rank evaluates its share of the windows and
 * the totals are summed on every rank. With one process both are no-ops. */
#ifndef NUPES_EVAL_SHARD_H
#define NUPES_EVAL_SHARD_H

#include "eval_metrics.h"

/* 1 when started by mpirun or srun (their environment says so): only then does eval
 * initialise MPI, so that a plain process stays a plain process. */
int eval_launched_by_mpi(void);

/* This rank's windows [first, first + count) of n (all of them without MPI). */
void eval_shard(int n_windows, int *first, int *count);

/* Sums acc over all ranks (in place); *seconds becomes the slowest rank's. */
void eval_totals_reduce(EvalTotals *acc, double *seconds);

int eval_rank(void);

#endif
