/* make_calib_tokens TOKENIZER VOCAB TEXT OUT.h5 [--rows T] [--set I V]
 *
 * Tokenizes TEXT as calibration.text would (whole file, BOS first, no EOS) and writes the
 * ids as a calibration.tokens file: int32 /tokens, flat [n], or [n / T][T] with --rows T
 * (the remainder dropped). --set I V overwrites flat id I with V (bad-input tests). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib_tokens.h"
#include "h5util.h"
#include "text_windows.h"
#include "tokenizer.h"

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: make_calib_tokens TOKENIZER VOCAB TEXT OUT.h5 [--rows T] [--set I V]\n");
        return 2;
    }
    int rows_T = 0;
    long set_at = -1, set_value = 0;
    for (int i = 5; i < argc; i++) {
        if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc) rows_T = atoi(argv[++i]);
        else if (strcmp(argv[i], "--set") == 0 && i + 2 < argc) {
            set_at = atol(argv[++i]);
            set_value = atol(argv[++i]);
        } else {
            fprintf(stderr, "make_calib_tokens: bad option %s\n", argv[i]);
            return 2;
        }
    }
    Tokenizer *tok = NULL;
    int *ids = NULL;
    size_t n = 0;
    hid_t file = -1;
    nq_status st = h5u_init();
    if (st == NQ_OK) st = tokenizer_open(argv[1], atoi(argv[2]), &tok);
    if (st == NQ_OK) st = text_encode_file(argv[3], tok, &ids, &n);
    if (st == NQ_OK && set_at >= 0 && (size_t)set_at < n) ids[set_at] = (int)set_value;
    if (st == NQ_OK) st = h5u_create(argv[4], &file);
    if (st == NQ_OK) {
        hsize_t dims[2] = {n, 0};
        int rank = 1;
        if (rows_T > 0) {
            dims[0] = n / (size_t)rows_T;
            dims[1] = (hsize_t)rows_T;
            rank = 2;
        }
        st = h5u_write(file, argv[4], CALIB_TOKENS_DATASET, H5U_I32, rank, dims, ids, 3);
    }
    if (file >= 0 && h5u_close_file(file, argv[4]) != NQ_OK && st == NQ_OK) st = NQ_ERR_RUNTIME;
    if (st == NQ_OK) printf("%s: %zu tokens\n", argv[4], n);
    else fprintf(stderr, "make_calib_tokens: %s\n", nq_last_error());
    free(ids);
    tokenizer_free(tok);
    return st;
}
