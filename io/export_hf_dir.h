/* The files of a Hugging Face model directory besides the weights and config.json (which
 * export_safetensors writes): what transformers and llama.cpp's converter need to load the
 * model with its tokenizer, and a README saying what the directory holds.
 *
 *   tokenizer.model          the SentencePiece model, copied byte for byte (when the
 *                            tokenizer is one), with tokenizer_config.json (LlamaTokenizer,
 *                            <s>/</s>/<unk>, BOS added, no EOS) and special_tokens_map.json
 *   tokenizer.bin            a llama2.c tokenizer, copied as it is: transformers has no
 *                            reader for it (the README says so; nupes-mpi and llama2.c read it)
 *   generation_config.json   bos_token_id 1, eos_token_id 2 (this tool's fixed ids)
 *   README.md                the source, and for a checkpoint that the weights are its
 *                            dequantized values (method, bits, group size, exponents)
 * Every file is written under a temporary name, fsynced and renamed. */
#ifndef NUPES_EXPORT_HF_DIR_H
#define NUPES_EXPORT_HF_DIR_H

#include "checkpoint.h"
#include "model.h"
#include "status.h"
#include "tokenizer.h"

typedef struct {
    const char *source;           /* the exported model's path */
    const CheckpointInfo *ck;     /* NULL when the source is not a nupes-mpi checkpoint */
    const char *tokenizer_path;   /* NULL: no tokenizer files */
    const Tokenizer *tokenizer;   /* opened from tokenizer_path (for its format) */
    const char *dtype;            /* "f32" | "f16" | "bf16" */
} HfDirInfo;

nq_status export_hf_dir_files(const ModelConfig *c, const char *dir, const HfDirInfo *info);

#endif
