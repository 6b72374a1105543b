/* Run directory: creation, resume by fingerprint, refusal naming what differs (model,
 * calibration, first setting), --restart removing only our files, damaged run.toml,
 * orphaned results, block scan, progress.log and the fingerprint itself.
 *
 * `test_run_dir --make-fixture DIR MODEL CHECKPOINT` instead builds a small run directory
 * for tests/test_inspect.sh: run.toml for MODEL, block 0 done (block_file_save), block 1
 * in progress (step 40 of 500), block 2 with a damaged state file, block 4 with a damaged
 * done file and a state file, a complete activations.h5; and a partial CHECKPOINT
 * (checkpoint_create) with blocks 0 (code entropy 0 bits) and 1 (1 bit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>

#include "block_file.h"
#include "checkpoint.h"
#include "config.h"
#include "fingerprint.h"
#include "h5util.h"
#include "model_file.h"
#include "progress_log.h"
#include "run_dir.h"
#include "run_lock.h"
#include "atomic_file.h"
#include <sys/wait.h>
#include "state_file.h"

static char base[256];
static int32_t tokens[3][8];

static void make_tokens(void) {
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 8; j++) tokens[i][j] = 1 + (i * 31 + j * 7) % 500;
}

static void fp_with(Fingerprint *fp, uint64_t model, int bits) {
    NupesConfig cfg;
    config_defaults(&cfg);
    cfg.bits = bits;
    assert_int_equal(fingerprint_compute(model, &tokens[0][0], 3, 8, &cfg, fp), NQ_OK);
}

static void sub(char *out, size_t size, const char *dir, const char *name) {
    snprintf(out, size, "%s/%s", dir, name);
}

static int exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void touch(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[65536];
    size_t const n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void new_dir(char *dir, size_t size, const char *name) {
    snprintf(dir, size, "%s/%s", base, name);
}

static void test_fingerprint(void **state) {
    (void)state;
    Fingerprint a, b, c;
    fp_with(&a, 0x1234, 4);
    fp_with(&b, 0x1234, 4);
    assert_string_equal(a.hex, b.hex);
    assert_int_equal(strlen(a.hex), 32);
    assert_int_equal(a.model, 0x1234);
    assert_non_null(strstr(a.settings_toml, "bits = 4"));
    fp_with(&c, 0x1234, 3);
    assert_string_not_equal(a.hex, c.hex);
    assert_true(a.settings != c.settings && a.calibration == c.calibration);
    /* same ids, other shape: another calibration set */
    assert_int_equal(fingerprint_from_parts(0x1234, &tokens[0][0], 4, 6, a.settings_toml, &c), NQ_OK);
    assert_true(c.calibration != a.calibration);
    assert_int_equal(fingerprint_check(&a, &b, "x/run.toml"), NQ_OK);
}

static void test_fresh_then_resume(void **state) {
    (void)state;
    char dir[512], path[600];
    new_dir(dir, sizeof dir, "fresh/run"); /* parents are created too */
    Fingerprint fp;
    fp_with(&fp, 42, 4);
    RunDirStatus st = {7, 7};
    assert_int_equal(run_dir_prepare(dir, "[model]\npath = \"m.bin\"\n", &fp, NULL, 0, &st), NQ_OK);
    assert_int_equal(st.resumed, 0);
    assert_int_equal(st.restarted, 0);
    sub(path, sizeof path, dir, "state");
    assert_true(exists(path));
    sub(path, sizeof path, dir, "done");
    assert_true(exists(path));
    sub(path, sizeof path, dir, "run.toml");
    char *text = strdup(slurp(path));
    assert_non_null(strstr(text, "path = \"m.bin\""));
    assert_non_null(strstr(text, fp.hex));
    Fingerprint back;
    assert_int_equal(run_dir_read_fingerprint(dir, &back), NQ_OK);
    assert_int_equal(fingerprint_check(&back, &fp, path), NQ_OK);
    assert_string_equal(back.settings_toml, fp.settings_toml);
    /* same fingerprint: resumed, run.toml untouched (even with another config text) */
    assert_int_equal(run_dir_prepare(dir, "[model]\npath = \"other.bin\"\n", &fp, NULL, 0, &st), NQ_OK);
    assert_int_equal(st.resumed, 1);
    assert_string_equal(slurp(path), text);
    free(text);
}

