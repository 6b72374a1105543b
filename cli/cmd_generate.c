/* nupes-mpi generate: writes text with a quantized checkpoint (or an fp32 model). The
 * checkpoint's weights are dequantized row by row through the 2^b-entry code table when
 * it is opened (io/checkpoint_model.c); the tokenizer defaults to the one its config
 * names. Each new token reruns the window (the models this is for are small; no KV cache). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "commands.h"
#include "model_file.h"
#include "rng.h"
#include "status.h"
#include "tokenizer.h"
#include "toml_c.h"
#include "transformer.h"

typedef struct {
    const char *model; /* checkpoint or fp32 model */
    const char *tokenizer;
    const char *prompt;
    int steps;
    float temperature; /* 0: always the most likely token */
    unsigned long long seed;
} GenerateOptions;

static void print_help(FILE *out) {
    fprintf(out,
            "usage: nupes-mpi generate --checkpoint C [--prompt TEXT] [--steps N] [--temperature X]\n\n"
            "Writes a continuation of TEXT with the quantized model in checkpoint C.\n\n"
            "  --checkpoint C     nupes-mpi checkpoint (or --model M for an fp32 model)\n"
            "  --tokenizer TOK    tokenizer (default: the tokenizer.path recorded in C's config)\n"
            "  --prompt TEXT      start of the text (default \"Once upon a time\")\n"
            "  --steps N          tokens to generate (default 200, within the model's seq_len)\n"
            "  --temperature X    sampling temperature, 0 = greedy (default 0.8)\n"
            "  --seed S           random seed (default 42)\n"
            "  --help             this text\n");
}

static int parse_options(int argc, char **argv, GenerateOptions *o) {
    static const struct option longopts[] = {
        {"checkpoint", required_argument, NULL, 'c'}, {"model", required_argument, NULL, 'c'},
        {"tokenizer", required_argument, NULL, 'k'},  {"prompt", required_argument, NULL, 'p'},
        {"steps", required_argument, NULL, 'n'},      {"temperature", required_argument, NULL, 't'},
        {"seed", required_argument, NULL, 's'},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (GenerateOptions){.prompt = "Once upon a time", .steps = 200, .temperature = 0.8f, .seed = 42};
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (opt) {
        case 'c': o->model = optarg; break;
        case 'k': o->tokenizer = optarg; break;
        case 'p': o->prompt = optarg; break;
        case 'n': o->steps = (int)strtol(optarg, &end, 10); break;
        case 't': o->temperature = strtof(optarg, &end); break;
        case 's': o->seed = strtoull(optarg, &end, 10); break;
        case 'h': print_help(stdout); return 1;
        default:
            fprintf(stderr, "nupes-mpi generate: unknown or incomplete option '%s' (see --help)\n", argv[optind - 1]);
            return NQ_ERR_INPUT;
        }
        if (end && (*end != '\0' || end == optarg)) {
            fprintf(stderr, "nupes-mpi generate: --%s '%s' is not a number\n",
                    opt == 'n' ? "steps" : opt == 't' ? "temperature" : "seed", optarg);
            return NQ_ERR_INPUT;
        }
    }
    if (!o->model) {
        fprintf(stderr, "nupes-mpi generate: --checkpoint C is required (see --help)\n");
        return NQ_ERR_INPUT;
    }
    if (o->steps <= 0 || !(o->temperature >= 0)) {
        fprintf(stderr, "nupes-mpi generate: --steps must be > 0 and --temperature >= 0\n");
        return NQ_ERR_INPUT;
    }
    return 0;
}

/* The tokenizer.path of the config stored in checkpoint `path` (malloc'd), or NULL. */
static char *tokenizer_from_checkpoint(const char *path) {
    CheckpointInfo info;
    if (checkpoint_read_info(path, &info) != NQ_OK) {
        nq_clear_error();
        return NULL;
    }
    char *found = NULL, err[256];
    TomlcDoc *doc = NULL;
    if (info.config_toml &&
        tomlc_parse(info.config_toml, strlen(info.config_toml), path, &doc, err, sizeof err) == TOMLC_OK) {
        for (size_t i = 0; i < tomlc_count(doc); i++) {
            const TomlcEntry *e = tomlc_entry(doc, i);
            if (e->kind == TOMLC_STRING && strcmp(e->path, "tokenizer.path") == 0 && e->string[0])
                found = strdup(e->string);
        }
    }
    tomlc_free(doc);
    checkpoint_info_free(&info);
    return found;
}

