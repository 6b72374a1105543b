/* run.dir/lock: an fcntl write lock held by root for the job's life (see run_lock.h). */
#include "run_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "atomic_file.h"
#include "read_file.h"
#include "run_dir.h"

struct RunLock {
    int fd;
};

static void whole_file_(struct flock *fl, short type) {
    memset(fl, 0, sizeof *fl);
    fl->l_type = type;
    fl->l_whence = SEEK_SET; /* l_start = l_len = 0: the whole file, however long */
}

/* 1 when line ("host H pid P started T") names another process of this host than pid:
 * lock.holder still names the previous holder (the new one has not written it yet). F_GETLK's
 * pid means something only for a holder on this host (NFS reports remote ones otherwise). */
static int names_other_local_pid_(const char *line, pid_t pid) {
    char host[256], me[256] = "";
    long named = -1;
    if (pid <= 0 || sscanf(line, "host %255s pid %ld", host, &named) != 2) return 0;
    if (gethostname(me, sizeof me) != 0) return 0;
    me[sizeof me - 1] = '\0';
    return strcmp(host, me) == 0 && named != (long)pid;
}

/* The holder line from lock.holder (first line), or what F_GETLK knows. */
static void describe_holder_(const char *dir, const struct flock *got, char *out, size_t size) {
    char path[PATH_MAX];
    char *text = NULL;
    size_t len = 0;
    if (run_dir_lock_holder_path(dir, path, sizeof path) == NQ_OK &&
        read_file(path, "lock holder", &text, &len) == NQ_OK && len > 0 &&
        !names_other_local_pid_(text, got ? got->l_pid : 0)) {
        text[strcspn(text, "\n")] = '\0';
        snprintf(out, size, "%s", text);
    } else {
        /* lock.holder is written just after the lock is taken: a holder this new has none yet. */
        snprintf(out, size, "pid %ld (just started)", got ? (long)got->l_pid : -1L);
    }
    nq_clear_error();
    free(text);
}

static nq_status write_holder_(const char *dir) {
    char path[PATH_MAX], host[256] = "?", when[32], line[512];
    nq_status const st = run_dir_lock_holder_path(dir, path, sizeof path);
    if (st != NQ_OK) return st;
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = '\0';
    time_t const now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
    snprintf(line, sizeof line, "host %s pid %ld started %s\n", host, (long)getpid(), when);
    return atomic_write_file(path, line, strlen(line));
}

nq_status run_lock_take(const char *dir, RunLock **out) {
    *out = NULL;
    char path[PATH_MAX];
    nq_status st = run_dir_lock_path(dir, path, sizeof path);
    if (st == NQ_OK) st = make_dirs(dir);
    if (st != NQ_OK) return st;
    int const fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return nq_fail(NQ_ERR_RUNTIME, "%s: cannot open the run directory's lock: %s", path, strerror(errno));
    struct flock fl;
    whole_file_(&fl, F_WRLCK);
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        int const err = errno;
        if (err == EACCES || err == EAGAIN) {
            struct flock got;
            whole_file_(&got, F_WRLCK);
            if (fcntl(fd, F_GETLK, &got) != 0) got.l_pid = -1;
            close(fd);
            char holder[512];
            describe_holder_(dir, &got, holder, sizeof holder);
            return nq_fail(NQ_ERR_INPUT, "%s: run directory in use by another job (%s); wait for it to end or "
                           "choose another run.dir", dir, holder);
        }
        close(fd);
        return nq_fail(NQ_ERR_RUNTIME, "%s: cannot lock (%s): the file system must support fcntl locks "
                       "(NFS: lockd/NFSv4; Lustre: mount with -o flock)", path, strerror(err));
    }
    RunLock *lock = nq_calloc(1, sizeof *lock, "run directory lock");
    if (!lock) {
        close(fd);
        return NQ_ERR_RUNTIME;
    }
    lock->fd = fd;
    st = write_holder_(dir);
    if (st != NQ_OK) {
        run_lock_release(lock);
        return st;
    }
    *out = lock;
    return NQ_OK;
}

void run_lock_release(RunLock *lock) {
    if (!lock) return;
    close(lock->fd); /* closing drops the fcntl lock */
    free(lock);
}

int run_lock_held(const char *dir, char *holder, size_t size) {
    char path[PATH_MAX];
    if (run_dir_lock_path(dir, path, sizeof path) != NQ_OK) {
        nq_clear_error();
        return 0;
    }
    int const fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    struct flock fl;
    whole_file_(&fl, F_WRLCK);
    int const held = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    close(fd);
    if (held) describe_holder_(dir, &fl, holder, size);
    return held;
}
