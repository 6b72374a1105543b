/* io/config: real TOML files in a mkdtemp directory; every error path with its message
 * (file, line, key, expectation), defaults, --set, the print -> load round trip, and the
 * bundled configs/stories260K.toml. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "config.h"
#include "quantizer.h"
#include "status.h"

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp_dir[256];
static char job_path[512]; /* tmp_dir/job.toml */

/* The minimum every valid file needs after config_validate. */
#define REQUIRED "[model]\npath = \"m.bin\"\n[calibration]\ntext = \"c.txt\"\n"

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static int group_setup(void **state) {
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/nupes-test-config-XXXXXX");
    if (!mkdtemp(tmp_dir)) return -1;
    snprintf(job_path, sizeof job_path, "%s/job.toml", tmp_dir);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    return nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Writes text to job.toml and loads it. */
static nq_status load_text(const char *text, NupesConfig *cfg) {
    write_text(job_path, text);
    nq_clear_error();
    return config_load(job_path, cfg);
}

/* The message holds every one of the NULL-terminated needles. */
static void assert_error_has(const char *first, ...) {
    const char *msg = nq_last_error();
    va_list ap;
    va_start(ap, first);
    for (const char *needle = first; needle; needle = va_arg(ap, const char *)) {
        if (!strstr(msg, needle)) {
            fprintf(stderr, "message: %s\nlacks:   %s\n", msg, needle);
            fail();
        }
    }
    va_end(ap);
    assert_null(strchr(msg, '\n')); /* one line */
}

/* job.toml:LINE: prefix of a load error. */
static const char *at_line(int line) {
    static char buf[600];
    snprintf(buf, sizeof buf, "%s:%d: ", job_path, line);
    return buf;
}

static void expect_load_error(const char *text, int line, const char *needle2,
                              const char *needle3) {
    NupesConfig cfg;
    assert_int_equal(load_text(text, &cfg), NQ_ERR_INPUT);
    assert_error_has(at_line(line), needle2, needle3, NULL);
}

static void expect_set_error(NupesConfig *cfg, const char *assignment, const char *needle) {
    nq_clear_error();
    assert_int_equal(config_set(cfg, assignment), NQ_ERR_INPUT);
    char prefix[300];
    snprintf(prefix, sizeof prefix, "--set %s: ", assignment);
    assert_error_has(prefix, needle, NULL);
}

/* ------------------------------------------------------------------ defaults and loading */

static void test_defaults(void **state) {
    (void)state;
    NupesConfig cfg;
    config_defaults(&cfg);
    assert_string_equal(cfg.model_path, "");
    assert_string_equal(cfg.model_format, "auto");
    assert_string_equal(cfg.tokenizer_path, "");
    assert_string_equal(cfg.calib_text, "");
    assert_string_equal(cfg.calib_tokens, "");
    assert_int_equal(cfg.calib_sequences, 0);
    assert_int_equal(cfg.calib_seq_len, 256);
    assert_int_equal(cfg.method, METHOD_NUPES);
    assert_int_equal(cfg.bits, 4);
    assert_int_equal(cfg.group_size, 0);
    assert_int_equal(cfg.exponent_per_channel, 0);
    assert_int_equal(cfg.learn_scale, 1);
    assert_int_equal(cfg.skip_mask, 0);
    assert_int_equal(cfg.mode, MODE_PARALLEL);
    assert_true(cfg.switch_fraction == 0.8);
    assert_int_equal(cfg.iterations, 500);
    assert_int_equal(cfg.batch, 4);
    assert_true(cfg.lr_weights == 1e-3 && cfg.lr_exponent == 1e-4 && cfg.lr_scale == 1e-3);
    assert_int_equal(cfg.seed, 1);
    assert_string_equal(cfg.run_dir, "run");
    assert_true(cfg.checkpoint_interval == 60.0);
    assert_true(cfg.stop_seconds == 20.0);
    assert_string_equal(cfg.output_path, "");
    assert_int_equal(cfg.zstd_level, 1);
    assert_int_equal(cfg.data_parallel, 1);
    assert_string_equal(cfg.eval_text, "");
    assert_int_equal(cfg.eval_seq_len, 256);
    assert_int_equal(cfg.eval_sequences, 0);
    assert_string_equal(config_method_name(METHOD_POWERQUANT), "powerquant");
    assert_string_equal(config_mode_name(MODE_PIPELINED), "pipelined");

    /* a file with only the required keys gives the defaults for the rest */
    NupesConfig loaded;
    assert_int_equal(load_text(REQUIRED, &loaded), NQ_OK);
    assert_int_equal(loaded.bits, 4);
    assert_int_equal(loaded.iterations, 500);
    assert_string_equal(loaded.run_dir, "run");
}

static void test_paths_relative_to_file(void **state) {
    (void)state;
    NupesConfig cfg;
    assert_int_equal(load_text("[model]\npath = \"sub/m.bin\"\n[tokenizer]\npath = \"/abs/t.bin\"\n"
                               "[calibration]\ntokens = \"../c.h5\"\n[run]\ndir = \"r\"\n", &cfg),
                     NQ_OK);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/sub/m.bin", tmp_dir);
    assert_string_equal(cfg.model_path, want);
    assert_string_equal(cfg.tokenizer_path, "/abs/t.bin");
    snprintf(want, sizeof want, "%s/../c.h5", tmp_dir);
    assert_string_equal(cfg.calib_tokens, want);
    snprintf(want, sizeof want, "%s/r", tmp_dir);
    assert_string_equal(cfg.run_dir, want);
    assert_string_equal(cfg.output_path, "");
    assert_string_equal(cfg.calib_text, "");

    /* validate fills output.path from run.dir; paths are already absolute here */
    nq_clear_error();
    assert_int_equal(config_validate(&cfg), NQ_OK);
    snprintf(want, sizeof want, "%s/r/checkpoint.h5", tmp_dir);
    assert_string_equal(cfg.output_path, want);
}

static void test_values_of_every_kind(void **state) {
    (void)state;
    NupesConfig cfg;
    assert_int_equal(load_text(REQUIRED "[quantization]\nmethod = \"rtn\"\nexponent = \"channel\"\n"
                               "learn_scale = false\nskip = [\"w2\", \"wq\", \"w2\"]\n"
                               "[reconstruction]\nlr_weights = 1\nswitch = 0.25\n"
                               "seed = 9007199254740993\nmode = \"pipelined\"\n"
                               "[mpi]\ndata_parallel = \"auto\"\n[model]\n", &cfg),
                     NQ_ERR_INPUT); /* [model] twice is malformed TOML */
    assert_int_equal(load_text(REQUIRED "[quantization]\nmethod = \"rtn\"\nexponent = \"channel\"\n"
                               "learn_scale = false\nskip = [\"w2\", \"wq\", \"w2\"]\n"
                               "[reconstruction]\nlr_weights = 1\nswitch = 0.25\n"
                               "seed = 9007199254740993\nmode = \"pipelined\"\n"
                               "[mpi]\ndata_parallel = \"auto\"\n", &cfg),
                     NQ_OK);
    assert_int_equal(cfg.method, METHOD_RTN);
    assert_int_equal(cfg.exponent_per_channel, 1);
    assert_int_equal(cfg.learn_scale, 0);
    assert_int_equal(cfg.skip_mask, (1u << 0) | (1u << 5)); /* wq = 0, w2 = 5 */
    assert_true(cfg.lr_weights == 1.0);                     /* an integer where a float goes */
    assert_true(cfg.switch_fraction == 0.25);
    assert_true(cfg.seed == 9007199254740993ULL);           /* not rounded through a double */
    assert_int_equal(cfg.mode, MODE_PIPELINED);
    assert_int_equal(cfg.data_parallel, 0);
    assert_int_equal(load_text(REQUIRED "[quantization]\nskip = []\n[mpi]\ndata_parallel = 3\n",
                               &cfg), NQ_OK);
    assert_int_equal(cfg.skip_mask, 0);
    assert_int_equal(cfg.data_parallel, 3);
}

/* ------------------------------------------------------------------ errors in files */

static void test_unknown_key_and_section(void **state) {
    (void)state;
    expect_load_error(REQUIRED "\n\n[quantization]\nbitz = 4\n", 8,
                      "unknown key quantization.bitz",
                      "(known keys in [quantization]: method, bits, group_size, exponent, "
                      "grid, learn_scale, skip)");
    expect_load_error("[model]\npath = \"m\"\n[quantisation]\nbits = 4\n", 3,
                      "unknown section [quantisation]", "known sections: model, tokenizer, "
                      "calibration, quantization, reconstruction, run, output, mpi, eval");
    expect_load_error("bits = 4\n", 1, "unknown key bits outside any section", "quantization");
    expect_load_error("quantization = 4\n", 1, "quantization = 4", "expected a table [quantization]");
    expect_load_error("[model]\npath = \"m\"\n[model.extra]\nx = 1\n", 3, "unknown key model.extra",
                      "known keys in [model]: path, format");
    expect_load_error("[quantization]\nbits.x = 4\n", 2, "quantization.bits = a table",
                      "expected an integer in 2..8");
}

static void test_wrong_types(void **state) {
    (void)state;
    expect_load_error("[model]\npath = \"m\"\n[quantization]\nbits = \"four\"\n", 4,
                      "quantization.bits = \"four\", expected an integer in 2..8", NULL);
    expect_load_error("[quantization]\nbits = 4.0\n", 2, "quantization.bits = 4.0",
                      "expected an integer in 2..8"); /* floats are not integers */
    expect_load_error("[model]\npath = 3\n", 2, "model.path = 3", "expected a string");
    expect_load_error("[quantization]\nlearn_scale = 1\n", 2, "quantization.learn_scale = 1",
                      "expected true or false");
    expect_load_error("[reconstruction]\nlr_scale = \"1e-3\"\n", 2, "reconstruction.lr_scale",
                      "expected a number in [0, 1]");
    expect_load_error("[quantization]\nskip = \"wq\"\n", 2, "quantization.skip = \"wq\"",
                      "expected an array of tensor names from \"wq\", \"wk\", \"wv\", \"wo\", "
                      "\"w1\", \"w2\", \"w3\"");
    expect_load_error("[quantization]\nskip = [\"wq\", 1]\n", 2, "quantization.skip",
                      "expected an array of tensor names");
    expect_load_error("[reconstruction]\nseed = 1.5\n", 2, "reconstruction.seed = 1.5",
                      "expected an integer >= 0");
    expect_load_error("[run]\ndir = 1979-05-27\n", 2, "run.dir = 1979-05-27", "expected a string");
}

static void test_out_of_range(void **state) {
    (void)state;
    expect_load_error("[quantization]\nbits = 9\n", 2, "quantization.bits = 9",
                      "expected an integer in 2..8");
    expect_load_error("[quantization]\nbits = 1\n", 2, "quantization.bits = 1", "2..8");
    expect_load_error("[quantization]\ngroup_size = -1\n", 2, "quantization.group_size = -1",
                      "expected an integer >= 0");
    expect_load_error("[calibration]\nseq_len = 1\n", 2, "calibration.seq_len = 1",
                      "expected an integer >= 2");
    expect_load_error("[calibration]\nsequences = 3000000000\n", 2, "calibration.sequences",
                      "expected an integer >= 0"); /* does not fit an int */
    expect_load_error("[reconstruction]\nswitch = 1.0\n", 2, "reconstruction.switch = 1.0",
                      "expected a number in (0, 1)");
    expect_load_error("[reconstruction]\nswitch = 0\n", 2, "reconstruction.switch = 0", "(0, 1)");
    expect_load_error("[reconstruction]\niterations = 0\n", 2, "reconstruction.iterations = 0",
                      "expected an integer >= 1");
    expect_load_error("[reconstruction]\nbatch = 0\n", 2, "reconstruction.batch = 0", ">= 1");
    expect_load_error("[reconstruction]\nlr_weights = -1e-3\n", 2, "reconstruction.lr_weights",
                      "expected a number in [0, 1]");
    expect_load_error("[reconstruction]\nlr_exponent = nan\n", 2,
                      "reconstruction.lr_exponent = nan", "expected a number in [0, 1]");
    expect_load_error("[reconstruction]\nlr_weights = 1e30\n", 2, "reconstruction.lr_weights = 1e+30",
                      "expected a number in [0, 1]");
    expect_load_error("[reconstruction]\nseed = -1\n", 2, "reconstruction.seed = -1", ">= 0");
    expect_load_error("[run]\ncheckpoint_interval = 0\n", 2, "run.checkpoint_interval = 0",
                      "expected a number > 0");
    expect_load_error("[run]\nstop_seconds = -5\n", 2, "run.stop_seconds = -5", "expected a number > 0");
    expect_load_error("[output]\nzstd_level = 23\n", 2, "output.zstd_level = 23",
                      "expected an integer in 1..22");
    expect_load_error("[mpi]\ndata_parallel = 0\n", 2, "mpi.data_parallel = 0",
                      "expected an integer >= 1 or \"auto\"");
    expect_load_error("[mpi]\ndata_parallel = \"many\"\n", 2, "mpi.data_parallel = \"many\"",
                      "\"auto\"");
    expect_load_error("[eval]\nseq_len = 0\n", 2, "eval.seq_len = 0", ">= 2");
    expect_load_error("[eval]\nsequences = -2\n", 2, "eval.sequences = -2", ">= 0");
}

static void test_bad_enum_values(void **state) {
    (void)state;
    expect_load_error("[quantization]\nmethod = \"gptq\"\n", 2, "quantization.method = \"gptq\"",
                      "expected one of \"nupes\", \"powerquant\", \"rtn\"");
    expect_load_error("[quantization]\nexponent = \"row\"\n", 2, "quantization.exponent",
                      "one of \"tensor\", \"channel\"");
    expect_load_error("[reconstruction]\nmode = \"Parallel\"\n", 2, "reconstruction.mode",
                      "one of \"parallel\", \"sequential\", \"pipelined\"");
    expect_load_error("[model]\nformat = \"gguf\"\n", 2, "model.format = \"gguf\"",
                      "one of \"auto\", \"llama2c\", \"hf\"");
    expect_load_error("[quantization]\nskip = [\"wq\", \"wx\"]\n", 2, "quantization.skip",
                      "tensor names");
}

/* "job.toml:LINE:COL: message" */
static void assert_malformed_at(int line) {
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s:%d:", job_path, line);
    const char *msg = nq_last_error();
    assert_int_equal(strncmp(msg, prefix, strlen(prefix)), 0);
    int col = 0, used = 0;
    assert_int_equal(sscanf(msg + strlen(prefix), "%d: %n", &col, &used), 1);
    assert_true(col >= 1 && used > 0);
    assert_true(strlen(msg + strlen(prefix) + used) > 5); /* toml++'s message */
    assert_null(strchr(msg, '\n'));
}

static void test_malformed_and_missing(void **state) {
    (void)state;
    NupesConfig cfg;
    assert_int_equal(load_text("[model]\npath = \"m\"\nformat = = \"hf\"\n", &cfg), NQ_ERR_INPUT);
    assert_malformed_at(3);
    assert_int_equal(load_text("[model]\npath = \"m\"\npath = \"n\"\n", &cfg), NQ_ERR_INPUT);
    assert_malformed_at(3); /* redefinition */
    assert_int_equal(load_text("[model]\npath = \"unterminated\n", &cfg), NQ_ERR_INPUT);
    assert_malformed_at(2);

    char missing[600];
    snprintf(missing, sizeof missing, "%s/nope.toml", tmp_dir);
    nq_clear_error();
    assert_int_equal(config_load(missing, &cfg), NQ_ERR_INPUT);
    assert_error_has(missing, "cannot open config file", "No such file", NULL);
    nq_clear_error();
    assert_int_equal(config_load(tmp_dir, &cfg), NQ_ERR_INPUT); /* a directory */
    assert_error_has(tmp_dir, "config file", NULL);
}

static void test_validate(void **state) {
    (void)state;
    NupesConfig cfg;
    assert_int_equal(load_text("[calibration]\ntext = \"c.txt\"\n", &cfg), NQ_OK);
    nq_clear_error();
    assert_int_equal(config_validate(&cfg), NQ_ERR_INPUT);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s: model.path is required", job_path);
    assert_string_equal(nq_last_error(), want);

    assert_int_equal(load_text("[model]\npath = \"m\"\n", &cfg), NQ_OK);
    nq_clear_error();
    assert_int_equal(config_validate(&cfg), NQ_ERR_INPUT);
    assert_error_has(job_path, "calibration.text or calibration.tokens is required", NULL);

    assert_int_equal(load_text(REQUIRED "tokens = \"t.h5\"\n", &cfg), NQ_OK);
    nq_clear_error();
    assert_int_equal(config_validate(&cfg), NQ_ERR_INPUT);
    assert_error_has(job_path, "calibration.text and calibration.tokens are both set",
                     "exactly one", NULL);

    /* defaults (relative to the cwd) become absolute; validate twice changes nothing */
    config_defaults(&cfg);
    nq_clear_error();
    assert_int_equal(config_set(&cfg, "model.path=m.bin"), NQ_OK);
    assert_int_equal(config_set(&cfg, "calibration.text=c.txt"), NQ_OK);
    assert_int_equal(config_validate(&cfg), NQ_OK);
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s/m.bin", cwd);
    assert_string_equal(cfg.model_path, want);
    snprintf(want, sizeof want, "%s/run/checkpoint.h5", cwd);
    assert_string_equal(cfg.output_path, want);
    NupesConfig again = cfg;
    assert_int_equal(config_validate(&again), NQ_OK);
    assert_memory_equal(&again, &cfg, sizeof cfg);
}

/* ------------------------------------------------------------------ --set */

static void test_set(void **state) {
    (void)state;
    NupesConfig cfg;
    config_defaults(&cfg);
    nq_clear_error();
    assert_int_equal(config_set(&cfg, "quantization.bits=3"), NQ_OK);
    assert_int_equal(cfg.bits, 3);
    assert_int_equal(config_set(&cfg, "reconstruction.mode=sequential"), NQ_OK);
    assert_int_equal(cfg.mode, MODE_SEQUENTIAL);
    assert_int_equal(config_set(&cfg, "reconstruction.mode=\"pipelined\""), NQ_OK);
    assert_int_equal(cfg.mode, MODE_PIPELINED);
    assert_int_equal(config_set(&cfg, "mpi.data_parallel=auto"), NQ_OK);
    assert_int_equal(cfg.data_parallel, 0);
    assert_int_equal(config_set(&cfg, "mpi.data_parallel=2"), NQ_OK);
    assert_int_equal(cfg.data_parallel, 2);
    assert_int_equal(config_set(&cfg, "reconstruction.lr_weights=1"), NQ_OK);
    assert_true(cfg.lr_weights == 1.0);
    assert_int_equal(config_set(&cfg, "reconstruction.lr_scale=2.5e-4"), NQ_OK);
    assert_true(cfg.lr_scale == 2.5e-4);
    assert_int_equal(config_set(&cfg, "quantization.skip=[\"wo\", \"w3\"]"), NQ_OK);
    assert_int_equal(cfg.skip_mask, (1u << 3) | (1u << 6));
    assert_int_equal(config_set(&cfg, "quantization.learn_scale=false"), NQ_OK);
    assert_int_equal(cfg.learn_scale, 0);
    assert_int_equal(config_set(&cfg, "run.dir=/tmp/2024"), NQ_OK); /* verbatim, not a number */
    assert_string_equal(cfg.run_dir, "/tmp/2024");
    assert_int_equal(config_set(&cfg, "run.dir=rel/dir"), NQ_OK);   /* relative to the cwd */
    assert_string_equal(cfg.run_dir, "rel/dir");
    assert_int_equal(config_set(&cfg, "model.path=\"quoted name.bin\""), NQ_OK);
    assert_string_equal(cfg.model_path, "quoted name.bin");
    assert_int_equal(config_set(&cfg, "reconstruction.seed=12345678901"), NQ_OK);
    assert_true(cfg.seed == 12345678901ULL);
    assert_string_equal(nq_last_error(), "");

    assert_string_equal(config_set(&cfg, "quantization.bits=9") == NQ_ERR_INPUT ? nq_last_error()
                                                                               : "accepted",
                        "--set quantization.bits=9: expected an integer in 2..8");
    assert_int_equal(cfg.bits, 3); /* a refused value leaves the old one */
    expect_set_error(&cfg, "quantization.bits=four", "expected an integer in 2..8");
    expect_set_error(&cfg, "quantization.bits=4.0", "expected an integer in 2..8");
    expect_set_error(&cfg, "quantization.bits=", "expected an integer in 2..8");
    expect_set_error(&cfg, "reconstruction.mode=bogus",
                     "expected one of \"parallel\", \"sequential\", \"pipelined\"");
    expect_set_error(&cfg, "quantization.bitz=3",
                     "unknown key quantization.bitz (known keys in [quantization]: method, bits");
    expect_set_error(&cfg, "quantisation.bits=3", "unknown section [quantisation]");
    expect_set_error(&cfg, "quantization.skip=[\"wq\"", "malformed TOML value");
    expect_set_error(&cfg, "quantization.skip=[\"wx\"]", "expected an array of tensor names");
    expect_set_error(&cfg, "mpi.data_parallel=0", "expected an integer >= 1 or \"auto\"");
    expect_set_error(&cfg, "reconstruction.switch=1", "expected a number in (0, 1)");
    nq_clear_error();
    assert_int_equal(config_set(&cfg, "quantization.bits=3\nmethod=\"rtn\""), NQ_ERR_INPUT);
    assert_error_has("--set quantization.bits=3...: expected a value on one line", NULL);
    expect_set_error(&cfg, "bits=3", "expected section.key=value");
    expect_set_error(&cfg, "quantization.bits", "expected section.key=value");
    assert_int_equal(cfg.method, METHOD_NUPES);
}

/* ------------------------------------------------------------------ printing */

/* Field by field, independently of the schema table in config.c. */
static void assert_same_config(const NupesConfig *a, const NupesConfig *b) {
    assert_string_equal(a->model_path, b->model_path);
    assert_string_equal(a->model_format, b->model_format);
    assert_string_equal(a->tokenizer_path, b->tokenizer_path);
    assert_string_equal(a->calib_text, b->calib_text);
    assert_string_equal(a->calib_tokens, b->calib_tokens);
    assert_int_equal(a->calib_sequences, b->calib_sequences);
    assert_int_equal(a->calib_seq_len, b->calib_seq_len);
    assert_int_equal(a->method, b->method);
    assert_int_equal(a->bits, b->bits);
    assert_int_equal(a->group_size, b->group_size);
    assert_int_equal(a->exponent_per_channel, b->exponent_per_channel);
    assert_int_equal(a->learn_scale, b->learn_scale);
    assert_int_equal(a->skip_mask, b->skip_mask);
    assert_int_equal(a->mode, b->mode);
    assert_memory_equal(&a->switch_fraction, &b->switch_fraction, sizeof(double));
    assert_int_equal(a->iterations, b->iterations);
    assert_int_equal(a->batch, b->batch);
    assert_memory_equal(&a->lr_weights, &b->lr_weights, sizeof(double));
    assert_memory_equal(&a->lr_exponent, &b->lr_exponent, sizeof(double));
    assert_memory_equal(&a->lr_scale, &b->lr_scale, sizeof(double));
    assert_true(a->seed == b->seed);
    assert_string_equal(a->run_dir, b->run_dir);
    assert_memory_equal(&a->checkpoint_interval, &b->checkpoint_interval, sizeof(double));
    assert_memory_equal(&a->stop_seconds, &b->stop_seconds, sizeof(double));
    assert_string_equal(a->output_path, b->output_path);
    assert_int_equal(a->zstd_level, b->zstd_level);
    assert_int_equal(a->data_parallel, b->data_parallel);
    assert_string_equal(a->eval_text, b->eval_text);
    assert_int_equal(a->eval_seq_len, b->eval_seq_len);
    assert_int_equal(a->eval_sequences, b->eval_sequences);
    assert_memory_equal(&a->shape, &b->shape, sizeof a->shape);
}

/* to_toml of a, written to another directory and loaded back, gives a again. */
static void assert_round_trip(const NupesConfig *a) {
    char *text = config_to_toml(a);
    assert_non_null(text);
    char sub[600], path[700];
    snprintf(sub, sizeof sub, "%s/elsewhere", tmp_dir);
    mkdir(sub, 0755);
    snprintf(path, sizeof path, "%s/run.toml", sub);
    write_text(path, text);
    NupesConfig b;
    nq_clear_error();
    assert_int_equal(config_load(path, &b), NQ_OK);
    assert_same_config(a, &b);
    char *text_b = config_to_toml(&b);
    assert_non_null(text_b);
    assert_string_equal(text, text_b);
    free(text);
    free(text_b);
}

/* [model.shape]: a sub-table of [model] (or dotted keys), settable with --set, printed
 * back as dotted keys only when given, and unknown keys in it are errors. */
static void test_model_shape(void **state) {
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/shape.toml", tmp_dir);
    write_text(path, "[model]\npath = \"/m\"\n[model.shape]\nhidden_size = 4096\nintermediate_size = 11008\n"
                     "num_hidden_layers = 32\nnum_attention_heads = 32\nvocab_size = 32000\n"
                     "tie_word_embeddings = true\n[calibration]\ntext = \"/c.txt\"\n");
    NupesConfig cfg;
    nq_clear_error();
    assert_int_equal(config_load(path, &cfg), NQ_OK);
    assert_int_equal(cfg.shape.hidden_size, 4096);
    assert_int_equal(cfg.shape.intermediate_size, 11008);
    assert_int_equal(cfg.shape.num_key_value_heads, 0); /* not given */
    assert_int_equal(cfg.shape.tie_word_embeddings, 1);
    assert_int_equal(config_set(&cfg, "model.shape.num_key_value_heads=8"), NQ_OK);
    assert_int_equal(cfg.shape.num_key_value_heads, 8);
    assert_int_equal(config_validate(&cfg), NQ_OK);
    char *text = config_to_toml(&cfg);
    assert_non_null(text);
    assert_non_null(strstr(text, "[model]\npath = \"/m\"\nformat = \"auto\"\nshape.hidden_size = 4096\n"));
    free(text);
    assert_round_trip(&cfg);

    assert_int_equal(config_set(&cfg, "model.shape.heads=8"), NQ_ERR_INPUT);
    assert_non_null(strstr(nq_last_error(), "unknown key model.shape.heads"));
    nq_clear_error();
    assert_int_equal(config_set(&cfg, "model.shape.hidden_size=-1"), NQ_ERR_INPUT);
    nq_clear_error();
    write_text(path, "[model]\npath = \"/m\"\n[model.shape]\nlayers = 2\n");
    assert_int_equal(config_load(path, &cfg), NQ_ERR_INPUT);
    assert_non_null(strstr(nq_last_error(), "shape.toml:4: unknown key model.shape.layers"));
    nq_clear_error();
    write_text(path, "[model]\npath = \"/m\"\n[model.form]\nlayers = 2\n");
    assert_int_equal(config_load(path, &cfg), NQ_ERR_INPUT);

    nq_clear_error();
    config_defaults(&cfg); /* not given: not printed */
    text = config_to_toml(&cfg);
    assert_non_null(text);
    assert_null(strstr(text, "shape."));
    free(text);
}

static void test_round_trip(void **state) {
    (void)state;
    NupesConfig cfg;
    config_defaults(&cfg);
    nq_clear_error();
    assert_int_equal(config_set(&cfg, "model.path=/m/a \"quoted\" \\back\\slash\tname.bin"), NQ_OK);
    assert_int_equal(config_set(&cfg, "model.format=hf"), NQ_OK);
    assert_int_equal(config_set(&cfg, "calibration.tokens=/c/tok.h5"), NQ_OK);
    assert_int_equal(config_set(&cfg, "calibration.sequences=17"), NQ_OK);
    assert_int_equal(config_set(&cfg, "quantization.method=powerquant"), NQ_OK);
    assert_int_equal(config_set(&cfg, "quantization.group_size=64"), NQ_OK);
    assert_int_equal(config_set(&cfg, "quantization.exponent=channel"), NQ_OK);
    assert_int_equal(config_set(&cfg, "quantization.skip=[\"w3\", \"wk\"]"), NQ_OK);
    assert_int_equal(config_set(&cfg, "reconstruction.switch=0.30000000000000004"), NQ_OK);
    assert_int_equal(config_set(&cfg, "reconstruction.lr_weights=1"), NQ_OK);
    assert_int_equal(config_set(&cfg, "reconstruction.lr_exponent=3.3e-7"), NQ_OK);
    assert_int_equal(config_set(&cfg, "reconstruction.lr_scale=0.1"), NQ_OK);
    assert_int_equal(config_set(&cfg, "reconstruction.seed=9223372036854775807"), NQ_OK);
    assert_int_equal(config_set(&cfg, "run.checkpoint_interval=1e300"), NQ_OK);
    assert_int_equal(config_set(&cfg, "run.stop_seconds=1e-9"), NQ_OK);
    assert_int_equal(config_set(&cfg, "mpi.data_parallel=auto"), NQ_OK);
    assert_int_equal(config_set(&cfg, "eval.text=/e/ü.txt"), NQ_OK);
    assert_int_equal(config_validate(&cfg), NQ_OK);
    assert_round_trip(&cfg);

    config_defaults(&cfg); /* the defaults too, once validate has made run.dir absolute */
    assert_int_equal(config_set(&cfg, "model.path=/m.bin"), NQ_OK);
    assert_int_equal(config_set(&cfg, "calibration.text=/c.txt"), NQ_OK);
    assert_int_equal(config_validate(&cfg), NQ_OK);
    assert_round_trip(&cfg);
    assert_int_equal(config_set(&cfg, "run.dir=/run"), NQ_OK);

    /* fixed order, every section */
    char *text = config_to_toml(&cfg);
    assert_non_null(text);
    const char *order[] = {"[model]\npath = \"/m.bin\"\nformat = \"auto\"\n", "[tokenizer]",
                           "[calibration]", "[quantization]", "bits = 4\n", "[reconstruction]",
                           "lr_exponent = 0.0001\n", "[run]", "dir = \"/run\"\n", "[output]",
                           "[mpi]", "data_parallel = 1\n", "[eval]"};
    const char *at = text;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        at = strstr(at, order[i]);
        assert_non_null(at);
    }
    free(text);
}

