/* calibration.tokens reader (see calib_tokens.h), through io/h5util.h. */
#include "calib_tokens.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"

/* Every id in [0, V); the first offender is reported with its position. */
static nq_status check_ids(const char *path, const int32_t *ids, size_t n, size_t row_len, int V) {
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= 0 && ids[i] < V) continue;
        if (row_len > 0)
            return nq_fail(NQ_ERR_INPUT, "%s: /%s[%zu][%zu] = %d, expected a token id in 0..%d (the model's vocab_size is %d)",
                           path, CALIB_TOKENS_DATASET, i / row_len, i % row_len, ids[i], V - 1, V);
        return nq_fail(NQ_ERR_INPUT, "%s: /%s[%zu] = %d, expected a token id in 0..%d (the model's vocab_size is %d)",
                       path, CALIB_TOKENS_DATASET, i, ids[i], V - 1, V);
    }
    return NQ_OK;
}

/* The dataset's shape, checked against T; *total = ids to read, *rows = windows it holds. */
static nq_status plan_read(const char *path, hid_t file, int T, int *rank, hsize_t dims[H5U_MAX_RANK],
                           size_t *rows) {
    nq_status st = h5u_shape(file, path, CALIB_TOKENS_DATASET, rank, dims);
    if (st != NQ_OK) return st;
    if (*rank == 2) {
        if (dims[1] != (hsize_t)T)
            return nq_fail(NQ_ERR_INPUT, "%s: /%s has rows of %llu tokens, expected calibration.seq_len = %d",
                           path, CALIB_TOKENS_DATASET, (unsigned long long)dims[1], T);
        *rows = (size_t)dims[0];
    } else if (*rank == 1) {
        *rows = (size_t)(dims[0] / (hsize_t)T);
    } else {
        return nq_fail(NQ_ERR_INPUT, "%s: /%s has %d dimensions, expected [sequences][seq_len] or a flat [tokens]",
                       path, CALIB_TOKENS_DATASET, *rank);
    }
    if (*rows == 0)
        return nq_fail(NQ_ERR_INPUT, "%s: /%s holds %llu tokens, fewer than one sequence of %d", path,
                       CALIB_TOKENS_DATASET, (unsigned long long)(*rank == 2 ? 0 : dims[0]), T);
    if (*rows > (size_t)INT32_MAX)
        return nq_fail(NQ_ERR_INPUT, "%s: /%s holds %zu sequences, expected fewer than 2^31", path, CALIB_TOKENS_DATASET, *rows);
    return NQ_OK;
}

nq_status calib_tokens_load(const char *path, int vocab_size, int T, int max_windows, int **windows,
                            int *n_windows) {
    *windows = NULL;
    *n_windows = 0;
    hid_t file = -1;
    int32_t *ids = NULL;
    int rank = 0;
    hsize_t dims[H5U_MAX_RANK] = {0};
    size_t rows = 0;
    nq_status st = h5u_init();
    if (st == NQ_OK) st = h5u_open_read(path, &file);
    if (st == NQ_OK) st = plan_read(path, file, T, &rank, dims, &rows);
    if (st != NQ_OK) goto cleanup;
    size_t const total = rank == 2 ? rows * (size_t)T : (size_t)dims[0];
    ids = nq_calloc(total, sizeof *ids, "calibration tokens");
    if (!ids) {
        st = NQ_ERR_RUNTIME;
        goto cleanup;
    }
    st = h5u_read(file, path, CALIB_TOKENS_DATASET, H5U_I32, rank, dims, ids);
    if (st != NQ_OK) goto cleanup;
    if (max_windows > 0 && rows > (size_t)max_windows) rows = (size_t)max_windows;
    st = check_ids(path, ids, rows * (size_t)T, rank == 2 ? (size_t)T : 0, vocab_size);
    if (st != NQ_OK) goto cleanup;
    int *out = nq_calloc(rows * (size_t)T, sizeof *out, "calibration windows");
    if (!out) {
        st = NQ_ERR_RUNTIME;
        goto cleanup;
    }
    for (size_t i = 0; i < rows * (size_t)T; i++) out[i] = ids[i];
    *windows = out;
    *n_windows = (int)rows;
cleanup:
    free(ids);
    if (file >= 0) {
        nq_status const cs = h5u_close_file(file, path);
        if (st == NQ_OK) st = cs;
    }
    if (st != NQ_OK) {
        free(*windows);
        *windows = NULL;
        *n_windows = 0;
    }
    return st;
}
