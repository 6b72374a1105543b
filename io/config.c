/* The job configuration: one schema table drives defaults, checking, printing and --set.
 *
 * Path rule: a relative path written in a config FILE is relative to that file's directory
 * (so configs/x.toml can say "../data/model.bin"); defaults and --set values are relative
 * to the current directory; config_validate then makes every path absolute, so the printed
 * config means the same thing wherever it is read back from. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "quant_iq4.h" /* IQ4_GROUP */
#include "quantizer.h" /* QUANTIZER_* */
#include "toml_c.h"

#define CONFIG_FILE_MAX (1 << 20) /* bytes; a job file is a few hundred */

/* ------------------------------------------------------------------ the schema */

typedef enum {
    K_PATH,       /* char[CONFIG_PATH_MAX], resolved against the file's directory */
    K_CHOICE_STR, /* one of choices, stored as the string (char[size]) */
    K_CHOICE,     /* one of choices, stored as its index (int / enum) */
    K_INT,        /* int in lo..hi */
    K_SEED,       /* uint64_t from a TOML integer >= 0 */
    K_FLOAT,      /* double in lo..hi (open ends where lo_open / hi_open); integers accepted */
    K_BOOL,       /* int 0 / 1 */
    K_SKIP,       /* array of matrix names -> unsigned bit mask (mat_index order) */
    K_PARALLEL,   /* int >= 1, or "auto" stored as 0 */
} KeyKind;

typedef struct {
    const char *section, *key;
    KeyKind kind;
    size_t offset, size; /* of the field in NupesConfig */
    double lo, hi;       /* K_INT, K_FLOAT */
    int lo_open, hi_open;
    const char *const *choices; /* K_CHOICE*, NULL-terminated */
    int changes_result;         /* part of the fingerprint (config_result_keys_toml) */
} ConfigKey;

static const char *const formats[] = {"auto", "llama2c", "hf", NULL};
static const char *const methods[] = {"nupes", "powerquant", "rtn", NULL};   /* QuantMethod */
static const char *const exponents[] = {"tensor", "channel", NULL};          /* 0, 1 */
static const char *const modes[] = {"parallel", "sequential", "pipelined", NULL}; /* ReconMode */
static const char *const act_dtypes[] = {"fp32", "fp16", "bf16", NULL};       /* ActDtype */
static const char *const torch_dtypes[] = {"float32", "float16", "bfloat16", NULL}; /* [model.shape] */
static const char *const grids[] = {"power", "iq4_nl", "iq4_xs", NULL}; /* QUANTIZER_* */

