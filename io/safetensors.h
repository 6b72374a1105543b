/* Reading one .safetensors file (the Hugging Face tensor container).
 *
 * Layout: u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {...}}
 * then the data buffer; offsets are relative to the start of the buffer (byte 8 + N).
 *
 * The file is mapped read-only, never read whole: a tensor's pages are touched only when
 * its data is converted, so a rank that converts one block's tensors reads only those.
 * Every header entry is validated on open (known dtype, shape product times the dtype
 * size equal to the byte range, ranges inside the file and not overlapping). */
#ifndef NUPES_SAFETENSORS_H
#define NUPES_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "float16.h" /* half_to_float, float_to_half, bf16_to_float, float_to_bf16 */
#include "status.h"

#define ST_MAX_DIMS 8

typedef enum {
    ST_F32, ST_F16, ST_BF16,                         /* the ones we convert to fp32 */
    ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL, /* valid, not convertible */
    ST_U16, ST_U32, ST_U64, ST_F8_E4M3, ST_F8_E5M2,
} StDtype;

typedef struct {
    const char *name;            /* owned by the file */
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;               /* prod(shape) * dtype size */
    const unsigned char *data;   /* into the mapping; no alignment promised */
    size_t offset;               /* of data in the file (for hashing, madvise) */
} StTensor;

typedef struct SafetensorsFile SafetensorsFile;

/* Maps and validates path. Errors (NQ_ERR_INPUT) name the file and the tensor/field. */
nq_status safetensors_open(const char *path, SafetensorsFile **out);
void safetensors_close(SafetensorsFile *f); /* NULL is fine */

const char *safetensors_path(const SafetensorsFile *f);
int safetensors_count(const SafetensorsFile *f);
const StTensor *safetensors_tensor(const SafetensorsFile *f, int i); /* file order */
const StTensor *safetensors_find(const SafetensorsFile *f, const char *name); /* or NULL */

/* "F32", "BF16", ... */
const char *safetensors_dtype_name(StDtype dt);

/* 1 for F32, F16 and BF16. */
int safetensors_dtype_is_float(StDtype dt);

/* Converts t (F32, F16 or BF16) to fp32: out [prod(shape)]. Exact (every F16 and BF16
 * value is representable in fp32). */
void safetensors_to_f32(const StTensor *t, float *out);

/* The data of an F32 tensor as floats when it is 4-byte aligned in memory, else NULL (the
 * caller then converts a copy). */
const float *safetensors_f32_view(const StTensor *t);

/* Tells the kernel the pages of t are no longer needed (after conversion or release). */
void safetensors_drop_pages(const SafetensorsFile *f, const StTensor *t);

/* Scalar conversions: half_to_float, float_to_half, bf16_to_float, float_to_bf16 (src/float16.h). */

#endif
