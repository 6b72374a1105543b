/* The dry-run planner (docs/design.md 7, `--dry-run`): what a quantize job will need and how
 * long it will take, from the model's shape alone (config.json or the llama2.c header; no
 * weights are read, so a 7B job can be planned where only config.json is present).
 *
 * Memory per rank is counted item by item for one block in flight, the way src/recon.c,
 * src/block.c and mpi/block_run.c allocate it; the activation disk space as the run
 * directory will hold it (io/activations.h, io/qlevel_file.h). FLOPs per iteration:
 * 6 * weights * tokens for the seven projections (forward, weight and input gradients)
 * and 14 * B * H * T^2 * hs for attention (QK^T and PV forward; the backward recomputes
 * QK^T and runs four more; the sgemm computes the masked half too). Time: the matrix
 * products at the rate a probe measures for a tile of the job's own product (below),
 * split over a group's data-parallel ranks by their share of the batch; the element-wise
 * work (quantizer forward and gradients, Adam; not split: every rank applies the same
 * step) at what a probe of src/recon.c measures per quantized weight.
 * Each block also has its setup (timed by a probe on a small matrix, per weight), the
 * first touch of the memory its steps allocate (at a probed page-fault rate), two
 * probe passes (a forward over the probe sequences at the products' probed rate) and, in
 * the modes that hand on, a forward of the group's share of every sequence, read from and
 * written to run.dir.
 * A data-parallel group sums its gradients every step (an all-reduce of the block's fp32
 * dL/dw_hat), counted as a ring at an assumed rate: Open MPI's shared memory within a
 * node, the network across nodes. The done files and the checkpoint are timed at the zstd
 * rate of a short probe (root compresses them) plus an assumed file-system rate.
 *
 * A dry run plans for the cluster the user names (PlanCluster: --nodes, --ranks-per-node,
 * --threads), not for the ranks it happens to be launched with. */
#ifndef NUPES_PLAN_H
#define NUPES_PLAN_H

#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "model.h"
#include "status.h"

#define PLAN_N_MODES 3 /* indexed by ReconMode: parallel, sequential, pipelined */
/* The iteration's time comes from two probes of the dry run, not from constants: its
 * matrix products at the rate of one tile (src/gemm.h) of the job's own product shape
 * (rows = the batch share's tokens, inner = d), times the tiles a rank's threads run side
 * by side; its element-wise work (quantizer forward, straight-through gradients, Adam)
 * per quantized weight, timed through src/recon.c on a small block whose arrays are far
 * beyond the caches. bench/block_iteration measures the whole iteration against them. */
#define PLAN_FS_MBS 500.0          /* assumed write rate of run.dir's file system, MB/s */
/* All-reduce rates, GB/s per rank in a ring (each rank sends and receives 2 (D-1)/D of the
 * buffer). Within a node: measured here (bench/allreduce), 2 ranks summing a 7B block's
 * 0.81 GB of gradients through Open MPI's shared memory 4 MB at a time (mpi/group_sum.h)
 * in 0.08-0.14 s, 6-10 GB/s; 5 leaves room for a node whose other ranks compute. Across
 * nodes: assumed, a 25 Gb/s link (100 Gb/s InfiniBand is ~4x faster). */
#define PLAN_SHM_ALLREDUCE_GBS 5.0
#define PLAN_NETWORK_ALLREDUCE_GBS 3.0
#define PLAN_SIGNAL_MARGIN 300     /* nupes.sbatch's --signal=B:USR1@300 */
#define PLAN_TIME_FACTOR 1.25      /* the suggested --time: estimate x this + the margin */

/* The cluster a dry run plans for; 0 = not given (see plan_dry_run_cluster). */
typedef struct {
    int nodes, ranks_per_node, threads;
} PlanCluster;

/* Bytes per rank while one block is reconstructed (and, separately, during capture). The
 * block's setup and its iterations peak apart: the setup holds the model's fp32 block
 * while it builds the latents (mpi/block_run.c releases it before the first step); the
 * first step allocates the activations. */