#define FIELD(f) offsetof(NupesConfig, f), sizeof(((NupesConfig *)0)->f)
#define ANY INT_MAX
/* Calibration and model paths are not result keys: the fingerprint hashes their contents. */
static const ConfigKey keys[] = {
    {"model", "path", K_PATH, FIELD(model_path), 0, 0, 0, 0, NULL, 0},
    {"model", "format", K_CHOICE_STR, FIELD(model_format), 0, 0, 0, 0, formats, 1},
    /* [model.shape] (dotted keys of [model]): not result keys, the fingerprint hashes the
     * model itself; printed only when hidden_size is given. */
    {"model", "shape.hidden_size", K_INT, FIELD(shape.hidden_size), 0, ANY, 0, 0, NULL, 0},
    {"model", "shape.intermediate_size", K_INT, FIELD(shape.intermediate_size), 0, ANY, 0, 0, NULL, 0},
    {"model", "shape.num_hidden_layers", K_INT, FIELD(shape.num_hidden_layers), 0, ANY, 0, 0, NULL, 0},
    {"model", "shape.num_attention_heads", K_INT, FIELD(shape.num_attention_heads), 0, ANY, 0, 0, NULL, 0},
    {"model", "shape.num_key_value_heads", K_INT, FIELD(shape.num_key_value_heads), 0, ANY, 0, 0, NULL, 0},
    {"model", "shape.vocab_size", K_INT, FIELD(shape.vocab_size), 0, ANY, 0, 0, NULL, 0},
    {"model", "shape.max_position_embeddings", K_INT, FIELD(shape.max_position_embeddings), 0, ANY, 0, 0, NULL, 0},
    {"model", "shape.tie_word_embeddings", K_BOOL, FIELD(shape.tie_word_embeddings), 0, 0, 0, 0, NULL, 0},
    {"model", "shape.torch_dtype", K_CHOICE_STR, FIELD(shape.torch_dtype), 0, 0, 0, 0, torch_dtypes, 0},
    {"tokenizer", "path", K_PATH, FIELD(tokenizer_path), 0, 0, 0, 0, NULL, 0},
    {"calibration", "text", K_PATH, FIELD(calib_text), 0, 0, 0, 0, NULL, 0},
    {"calibration", "tokens", K_PATH, FIELD(calib_tokens), 0, 0, 0, 0, NULL, 0},
    {"calibration", "sequences", K_INT, FIELD(calib_sequences), 0, ANY, 0, 0, NULL, 1},
    {"calibration", "seq_len", K_INT, FIELD(calib_seq_len), 2, ANY, 0, 0, NULL, 1},
    {"calibration", "activation_dtype", K_CHOICE, FIELD(activation_dtype), 0, 0, 0, 0, act_dtypes, 1},
    {"quantization", "method", K_CHOICE, FIELD(method), 0, 0, 0, 0, methods, 1},
    {"quantization", "bits", K_INT, FIELD(bits), 2, 8, 0, 0, NULL, 1},
    {"quantization", "group_size", K_INT, FIELD(group_size), 0, ANY, 0, 0, NULL, 1},
    {"quantization", "exponent", K_CHOICE, FIELD(exponent_per_channel), 0, 0, 0, 0, exponents, 1},
    {"quantization", "grid", K_CHOICE, FIELD(grid), 0, 0, 0, 0, grids, 1},
    {"quantization", "learn_scale", K_BOOL, FIELD(learn_scale), 0, 0, 0, 0, NULL, 1},
    {"quantization", "skip", K_SKIP, FIELD(skip_mask), 0, 0, 0, 0, NULL, 1},
    {"reconstruction", "mode", K_CHOICE, FIELD(mode), 0, 0, 0, 0, modes, 1},
    {"reconstruction", "switch", K_FLOAT, FIELD(switch_fraction), 0, 1, 1, 1, NULL, 1},
    {"reconstruction", "iterations", K_INT, FIELD(iterations), 1, ANY, 0, 0, NULL, 1},
    {"reconstruction", "batch", K_INT, FIELD(batch), 1, ANY, 0, 0, NULL, 1},
    {"reconstruction", "lr_weights", K_FLOAT, FIELD(lr_weights), 0, 1, 0, 0, NULL, 1},
    {"reconstruction", "lr_exponent", K_FLOAT, FIELD(lr_exponent), 0, 1, 0, 0, NULL, 1},
    {"reconstruction", "lr_scale", K_FLOAT, FIELD(lr_scale), 0, 1, 0, 0, NULL, 1},
    {"reconstruction", "seed", K_SEED, FIELD(seed), 0, 0, 0, 0, NULL, 1},
    {"run", "dir", K_PATH, FIELD(run_dir), 0, 0, 0, 0, NULL, 0},
    {"run", "checkpoint_interval", K_FLOAT, FIELD(checkpoint_interval), 0, INFINITY, 1, 0, NULL, 0},
    {"run", "stop_seconds", K_FLOAT, FIELD(stop_seconds), 0, INFINITY, 1, 0, NULL, 0},
    {"output", "path", K_PATH, FIELD(output_path), 0, 0, 0, 0, NULL, 0},
    {"output", "zstd_level", K_INT, FIELD(zstd_level), 1, 22, 0, 0, NULL, 0},
    {"mpi", "data_parallel", K_PARALLEL, FIELD(data_parallel), 1, ANY, 0, 0, NULL, 1},
    {"eval", "text", K_PATH, FIELD(eval_text), 0, 0, 0, 0, NULL, 0},
    {"eval", "seq_len", K_INT, FIELD(eval_seq_len), 2, ANY, 0, 0, NULL, 0},
    {"eval", "sequences", K_INT, FIELD(eval_sequences), 0, ANY, 0, 0, NULL, 0},
};
#define N_KEYS (sizeof keys / sizeof keys[0])

/* K_CHOICE stores an int into the enum fields. */
_Static_assert(QUANTIZER_POWER == 0 && QUANTIZER_IQ4_NL == 1 && QUANTIZER_IQ4_XS == 2,
               "grids[] lists quantizer_table's rows in order");
_Static_assert(sizeof(QuantMethod) == sizeof(int) && sizeof(ReconMode) == sizeof(int) &&
                   sizeof(ActDtype) == sizeof(int) && ACT_FP32 == 0 && ACT_FP16 == 1 && ACT_BF16 == 2,
               "choice fields are ints");

