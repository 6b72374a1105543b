/* nupes-mpi eval: perplexity of the fp32 model on a text and, given a quantized
 * checkpoint, its perplexity, KL(fp32 || quantized) per token (mean, percentiles, maximum)
 * and top-1 agreement, each mean with its uncertainty as llama.cpp's perplexity tool
 * reports it. Protocol (docs/design.md 7.1): the whole file is tokenized once (BOS first, no EOS),
 * cut into consecutive windows of T tokens (the remainder dropped), and every window runs
 * from position 0; perplexity is exp(mean NLL) over the T - 1 next-token predictions of
 * each window, KL and top-1 are over all T positions. Windows go B at a time. Under MPI
 * every rank takes a contiguous share of the windows and root computes the statistics
 * from the gathered per-position values, in window order: 1 and N ranks print the same. */
#include <getopt.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "commands.h"
#include "config.h"
#include "eval_metrics.h"
#include "eval_shard.h"
#include "kld_base.h"
#include "model_file.h"
#include "mpi_check.h"
#include "status.h"
#include "text_windows.h"
#include "tokenizer.h"
#include "transformer.h"

typedef struct {
    const char *model;
    const char *checkpoint; /* NULL: fp32 only */
    const char *tokenizer;
    const char *text;
    const char *config;   /* --config: model, tokenizer and [eval] from a job config */
    const char *kld_base; /* --kld-base: the fp32 logits, stored on first use, then reused */
    int seq_len;   /* T; 0 until given */
    int sequences; /* 0: every window */
    int batch;     /* B */
    NupesConfig cfg; /* the --config file's values */
} EvalOptions;

