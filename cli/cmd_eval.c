/* nupes-mpi eval: perplexity of the fp32 model on a text and, given a quantized
 * checkpoint, its perplexity, mean KL(fp32 || quantized) per token and top-1 agreement.
 * Protocol (DESIGN.md section 7): the whole file is tokenized once (BOS first, no EOS),
 * cut into consecutive windows of T tokens (the remainder dropped), and every window runs
 * from position 0; perplexity is exp(mean NLL) over the T - 1 next-token predictions of
 * each window, KL and top-1 are over all T positions. Windows go B at a time. */
#include <getopt.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "eval_metrics.h"
#include "eval_shard.h"
#include "model_file.h"
#include "status.h"
#include "text_windows.h"
#include "tokenizer.h"
#include "transformer.h"

typedef struct {
    const char *model;
    const char *checkpoint; /* NULL: fp32 only */
    const char *tokenizer;
    const char *text;
    int seq_len;   /* T */
    int sequences; /* 0: every window */
    int batch;     /* B */
} EvalOptions;

static void print_help(FILE *out) {
    fprintf(out,
            "usage: nupes-mpi eval --model M --tokenizer TOK --text FILE [options]\n\n"
            "Perplexity of model M on FILE; with --checkpoint, also the quantized model's\n"
            "perplexity, mean KL(fp32 || quantized) per token (nats) and top-1 agreement.\n"
            "The file is tokenized once (BOS first), cut into consecutive windows of T tokens\n"
            "(the remainder dropped); each window runs from position 0.\n\n"
            "options:\n"
            "  --model M          fp32 model (llama2.c .bin, HF directory)\n"
            "  --checkpoint C     quantized nupes-mpi checkpoint to compare with M\n"
            "  --tokenizer TOK    tokenizer (llama2.c tokenizer.bin); required\n"
            "  --text FILE        UTF-8 evaluation text; required\n"
            "  --seq-len T        tokens per window (default 256, at most the model's seq_len)\n"
            "  --sequences N      evaluate at most the first N windows (default: all)\n"
            "  --batch B          windows per forward pass (default 8)\n"
            "  --help             this text\n");
}

/* Parses a positive int option value; prints an error and returns -1 when it is not one. */
static int parse_positive(const char *name, const char *value, int *out) {
    char *end = NULL;
    long const v = strtol(value, &end, 10);
    if (end == value || *end != '\0' || v <= 0 || v > 1000000000) {
        fprintf(stderr, "nupes-mpi eval: %s = '%s', expected a positive integer\n", name, value);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Returns 0 to run, 1 after --help, or NQ_ERR_INPUT (message printed). */
static int parse_options(int argc, char **argv, EvalOptions *o) {
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},     {"checkpoint", required_argument, NULL, 'c'},
        {"tokenizer", required_argument, NULL, 'k'}, {"text", required_argument, NULL, 't'},
        {"seq-len", required_argument, NULL, 'T'},   {"sequences", required_argument, NULL, 'n'},
        {"batch", required_argument, NULL, 'B'},     {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (EvalOptions){.seq_len = 256, .batch = 8};
    optind = 1;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case 'm': o->model = optarg; break;
        case 'c': o->checkpoint = optarg; break;
        case 'k': o->tokenizer = optarg; break;
        case 't': o->text = optarg; break;
        case 'T': bad = parse_positive("--seq-len", optarg, &o->seq_len); break;
        case 'n': bad = parse_positive("--sequences", optarg, &o->sequences); break;
        case 'B': bad = parse_positive("--batch", optarg, &o->batch); break;
        case 'h': print_help(stdout); return 1;
        case ':':
            fprintf(stderr, "nupes-mpi eval: option '%s' needs a value\n", argv[optind - 1]);
            return NQ_ERR_INPUT;
        default:
            fprintf(stderr, "nupes-mpi eval: unknown option '%s' (see 'nupes-mpi eval --help')\n",
                    argv[optind - 1]);
            return NQ_ERR_INPUT;
        }
        if (bad) return NQ_ERR_INPUT;
    }
    if (optind < argc) {
        fprintf(stderr, "nupes-mpi eval: unexpected argument '%s' (see 'nupes-mpi eval --help')\n", argv[optind]);
        return NQ_ERR_INPUT;
    }
    const char *missing = !o->model ? "--model" : !o->tokenizer ? "--tokenizer" : !o->text ? "--text" : NULL;
    if (missing) {
        fprintf(stderr, "nupes-mpi eval: %s is required (see 'nupes-mpi eval --help')\n", missing);
        return NQ_ERR_INPUT;
    }
    return 0;
}

