#include "model_file.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model_internal.h"

static const unsigned char hdf5_signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

nq_status model_detect_format(const char *path, const char **format) {
    struct stat st;
    if (stat(path, &st) != 0)
        return nq_fail(NQ_ERR_INPUT, "%s: cannot open model: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        *format = "hf";
        return NQ_OK;
    }
    unsigned char head[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return nq_fail(NQ_ERR_INPUT, "%s: cannot open model: %s", path, strerror(errno));
    size_t const got = fread(head, 1, sizeof head, f);
    fclose(f);
    *format = got == sizeof head && memcmp(head, hdf5_signature, sizeof head) == 0 ? "checkpoint"
                                                                                   : "llama2c";
    return NQ_OK;
}

nq_status model_open(const char *path, const char *format, Model **out) {
    *out = NULL;
    if (!format || strcmp(format, "auto") == 0) {
        nq_status const st = model_detect_format(path, &format);
        if (st != NQ_OK) return st;
    }
    Model *m = nq_calloc(1, sizeof *m, "model");
    if (!m) return NQ_ERR_RUNTIME;
    snprintf(m->path, sizeof m->path, "%s", path);
    nq_status st;
    if (strcmp(format, "llama2c") == 0) st = llama2c_model_open(path, m);
    else if (strcmp(format, "hf") == 0) st = hf_model_open(path, m);
    else if (strcmp(format, "checkpoint") == 0) st = checkpoint_model_open(path, m);
    else st = nq_fail(NQ_ERR_INPUT, "%s: model format \"%s\", expected auto, llama2c, hf or checkpoint", path, format);
    if (st == NQ_OK) {
        m->finite_checked = nq_calloc((size_t)m->config.n_layers + 1, 1, "model check list");
        if (!m->finite_checked) {
            m->ops->close(m);
            st = NQ_ERR_RUNTIME;
        }
    }
    if (st != NQ_OK) {
        free(m);
        return st;
    }
    *out = m;
    return NQ_OK;
}

/* NaN or Inf in a weight is bad input: found the first time the weights are handed out,
 * before any arithmetic mixes them into everything else. */
static nq_status check_finite_(const Model *m, const char *tensor, const float *x, size_t rows, size_t cols) {
    size_t const n = rows * cols;
    for (size_t i = 0; i < n; i++) {
        if (isfinite(x[i])) continue;
        if (cols > 1)
            return nq_fail(NQ_ERR_INPUT, "%s: %s[%zu][%zu] = %g, expected a finite weight", m->path, tensor,
                           i / cols, i % cols, (double)x[i]);
        return nq_fail(NQ_ERR_INPUT, "%s: %s[%zu] = %g, expected a finite weight", m->path, tensor, i, (double)x[i]);
    }
    return NQ_OK;
}

static nq_status check_block_finite_(const Model *m, int l, const BlockWeights *w) {
    const ModelConfig *c = &m->config;
    char name[64];
    snprintf(name, sizeof name, "block %d attn_norm", l);
    nq_status st = check_finite_(m, name, w->attn_norm, (size_t)c->dim, 1);
    snprintf(name, sizeof name, "block %d ffn_norm", l);
    if (st == NQ_OK) st = check_finite_(m, name, w->ffn_norm, (size_t)c->dim, 1);
    for (int i = 0; i < N_MATS && st == NQ_OK; i++) {
        snprintf(name, sizeof name, "block %d %s", l, mat_names[i]);
        st = check_finite_(m, name, w->mat[i], (size_t)mat_rows(c, i), (size_t)mat_cols(c, i));
    }
    return st;
}

static nq_status check_head_finite_(const Model *m, const HeadWeights *h) {
    const ModelConfig *c = &m->config;
    size_t const V = (size_t)c->vocab_size, d = (size_t)c->dim;
    nq_status st = check_finite_(m, "tok_embeddings", h->tok_embeddings, V, d);
    if (st == NQ_OK) st = check_finite_(m, "norm_final", h->norm_final, d, 1);
    if (st == NQ_OK && h->classifier != h->tok_embeddings) st = check_finite_(m, "output", h->classifier, V, d);
    return st;
}

void model_close(Model *m) {
    if (!m) return;
    if (m->ops && m->ops->close) m->ops->close(m);
    free(m->finite_checked);
    free(m);
}

const ModelConfig *model_config(const Model *m) { return &m->config; }
const char *model_path(const Model *m) { return m->path; }

nq_status model_block(Model *m, int l, BlockWeights *w) {
    if (l < 0 || l >= m->config.n_layers)
        return nq_fail(NQ_ERR_INPUT, "%s: block %d requested, the model has %d", m->path, l, m->config.n_layers);
    nq_status st = m->ops->block(m, l, w);
    if (st == NQ_OK && !m->finite_checked[l]) {
        st = check_block_finite_(m, l, w);
        if (st != NQ_OK) model_release_block(m, l);
        else m->finite_checked[l] = 1;
    }
    return st;
}

void model_release_block(Model *m, int l) {
    if (m->ops->release_block) m->ops->release_block(m, l);
}

nq_status model_block_norms(Model *m, int l, float *attn_norm, float *ffn_norm) {
    size_t const d = (size_t)m->config.dim;
    if (l < 0 || l >= m->config.n_layers)
        return nq_fail(NQ_ERR_INPUT, "%s: block %d requested, the model has %d", m->path, l, m->config.n_layers);
    if (!m->ops->block_norms) {
        BlockWeights w;
        nq_status const st = model_block(m, l, &w);
        if (st != NQ_OK) return st;
        memcpy(attn_norm, w.attn_norm, d * sizeof *attn_norm);
        memcpy(ffn_norm, w.ffn_norm, d * sizeof *ffn_norm);
        model_release_block(m, l);
        return NQ_OK;
    }
    nq_status st = m->ops->block_norms(m, l, attn_norm, ffn_norm);
    char name[64];
    snprintf(name, sizeof name, "block %d attn_norm", l);
    if (st == NQ_OK) st = check_finite_(m, name, attn_norm, d, 1);
    snprintf(name, sizeof name, "block %d ffn_norm", l);
    if (st == NQ_OK) st = check_finite_(m, name, ffn_norm, d, 1);
    return st;
}

nq_status model_head(Model *m, HeadWeights *h) {
    int const L = m->config.n_layers;
    nq_status st = m->ops->head(m, h);
    if (st == NQ_OK && !m->finite_checked[L]) {
        st = check_head_finite_(m, h);
        if (st == NQ_OK) m->finite_checked[L] = 1;
    }
    return st;
}

nq_status model_content_hash(Model *m, uint64_t *hash) { return m->ops->content_hash(m, hash); }
