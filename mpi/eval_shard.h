/* Evaluation under MPI (DESIGN.md 7): every rank evaluates its share of the windows and
 * the totals are summed on every rank. With one process both are no-ops. */
#ifndef NUPES_EVAL_SHARD_H
#define NUPES_EVAL_SHARD_H

#include "eval_metrics.h"

/* This rank's windows [first, first + count) of n. */
void eval_shard(int n_windows, int *first, int *count);

/* Sums acc over all ranks (in place); *seconds becomes the slowest rank's. */
void eval_totals_reduce(EvalTotals *acc, double *seconds);

int eval_rank(void);

#endif
