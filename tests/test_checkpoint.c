/* The checkpoint writer/reader, block result files and the zstd filter, on real HDF5
 * files of a small synthetic model (random codes, scales, exponents; one skipped matrix).
 *
 * With NUPES_WRITE_FIXTURE=DIR set, the program instead writes DIR/plugin.h5 (a small
 * checkpoint), DIR/plugin-expected.f32 (every block matrix dequantized by the C reader,
 * blocks in order, matrices in mat_names order, float32) and DIR/plugin-codes.i8 (the codes
 * of /blocks/0000/wq) for tests/test_h5_plugin.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "block_file.h"
#include "checkpoint.h"
#include "float16.h"
#include "h5sum.h"
#include "h5util.h"
#include "h5zstd.h"
#include "model_file.h"

#define LEVEL 5

/* ------------------------------------------------------------------ fixtures */

static uint64_t rng_state;
static uint32_t rng_next(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}
static float rng_uniform(float lo, float hi) { return lo + (hi - lo) * (float)(rng_next() >> 8) / 16777216.0f; }

static ModelConfig small_config(int tied) {
    ModelConfig c = {.dim = 16, .hidden_dim = 40, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                     .vocab_size = 32, .seq_len = 8, .rope_theta = 10000.0f, .norm_eps = 1e-5f,
                     .rope_style = tied ? ROPE_HALF : ROPE_INTERLEAVED, .tied_embeddings = tied};
    return c;
}

typedef struct {
    ModelConfig c;
    QuantSpec spec;
    float *head;       /* tok [V][d], norm_final [d], output [V][d] */
    float *norms;      /* [L][2][d] */
    BlockResult *blocks;
} Synthetic;

/* Codes mostly 0 and +-1 (a bell-shaped, low-entropy distribution, as real codes are). */
static int8_t random_code(int m) {
    int k = 0;
    while (k < m && (rng_next() & 3) == 0) k++;
    return (int8_t)((rng_next() & 1) ? k : -k);
}

/* Element j of stored array `name` of q, as a float / set from a float (any stored type). */
static float array_get(const QuantMatrix *q, const char *name, size_t j) {
    for (int k = 0; k < q->n_arrays; k++)
        if (!strcmp(q->desc[k].name, name)) return qarray_float(&q->desc[k], q->array[k], j);
    fail_msg("no array %s", name);
    return 0;
}

static void array_set(QuantMatrix *q, const char *name, size_t j, float v) {
    for (int k = 0; k < q->n_arrays; k++)
        if (!strcmp(q->desc[k].name, name)) qarray_set_float(&q->desc[k], q->array[k], j, v);
}

static int8_t *codes_of(const QuantMatrix *q) { return quant_matrix_array(q, "codes"); }

static void fill_result(BlockResult *r) {
    for (int i = 0; i < N_MATS; i++) {
        QuantMatrix *q = &r->mat[i];
        size_t const n = (size_t)q->shape.rows * q->shape.cols;
        int const m = quant_max_code(q->spec.bits);
        if (!q->quantized) {
            for (size_t j = 0; j < n; j++) q->weight[j] = rng_uniform(-1, 1);
            continue;
        }
        for (size_t j = 0; j < n; j++) codes_of(q)[j] = random_code(m);
        for (int j = 0; j < q->shape.rows * q->shape.groups; j++) array_set(q, "scale", (size_t)j, rng_uniform(0.01f, 2));
        for (int j = 0; j < q->shape.n_exponents; j++) array_set(q, "exponent", (size_t)j, rng_uniform(0.3f, 1.4f));
    }
    r->loss_init = rng_uniform(0, 1);
    r->loss_final = rng_uniform(0, 1);
    r->seconds = rng_uniform(0, 100);
}

/* skip: matrix index kept fp32 in block 0 (-1: none). */
static void synthetic_make(Synthetic *s, int tied, QuantSpec spec, int skip) {
    s->c = small_config(tied);
    s->spec = spec;
    size_t const vd = (size_t)s->c.vocab_size * s->c.dim;
    s->head = calloc(2 * vd + s->c.dim, sizeof(float));
    s->norms = calloc((size_t)s->c.n_layers * 2 * s->c.dim, sizeof(float));
    s->blocks = calloc((size_t)s->c.n_layers, sizeof *s->blocks);
    assert_non_null(s->head);
    for (size_t i = 0; i < 2 * vd + s->c.dim; i++) s->head[i] = rng_uniform(-1, 1);
    for (int i = 0; i < s->c.n_layers * 2 * s->c.dim; i++) s->norms[i] = rng_uniform(0.5f, 1.5f);
    for (int l = 0; l < s->c.n_layers; l++) {
        unsigned const mask = l == 0 && skip >= 0 ? 1u << skip : 0;
        assert_int_equal(block_result_alloc(&s->blocks[l], &s->c, spec, l, mask), NQ_OK);
        fill_result(&s->blocks[l]);
    }
}

