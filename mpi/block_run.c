/* One block's reconstruction on its group: batches read from the activations file, the
 * gradient summed over the group's D ranks, periodic and final state saves. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block_run.h"
#include "group_sum.h"
#include "mpi_check.h"
#include "qlevel_file.h"
#include "run_dir.h"
#include "state_file.h"
#include "test_hold.h"

#define MAX_STATE_ARRAYS (N_MATS * 9)
/* A block whose probe loss ends above its start by this factor diverged. Measured on the
 * bundled model (60 iterations, parallel mode): lr_weights 1e-2 gives x0.4-0.6, 0.1 gives
 * x5-9, 1 gives x1100-5300, 1e30 x8000-8e6; pipelined mode at 4 bits ends up to x2.3
 * (the final loss is measured on the quantized blocks' inputs, the start on fp32 ones). */
#define DIVERGED_FACTOR 100

static int diverged(double loss_init, double loss_final) {
    return !isfinite(loss_final) || (loss_init > 0 && loss_final > DIVERGED_FACTOR * loss_init);
}

typedef struct {
    Job *job;
    int l;
    int switch_step;        /* from this step on, x comes from the quantized blocks 0..l-1 */
    QLevelReader *qinputs;  /* level l's quantized inputs, once handed on (l > 0) */
    Recon *recon;
    float *x, *y; /* [max_local][T][d] this rank's share of a batch */
    int *batch;   /* [batch] */
    int max_local; /* sequences of a batch share or of the probe set on this rank */
    StateInfo info;
    double last_save;
    int saved_step; /* step of the state file on disk, -1 when there is none */
    StateWrite *writing; /* the leader's state write in progress, of step info.step */
    int restoring; /* the recon was created to be restored (create_recon) */
    char state_path[PATH_MAX];
} BlockRun;

static int quantized_phase(const BlockRun *b) { return recon_step(b->recon) >= b->switch_step; }

/* Reads sequences seqs[0..count) as x (the fp32 model's block input, or after the switch
 * the quantized blocks' output; for block 0 they are the same embeddings) and y (the fp32
 * block output, the target in every mode). */
static nq_status read_share(BlockRun *b, const int *seqs, int count) {
    nq_status st = quantized_phase(b) && b->l > 0
                       ? qlevel_read(b->qinputs, seqs, count, b->x)
                       : activations_read(b->job->act, b->l, seqs, count, b->x);
    if (st == NQ_OK) st = activations_read(b->job->act, b->l + 1, seqs, count, b->y);
    return st;
}

/* Waits until block l's quantized inputs have been handed on, then opens them. The D
 * ranks of the group decide together (file seen by all, or a stop seen by any). */
static nq_status await_quantized_inputs(BlockRun *b) {
    Job *job = b->job;
    if (b->l == 0 || b->qinputs) return NQ_OK;
    int announced = 0;
    for (;;) {
        int mine[2] = {!qlevel_exists(job->run_dir, b->l), stop_signalled() || job->stop.stop};
        int all[2] = {mine[0], mine[1]};
        if (job->layout.data_parallel > 1)
            MPI_CHECK(MPI_Allreduce(mine, all, 2, MPI_INT, MPI_MAX, job->layout.group_comm));
        if (!all[0]) break;
        if (all[1]) return NQ_STOPPED;
        if (!announced && job->layout.group_rank == 0) {
            gather_note(&job->gather, "block %d: waiting for the quantized inputs of blocks 0..%d", b->l, b->l - 1);
            announced = 1;
            test_hold("waiting:%04d", b->l);
        }
        stop_agreement_poll(&job->stop, 1);
        if (job->layout.world_rank == 0) {
            nq_status const gs = gather_poll(&job->gather);
            if (gs != NQ_OK) return gs;
        }
        usleep(20 * 1000);
    }
    if (job->layout.group_rank == 0)
        gather_note(&job->gather, "block %d: quantized inputs from step %d%s", b->l, recon_step(b->recon),
                    announced ? "" : " (no wait)");
    return qlevel_open(job->run_dir, b->l, job->cfg->activation_dtype, job->N, job->T, job->c->dim, &b->qinputs);
}

/* Checked inside the probe's forward pass: at 7B width on a loaded rank it alone outlasts
 * SLURM's KillWait. */
