#include "schedule.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "block_file.h"
#include "block_run.h"
#include "capture.h"
#include "mpi_check.h"
#include "qlevel_file.h"
#include "run_dir.h"

static int hands_on(const Job *job) { return job->cfg->mode != MODE_PARALLEL; }

#define HAND_ON_PROGRESS_SECONDS 10.0

/* The group's rank 0 reports its own share's progress (every rank of the group has a
 * share of the same size, to one sequence): at 7B width a hand-on takes minutes. */
typedef struct {
    int block, print, T;
    double start, last_print;
} HandOnProgress;

static int hand_on_chunk_done(void *ctx, int done, int n) {
    HandOnProgress *p = ctx;
    double const now = job_now();
    if (p->print && done < n && now - p->last_print >= HAND_ON_PROGRESS_SECONDS) {
        double const rate = (double)done / (now - p->start); /* sequences/s */
        printf("block %d: hand-on %d/%d sequences on this rank, %.0f tokens/s, ETA %.0f s\n", p->block, done, n,
               rate * p->T, (double)(n - done) / rate);
        fflush(stdout);
        p->last_print = now;
    }
    return 0;
}

/* Collective over comm (one group, or every rank on a repair): the input of block l + 1
 * through quantized block l, each rank of comm computing its share of the sequences. */
static nq_status hand_on(Job *job, int l, const BlockResult *r, MPI_Comm comm) {
    const ModelConfig *c = job->c;
    int rank = 0, size = 1;
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    MPI_CHECK(MPI_Comm_size(comm, &size));
    HandOnProgress progress = {.block = l, .print = rank == 0, .T = job->T, .start = job_now()};
    progress.last_print = progress.start;
    int first = 0, count = 0;
    layout_shard(job->N, size, rank, &first, &count);
    if (progress.print) {
        printf("block %d: handing on to block %d: %d of %d sequences on this rank\n", l, l + 1, count, job->N);
        fflush(stdout);
    }
    size_t const per_seq = (size_t)job->T * c->dim;
    float *x = nq_calloc((size_t)(count ? count : 1) * per_seq, sizeof(float), "handed-on activations");
    int *seqs = nq_calloc((size_t)(count ? count : 1), sizeof(int), "sequence ids");
    float *weights[N_MATS] = {0};
    float *norms = nq_calloc(2 * (size_t)c->dim, sizeof(float), "block norms");
    BlockWeights w = {0};
    QLevelReader *in = NULL;
    nq_status st = x && seqs && norms ? NQ_OK : NQ_ERR_RUNTIME;
    for (int i = 0; i < N_MATS && st == NQ_OK; i++) {
        weights[i] = nq_calloc((size_t)mat_rows(c, i) * mat_cols(c, i), sizeof(float), "dequantized weights");
        if (!weights[i]) st = NQ_ERR_RUNTIME;
        else st = quant_matrix_dequantize(&r->mat[i], weights[i]); /* the stored values, as eval sees them */
        w.mat[i] = weights[i];
    }
    for (int i = 0; i < count; i++) seqs[i] = first + i;
    if (st == NQ_OK && count > 0) {
        if (l == 0) {
            st = activations_read(job->act, 0, seqs, count, x);
        } else {
            st = qlevel_open(job->run_dir, l, job->cfg->activation_dtype, job->N, job->T, c->dim, &in);
            if (st == NQ_OK) st = qlevel_read(in, seqs, count, x);
        }
    }
    /* The norm gains only: the matrices are the dequantized ones (at 7B width the model's
     * fp32 block would add 0.8 GB and a second of reading). */
    if (st == NQ_OK && count > 0) st = model_block_norms(job->model, l, norms, norms + c->dim);
    double forward_start = 0, forward_seconds = 0;
    if (st == NQ_OK && count > 0) {
        w.attn_norm = norms;
        w.ffn_norm = norms + c->dim;
        forward_start = job_now();
        st = block_forward_in_place(c, &w, x, count, job->T, HAND_ON_CHUNK, hand_on_chunk_done, &progress);
        forward_seconds = job_now() - forward_start;
    }
    int ok = st == NQ_OK, all_ok = 0;
    MPI_CHECK(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, comm));
    if (all_ok) st = qlevel_write(job->run_dir, l + 1, comm, job->cfg->activation_dtype, job->N, job->T, c->dim, first, count, x);
    else if (st == NQ_OK) st = nq_fail(NQ_ERR_RUNTIME, "hand-on of block %d failed on another rank", l);
    if (st == NQ_OK && progress.print) {
        printf("block %d: handed on to block %d in %.1f s (forward %.1f s)\n", l, l + 1, job_now() - progress.start,
               forward_seconds);
        fflush(stdout);
    }
    qlevel_close(in);
    for (int i = 0; i < N_MATS; i++) free(weights[i]);
    free(norms);
    free(seqs);
    free(x);
    return st;
}

/* Before a resume reuses the hand-ons: the levels are dealt round-robin over the ranks,
 * each reads its levels whole and checks their checksums; a damaged one is reported in
 * one line and removed, so that it is handed on again (below, or by its block's group). */
