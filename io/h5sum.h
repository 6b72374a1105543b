/* XXH3-64 checksums inside our HDF5 files (done files, the checkpoint), so that a flipped
 * bit is an error naming the object instead of a different number:
 *   dataset attribute "checksum" = "xxh3-64:<16 hex digits>" over the dataset's elements
 *     as the writer handed them to H5Dwrite (row-major, native byte order: little-endian
 *     on every machine this runs on, the order the files store);
 *   attribute "attrs_checksum" on the root and on every group that has attributes, over
 *     the object's other attributes in name order: name, class, value (integers as int64,
 *     floats as double, strings as their bytes), computed when the writer has written
 *     them all.
 * HDF5's own metadata (object headers, chunk indexes) carries checksums in the 1.10 file
 * format h5u_create uses; the raw data and the global heap of string attributes do not:
 * these two attributes cover them. h5py and h5dump see them as plain string attributes.
 * The activations file and the hand-ons checksum each sequence instead (a dataset of
 * uint64, see io/activations.h and io/qlevel_file.h), because several ranks write them. */
#ifndef NUPES_H5SUM_H
#define NUPES_H5SUM_H

#include <stddef.h>
#include <stdint.h>

#include <hdf5.h>

#include "status.h"

#define H5SUM_DATA_ATTR "checksum"
#define H5SUM_ATTRS_ATTR "attrs_checksum"
#define H5SUM_TEXT_SIZE 32 /* "xxh3-64:" + 16 hex + NUL */

uint64_t h5sum_bytes(const void *data, size_t bytes);
void h5sum_format(uint64_t sum, char out[H5SUM_TEXT_SIZE]);

/* Stores the checksum of data (bytes long) on the dataset dset. */
nq_status h5sum_write_data(hid_t dset, const char *file, const void *data, size_t bytes);
/* Compares data (as read) with dset's checksum attribute: "file: dataset /x: checksum
 * mismatch (damaged file)". Without the attribute: an error when required, else NQ_OK. */
nq_status h5sum_check_data(hid_t dset, const char *file, const char *where, const void *data,
                           size_t bytes, int required);

/* Writes attrs_checksum on obj over its attributes written so far (call it last). */
nq_status h5sum_seal_attrs(hid_t obj, const char *file);
/* Recomputes obj's attribute checksum and compares; without attrs_checksum: an error
 * when required, else NQ_OK. where names obj ("/", "/blocks/0003"). */
nq_status h5sum_check_attrs(hid_t obj, const char *file, const char *where, int required);

/* Every dataset of the file read whole and checked against its checksum, every object
 * with attributes checked against its attrs_checksum (both required). Counts what was
 * checked. The first damage found is the error (NQ_ERR_INPUT), naming the object. */
nq_status h5sum_verify_file(hid_t file, const char *path, int *n_datasets, int *n_attr_sets);

#endif
