#include "status.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static char last_error[1024];
static int have_error;

nq_status nq_fail(nq_status code, const char *fmt, ...) {
    if (!have_error) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(last_error, sizeof last_error, fmt, ap);
        va_end(ap);
        have_error = 1;
    }
    return code;
}

const char *nq_last_error(void) { return have_error ? last_error : ""; }

void nq_clear_error(void) {
    have_error = 0;
    last_error[0] = '\0';
}

size_t nq_mul_size(size_t count, size_t size) {
    if (size != 0 && count > SIZE_MAX / size) return SIZE_MAX;
    return count * size;
}

void *nq_calloc(size_t count, size_t size, const char *what) {
    size_t const bytes = nq_mul_size(count, size);
    void *p = bytes == SIZE_MAX ? NULL : calloc(count ? count : 1, size ? size : 1);
    if (!p) nq_fail(NQ_ERR_RUNTIME, "out of memory allocating %zu x %zu bytes for %s", count, size, what);
    return p;
}
