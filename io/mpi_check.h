/* Checked MPI calls. A failed MPI call is unrecoverable for the job: the message names the
 * rank, the call and MPI's own error string, then MPI_Abort ends every rank (never a hang).
 * This is the only place that aborts. MPI's default error handler (MPI_ERRORS_ARE_FATAL)
 * would abort inside the failing call before MPI_CHECK sees its return code: every
 * program calls mpi_errors_return() right after MPI_Init, so that the path is live. */
#ifndef NUPES_MPI_CHECK_H
#define NUPES_MPI_CHECK_H

#include <mpi.h>

#define MPI_CHECK(call) mpi_check_((call), #call, __FILE__, __LINE__)

void mpi_check_(int rc, const char *call, const char *file, int line);

/* Sets MPI_ERRORS_RETURN on MPI_COMM_WORLD and MPI_COMM_SELF (every communicator made
 * from them later, by split or dup, inherits it; files opened with MPI-IO return errors
 * by default). Call once after MPI_Init. */
void mpi_errors_return(void);

#include "status.h"

/* The most severe status over the ranks of comm, every rank getting it: a failure
 * (runtime over input) outranks a stop, which outranks success, so that an error on one
 * rank is never reported as "stopped, resumable" because another rank was signalled. */
nq_status mpi_worst_status(nq_status local, MPI_Comm comm);

/* Prints "nupes-mpi: rank R: message" to stderr and aborts the job with exit code `code`. */
void mpi_abort_job(int code, const char *message) __attribute__((noreturn));

#endif
