/* tokenize TOKENIZER VOCAB_SIZE TEXT_FILE
 * Prints the token ids of the whole file as nupes-mpi eval reads it (text_encode_file:
 * BOS first, no EOS), comma-separated on one line, for comparing with other tokenizers. */
#include <stdio.h>
#include <stdlib.h>

#include "text_windows.h"
#include "tokenizer.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: tokenize TOKENIZER VOCAB_SIZE TEXT_FILE\n");
        return 2;
    }
    Tokenizer *tok = NULL;
    int *ids = NULL;
    size_t n = 0;
    nq_status st = tokenizer_open(argv[1], atoi(argv[2]), &tok);
    if (st == NQ_OK) st = text_encode_file(argv[3], tok, &ids, &n);
    if (st != NQ_OK) {
        fprintf(stderr, "tokenize: %s\n", nq_last_error());
        tokenizer_free(tok);
        return st;
    }
    for (size_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
    printf("\n");
    free(ids);
    tokenizer_free(tok);
    return 0;
}
