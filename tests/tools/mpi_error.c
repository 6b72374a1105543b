/* mpi_error [fatal]
 *
 * Makes a real MPI error: an MPI_Send to a rank that does not exist, on a communicator
 * split from MPI_COMM_WORLD (as the job's group communicators are), through MPI_CHECK.
 * With mpi_errors_return() set up after MPI_Init, as nupes-mpi does, MPI returns the error
 * and MPI_CHECK's path runs: it prints "nupes-mpi: rank R: MPI_Send(...) failed at FILE:LINE:
 * <MPI's reason>" and aborts every rank with exit code 3. With "fatal", the handler is
 * left at MPI's default, to show the difference (MPI aborts inside the call itself). */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "mpi_check.h"

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    if (!(argc > 1 && strcmp(argv[1], "fatal") == 0)) mpi_errors_return();
    int rank = 0, size = 1;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    MPI_Comm group;
    MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, 0, rank, &group));
    int const payload = 42;
    if (rank == 0) MPI_CHECK(MPI_Send(&payload, 1, MPI_INT, size + 1, 0, group)); /* no such rank */
    MPI_CHECK(MPI_Barrier(group));
    printf("rank %d: the invalid send returned without an error\n", rank);
    MPI_Comm_free(&group);
    MPI_Finalize();
    return 0;
}