static void synthetic_free(Synthetic *s) {
    for (int l = 0; l < s->c.n_layers; l++) block_result_free(&s->blocks[l]);
    free(s->blocks);
    free(s->norms);
    free(s->head);
}

static HeadWeights synthetic_head(const Synthetic *s) {
    size_t const vd = (size_t)s->c.vocab_size * s->c.dim;
    HeadWeights h = {s->head, s->head + vd, s->c.tied_embeddings ? s->head : s->head + vd + s->c.dim};
    return h;
}

static const float *attn_norm_of(const Synthetic *s, int l) { return s->norms + (size_t)l * 2 * s->c.dim; }
static const float *ffn_norm_of(const Synthetic *s, int l) { return attn_norm_of(s, l) + s->c.dim; }

static const char *fixture_toml = "[quantization]\nbits = 4\n";

/* Writes blocks whose bit is set in `which` (all: ~0u); status as given (NULL: auto). */
static nq_status write_checkpoint(const Synthetic *s, const char *path, unsigned which,
                                  const char *status) {
    CheckpointMeta meta = {"nupes", s->spec, "fp-0123456789abcdef", fixture_toml, status,
                           "OpenBLAS test, kernel Test", "", 3, 0};
    HeadWeights const h = synthetic_head(s);
    CheckpointWriter *w;
    nq_status st = checkpoint_create(path, &meta, &s->c, &h, LEVEL, &w);
    if (st != NQ_OK) return st;
    for (int l = s->c.n_layers - 1; l >= 0; l--) { /* any order */
        if (!(which & (1u << l))) continue;
        st = checkpoint_write_block(w, &s->blocks[l], attn_norm_of(s, l), ffn_norm_of(s, l));
        if (st != NQ_OK) {
            checkpoint_abort(w);
            return st;
        }
    }
    return checkpoint_commit(w);
}

static char tmpdir[4096];

