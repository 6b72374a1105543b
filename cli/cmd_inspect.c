/* nupes-mpi inspect PATH: a summary of a run directory, a checkpoint, a state file, a done
 * block file, an activations file or a model (llama2.c file or Hugging Face directory).
 * Reads headers and attributes only (plus the codes for their entropy on small models). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "commands.h"
#include "h5util.h"
#include "model_file.h"
#include "parallel.h"
#include "run_dir.h"
#include "run_lock.h"
#include "run_progress.h"
#include "state_file.h"
#include "toml_c.h"

/* Code entropy is computed only below this many codes (it reads every code). */
#define ENTROPY_MAX_CODES (64ll << 20)

static void print_help(FILE *out) {
    fprintf(out, "usage: nupes-mpi inspect PATH\n\n"
                 "Summarises PATH, which may be:\n"
                 "  a run directory (run.dir): config, fingerprint, activations and per block\n"
                 "      done (losses, seconds), in progress (step) or pending;\n"
                 "  a checkpoint: status, method, bits, model shape, per block loss and code entropy;\n"
                 "  a state file (state/block-NNNN.h5) or done file (done/block-NNNN.h5);\n"
                 "  an activations file: shape and whether capture completed;\n"
                 "  a model (llama2.c file or Hugging Face directory): shape and parameter count.\n"
                 "Exit codes: 0 ok, 2 unknown or unreadable PATH.\n");
}

static long long model_parameters(const ModelConfig *c) {
    long long const d = c->dim, f = c->hidden_dim, dkv = (long long)c->n_kv_heads * (d / c->n_heads);
    long long const block = 2 * d * d + 2 * dkv * d + 3 * d * f + 2 * d;
    return c->n_layers * block + (long long)c->vocab_size * d * (c->tied_embeddings ? 1 : 2) + d;
}

static void print_model_config(const ModelConfig *c) {
    printf("  shape:        dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads %d, "
           "vocab_size %d, seq_len %d\n",
           c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len);
    printf("  parameters:   %lld (%s embeddings, rope %s)\n", model_parameters(c),
           c->tied_embeddings ? "tied" : "untied", c->rope_style == ROPE_HALF ? "half" : "interleaved");
}

static int inspect_model(const char *path) {
    Model *m = NULL;
    nq_status const st = model_open(path, "auto", &m);
    if (st != NQ_OK) {
        fprintf(stderr, "nupes-mpi inspect: %s: not a run directory, checkpoint, state, activations "
                        "or model file (%s)\n", path, nq_last_error());
        return NQ_ERR_INPUT;
    }
    printf("model: %s\n", path);
    print_model_config(model_config(m));
    model_close(m);
    return NQ_OK;
}

/* ------------------------------------------------------------------ HDF5 files */

static int fail(void) {
    fprintf(stderr, "nupes-mpi inspect: %s\n", nq_last_error());
    return NQ_ERR_INPUT;
}

static long long attr_int(hid_t obj, const char *name, long long fallback) {
    long long v = fallback;
    if (h5u_attr_read_int(obj, "", "", name, &v) != NQ_OK) v = fallback;
    nq_clear_error();
    return v;
}

static double attr_double(hid_t obj, const char *name) {
    double v = NAN;
    if (h5u_attr_read_double(obj, "", "", name, &v) != NQ_OK) v = NAN;
    nq_clear_error();
    return v;
}

/* Malloc'd string attribute, or a copy of fallback. */
static char *attr_string(hid_t obj, const char *name, const char *fallback) {
    char *v = NULL;
    if (h5u_attr_read_string(obj, "", "", name, &v) != NQ_OK) v = strdup(fallback);
    nq_clear_error();
    return v;
}

static int inspect_state(const char *path) {
    StateInfo s;
    if (state_file_info(path, &s) != NQ_OK) return fail();
    printf("state file: %s\n  block %d: step %d / %d, loss %.3e -> %.3e, %.1f s so far\n"
           "  (the data checksum is verified when the run resumes)\n",
           path, s.block, s.step, s.iterations, s.loss_init, s.loss_last, s.seconds);
    return NQ_OK;
}

