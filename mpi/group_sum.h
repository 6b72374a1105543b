/* The gradient sum of a block group (docs/design.md 4): every rank's array replaced by the
 * element-wise sum over the group's ranks, in place. */
#ifndef NUPES_GROUP_SUM_H
#define NUPES_GROUP_SUM_H

#include <mpi.h>
#include <stddef.h>

/* x[0..n) of `type` (MPI_FLOAT, MPI_DOUBLE) summed over comm by MPI_Allreduce,
 * GROUP_SUM_CHUNK_BYTES at a time. The chunks are the same on every step and every
 * resume, so each element is summed in the same order every time for a group of the same
 * size (2 ranks: exactly the whole-array sum, a + b). A failed call aborts the job
 * (io/mpi_check.h). */
void group_sum(void *x, size_t n, MPI_Datatype type, MPI_Comm comm);

/* Open MPI reduces into a temporary buffer as large as the message. glibc maps any block
 * over 32 MB (its largest mmap threshold) fresh and unmaps it on free, so a 0.81 GB
 * gradient summed whole faulted 0.4 GB of new pages in on every step: 1.9-2.7 s per sum
 * on the VM this was measured on, where 4 MB chunks take 0.08-0.14 s (bench/allreduce). */
#define GROUP_SUM_CHUNK_BYTES ((size_t)4 << 20)

#endif
