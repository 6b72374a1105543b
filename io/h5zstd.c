#include "h5zstd.h"

#include "h5zstd_filter.h"

_Static_assert(H5Z_FILTER_ZSTD == H5ZSTD_FILTER_ID, "one filter id");
_Static_assert(H5Z_ZSTD_PARSE_LEVEL == H5ZSTD_PARSE_LEVEL && H5Z_ZSTD_PARSE_SYMBOLS == H5ZSTD_PARSE_SYMBOLS,
               "one parse hint");

nq_status h5zstd_register(void) {
    static int registered;
    if (registered) return NQ_OK;
    if (H5Zregister(&h5zstd_class_) < 0)
        return nq_fail(NQ_ERR_RUNTIME, "HDF5: cannot register the zstd filter (id %d)", H5Z_FILTER_ZSTD);
    if (H5Zfilter_avail(H5Z_FILTER_ZSTD) <= 0)
        return nq_fail(NQ_ERR_RUNTIME, "HDF5: zstd filter (id %d) not available after registration",
                       H5Z_FILTER_ZSTD);
    registered = 1;
    return NQ_OK;
}

size_t h5zstd_compress_chunk(int level, unsigned parse, const void *src, size_t n, void *dst, size_t cap) {
    return h5zstd_compress_into_(level, parse, src, n, dst, cap);
}
