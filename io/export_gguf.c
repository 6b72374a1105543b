/* GGUF export (see export_gguf.h). The header (metadata, tokenizer, tensor infos) is built
 * from the config and the tokenizer alone; then the tensors are encoded row by row and
 * streamed, one block of weights in memory at a time. */
#include "export_gguf.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_file.h"
#include "checkpoint.h"
#include "export_safetensors.h" /* export_permute_rope_rows */
#include "float16.h"
#include "gguf_writer.h"
#include "quant_iq4.h"

/* Per block, in the order written; -1: a norm. llama.cpp's names (llama-arch.cpp). */
static const struct {
    const char *name;
    int mat; /* MAT_ index, or -1 (attn_norm) / -2 (ffn_norm) */
} block_tensors[] = {
    {"attn_norm", -1},          {"attn_q", MAT_WQ},   {"attn_k", MAT_WK},   {"attn_v", MAT_WV},
    {"attn_output", MAT_WO},    {"ffn_norm", -2},     {"ffn_gate", MAT_W1}, {"ffn_down", MAT_W2},
    {"ffn_up", MAT_W3},
};
#define N_BLOCK_TENSORS (int)(sizeof block_tensors / sizeof block_tensors[0])

static const char *const gguf_mat_names[N_MATS] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                    "ffn_gate", "ffn_down", "ffn_up"};

unsigned gguf_file_type(GgmlType type) {
    switch (type) {
    case GGML_F32: return 0;
    case GGML_F16: return 1;
    case GGML_Q8_0: return 7;
    case GGML_IQ4_NL: return 25;
    case GGML_IQ4_XS: return 30;
    }
    return 0;
}

/* The type matrix `name` of row length n gets; reports a fallback. */
static GgmlType matrix_type(GgmlType want, const char *name, int64_t n, const GgufExportOptions *o) {
    GgmlType const got = ggml_fallback_type(want, n);
    if (got != want && o->report)
        fprintf(o->report, "gguf: %s: rows of %lld values are not whole %s blocks of %d: written as %s (llama.cpp's fallback)\n",
                name, (long long)n, ggml_type_info(want)->name, ggml_type_info(want)->block_size,
                ggml_type_info(got)->name);
    return got;
}

/* ---------------------------------------------------------------- header */

static nq_status add_metadata(GgufWriter *w, const ModelConfig *c, const GgufExportOptions *o) {
    nq_status st = gguf_kv_string(w, "general.architecture", "llama");
    if (st == NQ_OK) st = gguf_kv_string(w, "general.name", o->name ? o->name : "nupes-mpi export");
    if (st == NQ_OK) st = gguf_kv_u32(w, "general.file_type", gguf_file_type(o->type));
    if (st == NQ_OK) st = gguf_kv_u32(w, "general.quantization_version", 2);
    if (st == NQ_OK) st = gguf_kv_u32(w, "general.alignment", GGUF_ALIGNMENT);
    if (st == NQ_OK) st = gguf_kv_u32(w, "llama.context_length", (uint32_t)c->seq_len);
    if (st == NQ_OK) st = gguf_kv_u32(w, "llama.embedding_length", (uint32_t)c->dim);
    if (st == NQ_OK) st = gguf_kv_u32(w, "llama.block_count", (uint32_t)c->n_layers);
    if (st == NQ_OK) st = gguf_kv_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    if (st == NQ_OK) st = gguf_kv_u32(w, "llama.rope.dimension_count", (uint32_t)(c->dim / c->n_heads));
    if (st == NQ_OK) st = gguf_kv_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads);
    if (st == NQ_OK) st = gguf_kv_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    if (st == NQ_OK) st = gguf_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
    if (st == NQ_OK) st = gguf_kv_f32(w, "llama.rope.freq_base", c->rope_theta);
    if (st == NQ_OK) st = gguf_kv_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size);
    return st;
}

