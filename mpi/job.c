/* The quantize job, stage by stage. Every stage ends with all ranks agreeing on its
 * status (agree), so no rank walks into a collective the others have left. */
#include "job.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "block_file.h"
#include "calib_tokens.h"
#include "checkpoint.h"
#include "capture.h"
#include "fingerprint.h"
#include "h5util.h"
#include "mpi_check.h"
#include "plan.h"
#include "run_dir.h"
#include "schedule.h"
#include "text_windows.h"
#include "tokenizer.h"

#define DONE_FILE_ZSTD_LEVEL 1

double job_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void job_log(Job *job, const char *fmt, ...) {
    if (!job->log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (progress_log_printf(job->log, "%s", line) != NQ_OK) {
        fprintf(stderr, "nupes-mpi: warning: %s (progress.log is no longer written)\n", nq_last_error());
        nq_clear_error();
        progress_log_close(job->log);
        job->log = NULL;
    }
}

/* Every rank gets the worst status of all. Root prints the job's error at exit; a rank
 * that failed where root did not (its own I/O, its own memory) says so itself, while an
 * error every rank sees alike (a bad config) is printed once. */
static nq_status agree(nq_status local) {
    int rank = 0, root_status = (int)local;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    nq_status const worst = mpi_worst_status(local, MPI_COMM_WORLD);
    if (worst != NQ_OK) MPI_CHECK(MPI_Bcast(&root_status, 1, MPI_INT, 0, MPI_COMM_WORLD));
    if (local != NQ_OK && local != NQ_STOPPED && rank != 0 && root_status == NQ_OK)
        fprintf(stderr, "nupes-mpi: rank %d: %s\n", rank, nq_last_error());
    if (worst != NQ_OK && (local == NQ_OK || local == NQ_STOPPED) && worst != NQ_STOPPED)
        nq_fail(worst, "another rank failed (see its message above)");
    return worst;
}

static ReconParams recon_params_from(const NupesConfig *cfg) {
    ReconParams p = {0};
    p.method = cfg->method == METHOD_RTN ? RECON_RTN
               : cfg->method == METHOD_POWERQUANT ? RECON_POWERQUANT : RECON_NUPES;
    p.spec.bits = cfg->bits;
    p.spec.group_size = cfg->group_size;
    p.spec.per_row = cfg->exponent_per_channel;
    p.learn_scale = cfg->learn_scale;
    p.skip_mask = cfg->skip_mask;
    p.iterations = cfg->iterations;
    p.batch = cfg->batch;
    p.lr_weights = (float)cfg->lr_weights;
    p.lr_exponent = (float)cfg->lr_exponent;
    p.lr_scale = (float)cfg->lr_scale;
    p.seed = cfg->seed;
    return p;
}

/* Model, tokenizer and calibration sequences: every rank reads them itself (the model is
 * mapped, so this costs no memory until a block is used). */
static nq_status load_inputs(Job *job) {
    const NupesConfig *cfg = job->cfg;
    nq_status st = model_open(cfg->model_path, cfg->model_format, &job->model);
    if (st != NQ_OK) return st;
    job->c = model_config(job->model);
    job->T = cfg->calib_seq_len;
    if (job->T > job->c->seq_len)
        return nq_fail(NQ_ERR_INPUT, "%s: calibration.seq_len = %d, expected at most the model's seq_len %d",
                       cfg->source_path, job->T, job->c->seq_len);
    if (cfg->group_size > 0) {
        for (int i = 0; i < N_MATS; i++) {
            if (mat_cols(job->c, i) % cfg->group_size != 0)
                return nq_fail(NQ_ERR_INPUT, "%s: quantization.group_size = %d does not divide the %d inputs of %s",
                               cfg->source_path, cfg->group_size, mat_cols(job->c, i), mat_names[i]);
        }
    }
    if (cfg->calib_tokens[0] != '\0') { /* ids tokenized elsewhere (io/calib_tokens.h) */
        st = calib_tokens_load(cfg->calib_tokens, job->c->vocab_size, job->T, cfg->calib_sequences, &job->tokens, &job->N);
    } else {
        if (cfg->tokenizer_path[0] == '\0')
            return nq_fail(NQ_ERR_INPUT, "%s: tokenizer.path is required to tokenize calibration.text", cfg->source_path);
        Tokenizer *tok = NULL;
        st = tokenizer_open(cfg->tokenizer_path, job->c->vocab_size, &tok);
        if (st == NQ_OK) st = text_windows_load(cfg->calib_text, tok, job->T, cfg->calib_sequences, &job->tokens, &job->N);
        tokenizer_free(tok);
    }
    if (st == NQ_OK && job->N < cfg->batch)
        st = nq_fail(NQ_ERR_INPUT, "%s: %d calibration sequences, fewer than reconstruction.batch = %d",
                     cfg->calib_tokens[0] ? cfg->calib_tokens : cfg->calib_text, job->N, cfg->batch);
    return st;
}

/* The checkpoint is written at the very end: a directory it cannot be written to is
 * refused before the work, not after it. */
static nq_status check_output_dir(const char *output_path) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", output_path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    if (access(dir, W_OK | X_OK) != 0)
        return nq_fail(NQ_ERR_INPUT, "output.path = %s: cannot write in %s: %s", output_path, dir, strerror(errno));
    return NQ_OK;
}

