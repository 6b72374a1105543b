/* run.dir/progress.log (docs/design.md 5.2): one line per event, prefixed with a UTC
 * timestamp, written with a single append and fsynced so that it survives a kill:
 *     2026-11-25T10:00:00Z block 3 done loss 1.2e-3 -> 4.5e-4 in 12.3 s
 * The log is append-only history, so it is the one file not replaced atomically: each
 * line is one write(2) on an O_APPEND descriptor, then fsync. Root only. */
#ifndef NUPES_PROGRESS_LOG_H
#define NUPES_PROGRESS_LOG_H

#include "status.h"

typedef struct ProgressLog ProgressLog;

/* Opens (creating if needed) path for appending. NQ_ERR_RUNTIME on failure. */
nq_status progress_log_open(const char *path, ProgressLog **out);

/* Appends "<UTC timestamp> <message>\n"; newlines inside the message become spaces.
 * NQ_ERR_RUNTIME when the write or fsync fails. */
nq_status progress_log_printf(ProgressLog *log, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void progress_log_close(ProgressLog *log); /* NULL is fine */

#endif
