/* The whole forward pass (llama2.c reader + transformer) against llama2.c run.c's logits
 * (data/reference/stories260K-ref-logits.bin): max |diff| < 1e-4 at every position. Also
 * the reader's refusals and its content hash. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "model_file.h"
#include "status.h"
#include "transformer.h"

static const char *data_path(const char *name, char *buf, size_t size) {
    const char *dir = getenv("NUPES_DATA");
    snprintf(buf, size, "%s/%s", dir ? dir : "data", name);
    return buf;
}

typedef struct {
    int nseq, T, V;
    int32_t *tokens; /* [nseq][T] */
    float *logits;   /* [nseq][T][V] */
} Oracle;

static Oracle oracle_load(void) {
    char path[4096];
    FILE *f = fopen(data_path("reference/stories260K-ref-logits.bin", path, sizeof path), "rb");
    assert_non_null(f);
    int32_t hdr[4];
    assert_int_equal(fread(hdr, sizeof hdr[0], 4, f), 4);
    assert_int_equal(hdr[0], 0x4e555046);
    Oracle o = {hdr[1], hdr[2], hdr[3], NULL, NULL};
    size_t const TV = (size_t)o.T * o.V;
    o.tokens = malloc((size_t)o.nseq * o.T * sizeof *o.tokens);
    o.logits = malloc((size_t)o.nseq * TV * sizeof *o.logits);
    for (int s = 0; s < o.nseq; s++) {
        assert_int_equal(fread(o.tokens + (size_t)s * o.T, 4, (size_t)o.T, f), (size_t)o.T);
        assert_int_equal(fread(o.logits + (size_t)s * TV, 4, TV, f), TV);
    }
    char extra;
    assert_int_equal(fread(&extra, 1, 1, f), 0); /* nothing after the last sequence */
    fclose(f);
    return o;
}

/* Runs the oracle's sequences B at a time and returns the largest |diff| over everything;
 * asserts each position is within tolerance. */
static double run_oracle(Model *m, const Oracle *o, int B) {
    ModelConfig const *c = model_config(m);
    HeadWeights head;
    BlockWeights *blocks = calloc((size_t)c->n_layers, sizeof *blocks);
    assert_int_equal(model_head(m, &head), NQ_OK);
    for (int l = 0; l < c->n_layers; l++) assert_int_equal(model_block(m, l, &blocks[l]), NQ_OK);
    Transformer *tr = transformer_create(c, B, o->T);
    assert_non_null(tr);
    size_t const TV = (size_t)o->T * o->V;
    float *logits = malloc((size_t)B * TV * sizeof *logits);
    double worst = 0;
    for (int s0 = 0; s0 + B <= o->nseq; s0 += B) {
        transformer_forward(tr, &head, blocks, o->tokens + (size_t)s0 * o->T, logits);
        for (int b = 0; b < B; b++) {
            for (int p = 0; p < o->T; p++) {
                const float *got = logits + (size_t)b * TV + (size_t)p * o->V;
                const float *want = o->logits + (size_t)(s0 + b) * TV + (size_t)p * o->V;
                double pos_worst = 0;
                for (int v = 0; v < o->V; v++) pos_worst = fmax(pos_worst, fabs((double)got[v] - want[v]));
                if (!(pos_worst < 1e-4)) printf("sequence %d position %d: max |diff| %g\n", s0 + b, p, pos_worst);
                assert_true(pos_worst < 1e-4);
                worst = fmax(worst, pos_worst);
            }
        }
    }
    free(logits);
    transformer_free(tr);
    free(blocks);
    return worst;
}

static void test_forward_matches_run_c(void **state) {
    (void)state;
    char path[4096];
    Model *m = NULL;
    nq_status const st = model_open(data_path("stories260K.bin", path, sizeof path), "auto", &m);
    if (st != NQ_OK) printf("%s\n", nq_last_error());
    assert_int_equal(st, NQ_OK);
    ModelConfig const *c = model_config(m);
    assert_int_equal(c->dim, 64);
    assert_int_equal(c->hidden_dim, 172);
    assert_int_equal(c->n_layers, 5);
    assert_int_equal(c->n_heads, 8);
    assert_int_equal(c->n_kv_heads, 4);
    assert_int_equal(c->vocab_size, 512);
    assert_int_equal(c->seq_len, 512);
    assert_int_equal(c->tied_embeddings, 1);
    assert_int_equal(c->rope_style, ROPE_INTERLEAVED);
    Oracle o = oracle_load();
    assert_int_equal(o.V, c->vocab_size);
    double const one = run_oracle(m, &o, 1);
    double const all = run_oracle(m, &o, o.nseq);
    printf("oracle: %d sequences x %d tokens; max |diff| %.3g (batch 1), %.3g (batch %d)\n", o.nseq, o.T,
           one, all, o.nseq);
    free(o.tokens);
    free(o.logits);
    model_close(m);
}