/* A model with every block's weights in hand, ready for transformer_forward. */
typedef struct {
    Model *model;
    HeadWeights head;
    BlockWeights *blocks; /* [L] */
} LoadedModel;

static void loaded_free(LoadedModel *lm) {
    if (lm->model)
        for (int l = 0; lm->blocks && l < model_config(lm->model)->n_layers; l++)
            model_release_block(lm->model, l);
    free(lm->blocks);
    model_close(lm->model);
    memset(lm, 0, sizeof *lm);
}

static nq_status loaded_open(const char *path, LoadedModel *lm) {
    memset(lm, 0, sizeof *lm);
    nq_status st = model_open(path, "auto", &lm->model);
    if (st != NQ_OK) return st;
    ModelConfig const *c = model_config(lm->model);
    lm->blocks = nq_calloc((size_t)c->n_layers, sizeof *lm->blocks, "block views");
    if (!lm->blocks) return NQ_ERR_RUNTIME;
    st = model_head(lm->model, &lm->head);
    for (int l = 0; st == NQ_OK && l < c->n_layers; l++) st = model_block(lm->model, l, &lm->blocks[l]);
    return st;
}

/* The checkpoint must be the same architecture as the model it is compared with. */
static nq_status check_same_shape(const char *path, const ModelConfig *a, const ModelConfig *b) {
    const struct { const char *name; int want, got; } f[] = {
        {"dim", a->dim, b->dim},           {"hidden_dim", a->hidden_dim, b->hidden_dim},
        {"n_layers", a->n_layers, b->n_layers}, {"n_heads", a->n_heads, b->n_heads},
        {"n_kv_heads", a->n_kv_heads, b->n_kv_heads}, {"vocab_size", a->vocab_size, b->vocab_size},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].want != f[i].got)
            return nq_fail(NQ_ERR_INPUT, "%s: %s = %d, expected %d (the model's)", path, f[i].name, f[i].got, f[i].want);
    /* Both models run through one Transformer of the fp32 model's config: a checkpoint of
     * the same model in the other layout (HF rows are permuted for the half rotation)
     * would be run with the wrong rotation. */
    if (a->rope_style != b->rope_style || a->rope_theta != b->rope_theta || a->norm_eps != b->norm_eps)
        return nq_fail(NQ_ERR_INPUT,
                       "%s: rope_style %s, rope_theta %g, norm_eps %g, expected %s, %g, %g (the model's): "
                       "evaluate against the model in the layout it was quantized from",
                       path, b->rope_style == ROPE_HALF ? "half" : "interleaved", b->rope_theta, b->norm_eps,
                       a->rope_style == ROPE_HALF ? "half" : "interleaved", a->rope_theta, a->norm_eps);
    return NQ_OK;
}

typedef struct {
    Transformer *full, *rest; /* B windows; the last batch's remainder (may be NULL) */
    float *logits, *logits_q; /* [B][T][V]; logits_q NULL without a checkpoint */
    double *scratch;          /* [2 V] */
} EvalBuffers;

static void buffers_free(EvalBuffers *b) {
    transformer_free(b->full);
    transformer_free(b->rest);
    free(b->logits);
    free(b->logits_q);
    free(b->scratch);
}