static int probe_should_stop(void *ctx) {
    BlockRun const *b = ctx;
    test_hold("probe:%04d:%d", b->l, recon_step(b->recon));
    return stop_signalled();
}

/* Sequences of a step on this rank: the probe passes forward as many at a time, so that
 * they keep no more activations than a step does. */
static int batch_share(const Job *job) {
    return (job->params.batch + job->layout.data_parallel - 1) / job->layout.data_parallel;
}

/* Mean squared error of the current quantization over the probe sequences. NQ_STOPPED when
 * a stop signal abandoned the pass on any rank of the group (the group agrees first). */
static nq_status probe_loss(BlockRun *b, const char *when, double *loss) {
    const Layout *L = &b->job->layout;
    int const P = probe_sequences(b->job->N);
    int first = 0, count = 0;
    layout_shard(P, L->data_parallel, L->group_rank, &first, &count);
    int seqs[PROBE_SEQUENCES];
    for (int i = 0; i < count; i++) seqs[i] = first + i;
    double const start = job_now();
    double sse = 0;
    int abandoned = 0;
    nq_status st = count > 0 ? read_share(b, seqs, count) : NQ_OK;
    if (st == NQ_OK && count > 0)
        sse = recon_eval_sse(b->recon, b->x, b->y, count, batch_share(b->job), probe_should_stop, b, &abandoned);
    int mine[2] = {st != NQ_OK || isnan(sse), abandoned}, any[2] = {0, 0};
    MPI_CHECK(MPI_Allreduce(mine, any, 2, MPI_INT, MPI_MAX, L->group_comm));
    if (any[0]) return st != NQ_OK ? st : nq_fail(NQ_ERR_RUNTIME, "block %d: probe loss failed", b->l);
    if (any[1]) {
        if (L->group_rank == 0)
            gather_note(&b->job->gather, "block %d: stopped during the probe at step %d: it is done again on "
                        "resume", b->l, recon_step(b->recon));
        return NQ_STOPPED;
    }
    double total = 0;
    MPI_CHECK(MPI_Allreduce(&sse, &total, 1, MPI_DOUBLE, MPI_SUM, L->group_comm));
    *loss = total / ((double)P * b->job->T * b->job->c->dim);
    /* At 7B width on a small rank a probe takes a minute: say so, as the setup does. */
    if (L->world_rank == 0 && job_now() - start >= 2.0) {
        printf("block %d: probe loss %s %.4e over %d sequences in %.1f s\n", b->l, when, *loss, P, job_now() - start);
        fflush(stdout);
    }
    return NQ_OK;
}

/* The leader starts writing the block's state at the current step: the file's header and
 * space here, its bytes by state_write_finish or on the writer's thread, which reads the
 * state arrays until finish_state_write (only recon_apply changes them). */
static nq_status begin_state_write(BlockRun *b) {
    ReconArray arrays[MAX_STATE_ARRAYS];
    int const n = recon_state_arrays(b->recon, arrays, MAX_STATE_ARRAYS);
    b->info.step = recon_step(b->recon);
    double const now = job_now();
    b->info.seconds += now - b->last_save;
    b->last_save = now;
    return state_write_begin(b->state_path, &b->info, arrays, n, &b->writing);
}

/* Waits for the state write in progress, if any, and commits it. NQ_STOPPED when its
 * time limit ran out: the file on disk is unchanged. */
static nq_status finish_state_write(BlockRun *b, StateSaveReport *report) {
    if (!b->writing) return NQ_OK;
    nq_status const st = state_write_finish(b->writing, report);
    b->writing = NULL;
    if (st == NQ_OK) {
        b->saved_step = b->info.step;
        test_hold("state-saved:%04d", b->l);
    }
    return st;
}

/* The periodic save, every run.checkpoint_interval seconds. A 7B block's state is
 * ~2.4 GB, seconds of disk: its bytes are written on a thread while the next iteration's
 * forward and backward passes compute, and the step waits for them only before
 * recon_apply changes the state. */
static nq_status save_state(BlockRun *b) {
    if (b->job->layout.group_rank != 0) return NQ_OK;
    nq_status st = begin_state_write(b);
    if (st == NQ_OK && state_write_start(b->writing) != NQ_OK) {
        state_write_limit(b->writing, -1); /* no thread: give it up, report the failure */
        finish_state_write(b, NULL);
        st = NQ_ERR_RUNTIME;
    }
    return st;
}

