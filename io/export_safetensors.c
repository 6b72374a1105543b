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
#include <strings.h>
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


/* ---------------------------------------------------------------- tensor list */

enum { SRC_EMBED, SRC_BLOCK, SRC_NORM_FINAL, SRC_CLASSIFIER };

/* One tensor of the file(s), in the order written. */
typedef struct {
    char name[96];
    int64_t rows, cols; /* cols 0: a vector */
    int src, layer, slot; /* slot: MAT_ index, N_MATS (attn_norm) or N_MATS + 1 (ffn_norm) */
    int shard;
} ExpTensor;

static uint64_t tensor_bytes(const ExpTensor *t, ExportDtype dt) {
    return (uint64_t)t->rows * (uint64_t)(t->cols > 0 ? t->cols : 1) * dtype_bytes(dt);
}

/* The tensors in header order, dealt into shards of at most max_shard bytes of data (a
 * tensor larger than that gets a shard of its own, as transformers does). */
static ExpTensor *list_tensors(const ModelConfig *c, ExportDtype dt, uint64_t max_shard, int *n_out, int *shards_out) {
    int const n = 2 + c->n_layers * (N_MATS + 2) + (c->tied_embeddings ? 0 : 1);
    ExpTensor *t = nq_calloc((size_t)n, sizeof *t, "tensor list");
    if (!t) return NULL;
    int k = 0;
    t[k++] = (ExpTensor){"model.embed_tokens.weight", c->vocab_size, c->dim, SRC_EMBED, 0, 0, 0};
    for (int l = 0; l < c->n_layers; l++)
        for (int s = 0; s < N_MATS + 2; s++, k++) {
            snprintf(t[k].name, sizeof t[k].name, "model.layers.%d.%s.weight", l, hf_block_names[s]);
            t[k].rows = s < N_MATS ? mat_rows(c, s) : c->dim;
            t[k].cols = s < N_MATS ? mat_cols(c, s) : 0;
            t[k].src = SRC_BLOCK;
            t[k].layer = l;
            t[k].slot = s;
        }
    t[k++] = (ExpTensor){"model.norm.weight", c->dim, 0, SRC_NORM_FINAL, 0, 0, 0};
    if (!c->tied_embeddings) t[k++] = (ExpTensor){"lm_head.weight", c->vocab_size, c->dim, SRC_CLASSIFIER, 0, 0, 0};
    int shard = 0;
    uint64_t used = 0;
    for (int i = 0; i < n; i++) {
        uint64_t const b = tensor_bytes(&t[i], dt);
        if (used > 0 && used + b > max_shard) {
            shard++;
            used = 0;
        }
        t[i].shard = shard;
        used += b;
    }
    *n_out = n;
    *shards_out = shard + 1;
    return t;
}

/* ---------------------------------------------------------------- header */

/* Appends "name": {"dtype": .., "shape": [..], "data_offsets": [a, b]} to buf (*len used of
 * cap). Returns -1 when it does not fit. */
static int header_entry(char *buf, size_t cap, size_t *len, const ExpTensor *t, ExportDtype dt, uint64_t *offset) {
    uint64_t const bytes = tensor_bytes(t, dt);
    char shape[64];
    if (t->cols > 0) snprintf(shape, sizeof shape, "%lld, %lld", (long long)t->rows, (long long)t->cols);
    else snprintf(shape, sizeof shape, "%lld", (long long)t->rows);
    int const n = snprintf(buf + *len, cap - *len,
                           "%s\"%s\": {\"dtype\": \"%s\", \"shape\": [%s], \"data_offsets\": [%llu, %llu]}",
                           *len > 1 ? ", " : "", t->name, dtype_st_name(dt), shape, (unsigned long long)*offset,
                           (unsigned long long)(*offset + bytes));
    if (n < 0 || (size_t)n >= cap - *len) return -1;
    *len += (size_t)n;
    *offset += bytes;
    return 0;
}

/* The JSON header of tensors t[0..n), padded with spaces so that the data starts 8-byte
 * aligned (F32 tensors can then be used in place by readers that map the file). *json is
 * malloc'd. */
