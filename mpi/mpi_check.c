#include "mpi_check.h"

#include <stdio.h>

void mpi_abort_job(int code, const char *message) {
    int rank = -1, initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    fprintf(stderr, "nupes-mpi: rank %d: %s\n", rank, message);
    fflush(stderr);
    if (initialized) MPI_Abort(MPI_COMM_WORLD, code);
    _Exit(code);
}

void mpi_check_(int rc, const char *call, const char *file, int line) {
    if (rc == MPI_SUCCESS) return;
    char reason[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, reason, &len) != MPI_SUCCESS) snprintf(reason, sizeof reason, "code %d", rc);
    char message[MPI_MAX_ERROR_STRING + 512];
    snprintf(message, sizeof message, "%s failed at %s:%d: %s", call, file, line, reason);
    mpi_abort_job(3, message);
}