/* A stop's save must end within SLURM's KillWait (30 s by default), and a 7B block's
 * state is ~2.4 GB: on a slow disk that alone takes longer. So it is given
 * run.stop_seconds, counting a periodic save of this step still in progress; if they run
 * out, the state file already on disk stays (an older periodic save, or none), and the
 * resume does the steps since it again, to the same numbers (the batch depends only on
 * the step): time lost, never the result. A state saved at this very step is this state:
 * nothing to write (its "seconds" then miss the last moments, a figure for the log only). */
static nq_status save_state_on_stop(BlockRun *b) {
    if (b->job->layout.group_rank != 0) return NQ_OK;
    int const step = recon_step(b->recon), kept = b->saved_step;
    if (!b->writing && kept == step) return NQ_OK;
    double const allowed = b->job->cfg->stop_seconds, start = job_now();
    nq_status st = b->writing ? NQ_OK : begin_state_write(b);
    StateSaveReport r = {0};
    if (st == NQ_OK) {
        state_write_limit(b->writing, allowed - (job_now() - start));
        st = finish_state_write(b, &r);
    }
    if (st == NQ_OK)
        gather_note(&b->job->gather, "block %d: state of step %d written on the stop: %.1f MB in %.1f s", b->l, step,
                    r.bytes * 1e-6, job_now() - start);
    if (st != NQ_STOPPED) return st;
    char resume[128];
    if (kept < 0)
        snprintf(resume, sizeof resume, "it has no state file: the resume starts it over");
    else if (kept == step - 1)
        snprintf(resume, sizeof resume, "its state file of step %d stays and the resume does step %d again", kept,
                 kept);
    else
        snprintf(resume, sizeof resume, "its state file of step %d stays and the resume does steps %d..%d again",
                 kept, kept, step - 1);
    gather_note(&b->job->gather, "block %d: the state of step %d was not written within run.stop_seconds = %g s "
                "(%.1f of %.1f MB in %.1f s): %s, to the same numbers", b->l, step, allowed, r.written * 1e-6,
                r.bytes * 1e-6, job_now() - start, resume);
    return NQ_OK;
}

/* The block's setup (scales, exponent search, latents) takes 15 s to a minute at 7B width: root
 * reports its progress with a rate and an ETA, and a stop signal abandons it (nothing of
 * it is saved: a resume does it again, to the same numbers). */
typedef struct {
    BlockRun *b;
    double start, last_print;
    int stoppable, stopped;
} SetupProgress;

static int setup_progress(void *ctx, int matrix, size_t done, size_t total) {
    SetupProgress *sp = ctx;
    Job *job = sp->b->job;
    test_hold("setup:%04d", sp->b->l);
    if (sp->stoppable && stop_signalled()) {
        sp->stopped = 1;
        return 1;
    }
    double const now = job_now(), spent = now - sp->start;
    if (job->layout.world_rank == 0 && done > 0 && done < total && spent >= 2.0 && now - sp->last_print >= 2.0) {
        double const rate = (double)done / spent;
        printf("block %d: setup %d/%d matrices, %.1f of %.1f M weights, %.2f M weights/s, ETA %.0f s\n",
               sp->b->l, matrix + 1, N_MATS, done * 1e-6, total * 1e-6, rate * 1e-6,
               (double)(total - done) / rate);
        fflush(stdout);
        sp->last_print = now;
    }
    return 0;
}

/* Checked inside an iteration's forward and backward passes (seconds to minutes each at
 * 7B width, more than SLURM's KillWait leaves): a stop signal abandons the iteration. */
static int iteration_should_stop(void *ctx) {
    BlockRun const *b = ctx;
    test_hold("iteration:%04d:%d", b->l, recon_step(b->recon));
    return stop_signalled();
}

/* Step 0 of block l: a fresh reconstruction from the model's fp32 weights; with restoring,
 * only what a restored state does not hold (restore_state fills the rest). NQ_STOPPED
 * when a stop signal abandoned the setup (stoppable). */
