/* Crash-safe file replacement: write to a temporary name in the same directory, fsync it,
 * rename it over the final name, fsync the directory. A reader sees the old file or the
 * new one, never a torn one, whatever moment the process dies at. */
#ifndef NUPES_ATOMIC_FILE_H
#define NUPES_ATOMIC_FILE_H

#include <stddef.h>

#include "status.h"

/* tmp = "<dir>/.<name>.tmp.<pid>" for path "<dir>/<name>". Returns NQ_ERR_INPUT when the
 * path does not fit in tmp_size. */
nq_status atomic_tmp_name(const char *path, char *tmp, size_t tmp_size);

/* fsync(tmp), rename(tmp, path), fsync(dir of path). On failure unlinks tmp and names the
 * failing step and path in the error (NQ_ERR_RUNTIME). */
nq_status atomic_commit(const char *tmp, const char *path);

/* Writes len bytes to path atomically (tmp, write, fsync, rename, fsync dir). */
nq_status atomic_write_file(const char *path, const void *data, size_t len);

/* fsync of a directory (after creating or renaming entries in it). */
nq_status fsync_dir(const char *dir);

/* mkdir -p; existing directories are fine. */
nq_status make_dirs(const char *path);

#endif
