/* Row-range parallelism for the element-wise passes of reconstruction (quantizer
 * gradients, Adam, quantizer): a matrix's rows are split into contiguous ranges, one per
 * thread, each thread writing only its own rows' outputs. Callers keep every result
 * independent of the split (per-row partial sums, added in row order afterwards), so the
 * numbers do not depend on the thread count. */
#ifndef NUPES_PARALLEL_H
#define NUPES_PARALLEL_H

/* Threads for the element-wise passes: the BLAS thread count (one rank's share of the
 * cores, OPENBLAS_NUM_THREADS), at least 1, at most PARALLEL_MAX_THREADS. */
#define PARALLEL_MAX_THREADS 16
int parallel_threads(void);

/* Calls fn(arg, r0, r1) on n_threads contiguous ranges covering [0, n) (the calling thread
 * takes the first; ranges differ in size by at most one). n_threads <= 1, or a thread
 * that cannot be started, runs that range on the calling thread: same results. */
void parallel_ranges(int n_threads, int n, void (*fn)(void *arg, int r0, int r1), void *arg);

#endif
