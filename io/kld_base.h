/* The KL base file of `nupes-mpi eval --kld-base FILE` (docs/design.md 7.1): the
 * fp32 model's logits on the evaluation windows, stored once and reused, so that a sweep
 * evaluates each checkpoint without running the fp32 model again.
 *
 * One HDF5 file (format "nupes-mpi-kld-base", version 1):
 *   attributes  format, format_version, model_hash (16 hex digits, model_content_hash),
 *               seq_len, windows, vocab_size
 *   /tokens     int32 [windows][seq_len]         the evaluation windows
 *   /logits     float32 [windows][seq_len][vocab] contiguous (written by several ranks)
 *   /checksums  uint64 [windows]                  XXH3-64 of each window's logits
 * A reader refuses, with one line, a base made from another model, seq_len or text (its
 * windows' tokens), and verifies the checksum of every window it reads. The file is
 * written to a temporary name, fsynced and renamed, so a base is complete or absent. */
#ifndef NUPES_KLD_BASE_H
#define NUPES_KLD_BASE_H

#include <stdint.h>

#include <mpi.h>

#include "status.h"

/* What a base belongs to. */
typedef struct {
    uint64_t model_hash; /* model_content_hash of the fp32 model */
    int seq_len, vocab_size, windows;
    const int *tokens; /* [windows][seq_len] */
} KldBaseIdentity;

typedef struct KldBase KldBase;

/* 1 when path exists (a base to read), 0 when it does not (one to create). */
int kld_base_exists(const char *path);

/* Opens an existing base and checks that it belongs to id (NQ_ERR_INPUT, one line naming
 * what differs), then verifies the checksums of windows [first, first + count): a damaged
 * base is refused before any work. */
nq_status kld_base_open(const char *path, const KldBaseIdentity *id, int first, int count, KldBase **out);

/* Reads the logits [n][seq_len][vocab] of windows [w, w + n), verifying their checksums. */
nq_status kld_base_read(KldBase *b, int w, int n, float *logits);

/* Collective over comm (MPI_COMM_NULL: this process alone): creates the base's temporary
 * file with its identity and empty datasets. */
nq_status kld_base_create(const char *path, const KldBaseIdentity *id, MPI_Comm comm, KldBase **out);

/* Writes the logits [n][seq_len][vocab] of windows [w, w + n) and their checksums (each
 * rank its own windows, independently). */
nq_status kld_base_write(KldBase *b, int w, int n, const float *logits);

/* Collective like kld_base_create, given this rank's status: closes the file; when every
 * rank succeeded, the base is fsynced and renamed to its name, else the temporary file is
 * removed. Returns the worst status over the ranks (NQ_OK when the base was committed).
 * Frees b. */
nq_status kld_base_finish(KldBase *b, nq_status st);

/* Closes a base opened for reading (NULL is fine). */
void kld_base_close(KldBase *b);

#endif
