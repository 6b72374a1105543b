/* Replays the fuzz seeds (fuzz/corpus/NAME/) and every input a fuzzer ever failed on
 * (tests/fuzz-regressions/NAME/) through the same target functions as fuzz/run.sh, in the
 * normal and the sanitizer builds: a parser bug that was fixed stays fixed. Each target
 * aborts on a failed invariant; ASan reports leaks and overflows in the asan build. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

/* The targets themselves (without the libFuzzer entry points). */
#include "../fuzz/fuzz_common.c"
#include "../fuzz/fuzz_checkpoint.c"
#include "../fuzz/fuzz_config.c"
#include "../fuzz/fuzz_hf_model.c"
#include "../fuzz/fuzz_llama2c.c"
#include "../fuzz/fuzz_safetensors.c"
#include "../fuzz/fuzz_state_file.c"
#include "../fuzz/fuzz_tokenize_text.c"
#include "../fuzz/fuzz_tokenizer_file.c"

typedef int (*FuzzTarget)(const uint8_t *data, size_t size);

static uint8_t *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long const n = ftell(f);
    assert_true(n >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    uint8_t *data = malloc((size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return data;
}

/* Feeds every regular file of dir to fn; returns how many (0 when dir is missing). */
static int replay_dir(const char *dir, FuzzTarget fn) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (e->d_name[0] == '.' || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        size_t size = 0;
        uint8_t *data = read_file(path, &size);
        fn(data, size);
        free(data);
        n++;
    }
    closedir(d);
    return n;
}

/* Seeds must exist (a target without any would test nothing); regressions may not. */
static void replay(const char *name, FuzzTarget fn) {
    const char *src = getenv("NUPES_SOURCE_DIR");
    assert_non_null(src);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/fuzz/corpus/%s", src, name);
    int const seeds = replay_dir(dir, fn);
    snprintf(dir, sizeof dir, "%s/tests/fuzz-regressions/%s", src, name);
    int const regressions = replay_dir(dir, fn);
    print_message("  %-15s %d seeds, %d regression inputs\n", name, seeds, regressions);
    assert_true(seeds > 0);
}

static void test_llama2c(void **state) { (void)state; replay("llama2c", fuzz_llama2c); }
static void test_tokenizer_file(void **state) { (void)state; replay("tokenizer_file", fuzz_tokenizer_file); }
static void test_tokenize_text(void **state) {
    (void)state;
    replay("tokenize_text", fuzz_tokenize_text);
    fuzz_tokenize_text_cleanup();
}
static void test_safetensors(void **state) { (void)state; replay("safetensors", fuzz_safetensors); }
static void test_hf_model(void **state) {
    (void)state;
    replay("hf_model", fuzz_hf_model);
    fuzz_hf_model_cleanup();
}
static void test_config(void **state) { (void)state; replay("config", fuzz_config); }
static void test_state_file(void **state) { (void)state; replay("state_file", fuzz_state_file); }
static void test_checkpoint(void **state) { (void)state; replay("checkpoint", fuzz_checkpoint); }

/* The seeds are accepted by their parsers (so the fuzzers start from valid inputs and the
 * replay above covers the success paths): checked here for the two HDF5 writers' seeds. */
static void test_seeds_are_valid(void **state) {
    (void)state;
    const char *src = getenv("NUPES_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/fuzz/corpus/state_file/state-step7.h5", src);
    StateInfo info;
    assert_int_equal(state_file_info(path, &info), NQ_OK);
    assert_int_equal(info.step, 7);
    snprintf(path, sizeof path, "%s/fuzz/corpus/checkpoint/complete.h5", src);
    CheckpointReader *r = NULL;
    assert_int_equal(checkpoint_open(path, &r), NQ_OK);
    assert_true(checkpoint_has_block(r, 1));
    checkpoint_close(r);
    snprintf(path, sizeof path, "%s/fuzz/corpus/checkpoint/done-block-0001.h5", src);
    BlockResult b;
    assert_int_equal(block_file_load(path, &ckpt_model, &b), NQ_OK);
    assert_int_equal(b.block, 1);
    block_result_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama2c),       cmocka_unit_test(test_tokenizer_file),
        cmocka_unit_test(test_tokenize_text), cmocka_unit_test(test_safetensors),
        cmocka_unit_test(test_hf_model),      cmocka_unit_test(test_config),
        cmocka_unit_test(test_state_file),    cmocka_unit_test(test_checkpoint),
        cmocka_unit_test(test_seeds_are_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
