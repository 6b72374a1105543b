/* bench/capture: activation capture throughput (docs/design.md 4 and 9).
 *
 *   [mpirun -np R] bench_capture [--dim 512] [--hidden 1376] [--layers 4] [--heads 8]
 *                                [--seq-len 256] [--sequences 64] [--repeats 2] [--dir D]
 *
 * A synthetic llama2.c model of that shape is written to D, then per repeat (best kept):
 *   capture  capture_run on a fresh activations file: every sequence through every block,
 *            the input of each block (and the last output) written with collective HDF5
 *            writes: tokens/s (a token through all L blocks) and MB/s of activations;
 *   hdf5     the same bytes written the same way (one collective activations_write per
 *            level of each rank's shard, then flush and close), without the model: the
 *            HDF5 write bandwidth;
 *   plain    the same bytes at the same file offsets with pwrite on a plain file, fsync
 *            and close: the reference the HDF5 bandwidth is divided by;
 *   check    what a resume does before reusing a captured file: each rank reads its shard
 *            of every level (page cache dropped first) and checks the sequence checksums.
 * Every rank writes its own shard; times are those of the slowest rank. --dtype stores the
 * activations as fp16 or bf16 (calibration.activation_dtype; the plain reference writes
 * the same number of bytes). Peak RSS of the first capture (VmHWM reset before it, the
 * largest rank) is printed against the plan's capture figure for this shape (mpi/plan.c:
 * block weights + the rank's sequences + the forward-only scratch + the head). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "activations.h"
#include "bench_util.h"
#include "capture.h"
#include "layout.h"
#include "model_file.h"
#include "plan.h"
#include "rng.h"

typedef struct {
    ModelConfig c;
    ActDtype dtype; /* of the activations file (calibration.activation_dtype) */
    int T, N, repeats;
    const char *dir;
} Options;

static int rank_, size_ = 1;

/* The llama2.c legacy file: header, weights in its order, two rope tables (readers
 * check the exact size). Normal weights at a trained model's scales; gains 1. */