static void expect_refusal(const char *dir, const Fingerprint *fp, const char *needle) {
    RunDirStatus st;
    nq_clear_error();
    assert_int_equal(run_dir_prepare(dir, "", fp, NULL, 0, &st), NQ_ERR_INPUT);
    printf("    expected error: %s\n", nq_last_error());
    assert_non_null(strstr(nq_last_error(), "run.toml"));
    assert_non_null(strstr(nq_last_error(), "--restart"));
    assert_non_null(strstr(nq_last_error(), needle));
    nq_clear_error();
}

static void test_refusals(void **state) {
    (void)state;
    char dir[512], want[128];
    new_dir(dir, sizeof dir, "refuse");
    Fingerprint fp, other;
    fp_with(&fp, 0x1a2b, 4);
    RunDirStatus st;
    assert_int_equal(run_dir_prepare(dir, "", &fp, NULL, 0, &st), NQ_OK);
    fp_with(&other, 0x3c4d, 4);
    snprintf(want, sizeof want, "different model (weights hash %016llx vs %016llx)", 0x1a2bull, 0x3c4dull);
    expect_refusal(dir, &other, want);
    tokens[2][5] += 1;
    fp_with(&other, 0x1a2b, 4);
    tokens[2][5] -= 1;
    expect_refusal(dir, &other, "different calibration data");
    fp_with(&other, 0x1a2b, 3);
    expect_refusal(dir, &other, "different settings: quantization.bits = 4 in the run directory, 3 now");
    NupesConfig cfg;
    config_defaults(&cfg);
    cfg.mode = MODE_SEQUENTIAL;
    assert_int_equal(fingerprint_compute(0x1a2b, &tokens[0][0], 3, 8, &cfg, &other), NQ_OK);
    expect_refusal(dir, &other, "reconstruction.mode = \"parallel\" in the run directory, \"sequential\" now");
}

static void test_restart_removes_only_ours(void **state) {
    (void)state;
    char dir[512], p[700];
    new_dir(dir, sizeof dir, "restart");
    Fingerprint fp, other;
    fp_with(&fp, 1, 4);
    fp_with(&other, 2, 4);
    RunDirStatus st;
    assert_int_equal(run_dir_prepare(dir, "", &fp, NULL, 0, &st), NQ_OK);
    static const char *ours[] = {"done/block-0000.h5", "state/block-0001.h5", "activations.h5",
                                 "state/.block-0002.h5.tmp.123", ".run.toml.tmp.99", "activations.h5.partial",
                                 "qinputs/level-0001.h5", "qinputs/level-0004.h5", "qinputs/.level-0002.h5.tmp"};
    static const char *theirs[] = {"notes.txt", "checkpoint.h5", "progress.log", "state/mine.txt",
                                   "done/block-7.h5", "done/block-0003.h5.bak", ".hidden.tmp.x",
                                   "qinputs/level-3.h5", "lock", "lock.holder"};
    for (size_t i = 0; i < sizeof ours / sizeof *ours; i++) sub(p, sizeof p, dir, ours[i]), touch(p, "x");
    for (size_t i = 0; i < sizeof theirs / sizeof *theirs; i++) sub(p, sizeof p, dir, theirs[i]), touch(p, "y");
    expect_refusal(dir, &other, "different model");
    assert_int_equal(run_dir_prepare(dir, "[x]\n", &other, NULL, 1, &st), NQ_OK);
    assert_int_equal(st.restarted, 1);
    assert_int_equal(st.resumed, 0);
    for (size_t i = 0; i < sizeof ours / sizeof *ours; i++) sub(p, sizeof p, dir, ours[i]), assert_false(exists(p));
    for (size_t i = 0; i < sizeof theirs / sizeof *theirs; i++) sub(p, sizeof p, dir, theirs[i]), assert_true(exists(p));
    Fingerprint back;
    assert_int_equal(run_dir_read_fingerprint(dir, &back), NQ_OK);
    assert_string_equal(back.hex, other.hex);
    /* restart with the same fingerprint starts over too */
    sub(p, sizeof p, dir, "done/block-0004.h5");
    touch(p, "x");
    assert_int_equal(run_dir_prepare(dir, "", &other, NULL, 1, &st), NQ_OK);
    assert_int_equal(st.restarted, 1);
    assert_false(exists(p));
}

