/* Writing a GGUF file (version 3), the format llama.cpp loads, as ggml's gguf.cpp reads it:
 *
 *   "GGUF" u32 version=3, u64 n_tensors, u64 n_kv
 *   n_kv x {string key, u32 value_type, value}      (string = u64 length + bytes, no NUL;
 *                                                   array = u32 elem_type, u64 n, elems)
 *   n_tensors x {string name, u32 n_dims, u64 ne[n_dims] (ne[0] = the contiguous, row
 *                dimension), u32 ggml_type, u64 offset from the data section}
 *   zero padding to general.alignment (32), then the data section: each tensor at its
 *   offset, every offset a multiple of the alignment. Everything little-endian.
 *
 * Use: describe everything first (key/values, tensors with shapes and types), then
 * gguf_writer_begin writes the header to a stream, and gguf_writer_tensor_data is called
 * once per tensor in the order they were added with its exact encoded bytes (possibly in
 * several pieces: it may be called with a tensor's rows in chunks; the writer pads when a
 * tensor is complete). The tensor payloads are opaque: any ggml type whose row size
 * ggml_types.h knows can be added. */
#ifndef NUPES_GGUF_WRITER_H
#define NUPES_GGUF_WRITER_H

#include <stdint.h>
#include <stdio.h>

#include "ggml_types.h"
#include "status.h"

#define GGUF_ALIGNMENT 32

typedef struct GgufWriter GgufWriter;

/* path: the final file name, for messages. NULL on allocation failure (error set). */
GgufWriter *gguf_writer_new(const char *path);
void gguf_writer_free(GgufWriter *w); /* NULL is fine */

/* Key/values, in the order added. Each returns NQ_OK or NQ_ERR_RUNTIME (out of memory). */
nq_status gguf_kv_u32(GgufWriter *w, const char *key, uint32_t v);
nq_status gguf_kv_f32(GgufWriter *w, const char *key, float v);
nq_status gguf_kv_bool(GgufWriter *w, const char *key, int v);
nq_status gguf_kv_string(GgufWriter *w, const char *key, const char *v);
/* Arrays: strings given with their lengths (pieces may hold any bytes). */
nq_status gguf_kv_string_array(GgufWriter *w, const char *key, const char *const *v, const size_t *len, uint64_t n);
nq_status gguf_kv_f32_array(GgufWriter *w, const char *key, const float *v, uint64_t n);
nq_status gguf_kv_i32_array(GgufWriter *w, const char *key, const int32_t *v, uint64_t n);

/* A tensor of n_dims (1..4) dims, ne[0] the row length; ne[0] must be a multiple of the
 * type's block size (NQ_ERR_RUNTIME otherwise: callers pick the type first). */
nq_status gguf_add_tensor(GgufWriter *w, const char *name, int n_dims, const int64_t *ne, GgmlType type);

/* Total bytes the file will have (after every tensor was added). */
uint64_t gguf_writer_file_size(const GgufWriter *w);

/* Writes the header and tensor infos to f (positioned at 0). */
nq_status gguf_writer_begin(GgufWriter *w, FILE *f);

/* Appends bytes of the current tensor's data; when the tensor's size is reached the
 * padding is written and the next tensor becomes current. Writing more than the tensor's
 * size, or data after the last tensor, is an error. */
nq_status gguf_writer_tensor_data(GgufWriter *w, const void *data, size_t n);

/* Checks that every tensor's data was written (call before closing f). */
nq_status gguf_writer_finish(GgufWriter *w);

#endif
