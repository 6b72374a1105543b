/* A small seeded random generator (xoshiro256**, seeded through splitmix64) and the
 * per-epoch batch sampler of docs/design.md 3.3.
 *
 * The state is plain data (four uint64), so it can be written to a state file and read
 * back; rng_seed(seed, stream) gives every block (stream = block index) its own
 * independent sequence, the same on every rank and every run. */
#ifndef NUPES_RNG_H
#define NUPES_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed, uint64_t stream);
uint64_t rng_next_u64(Rng *r);
double rng_uniform_double(Rng *r); /* [0, 1), 53 random bits */
float rng_uniform_float(Rng *r);   /* [0, 1), 24 random bits */
uint64_t rng_below(Rng *r, uint64_t n); /* uniform in [0, n), unbiased; 0 when n == 0 */
void rng_shuffle(Rng *r, int *a, int n); /* Fisher-Yates, a uniformly random order */

/* Batches of `batch` indices in [0, n): a permutation of 0..n-1, reshuffled at each epoch
 * start, is read in order; a batch that runs past the end of an epoch takes the rest
 * from the next epoch's permutation, so every index appears exactly once per epoch.
 *
 * What to save: BatchSamplerState (below) is enough: the permutation is rebuilt by
 * shuffling 0..n-1 with epoch_rng, the generator as it was at the epoch start. It also
 * follows from (seed, stream, batches_drawn) alone: batch_sampler_seek replays. */
typedef struct {
    Rng epoch_rng;          /* generator before this epoch's shuffle */
    uint64_t batches_drawn; /* batches handed out since the start */
    int64_t epoch;          /* epochs started (the permutation is epoch's) */
    int64_t position;       /* next index into the permutation, in [0, n] */
} BatchSamplerState;

typedef struct {
    int n, batch;
    uint64_t seed, stream;
    Rng rng;                 /* after this epoch's shuffle */
    BatchSamplerState state;
    int *perm;               /* [n], owned */
} BatchSampler;

/* n >= 1, batch >= 1. NQ_ERR_INPUT for bad sizes, NQ_ERR_RUNTIME when out of memory. */
nq_status batch_sampler_create(BatchSampler *bs, int n, int batch, uint64_t seed,
                               uint64_t stream);
void batch_sampler_free(BatchSampler *bs); /* accepts NULL and a zeroed sampler */

/* out: [batch] the next batch of indices. */
void batch_sampler_next(BatchSampler *bs, int *out);

/* Restores a state saved from a sampler created with the same n and batch. */
nq_status batch_sampler_restore(BatchSampler *bs, const BatchSamplerState *st);

/* Rewinds to the start (seed, stream) and draws batches_drawn batches. */
void batch_sampler_seek(BatchSampler *bs, uint64_t batches_drawn);

#endif
