/* The Hugging Face import against the llama2.c model it was converted from.
 *
 * The fixture writes data/stories260K.bin as HF directories (q/k rows permuted as the HF
 * converter does; F32, F16, BF16; one file or shards; tied or untied). Each must give the
 * llama2.c model's logits (F32 to 1e-5; F16/BF16 within measured bounds) and, after
 * un-permuting q/k, the same weights (F32 exactly; F16/BF16 equal to the weights rounded
 * by an independent conversion). Bad directories must give one-line errors naming the file
 * and the tensor or field. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hf_fixture.h"
#include "model_file.h"
#include "safetensors.h"
#include "transformer.h"

enum { NSEQ = 4, SEQ_T = 128 };

/* Max |logit diff| against the llama2.c model, measured on these 4 x 128 tokens (logits up
 * to 22.7): F32 2.1e-5 (the same float noise as our forward against run.c's, 2.6e-5: the
 * half rope sums q.k in another order), F16 0.028, BF16 0.18. Bounds a bit above. */
#define F32_BOUND 5e-5
#define F16_BOUND 0.04
#define BF16_BOUND 0.25

typedef struct {
    L2cWeights l2c;
    float *lm_head;        /* [V][d], an untied classifier distinct from the embeddings */
    int tokens[NSEQ * SEQ_T];
    float *oracle;         /* [NSEQ][T][V] llama2.c run.c logits */
    float *ref_tied;       /* [NSEQ][T][V] our forward on the llama2.c weights */
    float *ref_untied;     /* same with lm_head as classifier */
} Fixture;

static Fixture fx;

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void data_path(char *out, size_t size, const char *name) {
    const char *dir = getenv("NUPES_DATA");
    snprintf(out, size, "%s/%s", dir ? dir : "data", name);
}

static void read_oracle(void) {
    char path[4096];
    data_path(path, sizeof path, "reference/stories260K-ref-logits.bin");
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    int head[4];
    assert_int_equal(fread(head, sizeof(int), 4, f), 4);
    assert_int_equal(head[0], 0x4e555046);
    assert_true(head[1] >= NSEQ && head[2] == SEQ_T && head[3] == fx.l2c.config.vocab_size);
    size_t const V = (size_t)head[3];
    fx.oracle = malloc(NSEQ * SEQ_T * V * sizeof(float));
    assert_non_null(fx.oracle);
    for (int s = 0; s < NSEQ; s++) {
        assert_int_equal(fread(fx.tokens + s * SEQ_T, sizeof(int), SEQ_T, f), SEQ_T);
        assert_int_equal(fread(fx.oracle + s * SEQ_T * V, sizeof(float), SEQ_T * V, f), SEQ_T * V);
    }
    fclose(f);
}

