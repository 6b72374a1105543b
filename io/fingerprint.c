/* Run fingerprint: component hashes, their combination and the "what differs" message. */
#include "fingerprint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

static const char restart_hint[] = "use --restart to start over or choose another run.dir";

nq_status fingerprint_from_parts(uint64_t model_hash, const int32_t *tokens, size_t n_sequences,
                                 size_t seq_len, const char *settings_toml, Fingerprint *out) {
    memset(out, 0, sizeof *out);
    size_t const len = strlen(settings_toml);
    if (len >= sizeof out->settings_toml)
        return nq_fail(NQ_ERR_INPUT, "fingerprint: result-keys TOML of %zu bytes, expected < %d",
                       len, FINGERPRINT_SETTINGS_MAX);
    memcpy(out->settings_toml, settings_toml, len + 1);

    /* Calibration: the shape first, so that [2][3] and [3][2] of the same ids differ. */
    XXH3_state_t *st = XXH3_createState();
    if (!st) return nq_fail(NQ_ERR_RUNTIME, "fingerprint: out of memory for the hash state");
    uint64_t const shape[2] = {(uint64_t)n_sequences, (uint64_t)seq_len};
    size_t const n_bytes = nq_mul_size(nq_mul_size(n_sequences, seq_len), sizeof *tokens);
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, shape, sizeof shape);
    if (n_bytes > 0) XXH3_64bits_update(st, tokens, n_bytes);
    out->calibration = XXH3_64bits_digest(st);
    XXH3_freeState(st);

    out->model = model_hash;
    out->settings = XXH3_64bits(settings_toml, len);
    uint64_t const parts[3] = {out->model, out->calibration, out->settings};
    XXH128_hash_t const h = XXH3_128bits(parts, sizeof parts);
    snprintf(out->hex, sizeof out->hex, "%016llx%016llx", (unsigned long long)h.high64,
             (unsigned long long)h.low64);
    return NQ_OK;
}

nq_status fingerprint_compute(uint64_t model_hash, const int32_t *tokens, size_t n_sequences,
                              size_t seq_len, const NupesConfig *cfg, Fingerprint *out) {
    char *text = config_result_keys_toml(cfg);
    if (!text) return nq_fail(NQ_ERR_RUNTIME, "fingerprint: out of memory printing the config");
    nq_status const st = fingerprint_from_parts(model_hash, tokens, n_sequences, seq_len, text, out);
    free(text);
    return st;
}

/* The shortest %g that reads back to the same float: every change shows, 1e-05 stays 1e-05. */
static void shortest_float_(float v, char *out, size_t size) {
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(out, size, "%.*g", digits, (double)v);
        if ((float)strtod(out, NULL) == v) return;
    }
}

char *fingerprint_job_settings(const NupesConfig *cfg, int data_parallel, const ModelConfig *mc) {
    NupesConfig resolved = *cfg;
    resolved.data_parallel = data_parallel;
    char *keys = config_result_keys_toml(&resolved);
    if (!keys) return NULL;
    char model[1024], theta[32], eps[32];
    shortest_float_(mc->rope_theta, theta, sizeof theta);
    shortest_float_(mc->norm_eps, eps, sizeof eps);
    snprintf(model, sizeof model,
             "\n[model_config]\ndim = %d\nhidden_dim = %d\nn_layers = %d\nn_heads = %d\nn_kv_heads = %d\n"
             "vocab_size = %d\nseq_len = %d\nrope_theta = %s\nrms_norm_eps = %s\nrope_style = \"%s\"\n"
             "tied_embeddings = %s\n",
             mc->dim, mc->hidden_dim, mc->n_layers, mc->n_heads, mc->n_kv_heads, mc->vocab_size, mc->seq_len,
             theta, eps, mc->rope_style == ROPE_HALF ? "half" : "interleaved",
             mc->tied_embeddings ? "true" : "false");
    size_t const n = strlen(keys), m = strlen(model);
    char *text = realloc(keys, n + m + 1);
    if (!text) {
        free(keys);
        return NULL;
    }
    memcpy(text + n, model, m + 1);
    return text;
}

/* ------------------------------------------------------------------ settings diff */

/* A walk over TOML text one "key = value" line at a time, tracking the [section]: yields
 * (dotted key, value text) pairs. Enough for config_result_keys_toml's flat output. */
