/* The tokenizer, generation config and README of an exported HF directory
 * (see export_hf_dir.h). */
#include "export_hf_dir.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "read_file.h"

static nq_status write_json(const char *dir, const char *name, cJSON *root) {
    char path[PATH_MAX];
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) return nq_fail(NQ_ERR_RUNTIME, "%s/%s: out of memory", dir, name);
    nq_status st = NQ_OK;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) st = nq_fail(NQ_ERR_INPUT, "%s: path too long", dir);
    if (st == NQ_OK) st = atomic_write_file(path, text, strlen(text));
    cJSON_free(text);
    return st;
}

static nq_status copy_file(const char *from, const char *dir, const char *name) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return nq_fail(NQ_ERR_INPUT, "%s: path too long", dir);
    char *data = NULL;
    size_t size = 0;
    nq_status st = read_file(from, "tokenizer", &data, &size);
    if (st == NQ_OK) st = atomic_write_file(path, data, size);
    free(data);
    return st;
}

/* transformers' LlamaTokenizer over tokenizer.model, with this tool's BOS/EOS/UNK. */
static nq_status write_sentencepiece_configs(const ModelConfig *c, const char *dir) {
    cJSON *cfg = cJSON_CreateObject();
    int ok = cfg != NULL;
    ok = ok && cJSON_AddStringToObject(cfg, "tokenizer_class", "LlamaTokenizer");
    ok = ok && cJSON_AddStringToObject(cfg, "bos_token", "<s>");
    ok = ok && cJSON_AddStringToObject(cfg, "eos_token", "</s>");
    ok = ok && cJSON_AddStringToObject(cfg, "unk_token", "<unk>");
    ok = ok && cJSON_AddTrueToObject(cfg, "add_bos_token");
    ok = ok && cJSON_AddFalseToObject(cfg, "add_eos_token");
    ok = ok && cJSON_AddFalseToObject(cfg, "legacy");
    ok = ok && cJSON_AddNumberToObject(cfg, "model_max_length", c->seq_len);
    ok = ok && cJSON_AddFalseToObject(cfg, "clean_up_tokenization_spaces");
    nq_status st = write_json(dir, "tokenizer_config.json", ok ? cfg : (cJSON_Delete(cfg), NULL));
    if (st != NQ_OK) return st;
    cJSON *map = cJSON_CreateObject();
    ok = map != NULL;
    ok = ok && cJSON_AddStringToObject(map, "bos_token", "<s>");
    ok = ok && cJSON_AddStringToObject(map, "eos_token", "</s>");
    ok = ok && cJSON_AddStringToObject(map, "unk_token", "<unk>");
    return write_json(dir, "special_tokens_map.json", ok ? map : (cJSON_Delete(map), NULL));
}

static nq_status write_generation_config(const char *dir) {
    cJSON *g = cJSON_CreateObject();
    int ok = g != NULL;
    ok = ok && cJSON_AddNumberToObject(g, "bos_token_id", TOKEN_BOS);
    ok = ok && cJSON_AddNumberToObject(g, "eos_token_id", TOKEN_EOS);
    return write_json(dir, "generation_config.json", ok ? g : (cJSON_Delete(g), NULL));
}

static nq_status write_readme(const ModelConfig *c, const char *dir, const HfDirInfo *info) {
    char path[PATH_MAX], text[4096];
    if (snprintf(path, sizeof path, "%s/README.md", dir) >= (int)sizeof path) return nq_fail(NQ_ERR_INPUT, "%s: path too long", dir);
    size_t n = 0;
#define ADD(...) n += (size_t)snprintf(text + n, n < sizeof text ? sizeof text - n : 0, __VA_ARGS__)
    ADD("# LLaMA model exported by nupes-mpi\n\n");
    ADD("Architecture: LlamaForCausalLM, %d layers, hidden size %d, %d heads (%d key/value), vocabulary %d, "
        "context %d.\n\n", c->n_layers, c->dim, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len);
    if (info->ck) {
        const CheckpointInfo *k = info->ck;
        ADD("**These weights are dequantized.** They come from the nupes-mpi checkpoint `%s` (method `%s`, "
            "%d-bit codes, %s, exponent per %s): every quantized matrix is its integer codes mapped back "
            "through the checkpoint's grid and scales, stored here as %s. The values are exactly the "
            "quantized model's (up to %s rounding), but the files are not compressed: this directory is "
            "for tools that read Hugging Face models (transformers, llama.cpp's converter), not a "
            "small model. Embeddings, norms and the output layer were never quantized.\n\n",
            info->source, k->method, k->spec.bits,
            k->spec.group_size > 0 ? "grouped scales" : "one scale per output row",
            k->spec.per_row ? "output row" : "tensor", info->dtype, info->dtype);
        if (k->spec.group_size > 0) ADD("Scale groups: %d consecutive inputs.\n\n", k->spec.group_size);
    } else {
        ADD("Converted from the fp32 model `%s`; weights stored as %s.\n\n", info->source, info->dtype);
    }
    ADD("Files: `config.json`, `model.safetensors` (LLaMA tensor names, q/k rows in Hugging Face's "
        "rotate-half layout), `generation_config.json`");
    if (!info->tokenizer) ADD(". No tokenizer was given to the export: add the model's own.\n");
    else if (strcmp(tokenizer_format(info->tokenizer), "sentencepiece") == 0)
        ADD(", `tokenizer.model` (SentencePiece, copied from `%s`), `tokenizer_config.json`, "
            "`special_tokens_map.json`.\n", info->tokenizer_path);
    else
        ADD(", `tokenizer.bin`: a llama2.c tokenizer copied from `%s`. Hugging Face has no reader "
            "for this format (nupes-mpi and llama2.c read it); give transformers the SentencePiece "
            "`tokenizer.model` it was made from.\n", info->tokenizer_path);
#undef ADD
    if (n >= sizeof text) return nq_fail(NQ_ERR_INPUT, "%s: README text too long (paths too long)", path);
    return atomic_write_file(path, text, n);
}

nq_status export_hf_dir_files(const ModelConfig *c, const char *dir, const HfDirInfo *info) {
    nq_status st = NQ_OK;
    if (info->tokenizer) {
        int const sp = strcmp(tokenizer_format(info->tokenizer), "sentencepiece") == 0;
        st = copy_file(info->tokenizer_path, dir, sp ? "tokenizer.model" : "tokenizer.bin");
        if (st == NQ_OK && sp) st = write_sentencepiece_configs(c, dir);
    }
    if (st == NQ_OK) st = write_generation_config(dir);
    if (st == NQ_OK) st = write_readme(c, dir, info);
    return st;
}