static float *forward(const ModelConfig *c, const HeadWeights *head, const BlockWeights *blocks) {
    Transformer *t = transformer_create(c, NSEQ, SEQ_T);
    assert_non_null(t);
    float *logits = malloc((size_t)NSEQ * SEQ_T * (size_t)c->vocab_size * sizeof(float));
    assert_non_null(logits);
    transformer_forward(t, head, blocks, fx.tokens, logits);
    transformer_free(t);
    return logits;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

static double mean_abs_diff(const float *a, const float *b, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += fabs((double)a[i] - (double)b[i]);
    return sum / (double)n;
}

static size_t n_logits(void) { return (size_t)NSEQ * SEQ_T * (size_t)fx.l2c.config.vocab_size; }

static int setup(void **state) {
    (void)state;
    char path[4096];
    data_path(path, sizeof path, "stories260K.bin");
    if (l2c_weights_load(path, &fx.l2c) != 0) return -1;
    const ModelConfig *c = &fx.l2c.config;
    size_t const vd = (size_t)c->vocab_size * (size_t)c->dim;
    fx.lm_head = malloc(vd * sizeof(float));
    if (!fx.lm_head) return -1;
    for (size_t i = 0; i < vd; i++) /* distinct from the embeddings, same scale */
        fx.lm_head[i] = 0.75f * fx.l2c.head.tok_embeddings[(i + (size_t)c->dim) % vd];
    read_oracle();
    fx.ref_tied = forward(c, &fx.l2c.head, fx.l2c.blocks);
    HeadWeights untied = fx.l2c.head;
    untied.classifier = fx.lm_head;
    fx.ref_untied = forward(c, &untied, fx.l2c.blocks);
    printf("  llama2.c weights, our forward: max |logit diff| vs run.c oracle = %.3g\n",
           max_abs_diff(fx.ref_tied, fx.oracle, n_logits()));
    return 0;
}

static int teardown(void **state) {
    (void)state;
    l2c_weights_free(&fx.l2c);
    free(fx.lm_head);
    free(fx.oracle);
    free(fx.ref_tied);
    free(fx.ref_untied);
    return 0;
}

/* ---------------------------------------------------------------- conversions */

/* bf16 rounding by a different route: the two neighbours, the nearer in double, ties even. */
static float bf16_reference(float x) {
    if (isinf(x)) return x;
    uint32_t bits;
    memcpy(&bits, &x, 4);
    uint32_t const lo_bits = bits & 0xffff0000u, hi_bits = lo_bits + 0x10000u;
    float lo, hi;
    memcpy(&lo, &lo_bits, 4);
    memcpy(&hi, &hi_bits, 4);
    /* magnitudes in double; past the largest bf16 the next step up is 2^128 (inf) */
    double const mlo = fabs((double)lo), mhi = isinf(hi) ? ldexp(1.0, 128) : fabs((double)hi);
    double const dlo = fabs(x) - mlo, dhi = mhi - fabs(x);
    if (dlo < dhi) return lo;
    if (dhi < dlo) return hi;
    return (lo_bits & 0x10000u) ? hi : lo;
}

static float f16_reference(float x) { return (float)(_Float16)x; }

static void test_scalar_conversions(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) { /* every half: decode, and encode back */
        _Float16 ref;
        uint16_t const h16 = (uint16_t)h;
        memcpy(&ref, &h16, 2);
        float const got = half_to_float(h16);
        if (isnan((float)ref)) {
            assert_true(isnan(got));
            continue;
        }
        assert_true(got == (float)ref && signbit(got) == signbit((float)ref));
        assert_int_equal(float_to_half(got), h16);
        assert_true(bf16_to_float(float_to_bf16(bf16_to_float(h16))) == bf16_to_float(h16) ||
                    isnan(bf16_to_float(h16)));
    }
    uint64_t s = 88172645463325252ull; /* xorshift: random fp32 bit patterns, all ranges */
    for (int i = 0; i < 2000000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        uint32_t const bits = (uint32_t)s;
        float x;
        memcpy(&x, &bits, 4);
        if (isnan(x)) continue;
        float const h = half_to_float(float_to_half(x)), r = f16_reference(x);
        assert_true(h == r && signbit(h) == signbit(r));
        if (bf16_to_float(float_to_bf16(x)) != bf16_reference(x))
            fail_msg("bf16(%.9g) = %.9g, expected %.9g", x, bf16_to_float(float_to_bf16(x)), bf16_reference(x));
    }
    assert_true(isnan(half_to_float(float_to_half(NAN))) && isnan(bf16_to_float(float_to_bf16(NAN))));
    assert_int_equal(float_to_half(65520.0f), 0x7c00);
    assert_int_equal(float_to_half(65519.0f), 0x7bff);
}

/* ---------------------------------------------------------------- variants */

typedef struct {
    const char *label;
    HfFixtureDtype dtype;
    int shards, untied, misalign;
    double logit_bound; /* max |logit - llama2.c logit| allowed */
} Variant;

static float rounded(HfFixtureDtype dt, float x) {
    return dt == HF_F32 ? x : dt == HF_F16 ? f16_reference(x) : bf16_reference(x);
}