static void test_damaged_toml_and_orphans(void **state) {
    (void)state;
    char dir[512], p[700];
    new_dir(dir, sizeof dir, "damaged");
    Fingerprint fp;
    fp_with(&fp, 5, 4);
    RunDirStatus st;
    assert_int_equal(run_dir_prepare(dir, "", &fp, NULL, 0, &st), NQ_OK);
    sub(p, sizeof p, dir, "run.toml");
    touch(p, "[model\npath = 3\n");
    expect_refusal(dir, &fp, "cannot be parsed");
    touch(p, "[model]\npath = \"a\"\n");
    expect_refusal(dir, &fp, "[fingerprint] table missing or damaged");
    assert_int_equal(run_dir_prepare(dir, "", &fp, NULL, 1, &st), NQ_OK);
    assert_int_equal(st.restarted, 1);
    /* results without run.toml */
    unlink(p);
    sub(p, sizeof p, dir, "done/block-0002.h5");
    touch(p, "x");
    expect_refusal(dir, &fp, "done/block-0002.h5");
    assert_int_equal(run_dir_prepare(dir, "", &fp, NULL, 1, &st), NQ_OK);
    assert_false(exists(p));
}

/* Creates the stale and kept files in dir, prepares dir for output path out, and checks
 * that exactly the stale ones are gone and the start was (or was not) a resume. */
static void expect_sweep(const char *dir, const char *out, const Fingerprint *fp, const char *const *stale,
                         size_t n_stale, const char *const *kept, size_t n_kept, int resumed) {
    char p[700];
    RunDirStatus st;
    for (size_t i = 0; i < n_stale; i++) sub(p, sizeof p, dir, stale[i]), touch(p, "x");
    for (size_t i = 0; i < n_kept; i++) sub(p, sizeof p, dir, kept[i]), touch(p, "y");
    assert_int_equal(run_dir_prepare(dir, "", fp, out, 0, &st), NQ_OK);
    assert_int_equal(st.resumed, resumed);
    for (size_t i = 0; i < n_stale; i++) sub(p, sizeof p, dir, stale[i]), assert_false(exists(p));
    for (size_t i = 0; i < n_kept; i++) sub(p, sizeof p, dir, kept[i]), assert_true(exists(p));
}

/* A resume sweeps temporaries (ours and the checkpoint's beside output.path), nothing else;
 * a resume never removes complete artifacts nor the partial capture. */
static void test_resume_sweeps_temporaries(void **state) {
    (void)state;
    char dir[512], p[700], out[700];
    new_dir(dir, sizeof dir, "sweep");
    Fingerprint fp;
    fp_with(&fp, 9, 4);
    RunDirStatus st;
    snprintf(out, sizeof out, "%s/out/ckpt.h5", dir);
    assert_int_equal(run_dir_prepare(dir, "", &fp, out, 0, &st), NQ_OK);
    snprintf(p, sizeof p, "%s/out", dir);
    assert_true(exists(p)); /* output.path's directory inside run.dir is made with the layout */
    static const char *const stale[] = {"state/.block-0002.h5.tmp.123", "done/.block-0001.h5.tmp.7", ".run.toml.tmp.99",
                                  ".lock.holder.tmp.5", "qinputs/.level-0002.h5.tmp", "out/.ckpt.h5.tmp.4242"};
    static const char *const kept[] = {"activations.h5.partial", "qinputs/level-0001.h5", "done/block-0000.h5",
                                 "out/.other.h5.tmp.1", "state/.block-0002.h5.tmp.x", "notes.txt", "out/ckpt.h5"};
    expect_sweep(dir, out, &fp, stale, sizeof stale / sizeof *stale, kept, sizeof kept / sizeof *kept, 1);
}

/* A job SIGKILLed after taking the lock but before writing run.toml left lock.holder's
 * temporary (test_faults_kill found it): the next start, a fresh one, removes it. */
