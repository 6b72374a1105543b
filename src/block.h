/* One LLaMA transformer block, forward and backward (docs/design.md 2).
 *
 *   h1 = rmsnorm(X) * g_att;  Q, K, V = h1 Wq^T, h1 Wk^T, h1 Wv^T;  Q, K = rope(Q), rope(K)
 *   per head h (kv group h / (H/Hkv)): P = softmax(causal(Q_h K_g^T / sqrt(hs))), O_h = P V_g
 *   X1 = X + O Wo^T;  h2 = rmsnorm(X1) * g_ffn;  Y = X1 + (silu(h2 W1^T) * h2 W3^T) W2^T
 *
 * Every matrix product, attention included, goes through gemm() (gemm.h). The backward pass
 * gives gradients for the seven weight matrices only (never for X or the norm gains). */
#ifndef NUPES_BLOCK_H
#define NUPES_BLOCK_H

#include <stddef.h>

#include "model.h"

/* Everything the forward pass keeps for the backward pass, plus scratch, for B sequences
 * of T tokens. Allocated once (one allocation, carved) and reused every iteration. What
 * is cheap to recompute is not kept: the attention probabilities (B H T^2 floats, 2 GB
 * for 7B at B 4, T 2048; the backward recomputes them one head at a time, about 1.4% more
 * FLOPs there) and silu(U) * G (N f floats, one element-wise pass). Nothing is kept
 * twice: dU and dG are written over U and G, and dQ, dK, dV over the feed-forward's
 * buffers once it is done. Per token: (7 d + 2 dkv + 3 f) floats, + 2 T^2. */
typedef struct BlockActs BlockActs;

/* Returns NULL (with nq_fail recorded) when out of memory or the config or B, T are
 * invalid. The RoPE tables for positions 0..T-1 are computed here, once. */
BlockActs *block_acts_create(const ModelConfig *c, int B, int T);
void block_acts_free(BlockActs *acts); /* NULL is fine */
/* Bytes block_acts_create allocates (mpi/plan.c counts the iteration with it). */
size_t block_acts_bytes(const ModelConfig *c, int B, int T);

/* Optional wall-clock split of block_forward + block_backward (for bench/): while set,
 * every call adds its seconds per phase to *t. NULL (the default) switches it off. */
typedef enum {
    BLOCK_PHASE_PROJECTIONS, /* the seven linear layers, forward and backward */
    BLOCK_PHASE_ATTENTION,   /* QK^T, softmax, PV and their backward */
    BLOCK_PHASE_OTHER,       /* rmsnorm, rope, swiglu, residual copies */
    BLOCK_N_PHASES
} BlockPhase;
typedef struct {
    double seconds[BLOCK_N_PHASES];
} BlockTimings;
void block_acts_set_timings(BlockActs *acts, BlockTimings *t);

/* Optional stop check for a pass that takes seconds to minutes (a 7B block): while set,
 * block_forward and block_backward call should_stop(ctx) between their groups of matrix
 * products (about every 1/8 of an iteration), and a non-zero return abandons the pass:
 * it returns at once, its outputs and gradients undefined, and block_acts_abandoned
 * says so until the next pass starts. NULL (the default): never abandoned. */
void block_acts_set_stop(BlockActs *acts, int (*should_stop)(void *ctx), void *ctx);
int block_acts_abandoned(const BlockActs *acts);

/* The B and T the activations were created for. */
int block_acts_batch(const BlockActs *acts);
int block_acts_seq_len(const BlockActs *acts);

/* Token t of each sequence is at position t (RoPE), and attends to tokens 0..t of its own
 * sequence. acts must have been created with the same config shape.
 * x: [B][T][d] block input; y: [B][T][d] block output (may not alias x).
 * Fills acts for one later block_backward (which consumes U and G: a second backward
 * needs a new forward). */
void block_forward(const ModelConfig *c, const BlockWeights *w, const float *x, float *y,
                   BlockActs *acts);

/* A forward pass with no backward after it (capture, hand-on, docs/design.md 4) needs
 * none of BlockActs: BlockScratch holds one [N][d] buffer for h1, then O, then h2; Q, K,
 * V; U and G (Hh = silu(U) * G overwrites U); one head's [T][T] probabilities; the rope
 * tables: (2 d + 2 dkv + 2 f) floats per token + T^2, against BlockActs' (7 d + 2 dkv +
 * 3 f) per token + 2 T^2 (7B, T 2048, one sequence: 0.33 GB instead of 0.61 GB). */
typedef struct BlockScratch BlockScratch;
BlockScratch *block_scratch_create(const ModelConfig *c, int B, int T); /* NULL: see block_acts_create */
void block_scratch_free(BlockScratch *s);                                /* NULL is fine */
/* Bytes block_scratch_create allocates (mpi/plan.c counts the capture with it). */
size_t block_scratch_bytes(const ModelConfig *c, int B, int T);
int block_scratch_batch(const BlockScratch *s);

/* y = the block on x, as block_forward computes it (bit for bit), for the B sequences s
 * was created for. x, y: [B][T][d]; y may be x (in place). */
void block_forward_only(const ModelConfig *c, const BlockWeights *w, const float *x, float *y,
                        BlockScratch *s);

/* dy: [B][T][d] gradient of the loss w.r.t. y of the last block_forward on acts.
 * Writes (overwrites, not accumulates) grads->mat[i] with the same shapes as w->mat[i]. */
void block_backward(const ModelConfig *c, const BlockWeights *w, BlockActs *acts,
                    const float *dy, BlockGrads *grads);

#endif