static nq_status build_header(const ExpTensor *t, int n, ExportDtype dt, char **json, size_t *json_len) {
    size_t const cap = 256 + (size_t)n * 192;
    char *buf = nq_calloc(cap, 1, "safetensors header");
    if (!buf) return NQ_ERR_RUNTIME;
    size_t len = 1;
    uint64_t off = 0;
    buf[0] = '{';
    int bad = 0;
    for (int i = 0; i < n && !bad; i++) bad = header_entry(buf, cap, &len, &t[i], dt, &off);
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

/* Streams the tensors in order; the block they come from is loaded when first needed and
 * released when the next one is (one block in memory). */
typedef struct {
    Model *m;
    HeadWeights head;
    BlockWeights block;
    int loaded; /* layer in block, or -1 */
    float *scratch; /* [d][d] for the q/k permutation */
} StSource;

static nq_status write_tensor(StWriter *w, StSource *src, const ExpTensor *t) {
    const ModelConfig *c = model_config(src->m);
    size_t const n = (size_t)t->rows * (size_t)(t->cols > 0 ? t->cols : 1);
    if (t->src == SRC_EMBED) return write_floats(w, src->head.tok_embeddings, n);
    if (t->src == SRC_NORM_FINAL) return write_floats(w, src->head.norm_final, n);
    if (t->src == SRC_CLASSIFIER) return write_floats(w, src->head.classifier, n);
    if (src->loaded != t->layer) {
        if (src->loaded >= 0) model_release_block(src->m, src->loaded);
        src->loaded = -1;
        nq_status const st = model_block(src->m, t->layer, &src->block);
        if (st != NQ_OK) return st;
        src->loaded = t->layer;
    }
    int const s = t->slot;
    if (s == N_MATS) return write_floats(w, src->block.attn_norm, n);
    if (s == N_MATS + 1) return write_floats(w, src->block.ffn_norm, n);
    const float *data = src->block.mat[s];
    if (c->rope_style == ROPE_INTERLEAVED && (s == MAT_WQ || s == MAT_WK)) {
        export_permute_rope_rows(data, s == MAT_WQ ? c->n_heads : c->n_kv_heads, mat_rows(c, s), mat_cols(c, s), 1,
                                 src->scratch);
        data = src->scratch;
    }
    return write_floats(w, data, n);
}

/* Writes shard k's file (its tensors t[a..b)) to tmp. */
static nq_status write_shard(StSource *src, const ExpTensor *t, int a, int b, ExportDtype dtype, const char *tmp,
                             const char *path, uint16_t *half_buf) {
    char *json = NULL;
    size_t json_len = 0;
    StWriter w = {.path = path, .dtype = dtype, .half_buf = half_buf};
    nq_status st = build_header(t + a, b - a, dtype, &json, &json_len);
    if (st != NQ_OK) return st;
    if (!(w.f = fopen(tmp, "wb"))) {
        free(json);
        return nq_fail(NQ_ERR_RUNTIME, "%s: cannot create: %s", tmp, strerror(errno));
    }
    uint64_t const n_le = (uint64_t)json_len; /* little-endian on every platform we build for */
    if (fwrite(&n_le, 8, 1, w.f) != 1 || fwrite(json, 1, json_len, w.f) != json_len)
        st = nq_fail(NQ_ERR_RUNTIME, "%s: write failed: %s", path, strerror(errno));
    for (int i = a; i < b && st == NQ_OK; i++) st = write_tensor(&w, src, &t[i]);
    if (fclose(w.f) != 0 && st == NQ_OK) st = nq_fail(NQ_ERR_RUNTIME, "%s: write failed: %s", path, strerror(errno));
    free(json);
    return st;
}

static void shard_name(int k, int n_shards, char *out, size_t size) {
    if (n_shards == 1) snprintf(out, size, "model.safetensors");
    else snprintf(out, size, "model-%05d-of-%05d.safetensors", k + 1, n_shards);
}

/* model.safetensors.index.json: total_size and the tensor -> file map. */
static nq_status write_index(const ExpTensor *t, int n, int n_shards, ExportDtype dt, const char *path) {
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject(), *map = cJSON_CreateObject();
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += tensor_bytes(&t[i], dt);
    int ok = root && meta && map;
    ok = ok && cJSON_AddNumberToObject(meta, "total_size", (double)total);
    for (int i = 0; i < n && ok; i++) {
        char file[64];
        shard_name(t[i].shard, n_shards, file, sizeof file);
        ok = cJSON_AddStringToObject(map, t[i].name, file) != NULL;
    }
    if (ok) {
        cJSON_AddItemToObject(root, "metadata", meta);
        cJSON_AddItemToObject(root, "weight_map", map);
        meta = map = NULL;
    }
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    cJSON_Delete(meta);
    cJSON_Delete(map);
    if (!text) return nq_fail(NQ_ERR_RUNTIME, "%s: out of memory building the index", path);
    nq_status const st = atomic_write_file(path, text, strlen(text));
    cJSON_free(text);
    return st;
}

/* Every shard under a temporary name first; all renamed once all are complete. */
static nq_status write_shards(Model *m, const char *dir, ExportDtype dtype, const ExpTensor *t, int n, int n_shards) {
    const ModelConfig *c = model_config(m);
    char (*tmp)[PATH_MAX] = nq_calloc((size_t)n_shards, PATH_MAX, "shard names");
    char (*final)[PATH_MAX] = nq_calloc((size_t)n_shards, PATH_MAX, "shard names");
    uint16_t *half_buf = nq_calloc(CONVERT_CHUNK, sizeof(uint16_t), "conversion buffer");
    StSource src = {.m = m, .loaded = -1};
    src.scratch = nq_calloc((size_t)c->dim * (size_t)c->dim, sizeof(float), "q/k permutation buffer");
    nq_status st = tmp && final && half_buf && src.scratch ? NQ_OK : NQ_ERR_RUNTIME;
    if (st == NQ_OK) st = model_head(m, &src.head);
    int written = 0, a = 0;
    for (int k = 0; k < n_shards && st == NQ_OK; k++) {
        char name[64];
        shard_name(k, n_shards, name, sizeof name);
        if (snprintf(final[k], PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) st = nq_fail(NQ_ERR_INPUT, "%s: path too long", dir);
        if (st == NQ_OK) st = atomic_tmp_name(final[k], tmp[k], PATH_MAX);
        int b = a;
        while (b < n && t[b].shard == k) b++;
        if (st == NQ_OK) {
            written = k + 1;
            st = write_shard(&src, t, a, b, dtype, tmp[k], final[k], half_buf);
        }
        a = b;
    }
    if (src.loaded >= 0) model_release_block(m, src.loaded);
    for (int k = 0; k < written; k++) {
        if (st == NQ_OK) st = atomic_commit(tmp[k], final[k]);
        else unlink(tmp[k]);
    }
    free(tmp);
    free(final);
    free(half_buf);
    free(src.scratch);
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

int export_parse_size(const char *text, uint64_t *bytes) {
    char *end = NULL;
    errno = 0;
    double const v = strtod(text, &end);
    if (errno != 0 || end == text || !(v > 0)) return -1;
    static const struct {
        const char *suffix;
        double scale;
    } units[] = {{"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
                 {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcasecmp(end, units[i].suffix) == 0) {
            double const b = v * units[i].scale;
            if (b < 1 || b > 1e18) return -1;
            *bytes = (uint64_t)b;
            return 0;
        }
    return -1;
}

nq_status export_safetensors(Model *m, const char *dir, ExportDtype dtype, uint64_t max_shard_bytes) {
    char cfg_path[PATH_MAX], index_path[PATH_MAX];
    int const b = snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    int const c = snprintf(index_path, sizeof index_path, "%s/model.safetensors.index.json", dir);
    if (b < 0 || c < 0 || (size_t)c >= sizeof index_path) return nq_fail(NQ_ERR_INPUT, "%s: path too long", dir);
    struct stat sb;
    if (stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode))
        return nq_fail(NQ_ERR_INPUT, "%s: exists and is not a directory, expected a directory for the HF export", dir);
    if (stat(index_path, &sb) == 0)
        return nq_fail(NQ_ERR_INPUT, "%s: holds model.safetensors.index.json (a sharded model), expected a directory without one", dir);
    int n = 0, n_shards = 0;
    ExpTensor *t = list_tensors(model_config(m), dtype, max_shard_bytes, &n, &n_shards);
    if (!t) return NQ_ERR_RUNTIME;
    nq_status st = make_dirs(dir);
    if (st == NQ_OK) st = write_shards(m, dir, dtype, t, n, n_shards);
    if (st == NQ_OK && n_shards > 1) st = write_index(t, n, n_shards, dtype, index_path);
    if (st == NQ_OK) st = write_config(model_config(m), dtype, cfg_path);
    free(t);
    return st;
}
