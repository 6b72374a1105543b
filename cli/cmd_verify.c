/* nupes-mpi verify: reads a whole checkpoint and checks every dataset and attribute
 * against the checksums its writer stored (io/h5sum.h), and every block's values. */
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "commands.h"
#include "status.h"

static void print_help(FILE *out) {
    fprintf(out,
            "usage: nupes-mpi verify CHECKPOINT\n\n"
            "Reads every dataset and attribute of CHECKPOINT and checks it against its XXH3\n"
            "checksum, then decodes every block. Prints one line: \"CHECKPOINT: ok (...)\" and\n"
            "exits 0, or an error naming the first damaged dataset or attribute set and exits 2.\n"
            "A checkpoint written before checksums (format_version 1) cannot be verified (exit 2):\n"
            "re-run the job that wrote it (same config and run.dir) to rewrite it.\n");
}

int cmd_verify(int argc, char **argv) {
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        print_help(stdout);
        return NQ_OK;
    }
    if (argc != 2 || argv[1][0] == '-') {
        print_help(stderr);
        return NQ_ERR_INPUT;
    }
    const char *path = argv[1];
    CheckpointReader *r = NULL;
    int datasets = 0, attr_sets = 0;
    nq_status st = checkpoint_open(path, &r);
    if (st == NQ_OK) st = checkpoint_verify(r, &datasets, &attr_sets);
    checkpoint_close(r);
    if (st != NQ_OK) {
        fprintf(stderr, "nupes-mpi verify: %s\n", nq_last_error());
        return st;
    }
    printf("%s: ok (%d datasets and %d attribute sets match their checksums)\n", path, datasets, attr_sets);
    return NQ_OK;
}
