/* llama2.c legacy export (see export_llama2c.h). The file's tensors are grouped by kind
 * across layers (all rms_att, then all wq, ...), so each block is loaded once and its nine
 * tensors are written with pwrite at their offsets: one block in memory, one pass. */
#include "export_llama2c.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_file.h"
#include "export_safetensors.h"

enum { HEADER_INTS = 7 };

/* Byte offsets of every tensor in the file. */
typedef struct {
    uint64_t tok_embeddings, rms_att, mat[N_MATS], rms_ffn, rms_final, freq_real, freq_imag;
    uint64_t classifier, end;
} L2cOffsets;

static uint64_t mat_floats(const ModelConfig *c, int i) {
    return (uint64_t)mat_rows(c, i) * (uint64_t)mat_cols(c, i);
}

static void offsets_compute(const ModelConfig *c, L2cOffsets *o) {
    uint64_t const d = (uint64_t)c->dim, L = (uint64_t)c->n_layers, V = (uint64_t)c->vocab_size;
    uint64_t const pairs = d / (uint64_t)c->n_heads / 2, S = (uint64_t)c->seq_len;
    uint64_t at = HEADER_INTS * sizeof(int32_t);
    o->tok_embeddings = at;
    at += V * d * 4;
    o->rms_att = at;
    at += L * d * 4;
    for (int i = 0; i < MAT_W1; i++) { /* wq wk wv wo */
        o->mat[i] = at;
        at += L * mat_floats(c, i) * 4;
    }
    o->rms_ffn = at;
    at += L * d * 4;
    for (int i = MAT_W1; i < N_MATS; i++) { /* w1 w2 w3 */
        o->mat[i] = at;
        at += L * mat_floats(c, i) * 4;
    }
    o->rms_final = at;
    at += d * 4;
    o->freq_real = at;
    at += S * pairs * 4;
    o->freq_imag = at;
    at += S * pairs * 4;
    o->classifier = at;
    if (!c->tied_embeddings) at += V * d * 4;
    o->end = at;
}

void export_llama2c_freq_cis(int seq_len, int hs, float theta, float *cos_table, float *sin_table) {
    int const pairs = hs / 2;
    for (int i = 0; i < pairs; i++) {
        float const freq = 1.0f / powf(theta, (float)(2 * i) / (float)hs);
        for (int t = 0; t < seq_len; t++) {
            float const angle = (float)t * freq;
            cos_table[(size_t)t * pairs + i] = cosf(angle);
            sin_table[(size_t)t * pairs + i] = sinf(angle);
        }
    }
}

/* pwrite of all `bytes` at `offset`; a short or failed write names the file and offset. */
static nq_status write_at(int fd, const char *path, const void *data, uint64_t bytes, uint64_t offset) {
    const char *p = data;
    while (bytes > 0) {
        size_t const chunk = bytes > (1u << 30) ? (1u << 30) : (size_t)bytes;
        ssize_t const n = pwrite(fd, p, chunk, (off_t)offset);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            return nq_fail(NQ_ERR_RUNTIME, "%s: write of %zu bytes at offset %llu failed: %s", path, chunk,
                           (unsigned long long)offset, n < 0 ? strerror(errno) : "no progress");
        p += n;
        bytes -= (uint64_t)n;
        offset += (uint64_t)n;
    }
    return NQ_OK;
}

/* The format has no fields for these: run.c (and our llama2.c reader) assume them. */
static nq_status check_fits_format(const Model *m) {
    const ModelConfig *c = model_config(m);
    if (c->rope_theta != 10000.0f)
        return nq_fail(NQ_ERR_INPUT, "%s: rope_theta = %g, expected 10000 (the llama2.c format cannot store another)",
                       model_path(m), c->rope_theta);
    if (c->norm_eps != 1e-5f)
        return nq_fail(NQ_ERR_INPUT, "%s: norm_eps = %g, expected 1e-5 (the llama2.c format cannot store another)",
                       model_path(m), c->norm_eps);
    return NQ_OK;
}

