#include "gemm.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>

#include "parallel.h"

/* Products below this many multiply-adds run whole on the calling thread: a thread costs
 * tens of microseconds to start, a product of 2^22 multiply-adds about a millisecond. */
#define GEMM_CUT_MACS (1LL << 22)
/* Tile edges (rows x columns of C). Each tile packs its panels of A and B anew, so small
 * tiles cost time: measured on the 7B block's products (Zen kernel, one thread), tiles of
 * 512 x 1024 ran 3-9% slower than one whole call, 1024 x 2048 within -5..+2%, and still
 * leave 2 to 22 tiles per product to share between threads. Fixed constants: changing
 * them changes results (as a change of kernel would). */
#define GEMM_TILE_M 1024
#define GEMM_TILE_N 2048

void gemm_tiles(int M, int N, int K, int *tile_m, int *tile_n) {
    if ((long long)M * N * K < GEMM_CUT_MACS) {
        *tile_m = M, *tile_n = N;
        return;
    }
    *tile_m = M > GEMM_TILE_M ? GEMM_TILE_M : M;
    *tile_n = N > GEMM_TILE_N ? GEMM_TILE_N : N;
}

typedef struct {
    int trans_a, trans_b, M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int tile_m, tile_n, tiles_n, n_tiles;
    atomic_int next; /* tiles are claimed in any order: where one runs changes nothing */
} GemmJob;

static void gemm_tile(const GemmJob *g, int tile) {
    int const i0 = tile / g->tiles_n * g->tile_m, j0 = tile % g->tiles_n * g->tile_n;
    int const m = g->M - i0 < g->tile_m ? g->M - i0 : g->tile_m;
    int const n = g->N - j0 < g->tile_n ? g->N - j0 : g->tile_n;
    /* rows i0.. of op(A): A + i0 lda (A [M][K]) or A + i0 (A [K][M]); likewise B's columns */
    const float *a = g->A + (g->trans_a ? (size_t)i0 : (size_t)i0 * g->lda);
    const float *b = g->B + (g->trans_b ? (size_t)j0 * g->ldb : (size_t)j0);
    cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,
                g->trans_b ? CblasTrans : CblasNoTrans, m, n, g->K, g->alpha, a, g->lda, b,
                g->ldb, g->beta, g->C + (size_t)i0 * g->ldc + j0, g->ldc);
}

static void gemm_worker(void *arg, int r0, int r1) {
    (void)r0, (void)r1;
    GemmJob *g = arg;
    for (int t; (t = atomic_fetch_add(&g->next, 1)) < g->n_tiles;) gemm_tile(g, t);
}

void gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    int const threads = parallel_threads(); /* first call: OpenBLAS goes to one thread */
    GemmJob g = {.trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K, .lda = lda,
                 .ldb = ldb, .ldc = ldc, .alpha = alpha, .beta = beta, .A = A, .B = B, .C = C};
    gemm_tiles(M, N, K, &g.tile_m, &g.tile_n);
    g.tiles_n = (N + g.tile_n - 1) / g.tile_n;
    g.n_tiles = (M + g.tile_m - 1) / g.tile_m * g.tiles_n;
    atomic_init(&g.next, 0);
    if (g.n_tiles == 1 || threads == 1) {
        for (int t = 0; t < g.n_tiles; t++) gemm_tile(&g, t);
        return;
    }
    int const workers = threads < g.n_tiles ? threads : g.n_tiles;
    parallel_ranges(workers, workers, gemm_worker, &g); /* one range each; tiles claimed */
}
