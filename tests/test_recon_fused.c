/* The fast paths of the reconstruction loop give the same numbers, bit for bit, as the
 * plain ones: Adam's AVX2 loop as its scalar loop, adam_step_grouped as adam_step on the
 * scaled gradients, quant_backward_rows on any split of the rows as quant_backward, and
 * a whole reconstruction on 1, 2 and 3 threads, and with a save/restore in the middle
 * (which must drop the quantization that recon_apply fused into its pass): on a block of
 * the bundled model and on a wider synthetic block whose products gemm() cuts into
 * several tiles. tests/test_blas_kernels.sh runs this under every OpenBLAS kernel the CPU
 * can run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adam.h"
#include "gemm.h"
#include "model_file.h"
#include "parallel.h"
#include "quant.h"
#include "quantizer.h"
#include "recon.h"
#include "rng.h"
#include "synth_model.h"

static float uniform(Rng *r, float lo, float hi) { return lo + (hi - lo) * rng_uniform_float(r); }

/* adam_step on 1003 elements (AVX2 where the CPU has it, scalar tail) against one call per
 * element (always the scalar loop), over several steps; and the grouped variant against
 * adam_step on gradients multiplied by the group scale beforehand. */
static void test_adam_paths_identical(void **state) {
    (void)state;
    enum { N = 1003, GROUP = 59, STEPS = 6 };
    static float p1[N], m1[N], v1[N], p2[N], m2[N], v2[N], p3[N], m3[N], v3[N], g[N], gs[N];
    float scale[(N + GROUP - 1) / GROUP];
    Rng rng;
    rng_seed(&rng, 4, 0);
    for (int i = 0; i < N; i++) p1[i] = p2[i] = p3[i] = uniform(&rng, -1, 1);
    for (size_t k = 0; k < sizeof scale / sizeof scale[0]; k++) scale[k] = uniform(&rng, 0.01f, 2);
    for (int t = 1; t <= STEPS; t++) {
        for (int i = 0; i < N; i++) {
            g[i] = uniform(&rng, -1, 1) * (i % 5 ? 1.0f : 1e-4f);
            gs[i] = g[i] * scale[i / GROUP];
        }
        float const lr = adam_cosine_lr(1e-2f, t - 1, STEPS);
        adam_step(p1, gs, m1, v1, N, lr, t, -1.0f, 1.0f);
        for (int i = 0; i < N; i++) adam_step(p2 + i, gs + i, m2 + i, v2 + i, 1, lr, t, -1.0f, 1.0f);
        adam_step_grouped(p3, g, scale, GROUP, m3, v3, N, lr, t, -1.0f, 1.0f);
    }
    assert_memory_equal(p1, p2, sizeof p1);
    assert_memory_equal(m1, m2, sizeof m1);
    assert_memory_equal(v1, v2, sizeof v1);
    assert_memory_equal(p1, p3, sizeof p1);
    assert_memory_equal(m1, m3, sizeof m1);
    assert_memory_equal(v1, v3, sizeof v1);
}

/* quant_backward_rows over [0, k) and [k, rows), row sums added in row order, equals
 * quant_backward; dz and dM too; per-tensor and per-row exponents, groups or rows. */
static void test_backward_rows_split(void **state) {
    (void)state;
    enum { ROWS = 13, COLS = 96 };
    static float z[ROWS * COLS], w_hat[ROWS * COLS], dw[ROWS * COLS], dz1[ROWS * COLS],
        dz2[ROWS * COLS];
    static int8_t codes[ROWS * COLS];
    float scales[ROWS * 12], a[ROWS];
    double da1[ROWS], da2[ROWS], rows_sum[ROWS], dM1[ROWS * 12], dM2[ROWS * 12];
    Rng rng;
    rng_seed(&rng, 9, 1);
    for (int variant = 0; variant < 4; variant++) {
        QuantSpec const s = {variant < 2 ? 4 : 3, variant % 2 ? 8 : 0, variant >= 2, QUANTIZER_POWER};
        QuantShape const sh = quant_shape(s, ROWS, COLS);
        for (int i = 0; i < ROWS * COLS; i++) z[i] = uniform(&rng, -1, 1), dw[i] = uniform(&rng, -1, 1);
        for (int i = 0; i < ROWS * sh.groups; i++) scales[i] = uniform(&rng, 0.1f, 1);
        for (int r = 0; r < ROWS; r++) a[r] = uniform(&rng, 0.3f, 1.4f);
        quant_forward(s, sh, z, scales, a, codes, w_hat);
        quant_backward(s, sh, z, scales, a, codes, w_hat, dw, dz1, da1, dM1);
        for (int k = 0; k <= ROWS; k += 4) {
            memset(dz2, 0, sizeof dz2);
            quant_backward_rows(s, sh, 0, k, z, scales, a, codes, dw, dz2, rows_sum, dM2);
            quant_backward_rows(s, sh, k, ROWS, z, scales, a, codes, dw, dz2, rows_sum + k, dM2);
            if (s.per_row) {
                memcpy(da2, rows_sum, sizeof rows_sum);
            } else {
                da2[0] = 0.0;
                for (int r = 0; r < ROWS; r++) da2[0] += rows_sum[r];
            }
            assert_memory_equal(da1, da2, (size_t)sh.n_exponents * sizeof(double));
            assert_memory_equal(dM1, dM2, (size_t)ROWS * sh.groups * sizeof(double));
            assert_memory_equal(dz1, dz2, sizeof dz1);
        }
    }
}