/* The weight as the HF file holds it, converted back: the original rounded to the dtype. */
static void check_matrix(const float *got, const float *orig, size_t n, HfFixtureDtype dt, const char *what) {
    for (size_t i = 0; i < n; i++) {
        if (got[i] != rounded(dt, orig[i])) {
            fail_msg("%s[%zu] = %.9g, expected %.9g (from %.9g)", what, i, got[i], rounded(dt, orig[i]), orig[i]);
        }
    }
}

static void check_block(const ModelConfig *c, const BlockWeights *got, const BlockWeights *orig, HfFixtureDtype dt) {
    size_t const d = (size_t)c->dim;
    check_matrix(got->attn_norm, orig->attn_norm, d, dt, "attn_norm");
    check_matrix(got->ffn_norm, orig->ffn_norm, d, dt, "ffn_norm");
    for (int i = 0; i < N_MATS; i++) {
        int const rows = mat_rows(c, i), cols = mat_cols(c, i);
        size_t const n = (size_t)rows * (size_t)cols;
        float *unperm = malloc(n * sizeof(float));
        assert_non_null(unperm);
        if (i == MAT_WQ || i == MAT_WK)
            hf_unpermute_rows(got->mat[i], i == MAT_WQ ? c->n_heads : c->n_kv_heads, rows, cols, unperm);
        else
            memcpy(unperm, got->mat[i], n * sizeof(float));
        check_matrix(unperm, orig->mat[i], n, dt, mat_names[i]);
        free(unperm);
    }
}

static void check_config(const ModelConfig *got, const ModelConfig *want, int untied) {
    assert_int_equal(got->dim, want->dim);
    assert_int_equal(got->hidden_dim, want->hidden_dim);
    assert_int_equal(got->n_layers, want->n_layers);
    assert_int_equal(got->n_heads, want->n_heads);
    assert_int_equal(got->n_kv_heads, want->n_kv_heads);
    assert_int_equal(got->vocab_size, want->vocab_size);
    assert_int_equal(got->seq_len, want->seq_len);
    assert_true(got->norm_eps == want->norm_eps && got->rope_theta == want->rope_theta);
    assert_int_equal(got->rope_style, ROPE_HALF);
    assert_int_equal(got->tied_embeddings, !untied);
}

/* One block on the same input in both layouts: the rope styles differ only in the order
 * of the q.k sums, so the outputs agree to rounding. Returns the max |difference|. */
static double block_diff(const ModelConfig *hf_config, const BlockWeights *hf_block, int l) {
    enum { B = 2, T = 16 };
    size_t const n = (size_t)B * T * (size_t)hf_config->dim;
    float *x = malloc(n * sizeof(float)), *y_hf = malloc(n * sizeof(float)), *y_ref = malloc(n * sizeof(float));
    assert_true(x && y_hf && y_ref);
    uint32_t s = 12345u + (uint32_t)l;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    BlockActs *acts = block_acts_create(hf_config, B, T);
    assert_non_null(acts);
    block_forward(hf_config, hf_block, x, y_hf, acts);
    block_acts_free(acts);
    acts = block_acts_create(&fx.l2c.config, B, T);
    assert_non_null(acts);
    block_forward(&fx.l2c.config, &fx.l2c.blocks[l], x, y_ref, acts);
    block_acts_free(acts);
    double const diff = max_abs_diff(y_hf, y_ref, n);
    free(x);
    free(y_hf);
    free(y_ref);
    return diff;
}

