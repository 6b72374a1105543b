/* nupes-mpi: command-line entry point. Dispatches to one function per subcommand; the
 * default command is quantize, so `nupes-mpi --config job.toml` quantizes. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "parallel.h"
#include "status.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"quantize", cmd_quantize, "quantize a model with NUPES (the default command)"},
    {"eval", cmd_eval, "perplexity, KL divergence and top-1 agreement of a checkpoint"},
    {"generate", cmd_generate, "write text with a (quantized) model"},
    {"export", cmd_export, "write a checkpoint as a llama2.c file or a safetensors directory"},
    {"inspect", cmd_inspect, "summarise a model, run directory, state or checkpoint file"},
    {"verify", cmd_verify, "check a checkpoint against its checksums (exit 0 intact, 2 damaged)"},
};

static void print_usage(FILE *out) {
    fprintf(out,
            "nupes-mpi " NUPES_VERSION ": NUPES post-training quantization of LLaMA models\n\n"
            "usage: nupes-mpi [quantize] --config FILE [--set key=value]... [--restart] [--dry-run]\n"
            "       nupes-mpi eval      --model M [--checkpoint C] --text FILE [--seq-len T] [--kld-base F]\n"
            "       nupes-mpi eval      --config FILE [--checkpoint C] [--kld-base F]\n"
            "       nupes-mpi generate  --checkpoint C [--prompt TEXT] [--steps N] [--temperature X]\n"
            "       nupes-mpi export    --checkpoint C --format llama2c|safetensors --out PATH\n"
            "       nupes-mpi inspect   FILE\n"
            "       nupes-mpi verify    CHECKPOINT\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'nupes-mpi COMMAND --help' for a command's options.\n"
                 "Exit codes: 0 done, 2 bad input or config (nothing written), 3 runtime failure,\n"
                 "75 stopped on a signal with its state saved (re-run the same command to resume).\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return NQ_ERR_INPUT;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_usage(stdout);
        return NQ_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("nupes-mpi %s\nblas: %s, kernel %s, %d thread%s (OPENBLAS_NUM_THREADS)\n",
               NUPES_VERSION, parallel_blas_library(), parallel_blas_kernel(), parallel_threads(),
               parallel_threads() > 1 ? "s" : "");
        return NQ_OK;
    }
    char why[320];
    if (!parallel_blas_kernel_runs_here(why, sizeof why)) { /* before any work: exit 2, nothing written */
        fprintf(stderr, "nupes-mpi: error: %s\n", why);
        return NQ_ERR_INPUT;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    if (argv[1][0] == '-') return cmd_quantize(argc, argv); /* options only: quantize */
    fprintf(stderr, "nupes-mpi: unknown command '%s' (run 'nupes-mpi --help')\n", argv[1]);
    return NQ_ERR_INPUT;
}
