/* A Hugging Face model directory: config.json and model.safetensors.index.json (io/hf_model.c
 * through model_open(dir, "hf")). The directory holds the bundled model converted to two
 * F16 shards (tests/support/hf_fixture.c, made once); input byte 0 picks the file the rest
 * replaces (even: the index, odd: config.json), the other keeps its good content. An
 * accepted model must give readable block and head views. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "hf_fixture.h"
#include "model_file.h"

static char hf_dir[256];
static char hf_paths[2][320];  /* index, config */
static uint8_t *hf_good[2];
static size_t hf_good_size[2];

static void hf_read_good(int i) {
    FILE *f = fopen(hf_paths[i], "rb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fseek(f, 0, SEEK_END) == 0);
    long const n = ftell(f);
    FUZZ_CHECK(n > 0 && fseek(f, 0, SEEK_SET) == 0);
    hf_good[i] = malloc((size_t)n);
    FUZZ_CHECK(hf_good[i] && fread(hf_good[i], 1, (size_t)n, f) == (size_t)n);
    hf_good_size[i] = (size_t)n;
    fclose(f);
}

static void hf_setup(void) {
    if (hf_dir[0]) return;
    char model[4096];
    snprintf(model, sizeof model, "%s/stories260K.bin", fuzz_data_dir());
    L2cWeights w;
    FUZZ_CHECK(l2c_weights_load(model, &w) == 0);
    FUZZ_CHECK(fuzz_make_dir(hf_dir, sizeof hf_dir) == 0);
    HfFixtureOptions const opt = {.dtype = HF_F16, .shards = 2};
    FUZZ_CHECK(hf_fixture_write(&w, &opt, hf_dir) == 0);
    l2c_weights_free(&w);
    snprintf(hf_paths[0], sizeof hf_paths[0], "%s/model.safetensors.index.json", hf_dir);
    snprintf(hf_paths[1], sizeof hf_paths[1], "%s/config.json", hf_dir);
    hf_read_good(0);
    hf_read_good(1);
}

static float hf_touch(Model *m) {
    ModelConfig const *c = model_config(m);
    size_t const d = (size_t)c->dim, V = (size_t)c->vocab_size;
    float sum = 0;
    for (int l = 0; l < c->n_layers; l += c->n_layers - 1 > 0 ? c->n_layers - 1 : 1) {
        BlockWeights w;
        if (model_block(m, l, &w) != NQ_OK) continue;
        sum += w.attn_norm[d - 1] + w.ffn_norm[d - 1];
        for (int i = 0; i < N_MATS; i++)
            sum += w.mat[i][(size_t)mat_rows(c, i) * (size_t)mat_cols(c, i) - 1];
        model_release_block(m, l);
    }
    HeadWeights h;
    if (model_head(m, &h) == NQ_OK)
        sum += h.tok_embeddings[V * d - 1] + h.norm_final[d - 1] + h.classifier[V * d - 1];
    return sum;
}

int fuzz_hf_model(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    hf_setup();
    int const which = data[0] & 1;
    FUZZ_CHECK(fuzz_write_file(hf_paths[which], data + 1, size - 1) == 0);
    Model *m = NULL;
    nq_status const st = model_open(hf_dir, "hf", &m);
    FUZZ_CHECK((st == NQ_OK) == (m != NULL));
    if (st == NQ_OK) fuzz_sink = hf_touch(m);
    model_close(m);
    FUZZ_CHECK(fuzz_write_file(hf_paths[which], hf_good[which], hf_good_size[which]) == 0);
    nq_clear_error();
    return 0;
}

/* Removes the fixture directory (the replay test calls it; the fuzzer never does). */
void fuzz_hf_model_cleanup(void);
void fuzz_hf_model_cleanup(void) {
    if (!hf_dir[0]) return;
    hf_fixture_rmdir(strdup(hf_dir));
    hf_dir[0] = '\0';
    for (int i = 0; i < 2; i++) {
        free(hf_good[i]);
        hf_good[i] = NULL;
    }
}

FUZZ_ENTRY(fuzz_hf_model)
