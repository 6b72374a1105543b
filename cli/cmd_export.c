/* nupes-mpi export: a quantized checkpoint, dequantized to fp32, written for other tools:
 * llama2.c's legacy .bin (run.c runs it), a Hugging Face safetensors directory (this
 * tool, transformers and llama.cpp's converter read it) or a GGUF file (llama.cpp runs
 * it as it is). Any model this tool reads can be
 * given (an fp32 llama2.c file or HF directory too: a format converter). */
#include <dirent.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "clock.h"
#include "commands.h"
#include "export_gguf.h"
#include "export_hf_dir.h"
#include "export_llama2c.h"
#include "export_safetensors.h"
#include "model_file.h"
#include "status.h"

typedef struct {
    const char *checkpoint;
    const char *format; /* "llama2c" | "safetensors" | "gguf" */
    const char *out;
    const char *dtype;  /* "f32" (default) | "f16" | "bf16" */
    const char *max_shard_size; /* safetensors: "5GB" (default, as transformers) */
    const char *tokenizer;      /* gguf */
    const char *type;           /* gguf: "q8_0" | "f16" | "f32"; NULL: the checkpoint's
                                   grid (iq4_nl, iq4_xs) when it has one, else q8_0 */
    const char *embedding_type; /* gguf: NULL = type */
    const char *output_type;    /* gguf: NULL = type */
} ExportOptions;

static void print_help(FILE *out) {
    fprintf(out,
            "usage: nupes-mpi export --checkpoint C --format llama2c|safetensors --out PATH [--dtype T]\n"
            "       nupes-mpi export --checkpoint C --format gguf --tokenizer TOK --out FILE [--type T]\n\n"
            "Writes the dequantized model of checkpoint C (its integer codes, scales and exponents\n"
            "turned back into fp32 weights) for other tools:\n"
            "  llama2c      llama2.c's legacy .bin (fp32), runnable by llama2.c's run.c; an HF\n"
            "               model's q/k rows are un-permuted to llama2.c's interleaved RoPE\n"
            "  safetensors  a Hugging Face directory: config.json + model.safetensors with\n"
            "               LLaMA tensor names (q/k rows in HF's layout), generation_config.json,\n"
            "               the tokenizer (--tokenizer) and a README.md saying what it holds\n"
            "               (dequantized weights of which checkpoint); PATH is created\n"
            "  gguf         one GGUF file llama.cpp loads as it is (architecture llama, the\n"
            "               tokenizer inside, q/k rows in llama.cpp's interleaved-RoPE layout);\n"
            "               llama.cpp has no power grid: a NUPES checkpoint's dequantized\n"
            "               weights are written as Q8_0 (default), F16 or F32\n"
            "C may also be an fp32 model (llama2.c .bin or HF directory): the export converts it.\n"
            "Files are written under temporary names and renamed when complete.\n\n"
            "options:\n"
            "  --checkpoint C   nupes-mpi checkpoint (.h5), or any model this tool reads; required\n"
            "                   (--model M is the same)\n"
            "  --format F       llama2c | safetensors | gguf; required\n"
            "  --out PATH       output file (llama2c, gguf) or directory (safetensors); required\n"
            "  --dtype T        safetensors element type: f32 (default), f16 or bf16\n"
            "  --max-shard-size S  safetensors: at most S of data per file (default 5GB, as\n"
            "                   transformers); more gives model-0000k-of-0000n.safetensors files\n"
            "                   and model.safetensors.index.json\n"
            "  --tokenizer TOK  llama2.c tokenizer.bin or SentencePiece tokenizer.model: required\n"
            "                   for gguf (stored inside); for safetensors, copied into the\n"
            "                   directory (tokenizer.model with tokenizer_config.json)\n"
            "  --type T         gguf: the blocks' matrices as q8_0, f16 or f32 (re-encoded from\n"
            "                   the dequantized weights). Default: a checkpoint learned on\n"
            "                   llama.cpp's iq4_nl or iq4_xs grid (quantization.grid) is written\n"
            "                   in that type exactly as learned; any other source as q8_0. Rows\n"
            "                   that are not whole blocks fall back as in llama.cpp (to f16)\n"
            "  --embedding-type T  gguf: token_embd (default: --type; q8_0 for an iq4 grid)\n"
            "  --output-type T  gguf: the output matrix of an untied model (default: as\n"
            "                   --embedding-type)\n"
            "  --help           this text\n");
}

