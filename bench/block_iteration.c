/* bench/block_iteration: one NUPES iteration (quantize, forward, loss, backward, quantizer
 * gradients, Adam) on a synthetic block, docs/design.md 9.
 *
 *   bench_block_iteration [--shapes 7b,2048] [--config FILE] [--threads 1,2] [--iters 1]
 *                         [--bits 4] [--plan-only]
 *
 * Shapes: "7b" = LLaMA-7B (d 4096, f 11008, H 32) and "2048" = d 2048, f 5504, H 16, both
 * at T 512, B 1; "7b-job" = the job configs/llama7b.toml configures (d 4096, f 11008, H 32,
 * T 2048, B 4: ~11 GB); --config FILE adds the shape of any job config ([model.shape], or
 * the model's header or config.json) with its calibration.seq_len as T and
 * reconstruction.batch as B. W4 per channel, learn_scale on (the recommended config). Per
 * BLAS thread count: ms per iteration (best of the warm-up and --iters more; the first
 * thread count's warm-up, which faults in the buffers the iterations keep, is also shown
 * whole and by phase, as the dry run's "first step" plans it), GFLOP/s of
 * the matrix products, and their fraction of the cblas_sgemm peak measured here on 4096^3.
 * Before a shape runs, its memory plan is printed (analytic minimum, and what the
 * iteration allocates); a shape whose plan exceeds MemAvailable is not run, nor any with
 * --plan-only. The OpenBLAS kernel (src/parallel.h, as run.toml records it) is printed:
 * the figures belong to it.
 *
 * FLOP count (what the sgemm calls execute, element-wise work not counted), with
 * N = B T, P = weights of the block, P_qkv = weights of wq, wk, wv:
 *   projections  2 N P (forward) + 2 N P (dW) + 2 N (P - P_qkv) (dX; none below Q, K, V)
 *   attention    14 B T^2 d   (QK^T and PV forward; QK^T again and four products backward,
 *                             full T x T: the probabilities are recomputed, not kept)
 *
 * Peak RSS: VmHWM over the iterations (reset after setup; the fp32 weights the block
 * starts from are freed by then), against the analytic minimum: per quantized weight the
 * weights the forward uses (4 B), the latents z (4), Adam's m and v (8) and one gradient
 * buffer (4), plus the activations the backward needs (x, target, h1, Q, K, V, O, X1, h2,
 * U, G; not the T x T probabilities, which the backward recomputes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "block.h"
#include "config.h"
#include "model_config_read.h"
#include "plan.h"
#include "recon.h"
#include "rng.h"

typedef struct {
    char name[64];
    int d, f, H, Hkv, T, B;
} Shape;

static const Shape shapes_all[] = {{"7b", 4096, 11008, 32, 32, 512, 1},
                                   {"2048", 2048, 5504, 16, 16, 512, 1},
                                   {"7b-job", 4096, 11008, 32, 32, 2048, 4}};

typedef struct {
    const char *shapes;
    const char *config; /* --config FILE, or NULL */
    int threads[4], n_threads;
    int iters;
    int bits;
    int plan_only;
} Options;