typedef struct {
    const char *p;     /* next line */
    char section[64];
    char key[160];     /* "section.key" */
    char value[512];
} KeyWalk;

static void trim_(char *s) {
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = '\0';
    size_t lead = strspn(s, " \t");
    if (lead) memmove(s, s + lead, n - lead + 1);
}

/* Advances to the next key line; 0 at the end of the text. */
static int walk_next_(KeyWalk *w) {
    while (w->p && *w->p) {
        const char *nl = strchr(w->p, '\n');
        size_t const n = nl ? (size_t)(nl - w->p) : strlen(w->p);
        char line[700];
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line - 1 ? n : sizeof line - 1), w->p);
        w->p = nl ? nl + 1 : w->p + n;
        trim_(line);
        if (line[0] == '[') {
            char *end = strchr(line, ']');
            if (end) *end = '\0';
            snprintf(w->section, sizeof w->section, "%.63s", line + 1);
            continue;
        }
        char *eq = strchr(line, '=');
        if (line[0] == '#' || !eq) continue;
        *eq = '\0';
        trim_(line);
        trim_(eq + 1);
        snprintf(w->key, sizeof w->key, "%.63s%s%.90s", w->section, w->section[0] ? "." : "", line);
        snprintf(w->value, sizeof w->value, "%.511s", eq + 1);
        return 1;
    }
    return 0;
}

/* Value of dotted key in text into value; 0 when absent. */
static int find_key_(const char *text, const char *key, char *value, size_t size) {
    KeyWalk w = {.p = text};
    while (walk_next_(&w))
        if (strcmp(w.key, key) == 0) {
            snprintf(value, size, "%s", w.value);
            return 1;
        }
    return 0;
}

/* Why a key matters, when its name alone does not say. */
static const char *key_note_(const char *key) {
    if (strcmp(key, "mpi.data_parallel") == 0)
        return " (ranks sharing each block, resolved: \"auto\" and sequential mode, which uses every rank, "
               "depend on the rank count)";
    if (strncmp(key, "model_config.", 13) == 0) return " (the model's config)";
    return "";
}

/* "quantization.bits = 4 in the run directory, 3 now" for the first key that differs. */
static void describe_settings_diff_(const char *stored, const char *current, char *out, size_t size) {
    char other[512];
    KeyWalk w = {.p = stored};
    while (walk_next_(&w)) {
        if (!find_key_(current, w.key, other, sizeof other)) {
            snprintf(out, size, "%s = %s in the run directory, not set now", w.key, w.value);
            return;
        }
        if (strcmp(other, w.value) != 0) {
            snprintf(out, size, "%s = %s in the run directory, %s now%s", w.key, w.value, other, key_note_(w.key));
            return;
        }
    }
    w = (KeyWalk){.p = current};
    while (walk_next_(&w))
        if (!find_key_(stored, w.key, other, sizeof other)) {
            snprintf(out, size, "%s not set in the run directory, = %s now", w.key, w.value);
            return;
        }
    snprintf(out, size, "the result-changing keys differ in layout");
}

nq_status fingerprint_check(const Fingerprint *stored, const Fingerprint *current,
                            const char *where) {
    if (stored->model != current->model)
        return nq_fail(NQ_ERR_INPUT,
                       "%s: this run directory was made for a different model (weights hash "
                       "%016llx vs %016llx); %s",
                       where, (unsigned long long)stored->model, (unsigned long long)current->model,
                       restart_hint);
    if (stored->calibration != current->calibration)
        return nq_fail(NQ_ERR_INPUT,
                       "%s: this run directory was made for different calibration data (tokens "
                       "hash %016llx vs %016llx); %s",
                       where, (unsigned long long)stored->calibration,
                       (unsigned long long)current->calibration, restart_hint);
    if (stored->settings != current->settings ||
        strcmp(stored->settings_toml, current->settings_toml) != 0) {
        char diff[1400];
        describe_settings_diff_(stored->settings_toml, current->settings_toml, diff, sizeof diff);
        return nq_fail(NQ_ERR_INPUT, "%s: this run directory was made with different settings: %s; %s",
                       where, diff, restart_hint);
    }
    if (strcmp(stored->hex, current->hex) != 0)
        return nq_fail(NQ_ERR_INPUT, "%s: fingerprint %s, expected %s (the file was edited?); %s",
                       where, stored->hex, current->hex, restart_hint);
    return NQ_OK;
}
