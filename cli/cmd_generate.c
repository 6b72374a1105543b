/* Placeholder until 'nupes-mpi generate' lands. */
#include <stdio.h>

#include "commands.h"
#include "status.h"

int cmd_generate(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "nupes-mpi: 'generate' is not implemented yet\n");
    return NQ_ERR_INPUT;
}
