/* bench/checkpoint: how close the checkpoint's codes come to their entropy, and how fast
 * checkpoints are written and read (docs/design.md 5.3 and 9).
 *
 *   bench_checkpoint [--model data/stories260K.bin] [--levels 1,3,19] [--bits 4] [--no-7b] [--dir D]
 *
 * Two cases, each written at every zstd level asked for:
 *   bundled  the bundled model (every block), W4 (--bits) per channel, PowerQuant (searched
 *            exponent);
 *   7b-block one synthetic LLaMA-7B-shaped block (d 4096, f 11008; 202 M weights) of normal
 *            weights, W4 (--bits) per channel, exponent searched on the first 256 rows of each
 *            matrix.
 * Per level: stored bits per weight of the codes datasets (H5Dget_storage_size, summed)
 * against the Shannon entropy of the codes (per tensor, weighted by its size: the bound for
 * a coder that sees one tensor's statistics), the whole file's bits per quantized weight,
 * and write and read throughput in MB/s of the uncompressed payload (int8 codes, fp32
 * scales, exponents, norms and head). A write is checkpoint_create .. checkpoint_commit
 * (fsync and rename included); the read is checkpoint_open + every block, after the file's
 * pages were dropped from the page cache (posix_fadvise DONTNEED), and is checked against
 * what was written. */
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_util.h"
#include "checkpoint.h"
#include "h5util.h"
#include "model_file.h"
#include "recon.h"
#include "rng.h"

#define MAX_LEVELS 8

typedef struct {
    const char *model_path, *dir;
    int levels[MAX_LEVELS], n_levels;
    int levels_given; /* else the 7b block skips levels > 9 (19: ~2 min per 7B block) */
    int with_7b;
    int bits; /* 2..8 */
} Options;

/* The blocks to store, with the model's head and norms. */
typedef struct {
    const char *name;
    ModelConfig c;
    HeadWeights head;
    float *head_memory;     /* owned (synthetic case) */
    BlockResult *blocks;    /* [c.n_layers] */
    float *norms;           /* [2 d] attn and ffn gains, shared by every block */
    double weights;         /* quantized weights */
    double entropy_bits;    /* sum over tensors of n H(codes) */
    double payload_bytes;   /* uncompressed: codes, scales, exponents, norms, head */
} Case;

static void case_free(Case *k) {
    for (int l = 0; k->blocks && l < k->c.n_layers; l++) block_result_free(&k->blocks[l]);
    free(k->blocks);
    free(k->head_memory);
    free(k->norms);
}

static void count_codes(Case *k) {
    size_t const d = (size_t)k->c.dim, V = (size_t)k->c.vocab_size;
    k->weights = k->entropy_bits = 0;
    k->payload_bytes = 4.0 * (V * d * (k->c.tied_embeddings ? 1 : 2) + d);
    for (int l = 0; l < k->c.n_layers; l++) {
        k->payload_bytes += 4.0 * 2 * d;
        for (int i = 0; i < N_MATS; i++) {
            const QuantMatrix *q = &k->blocks[l].mat[i];
            size_t const n = (size_t)q->shape.rows * q->shape.cols;
            k->weights += (double)n;
            k->entropy_bits += (double)n * quant_code_entropy(quant_matrix_array(q, "codes"), n);
            k->payload_bytes += quantizer_raw_bits(q->desc, q->n_arrays) / 8;
        }
    }
}

