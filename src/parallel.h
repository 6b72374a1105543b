/* Threads of one rank: the element-wise passes of reconstruction (quantizer gradients,
 * Adam, quantizer) split a matrix's rows into contiguous ranges, one per thread, each
 * thread writing only its own rows' outputs; matrix products are cut into fixed tiles
 * (gemm.h). Callers keep every result independent of the split (per-row partial sums,
 * added in row order afterwards), so the numbers do not depend on the thread count. */
#ifndef NUPES_PARALLEL_H
#define NUPES_PARALLEL_H

#include <stddef.h>

#define PARALLEL_MAX_THREADS 64

/* Threads of this process: on the first call OPENBLAS_NUM_THREADS, else OMP_NUM_THREADS,
 * else the cores OpenBLAS sees, clamped to [1, PARALLEL_MAX_THREADS];
 * OpenBLAS is then set to one thread, so that every product runs through gemm()'s
 * thread-count-independent tiles. */
int parallel_threads(void);

/* Sets the thread count (clamped as above); OpenBLAS stays at one thread. */
void parallel_set_threads(int n);

/* The BLAS library and the kernel it runs on this CPU (e.g. "OpenBLAS 0.3.21 ...",
 * "Haswell"): results are bit-identical only under the same kernel. Static strings. */
const char *parallel_blas_library(void);
const char *parallel_blas_kernel(void);

/* 0, with why (one line) filled, when that kernel needs instructions this CPU lacks: an
 * OPENBLAS_CORETYPE of SkylakeX on a CPU without AVX-512 crashes at the first product. */
int parallel_blas_kernel_runs_here(char *why, size_t size);

/* Calls fn(arg, r0, r1) on n_threads contiguous ranges covering [0, n) (the calling thread
 * takes the first; ranges differ in size by at most one). n_threads <= 1, or a thread
 * that cannot be started, runs that range on the calling thread: same results. Called
 * from inside a range (nested), it runs fn(arg, 0, n) on the calling thread. */
void parallel_ranges(int n_threads, int n, void (*fn)(void *arg, int r0, int r1), void *arg);

#endif