static int inspect_done(const char *path, hid_t f) {
    char *exponent = attr_string(f, "exponent", "?");
    printf("done block file: %s\n  block %lld: %lld bits, group_size %lld, exponent per %s, "
           "loss %.3e -> %.3e in %.1f s\n",
           path, attr_int(f, "block", -1), attr_int(f, "bits", -1), attr_int(f, "group_size", -1),
           exponent, attr_double(f, "loss_init"), attr_double(f, "loss_final"), attr_double(f, "seconds"));
    free(exponent);
    return NQ_OK;
}

static void print_activations(hid_t f) {
    int rank = 0;
    hsize_t dims[H5U_MAX_RANK] = {0};
    if (h5u_shape(f, "", "inputs", &rank, dims) == NQ_OK && rank == 4)
        printf("/inputs [%llu][%llu][%llu][%llu] (levels L+1, sequences, tokens, dim), ",
               (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2],
               (unsigned long long)dims[3]);
    nq_clear_error();
    long long const levels = attr_int(f, "levels_done", -1);
    if (attr_int(f, "complete", 0) == 1) printf("complete");
    else if (levels >= 0) /* a capture in progress (activations.h5.partial, io/run_dir.h) */
        printf("INCOMPLETE: %lld of %llu levels done (a resumed capture starts at level %lld)", levels,
               (unsigned long long)dims[0], levels);
    else printf("INCOMPLETE (capture will run again)");
    printf("\n");
}

/* Per block its losses and code entropy, then the stored bits per quantized weight: every
 * array the checkpoint's quantizer describes (src/quantizer.h), as stored (compressed),
 * read through the checkpoint reader. */
static void print_checkpoint_blocks(const char *path, hid_t f, long long n_layers, long long n_params) {
    int const entropy = n_params <= ENTROPY_MAX_CODES;
    CheckpointReader *r = NULL;
    if (checkpoint_open(path, &r) != NQ_OK) {
        printf("  blocks not summarised: %s\n", nq_last_error());
        nq_clear_error();
        return;
    }
    CheckpointStorage total = {0};
    for (long long l = 0; l < n_layers; l++) {
        char name[32];
        snprintf(name, sizeof name, "blocks/%04lld", l);
        hid_t g = -1;
        if (!checkpoint_has_block(r, (int)l) || h5u_open_group(f, "", name, &g) != NQ_OK) {
            nq_clear_error();
            printf("  block %04lld  missing\n", l);
            continue;
        }
        printf("  block %04lld  loss %.3e -> %.3e", l, attr_double(g, "loss_init"), attr_double(g, "loss_final"));
        h5u_close(g);
        CheckpointStorage s;
        if (checkpoint_block_storage(r, (int)l, entropy, &s) != NQ_OK) {
            printf(", unreadable: %s\n", nq_last_error());
            nq_clear_error();
            continue;
        }
        if (entropy) printf(", code entropy %.3f bits", s.weights ? s.code_bits / (double)s.weights : NAN);
        printf("\n");
        total.n_arrays = s.n_arrays;
        for (int k = 0; k < s.n_arrays; k++) {
            total.names[k] = s.names[k];
            total.stored_bytes[k] += s.stored_bytes[k];
        }
        total.weights += s.weights;
    }
    checkpoint_close(r);
    if (!entropy) printf("  (code entropy skipped: model too large to read every code)\n");
    if (total.weights == 0) return;
    unsigned long long bytes = 0;
    char parts[256] = "";
    size_t used = 0;
    for (int k = 0; k < total.n_arrays; k++) {
        bytes += total.stored_bytes[k];
        used += (size_t)snprintf(parts + used, used < sizeof parts ? sizeof parts - used : 0, "%s%s %.3f",
                                 k ? " + " : "", total.names[k], 8.0 * (double)total.stored_bytes[k] / (double)total.weights);
    }
    printf("  stored:       %.3f bits per quantized weight (%s, as stored; %llu weights)\n",
           8.0 * (double)bytes / (double)total.weights, parts, total.weights);
}

