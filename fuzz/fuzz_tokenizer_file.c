/* Tokenizer files (llama2.c tokenizer.bin, or a SentencePiece model when the bytes look
 * like one) through tokenizer_open. Input: u16 little-endian vocab_size (taken mod 4096,
 * plus 1), then the file. An accepted tokenizer must encode and decode without fault and
 * give ids in [0, vocab_size). */
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "tokenizer.h"

static void tokenizer_file_exercise(const Tokenizer *t, const uint8_t *text, size_t len) {
    int *ids = NULL;
    size_t n = 0;
    int const V = tokenizer_vocab_size(t);
    if (tokenizer_encode(t, (const char *)text, len, 1, 1, &ids, &n) == NQ_OK) {
        int prev = TOKEN_BOS;
        for (size_t i = 0; i < n; i++) {
            FUZZ_CHECK(ids[i] >= 0 && ids[i] < V);
            const char *piece = tokenizer_decode(t, prev, ids[i]);
            FUZZ_CHECK(piece != NULL);
            fuzz_sink += (float)strlen(piece);
            prev = ids[i];
        }
    }
    free(ids);
    for (int id = 0; id < V; id++) fuzz_sink += (float)strlen(tokenizer_decode(t, id, id));
}

int fuzz_tokenizer_file(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int const vocab = 1 + ((data[0] | data[1] << 8) % 4096);
    char path[128];
    if (fuzz_write_temp(data + 2, size - 2, ".bin", path, sizeof path) != 0) return 0;
    Tokenizer *t = NULL;
    nq_status const st = tokenizer_open(path, vocab, &t);
    FUZZ_CHECK((st == NQ_OK) == (t != NULL));
    if (st == NQ_OK) {
        FUZZ_CHECK(tokenizer_vocab_size(t) == vocab);
        static const char sample[] = "Once upon a time, a \xe2\x80\x9c" "big\xe2\x80\x9d dog\n\xff\xfe x";
        tokenizer_file_exercise(t, (const uint8_t *)sample, sizeof sample - 1);
        tokenizer_file_exercise(t, data + 2, size - 2 < 64 ? size - 2 : 64);
    }
    tokenizer_free(t);
    unlink(path);
    nq_clear_error();
    return 0;
}

FUZZ_ENTRY(fuzz_tokenizer_file)