typedef struct {
    uint64_t weights;          /* fp32 block weights as the model hands them out (setup) */
    uint64_t skipped;          /* recon's fp32 copies of skipped matrices */
    uint64_t latents;          /* z, one float per quantized weight */
    uint64_t exponents_scales; /* scales M0 and M, learned factors s and their moments,
                                  exponents, their double gradients */
    uint64_t adam;             /* Adam m and v of z */
    uint64_t quantized;        /* w_hat (fp32) and codes (int8) */
    uint64_t gradients;        /* dL/dw_hat (Adam forms dz from it in its pass) */
    uint64_t block_acts;       /* what the forward keeps for the backward (BlockActs) */
    uint64_t attention;        /* one head's probabilities [T][T] and their gradient (the
                                  backward recomputes them, src/block.h) */
    uint64_t batch_buffers;    /* x, y of the batch share, quantized output (then its gradient) */
    uint64_t setup_total;      /* the model's block + everything recon keeps, no activations */
    uint64_t total;            /* while iterating: no model block, with the activations */
    uint64_t capture_shard;    /* capture: this rank's sequences [n_local][T][d] */
    uint64_t capture_forward;  /* capture: forward buffers of CAPTURE_CHUNK sequences */
    uint64_t capture_total;
    uint64_t hand_on;          /* pipelined, sequential: after a block, its group forwards its
                                  share of the N sequences through the quantized block (fp32
                                  share, dequantized weights, codes, HAND_ON_CHUNK's scratch) */
    uint64_t head;             /* fp32 embeddings (+ classifier): every rank converts them for
                                  the capture and keeps them until the job ends */
    uint64_t rank_peak;        /* max(setup_total, total, capture_total, hand_on) + head */
} PlanMemory;