static void *field(NupesConfig *cfg, const ConfigKey *k) { return (char *)cfg + k->offset; }
static const void *cfield(const NupesConfig *cfg, const ConfigKey *k) {
    return (const char *)cfg + k->offset;
}

static const ConfigKey *find_key(const char *section, const char *key) {
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].key, key) == 0) return &keys[i];
    return NULL;
}

static int section_known(const char *section) {
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].section, section) == 0) return 1;
    return 0;
}

static int sub_table_known(const char *section, const char *name) {
    size_t const n = strlen(name);
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strncmp(keys[i].key, name, n) == 0 && keys[i].key[n] == '.')
            return 1;
    return 0;
}

/* "model, tokenizer, ..." (each section once, table order). */
static void list_sections(char *buf, size_t size) {
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_KEYS; i++) {
        if (i > 0 && strcmp(keys[i].section, keys[i - 1].section) == 0) continue;
        len += snprintf(buf + len, len < size ? size - len : 0, "%s%s", len ? ", " : "",
                        keys[i].section);
    }
}

/* "method, bits, ..." for one section. */
static void list_keys(const char *section, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].section, section) == 0)
            len += snprintf(buf + len, len < size ? size - len : 0, "%s%s", len ? ", " : "",
                            keys[i].key);
}

/* What a key accepts, as it reads after "expected ". */
static void describe(const ConfigKey *k, char *buf, size_t size) {
    size_t len = 0;
    switch (k->kind) {
    case K_PATH: snprintf(buf, size, "a string (a file path)"); break;
    case K_CHOICE_STR:
    case K_CHOICE:
        len = snprintf(buf, size, "one of");
        for (int i = 0; k->choices[i]; i++)
            len += snprintf(buf + len, len < size ? size - len : 0, "%s \"%s\"", i ? "," : "",
                            k->choices[i]);
        break;
    case K_INT:
        if (k->hi == ANY) snprintf(buf, size, "an integer >= %.0f", k->lo);
        else snprintf(buf, size, "an integer in %.0f..%.0f", k->lo, k->hi);
        break;
    case K_SEED: snprintf(buf, size, "an integer >= 0"); break;
    case K_FLOAT:
        if (isinf(k->hi)) snprintf(buf, size, "a number %s %g", k->lo_open ? ">" : ">=", k->lo);
        else snprintf(buf, size, "a number in %c%g, %g%c", k->lo_open ? '(' : '[', k->lo, k->hi,
                      k->hi_open ? ')' : ']');
        break;
    case K_BOOL: snprintf(buf, size, "true or false"); break;
    case K_SKIP:
        len = snprintf(buf, size, "an array of tensor names from");
        for (int i = 0; i < N_MATS; i++)
            len += snprintf(buf + len, len < size ? size - len : 0, "%s \"%s\"", i ? "," : "",
                            mat_names[i]);
        break;
    case K_PARALLEL: snprintf(buf, size, "an integer >= 1 or \"auto\""); break;
    }
}

/* ------------------------------------------------------------------ applying one value */

/* Where a value came from: a line of a config file, or a --set argument. */
typedef struct {
    const char *file;       /* config file name for messages; NULL for --set */
    const char *assignment; /* the --set argument */
    const char *base_dir;   /* relative paths are joined to it; NULL or "" = as given */
} Origin;

static nq_status fail_value(const Origin *o, const TomlcEntry *e, const ConfigKey *k) {
    char expected[256];
    describe(k, expected, sizeof expected);
    if (o->file)
        return nq_fail(NQ_ERR_INPUT, "%s:%d: %s = %s, expected %s", o->file, e->line, e->path,
                       e->text, expected);
    return nq_fail(NQ_ERR_INPUT, "--set %s: expected %s", o->assignment, expected);
}

/* The "file:line" or "--set a=b" that starts a message. */
static void origin_prefix(const Origin *o, int line, char *buf, size_t size) {
    if (o->file) snprintf(buf, size, "%s:%d", o->file, line);
    else snprintf(buf, size, "--set %s", o->assignment);
}

/* out = base_dir/value, or value when absolute or base_dir is empty. */
static int join_path(const char *base_dir, const char *value, char *out, size_t size) {
    int n;
    if (value[0] == '\0' || value[0] == '/' || !base_dir || base_dir[0] == '\0')
        n = snprintf(out, size, "%s", value);
    else if (strcmp(base_dir, "/") == 0)
        n = snprintf(out, size, "/%s", value);
    else
        n = snprintf(out, size, "%s/%s", base_dir, value);
    return n >= 0 && (size_t)n < size ? 0 : -1;
}

