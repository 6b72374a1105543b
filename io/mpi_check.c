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

void mpi_errors_return(void) {
    /* If even this fails, MPI is unusable: abort with the fatal handler still in place. */
    if (MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN) != MPI_SUCCESS ||
        MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN) != MPI_SUCCESS)
        mpi_abort_job(3, "cannot set MPI_ERRORS_RETURN on MPI_COMM_WORLD");
}

static int severity(nq_status s) {
    switch (s) {
    case NQ_OK: return 0;
    case NQ_STOPPED: return 1;
    case NQ_ERR_INPUT: return 2;
    default: return 3;
    }
}

nq_status mpi_worst_status(nq_status local, MPI_Comm comm) {
    static const nq_status by_severity[] = {NQ_OK, NQ_STOPPED, NQ_ERR_INPUT, NQ_ERR_RUNTIME};
    int mine = severity(local), worst = 0;
    MPI_CHECK(MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, comm));
    return by_severity[worst];
}
