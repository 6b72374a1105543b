/* Placeholder until 'nupes-mpi export' lands. */
#include <stdio.h>

#include "commands.h"
#include "status.h"

int cmd_export(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "nupes-mpi: 'export' is not implemented yet\n");
    return NQ_ERR_INPUT;
}
