#include "text_windows.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "read_file.h"

/* The whole text file; an empty one is refused (there is nothing to evaluate). */
static nq_status read_text(const char *path, char **text, size_t *len) {
    nq_status const st = read_file(path, "text", text, len);
    if (st != NQ_OK || *len > 0) return st;
    free(*text);
    *text = NULL;
    return nq_fail(NQ_ERR_INPUT, "%s: text file is empty, expected UTF-8 text", path);
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
