/* What a tokenizer backend implements (llama2.c tokenizer.bin; SentencePiece
 * tokenizer.model later). Only io/ sees this; everyone else uses tokenizer.h.
 * tokenizer_open (tokenizer.c) reads the file's first bytes, picks the backend and hands
 * it the struct to fill. */
#ifndef NUPES_TOKENIZER_INTERNAL_H
#define NUPES_TOKENIZER_INTERNAL_H

#include <limits.h>

#include "tokenizer.h"

typedef struct {
    nq_status (*encode)(const Tokenizer *t, const char *text, size_t len, int bos, int eos,
                        int **tokens, size_t *n_tokens);
    const char *(*decode)(const Tokenizer *t, int prev, int token);
    void (*free)(Tokenizer *t); /* frees t->backend only */
    char *(*piece)(const Tokenizer *t, int id, float *score, TokenKind *kind); /* tokenizer_piece */
    const char *format; /* tokenizer_format */
} TokenizerOps;

struct Tokenizer {
    const TokenizerOps *ops;
    int vocab_size;
    char path[PATH_MAX];
    void *backend; /* owned by the backend */
};

/* llama2.c tokenizer.bin held in memory (data[0..size), borrowed for the call): reads
 * exactly t->vocab_size tokens and refuses a file with fewer or more. Fills t->ops and
 * t->backend, or returns an error with nothing allocated. */
nq_status tokenizer_bin_open(const unsigned char *data, size_t size, Tokenizer *t);

#endif