/* Writes the variant, opens it, checks weights and logits; returns the content hash. */
static uint64_t run_variant(const Variant *v) {
    char *dir = hf_fixture_tmpdir();
    assert_non_null(dir);
    HfFixtureOptions const opt = {v->dtype, v->shards, v->untied ? fx.lm_head : NULL, v->misalign};
    assert_int_equal(hf_fixture_write(&fx.l2c, &opt, dir), 0);

    double const t0 = seconds();
    Model *m = NULL;
    nq_clear_error();
    if (model_open(dir, "auto", &m) != NQ_OK) fail_msg("%s: %s", v->label, nq_last_error());
    const ModelConfig *c = model_config(m);
    int const L = c->n_layers;
    BlockWeights *blocks = calloc((size_t)L, sizeof *blocks);
    assert_non_null(blocks);
    for (int l = 0; l < L; l++) assert_int_equal(model_block(m, l, &blocks[l]), NQ_OK);
    HeadWeights head;
    assert_int_equal(model_head(m, &head), NQ_OK);
    double const import_ms = 1e3 * (seconds() - t0);
    check_config(c, &fx.l2c.config, v->untied);

    for (int l = 0; l < L; l++) check_block(c, &blocks[l], &fx.l2c.blocks[l], v->dtype);
    size_t const vd = (size_t)c->vocab_size * (size_t)c->dim;
    check_matrix(head.tok_embeddings, fx.l2c.head.tok_embeddings, vd, v->dtype, "embed_tokens");
    check_matrix(head.norm_final, fx.l2c.head.norm_final, (size_t)c->dim, v->dtype, "norm");
    if (v->untied) check_matrix(head.classifier, fx.lm_head, vd, v->dtype, "lm_head");
    else assert_ptr_equal(head.classifier, head.tok_embeddings);

    if (v->dtype == HF_F32) {
        double worst = 0;
        for (int l = 0; l < L; l++) worst = fmax(worst, block_diff(c, &blocks[l], l));
        printf("  %-26s one block, same input, max |y diff| = %.3g\n", v->label, worst);
        assert_true(worst <= 5e-6);
    }
    float *logits = forward(c, &head, blocks);
    double const diff = max_abs_diff(logits, v->untied ? fx.ref_untied : fx.ref_tied, n_logits());
    double max_logit = 0;
    for (size_t i = 0; i < n_logits(); i++) max_logit = fmax(max_logit, fabs(logits[i]));
    printf("  %-26s max|logit| %.1f import %.1f ms, |logit diff| vs llama2.c max %.3g mean %.2g", v->label,
           max_logit, import_ms, diff, mean_abs_diff(logits, v->untied ? fx.ref_untied : fx.ref_tied, n_logits()));
    if (!v->untied) printf(", vs run.c oracle = %.3g", max_abs_diff(logits, fx.oracle, n_logits()));
    printf("\n");
    if (diff > v->logit_bound) fail_msg("%s: logit diff %.3g > %.3g", v->label, diff, v->logit_bound);
    if (v->dtype == HF_F32 && !v->untied) assert_true(max_abs_diff(logits, fx.oracle, n_logits()) <= 1e-4);

    /* The norms alone, as the checkpoint's assembly reads them: the block's own values. */
    size_t const d = (size_t)c->dim;
    float *norms = malloc(2 * d * sizeof *norms);
    assert_non_null(norms);
    for (int l = 0; l < L; l++) {
        assert_int_equal(model_block_norms(m, l, norms, norms + d), NQ_OK);
        assert_memory_equal(norms, blocks[l].attn_norm, d * sizeof *norms);
        assert_memory_equal(norms + d, blocks[l].ffn_norm, d * sizeof *norms);
    }
    assert_int_equal(model_block_norms(m, L, norms, norms + d), NQ_ERR_INPUT);
    free(norms);

    /* Asking again before release gives the same views; a released block comes back identical. */
    BlockWeights same;
    assert_int_equal(model_block(m, 1, &same), NQ_OK);
    assert_memory_equal(&same, &blocks[1], sizeof same);
    model_release_block(m, 1);
    BlockWeights again;
    assert_int_equal(model_block(m, 1, &again), NQ_OK);
    check_block(c, &again, &fx.l2c.blocks[1], v->dtype);

    uint64_t hash = 0;
    assert_int_equal(model_content_hash(m, &hash), NQ_OK);
    for (int l = 0; l < L; l++) model_release_block(m, l);
    free(logits);
    free(blocks);
    model_close(m);
    hf_fixture_rmdir(dir);
    return hash;
}

