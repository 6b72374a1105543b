#include "synth_model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "rng.h"

/* Floats written per fwrite: bounds the buffer whatever the model's size. */
#define SYNTH_CHUNK 65536

typedef enum { FILL_NORMAL, FILL_GAIN } FillKind;

/* One tensor of the file: n floats, drawn from its own generator stream. */
typedef struct {
    uint64_t n;
    FillKind kind;
    float std; /* FILL_NORMAL: standard deviation */
} SynthTensor;

/* N(0, 1) by Box-Muller, in double (both values of a pair are not kept: simpler). */
static double normal_draw(Rng *r) {
    double u1 = rng_uniform_double(r);
    double const u2 = rng_uniform_double(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static nq_status write_floats(FILE *f, const char *tmp, const float *x, size_t n) {
    if (fwrite(x, sizeof(float), n, f) != n)
        return nq_fail(NQ_ERR_RUNTIME, "%s: write failed: %s", tmp, strerror(errno));
    return NQ_OK;
}

static nq_status write_tensor(FILE *f, const char *tmp, const SynthTensor *t, Rng *r, float *buf) {
    nq_status st = NQ_OK;
    for (uint64_t at = 0; at < t->n && st == NQ_OK; at += SYNTH_CHUNK) {
        size_t const n = t->n - at < SYNTH_CHUNK ? (size_t)(t->n - at) : SYNTH_CHUNK;
        for (size_t i = 0; i < n; i++) {
            buf[i] = t->kind == FILL_GAIN ? (float)(0.9 + 0.2 * rng_uniform_double(r))
                                          : (float)(normal_draw(r) * t->std);
        }
        st = write_floats(f, tmp, buf, n);
    }
    return st;
}

/* freq_cis_real then freq_cis_imag [seq_len][hs/2], as llama2.c's export wrote them
 * (readers skip them; written for fidelity). */
static nq_status write_rope_tables(FILE *f, const char *tmp, const ModelConfig *c, float *buf) {
    int const half = c->dim / c->n_heads / 2;
    nq_status st = NQ_OK;
    for (int part = 0; part < 2 && st == NQ_OK; part++) {
        for (int pos = 0; pos < c->seq_len && st == NQ_OK; pos++) {
            for (int i = 0; i < half; i++) {
                double const freq = pow(10000.0, -2.0 * i / (2.0 * half));
                buf[i] = (float)(part == 0 ? cos(pos * freq) : sin(pos * freq));
            }
            st = write_floats(f, tmp, buf, (size_t)half);
        }
    }
    return st;
}

/* The tensors of the file in llama2.c order (rope tables excluded). */
static int synth_tensors(const ModelConfig *c, SynthTensor *t) {
    uint64_t const d = (uint64_t)c->dim, f = (uint64_t)c->hidden_dim, L = (uint64_t)c->n_layers;
    uint64_t const dkv = (uint64_t)c->n_kv_heads * (d / (uint64_t)c->n_heads);
    float const sd = 1.0f / sqrtf((float)d), sf = 1.0f / sqrtf((float)f);
    int n = 0;
    t[n++] = (SynthTensor){(uint64_t)c->vocab_size * d, FILL_NORMAL, 0.1f}; /* tok_embeddings */
    t[n++] = (SynthTensor){L * d, FILL_GAIN, 0};                           /* rms_att */
    t[n++] = (SynthTensor){L * d * d, FILL_NORMAL, sd};                    /* wq */
    t[n++] = (SynthTensor){L * dkv * d, FILL_NORMAL, sd};                  /* wk */
    t[n++] = (SynthTensor){L * dkv * d, FILL_NORMAL, sd};                  /* wv */
    t[n++] = (SynthTensor){L * d * d, FILL_NORMAL, 0.5f * sd};             /* wo */
    t[n++] = (SynthTensor){L * d, FILL_GAIN, 0};                           /* rms_ffn */
    t[n++] = (SynthTensor){L * f * d, FILL_NORMAL, sd};                    /* w1 */
    t[n++] = (SynthTensor){L * d * f, FILL_NORMAL, 0.5f * sf};             /* w2 */
    t[n++] = (SynthTensor){L * f * d, FILL_NORMAL, sd};                    /* w3 */
    t[n++] = (SynthTensor){d, FILL_GAIN, 0};                               /* rms_final */
    return n;
}

uint64_t synth_model_floats(const ModelConfig *c) {
    SynthTensor t[16];
    int const n = synth_tensors(c, t);
    uint64_t total = (uint64_t)c->seq_len * (uint64_t)(c->dim / c->n_heads); /* rope tables */
    for (int i = 0; i < n; i++) total += t[i].n;
    return total;
}

nq_status synth_model_write(const char *path, const ModelConfig *c, uint64_t seed) {
    char why[160];
    if (model_config_check(c, why, sizeof why) != 0)
        return nq_fail(NQ_ERR_INPUT, "synthetic model %s: %s", path, why);
    char tmp[4096];
    nq_status st = atomic_tmp_name(path, tmp, sizeof tmp);
    if (st != NQ_OK) return st;
    float *buf = nq_calloc(SYNTH_CHUNK, sizeof(float), "synthetic model chunk");
    FILE *f = buf ? fopen(tmp, "wb") : NULL;
    if (!buf) return NQ_ERR_RUNTIME;
    if (!f) {
        free(buf);
        return nq_fail(NQ_ERR_RUNTIME, "%s: cannot create: %s", tmp, strerror(errno));
    }
    int32_t const header[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads,
                               c->n_kv_heads, c->vocab_size, c->seq_len};
    if (fwrite(header, sizeof header, 1, f) != 1)
        st = nq_fail(NQ_ERR_RUNTIME, "%s: write failed: %s", tmp, strerror(errno));
    SynthTensor t[16];
    int const n = synth_tensors(c, t);
    for (int i = 0; i < n && st == NQ_OK; i++) {
        Rng r;
        rng_seed(&r, seed, (uint64_t)i); /* one stream per tensor */
        st = write_tensor(f, tmp, &t[i], &r, buf);
    }
    if (st == NQ_OK) st = write_rope_tables(f, tmp, c, buf);
    if (fclose(f) != 0 && st == NQ_OK)
        st = nq_fail(NQ_ERR_RUNTIME, "%s: close failed: %s", tmp, strerror(errno));
    free(buf);
    if (st == NQ_OK) return atomic_commit(tmp, path);
    remove(tmp);
    return st;
}