static nq_status drop_damaged_hand_ons(Job *job) {
    int const L = job->c->n_layers;
    nq_status st = NQ_OK;
    for (int l = 1 + job->layout.world_rank; l < L && st == NQ_OK; l += job->layout.world_size) {
        if (!qlevel_exists(job->run_dir, l)) continue;
        nq_status const v = qlevel_verify(job->run_dir, l, job->cfg->activation_dtype, job->N, job->T, job->c->dim);
        if (v == NQ_ERR_INPUT) {
            char path[PATH_MAX];
            qlevel_path(job->run_dir, l, path, sizeof path);
            fprintf(stderr, "nupes-mpi: warning: %s: handing level %d on again\n", nq_last_error(), l);
            nq_clear_error();
            if (unlink(path) != 0) st = nq_fail(NQ_ERR_RUNTIME, "%s: cannot remove the damaged hand-on", path);
        } else {
            st = v;
        }
    }
    int ok = st == NQ_OK, all_ok = 0;
    MPI_CHECK(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD));
    if (!all_ok && st == NQ_OK) st = nq_fail(NQ_ERR_RUNTIME, "checking the hand-ons failed on another rank");
    return st;
}

/* After a stop: the done blocks whose hand-on was not written yet (the stop or a kill came
 * between the two) hand on again, in block order, with every rank helping. */
static nq_status repair_hand_ons(Job *job, const int *pending, int n_pending) {
    int const L = job->c->n_layers;
    nq_status const checked = drop_damaged_hand_ons(job);
    if (checked != NQ_OK) return checked;
    int *missing = nq_calloc((size_t)L, sizeof(int), "hand-on list");
    if (!missing) return NQ_ERR_RUNTIME;
    if (job->layout.world_rank == 0) {
        int p = 0;
        for (int l = 0; l + 1 < L; l++) {
            while (p < n_pending && pending[p] < l) p++;
            int const done = !(p < n_pending && pending[p] == l);
            missing[l] = done && !qlevel_exists(job->run_dir, l + 1);
        }
    }
    MPI_CHECK(MPI_Bcast(missing, L, MPI_INT, 0, MPI_COMM_WORLD));
    nq_status st = NQ_OK;
    for (int l = 0; l + 1 < L && st == NQ_OK; l++) {
        if (!missing[l]) continue;
        if (job->layout.world_rank == 0) gather_note(&job->gather, "block %d: handing on its output again", l);
        char path[PATH_MAX];
        BlockResult r;
        run_dir_done_path(job->run_dir, l, path, sizeof path);
        st = block_file_load(path, job->c, &r);
        int ok = st == NQ_OK, all_ok = 0;
        MPI_CHECK(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD));
        if (all_ok) st = hand_on(job, l, &r, MPI_COMM_WORLD);
        else if (st == NQ_OK) st = nq_fail(NQ_ERR_RUNTIME, "another rank could not read %s", path);
        block_result_free(&r);
    }
    free(missing);
    return st;
}

/* Root after its own blocks: receives the others' until every group has ended. */
static nq_status wait_for_groups(Job *job) {
    while (gather_pending(&job->gather)) {
        nq_status const gs = gather_poll(&job->gather);
        if (gs != NQ_OK) return gs;
        stop_agreement_poll(&job->stop, 1);
        usleep(2000);
    }
    return job->gather.any_stopped ? NQ_STOPPED : NQ_OK;
}

nq_status schedule_run(Job *job, const int *pending, int n_pending) {
    const Layout *L = &job->layout;
    nq_status st = hands_on(job) ? repair_hand_ons(job, pending, n_pending) : NQ_OK;
    if (st != NQ_OK) mpi_abort_job(st, nq_last_error());
    int *mine = nq_calloc((size_t)(n_pending ? n_pending : 1), sizeof(int), "block list");
    if (!mine) mpi_abort_job(NQ_ERR_RUNTIME, nq_last_error());
    int const n_mine = layout_blocks_of_group(L, L->group, pending, n_pending, mine);
    for (int i = 0; i < n_mine && st == NQ_OK; i++) {
        int const l = mine[i];
        int stop = stop_signalled() || job->stop.stop, any = stop;
        if (L->data_parallel > 1) MPI_CHECK(MPI_Allreduce(&stop, &any, 1, MPI_INT, MPI_MAX, L->group_comm));
        if (any) {
            st = NQ_STOPPED;
            break;
        }
        BlockResult r;
        st = block_run(job, l, &r);
        if (st == NQ_OK && hands_on(job) && l + 1 < job->c->n_layers) st = hand_on(job, l, &r, L->group_comm);
        if (st == NQ_OK && L->group_rank == 0) st = gather_send_block(&job->gather, &r, L->group);
        block_result_free(&r);
    }
    free(mine);
    if (st != NQ_OK && st != NQ_STOPPED) mpi_abort_job(st, nq_last_error());
    if (L->group_rank == 0) gather_send_end(&job->gather, L->group, st == NQ_STOPPED);
    if (L->world_rank == 0) {
        nq_status const gs = wait_for_groups(job);
        if (gs != NQ_OK && gs != NQ_STOPPED) mpi_abort_job(gs, nq_last_error());
        if (gs == NQ_STOPPED) st = NQ_STOPPED;
    }
    stop_agreement_finish(&job->stop);
    return st;
}
