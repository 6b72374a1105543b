/* Checked HDF5 helpers: every H5* call of the checkpoint and result files goes through
 * here, and every failure becomes one nq_fail line naming the file and the object:
 *   "out.h5: not an HDF5 file"
 *   "out.h5: missing dataset /blocks/0003/wq/codes"
 *   "out.h5: dataset /model/norm_final has shape [32], expected [64]"
 * HDF5's own automatic error printing is switched off (h5u_init); the innermost message of
 * its error stack is appended to ours when it explains something ("(... : file
 * truncated)").
 *
 * Files are created with object timestamps off, so identical content gives identical
 * objects, and every dataset is chunked (~1 MiB chunks of whole rows, or the whole tensor
 * when small) and compressed with zstd (filter 32015). The serial API is used (sec2 driver):
 * with the parallel library it is what root uses for checkpoints and result files. */
#ifndef NUPES_H5UTIL_H
#define NUPES_H5UTIL_H

#include <stddef.h>

#include <hdf5.h>

#include "status.h"

#define H5U_MAX_RANK 4
#define H5U_CHUNK_BYTES (1u << 20) /* target chunk size */

/* Stored little-endian. H5U_F16 is IEEE binary16 (h5py reads it as float16), passed in
 * memory as its uint16_t bit patterns (src/float16.h): written and read without conversion. */
typedef enum { H5U_F32, H5U_I8, H5U_I32, H5U_F16 } H5UType;

/* Switches off HDF5's error printing and registers the zstd filter. Call once per process
 * before any other h5u_ function (calling again is harmless). */
nq_status h5u_init(void);

/* Turns the current HDF5 error stack into "<file>: <what> (<hdf5 detail>)", clears the
 * stack and returns code: for errors from H5* calls made outside this module. */
nq_status h5u_fail(nq_status code, const char *file, const char *what);

/* Creates (truncates) path for writing; object timestamps off. */
nq_status h5u_create(const char *path, hid_t *file);
/* The same file in memory only (HDF5's core driver, no backing store: closing it writes
 * nothing): the dry run times the write path with it. */
nq_status h5u_create_in_memory(const char *name, hid_t *file);
/* Opens path read-only: "path: cannot open: <errno>" for a missing file, "path: not an
 * HDF5 file" for anything else that is not HDF5. */
nq_status h5u_open_read(const char *path, hid_t *file);
/* Collective over comm: creates (create != 0, truncating; NQ_ERR_RUNTIME on failure) or
 * opens read-write (NQ_ERR_INPUT) path with the MPI-IO driver, for files that several
 * ranks write together. what names the file in errors ("the activations file"). */
nq_status h5u_open_mpio(const char *path, MPI_Comm comm, int create, const char *what, hid_t *file);
/* Reserves bytes of disk for a file just created with h5u_create (fallocate, size kept),
 * so that a full file system is an error here and not inside HDF5's writes: libhdf5
 * 1.10 keeps a file whose close failed for lack of space half-closed and closes it
 * again at exit, which crashes. A file system without fallocate is not an error. The
 * unused reserve is released when the file is truncated to its size (h5u_release). */
nq_status h5u_reserve(hid_t file, const char *path, size_t bytes);
/* Gives back a closed file's blocks reserved beyond its end. */
void h5u_release(const char *path);
/* H5Fclose with a check (a failed close of a written file is a failed write). Does
 * nothing for a negative id. `path` names the file in the message. */
nq_status h5u_close_file(hid_t file, const char *path);
/* Closes any HDF5 id (group, dataset, plist, ...) ignoring negative ids. */
void h5u_close(hid_t id);

/* Groups: created with timestamps off; opening a missing one gives "missing group". */
nq_status h5u_create_group(hid_t loc, const char *file, const char *name, hid_t *group);
nq_status h5u_open_group(hid_t loc, const char *file, const char *name, hid_t *group);
/* 1 when the (possibly nested, relative) path exists under loc, else 0. */
int h5u_exists(hid_t loc, const char *name);

/* Dataset creation plist for a chunked dataset of dims (chunks of whole rows, about
 * H5U_CHUNK_BYTES each), zstd at `zstd_level` (0: no filter), timestamps off. For
 * writers that create datasets themselves (the activations file). */
nq_status h5u_dcpl(const char *file, H5UType type, int rank, const hsize_t *dims,
                   int zstd_level, hid_t *dcpl);

/* Writes data (row-major, dims) as the new dataset `name` under loc, with its XXH3
 * checksum attribute (io/h5sum.h). */
nq_status h5u_write(hid_t loc, const char *file, const char *name, H5UType type, int rank,
                    const hsize_t *dims, const void *data, int zstd_level);

/* Reads dataset `name` into out, after checking that it exists ("missing dataset"), has
 * the expected shape and an element type of the same kind (integer/float). */
nq_status h5u_read(hid_t loc, const char *file, const char *name, H5UType type, int rank,
                   const hsize_t *dims, void *out);
/* h5u_read checks the data against the dataset's checksum attribute when it has one;
 * h5u_read_checked requires it (files of our formats that carry checksums). */
nq_status h5u_read_checked(hid_t loc, const char *file, const char *name, H5UType type, int rank,
                           const hsize_t *dims, void *out);

/* Shape of dataset name: *rank and dims[H5U_MAX_RANK]. */
nq_status h5u_shape(hid_t loc, const char *file, const char *name, int *rank, hsize_t *dims);

/* Scalar attributes on an object (file, group or dataset). Strings are variable-length
 * UTF-8 (h5py reads them as str); readers accept fixed-length strings too. */
nq_status h5u_attr_write_int(hid_t obj, const char *file, const char *name, long long value);
nq_status h5u_attr_write_double(hid_t obj, const char *file, const char *name, double value);
nq_status h5u_attr_write_string(hid_t obj, const char *file, const char *name, const char *value);

/* Readers name the object (`where`, e.g. "/model") in their messages. */
nq_status h5u_attr_read_int(hid_t obj, const char *file, const char *where, const char *name,
                            long long *value);
nq_status h5u_attr_read_double(hid_t obj, const char *file, const char *where,
                               const char *name, double *value);
/* *value is malloc'd (caller frees). */
nq_status h5u_attr_read_string(hid_t obj, const char *file, const char *where,
                               const char *name, char **value);

#endif
