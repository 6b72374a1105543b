#include "hf_fixture.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"

/* ---------------------------------------------------------------- llama2.c reader */

static size_t l2c_float_count(const ModelConfig *c, int with_classifier) {
    size_t const d = (size_t)c->dim, f = (size_t)c->hidden_dim, L = (size_t)c->n_layers;
    size_t const dkv = (size_t)c->n_kv_heads * (d / (size_t)c->n_heads);
    size_t const V = (size_t)c->vocab_size, hs = d / (size_t)c->n_heads;
    size_t n = V * d + L * (2 * d + 2 * d * d + 2 * dkv * d + 3 * f * d) + d;
    n += 2 * (size_t)c->seq_len * hs / 2; /* the legacy rope tables, skipped */
    return n + (with_classifier ? V * d : 0);
}

static void l2c_carve(L2cWeights *w, int with_classifier) {
    const ModelConfig *c = &w->config;
    size_t const d = (size_t)c->dim, L = (size_t)c->n_layers, hs = d / (size_t)c->n_heads;
    float *p = w->data;
    w->head.tok_embeddings = p;
    p += (size_t)c->vocab_size * d;
    /* llama2.c groups each kind across layers: rms_att[L], wq[L], ... */
    const float *att = p;
    p += L * d;
    const float *mats_a[4];
    for (int i = 0; i < 4; i++) {
        mats_a[i] = p;
        p += L * (size_t)mat_rows(c, i) * d;
    }
    const float *ffn = p;
    p += L * d;
    const float *mats_b[3]; /* w1, w2, w3 */
    for (int i = 0; i < 3; i++) {
        mats_b[i] = p;
        p += L * (size_t)mat_rows(c, MAT_W1 + i) * (size_t)mat_cols(c, MAT_W1 + i);
    }
    w->head.norm_final = p;
    p += d;
    p += 2 * (size_t)c->seq_len * hs / 2;
    w->head.classifier = with_classifier ? p : w->head.tok_embeddings;
    for (size_t l = 0; l < L; l++) {
        BlockWeights *b = &w->blocks[l];
        b->attn_norm = att + l * d;
        b->ffn_norm = ffn + l * d;
        for (int i = 0; i < 4; i++) b->mat[i] = mats_a[i] + l * (size_t)mat_rows(c, i) * d;
        for (int i = 0; i < 3; i++)
            b->mat[MAT_W1 + i] = mats_b[i] + l * (size_t)mat_rows(c, MAT_W1 + i) * (size_t)mat_cols(c, MAT_W1 + i);
    }
}

int l2c_weights_load(const char *path, L2cWeights *w) {
    memset(w, 0, sizeof *w);
    FILE *f = fopen(path, "rb");
    int header[7];
    if (!f || fread(header, sizeof(int), 7, f) != 7) {
        fprintf(stderr, "%s: cannot read the header\n", path);
        if (f) fclose(f);
        return -1;
    }
    ModelConfig *c = &w->config;
    c->dim = header[0], c->hidden_dim = header[1], c->n_layers = header[2];
    c->n_heads = header[3], c->n_kv_heads = header[4], c->seq_len = header[6];
    c->vocab_size = abs(header[5]);
    c->tied_embeddings = header[5] > 0;
    c->rope_theta = 10000.0f, c->norm_eps = 1e-5f, c->rope_style = ROPE_INTERLEAVED;
    size_t const n = l2c_float_count(c, !c->tied_embeddings);
    w->data = malloc(n * sizeof(float));
    w->blocks = calloc((size_t)c->n_layers, sizeof *w->blocks);
    int const ok = w->data && w->blocks && fread(w->data, sizeof(float), n, f) == n;
    fclose(f);
    if (!ok) {
        fprintf(stderr, "%s: short file\n", path);
        l2c_weights_free(w);
        return -1;
    }
    l2c_carve(w, !c->tied_embeddings);
    return 0;
}