static nq_status create_recon(BlockRun *b, int restoring, int stoppable) {
    Job *job = b->job;
    BlockWeights w;
    nq_status st = model_block(job->model, b->l, &w);
    if (st != NQ_OK) return st;
    SetupProgress sp = {.b = b, .start = job_now(), .stoppable = stoppable};
    sp.last_print = sp.start;
    ReconParams p = job->params;
    p.setup_progress = setup_progress;
    p.setup_ctx = &sp;
    p.restoring = restoring;
    p.should_stop = iteration_should_stop;
    p.stop_ctx = b;
    b->recon = recon_create(job->c, &w, &p, b->l, job->N, job->T, b->max_local);
    model_release_block(job->model, b->l);
    if (!b->recon) return sp.stopped ? NQ_STOPPED : NQ_ERR_RUNTIME;
    if (job->layout.world_rank == 0 && job_now() - sp.start >= 2.0) {
        printf("block %d: setup done in %.1f s%s\n", b->l, job_now() - sp.start,
               restoring ? " (resuming: exponent search skipped)" : "");
        fflush(stdout);
    }
    return NQ_OK;
}

/* The group agrees on the setup: a rank that was stopped in it stops the whole group
 * (the others free what they built), before any collective of the first step. */
static nq_status agree_setup(BlockRun *b, nq_status mine) {
    const Layout *L = &b->job->layout;
    if (L->data_parallel == 1 || (mine != NQ_OK && mine != NQ_STOPPED)) return mine;
    int stopped = mine == NQ_STOPPED, any = 0;
    MPI_CHECK(MPI_Allreduce(&stopped, &any, 1, MPI_INT, MPI_MAX, L->group_comm));
    if (any && b->recon) {
        recon_free(b->recon);
        b->recon = NULL;
    }
    return any ? NQ_STOPPED : NQ_OK;
}

/* Restores the block's state file if there is a valid one: the leader loads it and
 * broadcasts it to the group. A damaged file is reported and the block starts over. */

/* A damaged state file may have been read into the latents, optimiser moments and info
 * before the damage showed (e.g. by the checksum, after all arrays were read): the leader
 * starts over from a fresh reconstruction, so the block's result is the one it would have
 * had with no file at all. The other ranks are already waiting for the first step's
 * collectives, so a failure here cannot be agreed on and ends the job. */
static void restart_block(BlockRun *b) {
    recon_free(b->recon);
    b->recon = NULL;
    StateInfo const fresh = {.block = b->l, .iterations = b->job->params.iterations};
    b->info = fresh;
    nq_status const st = create_recon(b, 0, 0);
    if (st != NQ_OK) mpi_abort_job(st, nq_last_error());
}

static nq_status restore_state(BlockRun *b, int *restored) {
    const Layout *L = &b->job->layout;
    ReconArray arrays[MAX_STATE_ARRAYS];
    int const n = recon_state_arrays(b->recon, arrays, MAX_STATE_ARRAYS);
    int step = -1;
    if (L->group_rank == 0 && access(b->state_path, F_OK) == 0) {
        nq_status const st = state_file_load(b->state_path, b->l, arrays, n, &b->info);
        if (st == NQ_OK) {
            step = b->saved_step = b->info.step;
        } else {
            fprintf(stderr, "nupes-mpi: warning: %s; block %d restarts from its beginning\n",
                    nq_last_error(), b->l);
            nq_clear_error();
            unlink(b->state_path);
            restart_block(b);
        }
    }
    MPI_CHECK(MPI_Bcast(&step, 1, MPI_INT, 0, L->group_comm));
    *restored = step >= 0;
    if (step < 0 && b->restoring && L->group_rank != 0) { /* the leader restarted the block */
        recon_free(b->recon);
        b->recon = NULL;
        nq_status const st = create_recon(b, 0, 0);
        if (st != NQ_OK) mpi_abort_job(st, nq_last_error());
    }
    if (step < 0) return NQ_OK;
    for (int i = 0; i < n; i++) {
        for (size_t off = 0; off < arrays[i].count; off += 1u << 28) {
            size_t const rest = arrays[i].count - off;
            int const cnt = rest > (1u << 28) ? 1 << 28 : (int)rest;
            MPI_CHECK(MPI_Bcast((float *)arrays[i].data + off, cnt, MPI_FLOAT, 0, L->group_comm));
        }
    }
    MPI_CHECK(MPI_Bcast(&b->info, (int)sizeof b->info, MPI_BYTE, 0, L->group_comm));
    recon_set_step(b->recon, step);
    return NQ_OK;
}

