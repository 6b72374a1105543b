#include "sequential.h"

#include <limits.h>
#include <stdlib.h>

#include "block_file.h"
#include "capture.h"
#include "mpi_check.h"
#include "run_dir.h"

static nq_status agree_world(nq_status local) {
    int mine = (int)local, worst = 0;
    MPI_CHECK(MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    if (worst != NQ_OK && local == NQ_OK) nq_fail((nq_status)worst, "another rank failed");
    return (nq_status)worst;
}

nq_status propagate_quantized(Job *job, int l, const BlockResult *r) {
    const ModelConfig *c = job->c;
    int first = 0, count = 0;
    layout_shard(job->N, job->layout.world_size, job->layout.world_rank, &first, &count);
    size_t const per_seq = (size_t)job->T * c->dim;
    float *x = nq_calloc((size_t)(count ? count : 1) * per_seq, sizeof(float), "quantized activations");
    int *seqs = nq_calloc((size_t)(count ? count : 1), sizeof(int), "sequence ids");
    float *weights[N_MATS] = {0};
    BlockWeights w = {0}, fp;
    nq_status st = x && seqs ? NQ_OK : NQ_ERR_RUNTIME;
    for (int i = 0; i < N_MATS && st == NQ_OK; i++) {
        weights[i] = nq_calloc((size_t)mat_rows(c, i) * mat_cols(c, i), sizeof(float), "dequantized weights");
        if (!weights[i]) st = NQ_ERR_RUNTIME;
        else quant_matrix_dequantize(&r->mat[i], weights[i]);
        w.mat[i] = weights[i];
    }
    if (st == NQ_OK) st = model_block(job->model, l, &fp);
    if (st == NQ_OK) {
        w.attn_norm = fp.attn_norm;
        w.ffn_norm = fp.ffn_norm;
        for (int i = 0; i < count; i++) seqs[i] = first + i;
        if (count > 0) st = activations_read(job->act, ACT_QINPUTS, l, seqs, count, x);
        if (st == NQ_OK && count > 0) st = block_forward_in_place(c, &w, x, count, job->T, 8);
        model_release_block(job->model, l);
    }
    st = agree_world(st);
    if (st == NQ_OK) st = agree_world(activations_write(job->act, ACT_QINPUTS, l + 1, first, count, x));
    if (st == NQ_OK) st = agree_world(activations_flush(job->act));
    if (st == NQ_OK) st = agree_world(activations_set_qlevels(job->act, l + 2));
    for (int i = 0; i < N_MATS; i++) free(weights[i]);
    free(seqs);
    free(x);
    return st;
}

/* Rebuilds /qinputs up to level l from the done files of the blocks before it. */
static nq_status ensure_qinputs(Job *job, int l) {
    while (activations_qlevels(job->act) <= l) {
        int const k = activations_qlevels(job->act) - 1;
        char path[PATH_MAX];
        run_dir_done_path(job->run_dir, k, path, sizeof path);
        BlockResult r;
        nq_status st = agree_world(block_file_load(path, job->c, &r));
        if (st != NQ_OK) return st;
        st = propagate_quantized(job, k, &r);
        block_result_free(&r);
        if (st != NQ_OK) return st;
    }
    return NQ_OK;
}

static int world_stop(Job *job) {
    int mine = stop_signalled() || job->stop.stop, any = 0;
    MPI_CHECK(MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    return any;
}

nq_status run_sequential(Job *job, const int *pending, int n_pending) {
    int const L = job->c->n_layers;
    nq_status st = NQ_OK;
    for (int i = 0; i < n_pending && st == NQ_OK; i++) {
        int const l = pending[i];
        if (world_stop(job)) {
            st = NQ_STOPPED;
            break;
        }
        st = ensure_qinputs(job, l);
        if (st != NQ_OK) break;
        BlockResult r;
        st = block_run(job, l, ACT_QINPUTS, &r);
        st = agree_world(st);
        if (st == NQ_OK && job->layout.world_rank == 0) st = gather_send_block(&job->gather, &r, 0);
        st = agree_world(st);
        if (st == NQ_OK && l + 1 < L) st = propagate_quantized(job, l, &r);
        block_result_free(&r);
    }
    if (job->layout.world_rank == 0) gather_send_end(&job->gather, 0, st == NQ_STOPPED);
    stop_agreement_finish(&job->stop);
    return st;
}
