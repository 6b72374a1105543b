/* The zstd filter (HDF5 filter id 32015, cd_values[0] = level, cd_values[1] = parse hint;
 * docs/design.md 5). */
#ifndef NUPES_H5ZSTD_H
#define NUPES_H5ZSTD_H

#include "status.h"

#define H5Z_FILTER_ZSTD 32015
/* cd_values[1]: how the compressor parses a chunk; decoders ignore it. */
#define H5Z_ZSTD_PARSE_LEVEL 0   /* zstd's own parameters for the level */
#define H5Z_ZSTD_PARSE_SYMBOLS 1 /* int8 quantization codes (io/h5zstd_filter.h says why) */

/* Registers the filter with the HDF5 library of this process. Call it before creating or
 * reading filtered data (h5u_init does); later calls do nothing. NQ_ERR_RUNTIME when HDF5
 * refuses. */
nq_status h5zstd_register(void);

/* What the filter does to one chunk of `n` bytes at `level` with `parse`, into dst (cap
 * bytes, ZSTD_compressBound(n) is enough): for probes of its speed (the plan). Returns the
 * frame's size, 0 on failure. */
size_t h5zstd_compress_chunk(int level, unsigned parse, const void *src, size_t n, void *dst, size_t cap);

#endif
