#include "capture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "block.h"
#include "layout.h"
#include "mpi_check.h"
#include "stop.h"
#include "test_hold.h"
#include "transformer.h"

/* Sequences per block_forward call. One: a sequence's activations must not depend on how
 * the sequences are sharded over ranks (docs/design.md 4: same codes on 1, 2 or 3 ranks). With
 * chunks of 8 taken from each rank's shard, a shard's tail could be a 1-sequence chunk on
 * one layout and part of a full chunk on another, and OpenBLAS rounds small products
 * (e.g. d 48, T 48, one sequence) differently from large ones: a d 48 model captured with
 * 9 sequences gave other activations, and other scales, on 1 process than on 2 ranks. */
#define CAPTURE_CHUNK 1

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

nq_status block_forward_in_place(const ModelConfig *c, const BlockWeights *w, float *x, int n,
                                 int T, int chunk) {
    size_t const per_seq = (size_t)T * c->dim;
    float *y = nq_calloc((size_t)chunk * per_seq, sizeof(float), "block output chunk");
    BlockActs *acts = NULL;
    int acts_n = 0;
    nq_status st = y ? NQ_OK : NQ_ERR_RUNTIME;
    for (int first = 0; first < n && st == NQ_OK; first += chunk) {
        int const b = n - first < chunk ? n - first : chunk;
        if (b != acts_n) {
            block_acts_free(acts);
            acts = block_acts_create(c, b, T);
            acts_n = b;
            if (!acts) {
                st = NQ_ERR_RUNTIME;
                break;
            }
        }
        float *xb = x + (size_t)first * per_seq;
        block_forward(c, w, xb, y, acts);
        memcpy(xb, y, (size_t)b * per_seq * sizeof(float));
    }
    block_acts_free(acts);
    free(y);
    return st;
}

/* Every rank learns whether any rank failed or was signalled (a failure wins). */
static nq_status agree(nq_status local) {
    nq_status const mine = local != NQ_OK ? local : stop_signalled() ? NQ_STOPPED : NQ_OK;
    nq_status const worst = mpi_worst_status(mine, MPI_COMM_WORLD);
    if (worst != NQ_OK && worst != NQ_STOPPED && local == NQ_OK) nq_fail(worst, "capture failed on another rank");
    return worst;
}

nq_status capture_run(Model *m, const int *tokens, int N, int T, Activations *act) {
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
    if (st == NQ_OK && count > 0) embedding_forward(c, &head, tokens + (size_t)first * T, count, T, x);
    st = agree(st);

    double const start = now_seconds();
    for (int l = 0; l <= c->n_layers && st == NQ_OK; l++) {
        st = activations_write(act, l, first, count, x);
        if (st == NQ_OK && l < c->n_layers && count > 0) {
            BlockWeights w;
            st = model_block(m, l, &w);
            if (st == NQ_OK) st = block_forward_in_place(c, &w, x, count, T, CAPTURE_CHUNK);
            model_release_block(m, l);
        }
        if (l == 1) test_hold("capture-level");
        st = agree(st);
        if (rank == 0 && st == NQ_OK) {
            double const secs = now_seconds() - start;
            printf("capture: level %d/%d written, %.0f tokens/s\n", l + 1, c->n_layers + 1,
                   (double)N * T * (l + 1) / (secs > 0 ? secs : 1e-9));
            fflush(stdout);
        }
    }
    if (st == NQ_OK) st = agree(activations_flush(act));
    if (st == NQ_OK) st = agree(activations_set_complete(act));
    free(x);
    return st;
}