static void test_result_keys(void **state) {
    (void)state;
    NupesConfig a, b;
    config_defaults(&a);
    nq_clear_error();
    assert_int_equal(config_set(&a, "model.path=/m.bin"), NQ_OK);
    char *ka = config_result_keys_toml(&a);
    assert_non_null(ka);
    assert_non_null(strstr(ka, "[quantization]\nmethod = \"nupes\"\nbits = 4\n"));
    assert_non_null(strstr(ka, "[model]\nformat = \"auto\"\n"));
    assert_non_null(strstr(ka, "[mpi]\ndata_parallel = 1\n"));
    assert_non_null(strstr(ka, "seq_len = 256"));
    assert_null(strstr(ka, "path"));
    assert_null(strstr(ka, "[run]"));
    assert_null(strstr(ka, "[output]"));
    assert_null(strstr(ka, "[eval]"));
    assert_null(strstr(ka, "[tokenizer]"));

    /* what does not change the result does not change the text, and the reverse */
    const char *neutral[] = {"model.path=/other.bin", "run.dir=/r", "output.zstd_level=3",
                             "eval.seq_len=64", "calibration.text=/c.txt",
                             "run.checkpoint_interval=5", "run.stop_seconds=3"};
    const char *changing[] = {"quantization.bits=3", "reconstruction.seed=2",
                              "calibration.seq_len=128", "model.format=llama2c",
                              "mpi.data_parallel=2", "quantization.skip=[\"wq\"]",
                              "reconstruction.switch=0.5", "quantization.learn_scale=false"};
    for (size_t i = 0; i < sizeof neutral / sizeof neutral[0]; i++) {
        b = a;
        assert_int_equal(config_set(&b, neutral[i]), NQ_OK);
        char *kb = config_result_keys_toml(&b);
        assert_string_equal(ka, kb);
        free(kb);
    }
    for (size_t i = 0; i < sizeof changing / sizeof changing[0]; i++) {
        b = a;
        assert_int_equal(config_set(&b, changing[i]), NQ_OK);
        char *kb = config_result_keys_toml(&b);
        assert_string_not_equal(ka, kb);
        free(kb);
    }
    free(ka);
}