static int sample(const float *logits, int V, float temperature, Rng *rng) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    if (temperature == 0) return best;
    double total = 0;
    for (int v = 0; v < V; v++) total += exp((logits[v] - logits[best]) / temperature);
    double u = rng_uniform_double(rng) * total;
    for (int v = 0; v < V; v++) {
        u -= exp((logits[v] - logits[best]) / temperature);
        if (u <= 0) return v;
    }
    return best;
}

static nq_status generate(const GenerateOptions *o, Model *m, const Tokenizer *tok) {
    const ModelConfig *c = model_config(m);
    int *prompt = NULL;
    size_t n_prompt = 0;
    nq_status st = tokenizer_encode(tok, o->prompt, strlen(o->prompt), 1, 0, &prompt, &n_prompt);
    if (st != NQ_OK) return st;
    int const T = (int)(n_prompt + (size_t)o->steps < (size_t)c->seq_len ? n_prompt + o->steps : (size_t)c->seq_len);
    if ((int)n_prompt >= T) {
        free(prompt);
        return nq_fail(NQ_ERR_INPUT, "the prompt is %zu tokens, the model's seq_len is %d", n_prompt, c->seq_len);
    }
    BlockWeights *blocks = nq_calloc((size_t)c->n_layers, sizeof *blocks, "block views");
    int *tokens = nq_calloc((size_t)T, sizeof(int), "tokens");
    float *logits = nq_calloc((size_t)T * c->vocab_size, sizeof(float), "logits");
    Transformer *t = transformer_create(c, 1, T);
    HeadWeights head;
    if (!blocks || !tokens || !logits || !t) st = NQ_ERR_RUNTIME;
    if (st == NQ_OK) st = model_head(m, &head);
    for (int l = 0; l < c->n_layers && st == NQ_OK; l++) st = model_block(m, l, &blocks[l]);
    if (st == NQ_OK) {
        memcpy(tokens, prompt, n_prompt * sizeof(int));
        printf("%s", o->prompt);
        Rng rng;
        rng_seed(&rng, o->seed, 0);
        for (int pos = (int)n_prompt - 1; pos + 1 < T; pos++) {
            transformer_forward(t, &head, blocks, tokens, logits);
            int const next = sample(logits + (size_t)pos * c->vocab_size, c->vocab_size, o->temperature, &rng);
            if (next == TOKEN_BOS || next == TOKEN_EOS) break;
            printf("%s", tokenizer_decode(tok, tokens[pos], next));
            fflush(stdout);
            tokens[pos + 1] = next;
        }
        printf("\n");
    }
    transformer_free(t);
    free(logits);
    free(tokens);
    free(blocks);
    free(prompt);
    return st;
}

int cmd_generate(int argc, char **argv) {
    GenerateOptions o;
    int const parsed = parse_options(argc, argv, &o);
    if (parsed != 0) return parsed == 1 ? NQ_OK : parsed;
    char *tok_path = o.tokenizer ? strdup(o.tokenizer) : tokenizer_from_checkpoint(o.model);
    Model *m = NULL;
    Tokenizer *tok = NULL;
    nq_status st = tok_path ? NQ_OK : nq_fail(NQ_ERR_INPUT, "%s: no tokenizer.path in its config: pass --tokenizer", o.model);
    if (st == NQ_OK) st = model_open(o.model, "auto", &m);
    if (st == NQ_OK) st = tokenizer_open(tok_path, model_config(m)->vocab_size, &tok);
    if (st == NQ_OK) st = generate(&o, m, tok);
    if (st != NQ_OK) fprintf(stderr, "nupes-mpi generate: %s\n", nq_last_error());
    tokenizer_free(tok);
    model_close(m);
    free(tok_path);
    return st;
}
