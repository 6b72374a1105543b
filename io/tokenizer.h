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

/* "llama2c" (tokenizer.bin) or "sentencepiece" (tokenizer.model). */
const char *tokenizer_format(const Tokenizer *t);

/* Kinds of vocabulary entries, numbered as llama.cpp's token types (llama_token_type) and
 * SentencePiece's piece types. */
typedef enum {
    TOKEN_KIND_NORMAL = 1,
    TOKEN_KIND_UNKNOWN = 2,
    TOKEN_KIND_CONTROL = 3,
    TOKEN_KIND_USER_DEFINED = 4,
    TOKEN_KIND_UNUSED = 5,
    TOKEN_KIND_BYTE = 6,
} TokenKind;

/* Vocabulary entry `id` spelled as SentencePiece spells it: spaces as U+2581 ("\xe2\x96\x81"),
 * byte pieces "<0xNN>", "<unk>", "<s>", "</s>" (a llama2.c tokenizer.bin stores BOS/EOS
 * as "\n<s>\n" and spaces as ' ': they are spelled back), with its score and kind. The
 * string is malloc'd (NUL-terminated; the caller frees it), NULL when out of memory. */
char *tokenizer_piece(const Tokenizer *t, int id, float *score, TokenKind *kind);

#endif
