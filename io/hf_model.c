/* The Hugging Face backend: a directory with config.json and model.safetensors, or shards
 * model-0000k-of-0000n.safetensors listed by model.safetensors.index.json.
 *
 * Every tensor the model needs is located and its dtype and shape checked on open, so a
 * bad directory fails before any work starts. Weights are converted to fp32 only when a
 * block (or the head) is asked for, into a buffer that model_release_block frees; aligned
 * F32 tensors are used in place, straight from the mapping.
 *
 * HF checkpoints rotate halves (i, i + hs/2) of each head: their converter permuted the
 * q/k rows so that this equals llama2.c's interleaved rotation of the original weights.
 * We keep the weights as stored and record rope_style = ROPE_HALF. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "model_internal.h"
#include "safetensors.h"

/* Per block: the seven matrices in MAT_ order, then the two norm gains. */
enum { SLOT_ATTN_NORM = N_MATS, SLOT_FFN_NORM, N_SLOTS };
/* Head: */
enum { HEAD_EMBED, HEAD_NORM, HEAD_LM, N_HEAD };

static const char *const hf_slot_names[N_SLOTS] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.down_proj",    "mlp.up_proj", /* w1 = gate, w2 = down, w3 = up */
    "input_layernorm",  "post_attention_layernorm",
};

typedef struct {
    const SafetensorsFile *file;
    const StTensor *t;
} TensorRef;

typedef struct {
    SafetensorsFile **files; /* [n_files] */
    int n_files;
    TensorRef *block_refs;   /* [L][N_SLOTS] */
    TensorRef head_refs[N_HEAD]; /* HEAD_LM unused when tied */
    float **block_bufs;      /* [L], converted tensors of loaded blocks, else NULL */
    BlockWeights *block_views; /* [L], valid while block_loaded[l] */
    unsigned char *block_loaded; /* [L] */
    float *head_buf;
    int head_loaded;
    HeadWeights head;
} HfModel;

#define CONFIG_MAX_BYTES (1 << 22)

/* ---------------------------------------------------------------- small helpers */

static nq_status join_path(char *out, size_t size, const char *dir, const char *name) {
    int const n = snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size) return nq_fail(NQ_ERR_INPUT, "%s/%s: path too long", dir, name);
    return NQ_OK;
}

/* Reads and parses a JSON file; *root is owned by the caller (cJSON_Delete). */
static nq_status read_json(const char *path, cJSON **root) {
    *root = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return nq_fail(NQ_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    char *text = nq_calloc(CONFIG_MAX_BYTES + 1, 1, "json text");
    nq_status st = NQ_OK;
    if (!text) {
        st = NQ_ERR_RUNTIME;
        goto cleanup;
    }
    size_t const len = fread(text, 1, CONFIG_MAX_BYTES + 1, f);
    if (ferror(f)) st = nq_fail(NQ_ERR_INPUT, "%s: read error", path);
    else if (len > CONFIG_MAX_BYTES) st = nq_fail(NQ_ERR_INPUT, "%s: larger than %d bytes, expected a small JSON file", path, CONFIG_MAX_BYTES);
    else if (!(*root = cJSON_ParseWithLength(text, len)) || !cJSON_IsObject(*root))
        st = nq_fail(NQ_ERR_INPUT, "%s: malformed JSON, expected an object", path);
cleanup:
    if (st != NQ_OK) {
        cJSON_Delete(*root);
        *root = NULL;
    }
    free(text);
    fclose(f);
    return st;
}

/* ---------------------------------------------------------------- config.json */

static nq_status config_int(const char *path, const cJSON *root, const char *key, int fallback,
                            int *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item || cJSON_IsNull(item)) {
        if (fallback > 0) {
            *out = fallback;
            return NQ_OK;
        }
        return nq_fail(NQ_ERR_INPUT, "%s: %s missing, expected a positive integer", path, key);
    }
    double const v = cJSON_IsNumber(item) ? item->valuedouble : NAN;
    if (!(v >= 1 && v <= INT32_MAX) || v != floor(v))
        return nq_fail(NQ_ERR_INPUT, "%s: %s is not a positive integer", path, key);
    *out = (int)v;
    return NQ_OK;
}

static nq_status config_float(const char *path, const cJSON *root, const char *key, double fallback,
                              float *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item || cJSON_IsNull(item)) {
        if (fallback > 0) {
            *out = (float)fallback;
            return NQ_OK;
        }
        return nq_fail(NQ_ERR_INPUT, "%s: %s missing, expected a positive number", path, key);
    }
    if (!cJSON_IsNumber(item) || !(item->valuedouble > 0) || !isfinite(item->valuedouble))
        return nq_fail(NQ_ERR_INPUT, "%s: %s is not a positive number", path, key);
    *out = (float)item->valuedouble;
    return NQ_OK;
}