static nq_status add_tokenizer(GgufWriter *w, const Tokenizer *tok, const char *path) {
    int const V = tokenizer_vocab_size(tok);
    char **pieces = nq_calloc((size_t)V, sizeof *pieces, "token pieces");
    size_t *lens = nq_calloc((size_t)V, sizeof *lens, "token lengths");
    float *scores = nq_calloc((size_t)V, sizeof *scores, "token scores");
    int32_t *kinds = nq_calloc((size_t)V, sizeof *kinds, "token types");
    int unk = -1;
    nq_status st = pieces && lens && scores && kinds ? NQ_OK : NQ_ERR_RUNTIME;
    for (int v = 0; v < V && st == NQ_OK; v++) {
        TokenKind kind;
        pieces[v] = tokenizer_piece(tok, v, &scores[v], &kind);
        if (!pieces[v]) st = nq_fail(NQ_ERR_RUNTIME, "%s: out of memory copying the vocabulary", path);
        else lens[v] = strlen(pieces[v]);
        kinds[v] = (int32_t)kind;
        if (kind == TOKEN_KIND_UNKNOWN && unk < 0) unk = v;
    }
    if (st == NQ_OK) st = gguf_kv_string(w, "tokenizer.ggml.model", "llama");
    if (st == NQ_OK) st = gguf_kv_string_array(w, "tokenizer.ggml.tokens", (const char *const *)pieces, lens, (uint64_t)V);
    if (st == NQ_OK) st = gguf_kv_f32_array(w, "tokenizer.ggml.scores", scores, (uint64_t)V);
    if (st == NQ_OK) st = gguf_kv_i32_array(w, "tokenizer.ggml.token_type", kinds, (uint64_t)V);
    if (st == NQ_OK) st = gguf_kv_u32(w, "tokenizer.ggml.bos_token_id", TOKEN_BOS);
    if (st == NQ_OK) st = gguf_kv_u32(w, "tokenizer.ggml.eos_token_id", TOKEN_EOS);
    if (st == NQ_OK && unk >= 0) st = gguf_kv_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)unk);
    if (st == NQ_OK) st = gguf_kv_bool(w, "tokenizer.ggml.add_bos_token", 1);
    if (st == NQ_OK) st = gguf_kv_bool(w, "tokenizer.ggml.add_eos_token", 0);
    for (int v = 0; pieces && v < V; v++) free(pieces[v]);
    free(pieces);
    free(lens);
    free(scores);
    free(kinds);
    return st;
}

/* The types of every matrix, decided once (fallbacks reported once). */
typedef struct {
    GgmlType embd, output, mat[N_MATS];
    CheckpointReader *codes; /* open when some matrix is written from stored IQ4 codes */
} TensorTypes;

static int is_iq4(GgmlType t) { return t == GGML_IQ4_NL || t == GGML_IQ4_XS; }

static nq_status add_tensors(GgufWriter *w, const ModelConfig *c, const TensorTypes *t) {
    int64_t const embd_ne[2] = {c->dim, c->vocab_size}, norm_ne[1] = {c->dim};
    nq_status st = gguf_add_tensor(w, "token_embd.weight", 2, embd_ne, t->embd);
    for (int l = 0; l < c->n_layers && st == NQ_OK; l++)
        for (int i = 0; i < N_BLOCK_TENSORS && st == NQ_OK; i++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, block_tensors[i].name);
            int const k = block_tensors[i].mat;
            int64_t const ne[2] = {k >= 0 ? mat_cols(c, k) : c->dim, k >= 0 ? mat_rows(c, k) : 1};
            st = gguf_add_tensor(w, name, k >= 0 ? 2 : 1, ne, k >= 0 ? t->mat[k] : GGML_F32);
        }
    if (st == NQ_OK) st = gguf_add_tensor(w, "output_norm.weight", 1, norm_ne, GGML_F32);
    if (st == NQ_OK && !c->tied_embeddings) st = gguf_add_tensor(w, "output.weight", 2, embd_ne, t->output);
    return st;
}

/* ---------------------------------------------------------------- data */

/* Encodes rows x [rows][n] as type, one row at a time through buf (>= one row's bytes). */
static nq_status write_matrix(GgufWriter *w, GgmlType type, const float *x, int64_t rows, int64_t n, void *buf) {
    size_t const row_bytes = ggml_row_bytes(type, n);
    nq_status st = NQ_OK;
    for (int64_t r = 0; r < rows && st == NQ_OK; r++) {
        ggml_encode_row(type, x + r * n, n, buf);
        st = gguf_writer_tensor_data(w, buf, row_bytes);
    }
    return st;
}

/* Row r of the file holds row source[r] of the stored matrix: the identity, or for q/k of
 * a "half" (HF) model the rope un-permutation (export_permute_rope_rows on row numbers). */
