/* model_read_config (see model_config_read.h). */
#include "model_config_read.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "model_internal.h"

/* Only the 28-byte header: the weights need not be there (a plan for a model elsewhere). */
static nq_status read_llama2c_header(const char *path, ModelConfig *c) {
    FILE *f = fopen(path, "rb");
    if (!f) return nq_fail(NQ_ERR_INPUT, "%s: cannot open model: %s", path, strerror(errno));
    int32_t h[LLAMA2C_HEADER_INTS];
    size_t const got = fread(h, sizeof h[0], LLAMA2C_HEADER_INTS, f);
    fclose(f);
    if (got != LLAMA2C_HEADER_INTS) return nq_fail(NQ_ERR_INPUT, "%s: shorter than the 28-byte llama2.c header", path);
    return llama2c_config_from_header(path, h, c);
}

nq_status model_read_config(const char *path, const char *format, ModelConfig *c) {
    if (!format || strcmp(format, "auto") == 0) {
        nq_status const st = model_detect_format(path, &format);
        if (st != NQ_OK) return st;
    }
    if (strcmp(format, "llama2c") == 0) return read_llama2c_header(path, c);
    if (strcmp(format, "hf") == 0) return hf_model_read_config(path, c);
    if (strcmp(format, "checkpoint") == 0) {
        CheckpointInfo info;
        nq_status const st = checkpoint_read_info(path, &info);
        if (st != NQ_OK) return st;
        *c = info.config;
        checkpoint_info_free(&info);
        return NQ_OK;
    }
    return nq_fail(NQ_ERR_INPUT, "%s: model format \"%s\", expected auto, llama2c, hf or checkpoint", path, format);
}

nq_status model_read_source_dtype(const char *path, const char *format, char *dtype, size_t size) {
    if (!format || strcmp(format, "auto") == 0) {
        nq_status const st = model_detect_format(path, &format);
        if (st != NQ_OK) return st;
    }
    if (strcmp(format, "hf") == 0) return hf_model_read_torch_dtype(path, dtype, size);
    snprintf(dtype, size, "float32");
    return NQ_OK;
}
