/* nupes-mpi [quantize] --config FILE [--set key=value]... [--restart]
 *           [--dry-run [--nodes N] [--ranks-per-node R] [--threads T]] */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atomic_file.h"
#include "commands.h"
#include "config.h"
#include "h5util.h"
#include "job.h"
#include "mpi_check.h"
#include "plan.h"
#include "status.h"

#define MAX_OVERRIDES 64

static void print_help(FILE *out) {
    fprintf(out,
            "usage: nupes-mpi [quantize] --config FILE [--set key=value]... [--restart]\n"
            "                 [--dry-run [--nodes N] [--ranks-per-node R] [--threads T]]\n\n"
            "Quantizes the model named in FILE (TOML) with NUPES, RTN or PowerQuant and writes one\n"
            "zstd-compressed HDF5 checkpoint. Run it as one process, with mpirun -np N, or with srun.\n\n"
            "  --config FILE      the job configuration (see configs/stories260K.toml)\n"
            "  --set key=value    override a config key, e.g. --set quantization.bits=3 (repeatable)\n"
            "  --restart          start over even if run.dir holds a run of another configuration\n"
            "  --dry-run          print the plan and exit without writing anything: memory per\n"
            "                     rank and per node, disk in run.dir per kind of file, idle\n"
            "                     ranks, time of each phase, and a suggested sbatch line. Needs\n"
            "                     only the model's config.json, or [model.shape] in the config\n"
            "  --nodes N          with --dry-run: plan for N nodes (default 1) ...\n"
            "  --ranks-per-node R ... of R ranks each (default 1), whatever this launch's size;\n"
            "                     without either, the plan is for the ranks of this launch\n"
            "  --threads T        with --dry-run: OpenBLAS threads per rank, i.e. sbatch's\n"
            "                     --cpus-per-task (default $OPENBLAS_NUM_THREADS, else 1)\n"
            "  -h, --help         this help\n\n"
            "A stopped job (SIGTERM, SIGINT, SIGUSR1) saves its state and exits 75: run the same\n"
            "command again to resume. Exit codes: 0 done, 2 bad input, 3 runtime failure, 75 stopped.\n"
            "mpirun exits 1 when it is itself sent SIGTERM or SIGINT, even when the ranks exit 75:\n"
            "with NUPES_EXIT_FILE=PATH in the environment, rank 0 writes its exit code to PATH.\n");
}

typedef struct {
    const char *config;
    const char *overrides[MAX_OVERRIDES];
    int n_overrides;
    JobOptions job;
    PlanCluster cluster; /* --nodes, --ranks-per-node, --threads (0 = not given) */
    int dry_run;         /* --dry-run: print the plan (mpi/plan.h) instead of running the job */
    int help;
} QuantizeArgs;

/* A positive integer option value, at most 1000000. */
static nq_status parse_count(const char *opt, const char *value, int *out) {
    char *end = NULL;
    long const v = strtol(value, &end, 10);
    if (end == value || *end != '\0' || v < 1 || v > 1000000)
        return nq_fail(NQ_ERR_INPUT, "%s %s: expected a positive integer", opt, value);
    *out = (int)v;
    return NQ_OK;
}

static nq_status parse_args(int argc, char **argv, QuantizeArgs *a) {
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            a->help = 1;
        } else if (strcmp(arg, "--restart") == 0) {
            a->job.restart = 1;
        } else if (strcmp(arg, "--dry-run") == 0) {
            a->dry_run = 1;
        } else if (strcmp(arg, "--nodes") == 0 || strcmp(arg, "--ranks-per-node") == 0 ||
                   strcmp(arg, "--threads") == 0) {
            if (i + 1 >= argc) return nq_fail(NQ_ERR_INPUT, "%s needs a value", arg);
            int *field = arg[2] == 'n' ? &a->cluster.nodes : arg[2] == 'r' ? &a->cluster.ranks_per_node : &a->cluster.threads;
            nq_status const st = parse_count(arg, argv[++i], field);
            if (st != NQ_OK) return st;
        } else if (strcmp(arg, "--config") == 0 || strcmp(arg, "--set") == 0) {
            if (i + 1 >= argc) return nq_fail(NQ_ERR_INPUT, "%s needs a value", arg);
            if (arg[2] == 'c') {
                a->config = argv[++i];
            } else if (a->n_overrides == MAX_OVERRIDES) {
                return nq_fail(NQ_ERR_INPUT, "more than %d --set options", MAX_OVERRIDES);
            } else {
                a->overrides[a->n_overrides++] = argv[++i];
            }
        } else {
            return nq_fail(NQ_ERR_INPUT, "unknown option '%s' (run 'nupes-mpi quantize --help')", arg);
        }
    }
    if (!a->help && !a->config) return nq_fail(NQ_ERR_INPUT, "--config FILE is required (run 'nupes-mpi --help')");
    if (!a->help && !a->dry_run && (a->cluster.nodes || a->cluster.ranks_per_node || a->cluster.threads))
        return nq_fail(NQ_ERR_INPUT, "--nodes, --ranks-per-node and --threads plan a cluster with --dry-run; a job "
                       "takes its ranks from mpirun or srun and its threads from OPENBLAS_NUM_THREADS");
    return NQ_OK;
}

