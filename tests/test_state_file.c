/* State files: bit-exact round trip, damaged and truncated files detected (NQ_ERR_INPUT,
 * never a crash), wrong block / config refused, a failed save leaves the previous file,
 * a save out of time gives up and leaves the previous file, the save's bytes written on a
 * thread (and failing there), and the write bandwidth of a
 * large state (printed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>

#include "state_file.h"

static char dir[256];

/* Five arrays like a Recon's: floats of several sizes, a nested name, an empty one and
 * doubles; values include -0, NaN payloads, denormals and infinities. */
enum { N_ARR = 5 };
typedef struct {
    ReconArray a[N_ARR];
    float *f[3];
    double *d;
} Arrays;

static uint32_t lcg(uint32_t *s) { return *s = *s * 1664525u + 1013904223u; }

static void arrays_make(Arrays *x, uint32_t seed) {
    static const char *names[N_ARR] = {"z", "wq/m", "wq/v", "empty", "a_sum"};
    size_t const counts[N_ARR] = {100003, 4096, 4096, 0, 37};
    memset(x, 0, sizeof *x);
    for (int i = 0; i < N_ARR; i++) {
        snprintf(x->a[i].name, sizeof x->a[i].name, "%s", names[i]);
        x->a[i].count = counts[i];
        x->a[i].is_double = i == 4;
    }
    for (int i = 0; i < 3; i++) {
        x->f[i] = malloc(counts[i] * sizeof(float));
        for (size_t j = 0; j < counts[i]; j++) {
            uint32_t bits = lcg(&seed);
            memcpy(&x->f[i][j], &bits, 4); /* any bit pattern, NaN payloads included */
        }
        x->a[i].data = x->f[i];
    }
    x->d = malloc(counts[4] * sizeof(double));
    for (size_t j = 0; j < counts[4]; j++) x->d[j] = (double)lcg(&seed) / 3.0 - 1e9;
    x->d[0] = -0.0;
    x->a[3].data = NULL;
    x->a[4].data = x->d;
}

/* Same names and sizes, zeroed buffers. */
static void arrays_like(Arrays *x, const Arrays *like) {
    *x = *like;
    for (int i = 0; i < 3; i++) x->a[i].data = x->f[i] = calloc(like->a[i].count + 1, sizeof(float));
    x->a[4].data = x->d = calloc(like->a[4].count, sizeof(double));
}

static void arrays_free(Arrays *x) {
    for (int i = 0; i < 3; i++) free(x->f[i]);
    free(x->d);
}

