/* The speed probes of the dry-run plan (mpi/plan.h): short timings of this process's sgemm,
 * memory bandwidth, page faults, model file reads, zstd on codes and on fp32 weights, and
 * a block's setup, which the plan scales to the job. */
#include "plan.h"

#include <cblas.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "block.h"
#include "clock.h"
#include "float16.h"
#include "gemm.h"
#include "h5util.h"
#include "h5zstd.h"
#include "job.h"
#include "quantizer.h"
#include "recon.h"

/* The probes time many calls and keep the median one: the job meets a neighbour's
 * interruptions (another rank, the launcher, the system) as often as a median call does,
 * where the fastest call of a probe dodges them. At 7B width, plans from the fastest
 * calls were 12-18% short of the job's probe passes and hand-on. */
#define PROBE_MAX_CALLS 512

static int compare_doubles(const void *a, const void *b) {
    double const x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double plan_sgemm_probe_gflops(double seconds) {
    int const n = 1024;
    size_t const nn = (size_t)n * n;
    float *a = malloc(3 * nn * sizeof(float));
    if (!a) return 0;
    float *b = a + nn, *c = b + nn;
    for (size_t i = 0; i < 2 * nn; i++) a[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
    double const t0 = nq_seconds();
    double t = t0, best = INFINITY;
    long calls = 0;
    while (t - t0 < seconds || calls < 2) { /* the fastest call: a busy neighbour only slows some */
        double const start = t;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        calls++;
        t = nq_seconds();
        if (t - start < best) best = t - start;
    }
    free(a);
    return 2.0 * n * (double)nn / best / 1e9;
}

double plan_memory_probe_gbs(double seconds) {
    size_t const n = (size_t)8 << 20; /* 32 MB per array: beyond the caches */
    float *x = malloc(3 * n * sizeof(float));
    if (!x) return 0;
    float *y = x + n, *z = y + n;
    for (size_t i = 0; i < 3 * n; i++) x[i] = 1.0f;
    double const t0 = nq_seconds();
    double t = t0;
    long passes = 0;
    while (t - t0 < seconds || passes < 2) {
        for (size_t i = 0; i < n; i++) x[i] = y[i] + 0.5f * z[i];
        passes++;
        t = nq_seconds();
    }
    volatile float sink = x[n / 2];
    (void)sink;
    free(x);
    return 3.0 * 4.0 * (double)n * passes / (t - t0) / 1e9;
}

/* A chunk allocated as the job's arrays are, a byte written per page; NULL when out of memory. */
static volatile unsigned char *fault_in_chunk(size_t bytes) {
    volatile unsigned char *x = nq_calloc(bytes, 1, "the page fault probe");
    for (size_t i = 0; x && i < bytes; i += 4096) x[i] = 1;
    return x;
}

double plan_page_touch_probe_gbs(double seconds, double *recycled_gbs) {
    /* The job's allocator maps each chunk fresh, and the huge-page advice its arrays get
     * applies (src/status.h). The chunks are all held until the end: memory freed a moment
     * ago faults back in far faster than the job's fresh arrays do (on a VM: 64 MB
     * allocated and freed in turn read 3.5-5.8 GB/s in 2 MB pages, where 2 GB fresh read
     * 0.6-0.8), so the fresh pass must not reuse it. The same holds across processes on a
     * VM for ~10-20 s after a job frees its memory (the host has not taken it back yet): a
     * dry run right after a job plans its faults too fast (bench/rehearse_7b.sh --settle).
     * The recycled pass then measures exactly that, as the job meets it when it frees one
     * block's fp32 weights and reads the next. */
    enum { CHUNKS_MIN = 4, CHUNKS_MAX = 16 };
    size_t const bytes = (size_t)64 << 20;
    volatile unsigned char *chunk[CHUNKS_MAX];
    double const t0 = nq_seconds();
    double t = t0;
    int n = 0;
    while (n < CHUNKS_MAX && (t - t0 < seconds || n < CHUNKS_MIN) && (chunk[n] = fault_in_chunk(bytes)) != NULL) {
        n++;
        t = nq_seconds();
    }
    double const fresh = n > 0 ? (double)bytes * n / (t - t0) / 1e9 : 0;
    for (int i = 0; i < n; i++) free((void *)chunk[i]);
    if (recycled_gbs) {
        *recycled_gbs = 0;
        double const r0 = nq_seconds();
        int k = 0;
        while (k < n && (chunk[k] = fault_in_chunk(bytes)) != NULL) k++;
        double const r1 = nq_seconds();
        for (int i = 0; i < k; i++) free((void *)chunk[i]);
        if (k == n && n > 0 && r1 > r0) *recycled_gbs = (double)bytes * n / (r1 - r0) / 1e9;
    }
    return fresh;
}

/* The largest regular file in dir whose name ends in ".safetensors" (a sharded model's
 * shards are about equal: any one reads as the rest). */
static int largest_safetensors(const char *dir, char *out, size_t size) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    off_t best = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t const len = strlen(e->d_name);
        if (len < 12 || strcmp(e->d_name + len - 12, ".safetensors") != 0) continue;
        char path[PATH_MAX];
        struct stat st;
        int const k = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (k < 0 || (size_t)k >= sizeof path || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (st.st_size > best && (size_t)snprintf(out, size, "%s", path) < size) best = st.st_size;
    }
    closedir(d);
    return best > 0;
}

double plan_model_read_probe_mbs(const char *model_path, double seconds, char *file, size_t file_size) {
    char path[PATH_MAX];
    struct stat st;
    if (file_size > 0) file[0] = '\0';
    if (!model_path || !model_path[0] || stat(model_path, &st) != 0) return 0;
    int const found = S_ISDIR(st.st_mode) ? largest_safetensors(model_path, path, sizeof path) && stat(path, &st) == 0
                      : S_ISREG(st.st_mode) ? (size_t)snprintf(path, sizeof path, "%s", model_path) < sizeof path
                                            : 0;
    if (!found) return 0;
    int const fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    size_t const len = (size_t)st.st_size < ((size_t)256 << 20) ? (size_t)st.st_size : (size_t)256 << 20;
    unsigned char *map = len > 0 ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    close(fd);
    if (map == MAP_FAILED) return 0;
    /* A byte of every page, as converting a tensor reads its pages (the kernel's readahead
     * brings the rest). */
    size_t const page = 4096, step = (size_t)1 << 20;
    unsigned sum = 0;
    size_t done = 0;
    double const t0 = nq_seconds();
    double t = t0;
    while (done < len && (t - t0 < seconds || done < ((size_t)16 << 20))) {
        size_t const end = done + step < len ? done + step : len;
        for (size_t i = done; i < end; i += page) sum += ((volatile unsigned char *)map)[i];
        done = end;
        t = nq_seconds();
    }
    munmap(map, len);
    (void)sum;
    if (file_size > 0) snprintf(file, file_size, "%s", path);
    return t > t0 ? (double)done / (t - t0) / 1e6 : 0;
}

void plan_probe_weights(float *w, size_t n, uint32_t seed) {
    uint32_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        double const u = ((x >> 8) + 0.5) / 16777216.0;
        double const v = u < 0.5 ? log(2 * u) : -log(2 * (1 - u));
        w[i] = (float)(0.02 * v * ((x & 1023) == 0 ? 20.0 : 1.0));
    }
}

