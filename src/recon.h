/* Block reconstruction (docs/design.md 3.3) for one block, driven one iteration at a time so
 * that the caller (mpi/) can sum gradients across data-parallel ranks, check for a stop
 * signal between iterations, and save or restore the optimiser state.
 *
 * One iteration on a rank:
 *     recon_batch_indices(r, idx)                 global sequence ids of this step's batch
 *     recon_accumulate_gradient(r, x, y, b, ...)  forward + backward on this rank's share
 *     [MPI_Allreduce of recon_grad_floats / recon_grad_doubles over the group]
 *     recon_apply(r)                              Adam step, clamps, step + 1
 *
 * Learned per matrix: the latent z = w / M (one per weight), the exponent a (per tensor or
 * per row) and, with learn_scale, a factor s per group (M = M0 * s, s starts at 1): the
 * scale is learned relative to its start so one learning rate suits every group size. */
#ifndef NUPES_RECON_H
#define NUPES_RECON_H

#include <stddef.h>
#include <stdint.h>

#include "block.h"
#include "model.h"
#include "quant.h"
#include "quantizer.h"
#include "result.h"

typedef enum { RECON_RTN, RECON_POWERQUANT, RECON_NUPES } ReconMethod;

typedef struct {
    ReconMethod method;   /* RTN: a = 1; POWERQUANT: searched a; NUPES: searched a, then learned */
    QuantSpec spec;
    int learn_scale;
    unsigned skip_mask;   /* bit i: matrix i stays fp32 */
    int iterations;
    int batch;            /* sequences per iteration, over all ranks of the group */
    float lr_weights;     /* Adam learning rates, cosine-decayed to 0 over iterations */
    float lr_exponent;
    float lr_scale;
    uint64_t seed;
    /* Optional, for recon_create's setup (scales, exponent search, latents: minutes per
     * block at 7B width): called after each matrix with the weights done so far; a
     * non-zero return abandons the setup (recon_create returns NULL and records no
     * error). NULL: no calls. */
    int (*setup_progress)(void *ctx, int matrix, size_t weights_done, size_t weights_total);
    void *setup_ctx;
    /* 1: the caller restores every array of recon_state_arrays before the first step (a
     * resume), so the exponent search and the latents' start are skipped (their values
     * would be overwritten); only the start scales are computed. */
    int restoring;
    /* 1: start from RTN's scales and exponent (no exponent search) even when learning: for
     * the plan's probe of an iteration (mpi/plan_probe.c), which times the steps, not
     * their result. */
    int fixed_start;
    /* Optional: checked inside recon_accumulate_gradient between groups of matrix
     * products (an iteration takes seconds to minutes at 7B width); a non-zero return
     * abandons the iteration (recon_iteration_abandoned). NULL: never abandoned. */
    int (*should_stop)(void *ctx);
    void *stop_ctx;
} ReconParams;

typedef struct Recon Recon;

/* Starts block `block` from its fp32 weights (copied; fp may be released afterwards):
 * scales, exponent search (PowerQuant/NUPES) and latents. n_sequences: calibration set
 * size N; T: tokens per sequence; max_rows_local: the most sequences this rank passes to
 * one call. Returns NULL with nq_fail recorded on failure. */
Recon *recon_create(const ModelConfig *c, const BlockWeights *fp, const ReconParams *p,
                    int block, int n_sequences, int T, int max_local_sequences);
void recon_free(Recon *r);

int recon_step(const Recon *r);     /* iterations applied so far */
int recon_finished(const Recon *r); /* step == iterations (always 1 for RTN / PowerQuant) */

/* idx [batch]: the sequences of the next iteration. Depends only on (seed, block, step):
 * each epoch visits every sequence once in an order shuffled for that epoch. */
void recon_batch_indices(Recon *r, int *idx);

/* x, y: [b][T][d] this rank's share of the batch (input and fp32 target). total_sequences:
 * the batch size over all ranks, so that summed gradients are those of the mean loss.
 * Overwrites the gradient buffers; returns this share's sum of squared errors. */
double recon_accumulate_gradient(Recon *r, const float *x, const float *y, int b,
                                 int total_sequences);

/* 1 when the last recon_accumulate_gradient was abandoned by ReconParams.should_stop: its
 * gradients and sum are undefined and must not be applied. Nothing learned has changed
 * (latents, exponents, scales and Adam moments are only written by recon_apply), so the
 * state saved at this step resumes as if the iteration had never started. */
int recon_iteration_abandoned(const Recon *r);

/* The gradient buffers, contiguous, for an in-place MPI_Allreduce (SUM): floats are
 * dL/dw_hat of every quantized matrix (recon_apply scales them by the group scales into
 * the latents' gradient), doubles the exponent and scale gradients. */
float *recon_grad_floats(Recon *r, size_t *count);
double *recon_grad_doubles(Recon *r, size_t *count);

/* Adam step on the gradients, clamp z to [-1, 1], a to [0.2, 1.5], s to > 0; step + 1. */
void recon_apply(Recon *r);

/* Sum of squared errors of the current quantization on x, y [b][T][d] (no gradient),
 * forwarded `chunk` sequences at a time: the activations kept are those of `chunk`
 * sequences, as a step's (at 7B width, T 2048, 8 probe sequences at once needed 2.3 GB
 * more than a batch of 4). The squares are summed in sequence order whatever the chunk;
 * the forward of a sequence depends on chunk only through sgemm's rounding of products with
 * fewer rows (none where a product is one tile; 4.4e-9 relative measured in
 * tests/test_recon_fused.c where it is not). Once
 * recon_finished, the quantization is the stored one (recon_result's values: fp16 scales
 * and exponents). NAN on failure (nq_fail recorded). should_stop (NULL: never) is called
 * between the forward's groups of matrix products; when it returns non-zero the pass is
 * abandoned: 0 is returned and *abandoned set (the probe of a 7B block on a loaded rank
 * outlasts SLURM's KillWait). Nothing learned is read or written by it. */
double recon_eval_sse(Recon *r, const float *x, const float *y, int b, int chunk, int (*should_stop)(void *ctx),
                      void *stop_ctx, int *abandoned);

/* The current quantization (codes, scales M0 * s, exponents) encoded by the quantizer
 * into out's stored arrays, allocated by the caller with block_result_alloc. NQ_ERR_INPUT
 * when a value has no stored form (a scale beyond fp16's range), naming block and matrix. */
nq_status recon_result(Recon *r, BlockResult *out);

/* The optimiser state as named arrays, for saving and restoring: views into r (write into
 * them to restore, then call recon_set_step). The list is fixed for a given config. */
typedef struct {
    char name[32];
    void *data;
    size_t count;
    int is_double; /* 0: float32 */
} ReconArray;
int recon_state_arrays(Recon *r, ReconArray *arrays, int max_arrays); /* returns the count */
void recon_set_step(Recon *r, int step);

/* Optional wall-clock split of recon_accumulate_gradient and recon_apply (for bench/):
 * while set, every call adds its seconds per phase to *t. NULL (the default): off. */
typedef enum {
    RECON_PHASE_QUANTIZE,       /* codes and w_hat from the latents */
    RECON_PHASE_LOSS,           /* the squared error and dL/dy */
    RECON_PHASE_QUANT_BACKWARD, /* straight-through gradients dz, da, ds */
    RECON_PHASE_ADAM,           /* recon_apply */
    RECON_N_PHASES
} ReconPhase;
typedef struct {
    BlockTimings block; /* projections, attention, norms/rope/swiglu inside the block */
    double seconds[RECON_N_PHASES];
} ReconTimings;
void recon_set_timings(Recon *r, ReconTimings *t);

#endif