static int inspect_checkpoint(const char *path, hid_t f) {
    char *status = attr_string(f, "status", "?"), *method = attr_string(f, "method", "?");
    char *exponent = attr_string(f, "exponent", "?"), *fp = attr_string(f, "fingerprint", "");
    char *grid = attr_string(f, "quantizer", "power"); /* format_version 1-2: the power grid */
    char what[64] = "";
    if (strcmp(grid, "power") == 0) snprintf(what, sizeof what, "exponent per %s", exponent);
    else snprintf(what, sizeof what, "llama.cpp's %s grid", grid);
    printf("checkpoint: %s\n  status:       %s\n  quantization: %s, %lld bits, group_size %lld, %s\n"
           "  fingerprint:  %s\n",
           path, status, method, attr_int(f, "bits", -1), attr_int(f, "group_size", -1), what,
           fp[0] ? fp : "(none)");
    free(status), free(method), free(exponent), free(fp), free(grid);
    char *blas = attr_string(f, "blas", ""), *note = attr_string(f, "blas_note", "");
    printf("  blas:         %s, %lld thread(s) per rank\n%s%s%s", blas[0] ? blas : "(not recorded)",
           attr_int(f, "threads_per_rank", 0), note[0] ? "  WARNING:      " : "", note,
           note[0] ? "\n" : "");
    free(blas), free(note);
    hid_t g = -1;
    if (h5u_open_group(f, path, "model", &g) != NQ_OK) return fail();
    ModelConfig c = {0};
    c.dim = (int)attr_int(g, "dim", 0), c.hidden_dim = (int)attr_int(g, "hidden_dim", 0);
    c.n_layers = (int)attr_int(g, "n_layers", 0), c.n_heads = (int)attr_int(g, "n_heads", 1);
    c.n_kv_heads = (int)attr_int(g, "n_kv_heads", 1), c.vocab_size = (int)attr_int(g, "vocab_size", 0);
    c.seq_len = (int)attr_int(g, "seq_len", 0), c.tied_embeddings = (int)attr_int(g, "tied_embeddings", 1);
    char *rope = attr_string(g, "rope_style", "interleaved");
    c.rope_style = strcmp(rope, "half") == 0 ? ROPE_HALF : ROPE_INTERLEAVED;
    free(rope);
    h5u_close(g);
    if (c.n_heads <= 0) c.n_heads = 1;
    print_model_config(&c);
    print_checkpoint_blocks(path, f, c.n_layers, model_parameters(&c));
    return NQ_OK;
}

/* An HDF5 file: dispatch on its format attribute (or its datasets, for activations). */
static int inspect_hdf5(const char *path) {
    hid_t f = -1;
    if (h5u_open_read(path, &f) != NQ_OK) return fail();
    char *format = attr_string(f, "format", "");
    int rc;
    if (strcmp(format, "nupes-mpi") == 0) rc = inspect_checkpoint(path, f);
    else if (strcmp(format, STATE_FILE_FORMAT) == 0) rc = inspect_state(path);
    else if (strcmp(format, "nupes-mpi-block") == 0) rc = inspect_done(path, f);
    else if (h5u_exists(f, "inputs")) {
        printf("activations file: %s\n  ", path);
        print_activations(f);
        rc = NQ_OK;
    } else {
        fprintf(stderr, "nupes-mpi inspect: %s: an HDF5 file but not one of ours (format = \"%s\", "
                        "expected nupes-mpi, %s or nupes-mpi-block, or an /inputs dataset)\n",
                path, format, STATE_FILE_FORMAT);
        rc = NQ_ERR_INPUT;
    }
    free(format);
    h5u_close(f);
    return rc;
}

/* ------------------------------------------------------------------ run directory */

typedef struct {
    char model_path[PATH_MAX], model_format[16], method[16], mode[16];
    long long bits, group_size, iterations;
} RunSummary;

