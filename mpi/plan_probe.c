/* The speed probes of the dry-run plan (mpi/plan.h): short timings of this process's sgemm,
 * memory bandwidth, zstd on codes and on fp32 weights, and a block's setup, which the plan
 * scales to the job. */
#include "plan.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zstd.h>

#include "block.h"
#include "float16.h"
#include "gemm.h"
#include "h5util.h"
#include "h5zstd.h"
#include "job.h"
#include "quantizer.h"
#include "recon.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double plan_sgemm_probe_gflops(double seconds) {
    int const n = 1024;
    size_t const nn = (size_t)n * n;
    float *a = malloc(3 * nn * sizeof(float));
    if (!a) return 0;
    float *b = a + nn, *c = b + nn;
    for (size_t i = 0; i < 2 * nn; i++) a[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
    double const t0 = now_seconds();
    double t = t0, best = INFINITY;
    long calls = 0;
    while (t - t0 < seconds || calls < 2) { /* the fastest call: a busy neighbour only slows some */
        double const start = t;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        calls++;
        t = now_seconds();
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
    double const t0 = now_seconds();
    double t = t0;
    long passes = 0;
    while (t - t0 < seconds || passes < 2) {
        for (size_t i = 0; i < n; i++) x[i] = y[i] + 0.5f * z[i];
        passes++;
        t = now_seconds();
    }
    volatile float sink = x[n / 2];
    (void)sink;
    free(x);
    return 3.0 * 4.0 * (double)n * passes / (t - t0) / 1e9;
}

double plan_page_touch_probe_gbs(double seconds) {
    size_t const bytes = (size_t)64 << 20, page = 4096; /* malloc maps it fresh: every page faults */
    double const t0 = now_seconds();
    double t = t0;
    long rounds = 0;
    while (t - t0 < seconds || rounds < 2) {
        volatile unsigned char *x = malloc(bytes);
        if (!x) return 0;
        for (size_t i = 0; i < bytes; i += page) x[i] = 1;
        free((void *)x);
        rounds++;
        t = now_seconds();
    }
    return (double)bytes * rounds / (t - t0) / 1e9;
}

/* Heavy-tailed weights, as LLaMA's rows look to a quantizer: a Laplace draw of sd ~0.03
 * times a rare (1 in 1024) outlier factor of 20. */
static void fill_heavy_tailed(float *w, size_t n, uint32_t seed) {
    uint32_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        double const u = ((x >> 8) + 0.5) / 16777216.0;
        double const v = u < 0.5 ? log(2 * u) : -log(2 * (1 - u));
        w[i] = (float)(0.02 * v * ((x & 1023) == 0 ? 20.0 : 1.0));
    }
}

