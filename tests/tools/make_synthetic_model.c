/* make_synthetic_model OUT dim hidden layers heads kv_heads vocab seq_len seed
 * Writes a random llama2.c-format model of that shape (tests/support/synth_model.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "synth_model.h"

static int parse_int(const char *s, const char *what, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long const v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "make_synthetic_model: %s = '%s', expected an integer in [%ld, %ld]\n", what, s,
                lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 10) {
        fprintf(stderr, "usage: make_synthetic_model OUT dim hidden layers heads kv_heads vocab seq_len seed\n");
        return 2;
    }
    static const char *const names[8] = {"dim", "hidden", "layers", "heads", "kv_heads", "vocab", "seq_len", "seed"};
    long v[8];
    for (int i = 0; i < 8; i++) {
        long const hi = i == 7 ? 2147483647L : 1L << 20;
        if (parse_int(argv[2 + i], names[i], i == 7 ? 0 : 1, hi, &v[i]) != 0) return 2;
    }
    ModelConfig c = {.dim = (int)v[0], .hidden_dim = (int)v[1], .n_layers = (int)v[2], .n_heads = (int)v[3],
                     .n_kv_heads = (int)v[4], .vocab_size = (int)v[5], .seq_len = (int)v[6],
                     .rope_theta = 10000.0f, .norm_eps = 1e-5f, .rope_style = ROPE_INTERLEAVED,
                     .tied_embeddings = 1};
    nq_status const st = synth_model_write(argv[1], &c, (uint64_t)v[7]);
    if (st != NQ_OK) {
        fprintf(stderr, "make_synthetic_model: %s\n", nq_last_error());
        return st;
    }
    printf("%s: d %d, f %d, %d blocks, %d heads (%d kv), vocab %d, seq_len %d, seed %ld\n", argv[1], c.dim,
           c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len, v[7]);
    return 0;
}
