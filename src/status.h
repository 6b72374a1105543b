/* Status codes and the one-line error message that travels with them.
 *
 * Library code never exits: it returns an nq_status and records a message with
 * nq_fail(); only main() prints it and turns the status into the exit code. The values
 * are the process exit codes scripts rely on (see README, "Exit codes"). */
#ifndef NUPES_STATUS_H
#define NUPES_STATUS_H

#include <stddef.h>

typedef enum {
    NQ_OK = 0,
    NQ_ERR_INPUT = 2,   /* bad input, config or command line: nothing was written */
    NQ_ERR_RUNTIME = 3, /* I/O, MPI, allocation or numerical failure */
    NQ_STOPPED = 75,    /* stopped on a signal, state saved: re-run to resume (EX_TEMPFAIL) */
} nq_status;

/* Records "message" as the current error (the first error wins until nq_clear_error, so
 * the root cause is not overwritten by the cleanup path) and returns code, so that
 *     return nq_fail(NQ_ERR_INPUT, "%s: header field n_heads = %d, expected > 0", path, h);
 * reads as one statement. Messages name the file, the field and what was expected. */
nq_status nq_fail(nq_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The recorded message, or "" when none. */
const char *nq_last_error(void);
void nq_clear_error(void);

/* Checked allocation: on failure records "out of memory allocating N bytes for what"
 * and returns NULL; the caller returns NQ_ERR_RUNTIME. Memory is zeroed. Arrays of 8 MB
 * or more are advised to the kernel as transparent huge pages (faulted in 2 MB at a time). */
void *nq_calloc(size_t count, size_t size, const char *what);

/* The kernel's transparent huge page setting, as the job prints it: "always", "madvise"
 * (the advice above takes effect), "never", or "unavailable" (no such setting here). */
const char *nq_huge_pages_setting(void);

/* count * size with overflow check (SIZE_MAX on overflow, which any allocation refuses). */
size_t nq_mul_size(size_t count, size_t size);

#endif
