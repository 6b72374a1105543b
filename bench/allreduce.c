/* bench/allreduce: a block group's gradient sum (mpi/group_sum.h, docs/design.md 4).
 *
 *   mpirun -np D bench_allreduce [--weights 202.4] [--repeats 4]
 *
 * The gradient of a block of --weights M quantized weights (fp32; default a 7B block's)
 * summed over the D ranks, each way --repeats times, the first call shown apart (it
 * faults in the buffers that are kept):
 *   whole    one MPI_Allreduce of the whole array, as the job summed it before: the
 *            reference, measured in the same run;
 *   chunked  group_sum, what the job runs: MPI_Allreduce of GROUP_SUM_CHUNK_BYTES at a time.
 * Per way: seconds of the best later call and of the first (slowest rank), the rate per
 * rank as the plan counts it (a ring's 2 (D-1)/D of the array sent and received), and the
 * page faults of a later call on rank 0 (getrusage). The plan's assumed rate within a
 * node (PLAN_SHM_ALLREDUCE_GBS, mpi/plan.h) is printed beside them. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench_util.h"
#include "group_sum.h"
#include "plan.h"

static long minor_faults(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

typedef struct {
    double first, best; /* seconds, slowest rank */
    long faults;        /* rank 0, one later call */
} Way;

static Way measure(float *g, size_t n, int chunked, int repeats) {
    Way w = {0, 1e30, 0};
    for (int r = 0; r <= repeats; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        long const f0 = minor_faults();
        double t = bench_now();
        if (chunked) group_sum(g, n, MPI_FLOAT, MPI_COMM_WORLD);
        else MPI_Allreduce(MPI_IN_PLACE, g, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t = bench_now() - t;
        long const faults = minor_faults() - f0;
        MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (r == 0) w.first = t;
        else if (t < w.best) w.best = t, w.faults = faults;
    }
    return w;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, D;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &D);
    double weights_m = 202.4;
    int repeats = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--weights") && i + 1 < argc) weights_m = atof(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else {
            if (rank == 0) fprintf(stderr, "usage: mpirun -np D bench_allreduce [--weights M] [--repeats R]\n");
            MPI_Finalize();
            return 2;
        }
    }
    size_t const n = (size_t)(weights_m * 1e6);
    if (!(weights_m > 0) || repeats < 1 || n > 2147483647u) {
        if (rank == 0) fprintf(stderr, "bench_allreduce: --weights from 0 to 2147 M, --repeats >= 1\n");
        MPI_Finalize();
        return 2;
    }
    float *g = malloc(n * sizeof *g);
    if (!g) {
        fprintf(stderr, "bench_allreduce: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    for (size_t i = 0; i < n; i++) g[i] = 0.0f; /* the job's gradient is faulted in by then */
    double const bytes = 4.0 * (double)n, counted = 2.0 * (D - 1) / D * bytes;
    if (rank == 0)
        printf("bench_allreduce: %d ranks, a gradient of %.1f M fp32 weights (%.2f GB); %d calls each way "
               "after the first; chunks of %zu MB\n\n"
               "   %-8s %11s %11s %12s %15s\n", D, weights_m, bytes / 1e9, repeats, GROUP_SUM_CHUNK_BYTES >> 20,
               "way", "best, s", "first, s", "GB/s per rank", "faults per call");
    Way const whole = measure(g, n, 0, repeats), chunked = measure(g, n, 1, repeats);
    if (rank == 0) {
        Way const w[2] = {whole, chunked};
        const char *name[2] = {"whole", "chunked"};
        for (int i = 0; i < 2; i++)
            printf("   %-8s %11.3f %11.3f %12.2f %15ld\n", name[i], w[i].best, w[i].first,
                   counted / w[i].best / 1e9, w[i].faults);
        printf("\n   chunked / whole: x%.1f faster; the plan assumes %.1f GB/s per rank within a node "
               "(PLAN_SHM_ALLREDUCE_GBS): %.3f s for this sum\n", whole.best / chunked.best,
               PLAN_SHM_ALLREDUCE_GBS, counted / (PLAN_SHM_ALLREDUCE_GBS * 1e9));
    }
    free(g);
    MPI_Finalize();
    return 0;
}
