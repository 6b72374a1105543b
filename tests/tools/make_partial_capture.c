/* make_partial_capture ACTIVATIONS.h5 OUT.partial K
 *
 * Turns a complete activations file into a capture killed after level K-1: copies it to
 * OUT.partial, sets its levels_done mark to K (io/activations.h) and overwrites levels
 * K..L with NaN, so that a resume which reused them instead of capturing them again would
 * train on NaN (and fail). For tests/test_run_complete.sh. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out) {
        if (in) fclose(in);
        if (out) fclose(out);
        return -1;
    }
    char buf[1 << 16];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = -1;
    fclose(in);
    if (fclose(out) != 0) rc = -1;
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: make_partial_capture ACTIVATIONS.h5 OUT.partial K\n");
        return 2;
    }
    int const k = atoi(argv[3]);
    if (copy_file(argv[1], argv[2]) != 0) {
        fprintf(stderr, "make_partial_capture: cannot copy %s to %s\n", argv[1], argv[2]);
        return 1;
    }
    hid_t const f = H5Fopen(argv[2], H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t const d = f >= 0 ? H5Dopen2(f, "inputs", H5P_DEFAULT) : -1;
    hid_t const space = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t dims[4] = {0};
    if (space < 0 || H5Sget_simple_extent_dims(space, dims, NULL) != 4 || k < 1 || (hsize_t)k >= dims[0]) {
        fprintf(stderr, "make_partial_capture: %s: no /inputs [L+1][N][T][d] with 1 <= K < L+1\n", argv[2]);
        return 1;
    }
    hsize_t const start[4] = {(hsize_t)k, 0, 0, 0}, count[4] = {dims[0] - (hsize_t)k, dims[1], dims[2], dims[3]};
    hsize_t const n = count[0] * count[1] * count[2] * count[3];
    float *nan_data = malloc(n * sizeof(float));
    for (hsize_t i = 0; i < n; i++) nan_data[i] = NAN;
    hid_t const mem = H5Screate_simple(1, &n, NULL);
    int ok = nan_data && mem >= 0 && H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
             H5Dwrite(d, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, nan_data) >= 0;
    free(nan_data);
    int zero = 0;
    const char *names[2] = {"levels_done", "complete"};
    int const values[2] = {k, zero};
    for (int i = 0; i < 2 && ok; i++) {
        if (H5Aexists(f, names[i]) > 0) H5Adelete(f, names[i]);
        hid_t const as = H5Screate(H5S_SCALAR);
        hid_t const a = H5Acreate2(f, names[i], H5T_NATIVE_INT, as, H5P_DEFAULT, H5P_DEFAULT);
        ok = a >= 0 && H5Awrite(a, H5T_NATIVE_INT, &values[i]) >= 0;
        if (a >= 0) H5Aclose(a);
        H5Sclose(as);
    }
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(d);
    if (H5Fclose(f) < 0 || !ok) {
        fprintf(stderr, "make_partial_capture: %s: cannot write\n", argv[2]);
        return 1;
    }
    printf("%s: levels 0..%d kept, %d..%llu NaN, levels_done = %d\n", argv[2], k - 1, k,
           (unsigned long long)dims[0] - 1, k);
    return 0;
}
