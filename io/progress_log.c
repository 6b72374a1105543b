/* progress.log: timestamped lines, one write + fsync each. */
#include "progress_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 1024

struct ProgressLog {
    int fd;
    char path[4096];
};

nq_status progress_log_open(const char *path, ProgressLog **out) {
    *out = NULL;
    ProgressLog *log = nq_calloc(1, sizeof *log, "progress log");
    if (!log) return NQ_ERR_RUNTIME;
    snprintf(log->path, sizeof log->path, "%s", path);
    log->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (log->fd < 0) {
        nq_status const st = nq_fail(NQ_ERR_RUNTIME, "%s: cannot open for appending: %s", path, strerror(errno));
        free(log);
        return st;
    }
    *out = log;
    return NQ_OK;
}

nq_status progress_log_printf(ProgressLog *log, const char *fmt, ...) {
    char line[LINE_MAX_BYTES];
    time_t const now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    size_t used = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%SZ ", &utc);
    va_list ap;
    va_start(ap, fmt);
    int const n = vsnprintf(line + used, sizeof line - used - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return nq_fail(NQ_ERR_RUNTIME, "%s: cannot format a log line", log->path);
    size_t const msg = (size_t)n < sizeof line - used - 1 ? (size_t)n : sizeof line - used - 2;
    for (size_t i = used; i < used + msg; i++)
        if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
    used += msg;
    line[used++] = '\n';
    ssize_t const wrote = write(log->fd, line, used); /* one write: never interleaved */
    if (wrote != (ssize_t)used)
        return nq_fail(NQ_ERR_RUNTIME, "%s: write failed: %s", log->path,
                       wrote < 0 ? strerror(errno) : "short write");
    if (fsync(log->fd) != 0)
        return nq_fail(NQ_ERR_RUNTIME, "%s: fsync failed: %s", log->path, strerror(errno));
    return NQ_OK;
}

void progress_log_close(ProgressLog *log) {
    if (!log) return;
    close(log->fd);
    free(log);
}
