/* The llama2.c legacy checkpoint (docs/design.md 5.4), mapped read-only.
 *
 * Layout: int32 header {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 * seq_len} (vocab_size < 0: an untied classifier follows everything else), then fp32
 *   tok_embeddings [V][d], rms_att [L][d], wq [L][d][d], wk [L][dkv][d], wv [L][dkv][d],
 *   wo [L][d][d], rms_ffn [L][d], w1 [L][f][d], w2 [L][d][f], w3 [L][f][d], rms_final [d],
 *   freq_cis_real [seq_len][hs/2], freq_cis_imag [seq_len][hs/2]  (skipped),
 *   classifier [V][d]  (only when untied).
 * The file size must equal what the header implies. Block views point into the mapping,
 * so only the pages of the blocks a rank touches are ever read from disk. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "model_internal.h"

#define HEADER_BYTES ((uint64_t)LLAMA2C_HEADER_INTS * sizeof(int32_t))

/* Offsets (in floats, from the first float after the header) of each tensor. */
typedef struct {
    uint64_t tok_embeddings, rms_att, mat[N_MATS], rms_ffn, rms_final, freq_cis, classifier;
    uint64_t end; /* floats in the file after the header */
} Llama2cLayout;

typedef struct {
    int fd;          /* -1 once mapped */
    void *map;       /* the whole file, PROT_READ */
    size_t map_size; /* bytes */
    const float *floats; /* map + HEADER_BYTES */
    Llama2cLayout layout;
} Llama2cBackend;

/* a * b + c in uint64 with overflow detection; sets *overflow when it does not fit. */
static uint64_t mul_add(uint64_t a, uint64_t b, uint64_t c, int *overflow) {
    uint64_t prod, sum;
    if (__builtin_mul_overflow(a, b, &prod) || __builtin_add_overflow(prod, c, &sum)) {
        *overflow = 1;
        return 0;
    }
    return sum;
}

/* Computes every tensor's offset from a checked config. Returns -1 when the sizes do not
 * fit in 64 bits (a nonsense header). */
static int layout_compute(const ModelConfig *c, Llama2cLayout *lay) {
    uint64_t const d = (uint64_t)c->dim, f = (uint64_t)c->hidden_dim, L = (uint64_t)c->n_layers;
    uint64_t const V = (uint64_t)c->vocab_size, hs = d / (uint64_t)c->n_heads;
    uint64_t const dkv = (uint64_t)c->n_kv_heads * hs;
    uint64_t const mat_size[N_MATS] = {d * d, dkv * d, dkv * d, d * d, f * d, d * f, f * d};
    int overflow = 0;
    uint64_t at = 0;
    lay->tok_embeddings = at;
    at = mul_add(V, d, at, &overflow);
    lay->rms_att = at;
    at = mul_add(L, d, at, &overflow);
    for (int i = 0; i < MAT_W1; i++) { /* wq wk wv wo */
        lay->mat[i] = at;
        at = mul_add(L, mat_size[i], at, &overflow);
    }
    lay->rms_ffn = at;
    at = mul_add(L, d, at, &overflow);
    for (int i = MAT_W1; i < N_MATS; i++) { /* w1 w2 w3 */
        lay->mat[i] = at;
        at = mul_add(L, mat_size[i], at, &overflow);
    }
    lay->rms_final = at;
    at = mul_add(1, d, at, &overflow);
    lay->freq_cis = at;
    at = mul_add((uint64_t)c->seq_len, hs, at, &overflow); /* real + imag: 2 * seq_len * hs/2 */
    lay->classifier = c->tied_embeddings ? lay->tok_embeddings : at;
    if (!c->tied_embeddings) at = mul_add(V, d, at, &overflow);
    lay->end = at;
    if (overflow || lay->end > (UINT64_MAX - HEADER_BYTES) / sizeof(float)) return -1;
    return 0;
}

static nq_status llama2c_block(Model *m, int l, BlockWeights *w) {
    Llama2cBackend const *b = m->backend;
    ModelConfig const *c = &m->config;
    uint64_t const d = (uint64_t)c->dim;
    w->attn_norm = b->floats + b->layout.rms_att + (uint64_t)l * d;
    w->ffn_norm = b->floats + b->layout.rms_ffn + (uint64_t)l * d;
    for (int i = 0; i < N_MATS; i++) {
        uint64_t const size = (uint64_t)mat_rows(c, i) * (uint64_t)mat_cols(c, i);
        w->mat[i] = b->floats + b->layout.mat[i] + (uint64_t)l * size;
    }
    return NQ_OK;
}