static nq_status buffers_create(const ModelConfig *c, int B, int T, int n_windows, int quantized, EvalBuffers *b) {
    memset(b, 0, sizeof *b);
    int const rest = n_windows % B;
    size_t const rows = (size_t)B * (size_t)T;
    b->full = transformer_create(c, B, T);
    b->rest = rest ? transformer_create(c, rest, T) : NULL;
    b->logits = nq_calloc(rows * (size_t)c->vocab_size, sizeof(float), "logits");
    b->logits_q = quantized ? nq_calloc(rows * (size_t)c->vocab_size, sizeof(float), "quantized logits") : NULL;
    b->scratch = nq_calloc(2 * (size_t)c->vocab_size, sizeof(double), "softmax scratch");
    if (!b->full || (rest && !b->rest) || !b->logits || (quantized && !b->logits_q) || !b->scratch)
        return nq_fail(NQ_ERR_RUNTIME, "out of memory for eval buffers (batch %d, seq_len %d)", B, T);
    return NQ_OK;
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    double total, load, forward, metrics; /* seconds */
} EvalTimes;

/* Runs every window through the model(s), B at a time, and accumulates the metrics. */
static void eval_windows(const ModelConfig *c, LoadedModel *fp, LoadedModel *q, const int *windows,
                         int n_windows, int B, int T, EvalBuffers *buf, EvalTotals *acc, EvalTimes *times) {
    int const V = c->vocab_size;
    for (int w0 = 0; w0 < n_windows; w0 += B) {
        int const nb = n_windows - w0 < B ? n_windows - w0 : B;
        Transformer *tr = nb == B ? buf->full : buf->rest;
        const int *tokens = windows + (size_t)w0 * T;
        double const t0 = seconds_now();
        transformer_forward(tr, &fp->head, fp->blocks, tokens, buf->logits);
        if (q) transformer_forward(tr, &q->head, q->blocks, tokens, buf->logits_q);
        double const t1 = seconds_now();
        for (int b = 0; b < nb; b++) {
            size_t const off = (size_t)b * T * V;
            eval_totals_add(acc, buf->logits + off, q ? buf->logits_q + off : NULL, tokens + (size_t)b * T, T, V,
                            buf->scratch);
        }
        times->forward += t1 - t0;
        times->metrics += seconds_now() - t1;
    }
}

static void print_results(const EvalOptions *o, const ModelConfig *c, int n_windows, int B, int quantized,
                          const EvalTotals *acc, const EvalTimes *times) {
    size_t const tokens = (size_t)n_windows * (size_t)o->seq_len;
    printf("model: %s (dim %d, layers %d, vocab %d)\n", o->model, c->dim, c->n_layers, c->vocab_size);
    printf("text: %s\n", o->text);
    printf("windows: %d of %d tokens (%zu tokens, %zu predictions)\n", n_windows, o->seq_len, tokens,
           acc->n_predicted);
    printf("fp32 perplexity: %.4f\n", eval_perplexity(acc->nll_sum, acc->n_predicted));
    if (quantized) {
        printf("checkpoint: %s\n", o->checkpoint);
        printf("quantized perplexity: %.4f\n", eval_perplexity(acc->nll_sum_q, acc->n_predicted));
        printf("mean KL(fp32 || quantized): %.6f nats/token over %zu positions\n",
               acc->kl_sum / (double)acc->n_positions, acc->n_positions);
        printf("top-1 agreement: %.2f%%\n", 100.0 * (double)acc->n_agree / (double)acc->n_positions);
    }
    /* Throughput counts each window's tokens once, even when two models run them. */
    printf("time: %.2f s (load and tokenize %.2f, forward %.2f, metrics %.2f); %.0f tokens/s (batch %d)\n",
           times->total, times->load, times->forward, times->metrics, (double)tokens / times->total, B);
}