/* The bundled model, every block through recon (PowerQuant: searched exponent, codes). */
static int case_bundled(Case *k, const char *path, int bits) {
    Model *m = NULL;
    if (model_open(path, "auto", &m) != NQ_OK) {
        fprintf(stderr, "%s\n", nq_last_error());
        return -1;
    }
    k->name = "bundled";
    k->c = *model_config(m);
    size_t const d = (size_t)k->c.dim, V = (size_t)k->c.vocab_size;
    k->blocks = calloc((size_t)k->c.n_layers, sizeof *k->blocks);
    k->head_memory = malloc(V * d * 2 * sizeof(float) + d * sizeof(float));
    k->norms = malloc(2 * d * sizeof(float));
    HeadWeights h;
    int ok = k->blocks && k->head_memory && k->norms && model_head(m, &h) == NQ_OK;
    if (ok) { /* copies: the model is closed before the benchmark */
        memcpy(k->head_memory, h.tok_embeddings, V * d * sizeof(float));
        memcpy(k->head_memory + V * d, h.classifier, V * d * sizeof(float));
        memcpy(k->head_memory + 2 * V * d, h.norm_final, d * sizeof(float));
        k->head = (HeadWeights){k->head_memory, k->head_memory + 2 * V * d,
                                k->c.tied_embeddings ? k->head_memory : k->head_memory + V * d};
    }
    ReconParams const p = {.method = RECON_POWERQUANT, .spec = {bits, 0, 0}, .iterations = 1,
                           .batch = 1, .seed = 1};
    for (int l = 0; ok && l < k->c.n_layers; l++) {
        BlockWeights w;
        ok = model_block(m, l, &w) == NQ_OK;
        Recon *r = ok ? recon_create(&k->c, &w, &p, l, 1, 8, 1) : NULL;
        ok = r && block_result_alloc(&k->blocks[l], &k->c, p.spec, l, 0) == NQ_OK;
        if (ok) ok = recon_result(r, &k->blocks[l]) == NQ_OK;
        if (ok && l == 0) {
            memcpy(k->norms, w.attn_norm, d * sizeof(float));
            memcpy(k->norms + d, w.ffn_norm, d * sizeof(float));
        }
        recon_free(r);
        model_release_block(m, l);
    }
    model_close(m);
    if (!ok) {
        fprintf(stderr, "bundled model: %s\n", nq_last_error());
        return -1;
    }
    count_codes(k);
    return 0;
}

static void fill_normal(Rng *rng, float *x, size_t n, float std) {
    for (size_t i = 0; i < n; i++) { /* sum of 4 uniforms: close enough to normal, fast */
        float const u = rng_uniform_float(rng) + rng_uniform_float(rng) +
                        rng_uniform_float(rng) + rng_uniform_float(rng) - 2.0f;
        x[i] = u * std * 1.7320508f;
    }
}

/* One synthetic 7B-shaped block: normal weights, W4 (--bits) per channel, exponent searched on the
 * first 256 rows of each matrix (the full search is the slow part of a real run). */
static int case_7b(Case *k, int bits) {
    k->name = "7b-block";
    k->c = (ModelConfig){.dim = 4096, .hidden_dim = 11008, .n_layers = 1, .n_heads = 32,
                         .n_kv_heads = 32, .vocab_size = 256, .seq_len = 512,
                         .rope_theta = 10000.0f, .norm_eps = 1e-5f, .tied_embeddings = 1};
    size_t const d = 4096, V = 256;
    QuantSpec const spec = {.bits = bits};
    k->blocks = calloc(1, sizeof *k->blocks);
    k->head_memory = malloc((V * d + d) * sizeof(float));
    k->norms = malloc(2 * d * sizeof(float));
    if (!k->blocks || !k->head_memory || !k->norms ||
        block_result_alloc(&k->blocks[0], &k->c, spec, 0, 0) != NQ_OK)
        return -1;
    Rng rng;
    rng_seed(&rng, 7, 0);
    fill_normal(&rng, k->head_memory, V * d + d, 0.1f);
    for (size_t i = 0; i < 2 * d; i++) k->norms[i] = 1.0f;
    k->head = (HeadWeights){k->head_memory, k->head_memory + V * d, k->head_memory};
    for (int i = 0; i < N_MATS; i++) {
        QuantMatrix *q = &k->blocks[0].mat[i];
        size_t const n = (size_t)q->shape.rows * q->shape.cols;
        size_t const ns = (size_t)q->shape.rows * q->shape.groups;
        float *w = malloc(n * sizeof *w), *z = malloc(n * sizeof *z), *scales = malloc(ns * sizeof *scales);
        int8_t *codes = malloc(n);
        float a = 1.0f;
        QuantLatents l = {z, scales, &a};
        int ok = w && z && scales && codes;
        if (ok) {
            fill_normal(&rng, w, n, 1.0f / 64.0f);
            quant_init_scales(spec, q->shape, w, scales);
            QuantShape const part = quant_shape(spec, 256, q->shape.cols); /* search on 256 rows: faster */
            quant_search_exponent(spec, part, w, scales, &a);
            quant_normalise(spec, q->shape, w, scales, z);
            q->quant->forward(spec, q->shape, &l, codes, NULL);
            ok = q->quant->encode(spec, q->shape, &l, codes, q->desc, q->array) == NQ_OK;
        }
        free(w), free(z), free(scales), free(codes);
        if (!ok) return -1;
    }
    count_codes(k);
    return 0;
}

