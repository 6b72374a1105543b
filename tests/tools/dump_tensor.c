/* dump_tensor CKPT BLOCK MATRIX codes|scale|exponent
 *
 * Prints one quantized tensor of a checkpoint, read through the project's reader
 * (checkpoint_read_block), one value per line in row-major order: codes as integers,
 * scales and exponents with %.9g. Tests compare this with what other tools (h5dump with
 * the zstd plugin, h5py) read from the same file. Exit 2 on bad input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

static void print_tensor(const QuantMatrix *q, const char *field) {
    size_t const n = !strcmp(field, "codes")   ? (size_t)q->shape.rows * q->shape.cols
                     : !strcmp(field, "scale") ? (size_t)q->shape.rows * q->shape.groups
                                               : (size_t)q->shape.n_exponents;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(field, "codes")) printf("%d\n", q->codes[i]);
        else printf("%.9g\n", !strcmp(field, "scale") ? q->scales[i] : q->exponents[i]);
    }
}

int main(int argc, char **argv) {
    if (argc != 5 || (strcmp(argv[4], "codes") && strcmp(argv[4], "scale") && strcmp(argv[4], "exponent"))) {
        fprintf(stderr, "usage: dump_tensor CKPT BLOCK MATRIX codes|scale|exponent\n");
        return 2;
    }
    int const l = atoi(argv[2]), which = mat_index(argv[3]);
    CheckpointReader *r = NULL;
    BlockResult b = {0};
    int rc = 2;
    if (which < 0) {
        fprintf(stderr, "dump_tensor: matrix '%s', expected one of wq wk wv wo w1 w2 w3\n", argv[3]);
    } else if (checkpoint_open(argv[1], &r) != NQ_OK || checkpoint_read_block(r, l, &b, NULL, NULL) != NQ_OK) {
        fprintf(stderr, "dump_tensor: %s\n", nq_last_error());
    } else if (!b.mat[which].quantized) {
        fprintf(stderr, "dump_tensor: block %d %s is kept fp32 (no %s)\n", l, argv[3], argv[4]);
    } else {
        print_tensor(&b.mat[which], argv[4]);
        rc = 0;
    }
    block_result_free(&b);
    checkpoint_close(r);
    return rc;
}