/* Root: the run directory is resumed, created, or refused (another config). */
static nq_status prepare_run_dir(Job *job, const JobOptions *opt) {
    if (job->layout.world_rank != 0) return NQ_OK;
    uint64_t model_hash = 0;
    nq_status st = plan_check_run_dir_space(job->run_dir, job->c, job->cfg->mode, job->N, job->T);
    if (st == NQ_OK) st = model_content_hash(job->model, &model_hash);
    Fingerprint fp;
    if (st == NQ_OK)
        st = fingerprint_compute(model_hash, job->tokens, (size_t)job->N, (size_t)job->T, job->cfg, &fp);
    char *toml = st == NQ_OK ? config_to_toml(job->cfg) : NULL;
    if (st == NQ_OK && !toml) st = nq_fail(NQ_ERR_RUNTIME, "out of memory printing the config");
    RunDirStatus status;
    if (st == NQ_OK && strncmp(job->cfg->output_path, job->run_dir, strlen(job->run_dir)) != 0)
        st = check_output_dir(job->cfg->output_path); /* (inside run.dir it is created below) */
    if (st == NQ_OK) st = run_dir_prepare(job->run_dir, toml, &fp, opt->restart, &status);
    if (st == NQ_OK) snprintf(job->fingerprint, sizeof job->fingerprint, "%s", fp.hex);
    char log_path[PATH_MAX];
    if (st == NQ_OK) st = run_dir_progress_path(job->run_dir, log_path, sizeof log_path);
    if (st == NQ_OK) st = progress_log_open(log_path, &job->log);
    job_log(job, "start: %d ranks, %d groups of %d, %s run, fingerprint %s", job->layout.world_size,
            job->layout.n_groups, job->layout.data_parallel,
            status.resumed ? "resumed" : status.restarted ? "restarted" : "new", fp.hex);
    if (st == NQ_OK) {
        printf("nupes-mpi %s: %d rank%s, %d group%s of %d\n%s", NUPES_VERSION, job->layout.world_size,
               job->layout.world_size > 1 ? "s" : "", job->layout.n_groups,
               job->layout.n_groups > 1 ? "s" : "", job->layout.data_parallel, toml);
        printf("run: %s (%s), fingerprint %s\n", job->run_dir,
               status.resumed ? "resumed" : status.restarted ? "restarted" : "new", fp.hex);
        printf("model: %s: d %d, f %d, %d blocks, %d heads (%d kv), vocab %d\n"
               "calibration: %d sequences of %d tokens\n",
               job->cfg->model_path, job->c->dim, job->c->hidden_dim, job->c->n_layers, job->c->n_heads,
               job->c->n_kv_heads, job->c->vocab_size, job->N, job->T);
        fflush(stdout);
    }
    free(toml);
    return st;
}

