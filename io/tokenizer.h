/* Text to token ids and back: a llama2.c tokenizer.bin or a SentencePiece
 * tokenizer.model (told apart by content). */
#ifndef NUPES_TOKENIZER_H
#define NUPES_TOKENIZER_H

#include <stddef.h>

#include "status.h"

#define TOKEN_BOS 1
#define TOKEN_EOS 2

typedef struct Tokenizer Tokenizer;

/* vocab_size: the model's; a tokenizer with another size is refused (NQ_ERR_INPUT). */
nq_status tokenizer_open(const char *path, int vocab_size, Tokenizer **out);
void tokenizer_free(Tokenizer *t); /* NULL is fine */

/* Number of token ids (equal to the model's vocab_size checked at open). */
int tokenizer_vocab_size(const Tokenizer *t);

/* Encodes text[0..len) as llama2.c's run.c does: optional BOS, the dummy prefix space,
 * UTF-8 code points (byte fallback <0xNN> = NN + 3 for unknown ones), then greedy merges of
 * the best-scoring pair; optional EOS. *tokens is malloc'd; the caller frees it. */
nq_status tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int bos, int eos,
                           int **tokens, size_t *n_tokens);

/* The text of `token` following `prev` (a leading space is dropped after BOS; byte tokens
 * give their byte). Valid until tokenizer_free. */
const char *tokenizer_decode(const Tokenizer *t, int prev, int token);

#endif