static int choice_index(const ConfigKey *k, const char *s) {
    for (int i = 0; k->choices[i]; i++)
        if (strcmp(k->choices[i], s) == 0) return i;
    return -1;
}

static int choice_count(const ConfigKey *k) {
    int n = 0;
    while (k->choices[n]) n++;
    return n;
}

static int in_range(const ConfigKey *k, double v) {
    int const lo_ok = k->lo_open ? v > k->lo : v >= k->lo;
    int const hi_ok = k->hi_open ? v < k->hi : v <= k->hi;
    return isfinite(v) && lo_ok && hi_ok;
}

static nq_status apply_skip(const Origin *o, const TomlcEntry *e, const ConfigKey *k,
                            unsigned *mask) {
    if (e->kind != TOMLC_STRING_ARRAY) return fail_value(o, e, k);
    unsigned m = 0;
    for (size_t i = 0; i < e->n_strings; i++) {
        int const which = mat_index(e->strings[i]);
        if (which < 0) return fail_value(o, e, k);
        m |= 1u << which;
    }
    *mask = m;
    return NQ_OK;
}

static nq_status apply_path(const Origin *o, const TomlcEntry *e, const ConfigKey *k, char *dst) {
    char tmp[CONFIG_PATH_MAX];
    if (e->kind != TOMLC_STRING) return fail_value(o, e, k);
    if (join_path(o->base_dir, e->string, tmp, sizeof tmp) != 0) {
        char where[CONFIG_PATH_MAX + 64];
        origin_prefix(o, e->line, where, sizeof where);
        return nq_fail(NQ_ERR_INPUT, "%s: %s is too long, expected a path under %d bytes", where,
                       e->path, CONFIG_PATH_MAX);
    }
    memset(dst, 0, CONFIG_PATH_MAX); /* no stale bytes after the string */
    memcpy(dst, tmp, strlen(tmp));
    return NQ_OK;
}

/* Checks entry e against key k and stores it in cfg. */
static nq_status apply_value(NupesConfig *cfg, const ConfigKey *k, const TomlcEntry *e,
                             const Origin *o) {
    void *dst = field(cfg, k);
    switch (k->kind) {
    case K_PATH: return apply_path(o, e, k, dst);
    case K_CHOICE_STR:
        if (e->kind != TOMLC_STRING || choice_index(k, e->string) < 0) return fail_value(o, e, k);
        memset(dst, 0, k->size);
        snprintf(dst, k->size, "%s", e->string);
        return NQ_OK;
    case K_CHOICE:
        if (e->kind != TOMLC_STRING || choice_index(k, e->string) < 0) return fail_value(o, e, k);
        *(int *)dst = choice_index(k, e->string);
        return NQ_OK;
    case K_INT:
        if (e->kind != TOMLC_INTEGER || !in_range(k, (double)e->integer)) return fail_value(o, e, k);
        *(int *)dst = (int)e->integer;
        return NQ_OK;
    case K_SEED:
        if (e->kind != TOMLC_INTEGER || e->integer < 0) return fail_value(o, e, k);
        *(uint64_t *)dst = (uint64_t)e->integer;
        return NQ_OK;
    case K_FLOAT: {
        double const v = e->kind == TOMLC_INTEGER ? (double)e->integer : e->number;
        if ((e->kind != TOMLC_FLOAT && e->kind != TOMLC_INTEGER) || !in_range(k, v))
            return fail_value(o, e, k);
        *(double *)dst = v;
        return NQ_OK;
    }
    case K_BOOL:
        if (e->kind != TOMLC_BOOL) return fail_value(o, e, k);
        *(int *)dst = (int)e->integer;
        return NQ_OK;
    case K_SKIP: return apply_skip(o, e, k, dst);
    case K_PARALLEL:
        if (e->kind == TOMLC_STRING && strcmp(e->string, "auto") == 0) {
            *(int *)dst = 0;
            return NQ_OK;
        }
        if (e->kind != TOMLC_INTEGER || !in_range(k, (double)e->integer)) return fail_value(o, e, k);
        *(int *)dst = (int)e->integer;
        return NQ_OK;
    }
    return fail_value(o, e, k);
}

/* ------------------------------------------------------------------ loading */

