/* The job config (io/config.c over io/toml_c.cpp): the TOML C API on the raw bytes, then
 * config_load on them as a file, config_set with the first line as an override, and, for a
 * config that validates, the round trip config_to_toml -> config_load -> config_to_toml
 * (the printed config must read back to the same text). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fuzz_common.h"
#include "toml_c.h"

static void config_toml_api(const uint8_t *data, size_t size) {
    TomlcDoc *doc = NULL;
    char err[256];
    TomlcStatus const ts = tomlc_parse((const char *)data, size, "fuzz.toml", &doc, err, sizeof err);
    FUZZ_CHECK((ts == TOMLC_OK) == (doc != NULL));
    FUZZ_CHECK(ts == TOMLC_OK || memchr(err, '\0', sizeof err) != NULL);
    for (size_t i = 0; doc && i < tomlc_count(doc); i++) {
        TomlcEntry const *e = tomlc_entry(doc, i);
        FUZZ_CHECK(e->path && e->section && e->key && e->text);
        fuzz_sink += (float)(strlen(e->path) + strlen(e->text));
        if (e->kind == TOMLC_STRING) fuzz_sink += (float)strlen(e->string);
        for (size_t j = 0; e->kind == TOMLC_STRING_ARRAY && j < e->n_strings; j++)
            fuzz_sink += (float)strlen(e->strings[j]);
    }
    tomlc_free(doc);
}

/* cfg validated: its TOML text must read back to the same text. */
static void config_round_trip(const NupesConfig *cfg) {
    char *text = config_to_toml(cfg);
    FUZZ_CHECK(text != NULL);
    char path[128];
    if (fuzz_write_temp((const uint8_t *)text, strlen(text), ".toml", path, sizeof path) == 0) {
        NupesConfig *again = malloc(sizeof *again);
        FUZZ_CHECK(again != NULL);
        FUZZ_CHECK(config_load(path, again) == NQ_OK);
        FUZZ_CHECK(config_validate(again) == NQ_OK);
        char *text2 = config_to_toml(again);
        FUZZ_CHECK(text2 != NULL && strcmp(text, text2) == 0);
        free(text2);
        free(again);
        unlink(path);
    }
    free(text);
}

static void config_set_line(NupesConfig *cfg, const uint8_t *data, size_t size) {
    size_t n = 0;
    while (n < size && n < 512 && data[n] != '\n') n++;
    char *line = malloc(n + 1);
    FUZZ_CHECK(line != NULL);
    memcpy(line, data, n);
    line[n] = '\0';
    nq_clear_error();
    (void)config_set(cfg, line);
    free(line);
}

int fuzz_config(const uint8_t *data, size_t size) {
    config_toml_api(data, size);
    char path[128];
    if (fuzz_write_temp(data, size, ".toml", path, sizeof path) != 0) return 0;
    NupesConfig *cfg = malloc(sizeof *cfg);
    FUZZ_CHECK(cfg != NULL);
    if (config_load(path, cfg) == NQ_OK) {
        nq_clear_error();
        if (config_validate(cfg) == NQ_OK) config_round_trip(cfg);
    }
    nq_clear_error();
    config_defaults(cfg);
    config_set_line(cfg, data, size);
    free(cfg);
    unlink(path);
    nq_clear_error();
    return 0;
}

FUZZ_ENTRY(fuzz_config)
