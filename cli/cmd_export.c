/* nupes-mpi export: a quantized checkpoint, dequantized to fp32, written for other tools:
 * llama2.c's legacy .bin (run.c runs it) or a Hugging Face safetensors directory (this
 * tool, transformers and llama.cpp's converter read it). Any model this tool reads can be
 * given (an fp32 llama2.c file or HF directory too: a format converter). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "commands.h"
#include "export_llama2c.h"
#include "export_safetensors.h"
#include "model_file.h"
#include "status.h"

typedef struct {
    const char *checkpoint;
    const char *format; /* "llama2c" | "safetensors" */
    const char *out;
    const char *dtype;  /* "f32" (default) | "f16" | "bf16" */
} ExportOptions;

static void print_help(FILE *out) {
    fprintf(out,
            "usage: nupes-mpi export --checkpoint C --format llama2c|safetensors --out PATH [--dtype T]\n\n"
            "Writes the dequantized model of checkpoint C (its integer codes, scales and exponents\n"
            "turned back into fp32 weights) for other tools:\n"
            "  llama2c      llama2.c's legacy .bin (fp32), runnable by llama2.c's run.c; an HF\n"
            "               model's q/k rows are un-permuted to llama2.c's interleaved RoPE\n"
            "  safetensors  a Hugging Face directory: config.json + model.safetensors with\n"
            "               LLaMA tensor names (q/k rows in HF's layout); PATH is created\n"
            "C may also be an fp32 model (llama2.c .bin or HF directory): the export converts it.\n"
            "Files are written under temporary names and renamed when complete.\n\n"
            "options:\n"
            "  --checkpoint C   nupes-mpi checkpoint (.h5), or any model this tool reads; required\n"
            "  --format F       llama2c | safetensors; required\n"
            "  --out PATH       output file (llama2c) or directory (safetensors); required\n"
            "  --dtype T        safetensors element type: f32 (default), f16 or bf16\n"
            "  --help           this text\n");
}

/* Returns 0 to run, 1 after --help, or NQ_ERR_INPUT (message printed). */
static int parse_options(int argc, char **argv, ExportOptions *o) {
    static const struct option longopts[] = {
        {"checkpoint", required_argument, NULL, 'c'}, {"format", required_argument, NULL, 'f'},
        {"out", required_argument, NULL, 'o'},        {"dtype", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0},
    };
    *o = (ExportOptions){.dtype = "f32"};
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': o->checkpoint = optarg; break;
        case 'f': o->format = optarg; break;
        case 'o': o->out = optarg; break;
        case 't': o->dtype = optarg; break;
        case 'h': print_help(stdout); return 1;
        case ':':
            fprintf(stderr, "nupes-mpi export: option '%s' needs a value\n", argv[optind - 1]);
            return NQ_ERR_INPUT;
        default:
            fprintf(stderr, "nupes-mpi export: unknown option '%s' (see 'nupes-mpi export --help')\n", argv[optind - 1]);
            return NQ_ERR_INPUT;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "nupes-mpi export: unexpected argument '%s' (see 'nupes-mpi export --help')\n", argv[optind]);
        return NQ_ERR_INPUT;
    }
    const char *missing = !o->checkpoint ? "--checkpoint" : !o->format ? "--format" : !o->out ? "--out" : NULL;
    if (missing) {
        fprintf(stderr, "nupes-mpi export: %s is required (see 'nupes-mpi export --help')\n", missing);
        return NQ_ERR_INPUT;
    }
    if (strcmp(o->format, "llama2c") != 0 && strcmp(o->format, "safetensors") != 0) {
        fprintf(stderr, "nupes-mpi export: --format = '%s', expected llama2c or safetensors\n", o->format);
        return NQ_ERR_INPUT;
    }
    ExportDtype dt;
    if (export_dtype_parse(o->dtype, &dt) != 0) {
        fprintf(stderr, "nupes-mpi export: --dtype = '%s', expected f32, f16 or bf16\n", o->dtype);
        return NQ_ERR_INPUT;
    }
    if (strcmp(o->format, "llama2c") == 0 && dt != EXPORT_F32) {
        fprintf(stderr, "nupes-mpi export: --dtype = '%s', expected f32 for --format llama2c (the format is fp32 only)\n", o->dtype);
        return NQ_ERR_INPUT;
    }
    return 0;
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static nq_status run_export(const ExportOptions *o) {
    double const t0 = seconds_now();
    Model *m = NULL;
    nq_status st = model_open(o->checkpoint, "auto", &m);
    if (st != NQ_OK) return st;
    const ModelConfig *c = model_config(m);
    ExportDtype dt = EXPORT_F32;
    export_dtype_parse(o->dtype, &dt);
    int const llama2c = strcmp(o->format, "llama2c") == 0;
    st = llama2c ? export_llama2c(m, o->out) : export_safetensors(m, o->out, dt);
    if (st == NQ_OK) {
        char size_path[4096];
        snprintf(size_path, sizeof size_path, llama2c ? "%s" : "%s/model.safetensors", o->out);
        struct stat sb;
        double const mb = stat(size_path, &sb) == 0 ? (double)sb.st_size / 1e6 : 0;
        printf("export: %s -> %s (%s, %s, %d blocks, rope %s): %.1f MB in %.2f s\n", o->checkpoint, o->out,
               o->format, llama2c ? "f32" : o->dtype, c->n_layers,
               c->rope_style == ROPE_HALF ? "half" : "interleaved", mb, seconds_now() - t0);
    }
    model_close(m);
    return st;
}

int cmd_export(int argc, char **argv) {
    ExportOptions o;
    int const parsed = parse_options(argc, argv, &o);
    if (parsed == 1) return NQ_OK;
    if (parsed != 0) return parsed;
    nq_status const st = run_export(&o);
    if (st != NQ_OK) fprintf(stderr, "nupes-mpi export: %s\n", nq_last_error());
    return st;
}
