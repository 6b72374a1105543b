#include "group_sum.h"

#include "mpi_check.h"

void group_sum(void *x, size_t n, MPI_Datatype type, MPI_Comm comm) {
    int elem = 0;
    MPI_CHECK(MPI_Type_size(type, &elem));
    size_t const chunk = GROUP_SUM_CHUNK_BYTES / (size_t)elem;
    for (size_t off = 0; off < n; off += chunk) {
        int const count = (int)(n - off < chunk ? n - off : chunk);
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, (char *)x + off * (size_t)elem, count, type, MPI_SUM, comm));
    }
}