static int write_model(const char *path, const ModelConfig *c) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t const d = c->dim, fh = c->hidden_dim, L = c->n_layers, V = c->vocab_size;
    size_t const hs = d / c->n_heads, dkv = c->n_kv_heads * hs;
    int32_t const header[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads,
                               c->n_kv_heads, c->vocab_size, c->seq_len};
    struct {
        size_t n;
        float std; /* 0: gains of 1 */
    } const parts[] = {{V * d, 0.1f},     {L * d, 0},           {L * d * d, 1 / sqrtf(d)},
                       {L * dkv * d, 1 / sqrtf(d)}, {L * dkv * d, 1 / sqrtf(d)},
                       {L * d * d, 0.5f / sqrtf(d)}, {L * d, 0},   {L * fh * d, 1 / sqrtf(d)},
                       {L * d * fh, 0.5f / sqrtf(fh)}, {L * fh * d, 1 / sqrtf(d)}, {d, 0},
                       {(size_t)c->seq_len * hs, 0}};
    int ok = fwrite(header, sizeof header, 1, f) == 1;
    Rng rng;
    rng_seed(&rng, 3, 0);
    float buf[4096];
    for (size_t p = 0; ok && p < sizeof parts / sizeof parts[0]; p++) {
        for (size_t at = 0; ok && at < parts[p].n; at += 4096) {
            size_t const n = parts[p].n - at < 4096 ? parts[p].n - at : 4096;
            for (size_t i = 0; i < n; i++) {
                float const u = rng_uniform_float(&rng) + rng_uniform_float(&rng) +
                                rng_uniform_float(&rng) - 1.5f; /* ~normal, var 1/4 */
                buf[i] = parts[p].std > 0 ? 2.0f * u * parts[p].std : 1.0f;
            }
            ok = fwrite(buf, sizeof(float), n, f) == n;
        }
    }
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static double slowest(double seconds) {
    double max = seconds;
    MPI_Allreduce(&seconds, &max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return max;
}

static int run_capture(Model *m, const Options *o, const int *tokens, const char *path,
                       double *seconds) {
    MPI_Barrier(MPI_COMM_WORLD);
    double const t0 = bench_now();
    Activations *act = NULL;
    nq_status st = activations_create(path, MPI_COMM_WORLD, o->c.n_layers, o->N, o->T, o->c.dim,
                                      o->dtype, &act);
    if (st == NQ_OK) st = capture_run(m, tokens, o->N, o->T, act, 0);
    nq_status const closed = activations_close(act);
    if (st == NQ_OK) st = closed;
    *seconds = slowest(bench_now() - t0);
    if (st != NQ_OK) fprintf(stderr, "capture: %s\n", nq_last_error());
    return st == NQ_OK ? 0 : -1;
}

/* A resume's check of the captured file: every rank reads its shard of every level and
 * checks the sequences' checksums (pages dropped from the cache first, as after a restart). */
static int run_verify(const Options *o, int first, int count, const char *path, double *seconds) {
    int const fd = open(path, O_RDONLY);
    if (fd >= 0) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    double const t0 = bench_now();
    Activations *act = NULL;
    nq_status st = activations_open(path, MPI_COMM_WORLD, o->c.n_layers, o->N, o->T, o->c.dim, o->dtype, &act);
    if (st == NQ_OK) st = activations_verify(act, first, count);
    nq_status const closed = activations_close(act);
    if (st == NQ_OK) st = closed;
    *seconds = slowest(bench_now() - t0);
    if (st != NQ_OK) fprintf(stderr, "verify: %s\n", nq_last_error());
    return st == NQ_OK ? 0 : -1;
}

static int run_hdf5(const Options *o, float *x, int first, int count, const char *path,
                    double *seconds) {
    MPI_Barrier(MPI_COMM_WORLD);
    double const t0 = bench_now();
    Activations *act = NULL;
    nq_status st = activations_create(path, MPI_COMM_WORLD, o->c.n_layers, o->N, o->T, o->c.dim,
                                      o->dtype, &act);
    for (int l = 0; l <= o->c.n_layers && st == NQ_OK; l++)
        st = activations_write(act, l, first, count, x);
    if (st == NQ_OK) st = activations_flush(act);
    nq_status const closed = activations_close(act);
    if (st == NQ_OK) st = closed;
    *seconds = slowest(bench_now() - t0);
    if (st != NQ_OK) fprintf(stderr, "hdf5 write: %s\n", nq_last_error());
    return st == NQ_OK ? 0 : -1;
}

/* The same bytes at the offsets the HDF5 dataset would hold them (level-major). */
static int run_plain(const Options *o, const float *x, int first, int count, const char *path,
                     double *seconds) {
    size_t const per_seq = (size_t)o->T * o->c.dim * act_dtype_bytes(o->dtype);
    if (rank_ == 0) {
        int const fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
        if (fd >= 0) close(fd);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    double const t0 = bench_now();
    int const fd = open(path, O_WRONLY);
    int ok = fd >= 0;
    for (int l = 0; ok && l <= o->c.n_layers; l++) {
        const char *p = (const char *)x;
        size_t left = (size_t)count * per_seq;
        off_t at = (off_t)(((size_t)l * o->N + first) * per_seq);
        while (ok && left > 0) {
            ssize_t const n = pwrite(fd, p, left, at);
            ok = n > 0;
            if (ok) p += n, left -= (size_t)n, at += n;
        }
    }
    if (fd >= 0) ok = fsync(fd) == 0 && close(fd) == 0 && ok;
    *seconds = slowest(bench_now() - t0);
    if (!ok) fprintf(stderr, "plain write %s: %s\n", path, strerror(errno));
    return ok ? 0 : -1;
}

static int parse_options(int argc, char **argv, Options *o) {
    o->c = (ModelConfig){.dim = 512, .hidden_dim = 1376, .n_layers = 4, .n_heads = 8,
                         .n_kv_heads = 8, .vocab_size = 512, .seq_len = 256};
    o->T = 256, o->N = 64, o->repeats = 2, o->dir = ".", o->dtype = ACT_FP32;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        int const n = atoi(v);
        if (!strcmp(k, "--dim")) o->c.dim = n;
        else if (!strcmp(k, "--hidden")) o->c.hidden_dim = n;
        else if (!strcmp(k, "--layers")) o->c.n_layers = n;
        else if (!strcmp(k, "--heads")) o->c.n_heads = o->c.n_kv_heads = n;
        else if (!strcmp(k, "--seq-len")) o->T = o->c.seq_len = n;
        else if (!strcmp(k, "--sequences")) o->N = n;
        else if (!strcmp(k, "--repeats")) o->repeats = n;
        else if (!strcmp(k, "--dir")) o->dir = v;
        else if (!strcmp(k, "--dtype") && (!strcmp(v, "fp32") || !strcmp(v, "fp16") || !strcmp(v, "bf16")))
            o->dtype = v[1] == 'p' && v[2] == '3' ? ACT_FP32 : v[0] == 'f' ? ACT_FP16 : ACT_BF16;
        else return -1;
    }
    return (argc % 2 == 1 && o->repeats >= 1 && o->N >= size_) ? 0 : -1;
}

static int bench(const Options *o) {
    char model_path[4096], act_path[4096], plain_path[4096];
    snprintf(model_path, sizeof model_path, "%s/bench-capture-model.bin", o->dir);
    snprintf(act_path, sizeof act_path, "%s/bench-capture-act.h5", o->dir);
    snprintf(plain_path, sizeof plain_path, "%s/bench-capture-plain.bin", o->dir);
    int ok = rank_ != 0 || write_model(model_path, &o->c) == 0;
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    Model *m = NULL;
    if (!ok || model_open(model_path, "llama2c", &m) != NQ_OK) {
        fprintf(stderr, "model %s: %s\n", model_path, nq_last_error());
        return -1;
    }
    int first = 0, count = 0;
    layout_shard(o->N, size_, rank_, &first, &count);
    size_t const per_seq = (size_t)o->T * o->c.dim;
    int *tokens = malloc((size_t)o->N * o->T * sizeof *tokens);
    float *x = NULL; /* the write references' data, made after the first capture's peak RSS */
    if (!tokens) return -1;
    Rng rng;
    rng_seed(&rng, 5, 0);
    for (size_t i = 0; i < (size_t)o->N * o->T; i++)
        tokens[i] = (int)rng_below(&rng, (uint64_t)o->c.vocab_size);

    double const bytes = (double)act_dtype_bytes(o->dtype) * (o->c.n_layers + 1) * o->N * (double)per_seq;
    double best[4] = {INFINITY, INFINITY, INFINITY, INFINITY}, s, peak_rss = 0;
    for (int r = 0; r < o->repeats && ok; r++) {
        if (r == 0) bench_reset_peak_rss();
        ok = run_capture(m, o, tokens, act_path, &s) == 0;
        if (r == 0) {
            double const mine = bench_peak_rss_bytes();
            MPI_Allreduce(&mine, &peak_rss, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        }
        if (ok && s < best[0]) best[0] = s;
        ok = ok && run_verify(o, first, count, act_path, &s) == 0;
        if (ok && s < best[3]) best[3] = s;
        if (ok && !x) {
            x = malloc((size_t)(count ? count : 1) * per_seq * sizeof *x);
            if (!x) return -1;
            for (size_t i = 0; i < (size_t)count * per_seq; i++) x[i] = rng_uniform_float(&rng) - 0.5f;
        }
        ok = ok && run_hdf5(o, x, first, count, act_path, &s) == 0;
        if (ok && s < best[1]) best[1] = s;
        ok = ok && run_plain(o, x, first, count, plain_path, &s) == 0;
        if (ok && s < best[2]) best[2] = s;
    }
    if (ok && rank_ == 0) {
        double const tokens_n = (double)o->N * o->T;
        printf("\n== capture, %d rank%s: d %d, f %d, L %d, H %d; %d sequences x %d tokens; "
               "%.1f MB of %s activations (best of %d)\n", size_, size_ > 1 ? "s" : "", o->c.dim,
               o->c.hidden_dim, o->c.n_layers, o->c.n_heads, o->N, o->T, bytes * 1e-6,
               act_dtype_name(o->dtype), o->repeats);
        NupesConfig cfg;
        config_defaults(&cfg);
        Plan plan;
        ModelConfig pc = o->c;
        pc.tied_embeddings = 1;
        if (plan_compute(&pc, &cfg, size_, o->N, o->T, &plan) == NQ_OK)
            printf("   peak RSS of the capture (largest rank): %.2f GiB; the plan: %.2f GiB (block weights "
                   "%.2f + sequences %.2f + forward-only scratch %.2f + head %.2f)\n",
                   peak_rss / 1073741824.0, (plan.mem.capture_total + plan.mem.head) / 1073741824.0,
                   (plan.mem.capture_total - plan.mem.capture_shard - plan.mem.capture_forward) / 1073741824.0,
                   plan.mem.capture_shard / 1073741824.0, plan.mem.capture_forward / 1073741824.0,
                   plan.mem.head / 1073741824.0);
        printf("   %-34s %9s %11s %12s %9s\n", "what", "seconds", "MB/s", "tokens/s", "of plain");
        const char *names[4] = {"capture (model + HDF5 writes)", "HDF5 writes only",
                                "plain pwrite + fsync", "resume check (read + XXH3)"};
        for (int i = 0; i < 4; i++) {
            printf("   %-34s %9.3f %11.1f ", names[i], best[i], bytes / best[i] * 1e-6);
            if (i == 0) printf("%12.0f", tokens_n / best[i]);
            else printf("%12s", "");
            printf(" %8.0f%%\n", 100 * best[2] / best[i]);
        }
    }
    if (rank_ == 0) unlink(model_path), unlink(act_path), unlink(plain_path);
    model_close(m);
    free(tokens);
    free(x);
    return ok ? 0 : -1;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    Options o;
    int rc = 2;
    if (parse_options(argc, argv, &o) != 0) {
        if (rank_ == 0)
            fprintf(stderr, "usage: %s [--dim 512] [--hidden 1376] [--layers 4] [--heads 8] "
                            "[--seq-len 256] [--sequences 64] [--repeats 2] [--dtype fp32|fp16|bf16] [--dir D]\n", argv[0]);
    } else {
        rc = bench(&o) == 0 ? 0 : 3;
    }
    MPI_Finalize();
    return rc;
}
