/* How the ranks are arranged (docs/design.md 4): R = G * D ranks form G block groups of D
 * ranks. Each group reconstructs one block at a time, its D ranks splitting every batch and
 * summing gradients; rank 0 is also the root that gathers results. */
#ifndef NUPES_LAYOUT_H
#define NUPES_LAYOUT_H

#include <mpi.h>

#include "status.h"

typedef struct {
    int world_rank, world_size; /* r, R */
    int n_groups;               /* G */
    int data_parallel;          /* D */
    int group;                  /* this rank's group, world_rank / D */
    int group_rank;             /* rank within the group; 0 = the group leader */
    MPI_Comm group_comm;        /* the D ranks of this group (gradient sums) */
} Layout;

/* data_parallel: D >= 1, or 0 for "auto" (the smallest D dividing R with R / D <= blocks).
 * sequential: one group of every rank. Errors (D not dividing R) are NQ_ERR_INPUT. */
nq_status layout_create(int data_parallel, int n_blocks, int sequential, Layout *out);
void layout_free(Layout *l);

/* Blocks of group g when `pending` (sorted, n_pending long) are dealt round-robin:
 * pending[g], pending[g + G], ... Writes them to out and returns their count. */
int layout_blocks_of_group(const Layout *l, int g, const int *pending, int n_pending, int *out);

/* The calibration sequences [first, first + count) that rank r of `ranks` owns. */
void layout_shard(int n_items, int ranks, int r, int *first, int *count);

#endif