static nq_status load_config(const QuantizeArgs *a, NupesConfig *cfg) {
    nq_status st = config_load(a->config, cfg);
    for (int i = 0; i < a->n_overrides && st == NQ_OK; i++) st = config_set(cfg, a->overrides[i]);
    if (st == NQ_OK) st = config_validate(cfg);
    return st;
}

/* $NUPES_EXIT_FILE, when set, receives root's exit code ("75\n"): mpirun (Open MPI 4.1)
 * exits 1 when it is itself sent SIGTERM or SIGINT (Ctrl-C), whatever its ranks return,
 * although they saved their state and exited 75; a requeue script reads the code here
 * (slurm/nupes.sbatch does). Written before MPI_Finalize, atomically. */
static void write_exit_file(nq_status st) {
    const char *path = getenv("NUPES_EXIT_FILE");
    if (!path || !path[0]) return;
    char text[16];
    int const n = snprintf(text, sizeof text, "%d\n", (int)st);
    if (atomic_write_file(path, text, (size_t)n) != NQ_OK) {
        fprintf(stderr, "nupes-mpi: warning: NUPES_EXIT_FILE: %s\n", nq_last_error());
        nq_clear_error();
    }
}

/* --dry-run: root prints the plan (mpi/plan.h) for the named cluster or this launch's
 * size; every rank returns root's status. Every rank probes this machine beside root, as
 * the job's ranks will share it, then waits for root asleep, not in a busy-polling
 * MPI_Bcast: a rank spinning while root alone probed had moved the sgemm probe from 39 to
 * 27 GFLOP/s on one dry run and not on the next. */
static nq_status dry_run(const NupesConfig *cfg, const PlanCluster *cluster, int rank) {
    int size = 1;
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    int st = h5u_init();
    if (st == NQ_OK) st = plan_dry_run_cluster(cfg, size, cluster, rank == 0 ? stdout : NULL);
    if (rank != 0) nq_clear_error(); /* root's status is the one returned, its error printed */
    MPI_Request request;
    MPI_CHECK(MPI_Ibcast(&st, 1, MPI_INT, 0, MPI_COMM_WORLD, &request));
    struct timespec const pause = {0, 10 * 1000 * 1000}; /* 10 ms: a plan takes seconds */
    for (int done = 0;;) {
        MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
        if (done) break;
        nanosleep(&pause, NULL);
    }
    return (nq_status)st;
}

int cmd_quantize(int argc, char **argv) {
    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "nupes-mpi: MPI_Init failed\n");
        return NQ_ERR_RUNTIME;
    }
    mpi_errors_return();
    int rank = 0;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    QuantizeArgs args;
    NupesConfig *cfg = calloc(1, sizeof *cfg);
    nq_status st = cfg ? parse_args(argc, argv, &args) : NQ_ERR_RUNTIME;
    if (st == NQ_OK && args.help) {
        if (rank == 0) print_help(stdout);
    } else {
        if (st == NQ_OK) st = load_config(&args, cfg);
        if (st == NQ_OK && args.dry_run) st = dry_run(cfg, &args.cluster, rank);
        else if (st == NQ_OK) st = job_run(cfg, &args.job);
        if (st != NQ_OK && st != NQ_STOPPED && rank == 0)
            fprintf(stderr, "nupes-mpi: error: %s\n", nq_last_error());
    }
    free(cfg);
    if (rank == 0) write_exit_file(st);
    MPI_Finalize();
    return st;
}
