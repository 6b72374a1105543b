/* calibration.tokens (docs/design.md 5.1): calibration sequences given as token ids instead of
 * text, for corpora tokenized elsewhere. An HDF5 file with one integer dataset /tokens:
 *   [N][T]  N sequences of exactly calibration.seq_len tokens, used as they are, or
 *   [n]     one token stream, cut into consecutive windows of T tokens (the remainder
 *           dropped): the same windows text_windows_load makes of a text's tokens.
 * Stored as any integer type (int32 expected); every id used must be in [0, vocab_size). */
#ifndef NUPES_CALIB_TOKENS_H
#define NUPES_CALIB_TOKENS_H

#include "status.h"

#define CALIB_TOKENS_DATASET "tokens"

/* Reads path into *windows (malloc'd [n][T], the caller frees) and *n_windows.
 * max_windows <= 0 keeps every window, else at most max_windows. Errors are NQ_ERR_INPUT
 * naming the file and what is wrong: a missing dataset, another rank, a row length other
 * than T, fewer tokens than one window, an id outside the vocabulary (with its position). */
nq_status calib_tokens_load(const char *path, int vocab_size, int T, int max_windows, int **windows,
                            int *n_windows);

#endif