static void test_variants(void **state) {
    (void)state;
    static const Variant variants[] = {
        {"F32 single tied", HF_F32, 1, 0, 0, F32_BOUND},
        {"F32 single tied misaligned", HF_F32, 1, 0, 1, F32_BOUND},
        {"F32 3 shards untied", HF_F32, 3, 1, 0, F32_BOUND},
        {"F32 3 shards tied", HF_F32, 3, 0, 0, F32_BOUND},
        {"F16 single tied", HF_F16, 1, 0, 0, F16_BOUND},
        {"F16 2 shards untied", HF_F16, 2, 1, 0, F16_BOUND},
        {"BF16 single tied", HF_BF16, 1, 0, 0, BF16_BOUND},
        {"BF16 3 shards untied", HF_BF16, 3, 1, 0, BF16_BOUND},
    };
    uint64_t hashes[sizeof variants / sizeof variants[0]];
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) hashes[i] = run_variant(&variants[i]);
    /* Same content, same hash, however it is split into files; other content, other hash. */
    assert_true(hashes[0] == hashes[1] && hashes[0] == hashes[3]);
    assert_true(hashes[0] != hashes[2] && hashes[0] != hashes[4] && hashes[4] != hashes[6]);
}

/* ---------------------------------------------------------------- bad input */

typedef struct {
    const char *tensor;
    const char *key;
    int a, b;       /* shape or offsets */
    const char *str;
} Edit;

static cJSON *tensor_entry(cJSON *header, const char *name) {
    cJSON *e = cJSON_GetObjectItemCaseSensitive(header, name);
    assert_non_null(e);
    return e;
}

static double offset_of(cJSON *header, const char *name, int which) {
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(tensor_entry(header, name), "data_offsets"), which)->valuedouble;
}

static void set_pair(cJSON *entry, const char *key, double a, double b) {
    cJSON *pair = cJSON_CreateArray();
    cJSON_AddItemToArray(pair, cJSON_CreateNumber(a));
    cJSON_AddItemToArray(pair, cJSON_CreateNumber(b));
    cJSON_ReplaceItemInObjectCaseSensitive(entry, key, pair);
}

static void edit_overlap(cJSON *h, void *ctx) { /* k starts inside q */
    (void)ctx;
    double const q = offset_of(h, "model.layers.0.self_attn.q_proj.weight", 0);
    double const kbytes = offset_of(h, "model.layers.0.self_attn.k_proj.weight", 1) -
                          offset_of(h, "model.layers.0.self_attn.k_proj.weight", 0);
    set_pair(tensor_entry(h, "model.layers.0.self_attn.k_proj.weight"), "data_offsets", q + 256, q + 256 + kbytes);
}

static void edit_past_end(cJSON *h, void *ctx) {
    (void)ctx;
    double const end = offset_of(h, "model.norm.weight", 1);
    set_pair(tensor_entry(h, "model.norm.weight"), "data_offsets", end + 128, end + 128 + 256);
}

static void edit_i64(cJSON *h, void *ctx) { /* same bytes, an integer dtype */
    (void)ctx;
    cJSON *e = tensor_entry(h, "model.layers.1.mlp.up_proj.weight");
    cJSON_ReplaceItemInObjectCaseSensitive(e, "dtype", cJSON_CreateString("I64"));
    set_pair(e, "shape", 172, 32);
}

static void edit_unknown_dtype(cJSON *h, void *ctx) {
    (void)ctx;
    cJSON_ReplaceItemInObjectCaseSensitive(tensor_entry(h, "model.norm.weight"), "dtype", cJSON_CreateString("F12"));
}

static void edit_missing(cJSON *h, void *ctx) {
    (void)ctx;
    cJSON_DeleteItemFromObjectCaseSensitive(h, "model.layers.2.post_attention_layernorm.weight");
}

