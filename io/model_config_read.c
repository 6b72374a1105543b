/* model_read_config (see model_config_read.h). */
#include "model_config_read.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "model_internal.h"

static const unsigned char hdf5_signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

/* The llama2.c header {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (< 0:
 * untied), seq_len}; theta and eps are the format's fixed 10000 and 1e-5. */
static nq_status read_llama2c_header(const char *path, ModelConfig *c) {
    FILE *f = fopen(path, "rb");
    if (!f) return nq_fail(NQ_ERR_INPUT, "%s: cannot open model: %s", path, strerror(errno));
    int32_t h[7];
    size_t const got = fread(h, sizeof h[0], 7, f);
    fclose(f);
    if (got != 7) return nq_fail(NQ_ERR_INPUT, "%s: shorter than the 28-byte llama2.c header", path);
    memset(c, 0, sizeof *c);
    c->dim = h[0];
    c->hidden_dim = h[1];
    c->n_layers = h[2];
    c->n_heads = h[3];
    c->n_kv_heads = h[4];
    c->tied_embeddings = h[5] > 0;
    c->vocab_size = h[5] == INT32_MIN ? 0 : abs(h[5]);
    c->seq_len = h[6];
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    c->rope_style = ROPE_INTERLEAVED;
    char why[200];
    if (model_config_check(c, why, sizeof why) != 0) return nq_fail(NQ_ERR_INPUT, "%s: header %s", path, why);
    return NQ_OK;
}

static nq_status detect(const char *path, const char **format) {
    struct stat sb;
    if (stat(path, &sb) != 0) return nq_fail(NQ_ERR_INPUT, "%s: cannot open model: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        *format = "hf";
        return NQ_OK;
    }
    unsigned char head[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return nq_fail(NQ_ERR_INPUT, "%s: cannot open model: %s", path, strerror(errno));
    size_t const got = fread(head, 1, sizeof head, f);
    fclose(f);
    *format = got == sizeof head && memcmp(head, hdf5_signature, sizeof head) == 0 ? "checkpoint" : "llama2c";
    return NQ_OK;
}

nq_status model_read_config(const char *path, const char *format, ModelConfig *c) {
    if (!format || strcmp(format, "auto") == 0) {
        nq_status const st = detect(path, &format);
        if (st != NQ_OK) return st;
    }
    if (strcmp(format, "llama2c") == 0) return read_llama2c_header(path, c);
    if (strcmp(format, "hf") == 0) return hf_model_read_config(path, c);
    if (strcmp(format, "checkpoint") == 0) {
        CheckpointInfo info;
        nq_status const st = checkpoint_read_info(path, &info);
        if (st != NQ_OK) return st;
        *c = info.config;
        checkpoint_info_free(&info);
        return NQ_OK;
    }
    return nq_fail(NQ_ERR_INPUT, "%s: model format \"%s\", expected auto, llama2c, hf or checkpoint", path, format);
}