/* Sum of H5Dget_storage_size over every codes dataset of the checkpoint. */
static double codes_storage_bytes(const char *path, const Case *k) {
    hid_t f;
    if (h5u_open_read(path, &f) != NQ_OK) return -1;
    double total = 0;
    for (int l = 0; l < k->c.n_layers && total >= 0; l++)
        for (int i = 0; i < N_MATS; i++) {
            char name[64];
            snprintf(name, sizeof name, "/blocks/%04d/%s/codes", l, mat_names[i]);
            hid_t const ds = H5Dopen2(f, name, H5P_DEFAULT);
            if (ds < 0) {
                total = -1;
                break;
            }
            total += (double)H5Dget_storage_size(ds);
            H5Dclose(ds);
        }
    h5u_close_file(f, path);
    return total;
}

static int drop_cache(const char *path) {
    int const fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    int const rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    return rc;
}

static nq_status write_checkpoint(const Case *k, const char *path, int level) {
    CheckpointMeta const meta = {.method = "powerquant", .spec = k->blocks[0].mat[0].spec,
                                 .fingerprint = "bench", .config_toml = ""};
    CheckpointWriter *w = NULL;
    nq_status st = checkpoint_create(path, &meta, &k->c, &k->head, level, &w);
    for (int l = 0; l < k->c.n_layers && st == NQ_OK; l++)
        st = checkpoint_write_block(w, &k->blocks[l], k->norms, k->norms + k->c.dim);
    if (st == NQ_OK) return checkpoint_commit(w);
    checkpoint_abort(w);
    return st;
}

/* Reads every block back; 0 when all codes match what was written. */
static int read_checkpoint(const Case *k, const char *path) {
    CheckpointReader *r = NULL;
    if (checkpoint_open(path, &r) != NQ_OK) return -1;
    int bad = 0;
    for (int l = 0; l < k->c.n_layers && !bad; l++) {
        BlockResult b;
        if (checkpoint_read_block(r, l, &b, NULL, NULL) != NQ_OK) {
            bad = 1;
            break;
        }
        for (int i = 0; i < N_MATS; i++) {
            const QuantMatrix *q = &k->blocks[l].mat[i];
            bad |= memcmp(quant_matrix_array(&b.mat[i], "codes"), quant_matrix_array(q, "codes"),
                          (size_t)q->shape.rows * q->shape.cols) != 0;
        }
        block_result_free(&b);
    }
    checkpoint_close(r);
    return bad;
}

