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

#include "float16.h"
#include "h5util.h"
#include "h5zstd.h"
#include "quantizer.h"

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
    double t = t0;
    long calls = 0;
    while (t - t0 < seconds || calls < 2) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        calls++;
        t = now_seconds();
    }
    free(a);
    return 2.0 * n * (double)nn * calls / (t - t0) / 1e9;
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

double plan_setup_probe_seconds_per_weight(const NupesConfig *cfg, double seconds) {
    QuantSpec const spec = config_quant_spec(cfg);
    int const rows = 256, cols = 4096;
    QuantShape const sh = quant_shape(spec, rows, cols);
    size_t const n = (size_t)rows * cols, ns = (size_t)rows * (size_t)sh.groups;
    float *w = malloc(n * sizeof *w), *z = malloc(n * sizeof *z), *scales = malloc(ns * sizeof *scales);
    float *a = malloc((size_t)(sh.n_exponents > 0 ? sh.n_exponents : 1) * sizeof *a);
    double per_weight = 0;
    if (w && z && scales && a) {
        uint32_t x = 88172645u; /* heavy-tailed: a Laplace draw times a rare outlier factor */
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            double const u = ((x >> 8) + 0.5) / 16777216.0;
            double const v = u < 0.5 ? log(2 * u) : -log(2 * (1 - u));
            w[i] = (float)(0.02 * v * ((x & 1023) == 0 ? 20.0 : 1.0));
        }
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