static void zero_gradients(Recon *r) {
    size_t nf = 0, nd = 0;
    float *gf = recon_grad_floats(r, &nf);
    double *gd = recon_grad_doubles(r, &nd);
    memset(gf, 0, nf * sizeof *gf);
    memset(gd, 0, nd * sizeof *gd);
}

/* The group agrees on stopping at the same iteration: any rank signalled or told. */
static int group_stop(Job *job) {
    int mine = stop_signalled() || job->stop.stop, any = 0;
    if (job->layout.data_parallel == 1) return mine;
    MPI_CHECK(MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, job->layout.group_comm));
    return any;
}

static nq_status iterate(BlockRun *b) {
    Job *job = b->job;
    const Layout *L = &job->layout;
    int const B = job->params.batch;
    int first = 0, count = 0;
    layout_shard(B, L->data_parallel, L->group_rank, &first, &count);
    double const interval = job->cfg->checkpoint_interval;
    double window_start = job_now();
    int window_steps = 0;
    while (!recon_finished(b->recon)) {
        if (quantized_phase(b) && !b->qinputs) {
            nq_status const ws = await_quantized_inputs(b);
            if (ws == NQ_STOPPED) {
                nq_status const ss = save_state_on_stop(b);
                return ss == NQ_OK ? NQ_STOPPED : ss;
            }
            if (ws != NQ_OK) return ws;
        }
        recon_batch_indices(b->recon, b->batch);
        nq_status st = count > 0 ? read_share(b, b->batch + first, count) : NQ_OK;
        double const sse = count > 0 && st == NQ_OK
                               ? recon_accumulate_gradient(b->recon, b->x, b->y, count, B)
                               : 0.0;
        if (count == 0) zero_gradients(b->recon); /* D > batch: this rank adds nothing to the sum */
        /* The other ranks of the group are already in the gradient sum: a failure here
         * cannot be agreed on, so it ends the job (the run dir keeps the last state). */
        if (st != NQ_OK) mpi_abort_job(NQ_ERR_RUNTIME, nq_last_error());
        if (isnan(sse)) {
            nq_fail(NQ_ERR_RUNTIME, "block %d diverged: loss is NaN at step %d (nothing written for it; "
                    "lower reconstruction.lr_weights, now %g)", b->l, recon_step(b->recon),
                    (double)job->params.lr_weights);
            mpi_abort_job(NQ_ERR_RUNTIME, nq_last_error());
        }
        /* A stop signal abandoned the iteration: nothing learned has changed, so the state
         * at this step is saved and a resume does the step again, to the same numbers.
         * The group agrees first: a rank that finished its share must not wait in the
         * gradient sum for one that abandoned its own. */
        int abandoned = count > 0 && recon_iteration_abandoned(b->recon);
        if (L->data_parallel > 1)
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &abandoned, 1, MPI_INT, MPI_MAX, L->group_comm));
        if (abandoned) {
            if (L->group_rank == 0)
                gather_note(&job->gather, "block %d: stopped during step %d: the step is dropped and done again on "
                            "resume", b->l, recon_step(b->recon));
            st = save_state_on_stop(b);
            return st == NQ_OK ? NQ_STOPPED : st;
        }
        if (L->data_parallel > 1) {
            size_t nf = 0, nd = 0;
            float *gf = recon_grad_floats(b->recon, &nf);
            double *gd = recon_grad_doubles(b->recon, &nd);
            group_sum(gf, nf, MPI_FLOAT, L->group_comm);
            group_sum(gd, nd, MPI_DOUBLE, L->group_comm);
        }
        st = finish_state_write(b, NULL); /* before the step changes what it writes */
        if (st != NQ_OK) return st;
        recon_apply(b->recon);
        if (count > 0) b->info.loss_last = sse / ((double)count * job->T * job->c->dim);
        window_steps++;

        stop_agreement_poll(&job->stop, 1);
        if (L->world_rank == 0) {
            nq_status const gs = gather_poll(&job->gather);
            if (gs != NQ_OK) return gs;
            double const elapsed = job_now() - window_start;
            job_print_status(job, elapsed > 0 ? window_steps / elapsed : 0);
            if (elapsed > 10) {
                window_start = job_now();
                window_steps = 0;
            }
        }
        if (group_stop(job)) {
            st = save_state_on_stop(b);
            return st == NQ_OK ? NQ_STOPPED : st;
        }
        if (L->group_rank == 0 && job_now() - b->last_save >= interval) {
            st = save_state(b);
            if (st != NQ_OK) return st;
        }
    }
    return NQ_OK;
}

