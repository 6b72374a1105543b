/* check_activations ACTIVATIONS_H5 MODEL TOKENIZER TEXT T SEQUENCES
 *
 * The activations file that a (multi-rank) capture wrote must hold exactly what one
 * process computes: this tokenizes TEXT into SEQUENCES windows of T tokens
 * (text_windows_load, as the job does), runs embedding_forward and then block_forward
 * block by block, one sequence at a time, and compares every level /inputs[l], l = 0..L,
 * with the file bit for bit. It also checks the file's complete attribute.
 * Prints one line per level; exit 0 when everything matches, 1 on a mismatch, 2 on bad
 * input. Runs as a single MPI process (the file is read through parallel HDF5). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activations.h"
#include "h5util.h"
#include "model_file.h"
#include "text_windows.h"
#include "tokenizer.h"
#include "transformer.h"

typedef struct {
    const ModelConfig *c;
    int N, T;
    float *ref;  /* [N][T][d] this process's input of the current level */
    float *file; /* [N][T][d] the same level read from the file */
    float *y;    /* [T][d] block output of one sequence */
    int *seqs;   /* 0..N-1 */
} Check;

/* Compares level l of the file with c->ref; prints the first differing element. */
static int compare_level(Activations *act, Check *k, int l) {
    size_t const n = (size_t)k->N * k->T * k->c->dim;
    if (activations_read(act, ACT_INPUTS, l, k->seqs, k->N, k->file) != NQ_OK) {
        fprintf(stderr, "check_activations: level %d: %s\n", l, nq_last_error());
        return 2;
    }
    size_t differ = 0, first = n;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&k->ref[i], &k->file[i], sizeof(float)) != 0) {
            if (first == n) first = i;
            differ++;
        }
    }
    printf("level %d: %zu/%zu values differ", l, differ, n);
    if (differ) {
        size_t const per_seq = (size_t)k->T * k->c->dim;
        printf(" (first: sequence %zu, element %zu: file %.9g, single process %.9g)", first / per_seq,
               first % per_seq, k->file[first], k->ref[first]);
    }
    printf("\n");
    return differ ? 1 : 0;
}

/* ref <- block l applied to ref, one sequence (B = 1) at a time. */
static int forward_block(Model *m, Check *k, BlockActs *acts, int l) {
    BlockWeights w;
    if (model_block(m, l, &w) != NQ_OK) {
        fprintf(stderr, "check_activations: block %d: %s\n", l, nq_last_error());
        return 2;
    }
    size_t const per_seq = (size_t)k->T * k->c->dim;
    for (int s = 0; s < k->N; s++) {
        block_forward(k->c, &w, k->ref + s * per_seq, k->y, acts);
        memcpy(k->ref + s * per_seq, k->y, per_seq * sizeof(float));
    }
    model_release_block(m, l);
    return 0;
}

static int run_check(Model *m, const int *tokens, Check *k, const char *act_path) {
    const ModelConfig *c = k->c;
    Activations *act = NULL;
    if (activations_open(act_path, MPI_COMM_SELF, c->n_layers, k->N, k->T, c->dim, &act) != NQ_OK) {
        fprintf(stderr, "check_activations: %s\n", nq_last_error());
        return 2;
    }
    int rc = activations_complete(act) ? 0 : 1;
    if (rc) fprintf(stderr, "check_activations: %s: attribute complete is not 1\n", act_path);
    HeadWeights head;
    BlockActs *acts = block_acts_create(c, 1, k->T);
    if (!acts || model_head(m, &head) != NQ_OK) {
        fprintf(stderr, "check_activations: %s\n", nq_last_error());
        rc = 2;
    } else {
        embedding_forward(c, &head, tokens, k->N, k->T, k->ref);
    }
    for (int l = 0; l <= c->n_layers && rc != 2; l++) {
        int const r = compare_level(act, k, l);
        if (r > rc) rc = r;
        if (rc != 2 && l < c->n_layers) rc = forward_block(m, k, acts, l) ? 2 : rc;
    }
    block_acts_free(acts);
    activations_close(act);
    return rc;
}

static int check(const char *act_path, const char *model_path, const char *tok_path, const char *text, int T,
                 int sequences) {
    Model *m = NULL;
    Tokenizer *tok = NULL;
    int *tokens = NULL, N = 0, rc = 2;
    Check k = {0};
    if (h5u_init() != NQ_OK || model_open(model_path, "auto", &m) != NQ_OK ||
        tokenizer_open(tok_path, model_config(m)->vocab_size, &tok) != NQ_OK ||
        text_windows_load(text, tok, T, sequences, &tokens, &N) != NQ_OK) {
        fprintf(stderr, "check_activations: %s\n", nq_last_error());
        goto cleanup;
    }
    k.c = model_config(m);
    k.N = N;
    k.T = T;
    size_t const n = (size_t)N * T * k.c->dim;
    k.ref = nq_calloc(n, sizeof(float), "reference activations");
    k.file = nq_calloc(n, sizeof(float), "file activations");
    k.y = nq_calloc((size_t)T * k.c->dim, sizeof(float), "block output");
    k.seqs = nq_calloc((size_t)N, sizeof(int), "sequence list");
    if (!k.ref || !k.file || !k.y || !k.seqs) {
        fprintf(stderr, "check_activations: %s\n", nq_last_error());
        goto cleanup;
    }
    for (int s = 0; s < N; s++) k.seqs[s] = s;
    printf("%s: %d sequences of %d tokens, %d blocks, d %d\n", act_path, N, T, k.c->n_layers, k.c->dim);
    rc = run_check(m, tokens, &k, act_path);
cleanup:
    free(k.ref);
    free(k.file);
    free(k.y);
    free(k.seqs);
    free(tokens);
    tokenizer_free(tok);
    model_close(m);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: check_activations ACTIVATIONS_H5 MODEL TOKENIZER TEXT T SEQUENCES\n");
        return 2;
    }
    int const T = atoi(argv[5]), sequences = atoi(argv[6]);
    if (T < 2 || sequences < 0) {
        fprintf(stderr, "check_activations: T = %s, SEQUENCES = %s: expected T >= 2, SEQUENCES >= 0\n", argv[5],
                argv[6]);
        return 2;
    }
    MPI_Init(&argc, &argv);
    int const rc = check(argv[1], argv[2], argv[3], argv[4], T, sequences);
    MPI_Finalize();
    if (rc == 0) printf("check_activations: every level matches bit for bit\n");
    return rc;
}
