/* The dry run (`--dry-run`, mpi/plan.h): the model's shape from config.json, the llama2.c
 * header or [model.shape]; the calibration sequences counted; this machine probed; the
 * plan printed for the cluster the user names. */
#include "plan.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "calib_tokens.h"
#include "capture.h"
#include "model_config_read.h"
#include "mpi_check.h"
#include "parallel.h"
#include "schedule.h"
#include "text_windows.h"
#include "tokenizer.h"

#define BYTES_PER_TOKEN_ESTIMATE 4.0

/* N: calibration.tokens' shape; else the text's windows (tokenized when the tokenizer is
 * there, else estimated from the file size); capped by calibration.sequences. *how says which. */
static nq_status count_sequences(const NupesConfig *cfg, const ModelConfig *c, int T, int *N, const char **how) {
    int const cap = cfg->calib_sequences;
    if (cfg->calib_tokens[0]) {
        int *windows = NULL;
        nq_status const st = calib_tokens_load(cfg->calib_tokens, c->vocab_size, T, cap, &windows, N);
        free(windows);
        *how = "calibration.tokens";
        return st;
    }
    struct stat sb;
    if (stat(cfg->calib_text, &sb) != 0) {
        if (cap > 0) {
            *N = cap;
            *how = "calibration.sequences; the text is not there to check";
            return NQ_OK;
        }
        return nq_fail(NQ_ERR_INPUT, "calibration.text %s: cannot open: %s (set calibration.sequences to plan without it)",
                       cfg->calib_text, strerror(errno));
    }
    Tokenizer *tok = NULL;
    if (cfg->tokenizer_path[0] && tokenizer_open(cfg->tokenizer_path, c->vocab_size, &tok) == NQ_OK) {
        int *windows = NULL;
        nq_status const st = text_windows_load(cfg->calib_text, tok, T, cap, &windows, N);
        free(windows);
        tokenizer_free(tok);
        *how = "the text, tokenized";
        return st;
    }
    nq_clear_error();
    double const windows = (double)sb.st_size / BYTES_PER_TOKEN_ESTIMATE / T;
    *N = windows > INT_MAX ? INT_MAX : (int)windows;
    if (cap > 0 && *N > cap) *N = cap;
    *how = "estimated from the text size at ~4 bytes per token (no tokenizer)";
    if (*N < 1) return nq_fail(NQ_ERR_INPUT, "%s: about %.0f tokens, fewer than one sequence of %d", cfg->calib_text, windows * T, T);
    return NQ_OK;
}

nq_status plan_shape_config(const NupesConfig *cfg, ModelConfig *c) {
    const char *src = cfg->source_path[0] ? cfg->source_path : "config";
    const struct { const char *key; int value; } need[] = {
        {"hidden_size", cfg->shape.hidden_size},
        {"intermediate_size", cfg->shape.intermediate_size},
        {"num_hidden_layers", cfg->shape.num_hidden_layers},
        {"num_attention_heads", cfg->shape.num_attention_heads},
        {"vocab_size", cfg->shape.vocab_size},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (need[i].value <= 0)
            return nq_fail(NQ_ERR_INPUT, "%s: model.shape.%s is not set, expected a positive integer (the model's "
                           "config.json value) to plan without the model",
                           src, need[i].key);
    memset(c, 0, sizeof *c);
    c->dim = cfg->shape.hidden_size;
    c->hidden_dim = cfg->shape.intermediate_size;
    c->n_layers = cfg->shape.num_hidden_layers;
    c->n_heads = cfg->shape.num_attention_heads;
    c->n_kv_heads = cfg->shape.num_key_value_heads > 0 ? cfg->shape.num_key_value_heads : c->n_heads;
    c->vocab_size = cfg->shape.vocab_size;
    c->seq_len = cfg->shape.max_position_embeddings > 0 ? cfg->shape.max_position_embeddings : INT_MAX;
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    c->rope_style = ROPE_HALF;
    c->tied_embeddings = cfg->shape.tie_word_embeddings;
    char why[160];
    if (model_config_check(c, why, sizeof why) != 0)
        return nq_fail(NQ_ERR_INPUT, "%s: [model.shape]: %s", src, why);
    return NQ_OK;
}

/* The model's config; [model.shape] when the model is absent; both must agree. *how says which. */
static nq_status plan_model_config(const NupesConfig *cfg, ModelConfig *c, const char **how) {
    int const have_shape = cfg->shape.hidden_size > 0;
    struct stat sb;
    if (stat(cfg->model_path, &sb) != 0 && have_shape) {
        *how = "[model.shape] of the config (the model is not there)";
        return plan_shape_config(cfg, c);
    }
    nq_status st = model_read_config(cfg->model_path, cfg->model_format, c);
    if (st != NQ_OK) {
        if (!have_shape) return st;
        nq_clear_error();
        *how = "[model.shape] of the config (the model's config is not readable)";
        return plan_shape_config(cfg, c);
    }
    *how = cfg->model_path;
    if (!have_shape) return NQ_OK;
    ModelConfig s;
    if ((st = plan_shape_config(cfg, &s)) != NQ_OK) return st;
    const struct { const char *key; int shape, model; } pairs[] = {
        {"hidden_size", s.dim, c->dim},
        {"intermediate_size", s.hidden_dim, c->hidden_dim},
        {"num_hidden_layers", s.n_layers, c->n_layers},
        {"num_attention_heads", s.n_heads, c->n_heads},
        {"num_key_value_heads", s.n_kv_heads, c->n_kv_heads},
        {"vocab_size", s.vocab_size, c->vocab_size},
        {"tie_word_embeddings", s.tied_embeddings, c->tied_embeddings},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (pairs[i].shape != pairs[i].model)
            return nq_fail(NQ_ERR_INPUT, "%s: model.shape.%s = %d, but the model %s has %d", cfg->source_path,
                           pairs[i].key, pairs[i].shape, cfg->model_path, pairs[i].model);
    return NQ_OK;
}

/* The precision of the model's weights: the model's own (config.json torch_dtype) when it
 * was read, else [model.shape] torch_dtype, else fp32 (the most its fp32 copies take). */
static void source_dtype(const NupesConfig *cfg, int model_read, char *dtype, size_t size) {
    if (model_read && model_read_source_dtype(cfg->model_path, cfg->model_format, dtype, size) == NQ_OK) return;
    nq_clear_error();
    snprintf(dtype, size, "%s", cfg->shape.torch_dtype[0] ? cfg->shape.torch_dtype : "float32");
}

/* The ranks of the launch (when MPI runs) probe side by side, one probe at a time, as
 * the job's ranks run the same phase side by side. Unsynchronized, one rank's sgemm probe
 * had met the other's setup probe: two dry runs of the same job, minutes apart, planned
 * the setup at 2.5 and 4.1 minutes. launch_all_ok: whether every rank got this far (a
 * rank that failed skips the probes, and so do the others: no barrier waits for it). */
static int launch_all_ok(nq_status st) {
    int initialized = 0, ok = st == NQ_OK, all = ok;
    MPI_Initialized(&initialized);
    if (initialized) MPI_CHECK(MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD));
    return all;
}

static void launch_in_step(void) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
}