/* Features of some LLaMA-family configs that this forward pass does not implement. */
static nq_status config_unsupported(const char *path, const cJSON *root, const ModelConfig *c) {
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (scaling && !cJSON_IsNull(scaling))
        return nq_fail(NQ_ERR_INPUT, "%s: rope_scaling is set, expected null (not supported)", path);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0))
        return nq_fail(NQ_ERR_INPUT, "%s: hidden_act is not \"silu\" (not supported)", path);
    const char *const biases[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++)
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, biases[i])))
            return nq_fail(NQ_ERR_INPUT, "%s: %s = true, expected false (biases not supported)", path, biases[i]);
    const cJSON *head_dim = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
    if (head_dim && !cJSON_IsNull(head_dim) &&
        !(cJSON_IsNumber(head_dim) && head_dim->valuedouble == c->dim / c->n_heads))
        return nq_fail(NQ_ERR_INPUT, "%s: head_dim, expected hidden_size / num_attention_heads = %d", path, c->dim / c->n_heads);
    return NQ_OK;
}

/* model_config_check's rules, reported with config.json's names. */
static nq_status config_divisibility(const char *path, const ModelConfig *c) {
    if (c->dim % c->n_heads != 0)
        return nq_fail(NQ_ERR_INPUT, "%s: hidden_size = %d, expected a multiple of num_attention_heads = %d", path, c->dim, c->n_heads);
    if (c->n_heads % c->n_kv_heads != 0)
        return nq_fail(NQ_ERR_INPUT, "%s: num_key_value_heads = %d, expected a divisor of num_attention_heads = %d", path, c->n_kv_heads, c->n_heads);
    if ((c->dim / c->n_heads) % 2 != 0)
        return nq_fail(NQ_ERR_INPUT, "%s: hidden_size / num_attention_heads = %d, expected an even head size for RoPE", path, c->dim / c->n_heads);
    return NQ_OK;
}

static nq_status parse_config(const char *dir, ModelConfig *c) {
    char path[PATH_MAX];
    cJSON *root = NULL;
    nq_status st = join_path(path, sizeof path, dir, "config.json");
    if (st == NQ_OK) st = read_json(path, &root);
    if (st != NQ_OK) return st;
    memset(c, 0, sizeof *c);
    if (st == NQ_OK) st = config_int(path, root, "hidden_size", 0, &c->dim);
    if (st == NQ_OK) st = config_int(path, root, "intermediate_size", 0, &c->hidden_dim);
    if (st == NQ_OK) st = config_int(path, root, "num_hidden_layers", 0, &c->n_layers);
    if (st == NQ_OK) st = config_int(path, root, "num_attention_heads", 0, &c->n_heads);
    if (st == NQ_OK) st = config_int(path, root, "num_key_value_heads", c->n_heads, &c->n_kv_heads);
    if (st == NQ_OK) st = config_int(path, root, "vocab_size", 0, &c->vocab_size);
    if (st == NQ_OK) st = config_int(path, root, "max_position_embeddings", 0, &c->seq_len);
    if (st == NQ_OK) st = config_float(path, root, "rms_norm_eps", 0, &c->norm_eps);
    if (st == NQ_OK) st = config_float(path, root, "rope_theta", 10000.0, &c->rope_theta);
    if (st == NQ_OK) {
        const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
        if (tie && !cJSON_IsBool(tie) && !cJSON_IsNull(tie))
            st = nq_fail(NQ_ERR_INPUT, "%s: tie_word_embeddings is not true or false", path);
        c->tied_embeddings = cJSON_IsTrue(tie);
        c->rope_style = ROPE_HALF;
    }
    if (st == NQ_OK) st = config_divisibility(path, c);
    char why[256];
    if (st == NQ_OK && model_config_check(c, why, sizeof why) != 0)
        st = nq_fail(NQ_ERR_INPUT, "%s: %s", path, why);
    if (st == NQ_OK) st = config_unsupported(path, root, c);
    cJSON_Delete(root);
    return st;
}

/* ---------------------------------------------------------------- files and tensors */

static nq_status add_file(HfModel *hf, const char *path) {
    SafetensorsFile **grown = realloc(hf->files, (size_t)(hf->n_files + 1) * sizeof *grown);
    if (!grown) return nq_fail(NQ_ERR_RUNTIME, "out of memory listing safetensors files");
    hf->files = grown;
    nq_status const st = safetensors_open(path, &hf->files[hf->n_files]);
    if (st == NQ_OK) hf->n_files++;
    return st;
}

