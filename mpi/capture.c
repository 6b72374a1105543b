#include "capture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "clock.h"
#include "layout.h"
#include "mpi_check.h"
#include "stop.h"
#include "test_hold.h"
#include "transformer.h"

nq_status block_forward_in_place(const ModelConfig *c, const BlockWeights *w, float *x, int n,
                                 int T, int chunk, ChunkDone chunk_done, void *ctx) {
    size_t const per_seq = (size_t)T * c->dim;
    BlockScratch *scratch = NULL;
    nq_status st = NQ_OK;
    for (int first = 0; first < n && st == NQ_OK; first += chunk) {
        int const b = n - first < chunk ? n - first : chunk;
        if (!scratch || block_scratch_batch(scratch) != b) {
            block_scratch_free(scratch);
            scratch = block_scratch_create(c, b, T);
            if (!scratch) st = NQ_ERR_RUNTIME;
        }
        float *xb = x + (size_t)first * per_seq;
        if (st == NQ_OK) block_forward_only(c, w, xb, xb, scratch);
        if (st == NQ_OK && chunk_done && chunk_done(ctx, first + b, n)) st = NQ_STOPPED;
    }
    block_scratch_free(scratch);
    return st;
}

/* Every rank learns whether any rank failed or was signalled (a failure wins). */
static nq_status agree(nq_status local) {
    nq_status const mine = local != NQ_OK ? local : stop_signalled() ? NQ_STOPPED : NQ_OK;
    nq_status const worst = mpi_worst_status(mine, MPI_COMM_WORLD);
    if (worst != NQ_OK && worst != NQ_STOPPED && local == NQ_OK) nq_fail(worst, "capture failed on another rank");
    return worst;
}

/* x = the output of block k - 1 for this rank's sequences: level k - 1 read back (raw
 * fp32, the very values written) through block k - 1, as an uninterrupted capture has it. */
static nq_status resume_level(Model *m, Activations *act, int k, int first, int count, int T, float *x) {
    if (count == 0) return NQ_OK;
    int *seqs = nq_calloc((size_t)count, sizeof(int), "sequence ids");
    if (!seqs) return NQ_ERR_RUNTIME;
    for (int i = 0; i < count; i++) seqs[i] = first + i;
    nq_status st = activations_read(act, k - 1, seqs, count, x);
    free(seqs);
    BlockWeights w;
    if (st == NQ_OK) st = model_block(m, k - 1, &w);
    if (st == NQ_OK) st = block_forward_in_place(model_config(m), &w, x, count, T, CAPTURE_CHUNK, NULL, NULL);
    model_release_block(m, k - 1);
    return st;
}

#define CAPTURE_PROGRESS_SECONDS 10.0

/* Within a level: a stop signal ends it between sequences; root reports its own shard's
 * progress (every rank has a shard of the same size, to one sequence). */
typedef struct {
    int rank, level, levels, T;
    double level_start, last_print;
} CaptureProgress;

static int capture_chunk_done(void *ctx, int done, int n) {
    CaptureProgress *p = ctx;
    test_hold("capture-sequence:%d:%d", p->level, done);
    if (stop_signalled()) return 1;
    double const now = nq_seconds();
    if (p->rank == 0 && done < n && now - p->last_print >= CAPTURE_PROGRESS_SECONDS) {
        double const rate = (double)done / (now - p->level_start); /* sequences/s */
        printf("capture: level %d/%d, %d/%d sequences on rank 0, %.0f tokens/s per rank, ETA %.0f s for the level\n",
               p->level + 1, p->levels, done, n, rate * p->T, (double)(n - done) / rate);
        fflush(stdout);
        p->last_print = now;
    }
    return 0;
}

nq_status capture_run(Model *m, const int *tokens, int N, int T, Activations *act, int levels_done) {
    const ModelConfig *c = model_config(m);
    int rank = 0, size = 1;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    int first = 0, count = 0;
    layout_shard(N, size, rank, &first, &count);

    size_t const per_seq = (size_t)T * c->dim;
    float *x = nq_calloc((size_t)(count ? count : 1) * per_seq, sizeof(float), "captured activations");
    nq_status st = x ? NQ_OK : NQ_ERR_RUNTIME;
    HeadWeights head;
    if (st == NQ_OK) st = model_head(m, &head);
    int const k = levels_done > 0 && levels_done <= c->n_layers ? levels_done : 0;
    if (st == NQ_OK && k == 0 && count > 0) embedding_forward(c, &head, tokens + (size_t)first * T, count, T, x);
    if (st == NQ_OK && k > 0) st = resume_level(m, act, k, first, count, T, x);
    st = agree(st);
    if (rank == 0 && st == NQ_OK && k > 0) {
        printf("capture: levels 0..%d complete, resuming at level %d\n", k - 1, k);
        fflush(stdout);
    }

    double const start = nq_seconds();
    for (int l = k; l <= c->n_layers && st == NQ_OK; l++) {
        double const level_start = nq_seconds();
        st = activations_write(act, l, first, count, x);
        if (st == NQ_OK && l < c->n_layers && count > 0) {
            BlockWeights w;
            st = model_block(m, l, &w);
            double const t = nq_seconds();
            CaptureProgress progress = {rank, l + 1, c->n_layers + 1, T, t, t};
            if (st == NQ_OK)
                st = block_forward_in_place(c, &w, x, count, T, CAPTURE_CHUNK, capture_chunk_done, &progress);
            model_release_block(m, l);
        }
        if (l == 1) test_hold("capture-level");
        st = agree(st);
        if (st == NQ_OK) st = agree(activations_mark_levels_done(act, l + 1));
        if (rank == 0 && st == NQ_OK) {
            /* The ETA from this level alone: the first also read the head, and its block
             * faulted fresh memory in where the later ones reuse the pages the block before
             * freed (mpi/plan.c). */
            double const now = nq_seconds(), secs = now - start;
            printf("capture: level %d/%d written, %.0f tokens/s, ETA %.0f s\n", l + 1, c->n_layers + 1,
                   (double)N * T * (l + 1 - k) / (secs > 0 ? secs : 1e-9),
                   (double)(c->n_layers - l - 1 > 0 ? c->n_layers - l - 1 : 0) * (now - level_start));
            fflush(stdout);
        }
    }
    if (st == NQ_OK) st = agree(activations_set_complete(act));
    if (st == NQ_OK) st = agree(activations_flush(act));
    free(x);
    return st;
}