/* ------------------------------------------------------------------ whole reconstruction */

typedef struct {
    Model *model;
    BlockWeights w;
    const ModelConfig *c;
    float *x, *y;
    int T, b;
} Fixture;

/* Block 2 of the bundled model (d 64: every product is one tile), or block 0 of a
 * synthetic model of d 256, f 2112 with B T = 1088 tokens, whose projections gemm() cuts
 * into tiles with ragged last ones (gemm_tiles: 1024 x 2048). */
static void fixture_open(Fixture *f, int wide) {
    char path[4096];
    if (wide) {
        snprintf(path, sizeof path, "/tmp/nupes-test-recon-fused-%d.bin", (int)getpid());
        ModelConfig const shape = {.dim = 256, .hidden_dim = 2112, .n_layers = 1, .n_heads = 4,
                                   .n_kv_heads = 2, .vocab_size = 64, .seq_len = 136,
                                   .rope_theta = 10000.0f, .norm_eps = 1e-5f};
        assert_int_equal(synth_model_write(path, &shape, 11), NQ_OK);
    } else {
        const char *dir = getenv("NUPES_DATA");
        snprintf(path, sizeof path, "%s/stories260K.bin", dir ? dir : "data");
    }
    assert_int_equal(model_open(path, "auto", &f->model), NQ_OK);
    if (wide) unlink(path); /* the model keeps its mapping */
    f->c = model_config(f->model);
    assert_int_equal(model_block(f->model, wide ? 0 : 2, &f->w), NQ_OK);
    f->T = wide ? 136 : 24, f->b = wide ? 8 : 2;
    size_t const n = (size_t)f->b * f->T * f->c->dim;
    f->x = malloc(n * sizeof *f->x), f->y = malloc(n * sizeof *f->y);
    assert_true(f->x && f->y);
    Rng rng;
    rng_seed(&rng, 2, 0);
    for (size_t i = 0; i < n; i++) f->x[i] = uniform(&rng, -1, 1);
    for (size_t i = 0; i < n; i++) f->y[i] = 1.1f * f->x[i] + uniform(&rng, -0.05f, 0.05f);
}

static void fixture_close(Fixture *f) {
    model_close(f->model);
    free(f->x);
    free(f->y);
}

/* Steps [from, to) of r on the fixture's batch. */
static void run_steps(Recon *r, const Fixture *f, int from, int to) {
    for (int t = from; t < to; t++) {
        double const sse = recon_accumulate_gradient(r, f->x, f->y, f->b, f->b);
        assert_true(isfinite(sse));
        recon_apply(r);
    }
}

/* Copies of every state array (and the codes) of r, for comparisons. */
typedef struct {
    unsigned char *bytes;
    size_t size;
} Snapshot;

static Snapshot snapshot(Recon *r, const ModelConfig *c, QuantSpec spec) {
    ReconArray arrays[64];
    int const n = recon_state_arrays(r, arrays, 64);
    BlockResult res;
    assert_int_equal(block_result_alloc(&res, c, spec, 2, 0), NQ_OK);
    assert_int_equal(recon_result(r, &res), NQ_OK);
    Snapshot s = {NULL, 0};
    for (int i = 0; i < n; i++) s.size += arrays[i].count * 4;
    for (int i = 0; i < N_MATS; i++) s.size += (size_t)res.mat[i].shape.rows * res.mat[i].shape.cols;
    s.bytes = malloc(s.size);
    assert_non_null(s.bytes);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        memcpy(s.bytes + at, arrays[i].data, arrays[i].count * 4);
        at += arrays[i].count * 4;
    }
    for (int i = 0; i < N_MATS; i++) {
        size_t const k = (size_t)res.mat[i].shape.rows * res.mat[i].shape.cols;
        memcpy(s.bytes + at, quant_matrix_array(&res.mat[i], "codes"), k);
        at += k;
    }
    block_result_free(&res);
    return s;
}

/* On 1, 2 and 3 threads, and on 1 thread stopped after STOP_AT steps, saved, restored
 * into a fresh Recon and finished: every state array and code identical. */
