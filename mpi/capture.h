/* Activation capture (docs/design.md 4): rank r runs its shard of the calibration sequences
 * through the fp32 model one block at a time, loading only that block's weights, and
 * writes the input of every block (and the last block's output) into the activations
 * file with collective writes. No rank holds more than one block's weights and its own
 * sequences' activations. */
#ifndef NUPES_CAPTURE_H
#define NUPES_CAPTURE_H

#include "activations.h"
#include "model_file.h"
#include "status.h"

/* Sequences per block_forward call (mpi/plan.c counts its memory). One: a sequence's
 * activations must not depend on how the sequences are sharded over ranks
 * (docs/design.md 4: same codes on 1, 2 or 3 ranks). With
 * chunks of 8 taken from each rank's shard, a shard's tail could be a 1-sequence chunk on
 * one layout and part of a full chunk on another, and OpenBLAS rounds small products
 * (e.g. d 48, T 48, one sequence) differently from large ones: a d 48 model captured with
 * 9 sequences gave other activations, and other scales, on 1 process than on 2 ranks. */
#define CAPTURE_CHUNK 1

/* tokens: [N][T] every calibration sequence (each rank uses its own shard). Collective
 * over MPI_COMM_WORLD. Starts at level levels_done (the levels before it are complete in
 * act: a resumed capture) and marks each level done once it is durable
 * (activations_mark_levels_done), so a stop or a kill loses at most the level being
 * written. A stop signal abandons the level between two sequences (one at 7B width takes
 * tens of seconds, a level minutes); root prints the level's progress every 10 s. Returns
 * NQ_STOPPED (on every rank) when a stop signal arrived. The caller
 * marks the file complete (renames it, io/run_dir.h). */
nq_status capture_run(Model *m, const int *tokens, int N, int T, Activations *act, int levels_done);

/* Called after each chunk with the sequences done of n; non-zero stops the pass there
 * (block_forward_in_place then returns NQ_STOPPED, x partly advanced). */
typedef int (*ChunkDone)(void *ctx, int done, int n);

/* Runs block w over x [n][T][d] in place, `chunk` sequences at a time: a forward-only pass
 * (src/block.h BlockScratch, no buffers for a backward), bit-identical to block_forward.
 * chunk_done may be NULL. */
nq_status block_forward_in_place(const ModelConfig *c, const BlockWeights *w, float *x, int n,
                                 int T, int chunk, ChunkDone chunk_done, void *ctx);

#endif
