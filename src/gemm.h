/* Single-precision matrix products whose results do not depend on the thread count.
 *
 * OpenBLAS splits a product between its threads in a way that depends on the thread count,
 * and with some kernels (Haswell, Zen) that changes the rounding of the results: a job
 * requeued onto a node with another core count would then not resume bit for bit. Here
 * the product C is cut into tiles fixed by the shapes alone (never by the thread count);
 * every tile is one single-threaded cblas_sgemm over the whole K dimension, so each
 * element's summation order is the same whichever thread computes its tile, and however
 * many there are. OpenBLAS itself is kept at one thread (parallel_threads() sees to it).
 *
 * Results still depend on the OpenBLAS kernel (Haswell, SkylakeX, ...): see
 * parallel_blas_kernel(). */
#ifndef NUPES_GEMM_H
#define NUPES_GEMM_H

#include <stddef.h>

/* Row-major C [M][N] = alpha op(A) op(B) + beta C, as cblas_sgemm(CblasRowMajor, ...):
 * op(A) is A [M][K] (trans_a 0, lda >= K) or A^T with A [K][M] (trans_a 1, lda >= M);
 * op(B) is B [K][N] (trans_b 0, ldb >= N) or B^T with B [N][K] (trans_b 1, ldb >= K).
 * Runs on parallel_threads() threads when the product is large enough to be cut (on the
 * calling thread alone when called inside parallel_ranges: the attention's heads). */
void gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc);

/* The tiles gemm() cuts an M x N x K product into (for tests and the bench): rows per
 * tile and columns per tile (M and N when it is not cut). */
void gemm_tiles(int M, int N, int K, int *tile_m, int *tile_n);

#endif
