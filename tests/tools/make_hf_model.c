/* make_hf_model IN.bin OUTDIR [f32|f16|bf16] [--untied]
 *
 * Converts a llama2.c model to a Hugging Face directory with tests/support/hf_fixture.c
 * (config.json + model.safetensors, q/k rows permuted as convert_llama_weights_to_hf.py
 * does). --untied writes lm_head.weight (a copy of the embeddings) and
 * tie_word_embeddings = false. OUTDIR must exist. */
#include <stdio.h>
#include <string.h>

#include "hf_fixture.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: make_hf_model IN.bin OUTDIR [f32|f16|bf16] [--untied]\n");
        return 2;
    }
    HfFixtureOptions opt = {.dtype = HF_F32};
    int untied = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "f32") == 0) opt.dtype = HF_F32;
        else if (strcmp(argv[i], "f16") == 0) opt.dtype = HF_F16;
        else if (strcmp(argv[i], "bf16") == 0) opt.dtype = HF_BF16;
        else if (strcmp(argv[i], "--untied") == 0) untied = 1;
        else {
            fprintf(stderr, "make_hf_model: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    L2cWeights w;
    if (l2c_weights_load(argv[1], &w) != 0) return 2;
    if (untied) opt.lm_head = w.head.tok_embeddings;
    int const rc = hf_fixture_write(&w, &opt, argv[2]);
    l2c_weights_free(&w);
    if (rc != 0) fprintf(stderr, "make_hf_model: writing %s failed\n", argv[2]);
    return rc == 0 ? 0 : 3;
}
