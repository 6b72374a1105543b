/* The state one quantize job's stages share (job.c, schedule.c, block_run.c), apart from
 * the entry point (job.h) and the block reconstruction (block_run.h), so that neither
 * includes the other. */
#ifndef NUPES_JOB_CONTEXT_H
#define NUPES_JOB_CONTEXT_H

#include <limits.h>

#include "activations.h"
#include "config.h"
#include "gather.h"
#include "layout.h"
#include "model_file.h"
#include "progress_log.h"
#include "recon.h"
#include "stop.h"

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

/* Root: one line in progress.log (a failure to log is reported once, never fatal). */
void job_log(Job *job, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Root: prints a status line (blocks done, iterations/s, ETA) when one is due. */
void job_print_status(Job *job, double iterations_per_second);

/* The rate of a status line: "12.3 it/s", or "45.6 s/it" below one iteration per second
 * (a 7B block's iteration takes seconds to minutes: "0.0 it/s" said nothing); "- it/s"
 * when no iteration has been timed yet. */
void job_format_rate(char *out, size_t size, double iterations_per_second);

/* Seconds on a monotonic clock. */
double job_now(void);

#endif