static int setup_dir(void **state) {
    (void)state;
    const char *base = getenv("NUPES_BUILD_DIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_checkpoint.XXXXXX", base ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state) {
    (void)state;
    DIR *d = opendir(tmpdir);
    if (!d) return 0;
    struct dirent *e;
    char p[8192];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(tmpdir);
    return 0;
}

static void path_in_tmp(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", tmpdir, name);
}

/* Files in tmpdir whose name starts with '.' (atomic_file's temporaries). */
static int count_temporaries(void) {
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* ------------------------------------------------------------------ comparisons */

static void assert_matrix_equal(const QuantMatrix *a, const QuantMatrix *b) {
    assert_int_equal(a->quantized, b->quantized);
    assert_memory_equal(&a->shape, &b->shape, sizeof a->shape);
    size_t const n = (size_t)a->shape.rows * a->shape.cols;
    if (!a->quantized) {
        assert_memory_equal(a->weight, b->weight, n * sizeof(float));
        return;
    }
    assert_int_equal(a->spec.bits, b->spec.bits);
    assert_int_equal(a->spec.group_size, b->spec.group_size);
    assert_int_equal(a->spec.per_row, b->spec.per_row);
    assert_int_equal(a->n_arrays, b->n_arrays);
    for (int k = 0; k < a->n_arrays; k++) {
        assert_string_equal(a->desc[k].name, b->desc[k].name);
        assert_int_equal(a->desc[k].type, b->desc[k].type);
        assert_memory_equal(a->array[k], b->array[k], qarray_count(&a->desc[k]) * qarray_type_size(a->desc[k].type));
    }
    assert_int_equal(qarray_count(&a->desc[0]), n); /* the codes */
}

static void assert_result_equal(const BlockResult *a, const BlockResult *b) {
    assert_int_equal(a->block, b->block);
    for (int i = 0; i < N_MATS; i++) assert_matrix_equal(&a->mat[i], &b->mat[i]);
    assert_true(a->loss_init == b->loss_init && a->loss_final == b->loss_final);
    assert_true(a->seconds == b->seconds);
}

/* The formula of docs/design.md 3.1 in double, element by element: an independent reference. */
static double naive_dequant(const QuantMatrix *q, int r, int col) {
    int const m = quant_max_code(q->spec.bits);
    int const g = q->spec.group_size ? col / q->spec.group_size : 0;
    double const M = array_get(q, "scale", (size_t)r * q->shape.groups + g);
    double const a = array_get(q, "exponent", q->spec.per_row ? (size_t)r : 0);
    int const k = codes_of(q)[(size_t)r * q->shape.cols + col];
    if (k == 0) return 0;
    return M * (k > 0 ? 1 : -1) * pow(fabs((double)k) / m, 1.0 / a);
}

/* model_open(path, "auto") gives the head, the norms and quant_dequantize of the codes. */
static void assert_model_matches(const Synthetic *s, const char *path) {
    Model *m;
    assert_int_equal(model_open(path, "auto", &m), NQ_OK);
    assert_memory_equal(model_config(m), &s->c, sizeof s->c);
    HeadWeights h, want = synthetic_head(s);
    size_t const vd = (size_t)s->c.vocab_size * s->c.dim;
    assert_int_equal(model_head(m, &h), NQ_OK);
    assert_memory_equal(h.tok_embeddings, want.tok_embeddings, vd * sizeof(float));
    assert_memory_equal(h.norm_final, want.norm_final, s->c.dim * sizeof(float));
    assert_memory_equal(h.classifier, want.classifier, vd * sizeof(float));
    if (s->c.tied_embeddings) assert_ptr_equal(h.classifier, h.tok_embeddings);
    float *norms = malloc(2 * (size_t)s->c.dim * sizeof *norms);
    assert_non_null(norms);
    for (int l = 0; l < s->c.n_layers; l++) {
        /* the norms alone (before model_block: this backend loads and releases the block) */
        assert_int_equal(model_block_norms(m, l, norms, norms + s->c.dim), NQ_OK);
        assert_memory_equal(norms, attn_norm_of(s, l), s->c.dim * sizeof(float));
        assert_memory_equal(norms + s->c.dim, ffn_norm_of(s, l), s->c.dim * sizeof(float));
        BlockWeights w;
        assert_int_equal(model_block(m, l, &w), NQ_OK);
        assert_memory_equal(w.attn_norm, attn_norm_of(s, l), s->c.dim * sizeof(float));
        assert_memory_equal(w.ffn_norm, ffn_norm_of(s, l), s->c.dim * sizeof(float));
        for (int i = 0; i < N_MATS; i++) {
            const QuantMatrix *q = &s->blocks[l].mat[i];
            size_t const n = (size_t)q->shape.rows * q->shape.cols;
            float *ref = malloc(n * sizeof(float));
            assert_non_null(ref);
            if (q->quantized) assert_int_equal(quant_matrix_dequantize(q, ref), NQ_OK);
            else memcpy(ref, q->weight, n * sizeof(float));
            assert_memory_equal(w.mat[i], ref, n * sizeof(float));
            for (int r = 0; q->quantized && r < q->shape.rows; r++)
                for (int col = 0; col < q->shape.cols; col++) {
                    double const x = naive_dequant(q, r, col);
                    assert_true(fabs(w.mat[i][(size_t)r * q->shape.cols + col] - x) <= 1e-6 + 1e-5 * fabs(x));
                }
            free(ref);
        }
        model_release_block(m, l);
    }
    free(norms);
    model_close(m);
}

/* ------------------------------------------------------------------ tests */

static void roundtrip(int tied, QuantSpec spec, int skip) {
    Synthetic s;
    synthetic_make(&s, tied, spec, skip);
    char path[8192];
    path_in_tmp(path, sizeof path, tied ? "tied.h5" : "untied.h5");
    assert_int_equal(write_checkpoint(&s, path, ~0u, NULL), NQ_OK);
    assert_int_equal(count_temporaries(), 0);

    CheckpointInfo info;
    assert_int_equal(checkpoint_read_info(path, &info), NQ_OK);
    assert_string_equal(info.status, "complete");
    assert_string_equal(info.method, "nupes");
    assert_string_equal(info.fingerprint, "fp-0123456789abcdef");
    assert_string_equal(info.config_toml, fixture_toml);
    assert_string_equal(info.blas, "OpenBLAS test, kernel Test");
    assert_string_equal(info.blas_note, "");
    assert_int_equal(info.threads_per_rank, 3);
    assert_non_null(strstr(info.dequant, "(|k[r][c]| / m) ** (1 / a)"));
    assert_int_equal(info.format_version, CHECKPOINT_VERSION);
    assert_memory_equal(&info.spec, &spec, sizeof spec);
    assert_memory_equal(&info.config, &s.c, sizeof s.c);
    checkpoint_info_free(&info);

    CheckpointReader *r;
    assert_int_equal(checkpoint_open(path, &r), NQ_OK);
    float attn[64], ffn[64];
    for (int l = 0; l < s.c.n_layers; l++) {
        BlockResult got;
        assert_true(checkpoint_has_block(r, l));
        assert_int_equal(checkpoint_read_block(r, l, &got, attn, ffn), NQ_OK);
        assert_result_equal(&got, &s.blocks[l]);
        assert_memory_equal(attn, attn_norm_of(&s, l), s.c.dim * sizeof(float));
        assert_memory_equal(ffn, ffn_norm_of(&s, l), s.c.dim * sizeof(float));
        block_result_free(&got);
    }
    checkpoint_close(r);
    assert_model_matches(&s, path);
    synthetic_free(&s);
}

static void test_roundtrip_untied_grouped_per_row(void **state) {
    (void)state;
    rng_state = 0x1234567ull;
    roundtrip(0, (QuantSpec){.bits = 4, .group_size = 8, .per_row = 1}, MAT_WV);
}

/* Ragged groups: group_size 6 leaves a last group of 4 in rows of 16 (wq..wo, w1, w3) and of
 * 4 in rows of 40 (w2); scale [rows][ceil(cols / 6)]. */
static void test_roundtrip_ragged_groups(void **state) {
    (void)state;
    rng_state = 0x5a5a5a5ull;
    roundtrip(0, (QuantSpec){.bits = 3, .group_size = 6, .per_row = 0}, MAT_W1);
}

static void test_roundtrip_tied_per_tensor(void **state) {
    (void)state;
    rng_state = 0x7654321ull;
    roundtrip(1, (QuantSpec){.bits = 3, .group_size = 0, .per_row = 0}, MAT_W2);
}

static const QuantSpec spec4 = {.bits = 4, .group_size = 8, .per_row = 0};

static void test_partial_checkpoint(void **state) {
    (void)state;
    rng_state = 42;
    Synthetic s;
    synthetic_make(&s, 0, spec4, -1);
    char path[8192];
    path_in_tmp(path, sizeof path, "partial.h5");
    assert_int_equal(write_checkpoint(&s, path, 1u << 1, NULL), NQ_OK);
    CheckpointReader *r;
    assert_int_equal(checkpoint_open(path, &r), NQ_OK);
    assert_string_equal(checkpoint_info(r)->status, "partial");
    assert_false(checkpoint_has_block(r, 0));
    assert_true(checkpoint_has_block(r, 1));
    BlockResult got;
    nq_clear_error();
    assert_int_equal(checkpoint_read_block(r, 0, &got, NULL, NULL), NQ_ERR_INPUT);
    assert_non_null(strstr(nq_last_error(), "missing group /blocks/0000"));
    checkpoint_close(r);
    /* a partial checkpoint is not a model */
    Model *m;
    nq_clear_error();
    assert_int_equal(model_open(path, "auto", &m), NQ_ERR_INPUT);
    assert_non_null(strstr(nq_last_error(), "partial"));
    /* "complete" with a block missing is refused at commit, leaving nothing behind */
    char path2[8192];
    path_in_tmp(path2, sizeof path2, "claims-complete.h5");
    nq_clear_error();
    assert_int_equal(write_checkpoint(&s, path2, 1u << 0, "complete"), NQ_ERR_RUNTIME);
    assert_non_null(strstr(nq_last_error(), "1 of 2 blocks missing"));
    assert_int_not_equal(access(path2, F_OK), 0);
    assert_int_equal(count_temporaries(), 0);
    nq_clear_error();
    synthetic_free(&s);
}

static void copy_file(const char *from, const char *to, long keep_bytes) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    int ch;
    for (long i = 0; (keep_bytes < 0 || i < keep_bytes) && (ch = fgetc(a)) != EOF; i++) fputc(ch, b);
    fclose(a);
    assert_int_equal(fclose(b), 0);
}

static long file_size(const char *path) {
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

/* Opening and reading every block of path through model_open fails with NQ_ERR_INPUT and
 * a message naming the file and containing `expect`. */
static void assert_model_refused(const char *path, const char *expect) {
    Model *m = NULL;
    nq_clear_error();
    nq_status st = model_open(path, "checkpoint", &m);
    for (int l = 0; st == NQ_OK && l < model_config(m)->n_layers; l++) {
        BlockWeights w;
        st = model_block(m, l, &w);
    }
    model_close(m);
    assert_int_equal(st, NQ_ERR_INPUT);
    print_message("    refused: %s\n", nq_last_error());
    assert_non_null(strstr(nq_last_error(), path));
    assert_non_null(strstr(nq_last_error(), expect));
    nq_clear_error();
}

/* Opens path read-write with plain HDF5 for surgery. */
static hid_t open_rw(const char *path) {
    hid_t const f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    return f;
}

static void test_damaged_checkpoints(void **state) {
    (void)state;
    rng_state = 7;
    Synthetic s;
    synthetic_make(&s, 0, spec4, -1);
    char good[8192], bad[8192];
    path_in_tmp(good, sizeof good, "good.h5");
    path_in_tmp(bad, sizeof bad, "bad.h5");
    assert_int_equal(write_checkpoint(&s, good, ~0u, NULL), NQ_OK);
    long const size = file_size(good);

    /* truncated at several points */
    long const cuts[] = {4, size / 4, size / 2, size - 100};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        copy_file(good, bad, cuts[i]);
        assert_model_refused(bad, i == 0 ? "not an HDF5 file" : "");
    }
    /* not HDF5 at all */
    FILE *f = fopen(bad, "wb");
    fputs("this is no checkpoint\n", f);
    fclose(f);
    assert_model_refused(bad, "not an HDF5 file");

    /* wrong format attribute */
    copy_file(good, bad, -1);
    hid_t h = open_rw(bad);
    assert_true(H5Adelete(h, "format") >= 0);
    assert_int_equal(h5u_attr_write_string(h, bad, "format", "other-tool"), NQ_OK);
    H5Fclose(h);
    assert_model_refused(bad, "attribute format = \"other-tool\", expected nupes-mpi");

    /* wrong version */
    copy_file(good, bad, -1);
    h = open_rw(bad);
    assert_true(H5Adelete(h, "format_version") >= 0);
    assert_int_equal(h5u_attr_write_int(h, bad, "format_version", 4), NQ_OK);
    H5Fclose(h);
    assert_model_refused(bad, "format_version = 4, expected 1..3");

    /* a dataset removed */
    copy_file(good, bad, -1);
    h = open_rw(bad);
    assert_true(H5Ldelete(h, "blocks/0001/wq/codes", H5P_DEFAULT) >= 0);
    H5Fclose(h);
    assert_model_refused(bad, "missing dataset /blocks/0001/wq/codes");

    /* a dataset of the wrong shape */
    copy_file(good, bad, -1);
    h = open_rw(bad);
    assert_true(H5Ldelete(h, "blocks/0000/w2/scale", H5P_DEFAULT) >= 0);
    hid_t g = H5Gopen2(h, "blocks/0000/w2", H5P_DEFAULT);
    float junk[16 * 4] = {0};
    hsize_t const dims[2] = {4, 16};
    assert_int_equal(h5u_write(g, bad, "scale", H5U_F32, 2, dims, junk, 1), NQ_OK);
    H5Gclose(g);
    H5Fclose(h);
    assert_model_refused(bad, "dataset /blocks/0000/w2/scale has shape [4][16], expected [16][5]");
    synthetic_free(&s);
}

/* Codes outside [-m, m] would index past the dequantization table: refused, no crash. */
static void test_out_of_range_codes_refused(void **state) {
    (void)state;
    rng_state = 99;
    Synthetic s;
    synthetic_make(&s, 1, spec4, -1);
    codes_of(&s.blocks[1].mat[MAT_W3])[17] = 100;
    char path[8192];
    path_in_tmp(path, sizeof path, "range.h5");
    assert_int_equal(write_checkpoint(&s, path, ~0u, NULL), NQ_OK);
    assert_model_refused(path, "/blocks/0001/w3/codes[17] = 100, expected a code in [-7, 7]");
    codes_of(&s.blocks[1].mat[MAT_W3])[17] = 0;
    array_set(&s.blocks[0].mat[MAT_WK], "exponent", 0, 0.0f);
    assert_int_equal(write_checkpoint(&s, path, ~0u, NULL), NQ_OK);
    assert_model_refused(path, "/blocks/0000/wk/exponent[0] = 0, expected a finite value > 0");
    synthetic_free(&s);
}

static void read_all(const char *path, char **data, long *size) {
    *size = file_size(path);
    *data = malloc((size_t)*size);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(*data, 1, (size_t)*size, f), (size_t)*size);
    fclose(f);
}