/* quantization.grid: llama.cpp's grids fix bits 4 and groups of 32 (set when left at 0),
 * and refuse what they cannot honour, naming the key and what was expected. */
static void test_grid(void **state) {
    (void)state;
    NupesConfig cfg;
    assert_int_equal(load_text(REQUIRED "\n[quantization]\ngrid = \"iq4_nl\"\n", &cfg), NQ_OK);
    assert_int_equal(config_validate(&cfg), NQ_OK);
    assert_int_equal(cfg.group_size, 32);
    QuantSpec const s = config_quant_spec(&cfg);
    assert_int_equal(s.quantizer, QUANTIZER_IQ4_NL);
    assert_int_equal(s.group_size, 32);
    assert_int_equal(load_text(REQUIRED "\n[quantization]\ngrid = \"iq4_xs\"\nbits = 3\n", &cfg), NQ_OK);
    nq_clear_error();
    assert_int_equal(config_validate(&cfg), NQ_ERR_INPUT);
    assert_error_has("job.toml: quantization.bits = 3 with grid = \"iq4_xs\", expected 4", NULL);
    assert_int_equal(load_text(REQUIRED "\n[quantization]\ngrid = \"iq4_nl\"\ngroup_size = 64\n", &cfg), NQ_OK);
    nq_clear_error();
    assert_int_equal(config_validate(&cfg), NQ_ERR_INPUT);
    assert_error_has("quantization.group_size = 64 with grid = \"iq4_nl\", expected 32", NULL);
    assert_int_equal(load_text(REQUIRED "\n[quantization]\ngrid = \"iq4_nl\"\nmethod = \"powerquant\"\n", &cfg), NQ_OK);
    nq_clear_error();
    assert_int_equal(config_validate(&cfg), NQ_ERR_INPUT);
    assert_error_has("method = \"powerquant\" with grid = \"iq4_nl\"", NULL);
    expect_load_error(REQUIRED "\n[quantization]\ngrid = \"q4_0\"\n", 7, "quantization.grid",
                      "\"power\", \"iq4_nl\", \"iq4_xs\"");
}