static void test_first_start_sweeps_temporaries(void **state) {
    (void)state;
    char dir[512], out[700];
    new_dir(dir, sizeof dir, "fresh-sweep");
    assert_int_equal(make_dirs(dir), NQ_OK);
    Fingerprint fp;
    fp_with(&fp, 9, 4);
    snprintf(out, sizeof out, "%s/ckpt.h5", dir);
    static const char *const stale[] = {".lock.holder.tmp.10333", ".run.toml.tmp.10333", ".ckpt.h5.tmp.4242"};
    static const char *const kept[] = {"lock", "lock.holder", "notes.txt", ".other.h5.tmp.1"};
    expect_sweep(dir, out, &fp, stale, sizeof stale / sizeof *stale, kept, sizeof kept / sizeof *kept, 0);
}

static void test_check_paths(void **state) {
    (void)state;
    char dir[512], p[700], q[700];
    new_dir(dir, sizeof dir, "paths");
    assert_int_equal(make_dirs(dir), NQ_OK);
    snprintf(p, sizeof p, "%s/file", dir);
    touch(p, "x");
    assert_int_equal(run_dir_check_paths(p, NULL), NQ_ERR_INPUT);
    assert_non_null(strstr(nq_last_error(), "exists and is not a directory"));
    nq_clear_error();
    snprintf(p, sizeof p, "%s/run", dir);
    assert_int_equal(run_dir_check_paths(p, dir), NQ_ERR_INPUT); /* output.path a directory */
    assert_non_null(strstr(nq_last_error(), "is a directory"));
    nq_clear_error();
    snprintf(q, sizeof q, "%s/run-out/c.h5", dir); /* starts with the run.dir string, outside it */
    assert_int_equal(run_dir_check_paths(p, q), NQ_ERR_INPUT);
    assert_non_null(strstr(nq_last_error(), "does not exist"));
    nq_clear_error();
    snprintf(q, sizeof q, "%s/run/sub/c.h5", dir); /* inside: made with the layout */
    assert_int_equal(run_dir_check_paths(p, q), NQ_OK);
    snprintf(q, sizeof q, "%s/c.h5", dir);
    assert_int_equal(run_dir_check_paths(p, q), NQ_OK);
}