/* A write that fails leaves the earlier checkpoint at the path byte for byte, and no
 * temporary file. */
static void test_failed_write_keeps_earlier_checkpoint(void **state) {
    (void)state;
    rng_state = 5;
    Synthetic s;
    synthetic_make(&s, 0, spec4, -1);
    char path[8192];
    path_in_tmp(path, sizeof path, "keep.h5");
    assert_int_equal(write_checkpoint(&s, path, ~0u, NULL), NQ_OK);
    char *before, *after;
    long n_before, n_after;
    read_all(path, &before, &n_before);

    /* a block whose shapes do not match the model, mid-write */
    Synthetic other;
    synthetic_make(&other, 0, spec4, -1);
    other.blocks[1].mat[MAT_W1].shape.rows = 7;
    nq_clear_error();
    assert_int_equal(write_checkpoint(&other, path, ~0u, NULL), NQ_ERR_RUNTIME);
    assert_non_null(strstr(nq_last_error(), "w1"));
    other.blocks[1].mat[MAT_W1].shape.rows = other.c.hidden_dim;
    assert_int_equal(count_temporaries(), 0);
    read_all(path, &after, &n_after);
    assert_int_equal(n_before, n_after);
    assert_memory_equal(before, after, (size_t)n_before);
    free(after);

    /* a directory that does not exist */
    char missing[8192];
    snprintf(missing, sizeof missing, "%s/no-such-dir/ck.h5", tmpdir);
    nq_clear_error();
    assert_int_equal(write_checkpoint(&s, missing, ~0u, NULL), NQ_ERR_RUNTIME);
    print_message("    refused: %s\n", nq_last_error());
    assert_non_null(strstr(nq_last_error(), "no-such-dir"));
    assert_int_equal(count_temporaries(), 0);

    /* the same content written twice gives the same bytes (no timestamps) */
    char again[8192];
    path_in_tmp(again, sizeof again, "again.h5");
    assert_int_equal(write_checkpoint(&s, again, ~0u, NULL), NQ_OK);
    read_all(again, &after, &n_after);
    assert_int_equal(n_before, n_after);
    assert_memory_equal(before, after, (size_t)n_before);
    free(after);
    free(before);
    nq_clear_error();
    synthetic_free(&other);
    synthetic_free(&s);
}