/* name is one of the comma-separated names of list. */
static int listed(const char *list, const char *name) {
    size_t const n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t const len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* The shape of a job config: [model.shape] when given, else the model's own header or
 * config.json (as --dry-run reads it); T and B from [calibration] and [reconstruction]. */
static int config_shape(const char *path, Shape *s) {
    NupesConfig cfg;
    ModelConfig c;
    nq_status st = config_load(path, &cfg);
    if (st == NQ_OK)
        st = cfg.shape.hidden_size > 0 ? plan_shape_config(&cfg, &c)
                                       : model_read_config(cfg.model_path, cfg.model_format, &c);
    if (st != NQ_OK) {
        fprintf(stderr, "bench_block_iteration: %s\n", nq_last_error());
        return -1;
    }
    const char *base = strrchr(path, '/');
    snprintf(s->name, sizeof s->name, "%s", base ? base + 1 : path);
    *s = (Shape){.d = c.dim, .f = c.hidden_dim, .H = c.n_heads, .Hkv = c.n_kv_heads, .T = cfg.calib_seq_len,
                 .B = cfg.batch};
    snprintf(s->name, sizeof s->name, "%s", base ? base + 1 : path);
    return 0;
}

static int parse_options(int argc, char **argv, Options *o) {
    o->shapes = "7b,2048";
    o->config = NULL;
    o->threads[0] = 1, o->threads[1] = 2, o->n_threads = 2;
    o->iters = 1;
    o->bits = 4;
    o->plan_only = 0;
    int shapes_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--plan-only")) {
            o->plan_only = 1;
            continue;
        } else if (!strcmp(argv[i], "--config") && v) {
            o->config = v;
            if (!shapes_given) o->shapes = ""; /* only the config's, unless --shapes names more */
        } else if (!strcmp(argv[i], "--shapes") && v) {
            o->shapes = v;
            shapes_given = 1;
        } else if (!strcmp(argv[i], "--threads") && v) {
            o->n_threads = 0;
            for (char *p = (char *)v; *p && o->n_threads < 4;) {
                o->threads[o->n_threads++] = (int)strtol(p, &p, 10);
                if (*p == ',') p++;
            }
        } else if (!strcmp(argv[i], "--iters") && v) {
            o->iters = atoi(v);
        } else if (!strcmp(argv[i], "--bits") && v) {
            o->bits = atoi(v);
        } else {
            fprintf(stderr, "usage: %s [--shapes 7b,2048,7b-job] [--config FILE] [--threads 1,2] "
                            "[--iters N] [--bits B] [--plan-only]\n", argv[0]);
            return -1;
        }
        i++;
    }
    return o->iters >= 1 && o->n_threads >= 1 ? 0 : -1;
}

static ModelConfig shape_config(const Shape *s) {
    ModelConfig c = {0};
    c.dim = s->d;
    c.hidden_dim = s->f;
    c.n_layers = 1;
    c.n_heads = s->H;
    c.n_kv_heads = s->Hkv;
    c.vocab_size = 32000;
    c.seq_len = s->T;
    c.rope_theta = 10000.0f;
    c.norm_eps = 1e-5f;
    c.rope_style = ROPE_INTERLEAVED;
    c.tied_embeddings = 1;
    return c;
}

static void fill_normal(Rng *rng, float *x, size_t n, float std) {
    for (size_t i = 0; i + 1 < n; i += 2) { /* Box-Muller, two at a time */
        double const u1 = 1.0 - rng_uniform_double(rng), u2 = rng_uniform_double(rng);
        double const r = sqrt(-2.0 * log(u1)) * std;
        x[i] = (float)(r * cos(6.283185307179586 * u2));
        x[i + 1] = (float)(r * sin(6.283185307179586 * u2));
    }
    if (n % 2) x[n - 1] = 0.0f;
}

typedef struct {
    double proj, attn;       /* FLOP */
    double weights, qkv;     /* P, P_qkv */
    double min_bytes, act_bytes;
} Counts;

static Counts count_shape(const ModelConfig *c, int B, int T) {
    double const N = (double)B * T, d = c->dim, f = c->hidden_dim;
    double const dkv = (double)c->n_kv_heads * (d / c->n_heads);
    Counts k;
    k.qkv = d * d + 2 * dkv * d;
    k.weights = k.qkv + d * d + 3 * d * f;
    k.proj = 2 * N * k.weights * 2 + 2 * N * (k.weights - k.qkv);
    k.attn = 14.0 * B * (double)T * T * d;
    k.act_bytes = 4 * N * (7 * d + 2 * dkv + 2 * f);
    k.min_bytes = 20 * k.weights + k.act_bytes;
    return k;
}

