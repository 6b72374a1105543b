#include "eval_shard.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

MPI_Comm eval_comm(void) { return mpi_active() ? MPI_COMM_WORLD : MPI_COMM_NULL; }

nq_status eval_agree(nq_status st) {
    if (!mpi_active()) return st;
    return mpi_worst_status(st, MPI_COMM_WORLD);
}

/* Root: displs[r] from counts[r]; refuses a total beyond an int (MPI counts are ints). */
static nq_status gather_displacements(const int *counts, int size, int *displs, size_t *total) {
    size_t sum = 0;
    for (int r = 0; r < size; r++) {
        displs[r] = (int)sum;
        sum += (size_t)counts[r];
        if (sum > INT_MAX) return nq_fail(NQ_ERR_INPUT, "eval: more than %d positions: use fewer --sequences", INT_MAX);
    }
    *total = sum;
    return NQ_OK;
}

nq_status eval_records_gather(EvalRecords *local, EvalRecords *all, double *seconds) {
    memset(all, 0, sizeof *all);
    if (!mpi_active()) {
        *all = *local;
        memset(local, 0, sizeof *local);
        return NQ_OK;
    }
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
    int size = 1;
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    int const root = eval_rank() == 0, quantized = local->kl != NULL;
    int *pc = calloc((size_t)size, sizeof *pc), *pd = calloc((size_t)size, sizeof *pd);
    int *qc = calloc((size_t)size, sizeof *qc), *qd = calloc((size_t)size, sizeof *qd);
    size_t n_pred = 0, n_pos = 0;
    nq_status st = pc && pd && qc && qd ? NQ_OK : nq_fail(NQ_ERR_RUNTIME, "out of memory for the eval gather");
    st = eval_agree(st);
    /* A rank's count fits an int when the total does; the total is checked on root. */
    int const mine[2] = {local->n_predicted > INT_MAX ? INT_MAX : (int)local->n_predicted,
                         local->n_positions > INT_MAX ? INT_MAX : (int)local->n_positions};
    if (st == NQ_OK) {
        MPI_CHECK(MPI_Gather(&mine[0], 1, MPI_INT, pc, 1, MPI_INT, 0, MPI_COMM_WORLD));
        MPI_CHECK(MPI_Gather(&mine[1], 1, MPI_INT, qc, 1, MPI_INT, 0, MPI_COMM_WORLD));
        if (root) st = gather_displacements(pc, size, pd, &n_pred);
        if (root && st == NQ_OK) st = gather_displacements(qc, size, qd, &n_pos);
    }
    if (st == NQ_OK && root) {
        /* eval_records_alloc sizes by windows: one "window" of n_pred + 1 tokens holds
         * n_pred predictions; the positions are allocated separately below. */
        st = eval_records_alloc(all, 1, (int)n_pred + 1, quantized);
        if (st == NQ_OK && quantized) {
            free(all->kl);
            free(all->agree);
            all->kl = nq_calloc(n_pos ? n_pos : 1, sizeof *all->kl, "per-position KL");
            all->agree = nq_calloc(n_pos ? n_pos : 1, 1, "per-position top-1 agreement");
            if (!all->kl || !all->agree) st = NQ_ERR_RUNTIME;
        }
        all->n_predicted = all->cap_predicted = n_pred;
        all->n_positions = all->cap_positions = n_pos;
    }
    st = eval_agree(st);
    if (st == NQ_OK) {
        int const np = mine[0], nq = mine[1];
        MPI_CHECK(MPI_Gatherv(local->nll, np, MPI_DOUBLE, all->nll, pc, pd, MPI_DOUBLE, 0, MPI_COMM_WORLD));
        if (quantized) {
            MPI_CHECK(MPI_Gatherv(local->nll_q, np, MPI_DOUBLE, all->nll_q, pc, pd, MPI_DOUBLE, 0, MPI_COMM_WORLD));
            MPI_CHECK(MPI_Gatherv(local->kl, nq, MPI_DOUBLE, all->kl, qc, qd, MPI_DOUBLE, 0, MPI_COMM_WORLD));
            MPI_CHECK(MPI_Gatherv(local->agree, nq, MPI_UNSIGNED_CHAR, all->agree, qc, qd, MPI_UNSIGNED_CHAR, 0,
                                  MPI_COMM_WORLD));
        }
    }
    if (st != NQ_OK) eval_records_free(all);
    free(pc);
    free(pd);
    free(qc);
    free(qd);
    return st;
}

int eval_root_value(int value) {
    if (mpi_active()) MPI_CHECK(MPI_Bcast(&value, 1, MPI_INT, 0, MPI_COMM_WORLD));
    return value;
}
