/* The job configuration (docs/design.md 5.1): a TOML file, parsed by toml++ behind
 * io/toml_c.cpp, validated here, overridable with --set key=value.
 *
 * Every key has a default except model.path. Unknown keys, wrong types and out-of-range
 * values are NQ_ERR_INPUT errors naming the file, the line, the key and what was expected:
 *   "job.toml:12: quantization.bits = 9, expected an integer in 2..8" */
#ifndef NUPES_CONFIG_H
#define NUPES_CONFIG_H

#include <stdint.h>

#include "float16.h"
#include "quant.h"
#include "status.h"

#define CONFIG_PATH_MAX 1024

typedef enum { METHOD_NUPES, METHOD_POWERQUANT, METHOD_RTN } QuantMethod;
typedef enum { MODE_PARALLEL, MODE_SEQUENTIAL, MODE_PIPELINED } ReconMode;

typedef struct {
    /* [model] */
    char model_path[CONFIG_PATH_MAX];   /* required */
    char model_format[16];              /* "auto" | "llama2c" | "hf" */
    struct {                            /* [model.shape]: the model's shape in Hugging
                                           Face's config.json names, for --dry-run where
                                           the model is not there; 0 = not given */
        int hidden_size, intermediate_size, num_hidden_layers, num_attention_heads;
        int num_key_value_heads, vocab_size, max_position_embeddings;
        int tie_word_embeddings;
        char torch_dtype[16];           /* "float32" | "float16" | "bfloat16"; "" = not given */
    } shape;
    /* [tokenizer] */
    char tokenizer_path[CONFIG_PATH_MAX]; /* default: tokenizer.bin/.model beside the model */
    /* [calibration] */
    char calib_text[CONFIG_PATH_MAX];   /* a UTF-8 file ... */
    char calib_tokens[CONFIG_PATH_MAX]; /* ... or an HDF5 file of int32 ids (one of the two) */
    int calib_sequences;                /* 0 = as many as the text gives; default 0 */
    int calib_seq_len;                  /* T, default 256 */
    ActDtype activation_dtype;          /* activations.h5 and hand-ons: "fp32" (default) |
                                           "fp16" | "bf16" (src/float16.h) */
    /* [quantization] */
    QuantMethod method;                 /* default nupes */
    int bits;                           /* 2..8, default 4 */
    int group_size;                     /* 0 = per output channel (default) */
    int exponent_per_channel;           /* exponent = "channel" (1) | "tensor" (0, default) */
    int grid;                           /* "power" (0, default) | "iq4_nl" | "iq4_xs": the
                                           row of quantizer_table (src/quantizer.h) */
    int learn_scale;                    /* default 1 */
    unsigned skip_mask;                 /* bit i: matrix i (mat_names order) stays fp32 */
    /* [reconstruction] */
    ReconMode mode;                     /* default parallel */
    double switch_fraction;             /* pipelined: default 0.8 */
    int iterations;                     /* default 500 */
    int batch;                          /* sequences per iteration, default 4 */
    double lr_weights;                  /* default 1e-3 */
    double lr_exponent;                 /* default 1e-4 */
    double lr_scale;                    /* default 1e-3 */
    uint64_t seed;                      /* default 1 */
    /* [run] */
    char run_dir[CONFIG_PATH_MAX];      /* default "run" */
    double checkpoint_interval;         /* seconds, default 60 */
    double stop_seconds;                /* a stop's state write gives up after this, default 20 */
    /* [output] */
    char output_path[CONFIG_PATH_MAX];  /* default "<run.dir>/checkpoint.h5" */
    int zstd_level;                     /* 1..22, default 1 */
    /* [mpi] */
    int data_parallel;                  /* D >= 1, 0 = auto; default 1 */
    /* [eval] */
    char eval_text[CONFIG_PATH_MAX];    /* optional */
    int eval_seq_len;                   /* default 256 */
    int eval_sequences;                 /* 0 = all windows */
    /* where it came from, for messages */
    char source_path[CONFIG_PATH_MAX];
} NupesConfig;

/* Defaults for every key (model.path empty). */
void config_defaults(NupesConfig *cfg);

/* Parses path into cfg (defaults first), checking every key's name, type and range.
 * Relative paths in the file are resolved against the config file's directory. Cross-key
 * checks wait for config_validate, so that --set can still supply model.path. */
nq_status config_load(const char *path, NupesConfig *cfg);

/* Applies one "section.key=value" override and checks that key like config_load does:
 * "--set quantization.bits=9: expected an integer in 2..8". The value is TOML (3, 1e-3,
 * true, ["wq", "w2"], "text"); a value that is not valid TOML and does not start with a
 * quote or bracket is taken as a string (mode=sequential, data_parallel=auto), and string
 * keys (paths, choices) take an unquoted value verbatim (run.dir=/tmp/2024). Relative
 * paths stay relative to the current directory. */
nq_status config_set(NupesConfig *cfg, const char *assignment);

/* Checks cross-key constraints after all overrides: model.path given, exactly one of
 * calibration.text / calibration.tokens. Then completes cfg: every non-empty path is
 * made absolute (against the current directory) and an empty output.path becomes
 * "<run.dir>/checkpoint.h5". Idempotent. */
nq_status config_validate(NupesConfig *cfg);

/* The config as TOML text, every key, in a fixed order (malloc'd; NULL and an error
 * recorded when out of memory). config_load reads it back to an identical struct (paths
 * are printed as stored: absolute after config_validate). */
char *config_to_toml(const NupesConfig *cfg);

/* The result-changing keys as TOML text (for the fingerprint), malloc'd: model.format,
 * calibration.sequences/seq_len, quantization.*, reconstruction.*, mpi.data_parallel
 * (resolve "auto" = 0 to the actual D before calling). Not the model, tokenizer and
 * calibration paths (the fingerprint hashes their contents), run.*, output.*, eval.*. */
char *config_result_keys_toml(const NupesConfig *cfg);

const char *config_method_name(QuantMethod m);
/* The quantizer spec the config asks for: bits, group_size, exponent, grid. */
QuantSpec config_quant_spec(const NupesConfig *cfg);
const char *config_mode_name(ReconMode m);

#endif