typedef struct {
    double total;
    ReconTimings t;
    double loss;
} IterResult;

/* One iteration as mpi/ runs it with D = 1: gradient, then Adam. */
static IterResult run_iteration(Recon *r, const float *x, const float *y, size_t n_outputs, int B) {
    IterResult res;
    memset(&res, 0, sizeof res);
    recon_set_timings(r, &res.t);
    double const t0 = bench_now();
    res.loss = recon_accumulate_gradient(r, x, y, B, B) / (double)n_outputs;
    recon_apply(r);
    res.total = bench_now() - t0;
    recon_set_timings(r, NULL);
    return res;
}

static void print_phases(const IterResult *b, const Counts *k, double peak) {
    const BlockTimings *bt = &b->t.block;
    const double *s = b->t.seconds;
    struct {
        const char *name;
        double sec;
    } const ph[] = {
        {"projections (sgemm)", bt->seconds[BLOCK_PHASE_PROJECTIONS]},
        {"attention (sgemm + softmax)", bt->seconds[BLOCK_PHASE_ATTENTION]},
        {"norms, rope, swiglu, residual, loss",
         bt->seconds[BLOCK_PHASE_OTHER] + s[RECON_PHASE_LOSS]},
        {"quantizer forward (when not fused)", s[RECON_PHASE_QUANTIZE]},
        {"quantizer gradients", s[RECON_PHASE_QUANT_BACKWARD]},
        {"Adam (+ next quantization, fused)", s[RECON_PHASE_ADAM]},
    };
    double sum = 0;
    for (size_t i = 0; i < sizeof ph / sizeof ph[0]; i++) {
        sum += ph[i].sec;
        printf("    %-38s %9.1f ms  %5.1f%%", ph[i].name, 1e3 * ph[i].sec,
               100 * ph[i].sec / b->total);
        if (i == 0) printf("   %.1f GFLOP/s = %.0f%% of peak", k->proj / ph[i].sec * 1e-9,
                           100 * k->proj / ph[i].sec * 1e-9 / peak);
        if (i == 1) printf("   %.1f GFLOP/s", k->attn / ph[i].sec * 1e-9);
        printf("\n");
    }
    printf("    %-38s %9.1f ms  %5.1f%%\n", "(untimed rest)", 1e3 * (b->total - sum),
           100 * (b->total - sum) / b->total);
}