static void test_block_file_roundtrip(void **state) {
    (void)state;
    rng_state = 11;
    Synthetic s;
    synthetic_make(&s, 0, (QuantSpec){.bits = 5, .group_size = 4, .per_row = 1}, MAT_WO);
    char path[8192];
    path_in_tmp(path, sizeof path, "block-0000.h5");
    assert_int_equal(block_file_save(path, &s.blocks[0], LEVEL), NQ_OK);
    assert_int_equal(count_temporaries(), 0);
    BlockResult got;
    assert_int_equal(block_file_load(path, &s.c, &got), NQ_OK);
    assert_result_equal(&got, &s.blocks[0]);
    assert_false(got.mat[MAT_WO].quantized);
    block_result_free(&got);

    /* shapes validated against the model */
    ModelConfig wider = s.c;
    wider.dim = 32;
    nq_clear_error();
    assert_int_equal(block_file_load(path, &wider, &got), NQ_ERR_INPUT);
    print_message("    refused: %s\n", nq_last_error());
    assert_non_null(strstr(nq_last_error(), "/wq/codes has shape [16][16], expected [32][32]"));
    /* truncated */
    char bad[8192];
    path_in_tmp(bad, sizeof bad, "block-bad.h5");
    copy_file(path, bad, file_size(path) / 2);
    nq_clear_error();
    assert_int_equal(block_file_load(bad, &s.c, &got), NQ_ERR_INPUT);
    assert_non_null(strstr(nq_last_error(), bad));
    /* a checkpoint is not a block file */
    path_in_tmp(bad, sizeof bad, "not-a-block.h5");
    assert_int_equal(write_checkpoint(&s, bad, ~0u, NULL), NQ_OK);
    nq_clear_error();
    assert_int_equal(block_file_load(bad, &s.c, &got), NQ_ERR_INPUT);
    assert_non_null(strstr(nq_last_error(), "expected \"nupes-mpi-block\""));
    nq_clear_error();
    synthetic_free(&s);
}


