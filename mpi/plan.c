/* The dry-run planner (see plan.h). */
#include "plan.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "block.h"
#include "block_run.h"
#include "capture.h"
#include "quant.h"
#include "quantizer.h"
#include "result.h"
#include "run_dir.h"
#include "schedule.h"

/* ---------------------------------------------------------------- layout */

/* G and D of a mode on R ranks, as mpi/layout.c arranges them. */
static nq_status mode_layout(const NupesConfig *cfg, int L, int R, ReconMode mode, int *G, int *D) {
    if (mode == MODE_SEQUENTIAL) {
        *D = R;
    } else if (cfg->data_parallel == 0) { /* auto: the smallest D with G <= L */
        *D = R;
        for (int d = 1; d <= R; d++)
            if (R % d == 0 && R / d <= L) {
                *D = d;
                break;
            }
    } else if (R % cfg->data_parallel != 0) {
        return nq_fail(NQ_ERR_INPUT, "mpi.data_parallel = %d does not divide the %d ranks of this job",
                       cfg->data_parallel, R);
    } else {
        *D = cfg->data_parallel;
    }
    *G = R / *D;
    return NQ_OK;
}

/* ---------------------------------------------------------------- sizes */

static uint64_t block_weights(const ModelConfig *c, unsigned skip_mask, int quantized_only) {
    uint64_t n = 0;
    for (int i = 0; i < N_MATS; i++)
        if (!quantized_only || !(skip_mask & (1u << i))) n += (uint64_t)mat_rows(c, i) * (uint64_t)mat_cols(c, i);
    return n;
}

/* P and dP of one (sequence, head) per thread: src/attention.c runs a thread's pairs on
 * its own [T][T] pair (the first in BlockActs, the others allocated per call). */
static uint64_t attention_bytes(uint64_t T, int threads) { return 2 * 4 * T * T * (uint64_t)threads; }

/* Scales and exponents of every quantized matrix and what learning them adds. */
static uint64_t scale_bytes(const ModelConfig *c, const NupesConfig *cfg, int learns) {
    QuantSpec const spec = config_quant_spec(cfg);
    uint64_t bytes = 0;
    for (int i = 0; i < N_MATS; i++) {
        if (cfg->skip_mask & (1u << i)) continue;
        QuantShape const sh = quant_shape(spec, mat_rows(c, i), mat_cols(c, i));
        uint64_t const ns = (uint64_t)sh.rows * (uint64_t)sh.groups, ne = (uint64_t)sh.n_exponents;
        bytes += 8 * ns + (learns ? 12 : 4) * ne + (learns ? 8 : 0) * ne;      /* M0, M; a (+m, v); da */
        if (learns && cfg->learn_scale) bytes += 12 * ns + 8 * ns;             /* s, m, v; ds */
    }
    return bytes;
}

static void memory_compute(const ModelConfig *c, const NupesConfig *cfg, int D, int N, int R, int T, int threads,
                           PlanMemory *m) {
    int const learns = cfg->method == METHOD_NUPES;
    uint64_t const W = block_weights(c, cfg->skip_mask, 0), Wq = block_weights(c, cfg->skip_mask, 1);
    uint64_t const b = (uint64_t)((cfg->batch + D - 1) / D), d = (uint64_t)c->dim, TT = (uint64_t)T;
    memset(m, 0, sizeof *m);
    m->weights = 4 * W;
    m->skipped = 4 * (W - Wq);
    m->latents = 4 * Wq;
    m->exponents_scales = scale_bytes(c, cfg, learns);
    m->adam = learns ? 8 * Wq : 0;
    m->quantized = 5 * Wq;
    m->gradients = 4 * W; /* dL/dw_hat, all-reduced as it is (Adam forms dz = dw_hat * M inside its pass) */
    m->attention = attention_bytes(TT, threads);
    m->block_acts = block_acts_bytes(c, (int)b, (int)TT) - attention_bytes(TT, 1);
    /* x, y and the quantized output hold the batch share or the probe passes' share,
     * whichever is more (mpi/block_run.c, src/recon.c); the probe passes forward a batch
     * share at a time, so the activations are a step's */
    uint64_t const probes = (uint64_t)probe_sequences(N);
    uint64_t const probe_share = (probes + (uint64_t)D - 1) / (uint64_t)D;
    m->batch_buffers = 3 * 4 * TT * d * (b > probe_share ? b : probe_share);
    uint64_t const kept = m->skipped + m->latents + m->exponents_scales + m->adam + m->quantized + m->gradients +
                          m->batch_buffers;
    m->setup_total = m->weights + kept;
    m->total = kept + m->block_acts + m->attention;
    uint64_t const n_local = ((uint64_t)N + (uint64_t)R - 1) / (uint64_t)R, chunk = CAPTURE_CHUNK;
    m->capture_shard = 4 * n_local * TT * d;
    /* block_forward_in_place: a forward-only pass in place, on BlockScratch (src/block.h) */
    m->capture_forward = block_scratch_bytes(c, (int)chunk, (int)TT) + 4 * TT * TT * (uint64_t)(threads - 1);
    m->capture_total = 4 * W + m->capture_shard + m->capture_forward;
    if (cfg->mode != MODE_PARALLEL) { /* mpi/schedule.c's hand_on on a group of D */
        uint64_t const share = ((uint64_t)N + (uint64_t)D - 1) / (uint64_t)D;
        uint64_t const chunk_seqs = share < HAND_ON_CHUNK ? share : HAND_ON_CHUNK;
        m->hand_on = 4 * share * TT * d + 4 * W + W + /* its inputs, dequantized weights, int8 codes */
                     block_scratch_bytes(c, (int)chunk_seqs, (int)TT) + 4 * TT * TT * (uint64_t)(threads - 1);
    }
    m->head = (uint64_t)c->vocab_size * d * 4 * (c->tied_embeddings ? 1 : 2);
    uint64_t peak = m->total > m->setup_total ? m->total : m->setup_total;
    if (m->capture_total > peak) peak = m->capture_total;
    if (m->hand_on > peak) peak = m->hand_on;
    m->rank_peak = peak + m->head;
}

void plan_set_threads(Plan *p, const NupesConfig *cfg, int threads) {
    p->threads = threads;
    memory_compute(&p->model, cfg, p->data_parallel[cfg->mode], p->n_sequences, p->world_size, p->T, threads, &p->mem);
}

/* ---------------------------------------------------------------- run.dir files */

/* Bytes of one block's quantized result: the arrays the quantizer describes (done files'
 * format), int8 codes at ~bits/8 bytes (zstd stores them near their entropy, below bits),
 * every other array at its element size; skipped matrices fp32, which zstd stores at
 * fp32_bytes per weight. raw (fp32_bytes unused): one byte per code and 4 per fp32 weight,
 * as root receives and compresses them; *raw_fp32 (if not NULL): the skipped matrices'
 * share of that, which root compresses at the fp32 rate, not the codes' rate. */