static int bench_shape(const Shape *s, const Options *o, double *peak) {
    ModelConfig const c = shape_config(s);
    int const B = s->B, T = s->T;
    Counts const k = count_shape(&c, B, T);
    size_t const nd = (size_t)B * T * c.dim;
    printf("\n== shape %s: d %d, f %d, H %d, Hkv %d, T %d, B %d: %.1f M weights, W%d per channel, "
           "learn_scale\n", s->name, c.dim, c.hidden_dim, c.n_heads, c.n_kv_heads, T, B,
           k.weights * 1e-6, o->bits);
    printf("   FLOP per iteration: projections %.1f G + attention %.1f G = %.1f G\n",
           k.proj * 1e-9, k.attn * 1e-9, (k.proj + k.attn) * 1e-9);
    /* What the run allocates, as the job's plan counts it for one rank (mpi/plan.c, D 1). */
    ReconParams const p = {.method = RECON_NUPES, .spec = {o->bits, 0, 0}, .learn_scale = 1,
                           .iterations = 1000, .batch = B, .lr_weights = 1e-3f,
                           .lr_exponent = 1e-4f, .lr_scale = 1e-3f, .seed = 1};
    NupesConfig cfg;
    config_defaults(&cfg);
    cfg.batch = B;
    cfg.bits = o->bits;
    Plan plan;
    if (plan_compute(&c, &cfg, 1, B, T, &plan) != NQ_OK) {
        fprintf(stderr, "plan: %s\n", nq_last_error());
        return -1;
    }
    double const planned = (double)plan.mem.total, avail = bench_proc_meminfo_bytes("MemAvailable");
    printf("   memory: analytic minimum %.2f GiB (20 B x %.1f M weights + %.2f GiB activations the "
           "backward needs); the plan's iteration %.2f GiB (BlockActs %.2f GiB + T x T probabilities "
           "%.2f GiB); MemAvailable %.1f GiB\n",
           k.min_bytes / 1073741824.0, k.weights * 1e-6, k.act_bytes / 1073741824.0, planned / 1073741824.0,
           plan.mem.block_acts / 1073741824.0, plan.mem.attention / 1073741824.0, avail / 1073741824.0);
    if (o->plan_only || (avail > 0 && planned * 1.1 > avail)) {
        printf("   not run (%s)\n", o->plan_only ? "--plan-only" : "the plan exceeds MemAvailable");
        return 0;
    }

    /* fp32 weights, input and the fp32 block output as target */
    Rng rng;
    rng_seed(&rng, 1234, (uint64_t)c.dim);
    float *norms = malloc(2 * (size_t)c.dim * sizeof *norms);
    float *x = malloc(nd * sizeof *x), *y = malloc(nd * sizeof *y);
    float *mat[N_MATS] = {0};
    BlockWeights fp = {.attn_norm = norms, .ffn_norm = norms ? norms + c.dim : NULL};
    int ok = norms && x && y;
    for (int i = 0; i < N_MATS && ok; i++) {
        size_t const n = (size_t)mat_rows(&c, i) * mat_cols(&c, i);
        mat[i] = malloc(n * sizeof(float));
        ok = mat[i] != NULL;
        if (ok) fill_normal(&rng, mat[i], n, (float)(1.0 / sqrt(mat_cols(&c, i))));
        fp.mat[i] = mat[i];
    }
    if (!ok) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    for (int i = 0; i < 2 * c.dim; i++) norms[i] = 1.0f;
    fill_normal(&rng, x, nd, 1.0f);
    BlockScratch *scratch = block_scratch_create(&c, B, T); /* the target, as the capture runs it */
    if (!scratch) return -1;
    block_forward_only(&c, &fp, x, y, scratch);
    block_scratch_free(scratch);

    double t0 = bench_now();
    Recon *r = recon_create(&c, &fp, &p, 0, 1, T, B);
    double const setup = bench_now() - t0;
    for (int i = 0; i < N_MATS; i++) free(mat[i]);
    if (!r) {
        fprintf(stderr, "recon_create: %s\n", nq_last_error());
        return -1;
    }
    printf("   setup (scales, exponent search, latents): %.1f s\n", setup);

    printf("\n   %-7s %10s %9s %8s %9s %9s %11s  %s\n", "threads", "ms/iter", "GFLOP/s", "of peak",
           "sgemm pk", "loss", "first, ms", "(best of the timed iterations; the first faults in the "
           "buffers the iterations keep)");
    IterResult best[4], first; /* first: the first thread count's warm-up */
    double predicted_products[4], predicted_ew[4];
    double hwm = 0;
    for (int ti = 0; ti < o->n_threads; ti++) {
        bench_set_threads(o->threads[ti]);
        double const again = bench_sgemm_gflops(4096, 2); /* the load may have changed */
        if (again > peak[ti]) peak[ti] = again;
        bench_reset_peak_rss();
        best[ti] = run_iteration(r, x, y, nd, B); /* warm-up: first touch of the buffers */
        if (ti == 0) first = best[ti];
        for (int it = 0; it < o->iters; it++) {
            IterResult const res = run_iteration(r, x, y, nd, B);
            if (res.total < best[ti].total) best[ti] = res;
        }
        if (bench_peak_rss_bytes() > hwm) hwm = bench_peak_rss_bytes();
        double const gf = (k.proj + k.attn) / best[ti].total * 1e-9;
        printf("   %-7d %10.1f %9.1f %7.1f%% %9.1f %9.3g ", o->threads[ti], 1e3 * best[ti].total, gf,
               100 * gf / peak[ti], peak[ti], best[ti].loss);
        if (ti == 0) printf("%11.1f\n", 1e3 * first.total);
        else printf("%11s\n", "-"); /* its buffers were faulted in by the first thread count */
        /* what the dry run would plan for this iteration, from its own probes (mpi/plan.h) */
        predicted_products[ti] = plan_rank_products_gflops(&c, B, T, o->threads[ti], 0, NULL);
        predicted_ew[ti] = plan_elementwise_probe_seconds_per_weight(&cfg, 0.3);
    }
    printf("\n   the dry run's probes (mpi/plan.h) for this iteration:\n");
    for (int ti = 0; ti < o->n_threads; ti++) {
        double const iteration = (k.proj + k.attn) / (predicted_products[ti] * 1e9) + predicted_ew[ti] * k.weights;
        printf("   %d thread%s: products %.1f GFLOP/s (%.0f%% of the sgemm peak), element-wise %.2f ns per weight:"
               " %.1f ms planned, measured/planned %.2f\n", o->threads[ti], o->threads[ti] > 1 ? "s" : "",
               predicted_products[ti], 100 * predicted_products[ti] / peak[ti], predicted_ew[ti] * 1e9, 1e3 * iteration,
               best[ti].total / iteration);
    }
    for (int ti = 0; ti < o->n_threads; ti++) {
        printf("\n   time by phase, %d thread%s (%.1f ms):\n", o->threads[ti],
               o->threads[ti] > 1 ? "s" : "", 1e3 * best[ti].total);
        print_phases(&best[ti], &k, peak[ti]);
        if (ti > 0) continue;
        printf("   the first iteration by phase, %d thread%s (%.1f ms; the buffers it keeps faulted in, "
               "as the dry run's \"first step\" plans them):\n", o->threads[ti], o->threads[ti] > 1 ? "s" : "",
               1e3 * first.total);
        print_phases(&first, &k, peak[ti]);
    }
    printf("\n   peak RSS during the iterations: %.0f MiB; analytic minimum %.0f MiB "
           "(20 B x %.1f M weights + %.0f MiB activations): %.2f x\n",
           bench_mib(hwm), bench_mib(k.min_bytes), k.weights * 1e-6, bench_mib(k.act_bytes),
           hwm / k.min_bytes);
    recon_free(r);
    free(norms);
    free(x);
    free(y);
    return 0;
}

