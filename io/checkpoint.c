#include "checkpoint.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_file.h"
#include "block_file.h"
#include "h5sum.h"
#include "h5util.h"

/* The formula of docs/design.md 3.1, stored in the file so that a numpy user can dequantize. */
static const char dequant_text[] =
    "b = bits, m = 2**(b-1) - 1. For each matrix /blocks/NNNN/<w> (wq wk wv wo w1 w2 w3) "
    "of shape [out][in]: k = codes (int8 [out][in], in [-m, m]); M = scale (float16 "
    "[out][groups], groups = ceil(in / group_size); group g of row r covers columns "
    "g*group_size .. min((g+1)*group_size, in)-1, so the last group of a row is shorter "
    "when group_size does not divide in; the whole row when group_size = 0); a = exponent "
    "(float16 [1]: one per tensor, or [out]: one per row). Both are widened to float32 "
    "before use. w[r][c] = M[r][c // group_size] * sign(k[r][c]) * (|k[r][c]| / m) ** "
    "(1 / a). numpy: G = group_size or in; M = scale[...].astype(np.float32); a = "
    "exponent[...].astype(np.float32); w = np.repeat(M, G, axis=1)[:, :in] * np.sign(k) * "
    "(np.abs(k) / m) ** (1 / a.reshape(-1, 1)). A matrix stored as 'weight' (float32 "
    "[out][in]) was not quantized. Weights are applied as y = x W^T.";

struct CheckpointWriter {
    char path[PATH_MAX], tmp[PATH_MAX];
    hid_t file, blocks;
    ModelConfig config;
    QuantSpec spec;
    int zstd_level;
    char status[16];         /* "" when decided at commit */
    unsigned char *written;  /* [n_layers] */
};

static void block_name_(int l, char *name, size_t size) { snprintf(name, size, "%04d", l); }

/* ------------------------------------------------------------------ writing */

static nq_status write_root_attrs_(hid_t f, const char *file, const CheckpointMeta *meta) {
    QuantSpec const s = meta->spec;
    nq_status st = h5u_attr_write_string(f, file, "format", CHECKPOINT_FORMAT);
    if (st == NQ_OK) st = h5u_attr_write_int(f, file, "format_version", CHECKPOINT_VERSION);
    if (st == NQ_OK) st = h5u_attr_write_string(f, file, "method", meta->method ? meta->method : "");
    if (st == NQ_OK) st = h5u_attr_write_string(f, file, "quantizer", quantizer_of(s)->name);
    if (st == NQ_OK) st = h5u_attr_write_int(f, file, "bits", s.bits);
    if (st == NQ_OK) st = h5u_attr_write_int(f, file, "group_size", s.group_size);
    if (st == NQ_OK) st = h5u_attr_write_string(f, file, "exponent", s.per_row ? "channel" : "tensor");
    if (st == NQ_OK)
        st = h5u_attr_write_string(f, file, "fingerprint", meta->fingerprint ? meta->fingerprint : "");
    if (st == NQ_OK)
        st = h5u_attr_write_string(f, file, "config", meta->config_toml ? meta->config_toml : "");
    if (st == NQ_OK) st = h5u_attr_write_string(f, file, "dequant", dequant_text);
    if (st == NQ_OK) st = h5u_attr_write_string(f, file, "blas", meta->blas ? meta->blas : "");
    if (st == NQ_OK)
        st = h5u_attr_write_string(f, file, "blas_note", meta->blas_note ? meta->blas_note : "");
    if (st == NQ_OK) st = h5u_attr_write_int(f, file, "threads_per_rank", meta->threads_per_rank);
    return st;
}

/* A string attribute that older checkpoints lack: "" when absent. */
static nq_status read_optional_string_(hid_t f, const char *file, const char *name, char **out) {
    if (H5Aexists(f, name) > 0) return h5u_attr_read_string(f, file, "/", name, out);
    *out = strdup("");
    return *out ? NQ_OK : nq_fail(NQ_ERR_RUNTIME, "out of memory reading %s", file);
}

