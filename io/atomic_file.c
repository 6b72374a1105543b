#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void split_path(const char *path, char *dir, char *base) {
    char a[PATH_MAX], b[PATH_MAX];
    snprintf(a, sizeof a, "%s", path);
    snprintf(b, sizeof b, "%s", path);
    snprintf(dir, PATH_MAX, "%s", dirname(a));
    snprintf(base, PATH_MAX, "%s", basename(b));
}

nq_status atomic_tmp_name(const char *path, char *tmp, size_t tmp_size) {
    char dir[PATH_MAX], base[PATH_MAX];
    split_path(path, dir, base);
    int const n = snprintf(tmp, tmp_size, "%s/.%s.tmp.%ld", dir, base, (long)getpid());
    if (n < 0 || (size_t)n >= tmp_size) return nq_fail(NQ_ERR_INPUT, "%s: path too long", path);
    return NQ_OK;
}

nq_status fsync_dir(const char *dir) {
    int const fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return nq_fail(NQ_ERR_RUNTIME, "%s: cannot open directory: %s", dir, strerror(errno));
    int const rc = fsync(fd);
    int const err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL) /* some file systems cannot fsync directories */
        return nq_fail(NQ_ERR_RUNTIME, "%s: fsync of directory failed: %s", dir, strerror(err));
    return NQ_OK;
}

nq_status atomic_commit(const char *tmp, const char *path) {
    int const fd = open(tmp, O_RDONLY);
    if (fd < 0) {
        nq_status const st = nq_fail(NQ_ERR_RUNTIME, "%s: cannot reopen for fsync: %s", tmp, strerror(errno));
        unlink(tmp);
        return st;
    }
    int const rc = fsync(fd);
    int const err = errno;
    close(fd);
    if (rc != 0) {
        unlink(tmp);
        return nq_fail(NQ_ERR_RUNTIME, "%s: fsync failed: %s", path, strerror(err));
    }
    if (rename(tmp, path) != 0) {
        nq_status const st = nq_fail(NQ_ERR_RUNTIME, "%s: rename from %s failed: %s", path, tmp, strerror(errno));
        unlink(tmp);
        return st;
    }
    char dir[PATH_MAX], base[PATH_MAX];
    split_path(path, dir, base);
    return fsync_dir(dir);
}

nq_status atomic_write_file(const char *path, const void *data, size_t len) {
    char tmp[PATH_MAX];
    nq_status st = atomic_tmp_name(path, tmp, sizeof tmp);
    if (st != NQ_OK) return st;
    FILE *f = fopen(tmp, "wb");
    if (!f) return nq_fail(NQ_ERR_RUNTIME, "%s: cannot create: %s", tmp, strerror(errno));
    size_t const wrote = fwrite(data, 1, len, f);
    int const flush_failed = fflush(f) != 0;
    int const err = errno;
    int const close_failed = fclose(f) != 0;
    if (wrote != len || flush_failed || close_failed) {
        unlink(tmp);
        return nq_fail(NQ_ERR_RUNTIME, "%s: write failed (%zu of %zu bytes): %s", path, wrote, len,
                       strerror(err ? err : errno));
    }
    return atomic_commit(tmp, path);
}

nq_status make_dirs(const char *path) {
    char buf[PATH_MAX];
    int const n = snprintf(buf, sizeof buf, "%s", path);
    if (n < 0 || (size_t)n >= sizeof buf) return nq_fail(NQ_ERR_INPUT, "%s: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return nq_fail(NQ_ERR_RUNTIME, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return nq_fail(NQ_ERR_RUNTIME, "%s: cannot create directory: %s", buf, strerror(errno));
    return NQ_OK;
}
