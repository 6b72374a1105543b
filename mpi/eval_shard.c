#include "eval_shard.h"

#include <stdint.h>
#include <stdlib.h>

#include "layout.h"
#include "mpi_check.h"

int eval_launched_by_mpi(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

static int mpi_active(void) {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    return initialized && !finalized;
}

int eval_rank(void) {
    int rank = 0;
    if (mpi_active()) MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    return rank;
}

void eval_shard(int n_windows, int *first, int *count) {
    int size = 1;
    if (mpi_active()) MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    layout_shard(n_windows, size, eval_rank(), first, count);
}

void eval_totals_reduce(EvalTotals *acc, double *seconds) {
    if (!mpi_active()) return;
    double sums[3] = {acc->nll_sum, acc->nll_sum_q, acc->kl_sum};
    uint64_t counts[3] = {acc->n_predicted, acc->n_agree, acc->n_positions};
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, sums, 3, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, counts, 3, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD));
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
    acc->nll_sum = sums[0];
    acc->nll_sum_q = sums[1];
    acc->kl_sum = sums[2];
    acc->n_predicted = counts[0];
    acc->n_agree = counts[1];
    acc->n_positions = counts[2];
}
