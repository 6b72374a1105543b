/* Helpers shared by the benchmarks (header only: every bench/NAME.c is its own program).
 *
 * Clocks, resident memory (VmRSS, VmHWM, and resetting the high-water mark through
 * /proc/self/clear_refs so that one phase's peak can be measured after setup), and the
 * sgemm reference every compute benchmark divides by: a square product through
 * cblas_sgemm, measured in the same run (the machine is shared: ratios stay meaningful
 * when absolute figures are noisy). */
#ifndef NUPES_BENCH_UTIL_H
#define NUPES_BENCH_UTIL_H

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "parallel.h"

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A "Field:   123 kB" line of a /proc file (/proc/self/status, /proc/meminfo) in bytes
 * (0 when unavailable). */
static inline double bench_proc_kb_field_bytes(const char *path, const char *field) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256];
    double kb = 0;
    size_t const len = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            kb = strtod(line + len + 1, NULL);
            break;
        }
    fclose(f);
    return kb * 1024.0;
}

static inline double bench_proc_status_bytes(const char *field) {
    return bench_proc_kb_field_bytes("/proc/self/status", field);
}
static inline double bench_proc_meminfo_bytes(const char *field) {
    return bench_proc_kb_field_bytes("/proc/meminfo", field);
}

static inline double bench_rss_bytes(void) { return bench_proc_status_bytes("VmRSS"); }
static inline double bench_peak_rss_bytes(void) { return bench_proc_status_bytes("VmHWM"); }

/* Resets VmHWM to the current RSS (Linux >= 4.0). Returns 0 on success. */
static inline int bench_reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int const ok = fputs("5", f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Best GFLOP/s of `repeats` products C = A B, n x n x n, by OpenBLAS's own cblas_sgemm on
 * parallel_threads() threads (its threading, not gemm()'s tiles: the reference). */
static inline double bench_sgemm_gflops(int n, int repeats) {
    size_t const nn = (size_t)n * n;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    double best = 0;
    if (a && b && c) {
        for (size_t i = 0; i < nn; i++) {
            a[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
            b[i] = (float)((i * 40503u) % 1000) * 1e-3f - 0.5f;
            c[i] = 0.0f;
        }
        openblas_set_num_threads(parallel_threads());
        for (int r = 0; r < repeats; r++) {
            double const t0 = bench_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n,
                        0.0f, c, n);
            double const gf = 2.0 * n * (double)n * n / (bench_now() - t0) * 1e-9;
            if (gf > best) best = gf;
        }
        openblas_set_num_threads(1); /* gemm()'s tiles run single-threaded OpenBLAS */
    }
    free(a);
    free(b);
    free(c);
    return best;
}

/* Sets the threads of gemm() and the element-wise passes, and checks that OpenBLAS can
 * run as many for the reference (its pool is sized at start-up from OPENBLAS_NUM_THREADS:
 * run with the largest count wanted). */
static inline int bench_set_threads(int n) {
    parallel_set_threads(n);
    openblas_set_num_threads(n);
    int const got = openblas_get_num_threads();
    openblas_set_num_threads(1);
    if (got != n)
        fprintf(stderr, "warning: asked OpenBLAS for %d threads, it runs %d "
                        "(start with OPENBLAS_NUM_THREADS >= %d)\n", n, got, n);
    return got;
}

static inline double bench_mib(double bytes) { return bytes / (1024.0 * 1024.0); }

#endif