/* Rewrites a format_version 3 file as version 2 wrote it: every fp16 scale and exponent
 * dataset as float32 (the same values, widened exactly; checksummed), no quantizer
 * attribute, format_version 2, the attribute checksums sealed again. root: "/" for a
 * checkpoint (blocks under /blocks/NNNN), else a done file (matrices at the root). */
static void downgrade_to_version_2(const char *path, const ModelConfig *c, int checkpoint) {
    hid_t const f = open_rw(path);
    for (int l = 0; l < (checkpoint ? c->n_layers : 1); l++) {
        char where[32] = "/";
        if (checkpoint) snprintf(where, sizeof where, "blocks/%04d", l);
        hid_t const g = H5Gopen2(f, where, H5P_DEFAULT);
        if (g < 0) continue; /* missing in a partial checkpoint */
        for (int i = 0; i < N_MATS; i++) {
            static const char *const side[] = {"scale", "exponent"};
            for (int k = 0; k < 2; k++) {
                char name[64];
                snprintf(name, sizeof name, "%s/%s", mat_names[i], side[k]);
                if (!h5u_exists(g, name)) continue;
                int rank = 0;
                hsize_t dims[H5U_MAX_RANK];
                assert_int_equal(h5u_shape(g, path, name, &rank, dims), NQ_OK);
                size_t const n = (size_t)dims[0] * (rank == 2 ? (size_t)dims[1] : 1);
                uint16_t *h = malloc(n * 2);
                float *v = malloc(n * 4);
                assert_true(h && v);
                assert_int_equal(h5u_read_checked(g, path, name, H5U_F16, rank, dims, h), NQ_OK);
                for (size_t j = 0; j < n; j++) v[j] = half_to_float(h[j]);
                assert_true(H5Ldelete(g, name, H5P_DEFAULT) >= 0);
                assert_int_equal(h5u_write(g, path, name, H5U_F32, rank, dims, v, LEVEL), NQ_OK);
                free(h), free(v);
            }
        }
        if (checkpoint) {
            assert_true(H5Adelete(g, "attrs_checksum") >= 0);
            assert_int_equal(h5sum_seal_attrs(g, path), NQ_OK);
        }
        H5Gclose(g);
    }
    assert_true(H5Adelete(f, "quantizer") >= 0);
    assert_true(H5Adelete(f, "format_version") >= 0);
    assert_int_equal(h5u_attr_write_int(f, path, "format_version", 2), NQ_OK);
    assert_true(H5Adelete(f, "attrs_checksum") >= 0);
    assert_int_equal(h5sum_seal_attrs(f, path), NQ_OK);
    assert_true(H5Fclose(f) >= 0);
}