static uint64_t done_block_bytes(const ModelConfig *c, const NupesConfig *cfg, int raw, double code_bits,
                                 double fp32_bytes, uint64_t *raw_fp32) {
    QuantSpec const spec = config_quant_spec(cfg);
    uint64_t bytes = 0;
    if (raw_fp32) *raw_fp32 = 0;
    for (int i = 0; i < N_MATS; i++) {
        uint64_t const n = (uint64_t)mat_rows(c, i) * (uint64_t)mat_cols(c, i);
        if (cfg->skip_mask & (1u << i)) {
            bytes += raw ? 4 * n : (uint64_t)(fp32_bytes * (double)n);
            if (raw_fp32) *raw_fp32 += 4 * n;
            continue;
        }
        QArrayDesc desc[QM_MAX_ARRAYS];
        int const k = quantizer_of(spec)->describe(spec, quant_shape(spec, mat_rows(c, i), mat_cols(c, i)),
                                                   RESULT_FORMAT_VERSION, desc);
        for (int a = 0; a < k; a++) {
            uint64_t const count = qarray_count(&desc[a]);
            bytes += desc[a].type == QA_I8 && !raw ? (uint64_t)((double)count * code_bits / 8)
                                                   : count * qarray_type_size(desc[a].type);
        }
    }
    return bytes;
}

/* Bits per quantized weight of every stored array but the codes (array 0), as the done
 * files and the checkpoint store them: the quantizer's description, summed over the
 * quantized matrices of a block. */
static double side_bits_per_weight(const ModelConfig *c, const NupesConfig *cfg) {
    QuantSpec const spec = {.bits = cfg->bits, .group_size = cfg->group_size, .per_row = cfg->exponent_per_channel};
    double bits = 0, weights = 0;
    for (int i = 0; i < N_MATS; i++) {
        if (cfg->skip_mask & (1u << i)) continue;
        QArrayDesc desc[QM_MAX_ARRAYS];
        int const k = quantizer_of(spec)->describe(spec, quant_shape(spec, mat_rows(c, i), mat_cols(c, i)),
                                                   RESULT_FORMAT_VERSION, desc);
        bits += quantizer_raw_bits(desc + 1, k - 1);
        weights += (double)mat_rows(c, i) * (double)mat_cols(c, i);
    }
    return weights > 0 ? bits / weights : 0.0;
}

/* Ranks with no work in the configured layout, and a data_parallel that would use them. */
static void idle_compute(const NupesConfig *cfg, Plan *p) {
    int const L = p->model.n_layers, R = p->world_size, B = p->batch;
    int const G = p->n_groups[p->mode], D = p->data_parallel[p->mode];
    int const busy_groups = p->mode == MODE_SEQUENTIAL ? 1 : (G < L ? G : L);
    int const busy_per_group = D < B ? D : B; /* a rank beyond the batch gets no sequence */
    p->idle_ranks = R - busy_groups * busy_per_group;
    long const useful = p->mode == MODE_SEQUENTIAL ? B : (long)L * B;
    p->useful_ranks = useful < R ? (int)useful : R;
    p->suggest_data_parallel = 0;
    if (p->idle_ranks <= 0 || p->mode == MODE_SEQUENTIAL) return;
    for (int d = 1; d <= R && d <= B; d++) /* the smallest D with every group busy */
        if (R % d == 0 && R / d <= L) {
            if (d != D || cfg->data_parallel == 0) p->suggest_data_parallel = d;
            break;
        }
}

static void flops_compute(const ModelConfig *c, const NupesConfig *cfg, int N, int T, Plan *p) {
    double const W = (double)block_weights(c, 0, 0), tokens = (double)cfg->batch * T;
    double const hs = (double)c->dim / c->n_heads, T2 = (double)T * T;
    p->flops_projections = 6.0 * W * tokens;
    p->flops_attention = 14.0 * cfg->batch * c->n_heads * T2 * hs;
    p->flops_block = (p->flops_projections + p->flops_attention) * p->iterations;
    p->flops_blocks = p->flops_block * c->n_layers;
    p->flops_capture = (2.0 * W * (double)N * T + 4.0 * N * c->n_heads * T2 * hs) * c->n_layers;
}

/* Activation bytes the mode writes: /inputs always, quantized levels 1..L-1 when handed on,
 * at calibration.activation_dtype's bytes per value. */
static uint64_t activation_bytes(const ModelConfig *c, ReconMode mode, ActDtype dtype, int N, int T,
                                 uint64_t *inputs, uint64_t *qinputs) {
    uint64_t const level = (uint64_t)N * (uint64_t)T * (uint64_t)c->dim * act_dtype_bytes(dtype);
    *inputs = (uint64_t)(c->n_layers + 1) * level;
    *qinputs = (uint64_t)(c->n_layers > 1 ? c->n_layers - 1 : 0) * level;
    return *inputs + (mode == MODE_PARALLEL ? 0 : *qinputs);
}

nq_status plan_compute(const ModelConfig *c, const NupesConfig *cfg, int world_size, int n_sequences,
                       int T, Plan *out) {
    memset(out, 0, sizeof *out);
    if (T > c->seq_len)
        return nq_fail(NQ_ERR_INPUT, "%s: calibration.seq_len = %d, expected at most the model's seq_len %d",
                       cfg->source_path, T, c->seq_len);
    Plan p = {.model = *c, .mode = cfg->mode, .world_size = world_size, .nodes = 1, .ranks_per_node = world_size,
              .threads = 1, .n_sequences = n_sequences, .T = T, .batch = cfg->batch,
              .switch_fraction = cfg->switch_fraction};
    p.iterations = cfg->method == METHOD_NUPES ? cfg->iterations : 0;
    for (int m = 0; m < PLAN_N_MODES; m++) {
        nq_status const st = mode_layout(cfg, c->n_layers, world_size, (ReconMode)m, &p.n_groups[m], &p.data_parallel[m]);
        if (st != NQ_OK && m == (int)cfg->mode) return st;
        if (st != NQ_OK) { /* another mode's D is not the user's business: use D = 1 there */
            nq_clear_error();
            p.n_groups[m] = world_size;
            p.data_parallel[m] = 1;
        }
    }
    int const G = p.n_groups[cfg->mode];
    p.blocks_per_group = (c->n_layers + G - 1) / G;
    p.params_block = block_weights(c, 0, 0) + 2 * (uint64_t)c->dim;
    p.params_blocks = p.params_block * (uint64_t)c->n_layers;
    p.params_head = (uint64_t)c->vocab_size * (uint64_t)c->dim * (c->tied_embeddings ? 1 : 2) + (uint64_t)c->dim;
    p.params_total = p.params_blocks + p.params_head;
    memory_compute(c, cfg, p.data_parallel[cfg->mode], n_sequences, world_size, T, p.threads, &p.mem);
    p.activation_bytes = activation_bytes(c, cfg->mode, cfg->activation_dtype, n_sequences, T, &p.inputs_bytes, &p.qinputs_bytes);
    if (p.iterations > 0) /* z, Adam m and v of every quantized weight, and the scale state */
        p.state_bytes = 12 * block_weights(c, cfg->skip_mask, 1) + scale_bytes(c, cfg, 1);
    p.quantized_weights_per_block = block_weights(c, cfg->skip_mask, 1);
    p.blocks_in_flight = cfg->mode == MODE_SEQUENTIAL ? 1 : (G < c->n_layers ? G : c->n_layers);
    idle_compute(cfg, &p);
    p.done_raw_bytes = done_block_bytes(c, cfg, 1, cfg->bits, 4.0, &p.done_raw_fp32_bytes);
    p.stored_code_bits = cfg->bits;
    flops_compute(c, cfg, n_sequences, T, &p);
    *out = p;
    plan_set_fp32_storage(out, cfg, "float32", 4.0, 0.0);
    return NQ_OK;
}