void l2c_weights_free(L2cWeights *w) {
    free(w->data);
    free(w->blocks);
    memset(w, 0, sizeof *w);
}

/* ---------------------------------------------------------------- permutation */

void hf_permute_rows(const float *w, int n_heads, int rows, int cols, float *out) {
    int const hs = rows / n_heads, half = hs / 2;
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++)
                memcpy(out + ((size_t)h * hs + (size_t)j * half + i) * cols,
                       w + ((size_t)h * hs + 2 * (size_t)i + j) * cols, (size_t)cols * sizeof(float));
}

void hf_unpermute_rows(const float *w, int n_heads, int rows, int cols, float *out) {
    int const hs = rows / n_heads, half = hs / 2;
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++)
                memcpy(out + ((size_t)h * hs + 2 * (size_t)i + j) * cols,
                       w + ((size_t)h * hs + (size_t)j * half + i) * cols, (size_t)cols * sizeof(float));
}

/* ---------------------------------------------------------------- safetensors writer */

typedef struct {
    char name[96];
    int ndim;
    long long shape[2];
    const float *values; /* fp32, converted on write */
    int shard;
} FixtureTensor;

static size_t elem_size(HfFixtureDtype dt) { return dt == HF_F32 ? 4 : 2; }
static const char *dtype_str(HfFixtureDtype dt) { return dt == HF_F32 ? "F32" : dt == HF_F16 ? "F16" : "BF16"; }

static size_t tensor_count(const FixtureTensor *t) {
    return (size_t)t->shape[0] * (size_t)(t->ndim == 2 ? t->shape[1] : 1);
}

static int write_values(FILE *f, const FixtureTensor *t, HfFixtureDtype dt) {
    size_t const n = tensor_count(t);
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        if (dt == HF_F32) {
            if (fwrite(&t->values[i], 4, 1, f) != 1) return -1;
            continue;
        }
        h = dt == HF_F16 ? float_to_half(t->values[i]) : float_to_bf16(t->values[i]);
        if (fwrite(&h, 2, 1, f) != 1) return -1;
    }
    return 0;
}

/* Writes header length, header (padded with spaces), data. */
static int write_file(const char *path, const char *header, size_t header_len, int misalign,
                      const FixtureTensor *ts, int n, int shard, HfFixtureDtype dt) {
    size_t padded = (header_len + 7) / 8 * 8;
    if (misalign) padded += 2;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    uint64_t const len = padded;
    int rc = fwrite(&len, 8, 1, f) == 1 && fwrite(header, 1, header_len, f) == header_len ? 0 : -1;
    for (size_t i = header_len; i < padded && rc == 0; i++) rc = fputc(' ', f) == ' ' ? 0 : -1;
    for (int i = 0; i < n && rc == 0; i++)
        if (ts[i].shard == shard) rc = write_values(f, &ts[i], dt);
    if (fclose(f) != 0) rc = -1;
    return rc;
}

static int write_shard(const char *path, const FixtureTensor *ts, int n, int shard,
                       const HfFixtureOptions *opt) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        if (ts[i].shard != shard) continue;
        cJSON *e = cJSON_AddObjectToObject(root, ts[i].name);
        cJSON_AddStringToObject(e, "dtype", dtype_str(opt->dtype));
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int k = 0; k < ts[i].ndim; k++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)ts[i].shape[k]));
        size_t const bytes = tensor_count(&ts[i]) * elem_size(opt->dtype);
        cJSON *off = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)offset));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)(offset + bytes)));
        offset += bytes;
    }
    char *text = cJSON_PrintUnformatted(root);
    int const rc = text ? write_file(path, text, strlen(text), opt->misalign, ts, n, shard, opt->dtype) : -1;
    free(text);
    cJSON_Delete(root);
    return rc;
}