static void edit_shape(cJSON *h, void *ctx) { /* same bytes, transposed shape */
    (void)ctx;
    set_pair(tensor_entry(h, "model.layers.0.self_attn.k_proj.weight"), "shape", 64, 32);
}

static void edit_size_mismatch(cJSON *h, void *ctx) {
    (void)ctx;
    set_pair(tensor_entry(h, "model.layers.3.mlp.down_proj.weight"), "shape", 64, 171);
}

static void edit_config_hidden(cJSON *root, void *ctx) {
    (void)ctx;
    cJSON_ReplaceItemInObjectCaseSensitive(root, "intermediate_size", cJSON_CreateNumber(171));
}

static void edit_config_layers(cJSON *root, void *ctx) {
    (void)ctx;
    cJSON_DeleteItemFromObjectCaseSensitive(root, "num_hidden_layers");
}

static void edit_config_heads(cJSON *root, void *ctx) {
    (void)ctx;
    cJSON_ReplaceItemInObjectCaseSensitive(root, "num_key_value_heads", cJSON_CreateNumber(3));
}

static void edit_index_drop(cJSON *root, void *ctx) {
    (void)ctx;
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "weight_map"), "model.layers.4.mlp.up_proj.weight");
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

/* model_open must fail with NQ_ERR_INPUT and one line holding every needle. */
static void expect_error(const char *dir, const char *case_name, const char *n1, const char *n2) {
    Model *m = NULL;
    nq_clear_error();
    nq_status const st = model_open(dir, "hf", &m);
    const char *msg = nq_last_error();
    printf("  %-22s -> %s\n", case_name, msg);
    if (st != NQ_ERR_INPUT) fail_msg("%s: status %d, expected NQ_ERR_INPUT (%s)", case_name, st, msg);
    assert_null(m);
    if (!strstr(msg, n1) || !strstr(msg, n2)) fail_msg("%s: \"%s\" lacks \"%s\" or \"%s\"", case_name, msg, n1, n2);
    assert_null(strchr(msg, '\n'));
}

typedef enum { BAD_HEADER_EDIT, BAD_CONFIG_EDIT, BAD_INDEX_EDIT, BAD_PATCH, BAD_CONFIG_TEXT, BAD_INDEX_TEXT, BAD_UNLINK } BadKind;

typedef struct {
    const char *name;
    int shards;
    BadKind kind;
    HfHeaderEdit edit;
    const char *needle_file, *needle_field;
} BadCase;

static void apply(const BadCase *bc, const char *dir) {
    char path[4096];
    const char *st_file = bc->shards > 1 ? "model-00001-of-00003.safetensors" : "model.safetensors";
    switch (bc->kind) {
    case BAD_HEADER_EDIT:
        snprintf(path, sizeof path, "%s/%s", dir, st_file);
        assert_int_equal(hf_fixture_edit_header(path, bc->edit, NULL), 0);
        break;
    case BAD_CONFIG_EDIT:
        snprintf(path, sizeof path, "%s/config.json", dir);
        assert_int_equal(hf_fixture_edit_json(path, bc->edit, NULL), 0);
        break;
    case BAD_INDEX_EDIT:
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        assert_int_equal(hf_fixture_edit_json(path, bc->edit, NULL), 0);
        break;
    case BAD_PATCH: { /* header length far beyond the file */
        snprintf(path, sizeof path, "%s/%s", dir, st_file);
        uint64_t const huge = 1ull << 40;
        assert_int_equal(hf_fixture_patch(path, 0, &huge, 8), 0);
        break;
    }
    case BAD_CONFIG_TEXT:
        snprintf(path, sizeof path, "%s/config.json", dir);
        write_text(path, "{\"hidden_size\": 64, \"intermediate_size\": ");
        break;
    case BAD_INDEX_TEXT:
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        write_text(path, "{\"weight_map\": {\"model.norm.weight\": ]}");
        break;
    case BAD_UNLINK:
        snprintf(path, sizeof path, "%s/model-00002-of-00003.safetensors", dir);
        assert_int_equal(unlink(path), 0);
        break;
    }
}