/* A forward-only pass's products rate at B sequences of T tokens, every rank in step
 * (a tile probed before is not probed again: plan_rank_products_gflops). */
static double forward_rate(const ModelConfig *c, int B, int T, int threads) {
    launch_in_step();
    return plan_rank_products_gflops(c, B > 1 ? B : 1, T, threads, 1, NULL);
}

/* Threads per rank: the named count, else $OPENBLAS_NUM_THREADS, else 1. */
static int plan_threads(const PlanCluster *cluster) {
    if (cluster && cluster->threads > 0) return cluster->threads;
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    long const t = env ? strtol(env, NULL, 10) : 0;
    return t > 0 && t < 4096 ? (int)t : 1;
}

/* sgemm GFLOP/s of one rank of `threads` threads: measured on min(threads, this machine's
 * CPUs) OpenBLAS threads and scaled linearly beyond (*probe_threads says how many ran). */
static double rank_sgemm_gflops(int threads, int *probe_threads) {
    long const cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int const k = threads < cpus || cpus < 1 ? threads : (int)cpus;
    int const before = openblas_get_num_threads();
    openblas_set_num_threads(k);
    double const gflops = plan_sgemm_probe_gflops(1.0);
    openblas_set_num_threads(before);
    *probe_threads = k;
    return gflops * threads / k;
}