static nq_status read_run_toml(const char *dir, RunSummary *s) {
    char path[PATH_MAX], err[512];
    snprintf(path, sizeof path, "%s/run.toml", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return nq_fail(NQ_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    static char text[1 << 16];
    size_t const len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    TomlcDoc *doc = NULL;
    if (tomlc_parse(text, len, path, &doc, err, sizeof err) != TOMLC_OK)
        return nq_fail(NQ_ERR_INPUT, "%s", err);
    for (size_t i = 0; i < tomlc_count(doc); i++) {
        const TomlcEntry *e = tomlc_entry(doc, i);
        if (e->kind == TOMLC_STRING && strcmp(e->path, "model.path") == 0)
            snprintf(s->model_path, sizeof s->model_path, "%s", e->string);
        if (e->kind == TOMLC_STRING && strcmp(e->path, "model.format") == 0)
            snprintf(s->model_format, sizeof s->model_format, "%s", e->string);
        if (e->kind == TOMLC_STRING && strcmp(e->path, "quantization.method") == 0)
            snprintf(s->method, sizeof s->method, "%s", e->string);
        if (e->kind == TOMLC_STRING && strcmp(e->path, "reconstruction.mode") == 0)
            snprintf(s->mode, sizeof s->mode, "%s", e->string);
        if (e->kind == TOMLC_INTEGER && strcmp(e->path, "quantization.bits") == 0) s->bits = e->integer;
        if (e->kind == TOMLC_INTEGER && strcmp(e->path, "quantization.group_size") == 0) s->group_size = e->integer;
        if (e->kind == TOMLC_INTEGER && strcmp(e->path, "reconstruction.iterations") == 0) s->iterations = e->integer;
    }
    tomlc_free(doc);
    return NQ_OK;
}

/* Blocks from the model; else from the activations' levels; else -1 (unknown). */
static int run_n_blocks(const char *dir, const RunSummary *s) {
    Model *m = NULL;
    if (s->model_path[0] && model_open(s->model_path, s->model_format[0] ? s->model_format : "auto", &m) == NQ_OK) {
        int const n = model_config(m)->n_layers;
        model_close(m);
        return n;
    }
    nq_clear_error();
    char path[PATH_MAX];
    hid_t f = -1;
    int rank = 0;
    hsize_t dims[H5U_MAX_RANK];
    int n = -1;
    if (run_dir_activations_path(dir, path, sizeof path) == NQ_OK && h5u_open_read(path, &f) == NQ_OK &&
        h5u_shape(f, path, "inputs", &rank, dims) == NQ_OK && rank == 4 && dims[0] > 0)
        n = (int)dims[0] - 1;
    h5u_close(f);
    nq_clear_error();
    return n;
}

/* running: the job holds the lock and this block is the one its group works on. */
static void print_block(int l, const BlockStatus *b, int running) {
    if (b->state == BLOCK_DONE)
        printf("  block %04d  done         loss %.3e -> %.3e in %.1f s\n", l, b->loss_init, b->loss_final, b->seconds);
    else if (running && b->state == BLOCK_IN_PROGRESS)
        printf("  block %04d  running      step %d / %d (last state saved), loss %.3e -> %.3e, %.1f s so far\n", l,
               b->step, b->iterations, b->loss_init, b->loss_final, b->seconds);
    else if (running)
        printf("  block %04d  running      starting (no state saved yet)\n", l);
    else if (b->state == BLOCK_IN_PROGRESS)
        printf("  block %04d  in progress  step %d / %d, loss %.3e -> %.3e, %.1f s so far%s\n", l, b->step,
               b->iterations, b->loss_init, b->loss_final, b->seconds,
               b->damaged ? " (damaged done file ignored)" : "");
    else
        printf("  block %04d  pending%s\n", l, b->damaged ? "      (damaged file ignored: starts over)" : "");
}

/* The capture's state: 2 complete (activations.h5), 1 partial (levels done into *levels
 * of *total), 0 none. Prints the activations line. */
static int print_run_activations(const char *dir, int job_running, int *levels, int *total) {
    char path[PATH_MAX], partial[PATH_MAX];
    hid_t f = -1;
    struct stat sb;
    int state = 0;
    *levels = *total = 0;
    printf("  activations:  ");
    if (run_dir_activations_path(dir, path, sizeof path) == NQ_OK && stat(path, &sb) == 0) {
        if (h5u_open_read(path, &f) != NQ_OK) {
            printf("unreadable (%s): capture will run again\n", nq_last_error());
        } else if (attr_int(f, "complete", 0) == 1) {
            print_activations(f);
            state = 2;
        } else {
            printf("INCOMPLETE under the final name (written by an older version): capture will run again\n");
        }
    } else if (run_dir_activations_partial_path(dir, partial, sizeof partial) == NQ_OK && stat(partial, &sb) == 0) {
        int rank = 0;
        hsize_t dims[H5U_MAX_RANK] = {0};
        if (h5u_open_read(partial, &f) == NQ_OK && h5u_shape(f, partial, "inputs", &rank, dims) == NQ_OK && rank == 4) {
            *levels = (int)attr_int(f, "levels_done", 0);
            *total = (int)dims[0];
            if (job_running)
                printf("capture in progress: %d of %d levels done\n", *levels, *total);
            else
                printf("partial: %d of %d levels complete (a re-run resumes the capture at level %d)\n", *levels,
                       *total, *levels);
            state = 1;
        } else {
            printf("%s: %s\n", job_running ? "capture starting" : "partial file unreadable, capture will run again",
                   partial);
        }
    } else {
        printf("%s\n", job_running ? "capture starting" : "not captured yet");
    }
    h5u_close(f);
    nq_clear_error();
    return state;
}

/* Marks running[l] for the block each group of the latest schedule is on: its first block
 * without a done file. */
static void mark_running(const RunProgress *p, const BlockStatus *b, int n, int *running) {
    for (int g = 0; g < p->n_groups; g++) {
        for (int i = 0; i < p->group_count[g]; i++) {
            int const l = p->group_blocks[g][i];
            if (l < 0 || l >= n || b[l].state == BLOCK_DONE) continue;
            running[l] = 1;
            break;
        }
    }
}

/* Seconds left: the blocks not done, each running one counted by what it has left, over
 * the groups, at the mean block time of this job (else the running blocks' pace). */
static void print_eta(const RunProgress *p, const BlockStatus *b, int n, const int *running) {
    double left = 0, pace = 0;
    for (int l = 0; l < n; l++) {
        if (b[l].state == BLOCK_DONE) continue;
        double frac = 1;
        if (running[l] && b[l].state == BLOCK_IN_PROGRESS && b[l].iterations > 0) {
            frac = 1 - (double)b[l].step / b[l].iterations;
            if (b[l].step > 0 && pace == 0) pace = b[l].seconds * b[l].iterations / b[l].step;
        }
        left += frac;
    }
    double const mean = p->blocks_done_here > 0 ? p->block_seconds / p->blocks_done_here : pace;
    int const groups = p->n_groups > 0 ? p->n_groups : 1;
    if (mean > 0)
        printf("  ETA:          about %.0f s (%.1f block-times left over %d group%s, %.1f s per block)\n",
               mean * left / groups, left, groups, groups > 1 ? "s" : "", mean);
    else
        printf("  ETA:          unknown until a block saves its state or finishes\n");
}

static int inspect_run_dir(const char *dir) {
    RunSummary s = {.bits = -1, .group_size = -1, .iterations = -1};
    Fingerprint fp;
    if (read_run_toml(dir, &s) != NQ_OK || run_dir_read_fingerprint(dir, &fp) != NQ_OK) return fail();
    printf("run directory: %s\n  model:        %s\n  quantization: %s, %lld bits, group_size %lld\n"
           "  mode:         %s, %lld iterations\n  fingerprint:  %s\n",
           dir, s.model_path, s.method, s.bits, s.group_size, s.mode, s.iterations, fp.hex);
    char kernel[64] = "";
    if (run_dir_read_blas_kernel(dir, kernel, sizeof kernel) != NQ_OK) nq_clear_error();
    printf("  blas kernel:  %s at start (this machine: %s%s)\n", kernel[0] ? kernel : "(not recorded)",
           parallel_blas_kernel(),
           kernel[0] && strcmp(kernel, parallel_blas_kernel()) != 0
               ? ": a resume here would not be bit-identical to an uninterrupted run" : "");
    char holder[512] = "", log_path[PATH_MAX];
    int const job_running = run_lock_held(dir, holder, sizeof holder);
    RunProgress pr;
    memset(&pr, 0, sizeof pr);
    if (run_dir_progress_path(dir, log_path, sizeof log_path) == NQ_OK) run_progress_read(log_path, &pr);
    nq_clear_error();
    if (job_running) printf("  job:          running (%s)\n", holder);
    else printf("  job:          none running\n");
    int levels = 0, total = 0;
    int const capture = print_run_activations(dir, job_running, &levels, &total);
    int const n = run_n_blocks(dir, &s);
    if (n < 0) {
        printf("  blocks:       unknown (model %s unreadable and no activations file)\n", s.model_path);
        run_progress_free(&pr);
        return NQ_OK;
    }
    BlockStatus *b = calloc((size_t)n + 1, sizeof *b);
    int *running = calloc((size_t)n + 1, sizeof *running);
    if (!b || !running || run_dir_scan(dir, n, b) != NQ_OK) {
        free(b);
        free(running);
        run_progress_free(&pr);
        return fail();
    }
    int count[3] = {0};
    for (int l = 0; l < n; l++) count[b[l].state]++;
    if (job_running && capture == 2) mark_running(&pr, b, n, running);
    int n_running = 0, shown[3] = {0}; /* a running block is shown as running, not pending */
    for (int l = 0; l < n; l++) {
        n_running += running[l];
        if (!running[l]) shown[b[l].state]++;
    }
    if (job_running) {
        if (capture != 2) printf("  phase:        capture (%d of %d levels done)\n", levels, total ? total : n + 1);
        else if (count[BLOCK_DONE] == n) printf("  phase:        writing the checkpoint\n");
        else printf("  phase:        reconstruction (%d block%s running)\n", n_running, n_running == 1 ? "" : "s");
    } else if (pr.checkpoint_written && count[BLOCK_DONE] == n) {
        printf("  phase:        finished (checkpoint written)\n");
    } else if (pr.stopped) {
        printf("  phase:        stopped on a signal, state saved: run the same command again to resume\n");
    } else if (pr.found) {
        printf("  phase:        not running: the last job ended before finishing (killed?); run it again to resume\n");
    }
    printf("  blocks:       %d done, %d running, %d in progress, %d pending (of %d)\n", count[BLOCK_DONE],
           n_running, shown[BLOCK_IN_PROGRESS], shown[BLOCK_PENDING], n);
    for (int l = 0; l < n; l++) print_block(l, &b[l], running[l]);
    if (job_running && capture == 2 && count[BLOCK_DONE] < n) print_eta(&pr, b, n, running);
    free(b);
    free(running);
    run_progress_free(&pr);
    return NQ_OK;
}

/* ------------------------------------------------------------------ dispatch */

static int is_hdf5(const char *path) {
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char head[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t const got = fread(head, 1, sizeof head, f);
    fclose(f);
    return got == sizeof head && memcmp(head, sig, sizeof sig) == 0;
}

int cmd_inspect(int argc, char **argv) {
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        print_help(stdout);
        return NQ_OK;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "nupes-mpi inspect: expected one PATH (run 'nupes-mpi inspect --help')\n");
        return NQ_ERR_INPUT;
    }
    const char *path = argv[1];
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "nupes-mpi inspect: %s: %s\n", path, strerror(errno));
        return NQ_ERR_INPUT;
    }
    if (h5u_init() != NQ_OK) return fail();
    if (S_ISDIR(sb.st_mode)) {
        char toml[PATH_MAX];
        if (run_dir_toml_path(path, toml, sizeof toml) == NQ_OK && stat(toml, &sb) == 0)
            return inspect_run_dir(path);
        return inspect_model(path); /* a Hugging Face directory, or a clear error */
    }
    return is_hdf5(path) ? inspect_hdf5(path) : inspect_model(path);
}
