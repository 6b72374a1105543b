#include "parallel.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

static int parallel_count;
static pthread_once_t parallel_once = PTHREAD_ONCE_INIT;

static int clamp_threads(int n) {
    return n < 1 ? 1 : n > PARALLEL_MAX_THREADS ? PARALLEL_MAX_THREADS : n;
}

/* A positive count from the environment variable (at most PARALLEL_MAX_THREADS), else 0. */
static int env_threads(const char *name) {
    const char *v = getenv(name);
    char *end = NULL;
    long const n = v ? strtol(v, &end, 10) : 0;
    if (!v || end == v || *end != '\0' || n <= 0) return 0;
    return n < PARALLEL_MAX_THREADS ? (int)n : PARALLEL_MAX_THREADS;
}

/* The variables first: OpenBLAS caps its own count at the cores it sees, while a rank may
 * be asked for more threads than that (a test of 3 threads on 2 cores). */
static void parallel_init(void) {
    int n = env_threads("OPENBLAS_NUM_THREADS");
    if (n == 0) n = env_threads("OMP_NUM_THREADS");
    if (n == 0) n = openblas_get_num_threads();
    parallel_count = clamp_threads(n);
    openblas_set_num_threads(1);
}

int parallel_threads(void) {
    pthread_once(&parallel_once, parallel_init);
    return parallel_count;
}

void parallel_set_threads(int n) {
    pthread_once(&parallel_once, parallel_init);
    parallel_count = clamp_threads(n);
}

const char *parallel_blas_library(void) { return openblas_get_config(); }
const char *parallel_blas_kernel(void) { return openblas_get_corename(); }

/* The instruction sets OpenBLAS's x86-64 kernels use; openblas_get_corename names the
 * kernel (forced by OPENBLAS_CORETYPE or picked for this CPU) without running it. */
int parallel_blas_kernel_runs_here(char *why, size_t size) {
#if defined(__x86_64__) && defined(__GNUC__)
    const char *kernel = openblas_get_corename();
    const char *missing = NULL;
    __builtin_cpu_init();
    if (strcasecmp(kernel, "SkylakeX") == 0 || strcasecmp(kernel, "Cooperlake") == 0 ||
        strcasecmp(kernel, "SapphireRapids") == 0) {
        if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")))
            missing = "AVX-512 (F, BW, VL, DQ)";
    } else if (strcasecmp(kernel, "Haswell") == 0 || strcasecmp(kernel, "Zen") == 0) {
        if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) missing = "AVX2 and FMA";
    } else if (strcasecmp(kernel, "Sandybridge") == 0) {
        if (!__builtin_cpu_supports("avx")) missing = "AVX";
    }
    if (missing) {
        const char *forced = getenv("OPENBLAS_CORETYPE");
        snprintf(why, size,
                 "OpenBLAS kernel %s%s%s%s needs %s, which this CPU lacks (it would die of SIGILL at the first "
                 "product): unset OPENBLAS_CORETYPE or name a kernel this CPU runs",
                 kernel, forced ? " (OPENBLAS_CORETYPE=" : "", forced ? forced : "", forced ? ")" : "", missing);
        return 0;
    }
#endif
    (void)why;
    (void)size;
    return 1;
}

typedef struct {
    void (*fn)(void *arg, int r0, int r1);
    void *arg;
    int r0, r1;
} RangeJob;

/* 1 while this thread runs a range: a parallel_ranges inside it (a gemm() inside one head
 * of the attention) runs on this thread, not on threads of its own. */
static _Thread_local int inside_range;

static void *run_range(void *p) {
    RangeJob const *job = p;
    int const outer = inside_range;
    inside_range = 1;
    job->fn(job->arg, job->r0, job->r1);
    inside_range = outer;
    return NULL;
}

void parallel_ranges(int n_threads, int n, void (*fn)(void *arg, int r0, int r1), void *arg) {
    if (n_threads > PARALLEL_MAX_THREADS) n_threads = PARALLEL_MAX_THREADS;
    if (n_threads > n) n_threads = n;
    if (n_threads <= 1 || inside_range) {
        if (n > 0) fn(arg, 0, n);
        return;
    }
    RangeJob jobs[PARALLEL_MAX_THREADS];
    pthread_t threads[PARALLEL_MAX_THREADS];
    int started[PARALLEL_MAX_THREADS] = {0};
    for (int t = 0; t < n_threads; t++) {
        jobs[t] = (RangeJob){fn, arg, (int)((long long)n * t / n_threads),
                             (int)((long long)n * (t + 1) / n_threads)};
        if (t > 0) started[t] = pthread_create(&threads[t], NULL, run_range, &jobs[t]) == 0;
    }
    run_range(&jobs[0]);
    for (int t = 1; t < n_threads; t++) {
        if (started[t]) pthread_join(threads[t], NULL);
        else run_range(&jobs[t]); /* no thread: the work is still done, here */
    }
}
