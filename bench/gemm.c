/* bench/gemm: gemm()'s fixed tiles (results independent of the thread count) against
 * OpenBLAS's own threaded cblas_sgemm (the reference, whose rounding depends on the thread
 * count under some kernels), on the products of a LLaMA-7B block, in the same run.
 *
 *   bench_gemm [--tokens 512] [--threads 1,2] [--repeats 3]
 *
 * Products (N = tokens): forward x W^T (N x out x in), dW = dY^T x (out x in x N) and
 * dX = dY W (N x in x out) for W of 4096 x 4096 (wq, wk, wv, wo) and 11008 x 4096 (w1, w3;
 * w2 is the transpose shape). The two are timed alternately, best of --repeats each, so a
 * load that comes and goes hits both alike. The summary line is the time of all products
 * of one block's iteration (weighted by how many matrices have each shape). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "gemm.h"

typedef struct {
    const char *name;
    int ta, tb, M, N, K;
    int count; /* products of this shape in one iteration of a block */
} Product;

static double time_product(const Product *p, const float *a, const float *b, float *c,
                           int tiled) {
    int const lda = p->ta ? p->M : p->K, ldb = p->tb ? p->K : p->N;
    double const t0 = bench_now();
    if (tiled)
        gemm(p->ta, p->tb, p->M, p->N, p->K, 1.0f, a, lda, b, ldb, 0.0f, c, p->N);
    else
        cblas_sgemm(CblasRowMajor, p->ta ? CblasTrans : CblasNoTrans,
                    p->tb ? CblasTrans : CblasNoTrans, p->M, p->N, p->K, 1.0f, a, lda, b, ldb,
                    0.0f, c, p->N);
    return bench_now() - t0;
}

int main(int argc, char **argv) {
    int tokens = 512, repeats = 3, threads[4] = {1, 2}, n_threads = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokens")) tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeats")) repeats = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) {
            n_threads = 0;
            for (char *p = argv[i + 1]; *p && n_threads < 4;) {
                threads[n_threads++] = (int)strtol(p, &p, 10);
                if (*p == ',') p++;
            }
        } else {
            fprintf(stderr, "usage: %s [--tokens N] [--threads 1,2] [--repeats R]\n", argv[0]);
            return 2;
        }
    }
    if (argc % 2 == 0 || tokens < 1 || repeats < 1 || n_threads < 1) {
        fprintf(stderr, "usage: %s [--tokens N] [--threads 1,2] [--repeats R]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    int const N = tokens, d = 4096, f = 11008;
    Product const prods[] = {
        {"fwd  N x d x d", 0, 1, N, d, d, 4},  {"fwd  N x f x d", 0, 1, N, f, d, 2},
        {"fwd  N x d x f", 0, 1, N, d, f, 1},  {"dW   d x d x N", 1, 0, d, d, N, 4},
        {"dW   f x d x N", 1, 0, f, d, N, 2},  {"dW   d x f x N", 1, 0, d, f, N, 1},
        {"dX   N x d x d", 0, 0, N, d, d, 1},  {"dX   N x d x f", 0, 0, N, d, f, 2},
        {"dX   N x f x d", 0, 0, N, f, d, 1},
    };
    int const n_prods = (int)(sizeof prods / sizeof prods[0]);
    size_t const big = (size_t)f * (N > d ? N : d);
    float *a = malloc(big * sizeof *a), *b = malloc(big * sizeof *b), *c = malloc(big * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        return 3;
    }
    for (size_t i = 0; i < big; i++) {
        a[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
        b[i] = (float)((i * 40503u) % 1000) * 1e-3f - 0.5f;
        c[i] = 0.0f;
    }
    printf("bench_gemm: %s, kernel %s; 7B block products at %d tokens, best of %d\n",
           parallel_blas_library(), parallel_blas_kernel(), N, repeats);
    for (int ti = 0; ti < n_threads; ti++) {
        bench_set_threads(threads[ti]);
        printf("\n%d thread%s     %12s %12s %8s   %s\n", threads[ti], threads[ti] > 1 ? "s" : " ",
               "OpenBLAS ms", "tiled ms", "tiled/ref", "GFLOP/s ref, tiled");
        double sum_ref = 0, sum_tiled = 0;
        for (int pi = 0; pi < n_prods; pi++) {
            Product const *p = &prods[pi];
            double best[2] = {1e30, 1e30};
            for (int r = 0; r < repeats; r++)
                for (int tiled = 0; tiled < 2; tiled++) {
                    if (!tiled) openblas_set_num_threads(threads[ti]);
                    double const s = time_product(p, a, b, c, tiled);
                    if (!tiled) openblas_set_num_threads(1);
                    if (s < best[tiled]) best[tiled] = s;
                }
            double const flop = 2.0 * p->M * (double)p->N * p->K;
            printf("  %-16s %12.1f %12.1f %8.3f   %.1f, %.1f\n", p->name, 1e3 * best[0],
                   1e3 * best[1], best[1] / best[0], flop / best[0] * 1e-9, flop / best[1] * 1e-9);
            sum_ref += p->count * best[0];
            sum_tiled += p->count * best[1];
        }
        printf("  %-16s %12.1f %12.1f %8.3f   (all products of one iteration)\n", "block",
               1e3 * sum_ref, 1e3 * sum_tiled, sum_tiled / sum_ref);
    }
    free(a);
    free(b);
    free(c);
    return 0;
}
