/* A .safetensors file: the u64 header length, the JSON header, every tensor's range
 * (io/safetensors.c). An accepted tensor must lie inside the file: its bytes are read and,
 * for F32/F16/BF16, converted. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "safetensors.h"

static void safetensors_exercise(const SafetensorsFile *f) {
    for (int i = 0; i < safetensors_count(f); i++) {
        const StTensor *t = safetensors_tensor(f, i);
        FUZZ_CHECK(safetensors_find(f, t->name) != NULL);
        unsigned sum = 0;
        for (size_t b = 0; b < t->nbytes; b++) sum += t->data[b];
        fuzz_sink += (float)sum + (float)strlen(safetensors_dtype_name(t->dtype));
        if (!safetensors_dtype_is_float(t->dtype) || t->nbytes == 0) continue;
        size_t const count = t->nbytes / (t->dtype == ST_F32 ? 4 : 2);
        float *out = malloc(count * sizeof *out);
        FUZZ_CHECK(out != NULL);
        safetensors_to_f32(t, out);
        fuzz_sink += out[count - 1];
        const float *view = safetensors_f32_view(t);
        if (view) fuzz_sink += view[count - 1];
        free(out);
        safetensors_drop_pages(f, t);
    }
}

int fuzz_safetensors(const uint8_t *data, size_t size) {
    char path[128];
    if (fuzz_write_temp(data, size, ".safetensors", path, sizeof path) != 0) return 0;
    SafetensorsFile *f = NULL;
    nq_status const st = safetensors_open(path, &f);
    FUZZ_CHECK((st == NQ_OK) == (f != NULL));
    if (st == NQ_OK) safetensors_exercise(f);
    safetensors_close(f);
    unlink(path);
    nq_clear_error();
    return 0;
}

FUZZ_ENTRY(fuzz_safetensors)