/* Collective: every rank checks the sequences it captured (all levels) against their
 * checksums before the file is reused. NQ_ERR_INPUT when any rank found damage: the
 * lowest such rank prints a one-line warning naming the level and sequence. */
static nq_status verify_activations(Job *job) {
    int first = 0, count = 0;
    layout_shard(job->N, job->layout.world_size, job->layout.world_rank, &first, &count);
    nq_status const st = activations_verify(job->act, first, count);
    /* an I/O failure is not damage: it fails the job */
    nq_status const failed = agree(st == NQ_ERR_INPUT ? NQ_OK : st);
    if (failed != NQ_OK) return failed;
    int const mine = st == NQ_OK ? job->layout.world_size : job->layout.world_rank;
    int first_damaged = 0;
    MPI_CHECK(MPI_Allreduce(&mine, &first_damaged, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (first_damaged == job->layout.world_size) return NQ_OK;
    if (first_damaged == job->layout.world_rank)
        fprintf(stderr, "nupes-mpi: warning: %s: capturing again\n", nq_last_error());
    nq_clear_error();
    return NQ_ERR_INPUT;
}

/* Opens the activations file, capturing it first if it is missing, incomplete or damaged. */
static nq_status open_or_capture(Job *job) {
    char path[PATH_MAX];
    run_dir_activations_path(job->run_dir, path, sizeof path);
    int exists = job->layout.world_rank == 0 ? access(path, F_OK) == 0 : 0;
    MPI_CHECK(MPI_Bcast(&exists, 1, MPI_INT, 0, MPI_COMM_WORLD));
    int const L = job->c->n_layers, d = job->c->dim;
    nq_status st = NQ_OK;
    if (exists) {
        st = agree(activations_open(path, MPI_COMM_WORLD, L, job->N, job->T, d, &job->act));
        if (st == NQ_ERR_INPUT) {
            /* A capture killed before HDF5 wrote the superblock leaves a file that cannot be
             * opened; the fingerprint matched, so it is ours and incomplete: capture again. */
            if (job->layout.world_rank == 0)
                printf("capture: %s cannot be opened (%s): capturing again\n", path, nq_last_error());
            nq_clear_error();
            st = NQ_OK;
            exists = 0;
        }
        if (st == NQ_OK && exists && activations_complete(job->act)) {
            nq_status const verified = verify_activations(job);
            if (verified == NQ_OK) {
                if (job->layout.world_rank == 0) printf("capture: %s is complete, reusing it\n", path);
                return NQ_OK;
            }
            if (verified != NQ_ERR_INPUT) st = verified; /* damage captures again, failures stop */
        }
        if (exists) {
            nq_status const closed = agree(activations_close(job->act));
            if (st == NQ_OK) st = closed;
        }
        job->act = NULL;
        if (st != NQ_OK) return st;
    }
    st = agree(activations_create(path, MPI_COMM_WORLD, L, job->N, job->T, d, &job->act));
    if (st != NQ_OK) return st;
    if (job->layout.world_rank == 0) {
        printf("capture: %d sequences x %d tokens through %d blocks into %s\n", job->N, job->T, L, path);
        fflush(stdout);
    }
    st = capture_run(job->model, job->tokens, job->N, job->T, job->act);
    if (st == NQ_OK) job_log(job, "capture done: %d sequences of %d tokens", job->N, job->T);
    return st;
}

/* What block l's done file must be: this run's, for that block and this config. */
static BlockFileExpect done_expected(const Job *job, int l) {
    BlockFileExpect const want = {.block = l, .spec = job->params.spec, .skip_mask = job->params.skip_mask,
                                  .fingerprint = job->fingerprint};
    return want;
}

/* Root decides which blocks still need work and tells everyone. A done file that cannot
 * be reused (damaged: checksum, truncation; or not this run's: another block, config or
 * run) is reported and removed, and its block is done again. */
static nq_status find_pending(Job *job, int *pending, int *n_pending) {
    int const L = job->c->n_layers;
    if (job->layout.world_rank == 0) {
        *n_pending = 0;
        for (int l = 0; l < L; l++) {
            char path[PATH_MAX];
            run_dir_done_path(job->run_dir, l, path, sizeof path);
            BlockResult r;
            BlockFileExpect const want = done_expected(job, l);
            if (access(path, F_OK) == 0) {
                if (block_file_load_expected(path, job->c, &want, &r) == NQ_OK) {
                    block_result_free(&r);
                    continue;
                }
                fprintf(stderr, "nupes-mpi: warning: %s; block %d will be done again\n", nq_last_error(), l);
                job_log(job, "block %d: done file not reusable (%s): done again", l, nq_last_error());
                unlink(path);
            }
            nq_clear_error();
            pending[(*n_pending)++] = l;
        }
        job->blocks_done = L - *n_pending;
    }
    MPI_CHECK(MPI_Bcast(n_pending, 1, MPI_INT, 0, MPI_COMM_WORLD));
    MPI_CHECK(MPI_Bcast(pending, *n_pending, MPI_INT, 0, MPI_COMM_WORLD));
    return NQ_OK;
}

/* Root: a finished block arrives (from any group): its done file is the durable record. */
static nq_status write_done(const BlockResult *r, int group, void *ctx) {
    Job *job = ctx;
    char path[PATH_MAX];
    run_dir_done_path(job->run_dir, r->block, path, sizeof path);
    /* Done files are read back once, by the checkpoint assembly: the fastest level keeps
     * root's serial work small (level 19 takes ~2 min on a 7B block). */
    int const level = job->cfg->zstd_level < DONE_FILE_ZSTD_LEVEL ? job->cfg->zstd_level : DONE_FILE_ZSTD_LEVEL;
    nq_status const st = block_file_save_owned(path, r, job->fingerprint, level);
    if (st != NQ_OK) return st;
    char state[PATH_MAX];
    run_dir_state_path(job->run_dir, r->block, state, sizeof state);
    unlink(state); /* the done file supersedes it */
    job->blocks_done++;
    double const ratio = r->loss_init > 0 ? r->loss_final / r->loss_init : 1.0;
    printf("block %d done (%d/%d, group %d): loss %.4e -> %.4e (x%.3f) in %.1f s\n", r->block,
           job->blocks_done, job->blocks_total, group, r->loss_init, r->loss_final, ratio, r->seconds);
    job_log(job, "block %d done (group %d): loss %.4e -> %.4e in %.1f s", r->block, group, r->loss_init,
            r->loss_final, r->seconds);
    fflush(stdout);
    return NQ_OK;
}

void job_print_status(Job *job, double iterations_per_second) {
    double const now = job_now();
    double const every = job->status_is_tty ? 1.0 : 30.0;
    if (now - job->last_status_time < every) return;
    job->last_status_time = now;
    int const left = job->blocks_total - job->blocks_done;
    int const rounds = (left + job->layout.n_groups - 1) / job->layout.n_groups;
    double const eta = iterations_per_second > 0 ? rounds * job->params.iterations / iterations_per_second : 0;
    printf("%sstatus: %d/%d blocks done, %.1f it/s, elapsed %.0f s, ETA %.0f s%s",
           job->status_is_tty ? "\r" : "", job->blocks_done, job->blocks_total, iterations_per_second,
           now - job->start_time, eta, job->status_is_tty ? "   " : "\n");
    fflush(stdout);
}

/* Root: the checkpoint from the done files, one block in memory at a time. */
static nq_status assemble_checkpoint(Job *job) {
    if (job->layout.world_rank != 0) return NQ_OK;
    HeadWeights head;
    nq_status st = model_head(job->model, &head);
    char *toml = config_to_toml(job->cfg);
    CheckpointMeta const meta = {.method = config_method_name(job->cfg->method),
                                 .spec = job->params.spec, .fingerprint = job->fingerprint, .config_toml = toml,
                                 .status = "complete", .skip_mask = job->params.skip_mask};
    CheckpointWriter *w = NULL;
    if (st == NQ_OK)
        st = checkpoint_create(job->cfg->output_path, &meta, job->c, &head, job->cfg->zstd_level, &w);
    for (int l = 0; l < job->c->n_layers && st == NQ_OK; l++) {
        char path[PATH_MAX];
        run_dir_done_path(job->run_dir, l, path, sizeof path);
        BlockResult r;
        BlockWeights fp;
        BlockFileExpect const want = done_expected(job, l);
        st = block_file_load_expected(path, job->c, &want, &r);
        if (st == NQ_OK) st = model_block(job->model, l, &fp);
        if (st == NQ_OK) st = checkpoint_write_block(w, &r, fp.attn_norm, fp.ffn_norm);
        model_release_block(job->model, l);
        block_result_free(&r);
    }
    if (st == NQ_OK) {
        st = checkpoint_commit(w);
    } else {
        checkpoint_abort(w);
    }
    free(toml);
    if (st == NQ_OK) {
        printf("checkpoint: %s written\n", job->cfg->output_path);
        job_log(job, "checkpoint %s written", job->cfg->output_path);
    }
    return st;
}

static void job_free(Job *job) {
    progress_log_close(job->log);
    if (job->act) agree(activations_close(job->act));
    free(job->tokens);
    model_close(job->model);
    layout_free(&job->layout);
}

nq_status job_run(const NupesConfig *cfg, const JobOptions *opt) {
    /* Open MPI hands its ranks a pty even when mpirun's output goes to a file: redraw the
     * status line only for a plain process on a terminal. */
    Job job = {.cfg = cfg, .start_time = job_now(),
               .status_is_tty = isatty(STDOUT_FILENO) && !getenv("OMPI_COMM_WORLD_SIZE")};
    job.layout.group_comm = MPI_COMM_NULL; /* job_free may run before layout_create */
    job.params = recon_params_from(cfg);
    job.switch_step = cfg->mode == MODE_PARALLEL     ? INT_MAX
                      : cfg->mode == MODE_SEQUENTIAL ? 0
                                                     : (int)lround(cfg->switch_fraction * cfg->iterations);
    snprintf(job.run_dir, sizeof job.run_dir, "%s", cfg->run_dir);
    stop_install_handlers();
    nq_status st = agree(h5u_init());
    if (st == NQ_OK && opt->dry_run) { /* the plan needs only the model's config (mpi/plan.h) */
        int rank = 0, size = 1;
        MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
        MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
        st = agree(rank == 0 ? plan_dry_run(cfg, size, stdout) : NQ_OK);
        job_free(&job);
        return st;
    }
    if (st == NQ_OK) st = agree(load_inputs(&job));
    if (st == NQ_OK)
        st = agree(layout_create(cfg->data_parallel, job.c->n_layers, cfg->mode == MODE_SEQUENTIAL, &job.layout));
    if (st == NQ_OK) st = agree(prepare_run_dir(&job, opt));
    if (st == NQ_OK) st = agree(open_or_capture(&job));
    int *pending = st == NQ_OK ? nq_calloc((size_t)job.c->n_layers, sizeof(int), "pending blocks") : NULL;
    int n_pending = 0;
    if (st == NQ_OK && !pending) st = NQ_ERR_RUNTIME;
    st = agree(st);
    if (st == NQ_OK) st = find_pending(&job, pending, &n_pending);
    if (st == NQ_OK) {
        job.blocks_total = job.c->n_layers;
        stop_agreement_init(&job.stop);
        gather_init(&job.gather, job.c, job.params.spec, job.params.skip_mask, job.layout.n_groups,
                    write_done, &job);
        st = schedule_run(&job, pending, n_pending);
        stop_agreement_free(&job.stop);
        st = agree(st);
    }
    free(pending);
    if (st == NQ_OK) st = agree(assemble_checkpoint(&job));
    /* Every rank has the agreed NQ_STOPPED here, so the collective is safe; root may not
     * have received the signal itself. */
    int const stop_sig = st == NQ_STOPPED ? stop_agreed_signal() : 0;
    if (st == NQ_STOPPED && job.layout.world_rank == 0) {
        printf("stopped on signal %d: state saved in %s; run the same command again to resume\n",
               stop_sig, job.run_dir);
        job_log(&job, "stopped (signal %d): state saved, exit 75", stop_sig);
        fflush(stdout);
    }
    job_free(&job);
    return st;
}