static nq_status write_model_attrs_(hid_t g, const char *file, const ModelConfig *c) {
    const struct { const char *name; int value; } ints[] = {
        {"dim", c->dim},           {"hidden_dim", c->hidden_dim}, {"n_layers", c->n_layers},
        {"n_heads", c->n_heads},   {"n_kv_heads", c->n_kv_heads}, {"vocab_size", c->vocab_size},
        {"seq_len", c->seq_len},   {"tied_embeddings", c->tied_embeddings},
    };
    nq_status st = NQ_OK;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && st == NQ_OK; i++)
        st = h5u_attr_write_int(g, file, ints[i].name, ints[i].value);
    if (st == NQ_OK) st = h5u_attr_write_double(g, file, "rope_theta", c->rope_theta);
    if (st == NQ_OK) st = h5u_attr_write_double(g, file, "norm_eps", c->norm_eps);
    if (st == NQ_OK)
        st = h5u_attr_write_string(g, file, "rope_style", c->rope_style == ROPE_HALF ? "half" : "interleaved");
    return st;
}

/* /model: attributes, then embeddings [V][d], final norm [d], classifier [V][d] if untied. */
static nq_status write_model_(hid_t f, const char *file, const ModelConfig *c,
                              const HeadWeights *h, int level) {
    hid_t g;
    nq_status st = h5u_create_group(f, file, "model", &g);
    if (st != NQ_OK) return st;
    hsize_t const vd[2] = {(hsize_t)c->vocab_size, (hsize_t)c->dim};
    hsize_t const d[1] = {(hsize_t)c->dim};
    st = write_model_attrs_(g, file, c);
    if (st == NQ_OK) st = h5u_write(g, file, "tok_embeddings", H5U_F32, 2, vd, h->tok_embeddings, level);
    if (st == NQ_OK) st = h5u_write(g, file, "norm_final", H5U_F32, 1, d, h->norm_final, level);
    if (st == NQ_OK && !c->tied_embeddings)
        st = h5u_write(g, file, "output", H5U_F32, 2, vd, h->classifier, level);
    if (st == NQ_OK) st = h5sum_seal_attrs(g, file);
    h5u_close(g);
    return st;
}

static nq_status check_meta_(const char *path, const CheckpointMeta *meta, const ModelConfig *c,
                             int zstd_level) {
    char why[256];
    if (model_config_check(c, why, sizeof why) != 0)
        return nq_fail(NQ_ERR_RUNTIME, "%s: model config: %s", path, why);
    if (zstd_level < 1 || zstd_level > 22)
        return nq_fail(NQ_ERR_RUNTIME, "%s: zstd_level = %d, expected 1..22", path, zstd_level);
    if (meta->status && strcmp(meta->status, "complete") != 0 && strcmp(meta->status, "partial") != 0)
        return nq_fail(NQ_ERR_RUNTIME, "%s: status = \"%s\", expected complete or partial", path, meta->status);
    nq_status const st = quant_spec_check(path, meta->spec, c);
    return st == NQ_OK ? NQ_OK : NQ_ERR_RUNTIME; /* a caller's bug, not bad input */
}

/* An upper bound of the file's size: every payload byte stored uncompressed (the
 * quantizer's arrays at their element size), plus 1% and 4 MiB for zstd's frame overhead
 * and HDF5's metadata. */
static size_t size_bound_(const ModelConfig *c, QuantSpec spec, unsigned skip_mask) {
    size_t const d = (size_t)c->dim, V = (size_t)c->vocab_size;
    size_t per_block = 2 * d * sizeof(float);
    const Quantizer *quant = quantizer_of(spec);
    for (int i = 0; i < N_MATS; i++) {
        QuantShape const sh = quant_shape(spec, mat_rows(c, i), mat_cols(c, i));
        size_t const n = (size_t)sh.rows * (size_t)sh.cols;
        if (skip_mask & (1u << i) || !quant) {
            per_block += n * sizeof(float);
            continue;
        }
        QArrayDesc desc[QM_MAX_ARRAYS];
        int const k = quant->describe(spec, sh, CHECKPOINT_VERSION, desc);
        per_block += (size_t)(quantizer_raw_bits(desc, k) / 8);
    }
    size_t const payload = per_block * (size_t)c->n_layers + (V * d * (c->tied_embeddings ? 1 : 2) + d) * sizeof(float);
    return payload + payload / 100 + ((size_t)4 << 20);
}

