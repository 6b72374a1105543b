/* The zstd filter (HDF5 filter id 32015, cd_values[0] = level; docs/design.md 5). */
#ifndef NUPES_H5ZSTD_H
#define NUPES_H5ZSTD_H

#include "status.h"

#define H5Z_FILTER_ZSTD 32015

/* Registers the filter with the HDF5 library of this process. Call it before creating or
 * reading filtered data (h5u_init does); later calls do nothing. NQ_ERR_RUNTIME when HDF5
 * refuses. */
nq_status h5zstd_register(void);

#endif
