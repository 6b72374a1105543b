/* Hugging Face export (see export_safetensors.h). The safetensors header is computed from
 * the config alone (names, dtypes, shapes, offsets), then the data is streamed in header
 * order: head tensors and one block at a time, converted in fixed-size chunks. */
#include "export_safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "safetensors.h"

#define CONVERT_CHUNK (1u << 20) /* elements converted per fwrite */

/* Per block, in the order written: the seven matrices (MAT_ order), then the norms. */
static const char *const hf_block_names[N_MATS + 2] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.down_proj",    "mlp.up_proj",      "input_layernorm",
    "post_attention_layernorm",
};

int export_dtype_parse(const char *name, ExportDtype *out) {
    if (strcmp(name, "f32") == 0) *out = EXPORT_F32;
    else if (strcmp(name, "f16") == 0) *out = EXPORT_F16;
    else if (strcmp(name, "bf16") == 0) *out = EXPORT_BF16;
    else return -1;
    return 0;
}

static size_t dtype_bytes(ExportDtype dt) { return dt == EXPORT_F32 ? 4 : 2; }
static const char *dtype_st_name(ExportDtype dt) { return dt == EXPORT_F32 ? "F32" : dt == EXPORT_F16 ? "F16" : "BF16"; }
static const char *dtype_torch_name(ExportDtype dt) {
    return dt == EXPORT_F32 ? "float32" : dt == EXPORT_F16 ? "float16" : "bfloat16";
}

void export_permute_rope_rows(const float *w, int n_heads, int rows, int cols, int to_half, float *out) {
    size_t const hs = (size_t)(rows / n_heads), half = hs / 2, row_bytes = (size_t)cols * sizeof(float);
    for (size_t h = 0; h < (size_t)n_heads; h++)
        for (size_t i = 0; i < half; i++)
            for (size_t j = 0; j < 2; j++) {
                size_t const interleaved = h * hs + 2 * i + j, halves = h * hs + j * half + i;
                size_t const src = to_half ? interleaved : halves, dst = to_half ? halves : interleaved;
                memcpy(out + dst * (size_t)cols, w + src * (size_t)cols, row_bytes);
            }
}

/* ---------------------------------------------------------------- header */

/* Appends "name": {"dtype": .., "shape": [..], "data_offsets": [a, b]} to buf (*len used of
 * cap). Returns -1 when it does not fit. */
static int header_entry(char *buf, size_t cap, size_t *len, const char *name, const char *dtype,
                        int64_t rows, int64_t cols, uint64_t *offset, size_t elem_bytes) {
    uint64_t const bytes = (uint64_t)rows * (uint64_t)(cols > 0 ? cols : 1) * elem_bytes;
    char shape[64];
    if (cols > 0) snprintf(shape, sizeof shape, "%lld, %lld", (long long)rows, (long long)cols);
    else snprintf(shape, sizeof shape, "%lld", (long long)rows);
    int const n = snprintf(buf + *len, cap - *len,
                           "%s\"%s\": {\"dtype\": \"%s\", \"shape\": [%s], \"data_offsets\": [%llu, %llu]}",
                           *len > 1 ? ", " : "", name, dtype, shape, (unsigned long long)*offset,
                           (unsigned long long)(*offset + bytes));
    if (n < 0 || (size_t)n >= cap - *len) return -1;
    *len += (size_t)n;
    *offset += bytes;
    return 0;
}

/* The JSON header, padded with spaces so that the data starts 8-byte aligned (F32 tensors
 * can then be used in place by readers that map the file). *json is malloc'd. */
static nq_status build_header(const ModelConfig *c, ExportDtype dt, char **json, size_t *json_len) {
    size_t const cap = 256 + (size_t)(c->n_layers * (N_MATS + 2) + 3) * 192;
    char *buf = nq_calloc(cap, 1, "safetensors header");
    if (!buf) return NQ_ERR_RUNTIME;
    const char *const dts = dtype_st_name(dt);
    size_t const eb = dtype_bytes(dt);
    size_t len = 1;
    uint64_t off = 0;
    buf[0] = '{';
    int bad = header_entry(buf, cap, &len, "model.embed_tokens.weight", dts, c->vocab_size, c->dim, &off, eb);
    for (int l = 0; l < c->n_layers && !bad; l++) {
        for (int s = 0; s < N_MATS + 2 && !bad; s++) {
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, hf_block_names[s]);
            int64_t const rows = s < N_MATS ? mat_rows(c, s) : c->dim, cols = s < N_MATS ? mat_cols(c, s) : 0;
            bad = header_entry(buf, cap, &len, name, dts, rows, cols, &off, eb);
        }
    }
    if (!bad) bad = header_entry(buf, cap, &len, "model.norm.weight", dts, c->dim, 0, &off, eb);
    if (!bad && !c->tied_embeddings)
        bad = header_entry(buf, cap, &len, "lm_head.weight", dts, c->vocab_size, c->dim, &off, eb);
    const char *const meta = ", \"__metadata__\": {\"format\": \"pt\"}}";
    if (bad || len + strlen(meta) + 8 >= cap) {
        free(buf);
        return nq_fail(NQ_ERR_RUNTIME, "safetensors header: internal size estimate too small");
    }
    memcpy(buf + len, meta, strlen(meta));
    len += strlen(meta);
    while ((8 + len) % 8 != 0) buf[len++] = ' ';
    *json = buf;
    *json_len = len;
    return NQ_OK;
}