static void writer_free_(CheckpointWriter *w) {
    if (!w) return;
    h5u_close(w->blocks);
    h5u_close(w->file);
    free(w->written);
    free(w);
}

nq_status checkpoint_create(const char *path, const CheckpointMeta *meta, const ModelConfig *c,
                            const HeadWeights *head, int zstd_level, CheckpointWriter **out) {
    *out = NULL;
    nq_status st = h5u_init();
    if (st == NQ_OK) st = check_meta_(path, meta, c, zstd_level);
    if (st != NQ_OK) return st;
    CheckpointWriter *w = nq_calloc(1, sizeof *w, "checkpoint writer");
    if (!w) return NQ_ERR_RUNTIME;
    w->file = w->blocks = -1;
    w->config = *c;
    w->spec = meta->spec;
    w->zstd_level = zstd_level;
    snprintf(w->status, sizeof w->status, "%s", meta->status ? meta->status : "");
    snprintf(w->path, sizeof w->path, "%s", path);
    w->written = nq_calloc((size_t)c->n_layers, 1, "checkpoint block list");
    st = w->written ? atomic_tmp_name(path, w->tmp, sizeof w->tmp) : NQ_ERR_RUNTIME;
    if (st == NQ_OK) st = h5u_create(w->tmp, &w->file);
    if (st == NQ_OK) st = h5u_reserve(w->file, path, size_bound_(c, meta->spec, meta->skip_mask));
    if (st == NQ_OK) st = write_root_attrs_(w->file, path, meta);
    if (st == NQ_OK) st = write_model_(w->file, path, c, head, zstd_level);
    if (st == NQ_OK) st = h5u_create_group(w->file, path, "blocks", &w->blocks);
    if (st != NQ_OK) {
        checkpoint_abort(w);
        return st;
    }
    *out = w;
    return NQ_OK;
}

/* The result must have the checkpoint's spec and the model's shapes. */
static nq_status check_result_(const CheckpointWriter *w, const BlockResult *r) {
    int const l = r->block;
    if (l < 0 || l >= w->config.n_layers)
        return nq_fail(NQ_ERR_RUNTIME, "%s: block %d, expected 0..%d", w->path, l, w->config.n_layers - 1);
    if (w->written[l]) return nq_fail(NQ_ERR_RUNTIME, "%s: block %d written twice", w->path, l);
    for (int i = 0; i < N_MATS; i++) {
        const QuantMatrix *q = &r->mat[i];
        QuantShape const want = quant_shape(w->spec, mat_rows(&w->config, i), mat_cols(&w->config, i));
        int same_spec = !q->quantized || (q->spec.bits == w->spec.bits &&
                                          q->spec.group_size == w->spec.group_size &&
                                          q->spec.per_row == w->spec.per_row &&
                                          q->spec.quantizer == w->spec.quantizer);
        if (same_spec && q->quantized) { /* arrays as this version stores them */
            QArrayDesc desc[QM_MAX_ARRAYS];
            int const n = q->quant->describe(q->spec, q->shape, CHECKPOINT_VERSION, desc);
            same_spec = n == q->n_arrays;
            for (int k = 0; k < n && same_spec; k++) same_spec = desc[k].type == q->desc[k].type;
        }
        if (!same_spec || memcmp(&q->shape, &want, sizeof want) != 0)
            return nq_fail(NQ_ERR_RUNTIME, "%s: block %d %s: spec or shape [%d][%d] differs from the checkpoint's",
                           w->path, l, mat_names[i], q->shape.rows, q->shape.cols);
    }
    return NQ_OK;
}

nq_status checkpoint_write_block(CheckpointWriter *w, const BlockResult *r,
                                 const float *attn_norm, const float *ffn_norm) {
    nq_status st = check_result_(w, r);
    if (st != NQ_OK) return st;
    char name[16];
    block_name_(r->block, name, sizeof name);
    hid_t g;
    st = h5u_create_group(w->blocks, w->path, name, &g);
    if (st != NQ_OK) return st;
    hsize_t const d[1] = {(hsize_t)w->config.dim};
    st = h5u_write(g, w->path, "attn_norm", H5U_F32, 1, d, attn_norm, w->zstd_level);
    if (st == NQ_OK) st = h5u_write(g, w->path, "ffn_norm", H5U_F32, 1, d, ffn_norm, w->zstd_level);
    if (st == NQ_OK) st = block_result_write_h5(g, w->path, r, w->zstd_level);
    if (st == NQ_OK) st = h5sum_seal_attrs(g, w->path);
    h5u_close(g);
    if (st == NQ_OK) w->written[r->block] = 1;
    return st;
}