static int find_file(const HfModel *hf, const char *path) {
    for (int i = 0; i < hf->n_files; i++)
        if (strcmp(safetensors_path(hf->files[i]), path) == 0) return i;
    return -1;
}

/* Opens every shard the index names (once each). */
static nq_status open_shards(HfModel *hf, const char *dir, const char *index_path, const cJSON *map) {
    const cJSON *entry;
    cJSON_ArrayForEach(entry, map) {
        if (!cJSON_IsString(entry) || strchr(entry->valuestring, '/'))
            return nq_fail(NQ_ERR_INPUT, "%s: weight_map[\"%s\"], expected a file name in the same directory", index_path, entry->string);
        char path[PATH_MAX];
        nq_status st = join_path(path, sizeof path, dir, entry->valuestring);
        if (st != NQ_OK) return st;
        if (find_file(hf, path) >= 0) continue;
        struct stat sb;
        if (stat(path, &sb) != 0)
            return nq_fail(NQ_ERR_INPUT, "%s: weight_map[\"%s\"] names shard %s, which is missing: %s",
                           index_path, entry->string, entry->valuestring, strerror(errno));
        st = add_file(hf, path);
        if (st != NQ_OK) return st;
    }
    return NQ_OK;
}

/* Opens model.safetensors, or the shards of model.safetensors.index.json. *index receives
 * the index's weight_map document (NULL for a single file), owned by the caller. */
static nq_status open_files(HfModel *hf, const char *dir, cJSON **index) {
    char index_path[PATH_MAX], single[PATH_MAX];
    *index = NULL;
    nq_status st = join_path(index_path, sizeof index_path, dir, "model.safetensors.index.json");
    if (st == NQ_OK) st = join_path(single, sizeof single, dir, "model.safetensors");
    if (st != NQ_OK) return st;
    struct stat sb;
    if (stat(index_path, &sb) != 0) {
        if (stat(single, &sb) != 0)
            return nq_fail(NQ_ERR_INPUT, "%s: neither model.safetensors nor model.safetensors.index.json found", dir);
        return add_file(hf, single);
    }
    st = read_json(index_path, index);
    if (st != NQ_OK) return st;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(*index, "weight_map");
    if (!cJSON_IsObject(map) || cJSON_GetArraySize(map) == 0)
        return nq_fail(NQ_ERR_INPUT, "%s: weight_map missing, expected an object of tensor -> file", index_path);
    return open_shards(hf, dir, index_path, map);
}

/* Finds tensor `name` (through the index when there is one) and checks dtype and shape. */
static nq_status resolve(const HfModel *hf, const char *dir, const cJSON *index, const char *name,
                         int64_t rows, int64_t cols, TensorRef *ref) {
    const SafetensorsFile *file = hf->files[0];
    if (index) {
        const cJSON *map = cJSON_GetObjectItemCaseSensitive(index, "weight_map");
        const cJSON *shard = cJSON_GetObjectItemCaseSensitive(map, name);
        if (!cJSON_IsString(shard))
            return nq_fail(NQ_ERR_INPUT, "%s/model.safetensors.index.json: tensor \"%s\" missing from weight_map", dir, name);
        char path[PATH_MAX];
        nq_status const st = join_path(path, sizeof path, dir, shard->valuestring);
        if (st != NQ_OK) return st;
        file = hf->files[find_file(hf, path)];
    }
    const StTensor *t = safetensors_find(file, name);
    const char *fpath = safetensors_path(file);
    if (!t) return nq_fail(NQ_ERR_INPUT, "%s: tensor \"%s\" missing", fpath, name);
    if (!safetensors_dtype_is_float(t->dtype))
        return nq_fail(NQ_ERR_INPUT, "%s: tensor \"%s\": dtype %s, expected F32, F16 or BF16", fpath, name, safetensors_dtype_name(t->dtype));
    int const want_ndim = cols > 0 ? 2 : 1;
    if (t->ndim != want_ndim || t->shape[0] != rows || (cols > 0 && t->shape[1] != cols)) {
        if (cols > 0)
            return nq_fail(NQ_ERR_INPUT, "%s: tensor \"%s\": shape disagrees with config.json, expected [%lld, %lld]",
                           fpath, name, (long long)rows, (long long)cols);
        return nq_fail(NQ_ERR_INPUT, "%s: tensor \"%s\": shape disagrees with config.json, expected [%lld]", fpath, name, (long long)rows);
    }
    ref->file = file;
    ref->t = t;
    return NQ_OK;
}