void config_defaults(NupesConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->model_format, sizeof cfg->model_format, "auto");
    cfg->calib_sequences = 0;
    cfg->calib_seq_len = 256;
    cfg->method = METHOD_NUPES;
    cfg->bits = 4;
    cfg->group_size = 0;
    cfg->exponent_per_channel = 0;
    cfg->learn_scale = 1;
    cfg->skip_mask = 0;
    cfg->mode = MODE_PARALLEL;
    cfg->switch_fraction = 0.8;
    cfg->iterations = 500;
    cfg->batch = 4;
    cfg->lr_weights = 1e-3;
    cfg->lr_exponent = 1e-4;
    cfg->lr_scale = 1e-3;
    cfg->seed = 1;
    snprintf(cfg->run_dir, sizeof cfg->run_dir, "run");
    cfg->checkpoint_interval = 60.0;
    cfg->stop_seconds = 20.0; /* SLURM's default KillWait is 30 s: 10 s left to abandon and exit */
    cfg->zstd_level = 1; /* codes are parsed as symbols at any level (io/h5zstd_filter.h); 1 is fastest */
    cfg->data_parallel = 1;
    cfg->eval_seq_len = 256;
    cfg->eval_sequences = 0;
}

/* Reads a whole (small) file into a NUL-terminated malloc'd buffer. */
static nq_status read_small_file(const char *path, char **out, size_t *len) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return nq_fail(NQ_ERR_INPUT, "%s: cannot open config file: %s", path, strerror(errno));
    nq_status st = NQ_OK;
    char *buf = nq_calloc(CONFIG_FILE_MAX + 1, 1, "the config file");
    if (!buf) {
        st = NQ_ERR_RUNTIME;
        goto cleanup;
    }
    size_t const n = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
    if (ferror(f)) {
        st = nq_fail(NQ_ERR_INPUT, "%s: cannot read config file: %s", path, strerror(errno));
        goto cleanup;
    }
    if (n > CONFIG_FILE_MAX) {
        st = nq_fail(NQ_ERR_INPUT, "%s: config file is larger than %d bytes, expected a small "
                     "TOML file", path, CONFIG_FILE_MAX);
        goto cleanup;
    }
    buf[n] = '\0';
    *len = n;
    *out = buf;
    buf = NULL;
cleanup:
    free(buf);
    fclose(f);
    return st;
}

/* Checks one entry of a parsed file (tables are checked for their name only). */
static nq_status check_entry(NupesConfig *cfg, const TomlcEntry *e, const Origin *o) {
    char known[512];
    if (e->depth == 1 && e->kind == TOMLC_TABLE) {
        if (section_known(e->key)) return NQ_OK;
        list_sections(known, sizeof known);
        return nq_fail(NQ_ERR_INPUT, "%s:%d: unknown section [%s] (known sections: %s)", o->file,
                       e->line, e->key, known);
    }
    if (e->depth == 1) {
        list_sections(known, sizeof known);
        if (section_known(e->key))
            return nq_fail(NQ_ERR_INPUT, "%s:%d: %s = %s, expected a table [%s]", o->file,
                           e->line, e->key, e->text, e->key);
        return nq_fail(NQ_ERR_INPUT, "%s:%d: unknown key %s outside any section (known "
                       "sections: %s)", o->file, e->line, e->key, known);
    }
    if (!section_known(e->section)) {
        list_sections(known, sizeof known);
        return nq_fail(NQ_ERR_INPUT, "%s:%d: unknown section [%s] (known sections: %s)", o->file,
                       e->line, e->section, known);
    }
    /* A sub-table ([model.shape]) is known when some key of its section lies under it. */
    if (e->depth == 2 && e->kind == TOMLC_TABLE && sub_table_known(e->section, e->key)) return NQ_OK;
    /* Deeper keys are found by their path after the section: "shape.hidden_size". */
    const ConfigKey *k = e->depth == 2   ? find_key(e->section, e->key)
                         : e->depth == 3 ? find_key(e->section, e->path + strlen(e->section) + 1)
                                         : NULL;
    if (!k) {
        list_keys(e->section, known, sizeof known);
        return nq_fail(NQ_ERR_INPUT, "%s:%d: unknown key %s (known keys in [%s]: %s)", o->file,
                       e->line, e->path, e->section, known);
    }
    return apply_value(cfg, k, e, o);
}

/* The directory part of path ("" for a bare file name, "/" for the root). */
static void dir_of(const char *path, char *dir, size_t size) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, size, "%s", "");
    else if (slash == path) snprintf(dir, size, "/");
    else snprintf(dir, size, "%.*s", (int)(slash - path), path);
}

