/* nupes-mpi: command-line entry point. Dispatches to one function per subcommand. */
#include <stdio.h>
#include <string.h>

#include "status.h"

static void print_usage(FILE *out) {
    fprintf(out,
            "usage: nupes-mpi [quantize] --config FILE [--set key=value]... [--restart] [--dry-run]\n"
            "       nupes-mpi eval      --model M [--checkpoint C] --text FILE [--seq-len T]\n"
            "       nupes-mpi generate  --checkpoint C [--prompt TEXT] [--steps N] [--temperature X]\n"
            "       nupes-mpi export    --checkpoint C --format llama2c|safetensors --out PATH\n"
            "       nupes-mpi inspect   FILE\n"
            "Run 'nupes-mpi COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? NQ_ERR_INPUT : NQ_OK;
    }
    fprintf(stderr, "nupes-mpi: unknown command '%s'\n", argv[1]);
    print_usage(stderr);
    return NQ_ERR_INPUT;
}