static int write_json(const char *path, cJSON *root) {
    char *text = cJSON_Print(root);
    FILE *f = text ? fopen(path, "w") : NULL;
    int rc = f && fputs(text, f) >= 0 ? 0 : -1;
    if (f && fclose(f) != 0) rc = -1;
    free(text);
    return rc;
}

static int write_config(const ModelConfig *c, int tied, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model_type", "llama");
    cJSON_AddStringToObject(root, "hidden_act", "silu");
    cJSON_AddNumberToObject(root, "hidden_size", c->dim);
    cJSON_AddNumberToObject(root, "intermediate_size", c->hidden_dim);
    cJSON_AddNumberToObject(root, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(root, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(root, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(root, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(root, "max_position_embeddings", c->seq_len);
    cJSON_AddNumberToObject(root, "rms_norm_eps", 1e-5);
    cJSON_AddNumberToObject(root, "rope_theta", 10000.0);
    cJSON_AddBoolToObject(root, "tie_word_embeddings", tied);
    cJSON_AddNullToObject(root, "rope_scaling");
    int const rc = write_json(path, root);
    cJSON_Delete(root);
    return rc;
}

/* Every tensor of the HF checkpoint, q/k already permuted into perm (owned by caller). */
static int list_tensors(const L2cWeights *w, const HfFixtureOptions *opt, FixtureTensor *ts, float *perm) {
    static const char *const slot[N_MATS] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                             "self_attn.o_proj", "mlp.gate_proj", "mlp.down_proj", "mlp.up_proj"};
    const ModelConfig *c = &w->config;
    int const shards = opt->shards > 1 ? opt->shards : 1;
    int n = 0;
    ts[n++] = (FixtureTensor){"model.embed_tokens.weight", 2, {c->vocab_size, c->dim}, w->head.tok_embeddings, 0};
    for (int l = 0; l < c->n_layers; l++) {
        int const shard = l * shards / c->n_layers;
        for (int i = 0; i < N_MATS; i++) {
            int const rows = mat_rows(c, i), cols = mat_cols(c, i);
            FixtureTensor t = {"", 2, {rows, cols}, w->blocks[l].mat[i], shard};
            snprintf(t.name, sizeof t.name, "model.layers.%d.%s.weight", l, slot[i]);
            if (i == MAT_WQ || i == MAT_WK) {
                hf_permute_rows(t.values, i == MAT_WQ ? c->n_heads : c->n_kv_heads, rows, cols, perm);
                t.values = perm;
                perm += (size_t)rows * cols;
            }
            ts[n++] = t;
        }
        FixtureTensor norm = {"", 1, {c->dim, 0}, w->blocks[l].attn_norm, shard};
        snprintf(norm.name, sizeof norm.name, "model.layers.%d.input_layernorm.weight", l);
        ts[n++] = norm;
        norm.values = w->blocks[l].ffn_norm;
        snprintf(norm.name, sizeof norm.name, "model.layers.%d.post_attention_layernorm.weight", l);
        ts[n++] = norm;
    }
    ts[n++] = (FixtureTensor){"model.norm.weight", 1, {c->dim, 0}, w->head.norm_final, shards - 1};
    if (opt->lm_head)
        ts[n++] = (FixtureTensor){"lm_head.weight", 2, {c->vocab_size, c->dim}, opt->lm_head, shards - 1};
    return n;
}

static int write_index(const char *dir, const FixtureTensor *ts, int n, int shards, HfFixtureDtype dt) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    cJSON *root = cJSON_CreateObject();
    size_t total = 0;
    for (int i = 0; i < n; i++) total += tensor_count(&ts[i]) * elem_size(dt);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(root, "metadata"), "total_size", (double)total);
    cJSON *map = cJSON_AddObjectToObject(root, "weight_map");
    for (int i = 0; i < n; i++) {
        char file[64];
        snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", ts[i].shard + 1, shards);
        cJSON_AddStringToObject(map, ts[i].name, file);
    }
    int const rc = write_json(path, root);
    cJSON_Delete(root);
    return rc;
}

int hf_fixture_write(const L2cWeights *w, const HfFixtureOptions *opt, const char *dir) {
    const ModelConfig *c = &w->config;
    size_t const qk = (size_t)c->n_layers * (size_t)(mat_rows(c, MAT_WQ) + mat_rows(c, MAT_WK)) * (size_t)c->dim;
    FixtureTensor *ts = calloc((size_t)c->n_layers * 9 + 3, sizeof *ts);
    float *perm = malloc(qk * sizeof(float));
    int rc = ts && perm ? 0 : -1;
    int const n = rc == 0 ? list_tensors(w, opt, ts, perm) : 0;
    if (rc == 0) rc = write_config(c, opt->lm_head == NULL, dir);
    char path[4096];
    if (opt->shards <= 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (rc == 0) rc = write_shard(path, ts, n, 0, opt);
    } else {
        for (int s = 0; s < opt->shards && rc == 0; s++) {
            snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, s + 1, opt->shards);
            rc = write_shard(path, ts, n, s, opt);
        }
        if (rc == 0) rc = write_index(dir, ts, n, opt->shards, opt->dtype);
    }
    free(perm);
    free(ts);
    return rc;
}