static nq_status llama2c_head(Model *m, HeadWeights *h) {
    Llama2cBackend const *b = m->backend;
    h->tok_embeddings = b->floats + b->layout.tok_embeddings;
    h->norm_final = b->floats + b->layout.rms_final;
    h->classifier = b->floats + b->layout.classifier;
    return NQ_OK;
}

static nq_status llama2c_content_hash(Model *m, uint64_t *hash) {
    Llama2cBackend const *b = m->backend;
    *hash = XXH3_64bits(b->map, b->map_size);
    return NQ_OK;
}

static void backend_free(Llama2cBackend *b) {
    if (!b) return;
    if (b->map && b->map != MAP_FAILED) munmap(b->map, b->map_size);
    if (b->fd >= 0) close(b->fd);
    free(b);
}

static void llama2c_close(Model *m) {
    backend_free(m->backend);
    m->backend = NULL;
}

static const ModelOps llama2c_ops = {
    .block = llama2c_block,
    .release_block = NULL, /* views into the mapping: nothing to release */
    .head = llama2c_head,
    .content_hash = llama2c_content_hash,
    .close = llama2c_close,
};

nq_status llama2c_config_from_header(const char *path, const int32_t h[LLAMA2C_HEADER_INTS],
                                     ModelConfig *c) {
    memset(c, 0, sizeof *c);
    c->dim = h[0];
    c->hidden_dim = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->tied_embeddings = h[5] > 0;
    c->vocab_size = h[5] == INT32_MIN ? 0 : abs(h[5]); /* negative: untied classifier */
    c->seq_len = h[6];
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    c->rope_style = ROPE_INTERLEAVED;
    char why[200];
    if (model_config_check(c, why, sizeof why) != 0)
        return nq_fail(NQ_ERR_INPUT, "%s: header %s", path, why);
    return NQ_OK;
}

nq_status llama2c_model_open(const char *path, Model *m) {
    nq_status st = NQ_OK;
    Llama2cBackend *b = nq_calloc(1, sizeof *b, "llama2.c model");
    if (!b) return NQ_ERR_RUNTIME;
    b->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (b->fd < 0) {
        st = nq_fail(NQ_ERR_INPUT, "%s: cannot open model: %s", path, strerror(errno));
        goto cleanup;
    }
    struct stat sb;
    if (fstat(b->fd, &sb) != 0) {
        st = nq_fail(NQ_ERR_RUNTIME, "%s: fstat failed: %s", path, strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = nq_fail(NQ_ERR_INPUT, "%s: not a regular file, expected a llama2.c model", path);
        goto cleanup;
    }
    uint64_t const file_size = (uint64_t)sb.st_size;
    if (file_size < HEADER_BYTES) {
        st = nq_fail(NQ_ERR_INPUT, "%s: file is %llu bytes, expected at least the %llu-byte llama2.c header",
                     path, (unsigned long long)file_size, (unsigned long long)HEADER_BYTES);
        goto cleanup;
    }
    int32_t header[LLAMA2C_HEADER_INTS];
    ssize_t const got = pread(b->fd, header, sizeof header, 0);
    if (got != (ssize_t)sizeof header) {
        st = nq_fail(NQ_ERR_RUNTIME, "%s: reading the header failed", path);
        goto cleanup;
    }
    ModelConfig config;
    st = llama2c_config_from_header(path, header, &config);
    if (st != NQ_OK) goto cleanup;
    if (layout_compute(&config, &b->layout) != 0) {
        st = nq_fail(NQ_ERR_INPUT, "%s: header sizes overflow 64 bits, not a llama2.c model", path);
        goto cleanup;
    }
    uint64_t const expected = HEADER_BYTES + b->layout.end * sizeof(float);
    if (file_size != expected) {
        st = nq_fail(NQ_ERR_INPUT, "%s: file is %llu bytes, the header implies %llu", path,
                     (unsigned long long)file_size, (unsigned long long)expected);
        goto cleanup;
    }
    b->map_size = (size_t)file_size;
    b->map = mmap(NULL, b->map_size, PROT_READ, MAP_PRIVATE, b->fd, 0);
    if (b->map == MAP_FAILED) {
        b->map = NULL;
        st = nq_fail(NQ_ERR_RUNTIME, "%s: mmap of %zu bytes failed: %s", path, b->map_size, strerror(errno));
        goto cleanup;
    }
    close(b->fd); /* the mapping stays valid without it */
    b->fd = -1;
    b->floats = (const float *)((const char *)b->map + HEADER_BYTES);
    m->config = config;
    m->ops = &llama2c_ops;
    m->backend = b;
    return NQ_OK;
cleanup:
    backend_free(b);
    return st;
}