double plan_setup_probe_seconds_per_weight(const NupesConfig *cfg, double seconds, double *code_bits,
                                           double *quantize_seconds_per_weight) {
    *quantize_seconds_per_weight = 0;
    QuantSpec const spec = config_quant_spec(cfg);
    int const rows = 256, cols = 4096;
    QuantShape const sh = quant_shape(spec, rows, cols);
    size_t const n = (size_t)rows * cols, ns = (size_t)rows * (size_t)sh.groups;
    float *w = malloc(n * sizeof *w), *z = malloc(n * sizeof *z), *scales = malloc(ns * sizeof *scales);
    float *a = malloc((size_t)(sh.n_exponents > 0 ? sh.n_exponents : 1) * sizeof *a);
    double per_weight = 0;
    if (w && z && scales && a) {
        plan_probe_weights(w, n, 88172645u);
        QuantInit const how = cfg->method == METHOD_RTN ? QUANT_INIT_FIXED : QUANT_INIT_SEARCH;
        QuantLatents out = {z, scales, a};
        /* the median of at least 3 passes: one pass of ~0.7 s at 7B settings once took 37%
         * longer than in the dry run before it */
        double passes[PROBE_MAX_CALLS];
        int k = 0;
        for (double const t0 = nq_seconds(); k < PROBE_MAX_CALLS && (k < 3 || nq_seconds() - t0 < seconds); k++) {
            double const start = nq_seconds();
            quantizer_of(spec)->init(spec, sh, w, how, &out);
            passes[k] = nq_seconds() - start;
        }
        per_weight = median_of(passes, k) / (double)n;
        /* the codes of that start, as a done file's zstd filter stores them */
        size_t const cap = ZSTD_compressBound(n);
        int8_t *codes = malloc(n);
        void *dst = malloc(cap);
        if (codes && dst) {
            /* the quantizer's forward from that start, as a probe pass runs it over a block
             * before its forward (src/recon.c), w_hat over w: done with it; the median call */
            int calls = 0;
            for (double const t0 = nq_seconds(); calls < PROBE_MAX_CALLS && (calls < 3 || nq_seconds() - t0 < 0.05);
                 calls++) {
                double const start = nq_seconds();
                quantizer_of(spec)->forward(spec, sh, &out, codes, w);
                passes[calls] = nq_seconds() - start;
            }
            *quantize_seconds_per_weight = median_of(passes, calls) / (double)n;
            size_t const stored = h5zstd_compress_chunk(cfg->zstd_level, H5Z_ZSTD_PARSE_SYMBOLS, codes, n, dst, cap);
            if (stored > 0) *code_bits = 8.0 * (double)stored / (double)n;
        }
        free(codes);
        free(dst);
    }
    free(w);
    free(z);
    free(scales);
    free(a);
    return per_weight;
}