void plan_set_fp32_storage(Plan *p, const NupesConfig *cfg, const char *source_dtype, double bytes_per_weight,
                           double zstd_mbs) {
    const ModelConfig *c = &p->model;
    snprintf(p->source_dtype, sizeof p->source_dtype, "%s", source_dtype);
    p->fp32_stored_bytes = bytes_per_weight;
    p->fp32_zstd_mbs = zstd_mbs;
    p->done_bytes = done_block_bytes(c, cfg, 0, p->stored_code_bits, bytes_per_weight, NULL);
    uint64_t const head_weights = p->mem.head / 4;
    p->checkpoint_bytes = (uint64_t)c->n_layers * (p->done_bytes + 8 * (uint64_t)c->dim) +
                          (uint64_t)(bytes_per_weight * (double)head_weights) + 4 * (uint64_t)c->dim;
}

/* ---------------------------------------------------------------- time */

double plan_pipelined_block_times(int L, int G, double f) {
    double *free_at = calloc((size_t)G, sizeof *free_at);
    if (!free_at) return NAN;
    double start = 0, end = 0;
    for (int l = 0; l < L; l++) {
        double const earliest = l == 0 ? 0 : start + (1.0 - f); /* predecessor done at our switch */
        start = fmax(earliest, free_at[l % G]);
        end = start + 1.0;
        free_at[l % G] = end;
    }
    free(free_at);
    return end;
}

/* FLOP/s of mode m's iteration products on one rank: probed for that mode's batch share,
 * else for the configured mode's, else the sgemm rate. */
static double products_rate(const Plan *p, int m) {
    if (p->mode_products_gflops[m] > 0) return 1e9 * p->mode_products_gflops[m];
    return 1e9 * (p->products_gflops > 0 ? p->products_gflops : p->sgemm_gflops);
}

/* One step's gradient sum over a group of D ranks: dL/dw_hat of the block's quantized
 * weights, fp32 (src/recon.c keeps them contiguous for one MPI_Allreduce), as a ring,
 * each rank sending and receiving 2 (D-1)/D of it. A group is D consecutive ranks
 * (mpi/layout.c), on one node when D divides the ranks per node (srun and mpirun place
 * consecutive ranks together), else across nodes. */
static double allreduce_seconds(const Plan *p, int D) {
    if (p->iterations == 0 || D < 2) return 0;
    int const one_node = p->ranks_per_node % D == 0;
    double const rate = 1e9 * (one_node ? PLAN_SHM_ALLREDUCE_GBS : PLAN_NETWORK_ALLREDUCE_GBS);
    return 2.0 * (D - 1) / D * 4.0 * (double)p->quantized_weights_per_block / rate;
}

/* One block on a group of D ranks: the matrix products of the rank with the largest batch
 * share, plus the element-wise work every rank does over the block's quantized weights,
 * both as the dry run's probes measured them (plan.h), plus the gradient sum. */
static double block_seconds(const Plan *p, int m, int D) {
    if (p->iterations == 0) return 0;
    double const share = (double)((p->batch + D - 1) / D) / p->batch;
    double const mm = (p->flops_projections + p->flops_attention) * share / products_rate(p, m);
    double const ew = p->elementwise_seconds_per_weight * (double)p->quantized_weights_per_block;
    return p->iterations * (mm + ew + allreduce_seconds(p, D));
}

/* Seconds to fault in `bytes` of fresh memory at the probed rate (0 when not probed). */
static double touch_seconds(const Plan *p, uint64_t bytes) {
    return p->page_touch_gbs > 0 ? (double)bytes / (p->page_touch_gbs * 1e9) : 0;
}

/* The same for memory the process freed a moment before (the previous block's fp32
 * weights or done file, the finished block's run before a hand-on): at the recycled rate
 * when probed. */
static double retouch_seconds(const Plan *p, uint64_t bytes) {
    return p->page_retouch_gbs > 0 ? (double)bytes / (p->page_retouch_gbs * 1e9) : touch_seconds(p, bytes);
}

/* Page faults of `count` blocks of `each` bytes taken in turn beside `held` bytes kept
 * throughout: the held bytes and the first block fault in fresh, every later block into
 * the pages the one before freed a moment earlier (the model check, the capture, the
 * checkpoint's read-back). */
static double in_turn_seconds(const Plan *p, uint64_t held, uint64_t each, int count) {
    if (count < 1) return touch_seconds(p, held);
    return touch_seconds(p, held + each) + retouch_seconds(p, (uint64_t)(count - 1) * each);
}

/* FLOPs of one block's forward over `sequences` sequences of T tokens: the projections and
 * attention's QK^T and PV. */
static double forward_flops(const Plan *p, int sequences) {
    double const W = (double)block_weights(&p->model, 0, 0), T = p->T;
    double const hs = (double)p->model.dim / p->model.n_heads;
    return sequences * (2.0 * W * T + 4.0 * p->model.n_heads * T * T * hs);
}

/* The two probe passes of a block (mpi/block_run.h: the loss over min(N, 8) sequences
 * before the first step and after the last), a forward each, split over the group's D
 * ranks, a batch share at a time, at the forward's probed rate for those rows; the
 * first quantizes the block (the last finds w_hat fresh from the last step: src/recon.c)
 * into w_hat and the codes, touched fresh, as are the activations. At 7B width on a VM
 * faulting 0.27 GB/s, the forward alone planned 18 s where the passes took 29. */