/* A format_version 2 checkpoint (fp32 scales and exponents) is read exactly as written:
 * its arrays described as float32, verified against their checksums, and the model it
 * gives is bit for bit the one of the version 3 file holding the same values. A version
 * 2 done file is refused with a message saying the block is quantized again. */
static void test_format_version_2(void **state) {
    (void)state;
    rng_state = 0xabcdefull;
    Synthetic s;
    QuantSpec const spec = {.bits = 4, .group_size = 6, .per_row = 1};
    synthetic_make(&s, 0, spec, MAT_W3);
    char v3[8192], v2[8192];
    path_in_tmp(v3, sizeof v3, "v3.h5");
    path_in_tmp(v2, sizeof v2, "v2.h5");
    assert_int_equal(write_checkpoint(&s, v3, ~0u, NULL), NQ_OK);
    copy_file(v3, v2, -1);
    downgrade_to_version_2(v2, &s.c, 1);

    CheckpointReader *r;
    assert_int_equal(checkpoint_open(v2, &r), NQ_OK);
    assert_int_equal(checkpoint_info(r)->format_version, 2);
    assert_int_equal(checkpoint_info(r)->spec.quantizer, QUANTIZER_POWER);
    int n_datasets = 0, n_attr_sets = 0;
    assert_int_equal(checkpoint_verify(r, &n_datasets, &n_attr_sets), NQ_OK);
    BlockResult got;
    assert_int_equal(checkpoint_read_block(r, 1, &got, NULL, NULL), NQ_OK);
    const QuantMatrix *q = &got.mat[MAT_WQ], *want = &s.blocks[1].mat[MAT_WQ];
    assert_int_equal(q->desc[1].type, QA_F32);
    assert_int_equal(q->desc[2].type, QA_F32);
    for (size_t j = 0; j < qarray_count(&q->desc[1]); j++)
        assert_true(((const float *)q->array[1])[j] == array_get(want, "scale", j));
    block_result_free(&got);
    checkpoint_close(r);

    Model *m2, *m3;
    assert_int_equal(model_open(v2, "auto", &m2), NQ_OK);
    assert_int_equal(model_open(v3, "auto", &m3), NQ_OK);
    for (int l = 0; l < s.c.n_layers; l++) {
        BlockWeights a, b;
        assert_int_equal(model_block(m2, l, &a), NQ_OK);
        assert_int_equal(model_block(m3, l, &b), NQ_OK);
        for (int i = 0; i < N_MATS; i++)
            assert_memory_equal(a.mat[i], b.mat[i], (size_t)mat_rows(&s.c, i) * mat_cols(&s.c, i) * sizeof(float));
    }
    model_close(m2);
    model_close(m3);

    /* done files: version 2 refused, saying what happens */
    char done[8192];
    path_in_tmp(done, sizeof done, "block-v2.h5");
    assert_int_equal(block_file_save(done, &s.blocks[0], LEVEL), NQ_OK);
    downgrade_to_version_2(done, &s.c, 0);
    nq_clear_error();
    assert_int_equal(block_file_load(done, &s.c, &got), NQ_ERR_INPUT);
    print_message("    refused: %s\n", nq_last_error());
    assert_non_null(strstr(nq_last_error(), "format_version = 2 (fp32 scales and exponents), expected 3 (fp16)"));
    nq_clear_error();
    synthetic_free(&s);
}

/* Every dataset carries filter 32015 at our level; low-entropy codes compress. */
typedef struct {
    int datasets, filtered;
    hsize_t codes_raw, codes_stored;
} FilterCount;

static herr_t count_filters(hid_t obj, const char *name, const H5O_info_t *info, void *data) {
    FilterCount *fc = data;
    if (info->type != H5O_TYPE_DATASET) return 0;
    hid_t const d = H5Dopen2(obj, name, H5P_DEFAULT);
    hid_t const dcpl = H5Dget_create_plist(d);
    unsigned flags, cd[4];
    size_t ncd = 4;
    char fname[64];
    fc->datasets++;
    if (H5Pget_nfilters(dcpl) == 1 &&
        H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, sizeof fname, fname, NULL) == H5Z_FILTER_ZSTD &&
        ncd >= 1 && cd[0] == LEVEL)
        fc->filtered++;
    if (strstr(name, "/codes")) {
        hid_t const space = H5Dget_space(d);
        fc->codes_raw += (hsize_t)H5Sget_simple_extent_npoints(space);
        fc->codes_stored += H5Dget_storage_size(d);
        H5Sclose(space);
    }
    H5Pclose(dcpl);
    H5Dclose(d);
    return 0;
}

