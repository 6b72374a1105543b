/* group_sum_check: mpi/group_sum.c on real ranks, against independent references.
 *
 *   mpiexec -np D group_sum_check
 *
 * For lengths 0, 1, one element short of a chunk, a chunk, and two chunks + 7 (the
 * chunking's edges; GROUP_SUM_CHUNK_BYTES), in float and double:
 *   exact     rank r holds (i % 1000 + 1) * (r + 1), integers every float holds exactly:
 *             the sum is (i % 1000 + 1) * D (D + 1) / 2, whatever the order;
 *   whole     random values (a seed per rank): on 2 ranks the sum is a + b, which no
 *             order changes, so it must equal one MPI_Allreduce of the whole array bit
 *             for bit; on more ranks, the same call twice gives the same bits.
 * Prints one line per check and "N passed, M failed"; exits 1 on any failure. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group_sum.h"
#include "mpi_check.h"
#include "rng.h"

static int passed, failed;

static void check(int rank, int ok, const char *what, size_t n) {
    int all = ok;
    MPI_CHECK(MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (rank == 0) printf("  %s %s, n = %zu\n", all ? "ok  " : "FAIL", what, n);
    all ? passed++ : failed++;
}

static void fill_exact(void *x, size_t n, int is_double, int rank) {
    for (size_t i = 0; i < n; i++) {
        double const v = (double)(i % 1000 + 1) * (rank + 1);
        if (is_double) ((double *)x)[i] = v;
        else ((float *)x)[i] = (float)v;
    }
}

static void fill_random(void *x, size_t n, int is_double, int rank) {
    Rng rng;
    rng_seed(&rng, 77, (uint64_t)rank);
    for (size_t i = 0; i < n; i++) {
        double const v = rng_uniform_double(&rng) * 2.0 - 1.0;
        if (is_double) ((double *)x)[i] = v;
        else ((float *)x)[i] = (float)v;
    }
}

static void check_length(int rank, int D, size_t n, int is_double) {
    MPI_Datatype const type = is_double ? MPI_DOUBLE : MPI_FLOAT;
    size_t const elem = is_double ? sizeof(double) : sizeof(float);
    char *x = malloc(n * elem + 1), *ref = malloc(n * elem + 1);
    if (!x || !ref) MPI_Abort(MPI_COMM_WORLD, 3);
    char what[96];

    fill_exact(x, n, is_double, rank);
    group_sum(x, n, type, MPI_COMM_WORLD);
    int ok = 1;
    double const ranks_sum = (double)D * (D + 1) / 2;
    for (size_t i = 0; i < n && ok; i++) {
        double const got = is_double ? ((double *)x)[i] : ((float *)x)[i];
        ok = got == (double)(i % 1000 + 1) * ranks_sum;
    }
    snprintf(what, sizeof what, "%s exact integer sums", is_double ? "double" : "float");
    check(rank, ok, what, n);

    fill_random(x, n, is_double, rank);
    memcpy(ref, x, n * elem);
    group_sum(x, n, type, MPI_COMM_WORLD);
    if (D == 2) {
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, ref, (int)n, type, MPI_SUM, MPI_COMM_WORLD));
        snprintf(what, sizeof what, "%s random values: bit for bit one whole MPI_Allreduce (2 ranks)",
                 is_double ? "double" : "float");
    } else {
        group_sum(ref, n, type, MPI_COMM_WORLD);
        snprintf(what, sizeof what, "%s random values: the same bits on a second call",
                 is_double ? "double" : "float");
    }
    check(rank, memcmp(x, ref, n * elem) == 0, what, n);
    free(x);
    free(ref);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    mpi_errors_return();
    int rank = 0, D = 1;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &D));
    if (rank == 0) printf("group_sum on %d ranks, chunks of %zu bytes\n", D, GROUP_SUM_CHUNK_BYTES);
    for (int is_double = 0; is_double <= 1; is_double++) {
        size_t const chunk = GROUP_SUM_CHUNK_BYTES / (is_double ? sizeof(double) : sizeof(float));
        size_t const lengths[] = {0, 1, chunk - 1, chunk, 2 * chunk + 7};
        for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++) check_length(rank, D, lengths[k], is_double);
    }
    if (rank == 0) printf("%d passed, %d failed\n", passed, failed);
    MPI_Finalize();
    return failed ? 1 : 0;
}
