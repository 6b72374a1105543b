/* Checked MPI calls. A failed MPI call is unrecoverable for the job: the message names the
 * rank, the call and MPI's own error string, then MPI_Abort ends every rank (never a hang).
 * This is the only place that aborts. */
#ifndef NUPES_MPI_CHECK_H
#define NUPES_MPI_CHECK_H

#include <mpi.h>

#define MPI_CHECK(call) mpi_check_((call), #call, __FILE__, __LINE__)

void mpi_check_(int rc, const char *call, const char *file, int line);

#include "status.h"

/* The most severe status over the ranks of comm, every rank getting it: a failure
 * (runtime over input) outranks a stop, which outranks success, so that an error on one
 * rank is never reported as "stopped, resumable" because another rank was signalled. */
nq_status mpi_worst_status(nq_status local, MPI_Comm comm);

/* Prints "nupes-mpi: rank R: message" to stderr and aborts the job with exit code `code`. */
void mpi_abort_job(int code, const char *message) __attribute__((noreturn));

#endif