static void test_datasets_filtered_and_compressed(void **state) {
    (void)state;
    rng_state = 3;
    Synthetic s;
    synthetic_make(&s, 1, spec4, MAT_WQ);
    char path[8192];
    path_in_tmp(path, sizeof path, "filters.h5");
    assert_int_equal(write_checkpoint(&s, path, ~0u, NULL), NQ_OK);
    hid_t const f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    FilterCount fc = {0};
    assert_true(H5Ovisit2(f, H5_INDEX_NAME, H5_ITER_NATIVE, count_filters, &fc, H5O_INFO_BASIC) >= 0);
    /* head 2 (tied: no output) + per block 2 norms + 7 matrices x 3, minus 2 for the skipped wq */
    assert_int_equal(fc.datasets, 2 + 2 * (2 + 21) - 2);
    assert_int_equal(fc.filtered, fc.datasets);
    assert_false(h5u_exists(f, "model/output"));
    assert_true(h5u_exists(f, "blocks/0000/wq/weight"));
    double const entropy_bits = fc.codes_raw ? 8.0 * fc.codes_stored / fc.codes_raw : 0;
    print_message("    codes: %llu stored bytes for %llu codes (%.2f bits/code)\n",
                  (unsigned long long)fc.codes_stored, (unsigned long long)fc.codes_raw, entropy_bits);
    assert_true(fc.codes_stored > 0 && fc.codes_stored < fc.codes_raw / 2);
    H5Fclose(f);
    synthetic_free(&s);
}

/* ------------------------------------------------------------------ fixture for the .sh */

static int write_plugin_fixture(const char *dir) {
    rng_state = 2024;
    Synthetic s;
    /* groups of 12: ragged (16 = 12 + 4 inputs, 40 = 3 x 12 + 4), as the h5py formula must handle */
    synthetic_make(&s, 0, (QuantSpec){.bits = 4, .group_size = 12, .per_row = 1}, MAT_W2);
    char path[8192], expected[8192];
    snprintf(path, sizeof path, "%s/plugin.h5", dir);
    snprintf(expected, sizeof expected, "%s/plugin-expected.f32", dir);
    Model *m = NULL;
    FILE *out = NULL;
    nq_status st = write_checkpoint(&s, path, ~0u, NULL);
    if (st == NQ_OK) st = model_open(path, "auto", &m);
    if (st == NQ_OK && !(out = fopen(expected, "wb"))) st = NQ_ERR_RUNTIME;
    for (int l = 0; st == NQ_OK && l < s.c.n_layers; l++) {
        BlockWeights w;
        st = model_block(m, l, &w);
        for (int i = 0; st == NQ_OK && i < N_MATS; i++) {
            size_t const n = (size_t)mat_rows(&s.c, i) * mat_cols(&s.c, i);
            if (fwrite(w.mat[i], sizeof(float), n, out) != n) st = NQ_ERR_RUNTIME;
        }
        model_release_block(m, l);
    }
    if (out && fclose(out) != 0) st = NQ_ERR_RUNTIME;
    /* the codes of /blocks/0000/wq, int8 [d][d], for the h5dump check */
    snprintf(expected, sizeof expected, "%s/plugin-codes.i8", dir);
    const QuantMatrix *wq = &s.blocks[0].mat[MAT_WQ];
    size_t const n_wq = (size_t)wq->shape.rows * wq->shape.cols;
    if (st == NQ_OK && atomic_write_file(expected, codes_of(wq), n_wq) != NQ_OK) st = NQ_ERR_RUNTIME;
    model_close(m);
    synthetic_free(&s);
    if (st != NQ_OK) fprintf(stderr, "fixture: %s\n", nq_last_error());
    return st == NQ_OK ? 0 : 1;
}

int main(void) {
    if (h5u_init() != NQ_OK) {
        fprintf(stderr, "%s\n", nq_last_error());
        return 1;
    }
    const char *fixture_dir = getenv("NUPES_WRITE_FIXTURE");
    if (fixture_dir) return write_plugin_fixture(fixture_dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_untied_grouped_per_row),
        cmocka_unit_test(test_roundtrip_ragged_groups),
        cmocka_unit_test(test_roundtrip_tied_per_tensor),
        cmocka_unit_test(test_partial_checkpoint),
        cmocka_unit_test(test_damaged_checkpoints),
        cmocka_unit_test(test_out_of_range_codes_refused),
        cmocka_unit_test(test_format_version_2),
        cmocka_unit_test(test_failed_write_keeps_earlier_checkpoint),
        cmocka_unit_test(test_block_file_roundtrip),
        cmocka_unit_test(test_datasets_filtered_and_compressed),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
