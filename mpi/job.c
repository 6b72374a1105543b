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

#include "atomic_file.h"
#include "block_file.h"
#include "calib_tokens.h"
#include "checkpoint.h"
#include "clock.h"
#include "capture.h"
#include "fingerprint.h"
#include "h5util.h"
#include "float16.h"
#include "job_context.h"
#include "mpi_check.h"
#include "parallel.h"
#include "plan.h"
#include "read_file.h"
#include "run_dir.h"
#include "run_lock.h"
#include "schedule.h"
#include "test_hold.h"
#include "text_windows.h"
#include "tokenizer.h"

#define DONE_FILE_ZSTD_LEVEL 1

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

ReconParams job_recon_params(const NupesConfig *cfg) {
    ReconParams p = {0};
    p.method = cfg->method == METHOD_RTN ? RECON_RTN
               : cfg->method == METHOD_POWERQUANT ? RECON_POWERQUANT : RECON_NUPES;
    p.spec = config_quant_spec(cfg);
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

/* Marks progress.log lines that say results stopped being bit-identical to an
 * uninterrupted run: a later start finds them there and keeps saying so. */
#define BLAS_NOT_IDENTICAL "not bit-identical"

/* Every rank's BLAS kernel to root: job->blas names it; ranks that run another kernel
 * than root's go into job->blas_note (which blocks they compute decides the result). */
static void gather_blas(Job *job) {
    enum { NAME = 32 };
    char mine[NAME] = {0};
    snprintf(mine, sizeof mine, "%s", parallel_blas_kernel());
    int const rank = job->layout.world_rank, size = job->layout.world_size;
    char *all = rank == 0 ? nq_calloc((size_t)size, NAME, "BLAS kernel names") : NULL;
    MPI_CHECK(MPI_Gather(mine, NAME, MPI_CHAR, all, NAME, MPI_CHAR, 0, MPI_COMM_WORLD));
    if (rank != 0) return;
    snprintf(job->blas, sizeof job->blas, "%s, kernel %s", parallel_blas_library(), mine);
    for (int r = 1; all && r < size; r++)
        if (strncmp(all + (size_t)r * NAME, mine, NAME) != 0) {
            snprintf(job->blas_note, sizeof job->blas_note,
                     "rank %d runs BLAS kernel %.31s, root %s: results depend on which rank "
                     "computes which block, " BLAS_NOT_IDENTICAL " to a run on one kernel",
                     r, all + (size_t)r * NAME, mine);
            break;
        }
    free(all);
}

/* Root, on resume: a kernel other than the one the run started with (run.toml [blas])
 * changes the rounding from here on. Said once on stderr and in progress.log, and again
 * at every later start (progress.log keeps the line), and kept in the checkpoint. */
static void check_blas_kernel(Job *job, const char *log_path) {
    char first[64] = "";
    if (run_dir_read_blas_kernel(job->run_dir, first, sizeof first) != NQ_OK) nq_clear_error();
    const char *now = parallel_blas_kernel();
    if (first[0] && strcmp(first, now) != 0) {
        snprintf(job->blas_note, sizeof job->blas_note,
                 "BLAS kernel %s, but this run started on %s (run.toml): from here on the "
                 "result is " BLAS_NOT_IDENTICAL " to an uninterrupted run on %s", now, first, first);
    }
    if (job->blas_note[0]) { /* this kernel change, or ranks that differ (gather_blas) */
        fprintf(stderr, "nupes-mpi: warning: %s\n", job->blas_note);
        job_log(job, "warning: %s", job->blas_note);
        return;
    }
    char *text = NULL;
    size_t len = 0;
    if (read_file(log_path, "progress log", &text, &len) != NQ_OK) {
        nq_clear_error();
        return;
    }
    /* the last such line since the run began (a --restart keeps the older history) */
    char *since = text;
    for (const char *begun[] = {", new run,", ", restarted run,"}, **b = begun; b < begun + 2; b++)
        for (char *hit; (hit = strstr(since, *b)); since = hit + 1) {}
    for (char *line = since, *hit; (hit = strstr(line, BLAS_NOT_IDENTICAL)); line = hit + 1) {
        char *bol = hit;
        while (bol > text && bol[-1] != '\n') bol--;
        char *eol = strchr(hit, '\n');
        if (strstr(bol, "warning: ") && strstr(bol, "warning: ") < hit)
            bol = strstr(bol, "warning: ") + strlen("warning: ");
        snprintf(job->blas_note, sizeof job->blas_note, "%.*s (an earlier start)",
                 (int)((eol ? eol : text + len) - bol), bol);
    }
    free(text);
}

/* The [blas] table of run.toml: what the run started with. */
static char *toml_with_blas(const char *toml, const Job *job) {
    size_t const size = strlen(toml) + 512;
    char *out = nq_calloc(size, 1, "run.toml text");
    if (out)
        snprintf(out, size,
                 "%s\n# The BLAS the run started with. Results do not depend on the threads, but\n"
                 "# do on the kernel: a resume under another one says so (not bit-identical).\n"
                 "[blas]\nlibrary = \"%s\"\nkernel = \"%s\"\nthreads_per_rank = %d\n",
                 toml, parallel_blas_library(), parallel_blas_kernel(), job->threads);
    return out;
}

/* Root: the run directory is resumed, created, or refused (another config). */
/* A group's scale starts as its max |w| and is stored as fp16 (src/quantizer.h): a weight
 * of a quantized matrix beyond HALF_MAX has no stored scale, refused here before any work. */
static nq_status check_weights_storable(Job *job, int l, const BlockWeights *w) {
    for (int i = 0; i < N_MATS; i++) {
        if (job->cfg->skip_mask & (1u << i)) continue;
        size_t const cols = (size_t)mat_cols(job->c, i), n = (size_t)mat_rows(job->c, i) * cols;
        for (size_t j = 0; j < n; j++)
            if (fabsf(w->mat[i][j]) > HALF_MAX)
                return nq_fail(NQ_ERR_INPUT, "%s: block %d %s[%zu][%zu] = %g, expected |w| <= %g: the group "
                               "scales are stored as fp16 (keep the matrix fp32 with quantization.skip)",
                               model_path(job->model), l, mat_names[i], j / cols, j % cols,
                               (double)w->mat[i][j], (double)HALF_MAX);
    }
    return NQ_OK;
}

/* Root, before the run directory is written: every weight the job will read is finite
 * (model_file.c checks a block the first time it is handed out). Done here, not as the
 * capture reaches each block, so that a NaN in the last block of a 7B model is exit 2
 * before the capture starts, not after an hour of it; root reads the whole model for the
 * fingerprint just before anyway. Every block is converted into fp32 memory (the head
 * and block 0 fresh, each later block into the pages the one before freed): up to ~2
 * minutes for a 7B model on a machine slow to fault pages in, so root reports it with a
 * rate and an ETA once it has taken 2 s. */
static nq_status check_weights_finite(Job *job) {
    int const L = job->c->n_layers;
    size_t const block = block_matrix_weights(job->c);
    double const start = nq_seconds();
    double last_print = start;
    HeadWeights head;
    nq_status st = model_head(job->model, &head);
    for (int l = 0; l < L && st == NQ_OK; l++) {
        /* The rate and ETA from the last block alone: the first also reads the head, and
         * faults fresh memory in where the later ones reuse the pages the one before
         * freed (on a VM 3-7x faster: bench/README.md). */
        double const block_start = nq_seconds();
        BlockWeights w;
        st = model_block(job->model, l, &w);
        if (st != NQ_OK) break;
        st = check_weights_storable(job, l, &w);
        model_release_block(job->model, l);
        double const now = nq_seconds();
        if (st == NQ_OK && l + 1 < L && now - start >= 2.0 && now - last_print >= 2.0 && now > block_start) {
            double const rate = (double)block / (now - block_start);
            printf("model: checked %d/%d blocks (finite, within fp16's range), %.1f M weights/s, ETA %.0f s\n",
                   l + 1, L, rate * 1e-6, (double)(L - l - 1) * (double)block / rate);
            fflush(stdout);
            last_print = now;
        }
    }
    if (st == NQ_OK && nq_seconds() - start >= 2.0) {
        printf("model: every weight checked in %.1f s\n", nq_seconds() - start);
        fflush(stdout);
    }
    return st;
}

/* 1 when dir/run.toml holds this fingerprint, so that this job resumes: its weights, the
 * same bytes, were checked when the run started (and each block is checked again when
 * first handed out, io/model_file.c). */
static int resumes_checked_weights(const Job *job, const Fingerprint *fp, int restart) {
    Fingerprint stored;
    if (restart) return 0;
    if (run_dir_read_fingerprint(job->run_dir, &stored) != NQ_OK) {
        nq_clear_error(); /* no run.toml (a new run) or an unreadable one: run_dir_prepare says */
        return 0;
    }
    return strcmp(stored.hex, fp->hex) == 0;
}

static nq_status prepare_run_dir(Job *job, const JobOptions *opt) {
    if (job->layout.world_rank != 0) return NQ_OK;
    uint64_t model_hash = 0;
    nq_status st = plan_check_run_dir_space(job->run_dir, job->c, job->cfg->mode, job->cfg->activation_dtype, job->N, job->T);
    double const hash_start = nq_seconds();
    /* one pass over the model's files, seconds per GB: announced for a model that is not small */
    double const weights = (double)job->c->n_layers * (double)block_matrix_weights(job->c) +
                           (job->c->tied_embeddings ? 1.0 : 2.0) * (double)job->c->vocab_size * (double)job->c->dim;
    if (st == NQ_OK && weights >= 1e8) {
        printf("model: hashing %.2f G weights for the run's fingerprint\n", weights * 1e-9);
        fflush(stdout);
    }
    if (st == NQ_OK) st = model_content_hash(job->model, &model_hash);
    if (st == NQ_OK && nq_seconds() - hash_start >= 2.0) {
        printf("model: weights hashed for the run's fingerprint in %.1f s\n", nq_seconds() - hash_start);
        fflush(stdout);
    }
    Fingerprint fp;
    char *settings = st == NQ_OK ? fingerprint_job_settings(job->cfg, job->layout.data_parallel, job->c) : NULL;
    if (st == NQ_OK && !settings) st = nq_fail(NQ_ERR_RUNTIME, "out of memory printing the fingerprint's settings");
    if (st == NQ_OK)
        st = fingerprint_from_parts(model_hash, job->tokens, (size_t)job->N, (size_t)job->T, settings, &fp);
    free(settings);
    if (st == NQ_OK) {
        if (resumes_checked_weights(job, &fp, opt->restart)) {
            printf("model: every weight was checked when this run started (same fingerprint): not again\n");
            fflush(stdout);
        } else {
            st = check_weights_finite(job);
        }
    }
    char *toml = st == NQ_OK ? config_to_toml(job->cfg) : NULL;
    if (st == NQ_OK && !toml) st = nq_fail(NQ_ERR_RUNTIME, "out of memory printing the config");
    RunDirStatus status = {0};
    char *run_toml = st == NQ_OK ? toml_with_blas(toml, job) : NULL;
    if (st == NQ_OK && !run_toml) st = NQ_ERR_RUNTIME;
    if (st == NQ_OK) st = run_dir_prepare(job->run_dir, run_toml, &fp, job->cfg->output_path, opt->restart, &status);
    free(run_toml);
    if (st == NQ_OK) snprintf(job->fingerprint, sizeof job->fingerprint, "%s", fp.hex);
    char log_path[PATH_MAX];
    if (st == NQ_OK) st = run_dir_progress_path(job->run_dir, log_path, sizeof log_path);
    if (st == NQ_OK) st = progress_log_open(log_path, &job->log);
    job_log(job, "start: %d ranks, %d groups of %d, %s run, fingerprint %s, %s, %d thread%s per rank",
            job->layout.world_size, job->layout.n_groups, job->layout.data_parallel,
            status.resumed ? "resumed" : status.restarted ? "restarted" : "new", fp.hex, job->blas,
            job->threads, job->threads > 1 ? "s" : "");
    if (st == NQ_OK && (status.resumed || job->blas_note[0])) check_blas_kernel(job, log_path);
    if (st == NQ_OK) {
        printf("nupes-mpi %s: %d rank%s, %d group%s of %d\n%s", NUPES_VERSION, job->layout.world_size,
               job->layout.world_size > 1 ? "s" : "", job->layout.n_groups,
               job->layout.n_groups > 1 ? "s" : "", job->layout.data_parallel, toml);
        printf("run: %s (%s), fingerprint %s\n", job->run_dir,
               status.resumed ? "resumed" : status.restarted ? "restarted" : "new", fp.hex);
        printf("blas: %s; %d thread%s per rank (OPENBLAS_NUM_THREADS)\n", job->blas, job->threads,
               job->threads > 1 ? "s" : "");
        const char *thp = nq_huge_pages_setting();
        printf("memory: transparent huge pages \"%s\" here: %s\n", thp,
               !strcmp(thp, "always") || !strcmp(thp, "madvise")
                   ? "arrays of 8 MB or more fault in 2 MB at a time"
                   : "fresh memory faults in 4 KB at a time (a block's first step is slower)");
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

/* Root: removes path (a damaged or incomplete capture that is started over). */
static void remove_capture_file(const Job *job, const char *path) {
    if (job->layout.world_rank == 0 && unlink(path) != 0 && errno != ENOENT)
        fprintf(stderr, "nupes-mpi: warning: %s: cannot remove: %s\n", path, strerror(errno));
}

/* Opens path (collective); NULL in *out and a message when it cannot be reused. */
static nq_status open_existing(Job *job, const char *path, const char *what, Activations **out) {
    int const L = job->c->n_layers, d = job->c->dim;
    nq_status st = agree(activations_open(path, MPI_COMM_WORLD, L, job->N, job->T, d, job->cfg->activation_dtype, out));
    if (st == NQ_ERR_INPUT) {
        /* A file killed before HDF5 wrote its superblock, or damaged: the fingerprint
         * matched, so it is ours: capture again. */
        if (job->layout.world_rank == 0) printf("capture: %s cannot be opened (%s): %s\n", path, nq_last_error(), what);
        nq_clear_error();
        remove_capture_file(job, path);
        *out = NULL;
        return NQ_OK;
    }
    return st;
}

/* Opens the complete activations file, or captures it: into activations.h5.partial,
 * resumed at its first incomplete level, renamed to activations.h5 once every level is
 * durable (io/run_dir.h: the final name exists only for a complete capture). */
static nq_status open_or_capture(Job *job) {
    char path[PATH_MAX], partial[PATH_MAX];
    run_dir_activations_path(job->run_dir, path, sizeof path);
    run_dir_activations_partial_path(job->run_dir, partial, sizeof partial);
    int exists[2] = {0, 0};
    if (job->layout.world_rank == 0) exists[0] = access(path, F_OK) == 0, exists[1] = access(partial, F_OK) == 0;
    MPI_CHECK(MPI_Bcast(exists, 2, MPI_INT, 0, MPI_COMM_WORLD));
    int const L = job->c->n_layers, d = job->c->dim;
    nq_status st = NQ_OK;
    if (exists[0]) {
        st = open_existing(job, path, "capturing again", &job->act);
        if (st != NQ_OK) return st;
        if (job->act && activations_complete(job->act)) {
            nq_status const verified = verify_activations(job);
            if (verified == NQ_OK) {
                if (job->layout.world_rank == 0) printf("capture: %s is complete, reusing it\n", path);
                return NQ_OK;
            }
            if (verified != NQ_ERR_INPUT) return verified; /* damage captures again, failures stop */
        }
        if (job->act) { /* damaged, or incomplete under the final name (before the rename rule) */
            st = agree(activations_close(job->act));
            job->act = NULL;
            if (st != NQ_OK) return st;
            remove_capture_file(job, path);
        }
    }
    Activations *act = NULL;
    int levels_done = 0;
    if (exists[1]) {
        st = open_existing(job, partial, "capturing from the first level", &act);
        if (st == NQ_OK && act) st = agree(activations_levels_done(act, &levels_done));
        if (st != NQ_OK) return st;
    }
    if (!act) st = agree(activations_create(partial, MPI_COMM_WORLD, L, job->N, job->T, d, job->cfg->activation_dtype, &act));
    if (st != NQ_OK) return st;
    if (job->layout.world_rank == 0) {
        printf("capture: %d sequences x %d tokens through %d blocks into %s\n", job->N, job->T, L, partial);
        fflush(stdout);
    }
    st = capture_run(job->model, job->tokens, job->N, job->T, act, levels_done);
    nq_status const closed = agree(activations_close(act));
    if (st == NQ_OK) st = closed;
    if (st != NQ_OK) return st;
    /* Complete: every level durable (capture_run flushed), then the rename marks it. */
    if (job->layout.world_rank == 0) st = atomic_commit(partial, path);
    st = agree(st);
    if (st == NQ_OK) st = agree(activations_open(path, MPI_COMM_WORLD, L, job->N, job->T, d, job->cfg->activation_dtype, &job->act));
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

/* Root: which group runs which pending blocks, in order (inspect reads it back: the first
 * of a group's blocks without a done file is the one it is running). */
static void log_schedule(Job *job, const int *pending, int n_pending) {
    if (job->layout.world_rank != 0) return;
    char line[480];
    size_t used = (size_t)snprintf(line, sizeof line, "schedule:");
    int *mine = nq_calloc((size_t)(n_pending ? n_pending : 1), sizeof(int), "block list");
    if (!mine) {
        nq_clear_error();
        return;
    }
    for (int g = 0; g < job->layout.n_groups && used < sizeof line; g++) {
        int const n = layout_blocks_of_group(&job->layout, g, pending, n_pending, mine);
        if (n == 0) continue;
        used += (size_t)snprintf(line + used, sizeof line - used, " group %d:", g);
        for (int i = 0; i < n && used < sizeof line; i++)
            used += (size_t)snprintf(line + used, sizeof line - used, " %d", mine[i]);
        if (used < sizeof line) used += (size_t)snprintf(line + used, sizeof line - used, ";");
    }
    free(mine);
    job_log(job, "%s", line);
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
    test_hold("done:%04d", r->block);
    return NQ_OK;
}

/* Root: the checkpoint from the done files, one block in memory at a time. */
static nq_status assemble_checkpoint(Job *job) {
    if (job->layout.world_rank != 0) return NQ_OK;
    HeadWeights head;
    nq_status st = model_head(job->model, &head);
    char *toml = config_to_toml(job->cfg);
    CheckpointMeta const meta = {.method = config_method_name(job->cfg->method),
                                 .spec = job->params.spec, .fingerprint = job->fingerprint, .config_toml = toml,
                                 .status = "complete", .blas = job->blas, .blas_note = job->blas_note,
                                 .threads_per_rank = job->threads, .skip_mask = job->params.skip_mask};
    CheckpointWriter *w = NULL;
    double const start = job_now();
    /* The norm gains only: a block's matrices are in its done file (at 7B width, reading
     * and converting the model's block cost ~1 s per block for 2 x 16 KB). */
    float *norms = st == NQ_OK ? nq_calloc(2 * (size_t)job->c->dim, sizeof *norms, "block norms") : NULL;
    if (st == NQ_OK && !norms) st = NQ_ERR_RUNTIME;
    if (st == NQ_OK)
        st = checkpoint_create(job->cfg->output_path, &meta, job->c, &head, job->cfg->zstd_level, &w);
    for (int l = 0; l < job->c->n_layers && st == NQ_OK; l++) {
        double const block_start = job_now();
        test_hold("checkpoint:%04d", l);
        if (stop_signalled()) { /* the done files stay: a resume assembles again */
            st = NQ_STOPPED;
            break;
        }
        char path[PATH_MAX];
        run_dir_done_path(job->run_dir, l, path, sizeof path);
        BlockResult r;
        BlockFileExpect const want = done_expected(job, l);
        st = block_file_load_expected(path, job->c, &want, &r);
        if (st == NQ_OK) st = model_block_norms(job->model, l, norms, norms + job->c->dim);
        if (st == NQ_OK) st = checkpoint_write_block(w, &r, norms, norms + job->c->dim);
        block_result_free(&r);
        if (st == NQ_OK) { /* minutes at 7B width: never silent for more than a block */
            /* the ETA from this block alone: the head was stored before the first, and the
             * first faults fresh memory in where the later ones reuse the freed pages */
            double const now = job_now();
            printf("checkpoint: block %d/%d added, %.1f s, ETA %.0f s\n", l + 1, job->c->n_layers, now - start,
                   (now - block_start) * (job->c->n_layers - l - 1));
            fflush(stdout);
        }
    }
    if (st == NQ_OK) {
        st = checkpoint_commit(w);
    } else {
        checkpoint_abort(w);
    }
    free(norms);
    free(toml);
    if (st == NQ_OK) {
        printf("checkpoint: %s written\n", job->cfg->output_path);
        job_log(job, "checkpoint %s written", job->cfg->output_path);
    }
    return st;
}

/* Root: the run directory's lock, before anything in it is touched (io/run_lock.h). */
static nq_status lock_run_dir(Job *job) {
    if (job->layout.world_rank != 0) return NQ_OK;
    return run_lock_take(job->run_dir, &job->lock);
}

static void job_free(Job *job) {
    progress_log_close(job->log);
    if (job->act) agree(activations_close(job->act));
    run_lock_release(job->lock); /* last: every file of the run is closed */
    job->lock = NULL;
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
    job.params = job_recon_params(cfg);
    job.switch_step = cfg->mode == MODE_PARALLEL     ? INT_MAX
                      : cfg->mode == MODE_SEQUENTIAL ? 0
                                                     : (int)lround(cfg->switch_fraction * cfg->iterations);
    snprintf(job.run_dir, sizeof job.run_dir, "%s", cfg->run_dir);
    stop_install_handlers();
    nq_status st = agree(h5u_init());
    /* Bad paths are found before any work (exit 2), not when the checkpoint is written. */
    if (st == NQ_OK) {
        int rank = 0;
        MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
        st = agree(rank == 0 ? run_dir_check_paths(cfg->run_dir, cfg->output_path) : NQ_OK);
    }
    if (st == NQ_OK) st = agree(load_inputs(&job));
    if (st == NQ_OK)
        st = agree(layout_create(cfg->data_parallel, job.c->n_layers, cfg->mode == MODE_SEQUENTIAL, &job.layout));
    job.threads = parallel_threads();
    if (st == NQ_OK) gather_blas(&job);
    if (st == NQ_OK) st = agree(lock_run_dir(&job));
    if (st == NQ_OK) st = agree(prepare_run_dir(&job, opt));
    if (st == NQ_OK) st = agree(open_or_capture(&job));
    int *pending = st == NQ_OK ? nq_calloc((size_t)job.c->n_layers, sizeof(int), "pending blocks") : NULL;
    int n_pending = 0;
    if (st == NQ_OK && !pending) st = NQ_ERR_RUNTIME;
    st = agree(st);
    if (st == NQ_OK) st = find_pending(&job, pending, &n_pending);
    if (st == NQ_OK) log_schedule(&job, pending, n_pending);
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