typedef struct {
    ModelConfig model;
    ReconMode mode;          /* the configured one */
    int world_size;          /* R = nodes x ranks_per_node */
    int nodes, ranks_per_node, threads; /* threads: OpenBLAS threads per rank */
    int cluster_named;       /* 1: from --nodes/--ranks-per-node, 0: the launch's size */
    int n_groups[PLAN_N_MODES], data_parallel[PLAN_N_MODES]; /* G, D of each mode */
    int blocks_per_group;    /* the configured mode's most blocks on one group */
    int n_sequences, T, batch, iterations; /* N, T, B; iterations 0 for rtn/powerquant */
    double switch_fraction;
    uint64_t params_block, params_blocks, params_head, params_total;
    PlanMemory mem;          /* the configured mode's layout */
    uint64_t inputs_bytes;   /* activations.h5 /inputs [L+1][N][T][d] (activation_dtype) */
    uint64_t qinputs_bytes;  /* qinputs/level-*.h5, levels 1..L-1 (sequential, pipelined) */
    uint64_t activation_bytes; /* what the configured mode writes to run.dir */
    uint64_t state_bytes;    /* state/block-NNNN.h5 of one block (z, Adam m, v, scales) */
    int blocks_in_flight;    /* state files at once: one per busy group */
    uint64_t done_bytes;     /* done/block-NNNN.h5 of one block, ~ (zstd codes + scales) */
    uint64_t done_raw_bytes; /* the same with one byte per code, as root compresses it */
    uint64_t done_raw_fp32_bytes; /* the skipped matrices' share of done_raw_bytes */
    char source_dtype[16];   /* the model's torch_dtype: "float32" | "float16" | "bfloat16" */
    double stored_code_bits;  /* bits zstd stores per int8 code (bits until probed: set it
                                 before plan_set_fp32_storage) */
    double fp32_stored_bytes; /* zstd's bytes per fp32 copy of a source weight (4 for fp32;
                                 16-bit sources leave zero low bits: about 2) */
    double fp32_zstd_mbs;    /* root's rate storing those, MB/s (0: the codes' rate) */
    double codes_read_mbs;   /* root's rate reading codes back, MB/s (plan_codes_store_probe_mbs;
                                0: not counted); set before plan_set_speed */
    uint64_t checkpoint_bytes; /* ~ every block's done file + the fp32 head */
    int idle_ranks;          /* ranks of the configured layout with no work */
    int useful_ranks;        /* at most L x batch ranks do work (parallel, pipelined) */
    int suggest_data_parallel; /* a D that puts the idle ranks to work, 0 = none */
    uint64_t quantized_weights_per_block; /* skipped matrices excluded */
    double flops_projections, flops_attention; /* per iteration over the whole batch */
    double flops_block, flops_blocks, flops_capture;
    /* Probed by the dry run before plan_set_speed (0: not probed; the products then run
     * at the sgemm rate and the element-wise work is not counted): */
    double products_gflops;         /* one rank's rate on the iteration's products */
    double products_threads_busy;   /* the share of the rank's threads they keep busy */
    double mode_products_gflops[PLAN_N_MODES]; /* the same for each mode's batch share (a
                                      sequential rank's share is smaller: fewer tiles) */
    double capture_products_gflops; /* the same at the capture's rows (CAPTURE_CHUNK x T) */
    double probe_products_gflops[PLAN_N_MODES]; /* forward-only, at the rows a probe pass
                                      multiplies (the mode's batch share x T) */
    double hand_on_products_gflops[PLAN_N_MODES]; /* forward-only, at a hand-on's rows
                                      (min(HAND_ON_CHUNK, the group rank's share) x T) */
    double elementwise_seconds_per_weight; /* quantizer passes and Adam, one rank, one step */
    double quantize_seconds_per_weight;    /* the quantizer's forward (w_hat, codes) alone: the
                                              first probe pass and the first step run it once
                                              each (recon_apply quantizes for the others) */
    /* Filled by plan_set_speed (0 until then): */
    double sgemm_gflops, memory_gbs, zstd_mbs;
    double capture_seconds, gather_seconds, checkpoint_seconds;
    /* Root, at every start of a new run: the model hashed (its files read once) and every
     * weight checked, block by block in fresh fp32 memory (mpi/job.c); a resume of the run
     * hashes only */
    double model_check_seconds;
    /* A block's setup (scales, the data-free exponent search, latents) per quantized weight
     * on one rank's threads, from plan_setup_probe (0: not probed, not counted); set
     * before plan_set_speed. */
    double setup_seconds_per_weight;
    double page_touch_gbs;               /* plan_page_touch_probe_gbs (0: not counted); set
                                            before plan_set_speed */
    double page_retouch_gbs;             /* its *recycled_gbs: memory this process freed a
                                            moment ago, faulted in again (0: at page_touch_gbs) */
    double model_read_mbs;               /* plan_model_read_probe_mbs: one rank reading the
                                            model's files (0: not probed; PLAN_FS_MBS assumed,
                                            shared by a node's ranks) */
    char model_read_file[256];           /* the file it read (for the plan's line) */
    double first_step_seconds;           /* a block's first step: its fresh memory touched */
    double block_read_seconds;           /* a block read from the model, converted to fp32 in
                                            fresh memory (the capture's, each setup's) */
    double setup_seconds;                /* one block's setup on one rank */
    double probe_seconds[PLAN_N_MODES];  /* one block's two probe passes (loss before and after) */
    double hand_on_seconds[PLAN_N_MODES]; /* one block's hand-on (0 in parallel mode) */
    double allreduce_seconds[PLAN_N_MODES]; /* one step's gradient sum in that mode's group */
    double block_seconds[PLAN_N_MODES]; /* one block on one group of that mode, with both */
    double wall_seconds[PLAN_N_MODES];  /* capture excluded */
} Plan;

/* Pure computation. n_sequences: N calibration sequences of T tokens. Errors (NQ_ERR_INPUT):
 * mpi.data_parallel not dividing world_size, T beyond the model's seq_len. */
nq_status plan_compute(const ModelConfig *c, const NupesConfig *cfg, int world_size, int n_sequences,
                       int T, Plan *out);

/* The disk figures of fp32 arrays (skipped matrices, the head) from what zstd makes of the
 * source's weights: bytes_per_weight and zstd_mbs from plan_fp32_zstd_probe (plan_compute
 * sets "float32", 4 bytes, the codes' rate). Call before plan_set_speed. */
void plan_set_fp32_storage(Plan *p, const NupesConfig *cfg, const char *source_dtype, double bytes_per_weight,
                           double zstd_mbs);