static void block_run_free(BlockRun *b) {
    if (b->writing) { /* an error ends the job: the write in progress is given up */
        state_write_limit(b->writing, -1);
        finish_state_write(b, NULL);
    }
    qlevel_close(b->qinputs);
    recon_free(b->recon);
    free(b->x);
    free(b->y);
    free(b->batch);
}

nq_status block_run(Job *job, int l, BlockResult *out) {
    memset(out, 0, sizeof *out);
    BlockRun b = {.job = job, .l = l, .switch_step = job->switch_step, .saved_step = -1};
    const Layout *L = &job->layout;
    run_dir_state_path(job->run_dir, l, b.state_path, sizeof b.state_path);
    int const share = batch_share(job);
    int const probes = probe_sequences(job->N);
    int const probe_share = (probes + L->data_parallel - 1) / L->data_parallel; /* probe_loss's most */
    int const max_local = share > probe_share ? share : probe_share;
    size_t const per_seq = (size_t)job->T * job->c->dim;

    b.max_local = max_local;
    /* A state file to resume from: the leader's decision, the group's setup */
    int resuming = L->group_rank == 0 && access(b.state_path, F_OK) == 0;
    if (L->data_parallel > 1) MPI_CHECK(MPI_Bcast(&resuming, 1, MPI_INT, 0, L->group_comm));
    b.restoring = resuming;
    nq_status st = agree_setup(&b, create_recon(&b, resuming, 1));
    if (st == NQ_OK) {
        b.x = nq_calloc((size_t)max_local * per_seq, sizeof(float), "batch inputs");
        b.y = nq_calloc((size_t)max_local * per_seq, sizeof(float), "batch targets");
        b.batch = nq_calloc((size_t)job->params.batch, sizeof(int), "batch indices");
        if (!b.x || !b.y || !b.batch) st = NQ_ERR_RUNTIME;
    }
    b.info.block = l;
    b.info.iterations = job->params.iterations;
    b.last_save = job_now();
    int restored = 0;
    if (st == NQ_OK) st = restore_state(&b, &restored);
    if (st == NQ_OK && quantized_phase(&b)) st = await_quantized_inputs(&b);
    /* A stop in the first probe saves nothing (nothing is learned yet: the resume does the
     * setup again), in the last one the state at the final step (the resume probes again). */
    if (st == NQ_OK && !restored) st = probe_loss(&b, "before", &b.info.loss_init);
    if (st == NQ_OK) st = iterate(&b);
    double loss_final = 0;
    if (st == NQ_OK && quantized_phase(&b)) st = await_quantized_inputs(&b);
    if (st == NQ_OK) st = probe_loss(&b, "after", &loss_final);
    if (st == NQ_STOPPED && b.recon && recon_finished(b.recon)) {
        nq_status const ss = save_state_on_stop(&b);
        if (ss != NQ_OK) st = ss;
    }
    if (st == NQ_OK) st = finish_state_write(&b, NULL); /* a periodic save after the last step */
    if (st == NQ_OK && diverged(b.info.loss_init, loss_final))
        st = nq_fail(NQ_ERR_RUNTIME, "block %d diverged: probe loss %.4e -> %.4e (more than x%d): nothing written "
                     "for it; lower reconstruction.lr_weights (now %g)", l, b.info.loss_init, loss_final,
                     DIVERGED_FACTOR, (double)job->params.lr_weights);
    if (st == NQ_OK) st = block_result_alloc(out, job->c, job->params.spec, l, job->params.skip_mask);
    if (st == NQ_OK) st = recon_result(b.recon, out);
    if (st == NQ_OK) {
        out->loss_init = (float)b.info.loss_init;
        out->loss_final = (float)loss_final;
        out->seconds = b.info.seconds + (job_now() - b.last_save);
    }
    block_run_free(&b);
    return st;
}
