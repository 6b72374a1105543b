/* Tokenizer front end: reads the file, tells the format by content and dispatches to the
 * backend (tokenizer_bin.c for llama2.c's tokenizer.bin, tokenizer_sp.c for SentencePiece). */
#include "tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "read_file.h"
#include "sentencepiece_c.h"
#include "tokenizer_internal.h"

/* A SentencePiece ModelProto starts with field 1 (repeated SentencePiece, wire type 2):
 * byte 0x0a, a varint length, then the piece's own field 1 (0x0a). A tokenizer.bin starts
 * with its int32 max_token_length, whose second and later bytes are small. */
static int looks_like_sentencepiece(const unsigned char *data, size_t size) {
    if (size < 3 || data[0] != 0x0a) return 0;
    size_t i = 1;
    while (i < size && i < 6 && (data[i] & 0x80)) i++; /* skip the varint */
    return i + 1 < size && data[i] != 0 && data[i + 1] == 0x0a;
}

nq_status tokenizer_open(const char *path, int vocab_size, Tokenizer **out) {
    *out = NULL;
    unsigned char *data = NULL;
    size_t size = 0;
    Tokenizer *t = NULL;
    nq_status st = read_file(path, "tokenizer", (char **)&data, &size);
    if (st != NQ_OK) goto cleanup;
    t = nq_calloc(1, sizeof *t, "tokenizer");
    if (!t) {
        st = NQ_ERR_RUNTIME;
        goto cleanup;
    }
    snprintf(t->path, sizeof t->path, "%s", path);
    t->vocab_size = vocab_size;
    if (vocab_size <= 0) {
        st = nq_fail(NQ_ERR_INPUT, "%s: vocab_size = %d requested, expected > 0", path, vocab_size);
        goto cleanup;
    }
    if (looks_like_sentencepiece(data, size)) st = tokenizer_sp_open(data, size, t);
    else st = tokenizer_bin_open(data, size, t);
    if (st != NQ_OK) goto cleanup;
    *out = t;
    t = NULL;
cleanup:
    free(t);
    free(data);
    return st;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    if (t->ops && t->ops->free) t->ops->free(t);
    free(t);
}

int tokenizer_vocab_size(const Tokenizer *t) { return t->vocab_size; }

nq_status tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int bos, int eos,
                           int **tokens, size_t *n_tokens) {
    return t->ops->encode(t, text, len, bos, eos, tokens, n_tokens);
}

const char *tokenizer_decode(const Tokenizer *t, int prev, int token) {
    if (token < 0 || token >= t->vocab_size) return "";
    return t->ops->decode(t, prev, token);
}

char *tokenizer_piece(const Tokenizer *t, int id, float *score, TokenKind *kind) {
    return t->ops->piece(t, id, score, kind);
}

const char *tokenizer_format(const Tokenizer *t) { return t->ops->format; }
