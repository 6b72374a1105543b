/* The run directory (docs/design.md 5.2, 6): what makes a job resumable.
 *
 *   lock                   the job's lock, held by root for the job's life (io/run_lock.h)
 *   lock.holder            "host H pid P started T" of the job that holds / held it
 *   run.toml               resolved config, [blas] and [fingerprint] tables (written once)
 *   activations.h5.partial the capture in progress: levels 0..k-1 complete (its attribute
 *                          levels_done = k), reused by a resume (io/activations.h)
 *   activations.h5         the complete capture: the partial file renamed when every
 *                          level is durable (exists = complete)
 *   state/block-0007.h5    in-progress optimiser state of block 7 (io/state_file.h)
 *   done/block-0007.h5     completed result of block 7 (io/block_file.h)
 *   qinputs/level-0003.h5  hand-on: the input of block 3 through quantized blocks 0..2
 *                          (io/qlevel_file.h); written as qinputs/.level-0003.h5.tmp
 *   progress.log           one line per event (io/progress_log.h)
 * Every other file is written as ".<name>.tmp.<pid>" and renamed (io/atomic_file.h).
 *
 * This file is the one owner of that layout: the names, what --restart removes and which
 * temporaries a resume sweeps. run_dir_prepare and run_dir_scan are for root only, and
 * only while it holds the lock; the path helpers are for anyone. */
#ifndef NUPES_RUN_DIR_H
#define NUPES_RUN_DIR_H

#include <stddef.h>

#include "fingerprint.h"
#include "status.h"

/* What run_dir_prepare did: both 0 for a new (or empty) directory. */
typedef struct {
    int resumed;   /* run.toml with the same fingerprint: nothing written or removed */
    int restarted; /* --restart: our files were removed and run.toml written anew */
} RunDirStatus;

/* Creates dir, dir/state, dir/done and dir/qinputs and writes dir/run.toml (config_toml_resolved, then
 * the [fingerprint] table) atomically; or resumes when run.toml holds the same
 * fingerprint. A different fingerprint is NQ_ERR_INPUT naming what differs (model,
 * calibration data, or the first setting), an unreadable run.toml is NQ_ERR_INPUT naming
 * it, and so are state/done files without a run.toml; with restart != 0 each of these
 * instead removes the files we own (run.toml, activations.h5[.partial], state/block-*.h5,
 * done/block-*.h5, qinputs/level-*.h5 and our temporaries; nothing else: progress.log
 * and the lock are kept) and starts fresh. A resume or restart also removes every stale
 * temporary: ours in the directory and the checkpoint's (".<name>.tmp.<pid>" beside
 * output_path): the caller holds the lock, so no writer of them is alive. I/O failures
 * are NQ_ERR_RUNTIME. */
nq_status run_dir_prepare(const char *dir, const char *config_toml_resolved,
                          const Fingerprint *fp, const char *output_path, int restart,
                          RunDirStatus *out);

/* The fingerprint stored in dir/run.toml (for inspect). NQ_ERR_INPUT when missing or
 * unreadable. */
nq_status run_dir_read_fingerprint(const char *dir, Fingerprint *out);

/* The BLAS kernel the run started with: run.toml's [blas] kernel, "" when the run.toml
 * predates it. Results are bit-identical only under one kernel (src/gemm.h). */
nq_status run_dir_read_blas_kernel(const char *dir, char *kernel, size_t size);

/* "dir/state/block-0007.h5", "dir/done/block-0007.h5", "dir/activations.h5",
 * "dir/progress.log", "dir/run.toml" into buf; NQ_ERR_INPUT when it does not fit. */
nq_status run_dir_state_path(const char *dir, int block, char *buf, size_t size);
nq_status run_dir_done_path(const char *dir, int block, char *buf, size_t size);
nq_status run_dir_activations_path(const char *dir, char *buf, size_t size);
nq_status run_dir_progress_path(const char *dir, char *buf, size_t size);
nq_status run_dir_toml_path(const char *dir, char *buf, size_t size);
/* "dir/activations.h5.partial", "dir/lock", "dir/lock.holder",
 * "dir/qinputs/level-0003.h5", "dir/qinputs/.level-0003.h5.tmp" (the same name on every
 * rank of the writing group), "dir/qinputs". */
nq_status run_dir_activations_partial_path(const char *dir, char *buf, size_t size);
nq_status run_dir_lock_path(const char *dir, char *buf, size_t size);
nq_status run_dir_lock_holder_path(const char *dir, char *buf, size_t size);
nq_status run_dir_qlevel_path(const char *dir, int level, char *buf, size_t size);
nq_status run_dir_qlevel_tmp_path(const char *dir, int level, char *buf, size_t size);
nq_status run_dir_qinputs_dir(const char *dir, char *buf, size_t size);

/* Up-front checks, before any work (root, before the lock): NQ_ERR_INPUT naming the key
 * when run.dir exists and is not a directory, when output_path is an existing directory,
 * or when output_path's directory is outside run.dir and missing or not writable (a
 * directory inside run.dir is created by the job). */
nq_status run_dir_check_paths(const char *dir, const char *output_path);

typedef enum { BLOCK_PENDING = 0, BLOCK_IN_PROGRESS = 1, BLOCK_DONE = 2 } BlockState;

typedef struct {
    BlockState state;
    int step, iterations;  /* IN_PROGRESS: from the state file's header */
    double loss_init;      /* DONE and IN_PROGRESS */
    double loss_final;     /* DONE: final loss; IN_PROGRESS: latest loss */
    double seconds;        /* DONE: reconstruction time; IN_PROGRESS: time so far */
    int damaged;           /* 1: a done or state file existed but its header could not
                              be read; it is ignored (the block starts over) */
} BlockStatus;

/* Status of blocks 0..n_blocks-1 into out[n_blocks]: DONE when done/block-NNNN.h5 exists
 * and its header (format "nupes-mpi-block", block) reads back, else IN_PROGRESS when the
 * state file's header reads back (its checksum is verified only by state_file_load), else
 * PENDING. Only reads headers: cheap. Damaged files are not errors (see .damaged). */
nq_status run_dir_scan(const char *dir, int n_blocks, BlockStatus *out);

#endif