static void print_help(FILE *out) {
    fprintf(out,
            "usage: nupes-mpi eval --model M --tokenizer TOK --text FILE [options]\n\n"
            "Perplexity of model M on FILE; with --checkpoint, also the quantized model's\n"
            "perplexity, mean KL(fp32 || quantized) per token (nats) and top-1 agreement.\n"
            "The file is tokenized once (BOS first), cut into consecutive windows of T tokens\n"
            "(the remainder dropped); each window runs from position 0. Means are printed with\n"
            "their standard error (+-), as llama.cpp's perplexity tool prints them.\n\n"
            "options:\n"
            "  --config FILE      take the model (model.path), tokenizer (tokenizer.path) and the\n"
            "                     [eval] section (text, seq_len, sequences) from a job config;\n"
            "                     options given on the command line win\n"
            "  --model M          fp32 model (llama2.c .bin, HF directory)\n"
            "  --checkpoint C     quantized nupes-mpi checkpoint to compare with M\n"
            "  --tokenizer TOK    tokenizer (llama2.c tokenizer.bin); required\n"
            "  --text FILE        UTF-8 evaluation text; required\n"
            "  --seq-len T        tokens per window (default 256, at most the model's seq_len)\n"
            "  --sequences N      evaluate at most the first N windows (default: all)\n"
            "  --batch B          windows per forward pass (default 8)\n"
            "  --kld-base FILE    the fp32 model's logits: computed and stored in FILE when it does\n"
            "                     not exist, read from it otherwise (no fp32 pass); a FILE made\n"
            "                     from another model, text or seq-len is refused\n"
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

/* Fills what the command line did not give from the config: model.path, tokenizer.path
 * and [eval] text, seq_len, sequences (relative paths in the file are relative to it). */
static nq_status options_from_config(EvalOptions *o) {
    nq_status const st = config_load(o->config, &o->cfg);
    if (st != NQ_OK) return st;
    const NupesConfig *c = &o->cfg;
    if (!o->model && c->model_path[0]) o->model = c->model_path;
    if (!o->tokenizer && c->tokenizer_path[0]) o->tokenizer = c->tokenizer_path;
    if (!o->text && c->eval_text[0]) o->text = c->eval_text;
    if (!o->seq_len) o->seq_len = c->eval_seq_len;
    if (!o->sequences) o->sequences = c->eval_sequences;
    const char *missing = !o->model ? "model.path" : !o->tokenizer ? "tokenizer.path" : !o->text ? "eval.text" : NULL;
    if (missing)
        return nq_fail(NQ_ERR_INPUT, "%s: %s is not set, and eval needs it (or give it on the command line)", o->config,
                       missing);
    return NQ_OK;
}

/* Returns 0 to run, 1 after --help, or NQ_ERR_INPUT (message printed). */
static int parse_options(int argc, char **argv, EvalOptions *o) {
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},     {"checkpoint", required_argument, NULL, 'c'},
        {"tokenizer", required_argument, NULL, 'k'}, {"text", required_argument, NULL, 't'},
        {"seq-len", required_argument, NULL, 'T'},   {"sequences", required_argument, NULL, 'n'},
        {"batch", required_argument, NULL, 'B'},     {"help", no_argument, NULL, 'h'},
        {"config", required_argument, NULL, 'C'},    {"kld-base", required_argument, NULL, 'K'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->batch = 8;
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
        case 'C': o->config = optarg; break;
        case 'K': o->kld_base = optarg; break;
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
    if (o->config) {
        nq_status const st = options_from_config(o);
        if (st != NQ_OK) {
            fprintf(stderr, "nupes-mpi eval: %s\n", nq_last_error());
            return st;
        }
    }
    if (o->seq_len == 0) o->seq_len = 256;
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

typedef struct {
    double total, load, forward, metrics; /* seconds */
} EvalTimes;

/* Where the fp32 logits come from and go to. */
typedef struct {
    KldBase *in;  /* read them from an existing base (no fp32 pass) */
    KldBase *out; /* store them in a base being created */
} BaseUse;

/* Runs this rank's windows [first, first + n_windows) through the model(s), B at a time,
 * and records the per-position values. No collective inside: a failure returns at once. */
static nq_status eval_windows(const ModelConfig *c, LoadedModel *fp, LoadedModel *q, BaseUse *base,
                              const int *windows, int first, int n_windows, int B, int T, EvalBuffers *buf,
                              EvalRecords *rec, EvalTimes *times) {
    int const V = c->vocab_size;
    for (int w0 = 0; w0 < n_windows; w0 += B) {
        int const nb = n_windows - w0 < B ? n_windows - w0 : B;
        Transformer *tr = nb == B ? buf->full : buf->rest;
        const int *tokens = windows + (size_t)w0 * T;
        double const t0 = nq_seconds();
        nq_status st = NQ_OK;
        if (base->in) st = kld_base_read(base->in, first + w0, nb, buf->logits);
        else transformer_forward(tr, &fp->head, fp->blocks, tokens, buf->logits);
        if (st == NQ_OK && base->out) st = kld_base_write(base->out, first + w0, nb, buf->logits);
        if (st != NQ_OK) return st;
        if (q) transformer_forward(tr, &q->head, q->blocks, tokens, buf->logits_q);
        double const t1 = nq_seconds();
        for (int b = 0; b < nb; b++) {
            size_t const off = (size_t)b * T * V;
            eval_records_add(rec, buf->logits + off, q ? buf->logits_q + off : NULL, tokens + (size_t)b * T, T, V,
                             buf->scratch);
        }
        times->forward += t1 - t0;
        times->metrics += nq_seconds() - t1;
    }
    return NQ_OK;
}

static void print_results(const EvalOptions *o, const ModelConfig *c, int n_windows, int B, int quantized,
                          const char *base_note, const EvalSummary *s, const EvalTimes *times) {
    size_t const tokens = (size_t)n_windows * (size_t)o->seq_len;
    printf("model: %s (dim %d, layers %d, vocab %d)\n", o->model, c->dim, c->n_layers, c->vocab_size);
    printf("text: %s\n", o->text);
    if (base_note) printf("kld base: %s (%s)\n", o->kld_base, base_note);
    printf("windows: %d of %d tokens (%zu tokens, %zu predictions)\n", n_windows, o->seq_len, tokens, s->n_predicted);
    printf("fp32 perplexity: %.4f ± %.4f\n", s->ppl.value, s->ppl.uncertainty);
    if (quantized) {
        printf("checkpoint: %s\n", o->checkpoint);
        printf("quantized perplexity: %.4f ± %.4f\n", s->ppl_q.value, s->ppl_q.uncertainty);
        printf("mean KL(fp32 || quantized): %.6f ± %.6f nats/token over %zu positions\n", s->kl.value,
               s->kl.uncertainty, s->n_positions);
        printf("KL percentiles: 90%% %.6f, 99%% %.6f, 99.9%% %.6f, max %.6f\n", s->kl_p90, s->kl_p99, s->kl_p999,
               s->kl_max);
        printf("top-1 agreement: %.2f%% ± %.2f%%\n", 100.0 * s->top1.value, 100.0 * s->top1.uncertainty);
    }
    /* Throughput counts each window's tokens once, even when two models run them. */
    printf("time: %.2f s (load and tokenize %.2f, forward %.2f, metrics %.2f); %.0f tokens/s (batch %d)\n",
           times->total, times->load, times->forward, times->metrics, (double)tokens / times->total, B);
}

/* What one rank holds for the evaluation. */
typedef struct {
    LoadedModel fp, q;
    Tokenizer *tok;
    int *windows, n_windows; /* every window [n_windows][T] */
    int first, count;        /* this rank's share */
    int B;
    EvalBuffers buf;
    EvalRecords rec;
    BaseUse base;
    int creating_base;
} EvalState;

static void state_free(EvalState *e) {
    kld_base_close(e->base.in);
    eval_records_free(&e->rec);
    buffers_free(&e->buf);
    free(e->windows);
    tokenizer_free(e->tok);
    loaded_free(&e->q);
    loaded_free(&e->fp);
}

/* Local set-up (every rank reads the same inputs): models, windows, this rank's share,
 * buffers and, with --kld-base, the base's identity checked and this rank's windows
 * verified. creating: 1 when root found no base (decided collectively before). */
static nq_status setup(const EvalOptions *o, int creating, EvalState *e) {
    nq_status st = loaded_open(o->model, &e->fp);
    if (st != NQ_OK) return st;
    ModelConfig const *c = model_config(e->fp.model);
    if (o->checkpoint) {
        st = loaded_open(o->checkpoint, &e->q);
        if (st == NQ_OK) st = check_same_shape(o->checkpoint, c, model_config(e->q.model));
        if (st != NQ_OK) return st;
    }
    /* The window must fit both models (a checkpoint may record a shorter seq_len). */
    const char *limit_path = o->model;
    int limit = c->seq_len;
    if (o->checkpoint && model_config(e->q.model)->seq_len < limit) {
        limit = model_config(e->q.model)->seq_len;
        limit_path = o->checkpoint;
    }
    if (o->seq_len < 2 || o->seq_len > limit)
        return nq_fail(NQ_ERR_INPUT, "--seq-len = %d, expected 2..%d (%s: seq_len)", o->seq_len, limit, limit_path);
    st = tokenizer_open(o->tokenizer, c->vocab_size, &e->tok);
    if (st == NQ_OK) st = text_windows_load(o->text, e->tok, o->seq_len, o->sequences, &e->windows, &e->n_windows);
    if (st != NQ_OK) return st;
    /* Ranks share whole batches of B windows, the same batches on any number of ranks: a
     * window's logits depend on the shape of the batch it runs in (GEMM kernels), so
     * that 1 and N ranks compute the same values bit for bit. */
    e->B = o->batch < e->n_windows ? o->batch : (e->n_windows > 0 ? e->n_windows : 1);
    int first_batch = 0, batches = 0;
    eval_shard((e->n_windows + e->B - 1) / e->B, &first_batch, &batches);
    e->first = first_batch * e->B;
    e->count = batches ? (first_batch + batches) * e->B : e->first;
    if (e->count > e->n_windows) e->count = e->n_windows;
    e->count -= e->first;
    st = buffers_create(c, e->B, o->seq_len, e->count > 0 ? e->count : 1, o->checkpoint != NULL, &e->buf);
    if (st == NQ_OK) st = eval_records_alloc(&e->rec, (size_t)e->count, o->seq_len, o->checkpoint != NULL);
    if (st != NQ_OK || !o->kld_base || creating) return st;
    uint64_t hash = 0;
    st = model_content_hash(e->fp.model, &hash);
    KldBaseIdentity const id = {.model_hash = hash, .seq_len = o->seq_len, .vocab_size = c->vocab_size,
                                .windows = e->n_windows, .tokens = e->windows};
    if (st == NQ_OK) st = kld_base_open(o->kld_base, &id, e->first, e->count, &e->base.in);
    return st;
}

static nq_status create_base(const EvalOptions *o, EvalState *e) {
    uint64_t hash = 0;
    nq_status st = eval_agree(model_content_hash(e->fp.model, &hash));
    if (st != NQ_OK) return st;
    KldBaseIdentity const id = {.model_hash = hash, .seq_len = o->seq_len,
                                .vocab_size = model_config(e->fp.model)->vocab_size, .windows = e->n_windows,
                                .tokens = e->windows};
    return kld_base_create(o->kld_base, &id, eval_comm(), &e->base.out);
}

static nq_status run_eval(const EvalOptions *o) {
    EvalState e = {0};
    double const t0 = nq_seconds();
    /* Root decides whether the base is there, for every rank. */
    int const create = o->kld_base ? eval_root_value(eval_rank() == 0 ? !kld_base_exists(o->kld_base) : 0) : 0;
    nq_status st = eval_agree(setup(o, create, &e));
    if (st == NQ_OK && create) st = create_base(o, &e);
    EvalTimes times = {.load = nq_seconds() - t0};
    if (st == NQ_OK && e.count > 0)
        st = eval_windows(model_config(e.fp.model), &e.fp, o->checkpoint ? &e.q : NULL, &e.base,
                          e.windows + (size_t)e.first * o->seq_len, e.first, e.count, e.B, o->seq_len, &e.buf,
                          &e.rec, &times);
    if (e.base.out) st = kld_base_finish(e.base.out, st); /* collective: every rank created it */
    e.base.out = NULL;
    st = eval_agree(st);
    times.total = nq_seconds() - t0;
    EvalRecords all = {0};
    if (st == NQ_OK) st = eval_records_gather(&e.rec, &all, &times.total);
    if (st == NQ_OK && eval_rank() == 0) {
        EvalSummary sum;
        st = eval_summarize(&all, &sum);
        /* The weights are finite (model_file.c): a NaN here is an overflow in the forward pass. */
        if (st == NQ_OK && (!isfinite(sum.ppl.value) || (o->checkpoint && !isfinite(sum.ppl_q.value))))
            st = nq_fail(NQ_ERR_RUNTIME, "%s: the forward pass gave non-finite logits (overflow): no perplexity",
                         isfinite(sum.ppl.value) ? o->checkpoint : o->model);
        const char *note = !o->kld_base ? NULL : create ? "created" : "reused, no fp32 pass";
        if (st == NQ_OK)
            print_results(o, model_config(e.fp.model), e.n_windows, e.B, o->checkpoint != NULL, note, &sum, &times);
    }
    st = eval_agree(st);
    eval_records_free(&all);
    state_free(&e);
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
    mpi_errors_return();
    /* Every rank reads the same inputs, so every rank fails alike: one rank reports. */
    nq_status st = run_eval(&o);
    int mine = (int)st, worst = 0, root = (int)st;
    MPI_CHECK(MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    MPI_CHECK(MPI_Bcast(&root, 1, MPI_INT, 0, MPI_COMM_WORLD));
    if (st != NQ_OK && eval_rank() == 0) fprintf(stderr, "nupes-mpi eval: %s\n", nq_last_error());
    else if (st != NQ_OK && root == NQ_OK) fprintf(stderr, "nupes-mpi eval: rank %d: %s\n", eval_rank(), nq_last_error());
    MPI_Finalize();
    return worst;
}