nq_status checkpoint_commit(CheckpointWriter *w) {
    int missing = 0;
    for (int l = 0; l < w->config.n_layers; l++) missing += !w->written[l];
    nq_status st = NQ_OK;
    if (strcmp(w->status, "complete") == 0 && missing > 0)
        st = nq_fail(NQ_ERR_RUNTIME, "%s: status complete with %d of %d blocks missing", w->path,
                     missing, w->config.n_layers);
    const char *status = w->status[0] ? w->status : missing ? "partial" : "complete";
    if (st == NQ_OK) st = h5u_attr_write_string(w->file, w->path, "status", status);
    if (st == NQ_OK) st = h5sum_seal_attrs(w->file, w->path);
    h5u_close(w->blocks);
    w->blocks = -1;
    nq_status const closed = h5u_close_file(w->file, w->path);
    w->file = -1;
    if (st == NQ_OK) st = closed;
    if (st == NQ_OK) h5u_release(w->tmp);
    if (st == NQ_OK) st = atomic_commit(w->tmp, w->path); /* unlinks tmp on failure */
    else unlink(w->tmp);
    writer_free_(w);
    return st;
}

void checkpoint_abort(CheckpointWriter *w) {
    if (!w) return;
    h5u_close(w->blocks);
    h5u_close(w->file);
    w->blocks = w->file = -1;
    if (w->tmp[0]) unlink(w->tmp);
    writer_free_(w);
}

/* ------------------------------------------------------------------ reading */

struct CheckpointReader {
    char path[PATH_MAX];
    hid_t file;
    CheckpointInfo info;
};

static nq_status read_int_attr_(hid_t obj, const char *file, const char *where, const char *name,
                                int lo, int hi, int *value) {
    long long v;
    nq_status const st = h5u_attr_read_int(obj, file, where, name, &v);
    if (st != NQ_OK) return st;
    if ((v < lo || v > hi) && lo == hi)
        return nq_fail(NQ_ERR_INPUT, "%s: %s: attribute %s = %lld, expected %d", file, where, name, v, lo);
    if (v < lo || v > hi)
        return nq_fail(NQ_ERR_INPUT, "%s: %s: attribute %s = %lld, expected %d..%d", file, where,
                       name, v, lo, hi);
    *value = (int)v;
    return NQ_OK;
}

/* Reads string attribute name into a fixed buffer; "one of" lists the allowed values
 * ("a|b|c"), or NULL for any value that fits. */
static nq_status read_choice_(hid_t obj, const char *file, const char *where, const char *name,
                              const char *one_of, char *out, size_t size) {
    char *s = NULL;
    nq_status st = h5u_attr_read_string(obj, file, where, name, &s);
    if (st != NQ_OK) return st;
    int ok = strlen(s) < size;
    if (ok && one_of) {
        char pattern[128], *save = NULL;
        snprintf(pattern, sizeof pattern, "%s", one_of);
        ok = 0;
        for (char *t = strtok_r(pattern, "|", &save); t && !ok; t = strtok_r(NULL, "|", &save))
            ok = strcmp(t, s) == 0;
    }
    if (ok) snprintf(out, size, "%s", s);
    else st = nq_fail(NQ_ERR_INPUT, "%s: %s: attribute %s = \"%.64s\", expected %s", file, where, name, s,
                      one_of ? one_of : "a shorter string");
    free(s);
    return st;
}