double plan_setup_probe_seconds_per_weight(const NupesConfig *cfg, double seconds, double *code_bits) {
    QuantSpec const spec = config_quant_spec(cfg);
    int const rows = 256, cols = 4096;
    QuantShape const sh = quant_shape(spec, rows, cols);
    size_t const n = (size_t)rows * cols, ns = (size_t)rows * (size_t)sh.groups;
    float *w = malloc(n * sizeof *w), *z = malloc(n * sizeof *z), *scales = malloc(ns * sizeof *scales);
    float *a = malloc((size_t)(sh.n_exponents > 0 ? sh.n_exponents : 1) * sizeof *a);
    double per_weight = 0;
    if (w && z && scales && a) {
        fill_heavy_tailed(w, n, 88172645u);
        QuantInit const how = cfg->method == METHOD_RTN ? QUANT_INIT_FIXED : QUANT_INIT_SEARCH;
        QuantLatents out = {z, scales, a};
        double const t0 = now_seconds();
        double t = t0;
        long passes = 0;
        while (t - t0 < seconds || passes < 1) {
            quantizer_of(spec)->init(spec, sh, w, how, &out);
            passes++;
            t = now_seconds();
        }
        per_weight = (t - t0) / ((double)passes * (double)n);
        /* the codes of that start, as a done file's zstd filter stores them */
        size_t const cap = ZSTD_compressBound(n);
        int8_t *codes = malloc(n);
        void *dst = malloc(cap);
        if (codes && dst) {
            quantizer_of(spec)->forward(spec, sh, &out, codes, w); /* w_hat over w: done with it */
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

double plan_zstd_probe_mbs(int level, double seconds) {
    size_t const n = (size_t)8 << 20; /* 8 MB of codes */
    size_t const cap = ZSTD_compressBound(n);
    signed char *codes = malloc(n);
    void *dst = malloc(cap);
    double mbs = 0;
    if (codes && dst) {
        uint32_t x = 2463534242u; /* xorshift: codes concentrated near 0, as quantized weights are */
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            codes[i] = (signed char)((int)(x % 7) - 3 + (int)((x >> 8) % 3) - 1);
        }
        double const t0 = now_seconds();
        double t = t0;
        long passes = 0;
        while (t - t0 < seconds || passes < 1) {
            if (h5zstd_compress_chunk(level, H5Z_ZSTD_PARSE_SYMBOLS, codes, n, dst, cap) == 0) break;
            passes++;
            t = now_seconds();
        }
        if (passes > 0) mbs = (double)n * passes / (t - t0) / 1e6;
    }
    free(codes);
    free(dst);
    return mbs;
}

double plan_fp32_zstd_probe(const char *source_dtype, int level, double seconds, double *mbs) {
    size_t const n = (size_t)1 << 20, chunk = H5U_CHUNK_BYTES / sizeof(float); /* 4 MB, in the files' chunks */
    size_t const cap = ZSTD_compressBound(chunk * sizeof(float));
    int const bf16 = strcmp(source_dtype, "bfloat16") == 0, f16 = strcmp(source_dtype, "float16") == 0;
    float *w = malloc(n * sizeof *w);
    void *dst = malloc(cap);
    double bytes = 4.0;
    *mbs = 0;
    if (w && dst) {
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
        double const t0 = now_seconds();
        double t = t0;
        size_t stored = 0, passes = 0;
        while (t - t0 < seconds || passes < 1) {
            stored = 0;
            for (size_t i = 0; i < n; i += chunk) {
                size_t const got = h5zstd_compress_chunk(level, H5Z_ZSTD_PARSE_LEVEL, w + i, chunk * sizeof(float), dst, cap);
                if (got == 0) goto done;
                stored += got;
            }
            passes++;
            t = now_seconds();
        }
        bytes = (double)stored / (double)n;
        *mbs = (double)(n * sizeof(float)) * (double)passes / (t - t0) / 1e6;
    }
done:
    free(w);
    free(dst);
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
    double const t0 = now_seconds();
    double t = t0, best = INFINITY;
    long calls = 0;
    while (t - t0 < seconds || calls < 2) { /* the fastest call: a busy neighbour only slows some */
        double const start = t;
        gemm(0, 1, rows, cols, inner, 1.0f, a, inner, b, inner, 0.0f, c, cols);
        calls++;
        t = now_seconds();
        if (t - start < best) best = t - start;
    }
    free(a);
    return 2.0 * rows * (double)cols * inner / best / 1e9;
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

double plan_rank_products_gflops(const ModelConfig *c, int B, int T, int threads, int forward_only,
                                 double *threads_busy) {
    int const N = B * T, d = c->dim, hs = c->dim / c->n_heads;
    int tile_m = N, tile_n = d, att_m = T, att_n = T;
    gemm_tiles(N, d, d, &tile_m, &tile_n);
    gemm_tiles(T, T, hs, &att_m, &att_n);
    double const proj = plan_products_probe_gflops(tile_m, tile_n, d, 0.25);
    double const att = plan_products_probe_gflops(att_m, att_n, hs, 0.05);
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
        if (ok) fill_heavy_tailed(mats[i], n, 2463534242u + (uint32_t)i);
        fp.mat[i] = mats[i];
        if (!(p.skip_mask & (1u << i))) quantized += n;
    }
    double per_weight = 0;
    Recon *r = NULL;
    if (ok && quantized > 0) {
        for (int i = 0; i < 2 * c.dim; i++) norms[i] = 1.0f;
        fill_heavy_tailed(x, 2 * nd, 88172645u); /* x, then the target y */
        r = recon_create(&c, &fp, &p, 0, 1, T, 1);
    }
    if (r) {
        ReconTimings t = {0};
        recon_set_timings(r, &t);
        double best = INFINITY;
        int n = 0;
        double const t0 = now_seconds();
        for (int it = 0; now_seconds() - t0 < seconds || n < 2; it++) {
            memset(&t, 0, sizeof t);
            if (isnan(recon_accumulate_gradient(r, x, x + nd, 1, 1))) break;
            recon_apply(r);
            double const ew = t.seconds[RECON_PHASE_QUANTIZE] + t.seconds[RECON_PHASE_QUANT_BACKWARD] +
                              t.seconds[RECON_PHASE_ADAM];
            if (it == 0) continue; /* the first touch of every array */
            if (ew < best) best = ew; /* the fastest iteration, as for the products */
            n++;
        }
        if (n > 0) per_weight = best / (double)quantized;
    }
    recon_free(r);
    for (int i = 0; i < N_MATS; i++) free(mats[i]);
    free(norms);
    free(x);
    return per_weight;
}