/* ------------------------------------------------------------------ the bundled example */

static void test_bundled_config(void **state) {
    (void)state;
    const char *src = getenv("NUPES_SOURCE_DIR");
    assert_non_null(src);
    char path[600], want[CONFIG_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/configs/stories260K.toml", src);
    NupesConfig cfg;
    nq_clear_error();
    assert_int_equal(config_load(path, &cfg), NQ_OK);
    assert_int_equal(config_validate(&cfg), NQ_OK);
    assert_string_equal(nq_last_error(), "");
    const char *files[] = {cfg.model_path, cfg.tokenizer_path, cfg.calib_text, cfg.eval_text};
    for (size_t i = 0; i < 4; i++) {
        assert_true(files[i][0] == '/');
        assert_int_equal(access(files[i], R_OK), 0); /* they exist: paths resolved right */
    }
    snprintf(want, sizeof want, "/configs/../data/stories260K.bin");
    assert_non_null(strstr(cfg.model_path, want));
    assert_non_null(strstr(cfg.run_dir, "/configs/../run/stories260K"));
    snprintf(want, sizeof want, "%s/checkpoint.h5", cfg.run_dir);
    assert_string_equal(cfg.output_path, want);
    assert_string_equal(cfg.calib_tokens, "");
    assert_int_equal(cfg.calib_seq_len, 256);
    assert_int_equal(cfg.calib_sequences, 0);
    assert_int_equal(cfg.method, METHOD_NUPES);
    assert_int_equal(cfg.bits, 4);
    assert_int_equal(cfg.group_size, 0);
    assert_int_equal(cfg.exponent_per_channel, 0);
    assert_int_equal(cfg.learn_scale, 1);
    assert_int_equal(cfg.mode, MODE_PARALLEL);
    assert_int_equal(cfg.iterations, 500);
    assert_int_equal(cfg.batch, 4);
    assert_true(cfg.lr_weights == 1e-3 && cfg.lr_exponent == 1e-4 && cfg.lr_scale == 1e-3);
    assert_int_equal(cfg.seed, 1);
    assert_int_equal(cfg.eval_seq_len, 256);
    assert_round_trip(&cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_paths_relative_to_file),
        cmocka_unit_test(test_values_of_every_kind),
        cmocka_unit_test(test_unknown_key_and_section),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_bad_enum_values),
        cmocka_unit_test(test_malformed_and_missing),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_model_shape),
        cmocka_unit_test(test_result_keys),
        cmocka_unit_test(test_grid),
        cmocka_unit_test(test_bundled_config),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
