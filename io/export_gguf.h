/* Exporting a model as a GGUF file that llama.cpp loads as it is (architecture "llama"):
 *
 *   metadata   general.architecture = "llama", general.name, general.file_type,
 *              general.quantization_version, llama.{context_length, embedding_length,
 *              block_count, feed_forward_length, rope.dimension_count, attention.head_count,
 *              attention.head_count_kv, attention.layer_norm_rms_epsilon, rope.freq_base,
 *              vocab_size}, tokenizer.ggml.{model = "llama", tokens, scores, token_type,
 *              bos_token_id, eos_token_id, unknown_token_id, add_bos_token, add_eos_token}
 *   tensors    token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm,
 *              ffn_gate, ffn_down, ffn_up}, output_norm, output (untied models only);
 *              norms F32, matrices in the requested type (or its fallback).
 *
 * llama.cpp's LLaMA graph rotates adjacent pairs (2i, 2i+1) of each head (rope type NORM,
 * Meta's layout; its converter permutes HF's q/k rows into it): an interleaved model is
 * written as it is, a "half" (HF) model has its q/k rows un-permuted.
 *
 * The tokenizer (llama2.c tokenizer.bin or SentencePiece tokenizer.model) is stored in
 * SentencePiece spelling with its scores and token kinds. The file is written under a
 * temporary name, fsynced and renamed.
 *
 * IQ4_NL / IQ4_XS matrices come from a checkpoint learned on those grids: each row's
 * stored indices and scales become its blocks (ggml_encode_iq4nl_row / _iq4xs_row), so
 * llama.cpp computes the very weights that were learned. Rows that are not whole blocks
 * fall back as llama.cpp's own quantizer does (IQ4_XS -> IQ4_NL -> F16, the F16 from the
 * decoded weights), and so do matrices the checkpoint kept in fp32 (quantization.skip). */
#ifndef NUPES_EXPORT_GGUF_H
#define NUPES_EXPORT_GGUF_H

#include <stdio.h>

#include "ggml_types.h"
#include "model_file.h"
#include "status.h"
#include "tokenizer.h"

typedef struct {
    GgmlType type;           /* block matrices; IQ4_NL / IQ4_XS only with codes_from */
    const char *codes_from;  /* a checkpoint learned on that grid (quantization.grid): its
                                stored codes and scales are written as they are, never
                                requantized; NULL for the float types */
    GgmlType embedding_type; /* token_embd */
    GgmlType output_type;    /* output (untied models) */
    const char *name;        /* general.name */
    FILE *report;            /* one line per tensor that falls back to another type; NULL: silent */
} GgufExportOptions;

/* Writes m with tokenizer tok (of m's vocabulary size) to path. Errors: NQ_ERR_INPUT
 * (the model does not fit the format), NQ_ERR_RUNTIME (I/O, memory). */
nq_status export_gguf(Model *m, const Tokenizer *tok, const char *path, const GgufExportOptions *o);

/* llama.cpp's general.file_type (llama_ftype) for files whose matrices are mostly `type`:
 * ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q8_0 7, MOSTLY_IQ4_NL 25, MOSTLY_IQ4_XS 30. */
unsigned gguf_file_type(GgmlType type);

#endif