static double probe_seconds(const Plan *p, int m, int D) {
    int const P = probe_sequences(p->n_sequences);
    double const rate = p->probe_products_gflops[m] > 0 ? 1e9 * p->probe_products_gflops[m] : products_rate(p, m);
    double const quantize = p->quantize_seconds_per_weight * (double)p->quantized_weights_per_block;
    return 2.0 * forward_flops(p, (P + D - 1) / D) / rate + quantize +
           touch_seconds(p, p->mem.quantized + p->mem.block_acts);
}

/* The hand-on after a block (pipelined, sequential): a forward of the group rank's share
 * of the N sequences through the quantized block, HAND_ON_CHUNK at a time, at the
 * forward's probed rate for those rows, and the level read and written whole through
 * run.dir's file system. Its memory comes right after the block freed its run's (latents,
 * Adam's moments, gradients: mpi/schedule.c): at the recycled page fault rate. At 7B
 * width, fresh memory planned 10.6 s where the hand-on took 8.2 (pipelined mode). */
static double hand_on_seconds(const Plan *p, int mode, int D) {
    if (mode == MODE_PARALLEL) return 0;
    double const flops = forward_flops(p, (p->n_sequences + D - 1) / D);
    double const gflops = p->hand_on_products_gflops[mode] > 0 ? p->hand_on_products_gflops[mode]
                          : p->capture_products_gflops > 0    ? p->capture_products_gflops
                                                              : p->sgemm_gflops;
    double const rate = 1e9 * gflops;
    double const level = (double)p->qinputs_bytes / (p->model.n_layers > 1 ? p->model.n_layers - 1 : 1);
    return flops / rate + 2.0 * level / (PLAN_FS_MBS * 1e6) + retouch_seconds(p, p->mem.hand_on);
}

void plan_set_speed(Plan *p, double sgemm_gflops, double memory_gbs, double zstd_mbs) {
    p->sgemm_gflops = sgemm_gflops;
    p->memory_gbs = memory_gbs;
    p->zstd_mbs = zstd_mbs;
    if (!(sgemm_gflops > 0) || !(memory_gbs > 0) || !(zstd_mbs > 0)) return;
    int const L = p->model.n_layers;
    double const capture_rate = 1e9 * (p->capture_products_gflops > 0 ? p->capture_products_gflops : sgemm_gflops);
    /* Every rank reads each block, and the head once, from the model's files (the pages
     * are dropped once converted: io/hf_model.c), at the probed rate of one reader (a model
     * in the page cache: GB/s), or else at the assumed file system's rate shared by the
     * node's ranks. */
    double const source_bytes = !strcmp(p->source_dtype, "float16") || !strcmp(p->source_dtype, "bfloat16") ? 2 : 4;
    double const read_rate = p->model_read_mbs > 0 ? p->model_read_mbs * 1e6
                                                   : PLAN_FS_MBS * 1e6 / (p->ranks_per_node > 0 ? p->ranks_per_node : 1);
    double const head_read = source_bytes * (double)(p->mem.head / 4) / read_rate;
    double const block_read = source_bytes * (double)block_weights(&p->model, 0, 0) / read_rate;
    /* A block as the model hands it out: read, converted to fp32 into fresh memory (freed
     * after its use). At 7B width on a VM faulting 0.27 GB/s that is 3 s of each block's
     * setup. */
    p->block_read_seconds = block_read + touch_seconds(p, p->mem.weights);
    /* Root alone, before anything else: the hash reads the model's files once, then the
     * check reads them again, holds the head and converts each block in turn into fp32
     * memory: the head and the first block fault in fresh, every later block into the
     * pages its predecessor freed a moment before. On the rehearsal's 0.67 G weights
     * (files in the page cache, read at ~2.3 GB/s): hash and check 4.2-7.7 s over five
     * runs, of which 0.6-1.0 s block 1; this plans 4.5-5.8 s, and with every block fresh
     * and the files at 500 MB/s it said 7.4. */
    double const all_weights = (double)L * (double)block_weights(&p->model, 0, 0) + (double)(p->mem.head / 4);
    double const root_read_rate = p->model_read_mbs > 0 ? p->model_read_mbs * 1e6 : PLAN_FS_MBS * 1e6;
    double const blocks_faults = in_turn_seconds(p, p->mem.head, p->mem.weights, L);
    p->model_check_seconds = 2.0 * source_bytes * all_weights / root_read_rate + blocks_faults;
    /* The ranks of a node write their shares of each level of activations.h5 side by side. */
    double const levels_write = (double)p->inputs_bytes / (p->nodes > 0 ? p->nodes : 1) / (PLAN_FS_MBS * 1e6);
    /* Each rank: the head read and held, then block by block as in the check (block 0
     * fresh, the others into recycled pages). The plan had every block fresh: 19 s where
     * the rehearsal's capture took 11. */
    p->capture_seconds =
        p->flops_capture / p->world_size / capture_rate + L * block_read + head_read + blocks_faults + levels_write;
    /* The setup probe times the exponent search with its memory already touched; the
     * setup writes the latents z into fresh memory. */
    p->setup_seconds = p->setup_seconds_per_weight * (double)p->quantized_weights_per_block +
                       touch_seconds(p, p->mem.latents);
    /* The first step allocates and touches Adam's moments, the gradients and the attention
     * buffers (the first probe pass has touched the activations), and quantizes the block
     * once more (the element-wise probe's median step does not: recon_apply quantizes). */
    if (p->iterations > 0)
        p->first_step_seconds = touch_seconds(p, p->mem.attention + p->mem.adam + p->mem.gradients) +
                                p->quantize_seconds_per_weight * (double)p->quantized_weights_per_block;
    for (int m = 0; m < PLAN_N_MODES; m++) {
        p->probe_seconds[m] = probe_seconds(p, m, p->data_parallel[m]);
        p->allreduce_seconds[m] = allreduce_seconds(p, p->data_parallel[m]);
        p->hand_on_seconds[m] = hand_on_seconds(p, m, p->data_parallel[m]);
        p->block_seconds[m] =
            block_seconds(p, m, p->data_parallel[m]) + p->block_read_seconds + p->setup_seconds +
            p->first_step_seconds + p->probe_seconds[m] + p->hand_on_seconds[m];
    }
    int const Gp = p->n_groups[MODE_PARALLEL], Gq = p->n_groups[MODE_PIPELINED];
    p->wall_seconds[MODE_PARALLEL] = ((L + Gp - 1) / Gp) * p->block_seconds[MODE_PARALLEL];
    /* the last block hands nothing on */
    p->wall_seconds[MODE_SEQUENTIAL] = L * p->block_seconds[MODE_SEQUENTIAL] - p->hand_on_seconds[MODE_SEQUENTIAL];
    p->wall_seconds[MODE_PIPELINED] =
        plan_pipelined_block_times(L, Gq, p->switch_fraction) * p->block_seconds[MODE_PIPELINED] -
        p->hand_on_seconds[MODE_PIPELINED];
    /* Root compresses and writes each done file as its block arrives; in parallel mode the
     * blocks of the last round arrive together, so those are waited for. The checkpoint
     * reads every done file back and compresses it again, with the head. */
    /* fp32 arrays (skipped matrices, the head) at their own zstd rate when probed. */
    double const fp32_mbs = p->fp32_zstd_mbs > 0 ? p->fp32_zstd_mbs : zstd_mbs;
    double const codes_raw = (double)(p->done_raw_bytes - p->done_raw_fp32_bytes);
    /* Root receives each block into fresh memory (mpi/gather.c), its page faults too. */
    double const per_done = touch_seconds(p, p->done_raw_bytes) + codes_raw / (zstd_mbs * 1e6) +
                            (double)p->done_raw_fp32_bytes / (fp32_mbs * 1e6) +
                            (double)p->done_bytes / (PLAN_FS_MBS * 1e6);
    int last_round = p->blocks_in_flight;
    if (p->mode == MODE_PARALLEL && Gp < L) last_round = L - ((L + Gp - 1) / Gp - 1) * Gp;
    if (p->mode != MODE_PARALLEL) last_round = 1;
    p->gather_seconds = last_round * per_done;
    /* Root holds the head from the capture on: it is not read again. Each done file is read
     * back (decompressed, checksums verified) into memory and stored again: the first into
     * fresh memory, each later one into the pages the one before freed. On a VM that
     * faults pages in at 0.32 GB/s, a 7B block's codes read into fresh memory in 0.79 s
     * and into a reused buffer in 0.13 s: the faults are most of the read. */
    double const read_back = (double)L * (p->codes_read_mbs > 0 ? codes_raw / (p->codes_read_mbs * 1e6) : 0) +
                             in_turn_seconds(p, 0, p->done_raw_bytes, L);
    p->checkpoint_seconds = read_back + (double)L * codes_raw / (zstd_mbs * 1e6) +
                            ((double)L * (double)p->done_raw_fp32_bytes + (double)p->mem.head) / (fp32_mbs * 1e6) +
                            (double)p->checkpoint_bytes / (PLAN_FS_MBS * 1e6);
}

