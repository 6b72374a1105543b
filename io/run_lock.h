/* The run directory's lock (DESIGN.md 5.2): one job at a time owns a run directory.
 *
 * Root takes an exclusive POSIX record lock (fcntl F_SETLK, F_WRLCK on the whole file) on
 * run.dir/lock before it touches anything else in the directory, and holds it for the
 * job's whole life. The kernel releases it when the process ends however it ends
 * (SIGKILL, a crash), so a killed job never blocks its re-run; on NFS the server releases
 * it when the client's lease or the lock manager's state expires (node lost).
 *
 * Why fcntl record locks and not flock(2) or OFD locks: fcntl locks are the one kind every
 * cluster file system arbitrates between nodes: NFSv3 (NLM) and NFSv4 (in the protocol),
 * GPFS/Spectrum Scale (cluster-wide), Lustre (mounted with -o flock, the usual setting;
 * with -o localflock they are node-local, which still serialises jobs on one node),
 * BeeGFS (tuneClientFileLocking=flock). flock(2) is node-local on older NFS clients and
 * on Lustre with localflock, and OFD locks (F_OFD_SETLK) are not passed to the servers of
 * every cluster file system. Their one trap, that closing ANY descriptor of the file in
 * the process drops the lock, is avoided by opening run.dir/lock only here.
 *
 * Who holds it is written, after the lock is taken, to run.dir/lock.holder (atomically:
 * "host NAME pid PID started 2026-12-02T10:00:00Z"), so that a refused job can name it. */
#ifndef NUPES_RUN_LOCK_H
#define NUPES_RUN_LOCK_H

#include <stddef.h>

#include "status.h"

typedef struct RunLock RunLock;

/* Creates dir if needed and takes the lock; NQ_ERR_INPUT, one line naming the holder,
 * when another job holds it; NQ_ERR_RUNTIME when the file system refuses locks (the
 * message says so). */
nq_status run_lock_take(const char *dir, RunLock **out);

/* Releases the lock (NULL is fine). lock.holder is left: it names the last holder. */
void run_lock_release(RunLock *lock);

/* For readers (inspect): 1 when a job holds the lock of dir (its holder line into
 * holder), 0 when none does (no lock file, or not locked). Never takes the lock. */
int run_lock_held(const char *dir, char *holder, size_t size);

#endif