static nq_status resolve_all(HfModel *hf, const ModelConfig *c, const char *dir, const cJSON *index) {
    char name[128];
    nq_status st = resolve(hf, dir, index, "model.embed_tokens.weight", c->vocab_size, c->dim, &hf->head_refs[HEAD_EMBED]);
    if (st == NQ_OK) st = resolve(hf, dir, index, "model.norm.weight", c->dim, 0, &hf->head_refs[HEAD_NORM]);
    if (st == NQ_OK && !c->tied_embeddings)
        st = resolve(hf, dir, index, "lm_head.weight", c->vocab_size, c->dim, &hf->head_refs[HEAD_LM]);
    for (int l = 0; l < c->n_layers && st == NQ_OK; l++) {
        for (int s = 0; s < N_SLOTS && st == NQ_OK; s++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, hf_slot_names[s]);
            int64_t const rows = s < N_MATS ? mat_rows(c, s) : c->dim;
            int64_t const cols = s < N_MATS ? mat_cols(c, s) : 0;
            st = resolve(hf, dir, index, name, rows, cols, &hf->block_refs[(size_t)l * N_SLOTS + s]);
        }
    }
    return st;
}

/* ---------------------------------------------------------------- conversion */

/* Points views[i] at refs[i]'s data: in place for aligned F32, else converted into one
 * buffer (*buf, NULL when nothing needed converting). */
static nq_status convert(const TensorRef *refs, int n, const float **views, float **buf, const char *what) {
    size_t total = 0;
    for (int i = 0; i < n; i++)
        if (refs[i].t && !safetensors_f32_view(refs[i].t)) total += refs[i].t->nbytes / (refs[i].t->dtype == ST_F32 ? 4 : 2);
    *buf = NULL;
    if (total > 0 && !(*buf = nq_calloc(total, sizeof(float), what))) return NQ_ERR_RUNTIME;
    float *next = *buf;
    for (int i = 0; i < n; i++) {
        const StTensor *t = refs[i].t;
        if (!t) continue;
        views[i] = safetensors_f32_view(t);
        if (views[i]) continue;
        safetensors_to_f32(t, next);
        safetensors_drop_pages(refs[i].file, t);
        views[i] = next;
        next += t->nbytes / (t->dtype == ST_F32 ? 4 : 2);
    }
    return NQ_OK;
}

static nq_status hf_block(Model *m, int l, BlockWeights *w) {
    HfModel *hf = m->backend;
    const TensorRef *refs = &hf->block_refs[(size_t)l * N_SLOTS];
    BlockWeights *bw = &hf->block_views[l];
    if (!hf->block_loaded[l]) { /* asking twice gives the same views */
        const float *views[N_SLOTS] = {0};
        nq_status const st = convert(refs, N_SLOTS, views, &hf->block_bufs[l], "hf block weights");
        if (st != NQ_OK) return st;
        for (int i = 0; i < N_MATS; i++) bw->mat[i] = views[i];
        bw->attn_norm = views[SLOT_ATTN_NORM];
        bw->ffn_norm = views[SLOT_FFN_NORM];
        hf->block_loaded[l] = 1;
    }
    *w = *bw;
    return NQ_OK;
}

static void hf_release_block(Model *m, int l) {
    HfModel *hf = m->backend;
    free(hf->block_bufs[l]);
    hf->block_bufs[l] = NULL;
    hf->block_loaded[l] = 0;
    for (int s = 0; s < N_SLOTS; s++) {
        const TensorRef *r = &hf->block_refs[(size_t)l * N_SLOTS + s];
        safetensors_drop_pages(r->file, r->t);
    }
}

static nq_status hf_block_norms(Model *m, int l, float *attn_norm, float *ffn_norm) {
    HfModel *hf = m->backend;
    const TensorRef *refs = &hf->block_refs[(size_t)l * N_SLOTS];
    safetensors_to_f32(refs[SLOT_ATTN_NORM].t, attn_norm);
    safetensors_to_f32(refs[SLOT_FFN_NORM].t, ffn_norm);
    return NQ_OK;
}

static nq_status hf_head(Model *m, HeadWeights *h) {
    HfModel *hf = m->backend;
    if (!hf->head_loaded) {
        const float *views[N_HEAD] = {0};
        nq_status const st = convert(hf->head_refs, N_HEAD, views, &hf->head_buf, "hf head weights");
        if (st != NQ_OK) return st;
        hf->head.tok_embeddings = views[HEAD_EMBED];
        hf->head.norm_final = views[HEAD_NORM];
        hf->head.classifier = m->config.tied_embeddings ? views[HEAD_EMBED] : views[HEAD_LM];
        hf->head_loaded = 1;
    }
    *h = hf->head;
    return NQ_OK;
}