double plan_job_seconds(const Plan *p) {
    double const work = p->model_check_seconds + p->capture_seconds + p->wall_seconds[p->mode] + p->gather_seconds +
                        p->checkpoint_seconds;
    return work * PLAN_TIME_FACTOR + PLAN_SIGNAL_MARGIN;
}

/* ---------------------------------------------------------------- disk */

nq_status plan_free_bytes(const char *dir, uint64_t *free_bytes) {
    char path[PATH_MAX];
    int const n = snprintf(path, sizeof path, "%s", dir);
    if (n < 0 || (size_t)n >= sizeof path) return nq_fail(NQ_ERR_INPUT, "%s: path too long", dir);
    struct statvfs vfs;
    while (statvfs(path, &vfs) != 0) { /* not there yet: its nearest existing parent */
        if (errno != ENOENT && errno != ENOTDIR) return nq_fail(NQ_ERR_INPUT, "run.dir %s: statvfs failed: %s", dir, strerror(errno));
        char *slash = strrchr(path, '/');
        if (!slash || slash == path) {
            snprintf(path, sizeof path, "%s", slash == path ? "/" : ".");
            if (statvfs(path, &vfs) != 0) return nq_fail(NQ_ERR_INPUT, "run.dir %s: statvfs failed: %s", dir, strerror(errno));
            break;
        }
        *slash = '\0';
    }
    *free_bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    return NQ_OK;
}

/* "141.2 GB", or "9.8 MB" below 0.1 GB. */
static const char *human_bytes(uint64_t bytes, char *buf, size_t size) {
    if (bytes >= 100000000ull) snprintf(buf, size, "%.1f GB", (double)bytes / 1e9);
    else snprintf(buf, size, "%.1f MB", (double)bytes / 1e6);
    return buf;
}

nq_status plan_check_disk(const char *run_dir, uint64_t bytes) {
    uint64_t free_bytes = 0;
    nq_status const st = plan_free_bytes(run_dir, &free_bytes);
    if (st != NQ_OK) return st;
    char need[32], have[32];
    if (free_bytes < bytes)
        return nq_fail(NQ_ERR_INPUT, "run.dir %s: the activations need %s, the file system has %s free", run_dir,
                       human_bytes(bytes, need, sizeof need), human_bytes(free_bytes, have, sizeof have));
    return NQ_OK;
}

nq_status plan_check_run_dir_space(const char *run_dir, const ModelConfig *c, ReconMode mode, ActDtype dtype, int N,
                                   int T) {
    uint64_t inputs, qinputs;
    uint64_t need = activation_bytes(c, mode, dtype, N, T, &inputs, &qinputs);
    char path[PATH_MAX];
    struct stat sb;
    /* What the capture occupies already: complete, or in progress under its partial name
     * (allocated whole at creation, io/activations.h). */
    if ((run_dir_activations_path(run_dir, path, sizeof path) == NQ_OK && stat(path, &sb) == 0) ||
        (run_dir_activations_partial_path(run_dir, path, sizeof path) == NQ_OK && stat(path, &sb) == 0)) {
        uint64_t const have = (uint64_t)sb.st_blocks * 512;
        need = need > have ? need - have : 0;
    }
    nq_clear_error();
    return plan_check_disk(run_dir, need);
}

/* ---------------------------------------------------------------- printing */

static const char *human_time(double s, char *buf, size_t size) {
    if (s < 120) snprintf(buf, size, "%.1f s", s);
    else if (s < 7200) snprintf(buf, size, "%.1f min", s / 60);
    else if (s < 3 * 86400) snprintf(buf, size, "%.1f h", s / 3600);
    else snprintf(buf, size, "%.1f days", s / 86400);
    return buf;
}

static double gb(uint64_t bytes) { return (double)bytes / 1e9; }