static nq_status read_model_config_(hid_t f, const char *file, ModelConfig *c) {
    hid_t g;
    nq_status st = h5u_open_group(f, file, "model", &g);
    if (st != NQ_OK) return st;
    struct { const char *name; int *value; int lo; } const ints[] = {
        {"dim", &c->dim, 1},           {"hidden_dim", &c->hidden_dim, 1}, {"n_layers", &c->n_layers, 1},
        {"n_heads", &c->n_heads, 1},   {"n_kv_heads", &c->n_kv_heads, 1}, {"vocab_size", &c->vocab_size, 1},
        {"seq_len", &c->seq_len, 1},   {"tied_embeddings", &c->tied_embeddings, 0},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && st == NQ_OK; i++)
        st = read_int_attr_(g, file, "/model", ints[i].name, ints[i].lo,
                            strcmp(ints[i].name, "tied_embeddings") == 0 ? 1 : INT_MAX, ints[i].value);
    double theta = 0, eps = 0;
    char style[16];
    if (st == NQ_OK) st = h5u_attr_read_double(g, file, "/model", "rope_theta", &theta);
    if (st == NQ_OK) st = h5u_attr_read_double(g, file, "/model", "norm_eps", &eps);
    if (st == NQ_OK) st = read_choice_(g, file, "/model", "rope_style", "interleaved|half", style, sizeof style);
    h5u_close(g);
    if (st != NQ_OK) return st;
    c->rope_theta = (float)theta;
    c->norm_eps = (float)eps;
    c->rope_style = strcmp(style, "half") == 0 ? ROPE_HALF : ROPE_INTERLEAVED;
    char why[256];
    if (model_config_check(c, why, sizeof why) != 0)
        return nq_fail(NQ_ERR_INPUT, "%s: /model: %s", file, why);
    return NQ_OK;
}

/* The quantizer by name (format_version 3 on); older checkpoints are the power quantizer's. */
static nq_status read_quantizer_(hid_t f, const char *file, CheckpointInfo *info) {
    info->spec.quantizer = QUANTIZER_POWER;
    if (info->format_version < 3) return NQ_OK;
    char name[32];
    nq_status const st = read_choice_(f, file, "/", "quantizer", NULL, name, sizeof name);
    if (st != NQ_OK) return st;
    if ((info->spec.quantizer = quantizer_find(name)) < 0)
        return nq_fail(NQ_ERR_INPUT, "%s: /: attribute quantizer = \"%s\", expected \"%s\"", file, name,
                       quantizer_table[QUANTIZER_POWER]->name);
    return NQ_OK;
}

static nq_status read_info_(hid_t f, const char *file, CheckpointInfo *info) {
    char format[32], exponent[16];
    nq_status st = read_choice_(f, file, "/", "format", CHECKPOINT_FORMAT, format, sizeof format);
    if (st == NQ_OK) st = read_int_attr_(f, file, "/", "format_version", CHECKPOINT_VERSION_UNCHECKED,
                                         CHECKPOINT_VERSION, &info->format_version);
    int const checked = info->format_version >= CHECKPOINT_VERSION_CHECKSUMS;
    if (st == NQ_OK && checked) st = h5sum_check_attrs(f, file, "/", 1);
    if (st == NQ_OK && checked) {
        hid_t g;
        st = h5u_open_group(f, file, "model", &g);
        if (st == NQ_OK) st = h5sum_check_attrs(g, file, "/model", 1);
        h5u_close(g);
    }
    if (st == NQ_OK) st = read_choice_(f, file, "/", "status", "complete|partial", info->status, sizeof info->status);
    if (st == NQ_OK) st = read_choice_(f, file, "/", "method", "nupes|powerquant|rtn", info->method, sizeof info->method);
    if (st == NQ_OK) st = read_quantizer_(f, file, info);
    if (st == NQ_OK) st = read_int_attr_(f, file, "/", "bits", QUANT_MIN_BITS, QUANT_MAX_BITS, &info->spec.bits);
    if (st == NQ_OK) st = read_int_attr_(f, file, "/", "group_size", 0, INT_MAX, &info->spec.group_size);
    if (st == NQ_OK) st = read_choice_(f, file, "/", "exponent", "tensor|channel", exponent, sizeof exponent);
    if (st == NQ_OK) info->spec.per_row = strcmp(exponent, "channel") == 0;
    if (st == NQ_OK) st = read_choice_(f, file, "/", "fingerprint", NULL, info->fingerprint, sizeof info->fingerprint);
    if (st == NQ_OK) st = h5u_attr_read_string(f, file, "/", "config", &info->config_toml);
    if (st == NQ_OK) st = h5u_attr_read_string(f, file, "/", "dequant", &info->dequant);
    if (st == NQ_OK) st = read_optional_string_(f, file, "blas", &info->blas);
    if (st == NQ_OK) st = read_optional_string_(f, file, "blas_note", &info->blas_note);
    if (st == NQ_OK && H5Aexists(f, "threads_per_rank") > 0)
        st = read_int_attr_(f, file, "/", "threads_per_rank", 0, INT_MAX, &info->threads_per_rank);
    if (st == NQ_OK) st = read_model_config_(f, file, &info->config);
    if (st == NQ_OK) st = quant_spec_check(file, info->spec, &info->config);
    return st;
}

