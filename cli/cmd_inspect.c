/* Placeholder until 'nupes-mpi inspect' lands. */
#include <stdio.h>

#include "commands.h"
#include "status.h"

int cmd_inspect(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "nupes-mpi: 'inspect' is not implemented yet\n");
    return NQ_ERR_INPUT;
}