int main(int argc, char **argv) {
    Options o;
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows when piped */
    if (parse_options(argc, argv, &o) != 0) return 2;
    printf("bench_block_iteration: %s, kernel %s (%s); RSS at start %.0f MiB\n", parallel_blas_library(),
           parallel_blas_kernel(), openblas_get_config(), bench_mib(bench_rss_bytes()));
    Shape from_config;
    if (o.config && config_shape(o.config, &from_config) != 0) return 2;
    printf("\nsgemm peak (4096 x 4096 x 4096, best of 3 here and 2 more before each "
           "configuration's iterations; the highest is used):\n");
    double peak[4];
    for (int ti = 0; ti < o.n_threads; ti++) {
        bench_set_threads(o.threads[ti]);
        peak[ti] = bench_sgemm_gflops(4096, 3);
        printf("   %d thread%s: %.1f GFLOP/s\n", o.threads[ti], o.threads[ti] > 1 ? "s" : "",
               peak[ti]);
    }
    for (size_t i = 0; i < sizeof shapes_all / sizeof shapes_all[0]; i++)
        if (listed(o.shapes, shapes_all[i].name) && bench_shape(&shapes_all[i], &o, peak) != 0)
            return 3;
    if (o.config && bench_shape(&from_config, &o, peak) != 0) return 3;
    return 0;
}
