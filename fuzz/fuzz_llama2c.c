/* llama2.c checkpoint: header, sizes and the views into the mapping (io/llama2c.c through
 * model_open). When a file is accepted, the last float of every tensor must be readable;
 * a tensor holding NaN or Inf is refused when it is handed out (NQ_ERR_INPUT, named). */
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "model_file.h"

static float llama2c_touch(Model *m) {
    ModelConfig const *c = model_config(m);
    size_t const d = (size_t)c->dim, V = (size_t)c->vocab_size;
    float sum = 0;
    for (int l = 0; l < c->n_layers; l++) {
        BlockWeights w;
        nq_status const st = model_block(m, l, &w);
        FUZZ_CHECK(st == NQ_OK || (st == NQ_ERR_INPUT && strstr(nq_last_error(), "expected a finite weight")));
        if (st != NQ_OK) return sum;
        sum += w.attn_norm[d - 1] + w.ffn_norm[d - 1];
        for (int i = 0; i < N_MATS; i++)
            sum += w.mat[i][(size_t)mat_rows(c, i) * (size_t)mat_cols(c, i) - 1];
        model_release_block(m, l);
    }
    HeadWeights h;
    nq_status const st = model_head(m, &h);
    FUZZ_CHECK(st == NQ_OK || (st == NQ_ERR_INPUT && strstr(nq_last_error(), "expected a finite weight")));
    if (st != NQ_OK) return sum;
    sum += h.tok_embeddings[V * d - 1] + h.norm_final[d - 1] + h.classifier[V * d - 1];
    uint64_t hash = 0;
    FUZZ_CHECK(model_content_hash(m, &hash) == NQ_OK);
    return sum + (float)(hash & 1);
}

int fuzz_llama2c(const uint8_t *data, size_t size) {
    char path[128];
    if (fuzz_write_temp(data, size, ".bin", path, sizeof path) != 0) return 0;
    Model *m = NULL;
    nq_status const st = model_open(path, "llama2c", &m);
    FUZZ_CHECK((st == NQ_OK) == (m != NULL));
    FUZZ_CHECK(st == NQ_OK || *nq_last_error() != '\0');
    if (st == NQ_OK) fuzz_sink = llama2c_touch(m);
    model_close(m);
    unlink(path);
    nq_clear_error();
    return 0;
}

FUZZ_ENTRY(fuzz_llama2c)