static void path_in(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", dir, name); }

static StateInfo info_of(int block, int step) {
    StateInfo s = {.block = block, .step = step, .iterations = 500, .loss_init = 1.25e-3,
                   .loss_last = 4.5e-4, .seconds = 12.5};
    return s;
}

/* path loads (checksum verified) as block's state at step, with the arrays of want. */
static void expect_loads_as(const char *path, int block, int step, const Arrays *want) {
    Arrays got;
    arrays_like(&got, want);
    StateInfo out;
    assert_int_equal(state_file_load(path, block, got.a, N_ARR, &out), NQ_OK);
    assert_int_equal(out.step, step);
    for (int i = 0; i < 3; i++) assert_memory_equal(want->f[i], got.f[i], want->a[i].count * sizeof(float));
    assert_memory_equal(want->d, got.d, want->a[4].count * sizeof(double));
    arrays_free(&got);
}

static void test_round_trip(void **state) {
    (void)state;
    Arrays x, y;
    char path[512];
    arrays_make(&x, 7);
    arrays_like(&y, &x);
    path_in(path, sizeof path, "block-0003.h5");
    StateInfo const in = info_of(3, 123);
    assert_int_equal(state_file_save(path, &in, x.a, N_ARR), NQ_OK);
    StateInfo out;
    assert_int_equal(state_file_load(path, 3, y.a, N_ARR, &out), NQ_OK);
    assert_int_equal(out.block, 3);
    assert_int_equal(out.step, 123);
    assert_int_equal(out.iterations, 500);
    assert_true(out.loss_init == in.loss_init && out.loss_last == in.loss_last &&
                out.seconds == in.seconds);
    for (int i = 0; i < 3; i++) assert_memory_equal(x.f[i], y.f[i], x.a[i].count * sizeof(float));
    assert_memory_equal(x.d, y.d, x.a[4].count * sizeof(double));
    StateInfo hdr;
    assert_int_equal(state_file_info(path, &hdr), NQ_OK);
    assert_int_equal(hdr.step, 123);
    assert_int_equal(hdr.iterations, 500);
    arrays_free(&x);
    arrays_free(&y);
}

static void copy_prefix(const char *from, const char *to, long bytes) {
    FILE *f = fopen(from, "rb"), *g = fopen(to, "wb");
    assert_non_null(f);
    assert_non_null(g);
    for (long i = 0; i < bytes; i++) {
        int const c = fgetc(f);
        if (c == EOF) break;
        fputc(c, g);
    }
    fclose(f);
    fclose(g);
}

static long file_size(const char *path) {
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (long)sb.st_size;
}

static void expect_input_error(const char *path, int block, const Arrays *like, const char *needle) {
    Arrays y;
    StateInfo out;
    arrays_like(&y, like);
    nq_clear_error();
    assert_int_equal(state_file_load(path, block, y.a, N_ARR, &out), NQ_ERR_INPUT);
    printf("    expected error: %s\n", nq_last_error());
    assert_non_null(strstr(nq_last_error(), path));
    if (needle) assert_non_null(strstr(nq_last_error(), needle));
    nq_clear_error();
    arrays_free(&y);
}

static void test_truncated(void **state) {
    (void)state;
    Arrays x;
    char path[512], cut[512];
    arrays_make(&x, 11);
    path_in(path, sizeof path, "block-0001.h5");
    path_in(cut, sizeof cut, "cut.h5");
    StateInfo const in = info_of(1, 5);
    assert_int_equal(state_file_save(path, &in, x.a, N_ARR), NQ_OK);
    long const size = file_size(path);
    long const cuts[] = {0, 7, 512, size / 3, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        copy_prefix(path, cut, cuts[i]);
        expect_input_error(cut, 1, &x, NULL);
    }
    path_in(cut, sizeof cut, "missing.h5");
    expect_input_error(cut, 1, &x, "cannot open");
    arrays_free(&x);
}

/* Offset of the first occurrence of needle (len bytes) in the file. */
static long find_bytes(const char *path, const void *needle, size_t len) {
    long const size = file_size(path);
    unsigned char *buf = malloc((size_t)size);
    FILE *f = fopen(path, "rb");
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    long at = -1;
    for (long i = 0; i + (long)len <= size && at < 0; i++)
        if (memcmp(buf + i, needle, len) == 0) at = i;
    free(buf);
    return at;
}

static void flip_byte(const char *path, long at) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    int const c = fgetc(f);
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    fputc(c ^ 0x10, f);
    fclose(f);
}

static void test_flipped_byte(void **state) {
    (void)state;
    Arrays x;
    char path[512];
    arrays_make(&x, 13);
    path_in(path, sizeof path, "block-0002.h5");
    StateInfo const in = info_of(2, 9);
    /* a byte in the middle of each float array, then of the double array */
    for (int which = 0; which < 5; which++) {
        if (which == 3) continue; /* empty */
        assert_int_equal(state_file_save(path, &in, x.a, N_ARR), NQ_OK);
        size_t const esize = x.a[which].is_double ? 8 : 4;
        const unsigned char *data = x.a[which].data;
        long const at = find_bytes(path, data, 16);
        assert_true(at >= 0);
        flip_byte(path, at + (long)(x.a[which].count / 2 * esize) + 1);
        expect_input_error(path, 2, &x, "checksum");
    }
    arrays_free(&x);
}