/* The lock is held by one process at a time and dropped when its holder dies. */
static void test_lock(void **state) {
    (void)state;
    char dir[512];
    new_dir(dir, sizeof dir, "lock");
    int to_child[2], from_child[2];
    assert_int_equal(pipe(to_child), 0);
    assert_int_equal(pipe(from_child), 0);
    pid_t const child = fork();
    assert_true(child >= 0);
    if (child == 0) { /* the holder: takes the lock, says so, waits to be told to die */
        RunLock *lock = NULL;
        char c = run_lock_take(dir, &lock) == NQ_OK ? 'y' : 'n';
        if (write(from_child[1], &c, 1) != 1 || read(to_child[0], &c, 1) < 0) _exit(1);
        _exit(0); /* without releasing: the kernel does */
    }
    char c = 0;
    assert_int_equal(read(from_child[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    char holder[512];
    assert_int_equal(run_lock_held(dir, holder, sizeof holder), 1);
    char want[64];
    snprintf(want, sizeof want, "pid %ld started ", (long)child);
    assert_non_null(strstr(holder, want));
    RunLock *lock = NULL;
    assert_int_equal(run_lock_take(dir, &lock), NQ_ERR_INPUT);
    assert_non_null(strstr(nq_last_error(), "in use by another job"));
    assert_non_null(strstr(nq_last_error(), want));
    nq_clear_error();
    assert_int_equal(write(to_child[1], "x", 1), 1);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_int_equal(run_lock_held(dir, holder, sizeof holder), 0);
    assert_int_equal(run_lock_take(dir, &lock), NQ_OK);
    run_lock_release(lock);
    for (int i = 0; i < 2; i++) close(to_child[i]), close(from_child[i]);
}

static void test_paths(void **state) {
    (void)state;
    char buf[64];
    assert_int_equal(run_dir_state_path("run", 7, buf, sizeof buf), NQ_OK);
    assert_string_equal(buf, "run/state/block-0007.h5");
    assert_int_equal(run_dir_done_path("run", 12345, buf, sizeof buf), NQ_OK);
    assert_string_equal(buf, "run/done/block-12345.h5");
    assert_int_equal(run_dir_activations_path("a/b", buf, sizeof buf), NQ_OK);
    assert_string_equal(buf, "a/b/activations.h5");
    assert_int_equal(run_dir_progress_path("r", buf, sizeof buf), NQ_OK);
    assert_string_equal(buf, "r/progress.log");
    char small[12];
    assert_int_equal(run_dir_state_path("run", 7, small, sizeof small), NQ_ERR_INPUT);
    nq_clear_error();
}

/* A done file's header as block_file_save writes it (the datasets do not matter here). */
static void write_done_header(const char *path, int block, double loss_init, double loss_final,
                              double seconds) {
    hid_t f;
    assert_int_equal(h5u_init(), NQ_OK);
    assert_int_equal(h5u_create(path, &f), NQ_OK);
    assert_int_equal(h5u_attr_write_string(f, path, "format", BLOCK_FILE_FORMAT), NQ_OK);
    assert_int_equal(h5u_attr_write_int(f, path, "format_version", BLOCK_FILE_VERSION), NQ_OK);
    assert_int_equal(h5u_attr_write_int(f, path, "block", block), NQ_OK);
    assert_int_equal(h5u_attr_write_int(f, path, "bits", 4), NQ_OK);
    assert_int_equal(h5u_attr_write_int(f, path, "group_size", 0), NQ_OK);
    assert_int_equal(h5u_attr_write_string(f, path, "exponent", "tensor"), NQ_OK);
    assert_int_equal(h5u_attr_write_double(f, path, "loss_init", loss_init), NQ_OK);
    assert_int_equal(h5u_attr_write_double(f, path, "loss_final", loss_final), NQ_OK);
    assert_int_equal(h5u_attr_write_double(f, path, "seconds", seconds), NQ_OK);
    assert_int_equal(h5u_close_file(f, path), NQ_OK);
}

static void write_state(const char *dir, int block, int step) {
    char p[700];
    float z[10] = {1, 2, 3};
    ReconArray a[1] = {{"z", z, 10, 0}};
    StateInfo info = {.block = block, .step = step, .iterations = 500, .loss_init = 2e-3,
                      .loss_last = 1e-3, .seconds = 3.5};
    assert_int_equal(run_dir_state_path(dir, block, p, sizeof p), NQ_OK);
    assert_int_equal(state_file_save(p, &info, a, 1), NQ_OK);
}

/* Blocks: 0 done, 1 in progress, 2 damaged state, 3 pending, 4 damaged done + good state,
 * 5 a done file of another block. */
static void build_scan_dir(const char *dir) {
    char p[700];
    assert_int_equal(run_dir_done_path(dir, 0, p, sizeof p), NQ_OK);
    write_done_header(p, 0, 1.2e-3, 4.5e-4, 12.3);
    write_state(dir, 1, 40);
    assert_int_equal(run_dir_state_path(dir, 2, p, sizeof p), NQ_OK);
    touch(p, "garbage");
    assert_int_equal(run_dir_done_path(dir, 4, p, sizeof p), NQ_OK);
    touch(p, "garbage");
    write_state(dir, 4, 499);
    assert_int_equal(run_dir_done_path(dir, 5, p, sizeof p), NQ_OK);
    write_done_header(p, 4, 1, 1, 1);
}

static void test_scan(void **state) {
    (void)state;
    char dir[512];
    new_dir(dir, sizeof dir, "scan");
    Fingerprint fp;
    fp_with(&fp, 9, 4);
    RunDirStatus st;
    assert_int_equal(run_dir_prepare(dir, "", &fp, NULL, 0, &st), NQ_OK);
    build_scan_dir(dir);
    BlockStatus s[7];
    assert_int_equal(run_dir_scan(dir, 7, s), NQ_OK);
    assert_string_equal(nq_last_error(), ""); /* damaged files are not errors */
    assert_int_equal(s[0].state, BLOCK_DONE);
    assert_true(s[0].loss_init == 1.2e-3 && s[0].loss_final == 4.5e-4 && s[0].seconds == 12.3);
    assert_int_equal(s[1].state, BLOCK_IN_PROGRESS);
    assert_int_equal(s[1].step, 40);
    assert_int_equal(s[1].iterations, 500);
    assert_int_equal(s[1].damaged, 0);
    assert_int_equal(s[2].state, BLOCK_PENDING);
    assert_int_equal(s[2].damaged, 1);
    assert_int_equal(s[3].state, BLOCK_PENDING);
    assert_int_equal(s[3].damaged, 0);
    assert_int_equal(s[4].state, BLOCK_IN_PROGRESS);
    assert_int_equal(s[4].step, 499);
    assert_int_equal(s[4].damaged, 1);
    assert_int_equal(s[5].state, BLOCK_PENDING);
    assert_int_equal(s[5].damaged, 1);
    assert_int_equal(s[6].state, BLOCK_PENDING);
}

static void test_progress_log(void **state) {
    (void)state;
    char path[512];
    new_dir(path, sizeof path, "progress.log");
    ProgressLog *log = NULL;
    assert_int_equal(progress_log_open(path, &log), NQ_OK);
    assert_int_equal(progress_log_printf(log, "block %d done loss %.1e -> %.1e in %.1f s", 3, 1.2e-3, 4.5e-4, 12.3), NQ_OK);
    assert_int_equal(progress_log_printf(log, "two\nlines"), NQ_OK);
    progress_log_close(log);
    assert_int_equal(progress_log_open(path, &log), NQ_OK); /* appends */
    char long_msg[3000];
    memset(long_msg, 'x', sizeof long_msg - 1);
    long_msg[sizeof long_msg - 1] = '\0';
    assert_int_equal(progress_log_printf(log, "%s", long_msg), NQ_OK);
    progress_log_close(log);
    progress_log_close(NULL);
    char *text = slurp(path);
    char *lines[4] = {0};
    int n = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && n < 4; l = strtok_r(NULL, "\n", &save)) lines[n++] = l;
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        int y, mo, d, h, mi, s;
        char z;
        assert_int_equal(sscanf(lines[i], "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &s, &z), 7);
        assert_int_equal(z, 'Z');
        assert_true(y >= 2024 && mo >= 1 && mo <= 12);
        assert_int_equal(lines[i][20], ' ');
    }
    assert_string_equal(lines[0] + 21, "block 3 done loss 1.2e-03 -> 4.5e-04 in 12.3 s");
    assert_string_equal(lines[1] + 21, "two lines");
    assert_true(strlen(lines[2]) > 900 && lines[2][21] == 'x');
    assert_int_equal(progress_log_open("/nonexistent-dir/x.log", &log), NQ_ERR_RUNTIME);
    assert_null(log);
    nq_clear_error();
}

/* ------------------------------------------------------------------ fixture for inspect */

/* A real result for block l: codes alternate -pattern..pattern (pattern 0: all zero, so
 * entropy 0; pattern 1: -1, 1, -1, ... so entropy exactly 1 bit). */
static nq_status make_result(const ModelConfig *c, int l, int pattern, BlockResult *r) {
    QuantSpec const spec = {.bits = 4, .group_size = 0, .per_row = 0};
    if (block_result_alloc(r, c, spec, l, 0) != NQ_OK) return NQ_ERR_RUNTIME;
    for (int i = 0; i < N_MATS; i++) {
        QuantMatrix *q = &r->mat[i];
        size_t const n = (size_t)q->shape.rows * q->shape.cols;
        int8_t *codes = quant_matrix_array(q, "codes");
        for (size_t j = 0; j < n; j++) codes[j] = (int8_t)(pattern ? (j % 2 ? pattern : -pattern) : 0);
        for (int k = 1; k < q->n_arrays; k++) /* scales 0.1, exponents 1 */
            for (size_t j = 0; j < qarray_count(&q->desc[k]); j++)
                qarray_set_float(&q->desc[k], q->array[k], j, strcmp(q->desc[k].name, "scale") ? 1.0f : 0.1f);
    }
    r->loss_init = 2.5e-3f;
    r->loss_final = 7.5e-4f;
    r->seconds = 4.25;
    return NQ_OK;
}

/* done/block-0000.h5 through block_file_save, and a partial checkpoint holding blocks 0
 * (entropy 0) and 1 (entropy 1) at path. */
static nq_status write_results(const char *dir, Model *m, const char *ckpt) {
    const ModelConfig *c = model_config(m);
    char p[700];
    BlockResult r;
    HeadWeights head;
    CheckpointWriter *w = NULL;
    CheckpointMeta const meta = {.method = "nupes", .spec = {4, 0, 0}, .fingerprint = "fixture",
                                 .config_toml = "", .status = "partial"};
    nq_status st = make_result(c, 0, 1, &r);
    if (st == NQ_OK) st = run_dir_done_path(dir, 0, p, sizeof p);
    if (st == NQ_OK) st = block_file_save(p, &r, 3);
    block_result_free(&r);
    if (st == NQ_OK) st = model_head(m, &head);
    if (st == NQ_OK) st = checkpoint_create(ckpt, &meta, c, &head, 3, &w);
    for (int l = 0; l < 2 && st == NQ_OK; l++) {
        BlockWeights bw;
        st = model_block(m, l, &bw);
        if (st == NQ_OK) st = make_result(c, l, l, &r);
        if (st == NQ_OK) st = checkpoint_write_block(w, &r, bw.attn_norm, bw.ffn_norm);
        block_result_free(&r);
        model_release_block(m, l);
    }
    if (st == NQ_OK) return checkpoint_commit(w);
    checkpoint_abort(w);
    return st;
}

/* activations.h5: /inputs [L+1][N][T][d] for 5 blocks, complete. */
static nq_status write_activations(const char *dir) {
    static float x[6][3][8][64];
    hsize_t const dims[4] = {6, 3, 8, 64};
    char p[700];
    hid_t f;
    nq_status st = run_dir_activations_path(dir, p, sizeof p);
    if (st == NQ_OK) st = h5u_create(p, &f);
    if (st == NQ_OK) st = h5u_write(f, p, "inputs", H5U_F32, 4, dims, x, 0);
    if (st == NQ_OK) st = h5u_attr_write_int(f, p, "complete", 1);
    if (st == NQ_OK) st = h5u_close_file(f, p);
    return st;
}

static int make_fixture(const char *dir, const char *model, const char *ckpt) {
    NupesConfig cfg;
    config_defaults(&cfg);
    snprintf(cfg.model_path, sizeof cfg.model_path, "%s", model);
    snprintf(cfg.run_dir, sizeof cfg.run_dir, "%s", dir);
    make_tokens();
    Fingerprint fp;
    RunDirStatus rs;
    Model *m = NULL;
    char *toml = config_to_toml(&cfg);
    nq_status st = toml ? h5u_init() : NQ_ERR_RUNTIME;
    if (st == NQ_OK) st = fingerprint_compute(77, &tokens[0][0], 3, 8, &cfg, &fp);
    if (st == NQ_OK) st = run_dir_prepare(dir, toml, &fp, NULL, 1, &rs);
    if (st == NQ_OK) build_scan_dir(dir);
    if (st == NQ_OK) st = model_open(model, "auto", &m);
    if (st == NQ_OK) st = write_results(dir, m, ckpt);
    if (st == NQ_OK) st = write_activations(dir);
    if (st != NQ_OK) fprintf(stderr, "make-fixture: %s\n", nq_last_error());
    model_close(m);
    free(toml);
    return st == NQ_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--make-fixture") == 0) return make_fixture(argv[2], argv[3], argv[4]);
    make_tokens();
    snprintf(base, sizeof base, "test_run_dir.%ld", (long)getpid());
    if (mkdir(base, 0777) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_fresh_then_resume),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_restart_removes_only_ours),
        cmocka_unit_test(test_damaged_toml_and_orphans),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_resume_sweeps_temporaries),
        cmocka_unit_test(test_first_start_sweeps_temporaries),
        cmocka_unit_test(test_check_paths),
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_progress_log),
    };
    int const failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed == 0) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", base); /* our own scratch directory */
        if (system(cmd) != 0) return 1;
    }
    return failed;
}
