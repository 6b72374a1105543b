#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The format caps the header at 100 MB; a larger length is a corrupt file. */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

struct SafetensorsFile {
    char path[PATH_MAX];
    unsigned char *map; /* whole file, PROT_READ */
    size_t size;        /* file size in bytes */
    size_t data_start;  /* 8 + header length */
    cJSON *header;      /* owns the tensor names */
    int n;
    StTensor *tensors;  /* [n], file (header) order */
};

static const struct { const char *name; StDtype dtype; size_t size; } dtype_table[] = {
    {"F32", ST_F32, 4},   {"F16", ST_F16, 2},   {"BF16", ST_BF16, 2},
    {"F64", ST_F64, 8},   {"I64", ST_I64, 8},   {"I32", ST_I32, 4},
    {"I16", ST_I16, 2},   {"I8", ST_I8, 1},     {"U8", ST_U8, 1},
    {"BOOL", ST_BOOL, 1}, {"U16", ST_U16, 2},   {"U32", ST_U32, 4},
    {"U64", ST_U64, 8},   {"F8_E4M3", ST_F8_E4M3, 1}, {"F8_E5M2", ST_F8_E5M2, 1},
};
enum { N_DTYPES = sizeof dtype_table / sizeof dtype_table[0] };

const char *safetensors_dtype_name(StDtype dt) {
    for (int i = 0; i < N_DTYPES; i++)
        if (dtype_table[i].dtype == dt) return dtype_table[i].name;
    return "?";
}

int safetensors_dtype_is_float(StDtype dt) { return dt == ST_F32 || dt == ST_F16 || dt == ST_BF16; }

static size_t dtype_size(StDtype dt) {
    for (int i = 0; i < N_DTYPES; i++)
        if (dtype_table[i].dtype == dt) return dtype_table[i].size;
    return 0;
}

/* ---------------------------------------------------------------- tensor access */

static uint16_t load_u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

void safetensors_to_f32(const StTensor *t, float *out) {
    size_t const n = t->nbytes / dtype_size(t->dtype);
    if (t->dtype == ST_F32) {
        memcpy(out, t->data, t->nbytes); /* little-endian host, like the file */
    } else if (t->dtype == ST_F16) {
        for (size_t i = 0; i < n; i++) out[i] = half_to_float(load_u16(t->data + 2 * i));
    } else if (t->dtype == ST_BF16) {
        for (size_t i = 0; i < n; i++) out[i] = bf16_to_float(load_u16(t->data + 2 * i));
    }
}

const float *safetensors_f32_view(const StTensor *t) {
    if (t->dtype != ST_F32 || ((uintptr_t)t->data % sizeof(float)) != 0) return NULL;
    return (const float *)(const void *)t->data;
}

void safetensors_drop_pages(const SafetensorsFile *f, const StTensor *t) {
    long const page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || t->nbytes == 0) return;
    size_t const begin = t->offset / (size_t)page * (size_t)page;
    size_t const end = t->offset + t->nbytes;
    (void)madvise(f->map + begin, end - begin, MADV_DONTNEED); /* advice only */
}

/* ---------------------------------------------------------------- header parsing */

/* A JSON number that is a non-negative integer below 2^53 (exact in a double). */
static int json_size(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double const v = item->valuedouble;
    if (!(v >= 0 && v < 9007199254740992.0) || v != (double)(uint64_t)v) return 0;
    *out = (uint64_t)v;
    return 1;
}

static nq_status parse_dtype(const SafetensorsFile *f, const char *name, const cJSON *entry,
                             StDtype *dt) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    if (!cJSON_IsString(item))
        return nq_fail(NQ_ERR_INPUT, "%s: tensor \"%s\": dtype missing, expected a string", f->path, name);
    for (int i = 0; i < N_DTYPES; i++) {
        if (strcmp(item->valuestring, dtype_table[i].name) == 0) {
            *dt = dtype_table[i].dtype;
            return NQ_OK;
        }
    }
    return nq_fail(NQ_ERR_INPUT, "%s: tensor \"%s\": unknown dtype \"%s\"", f->path, name, item->valuestring);
}

static nq_status parse_shape(const SafetensorsFile *f, const char *name, const cJSON *entry,
                             StTensor *t, uint64_t *count) {
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    int const ndim = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : -1;
    if (ndim < 0 || ndim > ST_MAX_DIMS)
        return nq_fail(NQ_ERR_INPUT, "%s: tensor \"%s\": shape missing or has more than %d dims", f->path, name, ST_MAX_DIMS);
    *count = 1;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        uint64_t dim;
        if (!json_size(cJSON_GetArrayItem(shape, i), &dim) || dim > (uint64_t)INT64_MAX)
            return nq_fail(NQ_ERR_INPUT, "%s: tensor \"%s\": shape[%d] is not a non-negative integer", f->path, name, i);
        t->shape[i] = (int64_t)dim;
        if (dim != 0 && *count > UINT64_MAX / dim)
            return nq_fail(NQ_ERR_INPUT, "%s: tensor \"%s\": shape overflows", f->path, name);
        *count *= dim;
    }
    return NQ_OK;
}

