/* check_activations ACTIVATIONS_H5 MODEL TOKENIZER TEXT T SEQUENCES [CHUNK]
 *
 * The activations file that a (multi-rank) capture wrote must hold exactly what one
 * process computes: this tokenizes TEXT into SEQUENCES windows of T tokens
 * (text_windows_load, as the job does), runs embedding_forward and then block_forward
 * block by block, CHUNK sequences per call (default 1, as the capture does), and compares
 * every level /inputs[l], l = 0..L, with the file bit for bit. It also checks the file's
 * complete attribute.
 *
 * Why CHUNK matters: a row's result from cblas_sgemm does not depend on the other rows
 * for ordinary sizes, but OpenBLAS sends tiny products (e.g. d 48, T 48, one sequence)
 * to its small-matrix kernels, which round differently from a batch of several sequences.
 *
 * Prints one line per level; exit 0 when everything matches, 1 on a mismatch, 2 on bad
 * input. The file is read with plain (serial) HDF5 calls, not the project's reader. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_file.h"
#include "text_windows.h"
#include "tokenizer.h"
#include "transformer.h"

typedef struct {
    const ModelConfig *c;
    int N, T;
    float *ref;  /* [N][T][d] this process's input of the current level */
    float *file; /* [N][T][d] the same level read from the file */
    int chunk;   /* sequences per block_forward call */
    float *y;    /* [chunk][T][d] block output */
} Check;

/* file [N][T][d] <- /inputs[l] (a hyperslab of the [L+1][N][T][d] dataset). */
static int read_level(hid_t dset, const Check *k, int l, float *file) {
    hsize_t const start[4] = {(hsize_t)l, 0, 0, 0};
    hsize_t const count[4] = {1, (hsize_t)k->N, (hsize_t)k->T, (hsize_t)k->c->dim};
    hid_t const space = H5Dget_space(dset);
    hid_t const mem = H5Screate_simple(4, count, NULL);
    int ok = space >= 0 && mem >= 0 && H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
             H5Dread(dset, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, file) >= 0;
    if (mem >= 0) H5Sclose(mem);
    if (space >= 0) H5Sclose(space);
    if (!ok) fprintf(stderr, "check_activations: cannot read /inputs level %d\n", l);
    return ok ? 0 : 2;
}