/* ---------------------------------------------------------------- data */

typedef struct {
    FILE *f;
    const char *path; /* the final path, for messages */
    ExportDtype dtype;
    uint16_t *half_buf; /* [CONVERT_CHUNK] for F16/BF16 */
} StWriter;

static nq_status write_floats(StWriter *w, const float *x, size_t n) {
    if (w->dtype == EXPORT_F32) {
        if (fwrite(x, sizeof(float), n, w->f) != n)
            return nq_fail(NQ_ERR_RUNTIME, "%s: write failed: %s", w->path, strerror(errno));
        return NQ_OK;
    }
    for (size_t at = 0; at < n; at += CONVERT_CHUNK) {
        size_t const k = n - at < CONVERT_CHUNK ? n - at : CONVERT_CHUNK;
        for (size_t i = 0; i < k; i++)
            w->half_buf[i] = w->dtype == EXPORT_F16 ? float_to_half(x[at + i]) : float_to_bf16(x[at + i]);
        if (fwrite(w->half_buf, sizeof(uint16_t), k, w->f) != k)
            return nq_fail(NQ_ERR_RUNTIME, "%s: write failed: %s", w->path, strerror(errno));
    }
    return NQ_OK;
}

/* Block l in header order; q/k permuted to the halves layout for an interleaved model.
 * scratch: [d][d]. */
static nq_status write_block(Model *m, int l, StWriter *w, float *scratch) {
    const ModelConfig *c = model_config(m);
    BlockWeights b;
    nq_status st = model_block(m, l, &b);
    for (int i = 0; i < N_MATS && st == NQ_OK; i++) {
        const float *data = b.mat[i];
        if (c->rope_style == ROPE_INTERLEAVED && (i == MAT_WQ || i == MAT_WK)) {
            export_permute_rope_rows(data, i == MAT_WQ ? c->n_heads : c->n_kv_heads, mat_rows(c, i),
                                     mat_cols(c, i), 1, scratch);
            data = scratch;
        }
        st = write_floats(w, data, (size_t)mat_rows(c, i) * (size_t)mat_cols(c, i));
    }
    if (st == NQ_OK) st = write_floats(w, b.attn_norm, (size_t)c->dim);
    if (st == NQ_OK) st = write_floats(w, b.ffn_norm, (size_t)c->dim);
    model_release_block(m, l);
    return st;
}

static nq_status write_tensors(Model *m, const char *tmp, const char *path, ExportDtype dtype) {
    const ModelConfig *c = model_config(m);
    char *json = NULL;
    size_t json_len = 0;
    StWriter w = {.path = path, .dtype = dtype};
    float *scratch = NULL;
    nq_status st = build_header(c, dtype, &json, &json_len);
    if (st != NQ_OK) return st;
    scratch = nq_calloc((size_t)c->dim * (size_t)c->dim, sizeof(float), "q/k permutation buffer");
    w.half_buf = nq_calloc(CONVERT_CHUNK, sizeof(uint16_t), "conversion buffer");
    if (!scratch || !w.half_buf) {
        st = NQ_ERR_RUNTIME;
        goto cleanup;
    }
    if (!(w.f = fopen(tmp, "wb"))) {
        st = nq_fail(NQ_ERR_RUNTIME, "%s: cannot create: %s", tmp, strerror(errno));
        goto cleanup;
    }
    uint64_t const n_le = (uint64_t)json_len; /* little-endian on every platform we build for */
    if (fwrite(&n_le, 8, 1, w.f) != 1 || fwrite(json, 1, json_len, w.f) != json_len)
        st = nq_fail(NQ_ERR_RUNTIME, "%s: write failed: %s", path, strerror(errno));
    HeadWeights h;
    size_t const vd = (size_t)c->vocab_size * (size_t)c->dim;
    if (st == NQ_OK) st = model_head(m, &h);
    if (st == NQ_OK) st = write_floats(&w, h.tok_embeddings, vd);
    for (int l = 0; l < c->n_layers && st == NQ_OK; l++) st = write_block(m, l, &w, scratch);
    if (st == NQ_OK) st = write_floats(&w, h.norm_final, (size_t)c->dim);
    if (st == NQ_OK && !c->tied_embeddings) st = write_floats(&w, h.classifier, vd);
    if (fclose(w.f) != 0 && st == NQ_OK) st = nq_fail(NQ_ERR_RUNTIME, "%s: write failed: %s", path, strerror(errno));
cleanup:
    free(json);
    free(scratch);
    free(w.half_buf);
    return st;
}