void checkpoint_info_free(CheckpointInfo *info) {
    if (!info) return;
    free(info->config_toml);
    free(info->dequant);
    free(info->blas);
    free(info->blas_note);
    info->config_toml = info->dequant = info->blas = info->blas_note = NULL;
}

void checkpoint_close(CheckpointReader *r) {
    if (!r) return;
    h5u_close_file(r->file, r->path);
    checkpoint_info_free(&r->info);
    free(r);
}

nq_status checkpoint_open(const char *path, CheckpointReader **out) {
    *out = NULL;
    nq_status st = h5u_init();
    if (st != NQ_OK) return st;
    CheckpointReader *r = nq_calloc(1, sizeof *r, "checkpoint reader");
    if (!r) return NQ_ERR_RUNTIME;
    snprintf(r->path, sizeof r->path, "%s", path);
    st = h5u_open_read(path, &r->file);
    if (st == NQ_OK) st = read_info_(r->file, path, &r->info);
    if (st != NQ_OK) {
        checkpoint_close(r);
        return st;
    }
    if (r->info.format_version < CHECKPOINT_VERSION_CHECKSUMS)
        fprintf(stderr, "nupes-mpi: warning: %s: format_version %d has no checksums, its data cannot be "
                        "verified; re-run the job that wrote it (same config and run.dir) to rewrite it\n",
                path, r->info.format_version);
    *out = r;
    return NQ_OK;
}

const CheckpointInfo *checkpoint_info(const CheckpointReader *r) { return &r->info; }

/* A float32 dataset, checksum required from format_version 2 on. */
static nq_status read_(const CheckpointReader *r, hid_t loc, const char *name, int rank,
                       const hsize_t *dims, float *out) {
    if (r->info.format_version >= CHECKPOINT_VERSION_CHECKSUMS)
        return h5u_read_checked(loc, r->path, name, H5U_F32, rank, dims, out);
    return h5u_read(loc, r->path, name, H5U_F32, rank, dims, out);
}

nq_status checkpoint_verify(CheckpointReader *r, int *n_datasets, int *n_attr_sets) {
    if (r->info.format_version < CHECKPOINT_VERSION_CHECKSUMS)
        return nq_fail(NQ_ERR_INPUT, "%s: format_version %d has no checksums and cannot be verified; re-run "
                       "the job that wrote it (same config and run.dir) to rewrite it with checksums",
                       r->path, r->info.format_version);
    nq_status st = h5sum_verify_file(r->file, r->path, n_datasets, n_attr_sets);
    const ModelConfig *c = &r->info.config;
    for (int l = 0; l < c->n_layers && st == NQ_OK; l++) {
        if (!checkpoint_has_block(r, l)) {
            if (strcmp(r->info.status, "complete") == 0)
                st = nq_fail(NQ_ERR_INPUT, "%s: missing group /blocks/%04d (status complete)", r->path, l);
            continue;
        }
        BlockResult b;
        st = checkpoint_read_block(r, l, &b, NULL, NULL);
        if (st == NQ_OK) block_result_free(&b);
    }
    return st;
}

int checkpoint_has_block(CheckpointReader *r, int l) {
    char name[32];
    snprintf(name, sizeof name, "blocks/%04d", l);
    return l >= 0 && l < r->info.config.n_layers && h5u_exists(r->file, name);
}