/* Compares level l of the file with k->ref; prints the first differing element. */
static int compare_level(hid_t dset, Check *k, int l) {
    size_t const n = (size_t)k->N * k->T * k->c->dim;
    if (read_level(dset, k, l, k->file) != 0) return 2;
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

/* ref <- block l applied to ref, k->chunk sequences at a time. */
static int forward_block(Model *m, Check *k, int l) {
    BlockWeights w;
    if (model_block(m, l, &w) != NQ_OK) {
        fprintf(stderr, "check_activations: block %d: %s\n", l, nq_last_error());
        return 2;
    }
    size_t const per_seq = (size_t)k->T * k->c->dim;
    int rc = 0;
    for (int s = 0; s < k->N && rc == 0; s += k->chunk) {
        int const b = k->N - s < k->chunk ? k->N - s : k->chunk;
        BlockActs *acts = block_acts_create(k->c, b, k->T);
        if (!acts) {
            fprintf(stderr, "check_activations: %s\n", nq_last_error());
            rc = 2;
            break;
        }
        block_forward(k->c, &w, k->ref + s * per_seq, k->y, acts);
        memcpy(k->ref + s * per_seq, k->y, (size_t)b * per_seq * sizeof(float));
        block_acts_free(acts);
    }
    model_release_block(m, l);
    return rc;
}

/* Opens /inputs and checks its shape [L+1][N][T][d] and the complete attribute. */
static int open_inputs(hid_t file, const Check *k, const char *path, hid_t *dset) {
    *dset = H5Dopen2(file, "/inputs", H5P_DEFAULT);
    if (*dset < 0) {
        fprintf(stderr, "check_activations: %s: no dataset /inputs\n", path);
        return 2;
    }
    hsize_t dims[4] = {0};
    hid_t const space = H5Dget_space(*dset);
    int const rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (rank == 4) H5Sget_simple_extent_dims(space, dims, NULL);
    if (space >= 0) H5Sclose(space);
    if (rank != 4 || dims[0] != (hsize_t)k->c->n_layers + 1 || dims[1] != (hsize_t)k->N ||
        dims[2] != (hsize_t)k->T || dims[3] != (hsize_t)k->c->dim) {
        fprintf(stderr, "check_activations: %s: /inputs has shape [%llu][%llu][%llu][%llu], expected [%d][%d][%d][%d]\n",
                path, (unsigned long long)dims[0], (unsigned long long)dims[1], (unsigned long long)dims[2],
                (unsigned long long)dims[3], k->c->n_layers + 1, k->N, k->T, k->c->dim);
        return 2;
    }
    int complete = 0;
    hid_t const attr = H5Aopen(file, "complete", H5P_DEFAULT);
    if (attr < 0 || H5Aread(attr, H5T_NATIVE_INT, &complete) < 0) complete = 0;
    if (attr >= 0) H5Aclose(attr);
    if (complete != 1) {
        fprintf(stderr, "check_activations: %s: attribute complete is not 1\n", path);
        return 1;
    }
    return 0;
}

static int run_check(Model *m, const int *tokens, Check *k, const char *act_path) {
    const ModelConfig *c = k->c;
    hid_t const file = H5Fopen(act_path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        fprintf(stderr, "check_activations: %s: cannot open as HDF5\n", act_path);
        return 2;
    }
    hid_t dset = -1;
    int rc = open_inputs(file, k, act_path, &dset);
    HeadWeights head;
    if (rc != 2 && model_head(m, &head) != NQ_OK) {
        fprintf(stderr, "check_activations: %s\n", nq_last_error());
        rc = 2;
    }
    if (rc != 2) embedding_forward(c, &head, tokens, k->N, k->T, k->ref);
    for (int l = 0; l <= c->n_layers && rc != 2; l++) {
        int const r = compare_level(dset, k, l);
        if (r > rc) rc = r;
        if (rc != 2 && l < c->n_layers) rc = forward_block(m, k, l) ? 2 : rc;
    }
    if (dset >= 0) H5Dclose(dset);
    H5Fclose(file);
    return rc;
}

static int check(const char *act_path, const char *model_path, const char *tok_path, const char *text, int T,
                 int sequences, int chunk) {
    Model *m = NULL;
    Tokenizer *tok = NULL;
    int *tokens = NULL, N = 0, rc = 2;
    Check k = {0};
    if (model_open(model_path, "auto", &m) != NQ_OK ||
        tokenizer_open(tok_path, model_config(m)->vocab_size, &tok) != NQ_OK ||
        text_windows_load(text, tok, T, sequences, &tokens, &N) != NQ_OK) {
        fprintf(stderr, "check_activations: %s\n", nq_last_error());
        goto cleanup;
    }
    k.c = model_config(m);
    k.N = N;
    k.T = T;
    k.chunk = chunk;
    size_t const n = (size_t)N * T * k.c->dim;
    k.ref = nq_calloc(n, sizeof(float), "reference activations");
    k.file = nq_calloc(n, sizeof(float), "file activations");
    k.y = nq_calloc((size_t)chunk * T * k.c->dim, sizeof(float), "block output");
    if (!k.ref || !k.file || !k.y) {
        fprintf(stderr, "check_activations: %s\n", nq_last_error());
        goto cleanup;
    }
    printf("%s: %d sequences of %d tokens, %d blocks, d %d; reference in chunks of %d\n", act_path, N, T,
           k.c->n_layers, k.c->dim, chunk);
    rc = run_check(m, tokens, &k, act_path);
cleanup:
    free(k.ref);
    free(k.file);
    free(k.y);
    free(tokens);
    tokenizer_free(tok);
    model_close(m);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: check_activations ACTIVATIONS_H5 MODEL TOKENIZER TEXT T SEQUENCES [CHUNK]\n");
        return 2;
    }
    int const T = atoi(argv[5]), sequences = atoi(argv[6]), chunk = argc == 8 ? atoi(argv[7]) : 1;
    if (T < 2 || sequences < 0 || chunk < 1) {
        fprintf(stderr, "check_activations: T = %s, SEQUENCES = %s, CHUNK = %d: expected T >= 2, SEQUENCES >= 0, "
                        "CHUNK >= 1\n", argv[5], argv[6], chunk);
        return 2;
    }
    int const rc = check(argv[1], argv[2], argv[3], argv[4], T, sequences, chunk);
    if (rc == 0) printf("check_activations: every level matches bit for bit\n");
    return rc;
}
