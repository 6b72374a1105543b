/* The SentencePiece tokenizer backend (tokenizer.model), behind tokenizer_open.
 *
 * Encoding is SentencePiece's own (its normalizer adds the dummy prefix "▁"), framed like
 * llama2.c's run.c: optional BOS, the ids, optional EOS. For the Llama 2 vocabulary this
 * gives the ids run.c gives with the same vocabulary in tokenizer.bin form. Decoding uses
 * the pieces with "▁" turned back into spaces and byte pieces <0xNN> into their byte. */
#include <stdlib.h>
#include <string.h>

#include "sentencepiece_c.h"
#include "tokenizer_internal.h"

typedef struct {
    SpModel *sp;
    char *strings;  /* every decoded piece, NUL-terminated, back to back */
    size_t *offset; /* [V] start of piece v in strings */
} SpTokenizer;

static const char word_boundary[] = "\xe2\x96\x81"; /* U+2581 "▁" */

static nq_status sp_encode(const Tokenizer *t, const char *text, size_t len, int bos, int eos,
                           int **tokens, size_t *n_tokens) {
    SpTokenizer const *s = t->backend;
    int *ids = NULL;
    size_t n = 0;
    *tokens = NULL;
    *n_tokens = 0;
    nq_status const st = sp_model_encode(s->sp, text, len, &ids, &n);
    if (st != NQ_OK) return st;
    int *out = nq_calloc(n + 2, sizeof *out, "tokens");
    if (!out) {
        free(ids);
        return NQ_ERR_RUNTIME;
    }
    size_t k = 0;
    if (bos) out[k++] = TOKEN_BOS;
    memcpy(out + k, ids, n * sizeof *ids);
    k += n;
    if (eos) out[k++] = TOKEN_EOS;
    free(ids);
    *tokens = out;
    *n_tokens = k;
    return NQ_OK;
}

static const char *sp_decode(const Tokenizer *t, int prev, int token) {
    SpTokenizer const *s = t->backend;
    const char *piece = s->strings + s->offset[token];
    if (prev == TOKEN_BOS && piece[0] == ' ' && !sp_model_is_byte(s->sp, token)) piece++;
    return piece;
}

static void sp_free(Tokenizer *t) {
    SpTokenizer *s = t->backend;
    if (!s) return;
    sp_model_free(s->sp);
    free(s->strings);
    free(s->offset);
    free(s);
    t->backend = NULL;
}

static char *sp_piece(const Tokenizer *t, int id, float *score, TokenKind *kind) {
    SpTokenizer const *s = t->backend;
    *score = sp_model_score(s->sp, id);
    *kind = (TokenKind)sp_model_kind(s->sp, id);
    return strdup(sp_model_id_to_piece(s->sp, id));
}

static const TokenizerOps sp_ops = {sp_encode, sp_decode, sp_free, sp_piece, "sentencepiece"};

/* Writes piece v decoded (at most its own length + 1 bytes) to out; returns the length. */
static size_t decode_piece(const SpModel *sp, int v, char *out) {
    const char *piece = sp_model_id_to_piece(sp, v);
    size_t n = 0;
    if (sp_model_is_byte(sp, v) && strlen(piece) == 6) { /* "<0xNN>" */
        out[n++] = (char)strtol(piece + 3, NULL, 16);
    } else {
        for (const char *p = piece; *p;) {
            if (strncmp(p, word_boundary, 3) == 0) {
                out[n++] = ' ';
                p += 3;
            } else {
                out[n++] = *p++;
            }
        }
    }
    out[n] = '\0';
    return n;
}

static nq_status build_pieces(SpTokenizer *s, int vocab_size) {
    size_t total = 0;
    for (int v = 0; v < vocab_size; v++) total += strlen(sp_model_id_to_piece(s->sp, v)) + 1;
    s->strings = nq_calloc(total + 1, 1, "sentencepiece pieces");
    s->offset = nq_calloc((size_t)vocab_size, sizeof *s->offset, "sentencepiece piece offsets");
    if (!s->strings || !s->offset) return NQ_ERR_RUNTIME;
    size_t at = 0;
    for (int v = 0; v < vocab_size; v++) {
        s->offset[v] = at;
        at += decode_piece(s->sp, v, s->strings + at) + 1;
    }
    return NQ_OK;
}

nq_status tokenizer_sp_open(const unsigned char *data, size_t size, Tokenizer *t) {
    SpTokenizer *s = nq_calloc(1, sizeof *s, "sentencepiece tokenizer");
    if (!s) return NQ_ERR_RUNTIME;
    nq_status st = sp_model_load_bytes(data, size, t->path, &s->sp);
    if (st != NQ_OK) goto cleanup;
    int const vocab = sp_model_vocab_size(s->sp);
    if (vocab != t->vocab_size) {
        st = nq_fail(NQ_ERR_INPUT, "%s: vocab_size = %d, expected %d (the model's)", t->path, vocab, t->vocab_size);
        goto cleanup;
    }
    if (sp_model_bos_id(s->sp) != TOKEN_BOS || sp_model_eos_id(s->sp) != TOKEN_EOS) {
        st = nq_fail(NQ_ERR_INPUT, "%s: bos_id = %d, eos_id = %d, expected %d and %d", t->path,
                     sp_model_bos_id(s->sp), sp_model_eos_id(s->sp), TOKEN_BOS, TOKEN_EOS);
        goto cleanup;
    }
    st = build_pieces(s, vocab);
cleanup:
    if (st != NQ_OK) {
        t->backend = s;
        sp_free(t);
        return st;
    }
    t->ops = &sp_ops;
    t->backend = s;
    return NQ_OK;
}
