/* The zstd filter of HDF5 (registered id 32015), shared by the library (io/h5zstd.c,
 * registered with H5Zregister) and the dynamic plugin (io/plugin/h5zstd_plugin.c, found
 * through HDF5_PLUGIN_PATH by h5dump and h5py).
 *
 * Format, compatible with the HDF Group's zstd plugin: one zstd frame per chunk, level in
 * cd_values[0] (default 3 when absent), and our optional parse hint in cd_values[1], which
 * decoders ignore. Everything here is static and calls no libhdf5
 * function: the plugin is linked with zstd only, because h5py loads its libhdf5 with
 * RTLD_LOCAL and a plugin needing libhdf5 symbols fails to load there. Buffers therefore
 * use malloc/free, which is what HDF5 uses for filter buffers on Linux. */
#ifndef NUPES_H5ZSTD_FILTER_H
#define NUPES_H5ZSTD_FILTER_H

#include <stdlib.h>

#include <hdf5.h>
#include <zstd.h>

#define H5ZSTD_FILTER_ID 32015
#define H5ZSTD_DEFAULT_LEVEL 3

/* cd_values[1], optional: how to parse the chunk. Only the compressor reads it; every frame
 * is a standard zstd frame, so any zstd filter decodes it whatever this value says. */
#define H5ZSTD_PARSE_LEVEL 0   /* zstd's own parameters for cd_values[0] */
#define H5ZSTD_PARSE_SYMBOLS 1 /* bytes drawn from a small alphabet, nearly independent */

/* Quantization codes are int8 symbols from 4-16 values with no repeats worth finding.
 * zstd's match finders at levels 1-11 take chance matches of 3-6 bytes that cost more than
 * the literals they replace (W3 codes: 2.83 bits per code at level 1, entropy 2.56), and the
 * optimal parsers that refuse them (levels 12+) run at 1-3 MB/s. Asking for the shortest
 * hash table and the longest minimum match leaves almost only Huffman-coded literals: 2.60
 * bits per W3 code at 140 MB/s (measured on 16 MiB of independent W3 codes drawn from a
 * checkpoint's histogram; tests/test_h5zstd.c). The parameters start from level 1's
 * whatever cd_values[0] says: from other levels' tables the same overrides do worse (W3-like
 * codes at level 5: twice the size). */
static int h5zstd_set_symbol_params_(ZSTD_CCtx *cctx) {
    return ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_strategy, ZSTD_fast)) ||
           ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_minMatch, 7)) ||
           ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_hashLog, 6)) ||
           /* zstd's fast strategy skips Huffman coding of literals when targetLength > 0,
            * which its parameter table sets for small chunks */
           ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_targetLength, 0));
}

/* Compresses src (n bytes) into dst (cap bytes) as one frame with the parse cd_values ask
 * for. Returns the frame size, or 0 on failure. */
static size_t h5zstd_compress_into_(int level, unsigned parse, const void *src, size_t n, void *dst,
                                    size_t cap) {
    if (level > ZSTD_maxCLevel()) level = ZSTD_maxCLevel();
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    size_t got = 0;
    if (cctx &&
        !ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel,
                                             parse == H5ZSTD_PARSE_SYMBOLS ? 1 : level)) &&
        !(parse == H5ZSTD_PARSE_SYMBOLS && h5zstd_set_symbol_params_(cctx))) {
        got = ZSTD_compress2(cctx, dst, cap, src, n);
        if (ZSTD_isError(got)) got = 0;
    }
    ZSTD_freeCCtx(cctx);
    return got;
}

/* Compresses the chunk in *buf (nbytes) into one frame. Returns the frame size, or 0 on
 * failure (HDF5 then reports the filter failure and keeps *buf). */
static size_t h5zstd_compress_(size_t cd_nelmts, const unsigned cd_values[], size_t nbytes,
                               size_t *buf_size, void **buf) {
    int const level = cd_nelmts > 0 ? (int)cd_values[0] : H5ZSTD_DEFAULT_LEVEL;
    unsigned const parse = cd_nelmts > 1 ? cd_values[1] : H5ZSTD_PARSE_LEVEL;
    size_t const bound = ZSTD_compressBound(nbytes);
    if (ZSTD_isError(bound)) return 0;
    void *out = malloc(bound);
    size_t const got = out ? h5zstd_compress_into_(level, parse, *buf, nbytes, out, bound) : 0;
    if (got == 0) {
        free(out);
        return 0;
    }
    free(*buf);
    *buf = out;
    *buf_size = bound;
    return got;
}

/* Decompresses the frame in *buf (nbytes). The frame must record its content size (every
 * frame ZSTD_compress writes does). Returns the chunk size, or 0 on a damaged frame. */
static size_t h5zstd_decompress_(size_t nbytes, size_t *buf_size, void **buf) {
    unsigned long long const size = ZSTD_getFrameContentSize(*buf, nbytes);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) return 0;
    if (size > (unsigned long long)((size_t)-1)) return 0;
    void *out = malloc(size ? (size_t)size : 1);
    if (!out) return 0;
    size_t const got = ZSTD_decompress(out, (size_t)size, *buf, nbytes);
    if (ZSTD_isError(got) || got != (size_t)size) {
        free(out);
        return 0;
    }
    free(*buf);
    *buf = out;
    *buf_size = (size_t)size;
    return got;
}

static size_t h5zstd_filter_(unsigned flags, size_t cd_nelmts, const unsigned cd_values[],
                             size_t nbytes, size_t *buf_size, void **buf) {
    if (flags & H5Z_FLAG_REVERSE) return h5zstd_decompress_(nbytes, buf_size, buf);
    return h5zstd_compress_(cd_nelmts, cd_values, nbytes, buf_size, buf);
}

static const H5Z_class2_t h5zstd_class_ = {
    H5Z_CLASS_T_VERS,             /* version of this struct */
    (H5Z_filter_t)H5ZSTD_FILTER_ID,
    1,                            /* encoder present */
    1,                            /* decoder present */
    "zstd (nupes-mpi)",
    NULL,                         /* can_apply */
    NULL,                         /* set_local */
    h5zstd_filter_,
};

#endif