nq_status checkpoint_read_block(CheckpointReader *r, int l, BlockResult *out, float *attn_norm,
                                float *ffn_norm) {
    memset(out, 0, sizeof *out);
    const ModelConfig *c = &r->info.config;
    if (l < 0 || l >= c->n_layers)
        return nq_fail(NQ_ERR_INPUT, "%s: block %d requested, the model has %d", r->path, l, c->n_layers);
    char name[32];
    snprintf(name, sizeof name, "blocks/%04d", l);
    hid_t g;
    nq_status st = h5u_open_group(r->file, r->path, name, &g);
    if (st != NQ_OK) return st;
    hsize_t const d[1] = {(hsize_t)c->dim};
    int const checked = r->info.format_version >= CHECKPOINT_VERSION_CHECKSUMS;
    if (checked) st = h5sum_check_attrs(g, r->path, name, 1);
    if (st == NQ_OK && attn_norm) st = read_(r, g, "attn_norm", 1, d, attn_norm);
    if (st == NQ_OK && ffn_norm) st = read_(r, g, "ffn_norm", 1, d, ffn_norm);
    /* the arrays as this file's version stores them (fp32 scales before version 3) */
    if (st == NQ_OK) st = block_result_read_h5(g, r->path, c, r->info.spec, l, checked, r->info.format_version, out);
    h5u_close(g);
    return st;
}

nq_status checkpoint_block_storage(CheckpointReader *r, int l, int want_entropy, CheckpointStorage *out) {
    memset(out, 0, sizeof *out);
    BlockResult b;
    nq_status st = want_entropy ? checkpoint_read_block(r, l, &b, NULL, NULL) : NQ_OK;
    if (st != NQ_OK) return st;
    const ModelConfig *c = &r->info.config;
    const Quantizer *quant = quantizer_of(r->info.spec);
    for (int i = 0; i < N_MATS && st == NQ_OK; i++) {
        char name[64];
        snprintf(name, sizeof name, "blocks/%04d/%s/weight", l, mat_names[i]);
        if (h5u_exists(r->file, name)) continue; /* kept fp32 */
        QuantShape const sh = quant_shape(r->info.spec, mat_rows(c, i), mat_cols(c, i));
        QArrayDesc desc[QM_MAX_ARRAYS];
        out->n_arrays = quant->describe(r->info.spec, sh, r->info.format_version, desc);
        out->weights += (unsigned long long)sh.rows * (unsigned long long)sh.cols;
        for (int k = 0; k < out->n_arrays; k++) {
            out->names[k] = desc[k].name;
            snprintf(name, sizeof name, "blocks/%04d/%s/%s", l, mat_names[i], desc[k].name);
            hid_t const d = H5Dopen2(r->file, name, H5P_DEFAULT);
            if (d < 0) {
                st = h5u_fail(NQ_ERR_INPUT, r->path, "missing dataset");
                break;
            }
            out->stored_bytes[k] += H5Dget_storage_size(d);
            H5Dclose(d);
        }
        if (want_entropy && st == NQ_OK && b.mat[i].quantized) { /* array 0: the codes */
            size_t const n = qarray_count(&b.mat[i].desc[0]);
            out->code_bits += (double)n * quant_code_entropy(b.mat[i].array[0], n);
        }
    }
    if (want_entropy) block_result_free(&b);
    return st;
}

nq_status checkpoint_read_head(CheckpointReader *r, float *tok_embeddings, float *norm_final,
                               float *output) {
    const ModelConfig *c = &r->info.config;
    hsize_t const vd[2] = {(hsize_t)c->vocab_size, (hsize_t)c->dim};
    hsize_t const d[1] = {(hsize_t)c->dim};
    nq_status st = read_(r, r->file, "model/tok_embeddings", 2, vd, tok_embeddings);
    if (st == NQ_OK) st = read_(r, r->file, "model/norm_final", 1, d, norm_final);
    if (st != NQ_OK || !output) return st;
    if (!c->tied_embeddings) return read_(r, r->file, "model/output", 2, vd, output);
    memcpy(output, tok_embeddings, nq_mul_size(vd[0] * vd[1], sizeof(float)));
    return NQ_OK;
}

nq_status checkpoint_read_info(const char *path, CheckpointInfo *out) {
    memset(out, 0, sizeof *out);
    CheckpointReader *r;
    nq_status const st = checkpoint_open(path, &r);
    if (st != NQ_OK) return st;
    *out = r->info;
    r->info.config_toml = r->info.dequant = r->info.blas = r->info.blas_note = NULL; /* moved */
    checkpoint_close(r);
    return NQ_OK;
}