static void source_rows(const ModelConfig *c, int k, float *index, float *source) {
    int const rows = mat_rows(c, k);
    for (int r = 0; r < rows; r++) index[r] = (float)r; /* exact: rows < 2^24 */
    if (c->rope_style == ROPE_HALF && (k == MAT_WQ || k == MAT_WK)) {
        export_permute_rope_rows(index, k == MAT_WQ ? c->n_heads : c->n_kv_heads, rows, 1, 0, source);
    } else {
        memcpy(source, index, (size_t)rows * sizeof(float));
    }
}

/* Matrix k of a block from its stored IQ4 arrays, row by row in the file's order. */
static nq_status write_iq4_matrix(GgufWriter *w, const ModelConfig *c, int k, const QuantMatrix *q,
                                  GgmlType type, float *scratch, void *buf) {
    int const rows = mat_rows(c, k), cols = mat_cols(c, k), groups = iq4_groups(cols);
    int const supers = cols / IQ4XS_SUPER;
    float *index = scratch, *source = scratch + rows, *scales = scratch + 2 * rows; /* groups */
    source_rows(c, k, index, source);
    const int8_t *codes = quant_matrix_array(q, "codes");
    const uint16_t *d = quant_matrix_array(q, "scale"), *D = quant_matrix_array(q, "super_scale");
    const int8_t *sub = quant_matrix_array(q, "sub_scale");
    if (!codes || (type == GGML_IQ4_NL ? !d : !D || !sub))
        return nq_fail(NQ_ERR_INPUT, "%s: the checkpoint's %s has no stored %s arrays (learned on another grid)",
                       gguf_mat_names[k], mat_names[k], ggml_type_info(type)->name);
    size_t const row_bytes = ggml_row_bytes(type, cols);
    nq_status st = NQ_OK;
    for (int r = 0; r < rows && st == NQ_OK; r++) {
        size_t const src = (size_t)source[r];
        if (type == GGML_IQ4_NL) {
            for (int g = 0; g < groups; g++) scales[g] = half_to_float(d[src * groups + g]);
            ggml_encode_iq4nl_row(codes + src * cols, scales, cols, buf);
        } else {
            for (int b = 0; b < supers; b++) scales[b] = half_to_float(D[src * supers + b]);
            ggml_encode_iq4xs_row(codes + src * cols, scales, sub + src * groups, cols, buf);
        }
        st = gguf_writer_tensor_data(w, buf, row_bytes);
    }
    return st;
}

static nq_status write_block(GgufWriter *w, Model *m, int l, const TensorTypes *t, float *scratch, void *buf) {
    const ModelConfig *c = model_config(m);
    BlockWeights b;
    BlockResult stored = {0};
    nq_status st = t->codes ? checkpoint_read_block(t->codes, l, &stored, NULL, NULL) : NQ_OK;
    if (st == NQ_OK) st = model_block(m, l, &b);
    if (st != NQ_OK) {
        block_result_free(&stored);
        return st;
    }
    for (int i = 0; i < N_BLOCK_TENSORS && st == NQ_OK; i++) {
        int const k = block_tensors[i].mat;
        if (k < 0) {
            st = gguf_writer_tensor_data(w, k == -1 ? b.attn_norm : b.ffn_norm, (size_t)c->dim * sizeof(float));
            continue;
        }
        if (is_iq4(t->mat[k])) {
            st = write_iq4_matrix(w, c, k, &stored.mat[k], t->mat[k], scratch, buf);
            continue;
        }
        const float *data = b.mat[k];
        if (c->rope_style == ROPE_HALF && (k == MAT_WQ || k == MAT_WK)) {
            export_permute_rope_rows(data, k == MAT_WQ ? c->n_heads : c->n_kv_heads, mat_rows(c, k), mat_cols(c, k), 0,
                                     scratch);
            data = scratch;
        }
        st = write_matrix(w, t->mat[k], data, mat_rows(c, k), mat_cols(c, k), buf);
    }
    model_release_block(m, l);
    block_result_free(&stored);
    return st;
}

