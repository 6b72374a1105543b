/* bench/search: the exponent search of a block's setup (docs/design.md 3.2), the AVX2
 * loops against the scalar loops (the reference, measured in the same run, alternately),
 * on 7B-wide heavy-tailed weights as the dry run's setup probe draws them
 * (plan_probe_weights), through the quantizer's init as a block's setup runs it.
 *
 *   bench_search [--rows 512] [--bits 3,4,8] [--repeats 3]
 *
 * Per bits: ns per weight of quant_init + search (what a block's setup spends per weight,
 * one thread) on a --rows x 4096 matrix, best of --repeats each way, their ratio, and
 * whether the two found the same exponent (they must: the two paths are bit-identical).
 * A 7B block has 202.4 M weights: the line also gives the setup's seconds per block on one
 * thread at that rate. */
#include <math.h>
#include <stdint.h>

#include "bench_util.h"
#include "plan.h"
#include "quant.h"
#include "quantizer.h"

/* Seconds of one setup of the matrix (scales, exponent search, z); its exponent in *a. */
static double setup_seconds(QuantSpec s, QuantShape sh, const float *w, float *scales, float *z,
                            float *a) {
    QuantLatents out = {z, scales, a};
    double const t0 = bench_now();
    quantizer_of(s)->init(s, sh, w, QUANT_INIT_SEARCH, &out);
    return bench_now() - t0;
}

int main(int argc, char **argv) {
    int rows = 512, repeats = 3, bits[8] = {3, 4, 8}, n_bits = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--rows") == 0) rows = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--repeats") == 0) repeats = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--bits") == 0) {
            n_bits = 0;
            for (char *p = argv[i + 1]; *p && n_bits < 8; p++) {
                bits[n_bits++] = (int)strtol(p, &p, 10);
                if (!*p) break;
            }
        } else {
            fprintf(stderr, "usage: bench_search [--rows 512] [--bits 3,4,8] [--repeats 3]\n");
            return 2;
        }
    }
    if (rows < 1 || repeats < 1) {
        fprintf(stderr, "bench_search: --rows and --repeats must be >= 1\n");
        return 2;
    }
    int const cols = 4096;
    size_t const n = (size_t)rows * cols;
    float *w = malloc(n * sizeof *w), *z = malloc(n * sizeof *z), *scales = malloc((size_t)rows * sizeof *scales);
    if (!w || !z || !scales) {
        fprintf(stderr, "bench_search: out of memory for %d x %d\n", rows, cols);
        return 1;
    }
    plan_probe_weights(w, n, 88172645u);
    printf("bench_search: setup (scales, exponent search, z) of a %d x %d matrix, one exponent per "
           "tensor, one thread; best of %d; AVX2 on this CPU: %s\n\n",
           rows, cols, repeats, quant_uses_avx2() ? "yes" : "no (both columns are the scalar loops)");
    printf("bits   scalar ns/weight   AVX2 ns/weight   scalar/AVX2   same exponent   7B block setup, s (scalar, AVX2)\n");
    for (int b = 0; b < n_bits; b++) {
        QuantSpec const s = {bits[b], 0, 0, QUANTIZER_POWER};
        if (s.bits < QUANT_MIN_BITS || s.bits > QUANT_MAX_BITS) continue;
        QuantShape const sh = quant_shape(s, rows, cols);
        double best[2] = {INFINITY, INFINITY};
        float a[2] = {0, 0};
        for (int r = 0; r < repeats; r++)
            for (int simd = 0; simd <= 1; simd++) { /* alternately: a load hits both alike */
                quant_allow_avx2(simd);
                double const t = setup_seconds(s, sh, w, scales, z, &a[simd]);
                if (t < best[simd]) best[simd] = t;
            }
        quant_allow_avx2(1);
        double const per[2] = {1e9 * best[0] / (double)n, 1e9 * best[1] / (double)n};
        printf("%4d   %16.1f   %14.1f   %11.2f   %13s   %.0f, %.0f\n", s.bits, per[0], per[1], per[0] / per[1],
               a[0] == a[1] ? "yes" : "NO", per[0] * 202.4e-3, per[1] * 202.4e-3);
    }
    free(w);
    free(z);
    free(scales);
    return 0;
}