static void test_bad_inputs(void **state) {
    (void)state;
    static const BadCase cases[] = {
        {"header length", 1, BAD_PATCH, NULL, "model.safetensors", "header length"},
        {"offsets overlap", 1, BAD_HEADER_EDIT, edit_overlap, "model.safetensors", "model.layers.0.self_attn.k_proj.weight"},
        {"offsets past end", 1, BAD_HEADER_EDIT, edit_past_end, "model.safetensors", "\"model.norm.weight\": data_offsets"},
        {"dtype I64", 1, BAD_HEADER_EDIT, edit_i64, "model.safetensors", "model.layers.1.mlp.up_proj.weight\": dtype I64"},
        {"dtype unknown", 1, BAD_HEADER_EDIT, edit_unknown_dtype, "model.safetensors", "\"model.norm.weight\": unknown dtype \"F12\""},
        {"missing tensor", 1, BAD_HEADER_EDIT, edit_missing, "model.safetensors", "model.layers.2.post_attention_layernorm.weight\" missing"},
        {"wrong shape", 1, BAD_HEADER_EDIT, edit_shape, "model.safetensors", "model.layers.0.self_attn.k_proj.weight\": shape"},
        {"bytes vs shape", 1, BAD_HEADER_EDIT, edit_size_mismatch, "model.safetensors", "model.layers.3.mlp.down_proj.weight"},
        {"config vs shapes", 1, BAD_CONFIG_EDIT, edit_config_hidden, "model.safetensors", "model.layers.0.mlp.gate_proj.weight\": shape"},
        {"config field missing", 1, BAD_CONFIG_EDIT, edit_config_layers, "config.json", "num_hidden_layers"},
        {"config inconsistent", 1, BAD_CONFIG_EDIT, edit_config_heads, "config.json", "num_key_value_heads = 3"},
        {"config malformed", 1, BAD_CONFIG_TEXT, NULL, "config.json", "malformed JSON"},
        {"shard offsets overlap", 3, BAD_HEADER_EDIT, edit_overlap, "model-00001-of-00003.safetensors", "k_proj"},
        {"shard missing", 3, BAD_UNLINK, NULL, "model.safetensors.index.json", "model-00002-of-00003.safetensors"},
        {"index drops tensor", 3, BAD_INDEX_EDIT, edit_index_drop, "model.safetensors.index.json", "model.layers.4.mlp.up_proj.weight"},
        {"index malformed", 3, BAD_INDEX_TEXT, NULL, "model.safetensors.index.json", "malformed JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = hf_fixture_tmpdir();
        assert_non_null(dir);
        HfFixtureOptions const opt = {HF_F32, cases[i].shards, NULL, 0};
        assert_int_equal(hf_fixture_write(&fx.l2c, &opt, dir), 0);
        apply(&cases[i], dir);
        expect_error(dir, cases[i].name, cases[i].needle_file, cases[i].needle_field);
        hf_fixture_rmdir(dir);
    }
}

/* A safetensors header that is not JSON, and one too short to hold its length. */
static void test_bad_header_bytes(void **state) {
    (void)state;
    char *dir = hf_fixture_tmpdir();
    assert_non_null(dir);
    HfFixtureOptions const opt = {HF_F32, 1, NULL, 0};
    assert_int_equal(hf_fixture_write(&fx.l2c, &opt, dir), 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(hf_fixture_patch(path, 8, "[", 1), 0);
    expect_error(dir, "header not JSON", "model.safetensors", "JSON");
    assert_int_equal(truncate(path, 5), 0);
    expect_error(dir, "file of 5 bytes", "model.safetensors", "header length");
    hf_fixture_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_conversions),
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_bad_header_bytes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
