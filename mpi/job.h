/* The quantize job (DESIGN.md 1 and 4): load, tokenize, capture, reconstruct every block
 * on its group, gather on root, write the checkpoint. Collective over MPI_COMM_WORLD; a
 * single process is the same job with one rank. */
#ifndef NUPES_JOB_H
#define NUPES_JOB_H

#include <limits.h>

#include "activations.h"
#include "config.h"
#include "gather.h"
#include "layout.h"
#include "model_file.h"
#include "progress_log.h"
#include "recon.h"
#include "stop.h"

typedef struct {
    int restart; /* --restart: start over even if the run dir belongs to another config */
    int dry_run; /* --dry-run: print the plan and exit */
} JobOptions;

/* State shared by the stages of one job. */
typedef struct {
    const NupesConfig *cfg;
    Model *model;
    const ModelConfig *c;
    int *tokens; /* [N][T] calibration sequences */
    int N, T;
    Layout layout;
    Activations *act;
    StopAgreement stop;
    Gather gather;
    ReconParams params;
    int switch_step; /* blocks train on the quantized blocks' output from this step on:
                        never (parallel), 0 (sequential), switch * iterations (pipelined) */
    char run_dir[PATH_MAX];
    char fingerprint[40]; /* root: the run's fingerprint (hex), stored in the checkpoint */
    double start_time;
    int blocks_total, blocks_done; /* root's count, for progress */
    double last_status_time;
    int status_is_tty;
    ProgressLog *log; /* root: run.dir/progress.log */
    int threads;      /* threads per rank (parallel_threads) */
    char blas[192];   /* root: "OpenBLAS 0.3.21 ..., kernel Haswell" of every rank */
    char blas_note[320]; /* root: "" or why results are not bit-identical to an uninterrupted
                            run under one kernel (kernels changed on resume, or differ
                            between ranks) */
    struct RunLock *lock; /* root: run.dir/lock, held from before the run dir is touched to the end */
} Job;

/* Root: one line in progress.log (a failure to log is reported once, never fatal). */
void job_log(Job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns the exit status every rank agrees on (NQ_OK, NQ_ERR_INPUT, NQ_ERR_RUNTIME,
 * NQ_STOPPED); the error message is recorded on the ranks that saw it. */
nq_status job_run(const NupesConfig *cfg, const JobOptions *opt);

/* Reconstructs block l on this rank's group. x is the fp32 model's block input until
 * job->switch_step, then the quantized blocks' output (waiting for it to be handed on);
 * the target is the fp32 block output. Resumes from the block's state file when there is
 * a valid one, saves it every checkpoint_interval seconds and on a stop (NQ_STOPPED). On
 * NQ_OK, out (allocated here) holds the result on every rank of the group. */
nq_status block_run(Job *job, int l, BlockResult *out);

/* Root: prints a status line (blocks done, iterations/s, ETA) when one is due. */
void job_print_status(Job *job, double iterations_per_second);

/* Seconds on a monotonic clock. */
double job_now(void);

#endif
