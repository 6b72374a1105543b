/* The run directory (docs/design.md 5.2, 6): what makes a job resumable.
 *
 *   run.toml               resolved config, [blas] and [fingerprint] tables (written once)
 *   activations.h5         captured block inputs (written by the capture stage)
 *   state/block-0007.h5    in-progress optimiser state of block 7 (io/state_file.h)
 *   done/block-0007.h5     completed result of block 7 (io/block_file.h)
 *   progress.log           one line per event (io/progress_log.h)
 *
 * run_dir_prepare and run_dir_scan are for root only; the path helpers are for anyone. */
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

/* Creates dir, dir/state and dir/done and writes dir/run.toml (config_toml_resolved, then
 * the [fingerprint] table) atomically; or resumes when run.toml holds the same
 * fingerprint. A different fingerprint is NQ_ERR_INPUT naming what differs (model,
 * calibration data, or the first setting), an unreadable run.toml is NQ_ERR_INPUT naming
 * it, and so are state/done files without a run.toml; with restart != 0 each of these
 * instead removes the files we own (run.toml, activations.h5, state/block-*.h5,
 * done/block-*.h5 and our temporaries; nothing else: progress.log is kept) and starts
 * fresh. I/O failures are NQ_ERR_RUNTIME. */
nq_status run_dir_prepare(const char *dir, const char *config_toml_resolved,
                          const Fingerprint *fp, int restart, RunDirStatus *out);

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