static nq_status write_file(GgufWriter *w, Model *m, const TensorTypes *t, FILE *f) {
    const ModelConfig *c = model_config(m);
    int64_t const widest = c->hidden_dim > c->dim ? c->hidden_dim : c->dim;
    /* q/k permutation of d x d weights, or an IQ4 matrix's row order and one row's scales */
    size_t const scratch_floats = (size_t)c->dim * (size_t)c->dim > 3 * (size_t)widest
                                      ? (size_t)c->dim * (size_t)c->dim : 3 * (size_t)widest;
    float *scratch = nq_calloc(scratch_floats, sizeof(float), "q/k permutation buffer");
    void *buf = nq_calloc((size_t)widest, sizeof(float), "row encoding buffer");
    HeadWeights h;
    nq_status st = scratch && buf ? NQ_OK : NQ_ERR_RUNTIME;
    if (st == NQ_OK) st = gguf_writer_begin(w, f);
    if (st == NQ_OK) st = model_head(m, &h);
    if (st == NQ_OK) st = write_matrix(w, t->embd, h.tok_embeddings, c->vocab_size, c->dim, buf);
    for (int l = 0; l < c->n_layers && st == NQ_OK; l++) st = write_block(w, m, l, t, scratch, buf);
    if (st == NQ_OK) st = gguf_writer_tensor_data(w, h.norm_final, (size_t)c->dim * sizeof(float));
    if (st == NQ_OK && !c->tied_embeddings) st = write_matrix(w, t->output, h.classifier, c->vocab_size, c->dim, buf);
    if (st == NQ_OK) st = gguf_writer_finish(w);
    free(scratch);
    free(buf);
    return st;
}

nq_status export_gguf(Model *m, const Tokenizer *tok, const char *path, const GgufExportOptions *o) {
    const ModelConfig *c = model_config(m);
    if (tokenizer_vocab_size(tok) != c->vocab_size)
        return nq_fail(NQ_ERR_INPUT, "%s: tokenizer has %d tokens, expected %d (the model's vocab_size)", path,
                       tokenizer_vocab_size(tok), c->vocab_size);
    TensorTypes t = {0};
    nq_status st = NQ_OK;
    if (is_iq4(o->embedding_type) || is_iq4(o->output_type) || (is_iq4(o->type) && !o->codes_from))
        return nq_fail(NQ_ERR_INPUT, "%s: IQ4 types are written only from a checkpoint learned on that grid "
                       "(quantization.grid), for the blocks' matrices", path);
    t.embd = matrix_type(o->embedding_type, "token_embd", c->dim, o);
    t.output = c->tied_embeddings ? o->output_type : matrix_type(o->output_type, "output", c->dim, o);
    BlockResult first = {0};
    if (is_iq4(o->type)) { /* which matrices the checkpoint stores as codes (skip is global) */
        st = checkpoint_open(o->codes_from, &t.codes);
        if (st == NQ_OK) st = checkpoint_read_block(t.codes, 0, &first, NULL, NULL);
    }
    for (int k = 0; k < N_MATS && st == NQ_OK; k++) {
        char name[32];
        snprintf(name, sizeof name, "blk.*.%s", gguf_mat_names[k]);
        t.mat[k] = matrix_type(o->type, name, mat_cols(c, k), o);
        if (is_iq4(t.mat[k]) && !first.mat[k].quantized) {
            if (o->report)
                fprintf(o->report, "gguf: %s: kept fp32 in the checkpoint (quantization.skip): written as f16\n", name);
            t.mat[k] = GGML_F16;
        }
    }
    block_result_free(&first);
    char tmp[PATH_MAX];
    if (st == NQ_OK) st = atomic_tmp_name(path, tmp, sizeof tmp);
    GgufWriter *w = st == NQ_OK ? gguf_writer_new(path) : NULL;
    if (!w) {
        checkpoint_close(t.codes);
        return st != NQ_OK ? st : NQ_ERR_RUNTIME;
    }
    st = add_metadata(w, c, o);
    if (st == NQ_OK) st = add_tokenizer(w, tok, path);
    if (st == NQ_OK) st = add_tensors(w, c, &t);
    FILE *f = NULL;
    if (st == NQ_OK && !(f = fopen(tmp, "wb"))) st = nq_fail(NQ_ERR_RUNTIME, "%s: cannot create: %s", tmp, strerror(errno));
    if (st == NQ_OK) st = write_file(w, m, &t, f);
    if (f && fclose(f) != 0 && st == NQ_OK) st = nq_fail(NQ_ERR_RUNTIME, "%s: write failed: %s", path, strerror(errno));
    gguf_writer_free(w);
    checkpoint_close(t.codes);
    if (st == NQ_OK) return atomic_commit(tmp, path);
    if (f) unlink(tmp);
    return st;
}
