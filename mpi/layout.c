#include "layout.h"

#include "mpi_check.h"

nq_status layout_create(int data_parallel, int n_blocks, int sequential, Layout *out) {
    Layout l = {0};
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &l.world_rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &l.world_size));
    int const R = l.world_size;
    if (sequential) {
        l.data_parallel = R;
    } else if (data_parallel == 0) {
        l.data_parallel = R;
        for (int D = 1; D <= R; D++) {
            if (R % D == 0 && R / D <= n_blocks) {
                l.data_parallel = D;
                break;
            }
        }
    } else if (R % data_parallel != 0) {
        return nq_fail(NQ_ERR_INPUT, "mpi.data_parallel = %d does not divide the %d ranks of this job",
                       data_parallel, R);
    } else {
        l.data_parallel = data_parallel;
    }
    l.n_groups = R / l.data_parallel;
    l.group = l.world_rank / l.data_parallel;
    l.group_rank = l.world_rank % l.data_parallel;
    MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, l.group, l.group_rank, &l.group_comm));
    *out = l;
    return NQ_OK;
}

void layout_free(Layout *l) {
    /* n_groups is 0 in a Layout that layout_create never filled (a zeroed struct's
     * group_comm is not MPI_COMM_NULL in Open MPI, and freeing it aborts the job). */
    if (l->n_groups > 0 && l->group_comm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_free(&l->group_comm));
}

int layout_blocks_of_group(const Layout *l, int g, const int *pending, int n_pending, int *out) {
    int n = 0;
    for (int i = g; i < n_pending; i += l->n_groups) out[n++] = pending[i];
    return n;
}

void layout_shard(int n_items, int ranks, int r, int *first, int *count) {
    long const lo = (long)n_items * r / ranks, hi = (long)n_items * (r + 1) / ranks;
    *first = (int)lo;
    *count = (int)(hi - lo);
}
