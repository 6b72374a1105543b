#include "model_file.h"

#include <errno.h>
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
    if (st != NQ_OK) {
        free(m);
        return st;
    }
    *out = m;
    return NQ_OK;
}

void model_close(Model *m) {
    if (!m) return;
    if (m->ops && m->ops->close) m->ops->close(m);
    free(m);
}

const ModelConfig *model_config(const Model *m) { return &m->config; }
const char *model_path(const Model *m) { return m->path; }

nq_status model_block(Model *m, int l, BlockWeights *w) {
    if (l < 0 || l >= m->config.n_layers)
        return nq_fail(NQ_ERR_INPUT, "%s: block %d requested, the model has %d", m->path, l, m->config.n_layers);
    return m->ops->block(m, l, w);
}

void model_release_block(Model *m, int l) {
    if (m->ops->release_block) m->ops->release_block(m, l);
}

nq_status model_head(Model *m, HeadWeights *h) { return m->ops->head(m, h); }

nq_status model_content_hash(Model *m, uint64_t *hash) { return m->ops->content_hash(m, hash); }