static nq_status write_head(Model *m, int fd, const char *path, const L2cOffsets *o) {
    const ModelConfig *c = model_config(m);
    int32_t const header[HEADER_INTS] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                                         c->tied_embeddings ? c->vocab_size : -c->vocab_size, c->seq_len};
    uint64_t const vd = (uint64_t)c->vocab_size * (uint64_t)c->dim * 4;
    HeadWeights h;
    nq_status st = write_at(fd, path, header, sizeof header, 0);
    if (st == NQ_OK) st = model_head(m, &h);
    if (st == NQ_OK) st = write_at(fd, path, h.tok_embeddings, vd, o->tok_embeddings);
    if (st == NQ_OK) st = write_at(fd, path, h.norm_final, (uint64_t)c->dim * 4, o->rms_final);
    if (st == NQ_OK && !c->tied_embeddings) st = write_at(fd, path, h.classifier, vd, o->classifier);
    if (st != NQ_OK) return st;
    int const hs = c->dim / c->n_heads;
    size_t const n = (size_t)c->seq_len * (size_t)(hs / 2);
    float *cos_table = nq_calloc(2 * n, sizeof(float), "rope tables");
    if (!cos_table) return NQ_ERR_RUNTIME;
    export_llama2c_freq_cis(c->seq_len, hs, c->rope_theta, cos_table, cos_table + n);
    st = write_at(fd, path, cos_table, n * 4, o->freq_real);
    if (st == NQ_OK) st = write_at(fd, path, cos_table + n, n * 4, o->freq_imag);
    free(cos_table);
    return st;
}

/* Block l's nine tensors at their places; q/k back to interleaved rows for a "half" model.
 * scratch: [d][d] floats. */
static nq_status write_block(Model *m, int l, int fd, const char *path, const L2cOffsets *o, float *scratch) {
    const ModelConfig *c = model_config(m);
    uint64_t const d = (uint64_t)c->dim;
    BlockWeights w;
    nq_status st = model_block(m, l, &w);
    if (st == NQ_OK) st = write_at(fd, path, w.attn_norm, d * 4, o->rms_att + (uint64_t)l * d * 4);
    if (st == NQ_OK) st = write_at(fd, path, w.ffn_norm, d * 4, o->rms_ffn + (uint64_t)l * d * 4);
    for (int i = 0; i < N_MATS && st == NQ_OK; i++) {
        const float *data = w.mat[i];
        if (c->rope_style == ROPE_HALF && (i == MAT_WQ || i == MAT_WK)) {
            export_permute_rope_rows(data, i == MAT_WQ ? c->n_heads : c->n_kv_heads, mat_rows(c, i),
                                     mat_cols(c, i), 0, scratch);
            data = scratch;
        }
        uint64_t const bytes = mat_floats(c, i) * 4;
        st = write_at(fd, path, data, bytes, o->mat[i] + (uint64_t)l * bytes);
    }
    model_release_block(m, l);
    return st;
}

nq_status export_llama2c(Model *m, const char *path) {
    const ModelConfig *c = model_config(m);
    char tmp[PATH_MAX];
    nq_status st = check_fits_format(m);
    if (st == NQ_OK) st = atomic_tmp_name(path, tmp, sizeof tmp);
    if (st != NQ_OK) return st;
    L2cOffsets o;
    offsets_compute(c, &o);
    float *scratch = nq_calloc((size_t)c->dim * (size_t)c->dim, sizeof(float), "q/k permutation buffer");
    if (!scratch) return NQ_ERR_RUNTIME;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(scratch);
        return nq_fail(NQ_ERR_RUNTIME, "%s: cannot create: %s", tmp, strerror(errno));
    }
    st = write_head(m, fd, path, &o);
    for (int l = 0; l < c->n_layers && st == NQ_OK; l++) st = write_block(m, l, fd, path, &o, scratch);
    if (close(fd) != 0 && st == NQ_OK) st = nq_fail(NQ_ERR_RUNTIME, "%s: close failed: %s", tmp, strerror(errno));
    free(scratch);
    if (st != NQ_OK) {
        unlink(tmp);
        return st;
    }
    return atomic_commit(tmp, path);
}
