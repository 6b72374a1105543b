/* A C interface to a SentencePiece model (tokenizer.model). This header and
 * sentencepiece_c.cpp are the only places that know SentencePiece is C++. */
#ifndef NUPES_SENTENCEPIECE_C_H
#define NUPES_SENTENCEPIECE_C_H

#include <stddef.h>

#include "status.h"
#include "tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct SpModel SpModel;

/* Loads a serialized SentencePiece ModelProto. A file that is not one gives a one-line
 * NQ_ERR_INPUT error naming the file. */
nq_status sp_model_load(const char *path, SpModel **out);
/* The same from the file's bytes (name is used in messages). */
nq_status sp_model_load_bytes(const void *data, size_t size, const char *name, SpModel **out);
void sp_model_free(SpModel *sp); /* NULL is fine */

int sp_model_vocab_size(const SpModel *sp);
int sp_model_bos_id(const SpModel *sp); /* -1 when the model has none */
int sp_model_eos_id(const SpModel *sp);

/* Encodes text[0..len) with the model's own normalizer (which adds the dummy prefix "▁"
 * when the model asks for it); no BOS or EOS. *ids is malloc'd (free()), *n_ids its length. */
nq_status sp_model_encode(const SpModel *sp, const char *text, size_t len, int **ids, size_t *n_ids);

/* The piece of id ("▁the", "<0x0A>", "<s>"), valid until sp_model_free; "" when out of range. */
const char *sp_model_id_to_piece(const SpModel *sp, int id);

/* 1 when id is a byte-fallback piece <0xNN>. */
int sp_model_is_byte(const SpModel *sp, int id);

/* The score of id (0 when out of range) and its kind (TokenKind values: normal, unknown,
 * control, unused, byte). */
float sp_model_score(const SpModel *sp, int id);
int sp_model_kind(const SpModel *sp, int id);

/* The tokenizer backend (tokenizer_sp.c), for tokenizer_open: data[0..size) is the whole
 * tokenizer.model (borrowed for the call). Refuses a vocabulary of another size than
 * t->vocab_size, or BOS/EOS ids other than TOKEN_BOS/TOKEN_EOS. Fills t->ops and
 * t->backend, or returns an error with nothing allocated. */
nq_status tokenizer_sp_open(const unsigned char *data, size_t size, Tokenizer *t);

#ifdef __cplusplus
}
#endif

#endif
