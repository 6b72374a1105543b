/* GGUF writer (see gguf_writer.h). The key/values and tensor infos are serialized into a
 * growing memory buffer as they are added; tensor data is streamed afterwards. */
#include "gguf_writer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { /* gguf_type, the value types of key/values */
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
};

typedef struct {
    unsigned char *data;
    size_t len, cap;
    int failed; /* an allocation failed: everything after is dropped */
} Buf;

typedef struct {
    uint64_t bytes;  /* data size, without padding */
    uint64_t offset; /* in the data section */
} TensorSpan;

struct GgufWriter {
    const char *path;
    Buf kv, tensors;
    uint64_t n_kv, n_tensors;
    TensorSpan *spans;
    size_t spans_cap;
    uint64_t data_size; /* padded */
    FILE *f;
    uint64_t current, written; /* tensor being written, its bytes so far */
};

static void buf_put(Buf *b, const void *p, size_t n) {
    if (b->failed) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        unsigned char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}
static void put_u32(Buf *b, uint32_t v) { buf_put(b, &v, 4); } /* little-endian hosts only */
static void put_u64(Buf *b, uint64_t v) { buf_put(b, &v, 8); }
static void put_str(Buf *b, const char *s, size_t n) {
    put_u64(b, n);
    buf_put(b, s, n);
}

static nq_status kv_done(GgufWriter *w, const char *key) {
    if (w->kv.failed) return nq_fail(NQ_ERR_RUNTIME, "%s: out of memory adding key %s", w->path, key);
    w->n_kv++;
    return NQ_OK;
}

GgufWriter *gguf_writer_new(const char *path) {
    GgufWriter *w = nq_calloc(1, sizeof *w, "GGUF writer");
    if (w) w->path = path;
    return w;
}

void gguf_writer_free(GgufWriter *w) {
    if (!w) return;
    free(w->kv.data);
    free(w->tensors.data);
    free(w->spans);
    free(w);
}

static void kv_head(GgufWriter *w, const char *key, uint32_t type) {
    put_str(&w->kv, key, strlen(key));
    put_u32(&w->kv, type);
}

nq_status gguf_kv_u32(GgufWriter *w, const char *key, uint32_t v) {
    kv_head(w, key, GGUF_TYPE_UINT32);
    put_u32(&w->kv, v);
    return kv_done(w, key);
}

nq_status gguf_kv_f32(GgufWriter *w, const char *key, float v) {
    kv_head(w, key, GGUF_TYPE_FLOAT32);
    buf_put(&w->kv, &v, 4);
    return kv_done(w, key);
}

nq_status gguf_kv_bool(GgufWriter *w, const char *key, int v) {
    unsigned char const b = v ? 1 : 0;
    kv_head(w, key, GGUF_TYPE_BOOL);
    buf_put(&w->kv, &b, 1);
    return kv_done(w, key);
}

nq_status gguf_kv_string(GgufWriter *w, const char *key, const char *v) {
    kv_head(w, key, GGUF_TYPE_STRING);
    put_str(&w->kv, v, strlen(v));
    return kv_done(w, key);
}

static void array_head(GgufWriter *w, const char *key, uint32_t elem_type, uint64_t n) {
    kv_head(w, key, GGUF_TYPE_ARRAY);
    put_u32(&w->kv, elem_type);
    put_u64(&w->kv, n);
}

nq_status gguf_kv_string_array(GgufWriter *w, const char *key, const char *const *v, const size_t *len, uint64_t n) {
    array_head(w, key, GGUF_TYPE_STRING, n);
    for (uint64_t i = 0; i < n; i++) put_str(&w->kv, v[i], len[i]);
    return kv_done(w, key);
}

nq_status gguf_kv_f32_array(GgufWriter *w, const char *key, const float *v, uint64_t n) {
    array_head(w, key, GGUF_TYPE_FLOAT32, n);
    buf_put(&w->kv, v, (size_t)n * 4);
    return kv_done(w, key);
}

nq_status gguf_kv_i32_array(GgufWriter *w, const char *key, const int32_t *v, uint64_t n) {
    array_head(w, key, GGUF_TYPE_INT32, n);
    buf_put(&w->kv, v, (size_t)n * 4);
    return kv_done(w, key);
}

