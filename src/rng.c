/* xoshiro256** (Blackman and Vigna), seeded with splitmix64; the batch sampler. */
#include "rng.h"

#include <stdlib.h>
#include <string.h>

static uint64_t splitmix64_next(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* The stream is mixed into the splitmix seed through its own splitmix output, so that
 * neighbouring (seed, stream) pairs start far apart. */
void rng_seed(Rng *r, uint64_t seed, uint64_t stream) {
    uint64_t st = stream ^ 0x6a09e667f3bcc909ull;
    uint64_t x = seed ^ splitmix64_next(&st);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64_next(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1; /* the all-zero trap */
}

uint64_t rng_next_u64(Rng *r) {
    uint64_t *s = r->s;
    uint64_t const result = rotl64(s[1] * 5, 7) * 9;
    uint64_t const t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

double rng_uniform_double(Rng *r) { return (double)(rng_next_u64(r) >> 11) * 0x1.0p-53; }

float rng_uniform_float(Rng *r) { return (float)(rng_next_u64(r) >> 40) * 0x1.0p-24f; }

/* Rejection of the lowest (2^64 mod n) values leaves a multiple of n outcomes. */
uint64_t rng_below(Rng *r, uint64_t n) {
    if (n == 0) return 0;
    uint64_t const reject_below = (0 - n) % n;
    for (;;) {
        uint64_t const x = rng_next_u64(r);
        if (x >= reject_below) return x % n;
    }
}

void rng_shuffle(Rng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int const j = (int)rng_below(r, (uint64_t)i + 1);
        int const t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

// ----------------------------------------------------------------------------- sampler

/* Starts the epoch held in bs->state: rebuild the permutation from epoch_rng. */
static void sampler_shuffle_epoch(BatchSampler *bs) {
    for (int i = 0; i < bs->n; i++) bs->perm[i] = i;
    bs->rng = bs->state.epoch_rng;
    rng_shuffle(&bs->rng, bs->perm, bs->n);
}

static void sampler_rewind(BatchSampler *bs) {
    memset(&bs->state, 0, sizeof bs->state);
    rng_seed(&bs->state.epoch_rng, bs->seed, bs->stream);
    sampler_shuffle_epoch(bs);
}

nq_status batch_sampler_create(BatchSampler *bs, int n, int batch, uint64_t seed,
                               uint64_t stream) {
    memset(bs, 0, sizeof *bs);
    if (n < 1 || batch < 1)
        return nq_fail(NQ_ERR_INPUT, "batch sampler: n = %d, batch = %d, expected both >= 1",
                       n, batch);
    bs->perm = nq_calloc((size_t)n, sizeof *bs->perm, "batch sampler permutation");
    if (!bs->perm) return NQ_ERR_RUNTIME;
    bs->n = n;
    bs->batch = batch;
    bs->seed = seed;
    bs->stream = stream;
    sampler_rewind(bs);
    return NQ_OK;
}

void batch_sampler_free(BatchSampler *bs) {
    if (!bs) return;
    free(bs->perm);
    memset(bs, 0, sizeof *bs);
}

/* The next index of the stream, starting a new epoch (whose shuffle continues the
 * generator) when the permutation is used up. */
static int sampler_take(BatchSampler *bs) {
    if (bs->state.position == bs->n) {
        bs->state.epoch_rng = bs->rng;
        bs->state.epoch++;
        bs->state.position = 0;
        sampler_shuffle_epoch(bs);
    }
    return bs->perm[bs->state.position++];
}

void batch_sampler_next(BatchSampler *bs, int *out) {
    for (int i = 0; i < bs->batch; i++) out[i] = sampler_take(bs);
    bs->state.batches_drawn++;
}

nq_status batch_sampler_restore(BatchSampler *bs, const BatchSamplerState *st) {
    if (st->position < 0 || st->position > bs->n || st->epoch < 0)
        return nq_fail(NQ_ERR_INPUT,
                       "batch sampler state: position = %lld, epoch = %lld, expected "
                       "position in [0, %d] and epoch >= 0",
                       (long long)st->position, (long long)st->epoch, bs->n);
    bs->state = *st;
    sampler_shuffle_epoch(bs);
    return NQ_OK;
}

void batch_sampler_seek(BatchSampler *bs, uint64_t batches_drawn) {
    sampler_rewind(bs);
    for (uint64_t b = 0; b < batches_drawn; b++) {
        for (int i = 0; i < bs->batch; i++) (void)sampler_take(bs);
        bs->state.batches_drawn++;
    }
}
