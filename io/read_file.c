#include "read_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

nq_status read_file(const char *path, const char *what, char **data, size_t *size) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return nq_fail(NQ_ERR_INPUT, "%s: cannot open %s: %s", path, what, strerror(errno));
    nq_status st = NQ_OK;
    char *buf = NULL;
    long len = -1;
    struct stat sb;
    /* fopen opens a directory for reading, and its "size" (LONG_MAX) is no size. */
    int const stat_ok = fstat(fileno(f), &sb) == 0;
    if (!stat_ok || !S_ISREG(sb.st_mode)) {
        st = nq_fail(NQ_ERR_INPUT, "%s: is %s, expected a %s file", path,
                     stat_ok && S_ISDIR(sb.st_mode) ? "a directory" : "not a regular file", what);
    } else if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = nq_fail(NQ_ERR_INPUT, "%s: cannot tell the %s's size", path, what);
    } else if ((buf = nq_calloc((size_t)len + 1, 1, what)) == NULL) {
        st = NQ_ERR_RUNTIME;
    } else if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
        st = nq_fail(NQ_ERR_RUNTIME, "%s: short read of %ld bytes", path, len);
    }
    fclose(f);
    if (st != NQ_OK) {
        free(buf);
        return st;
    }
    *data = buf;
    *size = (size_t)len;
    return NQ_OK;
}