/* Writes `data` (n elements of `type`, rows of 4096) through h5u_write, as a done file or
 * the checkpoint stores an array (zstd chunks, the checksum, HDF5's copies), into an
 * in-memory file, again and again for `seconds` (at least once); with `back`, reads it back
 * through h5u_read_checked (decompressed, checksum verified) each time too. Returns the
 * seconds per pass of the write and of the read (0 when not asked), the bytes stored. */
typedef struct {
    double write_seconds, read_seconds;
    size_t stored;
} StorePass;

/* The median pass of at least 3 (PROBE_MAX_CALLS above). */
static int store_passes(const void *data, size_t n, H5UType type, int level, double seconds, void *back,
                        StorePass *out) {
    hsize_t const dims[2] = {(hsize_t)(n / 4096), 4096};
    double write[PROBE_MAX_CALLS], read[PROBE_MAX_CALLS];
    int passes = 0;
    memset(out, 0, sizeof *out);
    if (h5u_init() != NQ_OK) return -1;
    for (double const t0 = nq_seconds(); passes < PROBE_MAX_CALLS && (passes < 3 || nq_seconds() - t0 < seconds);
         passes++) {
        hid_t file = -1;
        if (h5u_create_in_memory("dry-run-probe.h5", &file) != NQ_OK) {
            nq_clear_error(); /* a probe that cannot run plans without it, as below */
            return -1;
        }
        double const t1 = nq_seconds();
        nq_status st = h5u_write(file, "dry-run-probe.h5", "a", type, 2, dims, data, level);
        double const t2 = nq_seconds();
        if (st == NQ_OK && back) st = h5u_read_checked(file, "dry-run-probe.h5", "a", type, 2, dims, back);
        double const t3 = nq_seconds();
        hid_t const dset = st == NQ_OK ? H5Dopen2(file, "a", H5P_DEFAULT) : -1;
        out->stored = dset >= 0 ? (size_t)H5Dget_storage_size(dset) : 0;
        h5u_close(dset);
        h5u_close(file);
        if (st != NQ_OK || out->stored == 0) {
            nq_clear_error();
            return -1;
        }
        write[passes] = t2 - t1;
        read[passes] = t3 - t2;
    }
    out->write_seconds = median_of(write, passes);
    out->read_seconds = back ? median_of(read, passes) : 0;
    return 0;
}