static int bench_case(const Case *k, const Options *o) {
    printf("\n== %s: %d block%s, %.2f M quantized weights, W%d per channel; code entropy "
           "%.4f bits/weight; payload %.1f MB\n", k->name, k->c.n_layers,
           k->c.n_layers > 1 ? "s" : "", k->weights * 1e-6, k->blocks[0].mat[0].spec.bits, k->entropy_bits / k->weights,
           k->payload_bytes * 1e-6);
    printf("   %5s %11s %9s %8s %11s %10s %10s %10s %8s\n", "level", "codes b/w", "entropy",
           "ratio", "file b/w", "file MB", "write MB/s", "read MB/s", "verified");
    char path[4096];
    snprintf(path, sizeof path, "%s/bench-checkpoint-%s.h5", o->dir, k->name);
    for (int li = 0; li < o->n_levels; li++) {
        if (!o->levels_given && k->weights > 1e8 && o->levels[li] > 9) {
            printf("   %5d (skipped: ~2 minutes for a 7B block; ask for it with --levels)\n",
                   o->levels[li]);
            continue;
        }
        double t0 = bench_now();
        if (write_checkpoint(k, path, o->levels[li]) != NQ_OK) {
            fprintf(stderr, "write: %s\n", nq_last_error());
            return -1;
        }
        double const t_write = bench_now() - t0;
        struct stat sb;
        double const stored = codes_storage_bytes(path, k);
        if (stat(path, &sb) != 0 || stored < 0) return -1;
        drop_cache(path);
        t0 = bench_now();
        int const bad = read_checkpoint(k, path);
        double const t_read = bench_now() - t0;
        double const bpw = 8 * stored / k->weights, h = k->entropy_bits / k->weights;
        printf("   %5d %11.4f %9.4f %7.3fx %11.4f %10.2f %10.1f %10.1f %8s\n", o->levels[li],
               bpw, h, bpw / h, 8.0 * (double)sb.st_size / k->weights, sb.st_size * 1e-6,
               k->payload_bytes / t_write * 1e-6, k->payload_bytes / t_read * 1e-6,
               bad ? "NO" : "yes");
        if (bad) return -1;
    }
    unlink(path);
    return 0;
}

static int parse_options(int argc, char **argv, Options *o) {
    o->model_path = "data/stories260K.bin";
    o->dir = ".";
    o->levels[0] = 1, o->levels[1] = 3, o->levels[2] = 19, o->n_levels = 3;
    o->with_7b = 1;
    o->bits = 4;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--no-7b")) {
            o->with_7b = 0;
            continue;
        }
        if (!v) goto usage;
        if (!strcmp(argv[i], "--model")) {
            o->model_path = v;
        } else if (!strcmp(argv[i], "--dir")) {
            o->dir = v;
        } else if (!strcmp(argv[i], "--bits")) {
            o->bits = (int)strtol(v, NULL, 10);
            if (o->bits < 2 || o->bits > 8) goto usage;
        } else if (!strcmp(argv[i], "--levels")) {
            o->n_levels = 0;
            o->levels_given = 1;
            for (char *p = (char *)v; *p && o->n_levels < MAX_LEVELS;) {
                o->levels[o->n_levels++] = (int)strtol(p, &p, 10);
                if (*p == ',') p++;
            }
        } else {
            goto usage;
        }
        i++;
    }
    return o->n_levels > 0 ? 0 : -1;
usage:
    fprintf(stderr, "usage: %s [--model PATH] [--levels 1,3,19] [--bits 2..8] [--no-7b] [--dir DIR]\n", argv[0]);
    return -1;
}

int main(int argc, char **argv) {
    Options o;
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows when piped */
    if (parse_options(argc, argv, &o) != 0) return 2;
    if (h5u_init() != NQ_OK) return 3;
    printf("bench_checkpoint: stored codes vs entropy, checkpoint write/read throughput\n");
    Case k = {0};
    int rc = case_bundled(&k, o.model_path, o.bits) == 0 ? bench_case(&k, &o) : -1;
    case_free(&k);
    if (rc == 0 && o.with_7b) {
        Case big = {0};
        double const t0 = bench_now();
        rc = case_7b(&big, o.bits);
        if (rc == 0) printf("\n(7b-block codes prepared in %.1f s)\n", bench_now() - t0);
        if (rc == 0) rc = bench_case(&big, &o);
        case_free(&big);
    }
    return rc == 0 ? 0 : 3;
}