/* Threads per rank (the cluster's --threads): the memory that depends on them (one
 * attention [T][T] pair per thread) is counted again. */
void plan_set_threads(Plan *p, const NupesConfig *cfg, int threads);

/* Time estimates from measured speeds (per rank): sgemm GFLOP/s, memory GB/s, and root's
 * rate storing codes in MB/s (plan_codes_store_probe_mbs) for the done files and the
 * checkpoint. */
void plan_set_speed(Plan *p, double sgemm_gflops, double memory_gbs, double zstd_mbs);

/* Seconds the suggested --time asks for: (capture + the configured mode's reconstruction +
 * the last round's done files + the checkpoint) x PLAN_TIME_FACTOR + PLAN_SIGNAL_MARGIN. */
double plan_job_seconds(const Plan *p);

/* Wall time of L blocks in pipelined mode on G groups, one block-time each: block l starts
 * (1 - f) block-times after block l - 1 and not before its group (l mod G) is free. */
double plan_pipelined_block_times(int L, int G, double f);

/* The weights the dry run's probes time (bench/search too): heavy-tailed, as LLaMA's rows
 * look to a quantizer, a Laplace draw of sd ~0.03 times a rare (1 in 1024) outlier factor
 * of 20; deterministic for a seed. */
void plan_probe_weights(float *w, size_t n, uint32_t seed);

/* The measured sgemm rate of this process (square 1024 products for `seconds`, the fastest
 * call: the peak the products probes below are compared with; those keep their median
 * call, as the job meets its neighbours). */
double plan_sgemm_probe_gflops(double seconds);
/* The measured memory bandwidth (triad over 3 x 32 MB arrays for `seconds`), GB/s. */
double plan_memory_probe_gbs(double seconds);
/* The rate at which this process gets fresh memory (64 MB chunks allocated as the job's
 * arrays are, a byte written per page, all held; over `seconds`), GB/s: the kernel's page
 * faults and zeroing. Measured on this project's test machine, a VM: 0.5-0.7 GB/s. A
 * block's first step touches the activations, Adam's moments and the gradients for the
 * first time; at 7B width it took ~6 s more than the next ones, ~1.3 s of it at this rate.
 * *recycled_gbs (may be NULL): the same chunks freed and at once allocated and touched
 * again, as the capture and the model check free a block and read the next one: on that
 * VM 5-15 GB/s (the host still backs the pages), on bare metal about the fresh rate. */
double plan_page_touch_probe_gbs(double seconds, double *recycled_gbs);
/* The rate at which one process reads the model's files the way the job does (mapped,
 * every page touched, io/safetensors.c), MB/s: up to 256 MB or `seconds` of the largest
 * file at model_path (a file, or a directory's largest *.safetensors), as this node holds
 * it now (a model in its page cache reads at GB/s, one on the file system at that file
 * system's rate). 0 when there is no such file. *file: its path, for the plan's line. */
double plan_model_read_probe_mbs(const char *model_path, double seconds, char *file, size_t file_size);
/* The rate at which 8 MB of int8 codes like a checkpoint's are stored at zstd `level`
 * through the files' own path (io/h5util.h h5u_write: zstd chunks, checksum, HDF5's
 * copies) into an in-memory file, MB/s of codes; *read_mbs: the rate at which they are
 * read back (decompressed, checksum verified), as the checkpoint re-reads a done file. */
double plan_codes_store_probe_mbs(int level, double seconds, double *read_mbs);
/* Bytes per weight stored at zstd `level` for fp32 copies of source_dtype ("float32",
 * "float16", "bfloat16") weights, on 16 MB of Gaussian weights rounded to that type and
 * written the same way; *mbs: the rate, MB/s of fp32 input. */
double plan_fp32_store_probe(const char *source_dtype, int level, double seconds, double *mbs);
/* GFLOP/s of one thread on one gemm tile: out [rows][cols] = in [rows][inner] w^T, as
 * linear_forward multiplies (src/gemm.c runs each tile on one thread); the median of at
 * least 3 calls after a warm-up. */