static uint64_t pad_to(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

nq_status gguf_add_tensor(GgufWriter *w, const char *name, int n_dims, const int64_t *ne, GgmlType type) {
    const GgmlTypeInfo *t = ggml_type_info(type);
    if (!t || n_dims < 1 || n_dims > 4 || ne[0] % t->block_size != 0)
        return nq_fail(NQ_ERR_RUNTIME, "%s: tensor %s: row of %lld values cannot be stored as type %d", w->path,
                       name, (long long)ne[0], (int)type);
    if (w->n_tensors == w->spans_cap) {
        size_t const cap = w->spans_cap ? 2 * w->spans_cap : 64;
        TensorSpan *s = realloc(w->spans, cap * sizeof *s);
        if (!s) return nq_fail(NQ_ERR_RUNTIME, "%s: out of memory adding tensor %s", w->path, name);
        w->spans = s;
        w->spans_cap = cap;
    }
    uint64_t rows = 1;
    for (int i = 1; i < n_dims; i++) rows *= (uint64_t)ne[i];
    TensorSpan const span = {rows * ggml_row_bytes(type, ne[0]), w->data_size};
    put_str(&w->tensors, name, strlen(name));
    put_u32(&w->tensors, (uint32_t)n_dims);
    for (int i = 0; i < n_dims; i++) put_u64(&w->tensors, (uint64_t)ne[i]);
    put_u32(&w->tensors, (uint32_t)type);
    put_u64(&w->tensors, span.offset);
    if (w->tensors.failed) return nq_fail(NQ_ERR_RUNTIME, "%s: out of memory adding tensor %s", w->path, name);
    w->spans[w->n_tensors++] = span;
    w->data_size += pad_to(span.bytes, GGUF_ALIGNMENT);
    return NQ_OK;
}

static uint64_t header_size(const GgufWriter *w) { return 4 + 4 + 8 + 8 + w->kv.len + w->tensors.len; }

uint64_t gguf_writer_file_size(const GgufWriter *w) { return pad_to(header_size(w), GGUF_ALIGNMENT) + w->data_size; }

static nq_status write_bytes(GgufWriter *w, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, w->f) != n) return nq_fail(NQ_ERR_RUNTIME, "%s: write failed: %s", w->path, strerror(errno));
    return NQ_OK;
}

static nq_status write_zeros(GgufWriter *w, size_t n) {
    static const unsigned char zeros[GGUF_ALIGNMENT];
    return write_bytes(w, zeros, n);
}

nq_status gguf_writer_begin(GgufWriter *w, FILE *f) {
    w->f = f;
    w->current = w->written = 0;
    Buf head = {0};
    buf_put(&head, "GGUF", 4);
    put_u32(&head, 3);
    put_u64(&head, w->n_tensors);
    put_u64(&head, w->n_kv);
    nq_status st = head.failed ? nq_fail(NQ_ERR_RUNTIME, "%s: out of memory", w->path) : NQ_OK;
    if (st == NQ_OK) st = write_bytes(w, head.data, head.len);
    if (st == NQ_OK) st = write_bytes(w, w->kv.data, w->kv.len);
    if (st == NQ_OK) st = write_bytes(w, w->tensors.data, w->tensors.len);
    uint64_t const h = header_size(w);
    if (st == NQ_OK) st = write_zeros(w, (size_t)(pad_to(h, GGUF_ALIGNMENT) - h));
    free(head.data);
    return st;
}

nq_status gguf_writer_tensor_data(GgufWriter *w, const void *data, size_t n) {
    if (w->current >= w->n_tensors || w->written + n > w->spans[w->current].bytes)
        return nq_fail(NQ_ERR_RUNTIME, "%s: internal: %zu bytes more than tensor %llu holds", w->path, n,
                       (unsigned long long)w->current);
    nq_status st = write_bytes(w, data, n);
    w->written += n;
    uint64_t const bytes = w->spans[w->current].bytes;
    if (st == NQ_OK && w->written == bytes) {
        st = write_zeros(w, (size_t)(pad_to(bytes, GGUF_ALIGNMENT) - bytes));
        w->current++;
        w->written = 0;
    }
    return st;
}

nq_status gguf_writer_finish(GgufWriter *w) {
    if (w->current != w->n_tensors)
        return nq_fail(NQ_ERR_RUNTIME, "%s: internal: %llu of %llu tensors written", w->path,
                       (unsigned long long)w->current, (unsigned long long)w->n_tensors);
    return NQ_OK;
}
