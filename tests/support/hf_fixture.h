/* Test fixture: the bundled llama2.c model (data/stories260K.bin) read with plain fread,
 * and written out as a Hugging Face directory (config.json + safetensors) the way
 * convert_llama_weights_to_hf.py would: q/k rows permuted for the "half" rope, in F32,
 * F16 or BF16, in one file or in shards with model.safetensors.index.json. */
#ifndef NUPES_TEST_HF_FIXTURE_H
#define NUPES_TEST_HF_FIXTURE_H

#include <cjson/cJSON.h>

#include "model.h"

/* The llama2.c model's fp32 weights, in llama2.c layout (interleaved rope). */
typedef struct {
    ModelConfig config;
    float *data;          /* every weight, owned */
    HeadWeights head;     /* views into data */
    BlockWeights *blocks; /* [L], views into data */
} L2cWeights;

/* 0 on success; prints the reason and returns -1 on a bad file. */
int l2c_weights_load(const char *path, L2cWeights *w);
void l2c_weights_free(L2cWeights *w);

typedef enum { HF_F32, HF_F16, HF_BF16 } HfFixtureDtype;

typedef struct {
    HfFixtureDtype dtype;
    int shards;           /* <= 1: model.safetensors; else that many shards + index.json */
    const float *lm_head; /* [V][d] untied classifier, or NULL for tied embeddings */
    int misalign;         /* 1: header length not a multiple of 4 (F32 cannot be used in place) */
} HfFixtureOptions;

/* Writes config.json and the safetensors into the existing directory dir. 0 on success. */
int hf_fixture_write(const L2cWeights *w, const HfFixtureOptions *opt, const char *dir);

/* convert_llama_weights_to_hf.py's permute(w, n_heads): per head, rows viewed as
 * [hs/2][2] become [2][hs/2]. w, out: [rows][cols], rows = n_heads * hs. */
void hf_permute_rows(const float *w, int n_heads, int rows, int cols, float *out);
/* The inverse. */
void hf_unpermute_rows(const float *w, int n_heads, int rows, int cols, float *out);

/* A fresh directory under $TMPDIR (or /tmp); malloc'd path. Remove it with hf_fixture_rmdir
 * (removes the files in it, then the directory). */
char *hf_fixture_tmpdir(void);
void hf_fixture_rmdir(char *dir); /* also frees dir */

/* Rewrites a safetensors file with its JSON header changed by edit (same data bytes). */
typedef void (*HfHeaderEdit)(cJSON *header, void *ctx);
int hf_fixture_edit_header(const char *path, HfHeaderEdit edit, void *ctx);

/* Rewrites a JSON file (config.json, index.json) changed by edit. */
int hf_fixture_edit_json(const char *path, HfHeaderEdit edit, void *ctx);

/* Overwrites len bytes at offset of an existing file. */
int hf_fixture_patch(const char *path, long offset, const void *bytes, size_t len);

#endif