nq_status config_load(const char *path, NupesConfig *cfg) {
    config_defaults(cfg);
    if (strlen(path) >= sizeof cfg->source_path)
        return nq_fail(NQ_ERR_INPUT, "config file name is too long (%zu bytes)", strlen(path));
    snprintf(cfg->source_path, sizeof cfg->source_path, "%s", path);

    char *text = NULL;
    size_t len = 0;
    TomlcDoc *doc = NULL;
    nq_status st = read_small_file(path, &text, &len);
    if (st != NQ_OK) goto cleanup;

    char err[1024];
    TomlcStatus const ts = tomlc_parse(text, len, path, &doc, err, sizeof err);
    if (ts != TOMLC_OK) {
        st = nq_fail(ts == TOMLC_NOMEM ? NQ_ERR_RUNTIME : NQ_ERR_INPUT, "%s", err);
        goto cleanup;
    }
    char base_dir[CONFIG_PATH_MAX];
    dir_of(path, base_dir, sizeof base_dir);
    Origin const o = {path, NULL, base_dir};
    for (size_t i = 0; i < tomlc_count(doc) && st == NQ_OK; i++)
        st = check_entry(cfg, tomlc_entry(doc, i), &o);
cleanup:
    tomlc_free(doc);
    free(text);
    return st;
}

/* ------------------------------------------------------------------ --set */

static int starts_like_toml(const char *value) {
    while (*value == ' ' || *value == '\t') value++;
    return strchr("\"'[{", *value) != NULL && *value != '\0';
}

/* Applies value as a literal string (the bare-word case). */
static nq_status set_literal(NupesConfig *cfg, const ConfigKey *k, const char *path,
                             const char *value, const Origin *o) {
    TomlcEntry e;
    memset(&e, 0, sizeof e);
    e.path = path;
    e.section = k->section;
    e.key = k->key;
    e.depth = 2;
    e.kind = TOMLC_STRING;
    e.string = value;
    e.text = value;
    return apply_value(cfg, k, &e, o);
}

/* Parses "[section]\nkey = value" and applies the one entry it holds. */
static nq_status set_parsed(NupesConfig *cfg, const ConfigKey *k, const char *path,
                            const char *value, const Origin *o) {
    size_t const size = strlen(k->section) + strlen(k->key) + strlen(value) + 16;
    char *doc_text = nq_calloc(size, 1, "a --set value");
    if (!doc_text) return NQ_ERR_RUNTIME;
    snprintf(doc_text, size, "[%s]\n%s = %s\n", k->section, k->key, value);
    TomlcDoc *doc = NULL;
    char err[1024];
    nq_status st = NQ_OK;
    TomlcStatus const ts = tomlc_parse(doc_text, strlen(doc_text), "--set", &doc, err, sizeof err);
    if (ts == TOMLC_NOMEM) {
        st = nq_fail(NQ_ERR_RUNTIME, "%s", err);
    } else if (ts == TOMLC_SYNTAX && !starts_like_toml(value)) {
        st = set_literal(cfg, k, path, value, o); /* a bare word: take it as a string */
    } else if (ts == TOMLC_SYNTAX) {
        /* drop the "--set:2:9: " position, which refers to the wrapped text */
        const char *msg = err;
        for (int colons = 0; *msg && colons < 3; msg++) colons += *msg == ':';
        while (*msg == ' ') msg++;
        st = nq_fail(NQ_ERR_INPUT, "--set %s: malformed TOML value: %s", o->assignment, msg);
    } else {
        for (size_t i = 0; i < tomlc_count(doc); i++)
            if (strcmp(tomlc_entry(doc, i)->path, path) == 0) st = apply_value(cfg, k, tomlc_entry(doc, i), o);
    }
    tomlc_free(doc);
    free(doc_text);
    return st;
}

