#include "fuzz_common.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef NUPES_FUZZ_DATA
#define NUPES_FUZZ_DATA "data"
#endif

volatile float fuzz_sink;

void fuzz_fail(const char *file, int line, const char *what) {
    fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
    abort();
}

/* $NUPES_FUZZ_TMP (fuzz/run.sh sets one per run and removes it), else /dev/shm, else /tmp. */
static const char *scratch_dir(void) {
    const char *env = getenv("NUPES_FUZZ_TMP");
    if (env && *env) return env;
    struct stat sb;
    return stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0
               ? "/dev/shm"
               : "/tmp";
}

int fuzz_write_file(const char *path, const uint8_t *data, size_t size) {
    int const fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t const n = write(fd, data + done, size - done);
        if (n <= 0) break;
        done += (size_t)n;
    }
    close(fd);
    return done == size ? 0 : -1;
}

int fuzz_write_temp(const uint8_t *data, size_t size, const char *suffix, char *path,
                    size_t path_size) {
    int const len = snprintf(path, path_size, "%s/fuzz-%d-XXXXXX%s", scratch_dir(), (int)getpid(),
                             suffix);
    if (len < 0 || (size_t)len >= path_size) return -1;
    int const fd = mkstemps(path, (int)strlen(suffix));
    if (fd < 0) return -1;
    close(fd);
    if (fuzz_write_file(path, data, size) != 0) {
        unlink(path);
        return -1;
    }
    return 0;
}

int fuzz_make_dir(char *path, size_t path_size) {
    int const len = snprintf(path, path_size, "%s/fuzz-%d-XXXXXX", scratch_dir(), (int)getpid());
    if (len < 0 || (size_t)len >= path_size) return -1;
    return mkdtemp(path) ? 0 : -1;
}

const char *fuzz_data_dir(void) {
    const char *env = getenv("NUPES_DATA");
    return env && *env ? env : NUPES_FUZZ_DATA;
}
