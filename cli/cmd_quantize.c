/* Placeholder until 'nupes-mpi quantize' lands. */
#include <stdio.h>

#include "commands.h"
#include "status.h"

int cmd_quantize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "nupes-mpi: 'quantize' is not implemented yet\n");
    return NQ_ERR_INPUT;
}
