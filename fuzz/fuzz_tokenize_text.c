/* The text tokenizer on arbitrary bytes (invalid UTF-8, NULs, long runs). Input: one
 * selector byte (bits 0-1: data/tok512.bin, the llama2 tokenizer.bin, the llama2
 * SentencePiece tokenizer.model; bit 2: BOS; bit 3: EOS), then the text. Ids must lie in
 * [0, V), BOS/EOS appear exactly when asked, and decoding every id is safe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "tokenizer.h"

static Tokenizer *text_tokenizers[3];

static Tokenizer *text_tokenizer(int which) {
    static const char *const files[3] = {"tok512.bin", "llama2-tokenizer/tokenizer.bin",
                                         "llama2-tokenizer/tokenizer.model"};
    static const int vocab[3] = {512, 32000, 32000};
    if (!text_tokenizers[which]) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", fuzz_data_dir(), files[which]);
        if (tokenizer_open(path, vocab[which], &text_tokenizers[which]) != NQ_OK) {
            fprintf(stderr, "fuzz_tokenize_text: %s\n", nq_last_error());
            abort();
        }
    }
    return text_tokenizers[which];
}

int fuzz_tokenize_text(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int const which = data[0] & 3;
    if (which == 3) return 0;
    int const bos = (data[0] >> 2) & 1, eos = (data[0] >> 3) & 1;
    Tokenizer const *t = text_tokenizer(which);
    int const V = tokenizer_vocab_size(t);
    int *ids = NULL;
    size_t n = 0;
    nq_status const st = tokenizer_encode(t, (const char *)data + 1, size - 1, bos, eos, &ids, &n);
    FUZZ_CHECK(st == NQ_OK);
    FUZZ_CHECK(n >= (size_t)(bos + eos));
    if (bos) FUZZ_CHECK(ids[0] == TOKEN_BOS);
    if (eos) FUZZ_CHECK(ids[n - 1] == TOKEN_EOS);
    int prev = bos ? TOKEN_BOS : 0;
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(ids[i] >= 0 && ids[i] < V);
        const char *piece = tokenizer_decode(t, prev, ids[i]);
        FUZZ_CHECK(piece != NULL);
        fuzz_sink += (float)strlen(piece);
        prev = ids[i];
    }
    free(ids);
    nq_clear_error();
    return 0;
}

/* Frees the cached tokenizers (the replay test calls it; the fuzzer never does). */
void fuzz_tokenize_text_cleanup(void);
void fuzz_tokenize_text_cleanup(void) {
    for (int i = 0; i < 3; i++) {
        tokenizer_free(text_tokenizers[i]);
        text_tokenizers[i] = NULL;
    }
}

FUZZ_ENTRY(fuzz_tokenize_text)
