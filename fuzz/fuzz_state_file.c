/* Optimiser state files, run.dir/state/block-NNNN.h5 (io/state_file.c): the header reader
 * used by the run-directory scan and the full load with checksum, on arbitrary bytes.
 * The arrays expected are a fixed small set (the seeds in fuzz/corpus/state_file were
 * written with the same set by state_file_save). */
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "state_file.h"

enum { STATE_BLOCK = 3, STATE_N = 3 };

static void state_arrays(float *z, float *m, double *t, ReconArray a[STATE_N]) {
    memset(a, 0, STATE_N * sizeof *a);
    strcpy(a[0].name, "z/wq");
    a[0].data = z;
    a[0].count = 6;
    strcpy(a[1].name, "adam_m/wq");
    a[1].data = m;
    a[1].count = 6;
    strcpy(a[2].name, "exponent");
    a[2].data = t;
    a[2].count = 2;
    a[2].is_double = 1;
}

int fuzz_state_file(const uint8_t *data, size_t size) {
    char path[128];
    if (fuzz_write_temp(data, size, ".h5", path, sizeof path) != 0) return 0;
    StateInfo info;
    if (state_file_info(path, &info) == NQ_OK) FUZZ_CHECK(info.step >= 0 && info.step <= info.iterations);
    nq_clear_error();
    float z[6], m[6];
    double t[2];
    ReconArray arrays[STATE_N];
    state_arrays(z, m, t, arrays);
    if (state_file_load(path, STATE_BLOCK, arrays, STATE_N, &info) == NQ_OK) {
        FUZZ_CHECK(info.block == STATE_BLOCK);
        fuzz_sink = z[5] + m[5] + (float)t[1];
    } else {
        FUZZ_CHECK(*nq_last_error() != '\0');
    }
    unlink(path);
    nq_clear_error();
    return 0;
}

/* Writes a valid seed (fuzz/make_seeds.c). */
int fuzz_state_file_seed(const char *path, int step);
int fuzz_state_file_seed(const char *path, int step) {
    float z[6] = {0.5f, -1, 2, 0, 1e-3f, 7}, m[6] = {1, 2, 3, 4, 5, 6};
    double t[2] = {1.25, 3.5};
    ReconArray arrays[STATE_N];
    state_arrays(z, m, t, arrays);
    StateInfo const info = {STATE_BLOCK, step, 60, 0.5, 0.25, 1.5};
    return state_file_save(path, &info, arrays, STATE_N) == NQ_OK ? 0 : -1;
}

FUZZ_ENTRY(fuzz_state_file)