/* The gguf options: a tokenizer, and types llama.cpp runs that this tool encodes. */
static int check_gguf_options(ExportOptions *o) {
    if (!o->tokenizer) {
        fprintf(stderr, "nupes-mpi export: --tokenizer is required for --format gguf (the vocabulary goes inside the file)\n");
        return NQ_ERR_INPUT;
    }
    if (strcmp(o->dtype, "f32") != 0) {
        fprintf(stderr, "nupes-mpi export: --dtype is for --format safetensors; use --type for gguf\n");
        return NQ_ERR_INPUT;
    }
    if (!o->embedding_type) o->embedding_type = o->type;
    if (!o->output_type) o->output_type = o->embedding_type;
    const char *const opt[3] = {"--type", "--embedding-type", "--output-type"};
    const char *const val[3] = {o->type, o->embedding_type, o->output_type};
    for (int i = 0; i < 3; i++) {
        if (!val[i]) continue; /* decided from the source in run_gguf */
        GgmlType t;
        if (ggml_type_parse(val[i], &t) != 0) {
            fprintf(stderr, "nupes-mpi export: %s = '%s', expected q8_0, f16 or f32\n", opt[i], val[i]);
            return NQ_ERR_INPUT;
        }
    }
    return 0;
}

/* Returns 0 to run, 1 after --help, or NQ_ERR_INPUT (message printed). */
static int parse_options(int argc, char **argv, ExportOptions *o) {
    static const struct option longopts[] = {
        {"checkpoint", required_argument, NULL, 'c'}, {"format", required_argument, NULL, 'f'},
        {"out", required_argument, NULL, 'o'},        {"dtype", required_argument, NULL, 't'},
        {"model", required_argument, NULL, 'c'},      {"tokenizer", required_argument, NULL, 'k'},
        {"type", required_argument, NULL, 'y'},       {"embedding-type", required_argument, NULL, 'e'},
        {"output-type", required_argument, NULL, 'u'}, {"max-shard-size", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (ExportOptions){.dtype = "f32", .max_shard_size = "5GB"};
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': o->checkpoint = optarg; break;
        case 'f': o->format = optarg; break;
        case 'o': o->out = optarg; break;
        case 't': o->dtype = optarg; break;
        case 'k': o->tokenizer = optarg; break;
        case 'y': o->type = optarg; break;
        case 'e': o->embedding_type = optarg; break;
        case 'u': o->output_type = optarg; break;
        case 's': o->max_shard_size = optarg; break;
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
    if (strcmp(o->format, "llama2c") != 0 && strcmp(o->format, "safetensors") != 0 && strcmp(o->format, "gguf") != 0) {
        fprintf(stderr, "nupes-mpi export: --format = '%s', expected llama2c, safetensors or gguf\n", o->format);
        return NQ_ERR_INPUT;
    }
    uint64_t shard_bytes;
    if (export_parse_size(o->max_shard_size, &shard_bytes) != 0) {
        fprintf(stderr, "nupes-mpi export: --max-shard-size = '%s', expected a size such as 5GB, 500MB or 2GiB\n",
                o->max_shard_size);
        return NQ_ERR_INPUT;
    }
    if (strcmp(o->format, "safetensors") != 0 && strcmp(o->max_shard_size, "5GB") != 0) {
        fprintf(stderr, "nupes-mpi export: --max-shard-size is for --format safetensors\n");
        return NQ_ERR_INPUT;
    }
    if (strcmp(o->format, "gguf") == 0) return check_gguf_options(o);
    if (o->type || o->embedding_type || o->output_type) {
        fprintf(stderr, "nupes-mpi export: --type, --embedding-type and --output-type are for --format gguf\n");
        return NQ_ERR_INPUT;
    }
    if (o->tokenizer && strcmp(o->format, "safetensors") != 0) {
        fprintf(stderr, "nupes-mpi export: --tokenizer is for --format gguf or safetensors (llama2c has no place for it)\n");
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

/* The grid a checkpoint was learned on, as a GGUF type (IQ4_NL, IQ4_XS), or -1: an fp32
 * model, or NUPES's power grid, which llama.cpp does not have. */
static int learned_gguf_type(const char *path) {
    CheckpointInfo info;
    if (checkpoint_read_info(path, &info) != NQ_OK) {
        nq_clear_error();
        return -1;
    }
    int const q = info.spec.quantizer;
    checkpoint_info_free(&info);
    return q == QUANTIZER_IQ4_NL ? GGML_IQ4_NL : q == QUANTIZER_IQ4_XS ? GGML_IQ4_XS : -1;
}

/* What the weights are and what llama.cpp gets, in one line. */
static void print_gguf_source(const char *path, GgmlType type, int learned) {
    CheckpointInfo info;
    if (checkpoint_read_info(path, &info) != NQ_OK) {
        nq_clear_error();
        printf("gguf: %s is an fp32 model: its weights are written as %s\n", path, ggml_type_info(type)->name);
        return;
    }
    if (learned >= 0 && (int)type == learned)
        printf("gguf: %s is a %s checkpoint learned on llama.cpp's %s grid: its codes and scales are "
               "written as learned, not requantized\n", path, info.method, ggml_type_info(type)->name);
    else if (learned >= 0)
        printf("gguf: %s is a %s checkpoint on llama.cpp's %s grid: its dequantized weights are "
               "re-encoded as %s (--type)\n", path, info.method, ggml_type_info((GgmlType)learned)->name,
               ggml_type_info(type)->name);
    else
        printf("gguf: %s is a %s %d-bit checkpoint on the power grid, which llama.cpp does not have: "
               "its dequantized weights are written as %s\n", path, info.method, info.spec.bits,
               ggml_type_info(type)->name);
    checkpoint_info_free(&info);
}

static int is_iq4_type(GgmlType t) { return t == GGML_IQ4_NL || t == GGML_IQ4_XS; }

static nq_status run_gguf(const ExportOptions *o, Model *m) {
    /* general.name: the source's file or directory name, without its path */
    char name[256];
    snprintf(name, sizeof name, "%s", o->checkpoint);
    for (size_t n = strlen(name); n > 1 && name[n - 1] == '/'; n--) name[n - 1] = '\0';
    const char *slash = strrchr(name, '/');
    GgufExportOptions g = {.name = slash && slash[1] ? slash + 1 : name, .report = stdout};
    int const learned = learned_gguf_type(o->checkpoint);
    g.type = GGML_Q8_0;
    if (o->type) ggml_type_parse(o->type, &g.type);
    else if (learned >= 0) g.type = (GgmlType)learned, g.codes_from = o->checkpoint;
    GgmlType const side = is_iq4_type(g.type) ? GGML_Q8_0 : g.type; /* llama.cpp's own default */
    g.embedding_type = g.output_type = side;
    if (o->embedding_type) ggml_type_parse(o->embedding_type, &g.embedding_type);
    g.output_type = g.embedding_type;
    if (o->output_type) ggml_type_parse(o->output_type, &g.output_type);
    Tokenizer *tok = NULL;
    nq_status st = tokenizer_open(o->tokenizer, model_config(m)->vocab_size, &tok);
    if (st != NQ_OK) return st;
    print_gguf_source(o->checkpoint, g.type, learned);
    st = export_gguf(m, tok, o->out, &g);
    tokenizer_free(tok);
    return st;
}

/* The HF directory: weights and config.json, then the tokenizer, generation config, README. */
static nq_status run_safetensors(const ExportOptions *o, Model *m, ExportDtype dt) {
    Tokenizer *tok = NULL;
    nq_status st = o->tokenizer ? tokenizer_open(o->tokenizer, model_config(m)->vocab_size, &tok) : NQ_OK;
    uint64_t shard_bytes = 0;
    export_parse_size(o->max_shard_size, &shard_bytes);
    if (st == NQ_OK) st = export_safetensors(m, o->out, dt, shard_bytes);
    CheckpointInfo info;
    int const is_ck = st == NQ_OK && checkpoint_read_info(o->checkpoint, &info) == NQ_OK;
    if (st == NQ_OK && !is_ck) nq_clear_error();
    HfDirInfo const hf = {.source = o->checkpoint, .ck = is_ck ? &info : NULL, .tokenizer_path = o->tokenizer,
                          .tokenizer = tok, .dtype = o->dtype};
    if (st == NQ_OK) st = export_hf_dir_files(model_config(m), o->out, &hf);
    if (is_ck) checkpoint_info_free(&info);
    tokenizer_free(tok);
    return st;
}

/* Size of a file, or of the files directly inside a directory. */
static uint64_t output_bytes(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    if (!S_ISDIR(sb.st_mode)) return (uint64_t)sb.st_size;
    uint64_t total = 0;
    DIR *d = opendir(path);
    for (struct dirent *e = d ? readdir(d) : NULL; e; e = readdir(d)) {
        char p[4096];
        if (snprintf(p, sizeof p, "%s/%s", path, e->d_name) < (int)sizeof p && stat(p, &sb) == 0 && S_ISREG(sb.st_mode))
            total += (uint64_t)sb.st_size;
    }
    if (d) closedir(d);
    return total;
}

static nq_status run_export(const ExportOptions *o) {
    double const t0 = nq_seconds();
    Model *m = NULL;
    nq_status st = model_open(o->checkpoint, "auto", &m);
    if (st != NQ_OK) return st;
    const ModelConfig *c = model_config(m);
    ExportDtype dt = EXPORT_F32;
    export_dtype_parse(o->dtype, &dt);
    int const llama2c = strcmp(o->format, "llama2c") == 0, gguf = strcmp(o->format, "gguf") == 0;
    st = llama2c ? export_llama2c(m, o->out) : gguf ? run_gguf(o, m) : run_safetensors(o, m, dt);
    if (st == NQ_OK) {
        double const mb = (double)output_bytes(o->out) / 1e6;
        printf("export: %s -> %s (%s, %s, %d blocks, rope %s): %.1f MB in %.2f s\n", o->checkpoint, o->out,
               o->format, llama2c ? "f32" : gguf ? (o->type ? o->type : "its grid") : o->dtype, c->n_layers,
               c->rope_style == ROPE_HALF ? "half" : "interleaved", mb, nq_seconds() - t0);
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
