#include "text_windows.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "read_file.h"

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0 when it is not one. */
static size_t utf8_sequence(const unsigned char *s, size_t left) {
    unsigned char const c = s[0];
    if (c < 0x80) return 1;
    size_t const n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (n == 0 || n > left) return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return n;
}

/* The whole text file; an empty one, or one that is not UTF-8, is refused: the
 * tokenizers would turn bad bytes into byte-fallback tokens without a word. */
static nq_status read_text(const char *path, char **text, size_t *len) {
    nq_status st = read_file(path, "text", text, len);
    if (st != NQ_OK) return st;
    if (*len == 0) st = nq_fail(NQ_ERR_INPUT, "%s: text file is empty, expected UTF-8 text", path);
    const unsigned char *u = (const unsigned char *)*text;
    for (size_t i = 0; st == NQ_OK && i < *len;) {
        size_t const n = utf8_sequence(u + i, *len - i);
        if (n == 0)
            st = nq_fail(NQ_ERR_INPUT, "%s: invalid UTF-8 at byte offset %zu (byte 0x%02x), expected UTF-8 text",
                         path, i, u[i]);
        i += n;
    }
    if (st != NQ_OK) {
        free(*text);
        *text = NULL;
    }
    return st;
}

nq_status text_encode_file(const char *text_path, const Tokenizer *tok, int **tokens,
                           size_t *n_tokens) {
    char *text = NULL;
    size_t len = 0;
    *tokens = NULL;
    *n_tokens = 0;
    nq_status st = read_text(text_path, &text, &len);
    if (st == NQ_OK) st = tokenizer_encode(tok, text, len, 1, 0, tokens, n_tokens);
    free(text);
    return st;
}

nq_status text_windows_load(const char *text_path, const Tokenizer *tok, int T, int max_windows,
                            int **windows, int *n_windows) {
    *windows = NULL;
    *n_windows = 0;
    if (T <= 0) return nq_fail(NQ_ERR_INPUT, "%s: sequence length %d, expected > 0", text_path, T);
    int *tokens = NULL;
    size_t n_tokens = 0;
    nq_status st = text_encode_file(text_path, tok, &tokens, &n_tokens);
    if (st != NQ_OK) return st;
    size_t n = n_tokens / (size_t)T;
    if (n == 0) {
        st = nq_fail(NQ_ERR_INPUT, "%s: %zu tokens, fewer than one sequence of %d", text_path, n_tokens, T);
        goto cleanup;
    }
    if (n > (size_t)INT32_MAX / (size_t)T) n = (size_t)INT32_MAX / (size_t)T;
    if (max_windows > 0 && n > (size_t)max_windows) n = (size_t)max_windows;
    /* The windows are the first n * T tokens, already in place: shrink, no copy. */
    int *shrunk = realloc(tokens, n * (size_t)T * sizeof *tokens);
    if (shrunk) tokens = shrunk;
    *windows = tokens;
    *n_windows = (int)n;
    tokens = NULL;
cleanup:
    free(tokens);
    return st;
}