/* ---------------------------------------------------------------- config.json */

/* The shortest decimal that reads back as the same float (1e-05, not 9.99999974737875e-06). */
static void shortest_float(float x, char *out, size_t size) {
    if (x == floorf(x) && fabsf(x) < 1e15f) { /* 10000.0, as transformers writes it */
        snprintf(out, size, "%.1f", (double)x);
        return;
    }
    for (int p = 1; p <= 9; p++) {
        snprintf(out, size, "%.*g", p, (double)x);
        if (strtof(out, NULL) == x) return;
    }
}

static nq_status write_config(const ModelConfig *c, ExportDtype dtype, const char *path) {
    cJSON *root = cJSON_CreateObject();
    char eps[32], theta[32];
    shortest_float(c->norm_eps, eps, sizeof eps);
    shortest_float(c->rope_theta, theta, sizeof theta);
    const char *const arch[] = {"LlamaForCausalLM"};
    int ok = root != NULL;
    ok = ok && cJSON_AddItemToObject(root, "architectures", cJSON_CreateStringArray(arch, 1));
    ok = ok && cJSON_AddStringToObject(root, "model_type", "llama");
    ok = ok && cJSON_AddStringToObject(root, "hidden_act", "silu");
    ok = ok && cJSON_AddNumberToObject(root, "hidden_size", c->dim);
    ok = ok && cJSON_AddNumberToObject(root, "intermediate_size", c->hidden_dim);
    ok = ok && cJSON_AddNumberToObject(root, "num_hidden_layers", c->n_layers);
    ok = ok && cJSON_AddNumberToObject(root, "num_attention_heads", c->n_heads);
    ok = ok && cJSON_AddNumberToObject(root, "num_key_value_heads", c->n_kv_heads);
    ok = ok && cJSON_AddNumberToObject(root, "vocab_size", c->vocab_size);
    ok = ok && cJSON_AddNumberToObject(root, "max_position_embeddings", c->seq_len);
    ok = ok && cJSON_AddRawToObject(root, "rms_norm_eps", eps);
    ok = ok && cJSON_AddRawToObject(root, "rope_theta", theta);
    ok = ok && cJSON_AddNullToObject(root, "rope_scaling");
    ok = ok && cJSON_AddFalseToObject(root, "attention_bias");
    ok = ok && cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tied_embeddings);
    ok = ok && cJSON_AddNumberToObject(root, "bos_token_id", 1);
    ok = ok && cJSON_AddNumberToObject(root, "eos_token_id", 2);
    ok = ok && cJSON_AddStringToObject(root, "torch_dtype", dtype_torch_name(dtype));
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) return nq_fail(NQ_ERR_RUNTIME, "%s: out of memory building config.json", path);
    nq_status const st = atomic_write_file(path, text, strlen(text));
    cJSON_free(text);
    return st;
}

nq_status export_safetensors(Model *m, const char *dir, ExportDtype dtype) {
    char st_path[PATH_MAX], cfg_path[PATH_MAX], index_path[PATH_MAX], tmp[PATH_MAX];
    int const a = snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    int const b = snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    int const c = snprintf(index_path, sizeof index_path, "%s/model.safetensors.index.json", dir);
    if (a < 0 || b < 0 || c < 0 || (size_t)c >= sizeof index_path) return nq_fail(NQ_ERR_INPUT, "%s: path too long", dir);
    struct stat sb;
    if (stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode))
        return nq_fail(NQ_ERR_INPUT, "%s: exists and is not a directory, expected a directory for the HF export", dir);
    if (stat(index_path, &sb) == 0)
        return nq_fail(NQ_ERR_INPUT, "%s: holds model.safetensors.index.json (a sharded model), expected a directory without one", dir);
    nq_status st = make_dirs(dir);
    if (st == NQ_OK) st = atomic_tmp_name(st_path, tmp, sizeof tmp);
    if (st != NQ_OK) return st;
    st = write_tensors(m, tmp, st_path, dtype);
    if (st != NQ_OK) {
        unlink(tmp);
        return st;
    }
    st = atomic_commit(tmp, st_path);
    if (st == NQ_OK) st = write_config(model_config(m), dtype, cfg_path);
    return st;
}
