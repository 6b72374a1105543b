/* How stored activations (io/activations.h, io/qlevel_file.h) record their dtype
 * (calibration.activation_dtype, src/float16.h): the dataset's HDF5 type is the format
 * itself (fp16: IEEE binary16; bf16: a 16-bit float with fp32's 8-bit exponent), so h5dump
 * and h5py read the values, and attribute dtype = "fp32" | "fp16" | "bf16" on the file's
 * root says the same in words. A file without the attribute is fp32 (written before it). */
#ifndef NUPES_ACT_DTYPE_H5_H
#define NUPES_ACT_DTYPE_H5_H

#include <hdf5.h>

#include "float16.h"
#include "status.h"

/* A new HDF5 type id for t's little-endian storage format (the caller closes it); < 0 on
 * failure. Writes and reads use it as the memory type too: HDF5 converts nothing, the
 * values are encoded and decoded by src/float16.h. */
hid_t act_h5_type(ActDtype t);

/* Writes attribute dtype on obj (collective on an MPI-IO file). */
nq_status act_h5_write_dtype(hid_t obj, const char *path, ActDtype t);
/* NQ_ERR_INPUT "PATH: attribute dtype = "fp16", expected "bf16" (calibration.activation_dtype)"
 * when the file holds another dtype than want. */
nq_status act_h5_check_dtype(hid_t obj, const char *path, ActDtype want);

#endif
