/* The zstd filter as an HDF5 dynamic plugin: put the directory holding this module in
 * HDF5_PLUGIN_PATH and h5dump, h5ls, h5py (and any HDF5 program) read our files. The
 * filter itself lives in h5zstd_filter.h, shared with the library; this module is linked
 * with zstd only and needs no libhdf5 symbol. */
#include <H5PLextern.h>

#include "h5zstd_filter.h"

H5PL_type_t H5PLget_plugin_type(void) { return H5PL_TYPE_FILTER; }

const void *H5PLget_plugin_info(void) { return &h5zstd_class_; }
