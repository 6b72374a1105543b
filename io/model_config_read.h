/* A model's shape without its weights: the 28-byte llama2.c header, an HF config.json, or
 * a checkpoint's /model attributes. For planning a job (mpi/plan.h) on a machine that has
 * only config.json of a 7B model. */
#ifndef NUPES_MODEL_CONFIG_READ_H
#define NUPES_MODEL_CONFIG_READ_H

#include "model.h"
#include "status.h"

/* format: "auto" (as model_open: a directory is "hf", an HDF5 file a checkpoint, else
 * "llama2c"), "llama2c", "hf" or "checkpoint". Errors (NQ_ERR_INPUT) name the file and
 * the field, as model_open's do. The file sizes are not checked. */
nq_status model_read_config(const char *path, const char *format, ModelConfig *c);

/* The precision its weights are stored in, as Hugging Face names it: "float32",
 * "float16" or "bfloat16" (an HF directory's config.json torch_dtype; llama2.c files and
 * checkpoints hold fp32). For the plan's sizes of fp32 copies (skipped matrices, the head). */
nq_status model_read_source_dtype(const char *path, const char *format, char *dtype, size_t size);

#endif
