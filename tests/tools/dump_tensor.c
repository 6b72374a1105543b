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

/* The stored array `field` as its quantizer describes it: integers as integers, floats
 * (fp16 widened exactly) with %.9g. */
static void print_tensor(const QuantMatrix *q, const char *field) {
    for (int k = 0; k < q->n_arrays; k++) {
        const QArrayDesc *d = &q->desc[k];
        if (strcmp(d->name, field) != 0) continue;
        for (size_t i = 0; i < qarray_count(d); i++) {
            if (d->type == QA_I8) printf("%d\n", (int)qarray_float(d, q->array[k], i));
            else printf("%.9g\n", qarray_float(d, q->array[k], i));
        }
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