static void test_wrong_block_and_config(void **state) {
    (void)state;
    Arrays x, other;
    char path[512];
    arrays_make(&x, 17);
    path_in(path, sizeof path, "block-0004.h5");
    StateInfo const in = info_of(4, 1);
    assert_int_equal(state_file_save(path, &in, x.a, N_ARR), NQ_OK);
    expect_input_error(path, 5, &x, "block = 4, expected 5");
    /* one array longer: another config */
    arrays_make(&other, 17);
    other.a[1].count = 4000;
    expect_input_error(path, 4, &other, "wq/m");
    other.a[1].count = 4096;
    /* a float array read as double */
    other.a[2].is_double = 1;
    expect_input_error(path, 4, &other, "wq/v");
    arrays_free(&other);
    /* not a state file at all */
    path_in(path, sizeof path, "not-hdf5.h5");
    FILE *f = fopen(path, "wb");
    fputs("hello", f);
    fclose(f);
    expect_input_error(path, 4, &x, "not an HDF5 file");
    arrays_free(&x);
}

static int count_tmp_files(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static void test_failed_save_keeps_previous(void **state) {
    (void)state;
    Arrays x, y;
    char path[512];
    arrays_make(&x, 19);
    path_in(path, sizeof path, "block-0006.h5");
    StateInfo const first = info_of(6, 10);
    assert_int_equal(state_file_save(path, &first, x.a, N_ARR), NQ_OK);
    /* a save that fails half-way: two arrays with the same name */
    Arrays bad;
    arrays_make(&bad, 23);
    snprintf(bad.a[2].name, sizeof bad.a[2].name, "%s", bad.a[1].name);
    StateInfo const second = info_of(6, 20);
    nq_clear_error();
    assert_int_equal(state_file_save(path, &second, bad.a, N_ARR), NQ_ERR_RUNTIME);
    printf("    expected error: %s\n", nq_last_error());
    nq_clear_error();
    assert_int_equal(count_tmp_files(), 0);
    arrays_like(&y, &x);
    StateInfo out;
    assert_int_equal(state_file_load(path, 6, y.a, N_ARR, &out), NQ_OK);
    assert_int_equal(out.step, 10);
    assert_memory_equal(x.f[0], y.f[0], x.a[0].count * sizeof(float));
    arrays_free(&x);
    arrays_free(&y);
    arrays_free(&bad);
}

/* A save given a time limit that has already run out gives up: NQ_STOPPED, no error, no
 * temporary left, the previous file at the path untouched (it still loads at its step);
 * given time enough, the same call writes the file whole, and its report counts every
 * byte. The limit (1 ns) is shorter than the checksum and the file's creation alone take,
 * whatever the machine. */
static void test_save_within_gives_up_and_keeps_previous(void **state) {
    (void)state;
    Arrays x, newer;
    char path[512];
    arrays_make(&x, 29);
    arrays_make(&newer, 31);
    path_in(path, sizeof path, "block-0007.h5");
    StateInfo const first = info_of(7, 10), second = info_of(7, 20);
    assert_int_equal(state_file_save(path, &first, x.a, N_ARR), NQ_OK);
    StateSaveReport r;
    nq_clear_error();
    assert_int_equal(state_file_save_within(path, &second, newer.a, N_ARR, 1e-9, &r), NQ_STOPPED);
    assert_string_equal(nq_last_error(), "");
    assert_true(r.gave_up);
    assert_true(r.written < r.bytes);
    assert_int_equal(count_tmp_files(), 0);
    expect_loads_as(path, 7, 10, &x);
    assert_int_equal(state_file_save_within(path, &second, newer.a, N_ARR, 3600, &r), NQ_OK);
    assert_false(r.gave_up);
    size_t const want = (100003 + 4096 + 4096) * sizeof(float) + 37 * sizeof(double);
    assert_true(r.bytes == want && r.written == want);
    expect_loads_as(path, 7, 20, &newer);
    arrays_free(&x);
    arrays_free(&newer);
}

/* The save in steps, its bytes written on a thread of their own (as the job's periodic
 * saves are, while the next iteration computes): the same file as one call writes. A
 * limit already past when the thread starts gives up at its first write, however fast
 * the machine; a write that fails on the thread (the file size limit, EFBIG) is reported
 * by the finish on the caller's thread, naming the file, and leaves the previous file. */
static void test_threaded_write(void **state) {
    (void)state;
    Arrays x, newer;
    char path[512];
    arrays_make(&x, 37);
    arrays_make(&newer, 41);
    path_in(path, sizeof path, "block-0008.h5");
    StateInfo const first = info_of(8, 3), second = info_of(8, 4);
    StateWrite *w = NULL;
    StateSaveReport r;
    assert_int_equal(state_write_begin(path, &first, x.a, N_ARR, &w), NQ_OK);
    assert_int_equal(state_write_start(w), NQ_OK);
    assert_int_equal(state_write_finish(w, &r), NQ_OK);
    assert_true(r.written == r.bytes && !r.gave_up);
    expect_loads_as(path, 8, 3, &x);

    assert_int_equal(state_write_begin(path, &second, newer.a, N_ARR, &w), NQ_OK);
    state_write_limit(w, -1);
    assert_int_equal(state_write_start(w), NQ_OK);
    assert_int_equal(state_write_finish(w, &r), NQ_STOPPED);
    assert_true(r.gave_up && r.written == 0);
    assert_int_equal(count_tmp_files(), 0);

    /* EFBIG past 4 KiB of file: the header fits, the first array's bytes do not */
    assert_int_equal(state_write_begin(path, &second, newer.a, N_ARR, &w), NQ_OK);
    struct rlimit old, small = {4096, 4096};
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small.rlim_max = old.rlim_max;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    assert_int_equal(state_write_start(w), NQ_OK);
    nq_clear_error();
    nq_status const failed = state_write_finish(w, &r);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(failed, NQ_ERR_RUNTIME);
    printf("    expected error: %s\n", nq_last_error());
    assert_non_null(strstr(nq_last_error(), path));
    assert_non_null(strstr(nq_last_error(), "pwrite"));
    nq_clear_error();
    assert_int_equal(count_tmp_files(), 0);
    expect_loads_as(path, 8, 3, &x);
    arrays_free(&x);
    arrays_free(&newer);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* z, m, v of n floats each (NUPES_STATE_BENCH_MB total, default 384 MB). */
static void test_bandwidth(void **state) {
    (void)state;
    const char *env = getenv("NUPES_STATE_BENCH_MB");
    size_t const total_mb = env ? (size_t)strtoul(env, NULL, 10) : 384;
    size_t const n = total_mb * (1u << 20) / 3 / sizeof(float);
    ReconArray a[3] = {{"z", NULL, n, 0}, {"m", NULL, n, 0}, {"v", NULL, n, 0}};
    for (int i = 0; i < 3; i++) {
        float *p = malloc(n * sizeof(float));
        assert_non_null(p);
        for (size_t j = 0; j < n; j++) p[j] = (float)(j % 1000) * 1e-3f + (float)i;
        a[i].data = p;
    }
    char path[512];
    path_in(path, sizeof path, "bench.h5");
    StateInfo const in = info_of(0, 1);
    double const t0 = now_s();
    assert_int_equal(state_file_save(path, &in, a, 3), NQ_OK);
    double const t1 = now_s();
    StateInfo out;
    assert_int_equal(state_file_load(path, 0, a, 3, &out), NQ_OK);
    double const t2 = now_s();
    double const mb = 3.0 * (double)n * sizeof(float) / 1e6;
    printf("    state file of %.0f MB: save %.2f s (%.0f MB/s incl. fsync), load+verify %.2f s "
           "(%.0f MB/s); a 2.4 GB 7B state would take ~%.1f s to save\n",
           mb, t1 - t0, mb / (t1 - t0), t2 - t1, mb / (t2 - t1), 2400.0 / (mb / (t1 - t0)));
    unlink(path);
    for (int i = 0; i < 3; i++) free(a[i].data);
}

static void remove_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(path);
}

int main(void) {
    snprintf(dir, sizeof dir, "test_state_file.%ld", (long)getpid());
    if (mkdir(dir, 0777) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_flipped_byte),
        cmocka_unit_test(test_wrong_block_and_config),
        cmocka_unit_test(test_failed_save_keeps_previous),
        cmocka_unit_test(test_save_within_gives_up_and_keeps_previous),
        cmocka_unit_test(test_threaded_write),
        cmocka_unit_test(test_bandwidth),
    };
    int const failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed == 0) remove_dir(dir);
    return failed;
}