/* The views point at the right bytes: spot-check against offsets computed here. */
static void test_views_and_hash(void **state) {
    (void)state;
    char path[4096];
    data_path("stories260K.bin", path, sizeof path);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long const size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *file = malloc((size_t)size);
    assert_int_equal(fread(file, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    const float *w = (const float *)(file + 28);
    size_t const d = 64, f_ = 172, L = 5, V = 512, dkv = 32;
    size_t const wq = V * d + L * d, w2 = wq + L * (2 * d * d + 2 * dkv * d) + L * d + L * f_ * d;
    size_t const rms_final = w2 + 2 * L * d * f_;
    Model *m = NULL;
    assert_int_equal(model_open(path, "llama2c", &m), NQ_OK);
    BlockWeights b;
    HeadWeights h;
    assert_int_equal(model_block(m, 3, &b), NQ_OK);
    assert_int_equal(model_head(m, &h), NQ_OK);
    assert_memory_equal(b.mat[MAT_WQ], w + wq + 3 * d * d, d * d * sizeof(float));
    assert_memory_equal(b.mat[MAT_W2], w + w2 + 3 * d * f_, d * f_ * sizeof(float));
    assert_memory_equal(b.attn_norm, w + V * d + 3 * d, d * sizeof(float));
    assert_memory_equal(h.norm_final, w + rms_final, d * sizeof(float));
    assert_ptr_equal(h.classifier, h.tok_embeddings);
    uint64_t h1 = 0, h2 = 0;
    assert_int_equal(model_content_hash(m, &h1), NQ_OK);
    assert_int_equal(model_content_hash(m, &h2), NQ_OK);
    assert_true(h1 == h2 && h1 != 0);
    model_release_block(m, 3);
    model_close(m);
    free(file);
}

/* vocab_size < 0: the classifier follows the RoPE tables; a changed byte changes the hash. */
static void test_untied_classifier(void **state) {
    (void)state;
    char path[4096];
    FILE *f = fopen(data_path("stories260K.bin", path, sizeof path), "rb");
    assert_non_null(f);
    size_t const size = 1056540, extra = 512 * 64 * sizeof(float);
    char *file = calloc(1, size + extra);
    assert_int_equal(fread(file, 1, size, f), size);
    fclose(f);
    int32_t const untied = -512;
    memcpy(file + 5 * 4, &untied, 4);
    float *cls = (float *)(file + size);
    for (size_t i = 0; i < extra / sizeof(float); i++) cls[i] = (float)i * 0.25f;
    char tmp[] = "/tmp/nupes-untied-XXXXXX";
    int const fd = mkstemp(tmp);
    assert_true(fd >= 0);
    FILE *out = fdopen(fd, "wb");
    assert_int_equal(fwrite(file, 1, size + extra, out), size + extra);
    fclose(out);
    Model *m = NULL;
    assert_int_equal(model_open(tmp, "auto", &m), NQ_OK);
    assert_int_equal(model_config(m)->tied_embeddings, 0);
    assert_int_equal(model_config(m)->vocab_size, 512);
    HeadWeights h;
    assert_int_equal(model_head(m, &h), NQ_OK);
    assert_memory_equal(h.classifier, cls, extra);
    assert_memory_equal(h.tok_embeddings, file + 28, extra);
    uint64_t hash_a = 0, hash_b = 0;
    assert_int_equal(model_content_hash(m, &hash_a), NQ_OK);
    model_close(m);
    out = fopen(tmp, "r+b");
    fseek(out, (long)(size + 100), SEEK_SET);
    fputc(0x55, out);
    fclose(out);
    assert_int_equal(model_open(tmp, "auto", &m), NQ_OK);
    assert_int_equal(model_content_hash(m, &hash_b), NQ_OK);
    assert_true(hash_a != hash_b);
    model_close(m);
    /* The tied header on the untied file: the size no longer matches. */
    memcpy(file + 5 * 4, &(int32_t){512}, 4);
    out = fopen(tmp, "wb");
    assert_int_equal(fwrite(file, 1, size + extra, out), size + extra);
    fclose(out);
    nq_clear_error();
    assert_int_equal(model_open(tmp, "auto", &m), NQ_ERR_INPUT);
    assert_null(m);
    printf("refused: %s\n", nq_last_error());
    assert_non_null(strstr(nq_last_error(), "bytes, the header implies 1056540"));
    unlink(tmp);
    free(file);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_run_c),
        cmocka_unit_test(test_views_and_hash),
        cmocka_unit_test(test_untied_classifier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
