/* In-progress optimiser state of one block, run.dir/state/block-NNNN.h5 (docs/design.md 5.2, 6):
 * written by the group leader every checkpoint_interval seconds and when stopping, read
 * back on resume. It must be fast (a 7B block is ~2.4 GB of z, m, v and must be written
 * within SLURM's KillWait), so datasets are stored raw (contiguous, no compression: one
 * pwrite per array); and it must never be trusted blindly, so it carries an XXH3-64
 * checksum of every array.
 *
 * Layout:
 *   /            attrs: format = "nupes-mpi-state", format_version = 1, block, step,
 *                iterations, loss_init, loss_last, seconds, n_arrays,
 *                checksum = "xxh3-64:<16 hex digits>" (over every array's name, length
 *                and bytes, in order)
 *   /<name>      float32 [count] (float64 [count] for ReconArray.is_double), one per
 *                ReconArray, named by ReconArray.name ("a/b" names make groups). */
#ifndef NUPES_STATE_FILE_H
#define NUPES_STATE_FILE_H

#include "recon.h"
#include "status.h"

#define STATE_FILE_FORMAT "nupes-mpi-state"
#define STATE_FILE_VERSION 1

typedef struct {
    int block;        /* l */
    int step;         /* iterations applied (recon_step) */
    int iterations;   /* iterations planned */
    double loss_init; /* block loss of the starting quantization */
    double loss_last; /* latest measured loss */
    double seconds;   /* reconstruction wall time so far, summed over runs */
} StateInfo;

/* Writes info and the n arrays to path atomically (temporary name, fsync, rename, fsync
 * dir). NQ_ERR_RUNTIME on failure, with no temporary left and any previous file at path
 * untouched. */
nq_status state_file_save(const char *path, const StateInfo *info, const ReconArray *arrays,
                          int n);

typedef struct {
    size_t bytes;   /* of array data to write */
    size_t written; /* of them written (and synced, but for the last 256 MiB) */
    double seconds; /* the save's time, from its call to its end */
    int gave_up;    /* the time limit ran out: nothing at path changed */
} StateSaveReport;

/* state_file_save, but given seconds_allowed > 0 it gives up once that much time has
 * passed (checked between 64 MiB writes; it may end up to one 256 MiB sync later): then
 * NQ_STOPPED, no error recorded, no temporary left, any previous file at path untouched.
 * seconds_allowed 0 means no limit. report (may be NULL) says how far it got. */
nq_status state_file_save_within(const char *path, const StateInfo *info, const ReconArray *arrays,
                                 int n, double seconds_allowed, StateSaveReport *report);

/* The same save in steps, so that its bytes can be written while the caller computes:
 *   state_write_begin   on the caller's thread: the checksum, and the file with its header
 *                       and its datasets' space (all the HDF5 work, which is not
 *                       thread-safe), under a temporary name;
 *   state_write_start   optional: writes the arrays' bytes on a thread of its own (pwrite
 *                       only). The caller must not change the arrays until the finish;
 *   state_write_limit   optional, any time: give up seconds_from_now from now;
 *   state_write_finish  writes the bytes here if no thread did, waits for the thread,
 *                       commits (fsync, rename) and frees w. Returns as state_file_save_within.
 * Owns the StateWrite from begin to finish, which must be called once for every begin. */
typedef struct StateWrite StateWrite;
nq_status state_write_begin(const char *path, const StateInfo *info, const ReconArray *arrays, int n,
                            StateWrite **w);
nq_status state_write_start(StateWrite *w);
void state_write_limit(StateWrite *w, double seconds_from_now);
nq_status state_write_finish(StateWrite *w, StateSaveReport *report);

/* Reads path into the n arrays (names, lengths and types must match the file) and *info,
 * after checking format, version, block == expected_block and the checksum. Any problem
 * (missing, truncated, damaged, another block or config) is NQ_ERR_INPUT with one line
 * naming the file and what is wrong; the arrays then hold garbage: start the block over
 * (recon_create) rather than use them. */
nq_status state_file_load(const char *path, int expected_block, ReconArray *arrays, int n,
                          StateInfo *info);

/* Header only (format, version and the StateInfo attributes), no data and no checksum:
 * cheap, for scanning a run directory and for inspect. NQ_ERR_INPUT when unreadable. */
nq_status state_file_info(const char *path, StateInfo *info);

#endif