static void print_memory(const Plan *p, FILE *out) {
    const PlanMemory *m = &p->mem;
    int const D = p->data_parallel[p->mode];
    int const b = (p->batch + D - 1) / D;
    fprintf(out, "memory per rank, one block in flight (batch share %d of %d sequences x %d tokens):\n", b, p->batch, p->T);
    const struct { const char *name; uint64_t bytes; } rows[] = {
        {"the model's block, fp32 (setup only)", m->weights},
        {"fp32 copies of skipped matrices", m->skipped},
        {"latents z", m->latents},
        {"exponents and scales (+ moments, gradients)", m->exponents_scales},
        {"Adam moments m, v of z", m->adam},
        {"quantized weights w_hat + codes", m->quantized},
        {"gradients dL/dw_hat", m->gradients},
        {"block activations for the backward (iterating)", m->block_acts},
        {"attention probabilities [T][T] + gradient, per thread", m->attention},
        {"x, y, output of the batch or the probe sequences", m->batch_buffers},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        fprintf(out, "  %-50s %9.2f GB\n", rows[i].name, gb(rows[i].bytes));
    fprintf(out, "  %-50s %9.2f GB\n", "setup: the model's block, no activations yet", gb(m->setup_total));
    fprintf(out, "  %-50s %9.2f GB\n", "iterating: the model's block released", gb(m->total));
    uint64_t const n_local = ((uint64_t)p->n_sequences + (uint64_t)p->world_size - 1) / (uint64_t)p->world_size;
    fprintf(out, "  capture (before): block weights %.2f GB + its %llu sequences %.2f GB + forward-only scratch of %d %.2f GB = %.2f GB\n",
            gb(4 * block_weights(&p->model, 0, 0)), (unsigned long long)n_local, gb(m->capture_shard), CAPTURE_CHUNK,
            gb(m->capture_forward), gb(m->capture_total));
    if (m->hand_on > 0)
        fprintf(out, "  hand-on after each block: the group rank's %d of %d sequences fp32, the block dequantized and "
                     "its codes, forward scratch of %d = %.2f GB\n",
                (p->n_sequences + D - 1) / D, p->n_sequences, HAND_ON_CHUNK, gb(m->hand_on));
    fprintf(out, "  every rank also holds the head (embeddings%s, fp32) from the capture on: %.2f GB\n",
            p->model.tied_embeddings ? "" : " and classifier", gb(m->head));
    fprintf(out, "  peak per rank %.2f GB; per node (%d rank%s) %.2f GB\n", gb(m->rank_peak), p->ranks_per_node,
            p->ranks_per_node > 1 ? "s" : "", gb(m->rank_peak * (uint64_t)p->ranks_per_node));
}

static void print_disk(const Plan *p, const NupesConfig *cfg, int64_t free_bytes, FILE *out) {
    const ModelConfig *c = &p->model;
    int const L = c->n_layers;
    uint64_t const state = p->state_bytes * (uint64_t)p->blocks_in_flight;
    uint64_t const done = p->done_bytes * (uint64_t)L;
    uint64_t const qin = p->mode == MODE_PARALLEL ? 0 : p->qinputs_bytes;
    uint64_t const total = p->inputs_bytes + qin + state + done + p->checkpoint_bytes;
    fprintf(out, "disk in run.dir (%s), at most %.1f GB:\n", cfg->run_dir, gb(total));
    char name[80];
    const char *const dtype = act_dtype_name(cfg->activation_dtype);
    snprintf(name, sizeof name, "activations.h5 /inputs [%d][%d][%d][%d] %s", L + 1, p->n_sequences, p->T, c->dim, dtype);
    fprintf(out, "  %-50s %9.2f GB\n", name, gb(p->inputs_bytes));
    snprintf(name, sizeof name, "qinputs/ hand-ons, levels 1..L-1 %s", dtype);
    if (p->mode != MODE_PARALLEL)
        fprintf(out, "  %-50s %9.2f GB\n", name, gb(p->qinputs_bytes));
    else
        fprintf(out, "  %-50s %9.2f GB\n", "qinputs/ hand-ons (parallel mode: none)", 0.0);
    snprintf(name, sizeof name, "state/ %d block%s in flight x %.2f GB", p->blocks_in_flight,
             p->blocks_in_flight > 1 ? "s" : "", gb(p->state_bytes));
    fprintf(out, "  %-50s %9.2f GB\n", name, gb(state));
    snprintf(name, sizeof name, "done/ %d blocks x ~%.2f GB", L, gb(p->done_bytes));
    fprintf(out, "  %-50s %9.2f GB\n", name, gb(done));
    fprintf(out, "  %-50s %9.2f GB\n", "checkpoint (~, zstd codes + fp32 head)", gb(p->checkpoint_bytes));
    if (p->fp32_stored_bytes > 0)
        fprintf(out, "  fp32 copies of %s weights (skipped matrices, the head) stored at %.2f bytes per weight (zstd probe)\n",
                p->source_dtype, p->fp32_stored_bytes);
    fprintf(out, "  disk: activations %.1f GB: the job checks this much is free before it starts\n", gb(p->activation_bytes));
    fprintf(out, "  run.dir must be on a file system every node mounts (a parallel file system): the ranks\n"
                 "  of every node write the activations and state files there\n");
    if (free_bytes >= 0)
        fprintf(out, "  run.dir %s: %.1f GB free here: %s\n", cfg->run_dir, (double)free_bytes / 1e9,
                (uint64_t)free_bytes >= total             ? "enough"
                : (uint64_t)free_bytes >= p->activation_bytes ? "enough for the activations, NOT for every file"
                                                          : "NOT ENOUGH: the job would refuse to start");
}

static void print_idle(const Plan *p, const NupesConfig *cfg, FILE *out) {
    int const L = p->model.n_layers, B = p->batch;
    if (p->idle_ranks <= 0) return;
    fprintf(out, "idle ranks: %d of %d do nothing: %d blocks, batch %d: at most %d rank%s can work "
                 "(%s each block's batch split over at most %d ranks)\n",
            p->idle_ranks, p->world_size, L, B, p->useful_ranks, p->useful_ranks > 1 ? "s" : "",
            p->mode == MODE_SEQUENTIAL ? "one block at a time," : "one group per block,", B);
    if (p->suggest_data_parallel > 0)
        fprintf(out, "  suggest: --set mpi.data_parallel=%d (%d groups of %d ranks: every rank works)\n",
                p->suggest_data_parallel, p->world_size / p->suggest_data_parallel, p->suggest_data_parallel);
    else
        fprintf(out, "  suggest: at most %d ranks%s\n", p->useful_ranks,
                p->mode == MODE_SEQUENTIAL ? "" : " (a multiple of the blocks, with mpi.data_parallel = ranks / blocks)");
    (void)cfg;
}

static void print_times(const Plan *p, FILE *out) {
    char a[32], b[32];
    fprintf(out, "compute: %.3g TFLOP per iteration (projections %.3g, attention %.3g), %d iterations: "
                 "%.3g PFLOP per block, %.3g PFLOP for %d blocks; capture %.3g PFLOP\n",
            (p->flops_projections + p->flops_attention) / 1e12, p->flops_projections / 1e12, p->flops_attention / 1e12,
            p->iterations, p->flops_block / 1e15, p->flops_blocks / 1e15, p->model.n_layers, p->flops_capture / 1e15);
    if (!(p->sgemm_gflops > 0)) return;
    fprintf(out, "speed per rank (probes on this machine): sgemm %.1f GFLOP/s, memory %.1f GB/s; file system %.0f MB/s "
                 "assumed\n",
            p->sgemm_gflops, p->memory_gbs, PLAN_FS_MBS);
    if (p->model_read_mbs > 0)
        fprintf(out, "  the model's files read at %.0f MB/s per rank (probed: %s mapped as the job reads it, as this "
                     "node holds it now; a node that has not read the model yet reads at its file system's rate)\n",
                p->model_read_mbs, p->model_read_file);
    else
        fprintf(out, "  the model's files read at the file system's %.0f MB/s, shared by a node's ranks (assumed: no "
                     "model here to probe)\n",
                PLAN_FS_MBS);
    fprintf(out, "  files (zstd, checksums, HDF5; probed in memory): codes stored at %.0f MB/s, read back at %.0f MB/s; "
                 "fp32 %s copies stored at %.0f MB/s\n",
            p->zstd_mbs, p->codes_read_mbs, p->source_dtype, p->fp32_zstd_mbs > 0 ? p->fp32_zstd_mbs : p->zstd_mbs);
    if (p->products_gflops > 0)
        fprintf(out, "  matrix products of this job's shape: %.1f GFLOP/s per rank in the iteration, %.1f in the "
                     "capture; element-wise work of an iteration %.2f ns per quantized weight, the "
                     "quantizer's forward alone %.2f (probes)\n",
                p->products_gflops, p->capture_products_gflops, p->elementwise_seconds_per_weight * 1e9,
                p->quantize_seconds_per_weight * 1e9);
    for (int m = 0; m < PLAN_N_MODES && p->products_gflops > 0; m++)
        if (p->mode_products_gflops[m] > 0 && p->mode_products_gflops[m] != p->products_gflops) {
            int const share = (p->batch + p->data_parallel[m] - 1) / p->data_parallel[m];
            fprintf(out, "  %s mode, a batch share of %d sequence%s per rank: its products at %.1f GFLOP/s per rank\n",
                    config_mode_name((ReconMode)m), share, share > 1 ? "s" : "", p->mode_products_gflops[m]);
        }
    if (p->probe_products_gflops[p->mode] > 0) {
        int const D = p->data_parallel[p->mode], share = (p->n_sequences + D - 1) / D, batch_share = (p->batch + D - 1) / D;
        fprintf(out, "  forward-only products, %s mode: the probe passes' %.1f GFLOP/s per rank (%d sequence%s at a time)",
                config_mode_name(p->mode), p->probe_products_gflops[p->mode], batch_share, batch_share > 1 ? "s" : "");
        if (p->hand_on_products_gflops[p->mode] > 0)
            fprintf(out, ", the hand-on's %.1f (%d at a time)", p->hand_on_products_gflops[p->mode],
                    share < HAND_ON_CHUNK ? share : HAND_ON_CHUNK);
        fprintf(out, "\n");
    }
    if (p->products_gflops > 0 && p->threads > 1 && p->products_threads_busy < 0.9)
        fprintf(out, "  note: the iteration's products keep %.0f%% of a rank's %d threads busy: src/gemm.c cuts each "
                     "product into fixed tiles (results independent of the thread count), too few for this many "
                     "threads; more ranks of fewer threads (mpi.data_parallel) use the cores better\n",
                100 * p->products_threads_busy, p->threads);
    fprintf(out, "estimated time at that speed per rank:\n");
    fprintf(out, "  model check by root (the files hashed for the run's fingerprint, read again and every weight "
                 "checked in fp32, block by block; a resume only hashes): %s\n",
            human_time(p->model_check_seconds, a, sizeof a));
    fprintf(out, "  capture over %d rank%s (forward passes; every rank reads each block and the head into fp32 "
                 "memory): %s\n",
            p->world_size, p->world_size > 1 ? "s" : "", human_time(p->capture_seconds, a, sizeof a));
    if (p->setup_seconds > 0) {
        char c[32];
        fprintf(out, "  per block, in the reconstruction times below: the model's block read %s, setup (scales, "
                     "exponent search; probed) %s, probe passes %s\n",
                human_time(p->block_read_seconds, c, sizeof c), human_time(p->setup_seconds, a, sizeof a),
                human_time(p->probe_seconds[p->mode], b, sizeof b));
    }
    if (p->first_step_seconds > 0)
        fprintf(out, "  per block: fresh memory (the block read, the setup's latents, the first probe pass's w_hat, "
                     "codes and activations, the first step's Adam moments and gradients) faulted in at %.2f GB/s "
                     "(probed page faults, transparent huge pages \"%s\" here; memory freed a moment before, as the "
                     "capture and the model check free a block and read the next, at %.2f GB/s); the first step's, "
                     "with its quantizer forward: %s\n",
                p->page_touch_gbs, nq_huge_pages_setting(),
                p->page_retouch_gbs > 0 ? p->page_retouch_gbs : p->page_touch_gbs,
                human_time(p->first_step_seconds, a, sizeof a));
    if (p->hand_on_seconds[p->mode] > 0)
        fprintf(out, "  per block, in the %s mode's times below: the hand-on of its output to the next block %s\n",
                config_mode_name(p->mode), human_time(p->hand_on_seconds[p->mode], a, sizeof a));
    fprintf(out, "  reconstruction:\n");
    int const L = p->model.n_layers;
    for (int m = 0; m < PLAN_N_MODES; m++) {
        int const G = p->n_groups[m], D = p->data_parallel[m];
        char how[160];
        if (m == MODE_PARALLEL)
            snprintf(how, sizeof how, "%d group%s x %d: %d round%s of block-times", G, G > 1 ? "s" : "", D, (L + G - 1) / G,
                     (L + G - 1) / G > 1 ? "s" : "");
        else if (m == MODE_SEQUENTIAL)
            snprintf(how, sizeof how, "1 group of %d: %d block-times, each at %d-way data parallel", D, L, D);
        else
            snprintf(how, sizeof how, "%d group%s x %d, switch %.2f: %.2f block-times", G, G > 1 ? "s" : "", D, p->switch_fraction,
                     plan_pipelined_block_times(L, G, p->switch_fraction));
        fprintf(out, "  %-10s %-62s block %10s, total %10s%s\n", config_mode_name((ReconMode)m), how,
                human_time(p->block_seconds[m], a, sizeof a), human_time(p->wall_seconds[m], b, sizeof b),
                m == (int)p->mode ? "  <- configured" : "");
    }
    int const D = p->data_parallel[p->mode];
    if (p->allreduce_seconds[p->mode] > 0)
        fprintf(out, "  gradient sum every step over the group's %d ranks (%s, %.1f GB/s per rank assumed): %s\n", D,
                p->ranks_per_node % D == 0 ? "shared memory within a node" : "the network across nodes",
                p->ranks_per_node % D == 0 ? PLAN_SHM_ALLREDUCE_GBS : PLAN_NETWORK_ALLREDUCE_GBS,
                human_time(p->allreduce_seconds[p->mode], a, sizeof a));
    fprintf(out, "  gather: root compresses and writes each done file as its block arrives; waited for: %s\n",
            human_time(p->gather_seconds, a, sizeof a));
    fprintf(out, "  checkpoint: every done file read back and compressed again, with the head: %s\n",
            human_time(p->checkpoint_seconds, a, sizeof a));
    fprintf(out, "  job (%s mode): %s\n", config_mode_name(p->mode),
            human_time(p->model_check_seconds + p->capture_seconds + p->wall_seconds[p->mode] + p->gather_seconds +
                           p->checkpoint_seconds,
                       a, sizeof a));
}

/* A stop: the group leaders of a node write their blocks' states to run.dir at once. */
static void print_stop(const Plan *p, const NupesConfig *cfg, FILE *out) {
    if (p->state_bytes == 0) return;
    int const D = p->data_parallel[p->mode];
    int leaders = (p->ranks_per_node + D - 1) / D;
    if (leaders > p->blocks_in_flight) leaders = p->blocks_in_flight;
    double const seconds = (double)p->state_bytes * leaders / (PLAN_FS_MBS * 1e6);
    char a[32];
    fprintf(out, "stop (preemption, scancel, the time limit's signal): each group leader writes its block's state, "
                 "%.2f GB; %d per node at once: %s at the assumed %.0f MB/s per node, within run.stop_seconds = %g s "
                 "(keep it under SLURM's KillWait, or the partition's GraceTime for preemption, less ~5 s to abandon "
                 "the iteration and exit)\n",
            gb(p->state_bytes), leaders, human_time(seconds, a, sizeof a), PLAN_FS_MBS, cfg->stop_seconds);
    fprintf(out, "  the periodic saves, every run.checkpoint_interval = %g s, are written while the next iteration "
                 "computes\n",
            cfg->checkpoint_interval);
    if (seconds > cfg->stop_seconds)
        fprintf(out, "  note: at that rate a stop gives up its write, keeps the last periodic save and the resume "
                     "does up to run.checkpoint_interval = %g s of steps again (same result, time lost): a lower "
                     "interval loses less\n",
                cfg->checkpoint_interval);
}

/* "1-02:03:00" or "02:03:00", rounded up to the minute. */
static void slurm_time(double seconds, char *buf, size_t size) {
    long const minutes = (long)ceil(seconds / 60.0);
    long const days = minutes / 1440, h = minutes / 60 % 24, m = minutes % 60;
    if (days > 0) snprintf(buf, size, "%ld-%02ld:%02ld:00", days, h, m);
    else snprintf(buf, size, "%02ld:%02ld:00", h, m);
}

static void print_sbatch(const Plan *p, const NupesConfig *cfg, FILE *out) {
    if (!(p->sgemm_gflops > 0)) return;
    char t[32];
    slurm_time(plan_job_seconds(p), t, sizeof t);
    /* --mem is per node: the ranks' peaks + 10% for MPI, the C library and page tables */
    double const mem_gib = (double)p->mem.rank_peak * p->ranks_per_node * 1.10 / (1024.0 * 1024.0 * 1024.0);
    fprintf(out, "suggested (time = estimate x %.2f + the %d s --signal margin; mem = the node's peak + 10%%):\n",
            PLAN_TIME_FACTOR, PLAN_SIGNAL_MARGIN);
    fprintf(out, "  sbatch --nodes=%d --ntasks-per-node=%d --cpus-per-task=%d --mem=%.0fG --time=%s slurm/nupes.sbatch %s\n",
            p->nodes, p->ranks_per_node, p->threads, ceil(mem_gib), t, cfg->source_path);
}

void plan_print(const Plan *p, const NupesConfig *cfg, int64_t free_bytes, FILE *out) {
    const ModelConfig *c = &p->model;
    int const G = p->n_groups[p->mode], D = p->data_parallel[p->mode];
    fprintf(out, "model: %s: d %d, f %d, %d blocks, %d heads (%d kv), vocab %d, seq_len %d, rope %s\n", cfg->model_path,
            c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len,
            c->rope_style == ROPE_HALF ? "half (HF)" : "interleaved");
    fprintf(out, "parameters: %.4g total = %.4g in blocks (%.4g M per block) + %.4g M outside (embeddings%s, final norm)\n",
            (double)p->params_total, (double)p->params_blocks, p->params_block / 1e6, p->params_head / 1e6,
            c->tied_embeddings ? "" : ", classifier");
    char grouping[32] = "per channel";
    if (cfg->group_size) snprintf(grouping, sizeof grouping, "groups of %d", cfg->group_size);
    char grid[48];
    if (cfg->grid == QUANTIZER_POWER)
        snprintf(grid, sizeof grid, "exponent per %s", cfg->exponent_per_channel ? "channel" : "tensor");
    else
        snprintf(grid, sizeof grid, "llama.cpp's %s grid", quantizer_table[cfg->grid]->name);
    fprintf(out, "quantization: %s, %d bits, %s, %s; %s mode, %d iterations of batch %d\n",
            config_method_name(cfg->method), cfg->bits, grouping, grid, config_mode_name(p->mode), p->iterations,
            p->batch);
    double const side = side_bits_per_weight(c, cfg);
    if (p->stored_code_bits < cfg->bits)
        fprintf(out, "bits per quantized weight: ~%.3f = codes ~%.2f (int8, which zstd stores near their entropy: "
                     "probed on heavy-tailed weights) + scales and exponents %.3f (fp16 as stored)\n",
                p->stored_code_bits + side, p->stored_code_bits, side);
    else
        fprintf(out, "bits per quantized weight: at most %.3f = codes %d (int8 stored, zstd brings them near their "
                     "entropy, below %d) + scales and exponents %.3f (fp16 as stored)\n",
                cfg->bits + side, cfg->bits, cfg->bits, side);
    fprintf(out, "cluster: %d node%s x %d rank%s, %d thread%s per rank (OPENBLAS_NUM_THREADS)\n", p->nodes,
            p->nodes > 1 ? "s" : "", p->ranks_per_node, p->ranks_per_node > 1 ? "s" : "", p->threads,
            p->threads > 1 ? "s" : "");
    fprintf(out, "ranks: %d = %d group%s of %d; at most %d block%s per group\n", p->world_size, G, G > 1 ? "s" : "", D,
            p->blocks_per_group, p->blocks_per_group > 1 ? "s" : "");
    print_idle(p, cfg, out);
    print_memory(p, out);
    print_disk(p, cfg, free_bytes, out);
    print_times(p, out);
    print_stop(p, cfg, out);
    print_sbatch(p, cfg, out);
}