/* ---------------------------------------------------------------- files */

char *hf_fixture_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    char *dir = malloc(4096);
    if (!dir) return NULL;
    snprintf(dir, 4096, "%s/nupes-hf-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        free(dir);
        return NULL;
    }
    return dir;
}

void hf_fixture_rmdir(char *dir) {
    if (!dir) return;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(dir);
    free(dir);
}

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long const size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = size >= 0 ? malloc((size_t)size + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[size] = '\0';
    *len = (size_t)size;
    return buf;
}

int hf_fixture_edit_header(const char *path, HfHeaderEdit edit, void *ctx) {
    size_t len = 0;
    unsigned char *buf = read_all(path, &len);
    if (!buf || len < 8) {
        free(buf);
        return -1;
    }
    uint64_t hlen;
    memcpy(&hlen, buf, 8);
    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    int rc = root ? 0 : -1;
    char *text = NULL;
    if (rc == 0) {
        edit(root, ctx);
        text = cJSON_PrintUnformatted(root);
    }
    FILE *f = text ? fopen(path, "wb") : NULL;
    if (f) {
        size_t const tlen = strlen(text), padded = (tlen + 7) / 8 * 8;
        uint64_t const plen = padded;
        rc = fwrite(&plen, 8, 1, f) == 1 && fwrite(text, 1, tlen, f) == tlen ? 0 : -1;
        for (size_t i = tlen; i < padded && rc == 0; i++) rc = fputc(' ', f) == ' ' ? 0 : -1;
        size_t const data = len - 8 - (size_t)hlen;
        if (rc == 0 && fwrite(buf + 8 + hlen, 1, data, f) != data) rc = -1;
        if (fclose(f) != 0) rc = -1;
    } else {
        rc = -1;
    }
    free(text);
    cJSON_Delete(root);
    free(buf);
    return rc;
}

int hf_fixture_edit_json(const char *path, HfHeaderEdit edit, void *ctx) {
    size_t len = 0;
    unsigned char *buf = read_all(path, &len);
    cJSON *root = buf ? cJSON_Parse((const char *)buf) : NULL;
    free(buf);
    if (!root) return -1;
    edit(root, ctx);
    int const rc = write_json(path, root);
    cJSON_Delete(root);
    return rc;
}

int hf_fixture_patch(const char *path, long offset, const void *bytes, size_t len) {
    FILE *f = fopen(path, "r+b");
    if (!f) return -1;
    int rc = fseek(f, offset, SEEK_SET) == 0 && fwrite(bytes, 1, len, f) == len ? 0 : -1;
    if (fclose(f) != 0) rc = -1;
    return rc;
}