nq_status plan_dry_run_cluster(const NupesConfig *cfg, int world_size, const PlanCluster *cluster, FILE *out) {
    int const named = cluster && (cluster->nodes > 0 || cluster->ranks_per_node > 0);
    int const nodes = named && cluster->nodes > 0 ? cluster->nodes : 1;
    int const per_node = named ? (cluster->ranks_per_node > 0 ? cluster->ranks_per_node : 1) : world_size;
    if ((long)nodes * per_node > 1000000)
        return nq_fail(NQ_ERR_INPUT, "--nodes %d x --ranks-per-node %d: expected at most 1000000 ranks", nodes, per_node);
    int const ranks = nodes * per_node, threads = plan_threads(cluster);
    ModelConfig c;
    const char *shape_from = "";
    nq_status st = plan_model_config(cfg, &c, &shape_from);
    int const T = cfg->calib_seq_len;
    int N = 0;
    const char *how = "";
    Plan p;
    if (st == NQ_OK && T > c.seq_len) st = plan_compute(&c, cfg, ranks, 1, T, &p); /* reports the error */
    if (st == NQ_OK) st = count_sequences(cfg, &c, T, &N, &how);
    if (st == NQ_OK) st = plan_compute(&c, cfg, ranks, N, T, &p);
    if (!launch_all_ok(st))
        return st != NQ_OK ? st : nq_fail(NQ_ERR_INPUT, "another rank of this launch could not plan the job");
    p.nodes = nodes;
    p.ranks_per_node = per_node;
    p.cluster_named = named;
    plan_set_threads(&p, cfg, threads);
    int probe_threads = 1;
    launch_in_step();
    double const gflops = rank_sgemm_gflops(threads, &probe_threads);
    /* The setup and the element-wise passes run on the rank's threads (src/parallel.h):
     * probed on this process's, scaled. The products: the configured mode's batch share
     * (the iteration) and CAPTURE_CHUNK sequences (the capture), tile by tile. */
    launch_in_step();
    p.setup_seconds_per_weight =
        plan_setup_probe_seconds_per_weight(cfg, 0.5, &p.stored_code_bits, &p.quantize_seconds_per_weight) *
        parallel_threads() / threads;
    p.quantize_seconds_per_weight *= (double)parallel_threads() / threads;
    launch_in_step();
    p.elementwise_seconds_per_weight =
        plan_elementwise_probe_seconds_per_weight(cfg, 0.3) * parallel_threads() / threads;
    launch_in_step();
    p.page_touch_gbs = plan_page_touch_probe_gbs(0.2, &p.page_retouch_gbs);
    if (shape_from == cfg->model_path) {
        launch_in_step();
        p.model_read_mbs = plan_model_read_probe_mbs(cfg->model_path, 0.3, p.model_read_file, sizeof p.model_read_file);
    }
    int const D = p.data_parallel[p.mode];
    launch_in_step();
    p.products_gflops = plan_rank_products_gflops(&c, (cfg->batch + D - 1) / D, T, threads, 0, &p.products_threads_busy);
    for (int m = 0; m < PLAN_N_MODES; m++) { /* each mode's share, probed once per distinct share */
        int const share = (cfg->batch + p.data_parallel[m] - 1) / p.data_parallel[m];
        for (int k = 0; k < m && !p.mode_products_gflops[m]; k++)
            if ((cfg->batch + p.data_parallel[k] - 1) / p.data_parallel[k] == share)
                p.mode_products_gflops[m] = p.mode_products_gflops[k];
        if (!p.mode_products_gflops[m] && share == (cfg->batch + D - 1) / D)
            p.mode_products_gflops[m] = p.products_gflops;
        if (!p.mode_products_gflops[m]) {
            launch_in_step();
            p.mode_products_gflops[m] = plan_rank_products_gflops(&c, share, T, threads, 0, NULL);
        }
    }
    /* Forward-only passes at their own rows: the capture, each mode's probe passes and
     * hand-on (few rows run slower per FLOP: the probes measured 30.7 GFLOP/s at 1 x 256
     * rows, 35.5 at 4 x 256, at 7B width) */
    p.capture_products_gflops = forward_rate(&c, CAPTURE_CHUNK, T, threads);
    for (int m = 0; m < PLAN_N_MODES; m++) {
        int const Dm = p.data_parallel[m], group_share = (N + Dm - 1) / Dm;
        p.probe_products_gflops[m] = forward_rate(&c, (cfg->batch + Dm - 1) / Dm, T, threads);
        if (m != MODE_PARALLEL)
            p.hand_on_products_gflops[m] =
                forward_rate(&c, group_share < HAND_ON_CHUNK ? group_share : HAND_ON_CHUNK, T, threads);
    }
    char dtype[16];
    source_dtype(cfg, shape_from == cfg->model_path, dtype, sizeof dtype);
    double fp32_mbs = 0;
    launch_in_step();
    double const fp32_bytes = plan_fp32_store_probe(dtype, cfg->zstd_level, 0.2, &fp32_mbs);
    plan_set_fp32_storage(&p, cfg, dtype, fp32_bytes, fp32_mbs);
    launch_in_step();
    double const memory_gbs = plan_memory_probe_gbs(0.25);
    launch_in_step();
    double const codes_mbs = plan_codes_store_probe_mbs(cfg->zstd_level, 0.2, &p.codes_read_mbs);
    plan_set_speed(&p, gflops, memory_gbs, codes_mbs);
    if (!out) return NQ_OK; /* another rank of the launch: it probed beside root */
    uint64_t free_bytes = 0;
    int64_t const shown = plan_free_bytes(cfg->run_dir, &free_bytes) == NQ_OK ? (int64_t)free_bytes : -1;
    nq_clear_error();
    if (named)
        fprintf(out, "dry run: the plan for %d node%s x %d rank%s = %d rank%s, %d thread%s each; nothing is written\n",
                nodes, nodes > 1 ? "s" : "", per_node, per_node > 1 ? "s" : "", ranks, ranks > 1 ? "s" : "", threads,
                threads > 1 ? "s" : "");
    else
        fprintf(out, "dry run: the plan for %d rank%s (the size of this launch; plan a cluster with --nodes N "
                     "--ranks-per-node R --threads T); nothing is written\n",
                ranks, ranks > 1 ? "s" : "");
    fprintf(out, "shape from: %s\n", shape_from);
    plan_print(&p, cfg, shown, out);
    if (probe_threads != threads)
        fprintf(out, "note: sgemm was measured on %d thread%s of this machine and scaled to %d threads per rank\n",
                probe_threads, probe_threads > 1 ? "s" : "", threads);
    fprintf(out, "calibration: %d sequences of %d tokens (%s)\n", N, T, how);
    fflush(out);
    return NQ_OK;
}