double plan_products_probe_gflops(int rows, int cols, int inner, double seconds);
/* GFLOP/s of one rank of `threads` threads on an iteration's matrix products (forward_only:
 * the capture's) for B sequences of T tokens, as src/gemm.c runs each: its fixed tiles
 * shared out in rounds, one thread per tile. A tile of the projections and one of the
 * attention are probed; every product is counted by its tiles and rounds. Fixed tiles
 * keep results independent of the thread count, and cap the threads a product can use:
 * at 7B, B 4 x T 2048, a d x d weight gradient has 8 tiles. The attention runs its
 * (sequence, head) pairs side by side instead, one thread each. Each tile shape is probed
 * once per process (0.5 s), then reused. */
double plan_rank_products_gflops(const ModelConfig *c, int B, int T, int threads, int forward_only,
                                 double *threads_busy); /* the share of thread time that runs tiles */
/* Seconds per quantized weight of an iteration's element-wise work (quantizer forward,
 * straight-through gradients, Adam) with cfg's quantizer, on this process's threads:
 * src/recon.c's own passes timed on a 3.4 M-weight block (d 512, f 1536), the median
 * iteration after the first. 0 when cfg learns nothing (RTN, PowerQuant). */
double plan_elementwise_probe_seconds_per_weight(const NupesConfig *cfg, double seconds);
/* Seconds per weight of a block's setup with cfg's quantizer and method on this process's
 * threads (parallel_threads), timed on a 256 x 4096 matrix of heavy-tailed weights (the
 * median of at least 3 passes). At 7B
 * width the setup took a minute per block on one thread before the search's AVX2 loop,
 * ~15 s with it, and the plan must not leave it out. *code_bits
 * (left alone on failure): bits per code that zstd at cfg's level stores for the codes
 * of that start (int8 codes of a 4-bit quantizer store near their entropy, ~3 bits).
 * *quantize_seconds_per_weight: the quantizer's forward from that start (0 on failure). */
double plan_setup_probe_seconds_per_weight(const NupesConfig *cfg, double seconds, double *code_bits,
                                           double *quantize_seconds_per_weight);

/* Prints the plan (and, with free_bytes >= 0, the run.dir space check). */
void plan_print(const Plan *p, const NupesConfig *cfg, int64_t free_bytes, FILE *out);

/* Free bytes (for an unprivileged user) on the file system of dir or of its nearest
 * existing parent. */
nq_status plan_free_bytes(const char *dir, uint64_t *free_bytes);

/* NQ_ERR_INPUT unless the file system of run_dir has `bytes` free:
 * "run.dir /x: the activations need 141.2 GB, the file system has 80.1 GB free". */
nq_status plan_check_disk(const char *run_dir, uint64_t bytes);

/* For the start of a real job (root): the activations this run still has to write (the
 * mode's total minus what activations.h5 already occupies) against the free space. */
nq_status plan_check_run_dir_space(const char *run_dir, const ModelConfig *c, ReconMode mode, ActDtype dtype, int N,
                                   int T);

/* --dry-run: reads only the model's config (model_read_config; when the model is not
 * there, the config's [model.shape]; when both are, they must agree), counts the
 * calibration sequences (calibration.tokens' shape; else the text tokenized when the
 * tokenizer is there, else estimated from the file size at ~4 bytes per token;
 * calibration.sequences caps them), probes this machine's speed, and prints the plan for
 * the named cluster: cluster->nodes x cluster->ranks_per_node ranks (either one alone:
 * the other is 1), each with cluster->threads OpenBLAS threads (0: $OPENBLAS_NUM_THREADS,
 * else 1). Without nodes or ranks per node it plans for world_size ranks on one node,
 * and says how to name a cluster. Every rank of a launch calls it, out NULL but on root:
 * the probes then run on all of them at once, as the job's ranks load a node (two ranks
 * of this project's 2-core machine set each other's setup from 1.37 to 1.0-1.3 M weights/s). */
nq_status plan_dry_run_cluster(const NupesConfig *cfg, int world_size, const PlanCluster *cluster, FILE *out);

/* The model's shape from the config's [model.shape] (NQ_ERR_INPUT naming the missing or
 * inconsistent key). */
nq_status plan_shape_config(const NupesConfig *cfg, ModelConfig *c);

#endif