static nq_status run_eval(const EvalOptions *o) {
    LoadedModel fp = {0}, q = {0};
    Tokenizer *tok = NULL;
    int *windows = NULL, n_windows = 0;
    EvalBuffers buf = {0};
    double const t0 = seconds_now();
    nq_status st = loaded_open(o->model, &fp);
    if (st != NQ_OK) goto cleanup;
    ModelConfig const *c = model_config(fp.model);
    if (o->checkpoint) {
        st = loaded_open(o->checkpoint, &q);
        if (st == NQ_OK) st = check_same_shape(o->checkpoint, c, model_config(q.model));
        if (st != NQ_OK) goto cleanup;
    }
    /* The window must fit both models (a checkpoint may record a shorter seq_len). */
    const char *limit_path = o->model;
    int limit = c->seq_len;
    if (o->checkpoint && model_config(q.model)->seq_len < limit) {
        limit = model_config(q.model)->seq_len;
        limit_path = o->checkpoint;
    }
    if (o->seq_len < 2 || o->seq_len > limit) {
        st = nq_fail(NQ_ERR_INPUT, "--seq-len = %d, expected 2..%d (%s: seq_len)", o->seq_len, limit, limit_path);
        goto cleanup;
    }
    st = tokenizer_open(o->tokenizer, c->vocab_size, &tok);
    if (st != NQ_OK) goto cleanup;
    st = text_windows_load(o->text, tok, o->seq_len, o->sequences, &windows, &n_windows);
    if (st != NQ_OK) goto cleanup;
    /* Under MPI each rank takes its share of the windows; the sums meet on every rank. */
    int first = 0, count = 0;
    eval_shard(n_windows, &first, &count);
    int const B = o->batch < count ? o->batch : (count > 0 ? count : 1);
    EvalTimes times = {.load = seconds_now() - t0};
    st = buffers_create(c, B, o->seq_len, count > 0 ? count : 1, o->checkpoint != NULL, &buf);
    if (st != NQ_OK) goto cleanup;
    EvalTotals acc = {0};
    if (count > 0)
        eval_windows(c, &fp, o->checkpoint ? &q : NULL, windows + (size_t)first * o->seq_len, count, B,
                     o->seq_len, &buf, &acc, &times);
    times.total = seconds_now() - t0;
    eval_totals_reduce(&acc, &times.total);
    /* The weights are finite (model_file.c): a NaN here is an overflow in the forward pass. */
    if (!isfinite(acc.nll_sum) || (o->checkpoint && !isfinite(acc.nll_sum_q))) {
        st = nq_fail(NQ_ERR_RUNTIME, "%s: the forward pass gave non-finite logits (overflow): no perplexity",
                     isfinite(acc.nll_sum) ? o->checkpoint : o->model);
        goto cleanup;
    }
    if (eval_rank() == 0) print_results(o, c, n_windows, B, o->checkpoint != NULL, &acc, &times);
cleanup:
    buffers_free(&buf);
    free(windows);
    tokenizer_free(tok);
    loaded_free(&q);
    loaded_free(&fp);
    return st;
}

int cmd_eval(int argc, char **argv) {
    EvalOptions o;
    int const parsed = parse_options(argc, argv, &o);
    if (parsed == 1) return NQ_OK;
    if (parsed != 0) return parsed;
    if (!eval_launched_by_mpi()) {
        nq_status const st = run_eval(&o);
        if (st != NQ_OK) fprintf(stderr, "nupes-mpi eval: %s\n", nq_last_error());
        return st;
    }
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS) {
        fprintf(stderr, "nupes-mpi eval: MPI_Init failed\n");
        return NQ_ERR_RUNTIME;
    }
    /* Every rank reads the same inputs, so every rank fails alike: one rank reports. */
    nq_status st = run_eval(&o);
    int mine = (int)st, worst = 0, root = (int)st;
    MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Bcast(&root, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (st != NQ_OK && eval_rank() == 0) fprintf(stderr, "nupes-mpi eval: %s\n", nq_last_error());
    else if (st != NQ_OK && root == NQ_OK) fprintf(stderr, "nupes-mpi eval: rank %d: %s\n", eval_rank(), nq_last_error());
    MPI_Finalize();
    return worst;
}
