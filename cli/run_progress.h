/* What run.dir/progress.log says about the latest job on a run directory (for inspect):
 * the events after its last "start:" line. */
#ifndef NUPES_RUN_PROGRESS_H
#define NUPES_RUN_PROGRESS_H

#define RUN_PROGRESS_MAX_GROUPS 256

typedef struct {
    int found;           /* a "start:" line exists */
    char start_time[32]; /* its timestamp */
    int capture_done, checkpoint_written, stopped;
    int n_groups;        /* from the "schedule:" line; 0 when none yet */
    int *group_blocks[RUN_PROGRESS_MAX_GROUPS]; /* each group's blocks, in order */
    int group_count[RUN_PROGRESS_MAX_GROUPS];
    int blocks_done_here;    /* "block N done" lines since the start */
    double block_seconds;    /* their total reconstruction seconds */
} RunProgress;

/* Reads path; a missing or unreadable log leaves out->found = 0. */
void run_progress_read(const char *path, RunProgress *out);
void run_progress_free(RunProgress *p);

#endif