/* Fills t from one header entry and checks its byte range against the file. */
static nq_status parse_entry(const SafetensorsFile *f, const cJSON *entry, StTensor *t) {
    const char *name = entry->string;
    t->name = name;
    if (!cJSON_IsObject(entry))
        return nq_fail(NQ_ERR_INPUT, "%s: tensor \"%s\": expected an object", f->path, name);
    nq_status st = parse_dtype(f, name, entry, &t->dtype);
    uint64_t count = 0;
    if (st == NQ_OK) st = parse_shape(f, name, entry, t, &count);
    if (st != NQ_OK) return st;
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    uint64_t begin = 0, end = 0;
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        !json_size(cJSON_GetArrayItem(offsets, 0), &begin) || !json_size(cJSON_GetArrayItem(offsets, 1), &end))
        return nq_fail(NQ_ERR_INPUT, "%s: tensor \"%s\": data_offsets missing, expected [begin, end]", f->path, name);
    uint64_t const data_size = f->size - f->data_start;
    if (begin > end || end > data_size)
        return nq_fail(NQ_ERR_INPUT, "%s: tensor \"%s\": data_offsets [%llu, %llu] run past the end of the data (%llu bytes)",
                       f->path, name, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)data_size);
    size_t const esize = dtype_size(t->dtype);
    if (count > UINT64_MAX / esize || end - begin != count * esize)
        return nq_fail(NQ_ERR_INPUT, "%s: tensor \"%s\": data_offsets [%llu, %llu] hold %llu bytes, shape and dtype %s need %llu",
                       f->path, name, (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)(end - begin), safetensors_dtype_name(t->dtype),
                       (unsigned long long)(count * esize));
    t->nbytes = (size_t)(end - begin);
    t->offset = f->data_start + (size_t)begin;
    t->data = f->map + t->offset;
    return NQ_OK;
}

static int compare_offset(const void *a, const void *b) {
    const StTensor *const *x = a, *const *y = b;
    return ((*x)->offset > (*y)->offset) - ((*x)->offset < (*y)->offset);
}

/* Two tensors may not share bytes (a corrupt or hostile header). */
static nq_status check_overlaps(const SafetensorsFile *f) {
    if (f->n < 2) return NQ_OK;
    const StTensor **order = nq_calloc((size_t)f->n, sizeof *order, "safetensors order");
    if (!order) return NQ_ERR_RUNTIME;
    for (int i = 0; i < f->n; i++) order[i] = &f->tensors[i];
    qsort(order, (size_t)f->n, sizeof *order, compare_offset);
    nq_status st = NQ_OK;
    for (int i = 1; i < f->n && st == NQ_OK; i++) {
        const StTensor *prev = order[i - 1], *cur = order[i];
        if (cur->nbytes > 0 && prev->offset + prev->nbytes > cur->offset)
            st = nq_fail(NQ_ERR_INPUT, "%s: tensor \"%s\": data_offsets overlap those of tensor \"%s\"",
                         f->path, cur->name, prev->name);
    }
    free(order);
    return st;
}

static nq_status parse_header(SafetensorsFile *f) {
    if (f->size < 8)
        return nq_fail(NQ_ERR_INPUT, "%s: file is %zu bytes, expected at least 8 (header length)", f->path, f->size);
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--) len = (len << 8) | f->map[i];
    if (len > f->size - 8 || len > ST_MAX_HEADER)
        return nq_fail(NQ_ERR_INPUT, "%s: header length = %llu, expected at most %zu (the rest of the file)",
                       f->path, (unsigned long long)len, f->size - 8);
    f->data_start = 8 + (size_t)len;
    f->header = cJSON_ParseWithLength((const char *)f->map + 8, (size_t)len);
    if (!f->header || !cJSON_IsObject(f->header))
        return nq_fail(NQ_ERR_INPUT, "%s: header is not a JSON object (malformed JSON)", f->path);
    int const entries = cJSON_GetArraySize(f->header);
    f->tensors = nq_calloc((size_t)entries + 1, sizeof *f->tensors, "safetensors tensors");
    if (!f->tensors) return NQ_ERR_RUNTIME;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, f->header) {
        if (strcmp(entry->string, "__metadata__") == 0) continue;
        nq_status const st = parse_entry(f, entry, &f->tensors[f->n]);
        if (st != NQ_OK) return st;
        f->n++;
    }
    return check_overlaps(f);
}

nq_status safetensors_open(const char *path, SafetensorsFile **out) {
    *out = NULL;
    SafetensorsFile *f = nq_calloc(1, sizeof *f, "safetensors file");
    if (!f) return NQ_ERR_RUNTIME;
    snprintf(f->path, sizeof f->path, "%s", path);
    nq_status st = NQ_OK;
    int const fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        st = nq_fail(NQ_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
        goto cleanup;
    }
    f->size = (size_t)sb.st_size;
    if (f->size > 0) {
        void *map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            st = nq_fail(NQ_ERR_RUNTIME, "%s: mmap of %zu bytes failed: %s", path, f->size, strerror(errno));
            goto cleanup;
        }
        f->map = map;
    }
    st = parse_header(f);
cleanup:
    if (fd >= 0) close(fd); /* the mapping stays valid */
    if (st != NQ_OK) {
        safetensors_close(f);
        return st;
    }
    *out = f;
    return NQ_OK;
}

void safetensors_close(SafetensorsFile *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->size);
    cJSON_Delete(f->header);
    free(f->tensors);
    free(f);
}

const char *safetensors_path(const SafetensorsFile *f) { return f->path; }
int safetensors_count(const SafetensorsFile *f) { return f->n; }
const StTensor *safetensors_tensor(const SafetensorsFile *f, int i) { return &f->tensors[i]; }

const StTensor *safetensors_find(const SafetensorsFile *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}