nq_status config_set(NupesConfig *cfg, const char *assignment) {
    const char *eq = strchr(assignment, '=');
    const char *dot = strchr(assignment, '.');
    if (!eq || !dot || dot > eq)
        return nq_fail(NQ_ERR_INPUT, "--set %s: expected section.key=value", assignment);
    if (strpbrk(assignment, "\n\r"))
        return nq_fail(NQ_ERR_INPUT, "--set %.*s...: expected a value on one line",
                       (int)strcspn(assignment, "\n\r"), assignment);
    char section[64], key[64], path[160];
    int const slen = (int)(dot - assignment), klen = (int)(eq - dot - 1);
    if (slen >= (int)sizeof section || klen >= (int)sizeof key)
        return nq_fail(NQ_ERR_INPUT, "--set %s: unknown key", assignment);
    snprintf(section, sizeof section, "%.*s", slen, assignment);
    snprintf(key, sizeof key, "%.*s", klen, dot + 1);
    snprintf(path, sizeof path, "%s.%s", section, key);

    char known[512];
    if (!section_known(section)) {
        list_sections(known, sizeof known);
        return nq_fail(NQ_ERR_INPUT, "--set %s: unknown section [%s] (known sections: %s)",
                       assignment, section, known);
    }
    const ConfigKey *k = find_key(section, key);
    if (!k) {
        list_keys(section, known, sizeof known);
        return nq_fail(NQ_ERR_INPUT, "--set %s: unknown key %s (known keys in [%s]: %s)",
                       assignment, path, section, known);
    }
    Origin const o = {NULL, assignment, NULL};
    const char *value = eq + 1;
    int const stringy = k->kind == K_PATH || k->kind == K_CHOICE || k->kind == K_CHOICE_STR;
    if (stringy && !starts_like_toml(value)) return set_literal(cfg, k, path, value, &o);
    return set_parsed(cfg, k, path, value, &o);
}

/* ------------------------------------------------------------------ cross-key checks */

static nq_status make_absolute(char *path, const char *key, const char *source) {
    if (path[0] == '\0' || path[0] == '/') return NQ_OK;
    char cwd[CONFIG_PATH_MAX], abs_path[CONFIG_PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return nq_fail(NQ_ERR_RUNTIME, "%s: cannot resolve %s: getcwd: %s", source, key,
                       strerror(errno));
    if (join_path(cwd, path, abs_path, sizeof abs_path) != 0)
        return nq_fail(NQ_ERR_INPUT, "%s: %s = \"%s\" is too long once absolute, expected a path "
                       "under %d bytes", source, key, path, CONFIG_PATH_MAX);
    memset(path, 0, CONFIG_PATH_MAX);
    memcpy(path, abs_path, strlen(abs_path));
    return NQ_OK;
}

/* llama.cpp's grids fix what the power grid leaves free: 16 levels (bits 4), blocks of
 * 32 inputs (group_size 32, set here when left at its default), no exponent to search. */
static nq_status check_grid(NupesConfig *cfg, const char *src) {
    if (cfg->grid == QUANTIZER_POWER) return NQ_OK;
    const char *g = grids[cfg->grid];
    if (cfg->bits != 4)
        return nq_fail(NQ_ERR_INPUT, "%s: quantization.bits = %d with grid = \"%s\", expected 4 (the "
                       "grid has 16 levels)", src, cfg->bits, g);
    if (cfg->group_size != 0 && cfg->group_size != IQ4_GROUP)
        return nq_fail(NQ_ERR_INPUT, "%s: quantization.group_size = %d with grid = \"%s\", expected %d "
                       "(llama.cpp's blocks) or unset", src, cfg->group_size, g, IQ4_GROUP);
    if (cfg->method == METHOD_POWERQUANT)
        return nq_fail(NQ_ERR_INPUT, "%s: quantization.method = \"powerquant\" with grid = \"%s\", "
                       "expected \"nupes\" or \"rtn\" (the grid has no exponent to search)", src, g);
    cfg->group_size = IQ4_GROUP;
    return NQ_OK;
}

nq_status config_validate(NupesConfig *cfg) {
    const char *src = cfg->source_path[0] ? cfg->source_path : "config";
    nq_status const grid_st = check_grid(cfg, src);
    if (grid_st != NQ_OK) return grid_st;
    if (cfg->model_path[0] == '\0')
        return nq_fail(NQ_ERR_INPUT, "%s: model.path is required", src);
    if (cfg->calib_text[0] && cfg->calib_tokens[0])
        return nq_fail(NQ_ERR_INPUT, "%s: calibration.text and calibration.tokens are both set, "
                       "expected exactly one", src);
    if (!cfg->calib_text[0] && !cfg->calib_tokens[0])
        return nq_fail(NQ_ERR_INPUT, "%s: calibration.text or calibration.tokens is required",
                       src);
    for (size_t i = 0; i < N_KEYS; i++) {
        if (keys[i].kind != K_PATH) continue;
        char name[64];
        snprintf(name, sizeof name, "%s.%s", keys[i].section, keys[i].key);
        nq_status const st = make_absolute(field(cfg, &keys[i]), name, src);
        if (st != NQ_OK) return st;
    }
    if (cfg->output_path[0] == '\0') {
        int const n = snprintf(cfg->output_path, sizeof cfg->output_path, "%s/checkpoint.h5",
                               cfg->run_dir);
        if (n < 0 || (size_t)n >= sizeof cfg->output_path)
            return nq_fail(NQ_ERR_INPUT, "%s: run.dir is too long to hold output.path, expected a "
                           "path under %d bytes", src, CONFIG_PATH_MAX - 16);
    }
    return NQ_OK;
}

/* ------------------------------------------------------------------ printing */

/* A growable string; on allocation failure it records the error and stays failed. */
typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} TextBuf;

