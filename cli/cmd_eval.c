/* Placeholder until 'nupes-mpi eval' lands. */
#include <stdio.h>

#include "commands.h"
#include "status.h"

int cmd_eval(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "nupes-mpi: 'eval' is not implemented yet\n");
    return NQ_ERR_INPUT;
}
