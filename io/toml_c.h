/* A small C view of a parsed TOML document (toml++ behind io/toml_c.cpp, the only file
 * that sees C++).
 *
 * A document is flattened into entries, one per key at any depth, sorted by source
 * position: a table (section) is an entry of kind TOMLC_TABLE followed later by its keys;
 * every other value (arrays included) is a leaf and its children are not listed.
 *
 *     TomlcDoc *doc;
 *     char err[512];
 *     if (tomlc_parse(text, len, "job.toml", &doc, err, sizeof err) != TOMLC_OK) ...
 *     for (size_t i = 0; i < tomlc_count(doc); i++) {
 *         const TomlcEntry *e = tomlc_entry(doc, i); // e->path "quantization.bits", e->line 7
 *     }
 *     tomlc_free(doc);
 *
 * Nothing here throws or prints; entry strings live as long as the document. */
#ifndef NUPES_TOML_C_H
#define NUPES_TOML_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TOMLC_OK = 0,
    TOMLC_SYNTAX = 1, /* malformed TOML: err holds "source:line:col: message" */
    TOMLC_NOMEM = 2,  /* allocation failed: err holds "out of memory ..." */
} TomlcStatus;

typedef enum {
    TOMLC_TABLE,        /* [section] or an inline / implicit table */
    TOMLC_STRING,       /* .string */
    TOMLC_INTEGER,      /* .integer (int64) */
    TOMLC_FLOAT,        /* .number (may be inf or nan) */
    TOMLC_BOOL,         /* .integer = 0 or 1 */
    TOMLC_STRING_ARRAY, /* .strings[.n_strings]; an empty array [] is of this kind */
    TOMLC_OTHER_ARRAY,  /* an array holding anything but strings only */
    TOMLC_DATETIME,     /* a date, time or date-time (only .text is set) */
} TomlcKind;

typedef struct {
    const char *path;    /* dotted path of the key: "quantization.bits" */
    const char *section; /* first component of the path: "quantization" */
    const char *key;     /* last component of the path: "bits" */
    int depth;           /* components in the path: 1 = a top-level key or [section] */
    TomlcKind kind;
    const char *string;          /* TOMLC_STRING */
    int64_t integer;             /* TOMLC_INTEGER, TOMLC_BOOL */
    double number;               /* TOMLC_FLOAT */
    const char *const *strings;  /* TOMLC_STRING_ARRAY */
    size_t n_strings;
    const char *text;    /* the value as TOML text, shortened to ~80 chars, for messages;
                            "a table" for tables */
    int line, column;    /* 1-based source position of the key, 0 when unknown */
} TomlcEntry;

typedef struct TomlcDoc TomlcDoc;

/* Parses len bytes of UTF-8 TOML; source_name is used in error messages only. On success
 * *out owns the document (free with tomlc_free); otherwise *out = NULL and err (of
 * err_size bytes) holds one line. */
TomlcStatus tomlc_parse(const char *text, size_t len, const char *source_name,
                        TomlcDoc **out, char *err, size_t err_size);

size_t tomlc_count(const TomlcDoc *doc);
const TomlcEntry *tomlc_entry(const TomlcDoc *doc, size_t i); /* i < tomlc_count */
void tomlc_free(TomlcDoc *doc);                                /* accepts NULL */

#ifdef __cplusplus
}
#endif

#endif