static void tb_printf(TextBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(TextBuf *b, const char *fmt, ...) {
    if (b->failed) return;
    va_list ap;
    va_start(ap, fmt);
    int const n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t const cap = 2 * (b->len + (size_t)n + 1);
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = 1;
            nq_fail(NQ_ERR_RUNTIME, "out of memory printing the config (%zu bytes)", cap);
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* A TOML basic string: quotes, backslashes and control characters escaped. */
static void tb_quoted(TextBuf *b, const char *s) {
    tb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') tb_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f) tb_printf(b, "\\u%04x", *p);
        else tb_printf(b, "%c", *p);
    }
    tb_printf(b, "\"");
}

/* The shortest %g that reads back to the same double, always with a '.' or exponent so
 * that it stays a TOML float. */
static void tb_double(TextBuf *b, double v) {
    char s[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(s, sizeof s, "%.*g", digits, v);
        if (strtod(s, NULL) == v) break;
    }
    if (isfinite(v) && !strpbrk(s, ".eE")) strcat(s, ".0");
    tb_printf(b, "%s", s);
}

static void print_value(TextBuf *b, const NupesConfig *cfg, const ConfigKey *k) {
    const void *src = cfield(cfg, k);
    switch (k->kind) {
    case K_PATH:
    case K_CHOICE_STR: tb_quoted(b, src); break;
    case K_CHOICE: {
        int const idx = *(const int *)src, n = choice_count(k);
        tb_quoted(b, idx >= 0 && idx < n ? k->choices[idx] : "?"); /* "?" fails to load back */
        break;
    }
    case K_INT: tb_printf(b, "%d", *(const int *)src); break;
    case K_SEED: tb_printf(b, "%llu", (unsigned long long)*(const uint64_t *)src); break;
    case K_FLOAT: tb_double(b, *(const double *)src); break;
    case K_BOOL: tb_printf(b, "%s", *(const int *)src ? "true" : "false"); break;
    case K_SKIP: {
        unsigned const mask = *(const unsigned *)src;
        tb_printf(b, "[");
        for (int i = 0, n = 0; i < N_MATS; i++)
            if (mask & (1u << i)) tb_printf(b, "%s\"%s\"", n++ ? ", " : "", mat_names[i]);
        tb_printf(b, "]");
        break;
    }
    case K_PARALLEL:
        if (*(const int *)src == 0) tb_printf(b, "\"auto\"");
        else tb_printf(b, "%d", *(const int *)src);
        break;
    }
}

static char *print_keys(const NupesConfig *cfg, int result_keys_only) {
    TextBuf b = {0};
    const char *section = NULL;
    for (size_t i = 0; i < N_KEYS; i++) {
        const ConfigKey *k = &keys[i];
        if (result_keys_only && !k->changes_result) continue;
        if (strncmp(k->key, "shape.", 6) == 0 && cfg->shape.hidden_size == 0) continue;
        if (k->kind == K_CHOICE_STR && !*((const char *)cfg + k->offset)) continue; /* optional, not given */
        if (!section || strcmp(section, k->section) != 0) {
            tb_printf(&b, "%s[%s]\n", section ? "\n" : "", k->section);
            section = k->section;
        }
        tb_printf(&b, "%s = ", k->key);
        print_value(&b, cfg, k);
        tb_printf(&b, "\n");
    }
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

char *config_to_toml(const NupesConfig *cfg) { return print_keys(cfg, 0); }

char *config_result_keys_toml(const NupesConfig *cfg) { return print_keys(cfg, 1); }

const char *config_method_name(QuantMethod m) {
    return (unsigned)m < sizeof methods / sizeof methods[0] - 1 ? methods[m] : "?";
}

QuantSpec config_quant_spec(const NupesConfig *cfg) {
    return (QuantSpec){.bits = cfg->bits, .group_size = cfg->group_size,
                       .per_row = cfg->exponent_per_channel, .quantizer = cfg->grid};
}

const char *config_mode_name(ReconMode m) {
    return (unsigned)m < sizeof modes / sizeof modes[0] - 1 ? modes[m] : "?";
}
