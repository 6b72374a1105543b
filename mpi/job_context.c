#include "job_context.h"
#include "clock.h"

#include <stdarg.h>
#include <stdio.h>

double job_now(void) { return nq_seconds(); }

void job_log(Job *job, const char *fmt, ...) {
    if (!job->log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (progress_log_printf(job->log, "%s", line) != NQ_OK) {
        fprintf(stderr, "nupes-mpi: warning: %s (progress.log is no longer written)\n", nq_last_error());
        nq_clear_error();
        progress_log_close(job->log);
        job->log = NULL;
    }
}

void job_format_rate(char *out, size_t size, double iterations_per_second) {
    if (iterations_per_second <= 0)
        snprintf(out, size, "- it/s");
    else if (iterations_per_second >= 1.0)
        snprintf(out, size, "%.1f it/s", iterations_per_second);
    else
        snprintf(out, size, "%.1f s/it", 1.0 / iterations_per_second);
}

void job_print_status(Job *job, double iterations_per_second) {
    double const now = job_now();
    double const every = job->status_is_tty ? 1.0 : 30.0;
    if (now - job->last_status_time < every) return;
    job->last_status_time = now;
    int const left = job->blocks_total - job->blocks_done;
    int const rounds = (left + job->layout.n_groups - 1) / job->layout.n_groups;
    double const eta = iterations_per_second > 0 ? rounds * job->params.iterations / iterations_per_second : 0;
    char rate[32];
    job_format_rate(rate, sizeof rate, iterations_per_second);
    printf("%sstatus: %d/%d blocks done, %s, elapsed %.0f s, ETA %.0f s%s",
           job->status_is_tty ? "\r" : "", job->blocks_done, job->blocks_total, rate,
           now - job->start_time, eta, job->status_is_tty ? "   " : "\n");
    fflush(stdout);
}
