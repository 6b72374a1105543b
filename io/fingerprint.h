/* The run fingerprint (docs/design.md 5.2): what a run directory's results depend on.
 *
 * Three component hashes (XXH3-64) and their combination (XXH3-128, 32 hex digits):
 *   model        the weights' contents (model_content_hash),
 *   calibration  the calibration tokens int32 [N][T] (shape included),
 *   settings     the text of config_result_keys_toml(cfg).
 * The settings text itself is kept too, so that a mismatch can name the first key that
 * differs. The struct is plain data (no pointers): it may be copied or sent with MPI_BYTE. */
#ifndef NUPES_FINGERPRINT_H
#define NUPES_FINGERPRINT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "status.h"

#define FINGERPRINT_SETTINGS_MAX 4096

typedef struct {
    uint64_t model;       /* model_content_hash of the weights */
    uint64_t calibration; /* XXH3-64 of N, T and the tokens */
    uint64_t settings;    /* XXH3-64 of settings_toml */
    char hex[33];         /* XXH3-128 of the three, 32 lower-case hex digits */
    char settings_toml[FINGERPRINT_SETTINGS_MAX]; /* config_result_keys_toml text */
} Fingerprint;

/* tokens [n_sequences][seq_len]. NQ_ERR_RUNTIME when out of memory, NQ_ERR_INPUT when the
 * settings text does not fit FINGERPRINT_SETTINGS_MAX. */
nq_status fingerprint_compute(uint64_t model_hash, const int32_t *tokens, size_t n_sequences,
                              size_t seq_len, const NupesConfig *cfg, Fingerprint *out);

/* Same, from the result-keys TOML text itself (what fingerprint_compute hashes). */
nq_status fingerprint_from_parts(uint64_t model_hash, const int32_t *tokens, size_t n_sequences,
                                 size_t seq_len, const char *settings_toml, Fingerprint *out);

/* NQ_OK when stored (read from `where`, e.g. "run/run.toml") and current agree; else
 * NQ_ERR_INPUT naming what differs, stored value first:
 *   "run/run.toml: this run directory was made for a different model (weights hash
 *    1a2b... vs 3c4d...); use --restart to start over or choose another run.dir"
 *   "...: ... different settings: quantization.bits = 4 in the run directory, 3 now; ..." */
nq_status fingerprint_check(const Fingerprint *stored, const Fingerprint *current,
                            const char *where);

#endif
