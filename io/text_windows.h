/* Text files as token windows, the protocol of docs/design.md 7.1 shared by calibration
 * and eval: tokenize the whole file once (BOS at the start only, no EOS), cut it into
 * consecutive non-overlapping windows of T tokens, drop the remainder. */
#ifndef NUPES_TEXT_WINDOWS_H
#define NUPES_TEXT_WINDOWS_H

#include <stddef.h>

#include "status.h"
#include "tokenizer.h"

/* Reads and encodes the whole of text_path (BOS first, no EOS). A missing or empty file is
 * NQ_ERR_INPUT naming the file. *tokens is malloc'd; the caller frees it. */
nq_status text_encode_file(const char *text_path, const Tokenizer *tok, int **tokens,
                           size_t *n_tokens);

/* tokens: the file's tokens cut into windows: *windows is malloc'd [n][T] (row-major, window
 * w at w * T). max_windows <= 0 keeps every full window, else at most max_windows. Fewer
 * tokens than one window is NQ_ERR_INPUT ("text.txt: 37 tokens, fewer than one sequence of
 * 256"). */
nq_status text_windows_load(const char *text_path, const Tokenizer *tok, int T, int max_windows,
                            int **windows, int *n_windows);

#endif