double plan_codes_store_probe_mbs(int level, double seconds, double *read_mbs) {
    size_t const n = (size_t)8 << 20; /* 8 MB of codes */
    signed char *codes = malloc(n), *back = malloc(n);
    double mbs = 0;
    *read_mbs = 0;
    if (codes && back) {
        memset(back, 0, n); /* touched: the plan counts the read-back's page faults on their own */
        uint32_t x = 2463534242u; /* xorshift: codes concentrated near 0, as quantized weights are */
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            codes[i] = (signed char)((int)(x % 7) - 3 + (int)((x >> 8) % 3) - 1);
        }
        StorePass pass;
        if (store_passes(codes, n, H5U_I8, level, seconds, back, &pass) == 0) {
            mbs = (double)n / pass.write_seconds / 1e6;
            *read_mbs = (double)n / pass.read_seconds / 1e6;
        }
    }
    free(codes);
    free(back);
    return mbs;
}

double plan_fp32_store_probe(const char *source_dtype, int level, double seconds, double *mbs) {
    size_t const n = (size_t)4 << 20; /* 16 MB, 16 of the files' chunks */
    int const bf16 = strcmp(source_dtype, "bfloat16") == 0, f16 = strcmp(source_dtype, "float16") == 0;
    float *w = malloc(n * sizeof *w);
    double bytes = 4.0;
    *mbs = 0;
    if (w) {
        /* Weights as LLaMA's look: Gaussian, sd 0.02 with a log-normal scale per row of
         * 4096, in the source's precision (its fp32 copy keeps the zero low bits). */
        uint64_t x = 88172645463325252ull;
        double row_scale = 1.0;
        for (size_t i = 0; i < n; i++) {
            double g[2];
            for (int k = 0; k < 2; k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                g[k] = ((double)(x >> 11) + 0.5) / 9007199254740992.0;
            }
            double const normal = sqrt(-2.0 * log(g[0])) * cos(6.283185307179586 * g[1]);
            if (i % 4096 == 0) row_scale = exp(0.3 * normal);
            float const v = (float)(0.02 * row_scale * normal);
            w[i] = bf16 ? bf16_to_float(float_to_bf16(v)) : f16 ? half_round(v) : v;
        }
        StorePass pass;
        if (store_passes(w, n, H5U_F32, level, seconds, NULL, &pass) == 0) {
            bytes = (double)pass.stored / (double)n;
            *mbs = (double)(n * sizeof(float)) / pass.write_seconds / 1e6;
        }
    }
    free(w);
    return bytes;
}