static void threads_and_restore_identical(int wide) {
    int const steps = wide ? 4 : 12, stop_at = wide ? 2 : 5;
    Fixture f;
    fixture_open(&f, wide);
    int tiles_m, tiles_n; /* the wide fixture exists to exercise the tiles: check it does */
    gemm_tiles(f.b * f.T, f.c->hidden_dim, f.c->dim, &tiles_m, &tiles_n);
    assert_true(wide ? tiles_m < f.b * f.T && tiles_n < f.c->hidden_dim
                     : tiles_m == f.b * f.T && tiles_n == f.c->hidden_dim);
    for (int variant = wide; variant < 2; variant++) {
        ReconParams const p = {.method = RECON_NUPES, .spec = {4, variant ? 4 : 0, variant},
                               .learn_scale = 1, .iterations = steps, .batch = f.b,
                               .lr_weights = 3e-3f, .lr_exponent = 1e-3f, .lr_scale = 1e-3f,
                               .seed = 5};
        Snapshot snaps[4];
        for (int threads = 1; threads <= 3; threads++) {
            parallel_set_threads(threads);
            Recon *r = recon_create(f.c, &f.w, &p, 2, 4, f.T, f.b);
            assert_non_null(r);
            run_steps(r, &f, 0, steps);
            snaps[threads - 1] = snapshot(r, f.c, p.spec);
            recon_free(r);
        }
        parallel_set_threads(1);
        Recon *r = recon_create(f.c, &f.w, &p, 2, 4, f.T, f.b);
        assert_non_null(r);
        run_steps(r, &f, 0, stop_at);
        ReconArray saved[64], fresh[64];
        int const n = recon_state_arrays(r, saved, 64);
        Recon *r2 = recon_create(f.c, &f.w, &p, 2, 4, f.T, f.b);
        assert_non_null(r2);
        run_steps(r2, &f, 0, 1); /* its own w_hat is fresh now, and stale after the restore */
        assert_int_equal(recon_state_arrays(r2, fresh, 64), n);
        for (int i = 0; i < n; i++) memcpy(fresh[i].data, saved[i].data, saved[i].count * 4);
        recon_set_step(r2, stop_at);
        recon_free(r);
        run_steps(r2, &f, stop_at, steps);
        snaps[3] = snapshot(r2, f.c, p.spec);
        recon_free(r2);
        for (int k = 1; k < 4; k++) {
            assert_int_equal(snaps[k].size, snaps[0].size);
            assert_memory_equal(snaps[k].bytes, snaps[0].bytes, snaps[0].size);
        }
        for (int k = 0; k < 4; k++) free(snaps[k].bytes);
    }
    fixture_close(&f);
}

static void test_threads_and_restore_identical(void **state) {
    (void)state;
    threads_and_restore_identical(0);
}

static void test_threads_and_restore_identical_tiled(void **state) {
    (void)state;
    threads_and_restore_identical(1);
}

/* The probe passes forward a batch share at a time (recon_eval_sse's chunk): the sum of
 * squared errors against the whole batch at once (as before chunks), one sequence at a
 * time, and ragged chunks (3, 3, 2 of the wide fixture's 8 sequences). A chunk's products
 * are other sgemm calls (fewer rows) than the whole batch's, which OpenBLAS may round
 * differently even when gemm() makes one tile of them: SkylakeX's kernel does on the small
 * fixture. Measured: the small fixture bit for bit under Zen and Haswell, 8.0e-9 relative
 * under SkylakeX (AVX-512); the wide one up to 4.4e-9 (Zen, Haswell). Bound 1e-6: a chunk
 * read from the wrong offset or a sequence skipped moves the sum by ~1/8. */
static void eval_sse_chunks_identical(int wide) {
    Fixture f;
    fixture_open(&f, wide);
    ReconParams const p = {.method = RECON_NUPES, .spec = {4, 0, 0}, .learn_scale = 1, .iterations = 4,
                           .batch = f.b, .lr_weights = 3e-3f, .lr_exponent = 1e-3f, .lr_scale = 1e-3f, .seed = 5};
    Recon *r = recon_create(f.c, &f.w, &p, 2, 4, f.T, f.b);
    assert_non_null(r);
    run_steps(r, &f, 0, 2); /* latents moved off their start */
    int const chunks[] = {f.b, 1, 3, 2};
    double sse[4];
    for (int k = 0; k < 4; k++) {
        int abandoned = 1;
        sse[k] = recon_eval_sse(r, f.x, f.y, f.b, chunks[k], NULL, NULL, &abandoned);
        assert_int_equal(abandoned, 0);
        assert_true(isfinite(sse[k]) && sse[k] > 0);
        printf("  %s fixture, chunk %d of %d sequences: sse %.17g\n", wide ? "wide" : "small", chunks[k], f.b, sse[k]);
        assert_true(fabs(sse[k] - sse[0]) <= 1e-6 * sse[0]);
    }
    /* the steps after a chunked pass are the steps after a whole one: run on */
    run_steps(r, &f, 2, 4);
    recon_free(r);
    fixture_close(&f);
}

static void test_eval_sse_chunks_identical(void **state) {
    (void)state;
    eval_sse_chunks_identical(0);
    eval_sse_chunks_identical(1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_sse_chunks_identical),
        cmocka_unit_test(test_adam_paths_identical),
        cmocka_unit_test(test_backward_rows_split),
        cmocka_unit_test(test_threads_and_restore_identical),
        cmocka_unit_test(test_threads_and_restore_identical_tiled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