/* XXH3 over every tensor the model uses, in a fixed order (name, dtype, shape, bytes), so
 * that a single file and its shards hash alike. */
static void hash_tensor(XXH3_state_t *state, const TensorRef *r) {
    const StTensor *t = r->t;
    if (!t) return;
    XXH3_64bits_update(state, t->name, strlen(t->name) + 1);
    XXH3_64bits_update(state, &t->dtype, sizeof t->dtype);
    XXH3_64bits_update(state, t->shape, (size_t)t->ndim * sizeof t->shape[0]);
    XXH3_64bits_update(state, t->data, t->nbytes);
    safetensors_drop_pages(r->file, t);
}

static nq_status hf_content_hash(Model *m, uint64_t *hash) {
    HfModel *hf = m->backend;
    XXH3_state_t *state = XXH3_createState();
    if (!state) return nq_fail(NQ_ERR_RUNTIME, "out of memory creating a hash state");
    XXH3_64bits_reset(state);
    for (int i = 0; i < N_HEAD; i++) hash_tensor(state, &hf->head_refs[i]);
    for (size_t i = 0; i < (size_t)m->config.n_layers * N_SLOTS; i++) hash_tensor(state, &hf->block_refs[i]);
    *hash = XXH3_64bits_digest(state);
    XXH3_freeState(state);
    return NQ_OK;
}

static void hf_free(HfModel *hf, int n_layers) {
    if (!hf) return;
    if (hf->block_bufs)
        for (int l = 0; l < n_layers; l++) free(hf->block_bufs[l]);
    free(hf->block_bufs);
    free(hf->block_views);
    free(hf->block_loaded);
    free(hf->block_refs);
    free(hf->head_buf);
    for (int i = 0; i < hf->n_files; i++) safetensors_close(hf->files[i]);
    free(hf->files);
    free(hf);
}

static void hf_close(Model *m) {
    hf_free(m->backend, m->config.n_layers);
    m->backend = NULL;
}

static const ModelOps hf_ops = {
    .block = hf_block,
    .release_block = hf_release_block,
    .block_norms = hf_block_norms,
    .head = hf_head,
    .content_hash = hf_content_hash,
    .close = hf_close,
};

nq_status hf_model_open(const char *path, Model *m) {
    ModelConfig c;
    cJSON *index = NULL;
    HfModel *hf = NULL;
    nq_status st = parse_config(path, &c);
    if (st != NQ_OK) return st;
    hf = nq_calloc(1, sizeof *hf, "hf model");
    if (!hf) return NQ_ERR_RUNTIME;
    hf->block_refs = nq_calloc((size_t)c.n_layers * N_SLOTS, sizeof *hf->block_refs, "hf tensor table");
    hf->block_bufs = nq_calloc((size_t)c.n_layers, sizeof *hf->block_bufs, "hf block buffers");
    hf->block_views = nq_calloc((size_t)c.n_layers, sizeof *hf->block_views, "hf block views");
    hf->block_loaded = nq_calloc((size_t)c.n_layers, 1, "hf block flags");
    if (!hf->block_refs || !hf->block_bufs || !hf->block_views || !hf->block_loaded) {
        st = NQ_ERR_RUNTIME;
        goto cleanup;
    }
    st = open_files(hf, path, &index);
    if (st == NQ_OK) st = resolve_all(hf, &c, path, index);
cleanup:
    cJSON_Delete(index);
    if (st != NQ_OK) {
        hf_free(hf, c.n_layers);
        return st;
    }
    m->ops = &hf_ops;
    m->config = c;
    m->backend = hf;
    return NQ_OK;
}

/* config.json alone (io/model_config_read.h: planning a job without touching weights). */
nq_status hf_model_read_config(const char *dir, ModelConfig *c) { return parse_config(dir, c); }

nq_status hf_model_read_torch_dtype(const char *dir, char *dtype, size_t size) {
    char path[PATH_MAX];
    cJSON *root = NULL;
    nq_status st = join_path(path, sizeof path, dir, "config.json");
    if (st == NQ_OK) st = read_json(path, &root);
    if (st != NQ_OK) return st;
    /* Absent or another name: planned as fp32, the most the fp32 copies can take. */
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
    const char *name = "float32";
    if (cJSON_IsString(t) && (strcmp(t->valuestring, "float16") == 0 || strcmp(t->valuestring, "bfloat16") == 0))
        name = t->valuestring;
    snprintf(dtype, size, "%s", name);
    cJSON_Delete(root);
    return NQ_OK;
}