double plan_products_probe_gflops(int rows, int cols, int inner, double seconds) {
    if (rows < 1 || cols < 1 || inner < 1) return 0;
    size_t const na = (size_t)rows * inner, nb = (size_t)cols * inner, nc = (size_t)rows * cols;
    float *a = malloc((na + nb + nc) * sizeof(float));
    if (!a) return 0;
    float *b = a + na, *c = b + nb;
    for (size_t i = 0; i < na + nb; i++) a[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    /* out [rows][cols] = in [rows][inner] w^T, as linear_forward calls it: one tile of
     * src/gemm.c, so one thread */
    gemm(0, 1, rows, cols, inner, 1.0f, a, inner, b, inner, 0.0f, c, cols); /* warm-up */
    double calls[PROBE_MAX_CALLS];
    int n = 0;
    for (double const t0 = nq_seconds(); n < PROBE_MAX_CALLS && (n < 3 || nq_seconds() - t0 < seconds); n++) {
        double const start = nq_seconds();
        gemm(0, 1, rows, cols, inner, 1.0f, a, inner, b, inner, 0.0f, c, cols);
        calls[n] = nq_seconds() - start;
    }
    free(a);
    return 2.0 * rows * (double)cols * inner / median_of(calls, n) / 1e9;
}

typedef struct {
    double flops;   /* of the products */
    double seconds; /* wall time on the rank's threads */
    double busy;    /* thread-seconds of tiles run */
} ProductsTime;

/* Adds `count` products M x N x K as src/gemm.c runs them on `threads` threads: its tiles
 * shared out in rounds, each tile on one thread at tile_gflops (a partial tile counted
 * whole). */
static void add_products(ProductsTime *t, double count, int M, int N, int K, int threads, double tile_gflops) {
    int tile_m = M, tile_n = N;
    gemm_tiles(M, N, K, &tile_m, &tile_n);
    long const tiles = (long)((M + tile_m - 1) / tile_m) * ((N + tile_n - 1) / tile_n);
    long const rounds = (tiles + threads - 1) / threads;
    double const tile_seconds = 2.0 * tile_m * (double)tile_n * K / (tile_gflops * 1e9);
    t->flops += count * 2.0 * M * (double)N * K;
    t->seconds += count * (double)rounds * tile_seconds;
    t->busy += count * (double)tiles * tile_seconds;
}

/* plan_products_probe_gflops once per tile shape in this process: the dry run asks for the
 * same tiles at several row counts (src/gemm.c's tiles are fixed once the rows are many). */
static double tile_gflops(int rows, int cols, int inner, double seconds) {
    static struct {
        int rows, cols, inner;
        double gflops;
    } seen[16];
    static int n_seen;
    for (int i = 0; i < n_seen; i++)
        if (seen[i].rows == rows && seen[i].cols == cols && seen[i].inner == inner) return seen[i].gflops;
    double const gflops = plan_products_probe_gflops(rows, cols, inner, seconds);
    if (gflops > 0 && n_seen < (int)(sizeof seen / sizeof seen[0])) {
        seen[n_seen].rows = rows, seen[n_seen].cols = cols, seen[n_seen].inner = inner;
        seen[n_seen++].gflops = gflops;
    }
    return gflops;
}

double plan_rank_products_gflops(const ModelConfig *c, int B, int T, int threads, int forward_only,
                                 double *threads_busy) {
    int const N = B * T, d = c->dim, hs = c->dim / c->n_heads;
    int tile_m = N, tile_n = d, att_m = T, att_n = T;
    gemm_tiles(N, d, d, &tile_m, &tile_n);
    gemm_tiles(T, T, hs, &att_m, &att_n);
    /* the median call of 0.5 s of them (a probe of 0.25 s once read 24 GFLOP/s where the
     * next dry runs read 33-34) */
    double const proj = tile_gflops(tile_m, tile_n, d, 0.5);
    double const att = tile_gflops(att_m, att_n, hs, 0.05);
    if (!(proj > 0) || !(att > 0) || threads < 1) return 0;
    ProductsTime t = {0};
    for (int i = 0; i < N_MATS; i++) {
        int const out = mat_rows(c, i), in = mat_cols(c, i);
        add_products(&t, 1, N, out, in, threads, proj); /* forward */
        if (forward_only) continue;
        add_products(&t, 1, out, in, N, threads, proj); /* dW */
        if (i != MAT_WQ && i != MAT_WK && i != MAT_WV) add_products(&t, 1, N, in, out, threads, proj); /* dX */
    }
    /* attention (src/attention.c): the (sequence, head) pairs side by side, each on one
     * thread with all its products' tiles: QK^T and PV forward (4 T^2 hs FLOPs); the
     * backward, by (sequence, kv group), recomputes QK^T and runs dV, dP, dQ, dK for each
     * head of the group (10 T^2 hs) */
    double const pair = 2.0 * T * (double)T * hs / (att * 1e9); /* one product's seconds */
    int const group = c->n_heads / c->n_kv_heads;
    long const units[2] = {(long)B * c->n_heads, (long)B * c->n_kv_heads};
    double const unit_seconds[2] = {2 * pair, 5 * pair * group};
    for (int pass = 0; pass < (forward_only ? 1 : 2); pass++) {
        long const rounds = (units[pass] + threads - 1) / threads;
        t.flops += (double)units[pass] * unit_seconds[pass] * att * 1e9;
        t.seconds += (double)rounds * unit_seconds[pass];
        t.busy += (double)units[pass] * unit_seconds[pass];
    }
    if (threads_busy) *threads_busy = t.busy / (t.seconds * threads);
    return t.flops / t.seconds / 1e9;
}

double plan_elementwise_probe_seconds_per_weight(const NupesConfig *cfg, double seconds) {
    /* a small block whose arrays (~21 bytes per weight, 3.4 M weights) are far beyond the
     * caches, as a 7B block's are: the element-wise passes are memory-bound */
    ModelConfig c = {0};
    c.dim = 512;
    c.hidden_dim = 1536;
    c.n_layers = 1;
    c.n_heads = c.n_kv_heads = 4;
    c.vocab_size = 256;
    c.seq_len = 16;
    c.rope_theta = 10000.0f;
    c.norm_eps = 1e-5f;
    c.rope_style = ROPE_INTERLEAVED;
    c.tied_embeddings = 1;
    int const T = c.seq_len;
    ReconParams p = job_recon_params(cfg);
    p.fixed_start = 1; /* the steps are timed, not their result: no exponent search */
    p.iterations = 1000000;
    p.batch = 1;
    if (p.method != RECON_NUPES) return 0; /* nothing is learned: no iterations */
    size_t const nd = (size_t)T * c.dim;
    float *norms = malloc(2 * (size_t)c.dim * sizeof *norms), *x = malloc(2 * nd * sizeof *x);
    float *mats[N_MATS] = {0};
    BlockWeights fp = {.attn_norm = norms, .ffn_norm = norms ? norms + c.dim : NULL};
    size_t quantized = 0;
    int ok = norms && x;
    for (int i = 0; i < N_MATS; i++) {
        size_t const n = (size_t)mat_rows(&c, i) * mat_cols(&c, i);
        mats[i] = ok ? malloc(n * sizeof(float)) : NULL;
        ok = ok && mats[i];
        if (ok) plan_probe_weights(mats[i], n, 2463534242u + (uint32_t)i);
        fp.mat[i] = mats[i];
        if (!(p.skip_mask & (1u << i))) quantized += n;
    }
    double per_weight = 0;
    Recon *r = NULL;
    if (ok && quantized > 0) {
        for (int i = 0; i < 2 * c.dim; i++) norms[i] = 1.0f;
        plan_probe_weights(x, 2 * nd, 88172645u); /* x, then the target y */
        r = recon_create(&c, &fp, &p, 0, 1, T, 1);
    }
    if (r) {
        ReconTimings t = {0};
        recon_set_timings(r, &t);
        double steps[PROBE_MAX_CALLS];
        int n = 0;
        double const t0 = nq_seconds();
        for (int it = 0; n < PROBE_MAX_CALLS && (nq_seconds() - t0 < seconds || n < 3); it++) {
            memset(&t, 0, sizeof t);
            if (isnan(recon_accumulate_gradient(r, x, x + nd, 1, 1))) break;
            recon_apply(r);
            double const ew = t.seconds[RECON_PHASE_QUANTIZE] + t.seconds[RECON_PHASE_QUANT_BACKWARD] +
                              t.seconds[RECON_PHASE_ADAM];
            if (it == 0) continue; /* the first touch of every array */
            steps[n++] = ew; /* the median step, as for the products */
        }
        if (n > 0) per_weight = median_of(steps, n) / (double)quantized;
    }
    recon_free(r);
    for (int i = 0; i < N_MATS; i++) free(mats[i]);
    free(norms);
    free(x);
    return per_weight;
}
