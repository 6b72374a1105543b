/* Shared by the fuzz targets (fuzz/fuzz_NAME.c) and their replay in the normal build
 * (tests/test_fuzz_regressions.c).
 *
 * Every target is a function `int fuzz_NAME(const uint8_t *data, size_t size)` that feeds
 * one input to a parser of outside data through the project's public API and frees
 * everything. It returns 0; a bug shows as a crash, a sanitizer report, a leak or a
 * failed FUZZ_CHECK (abort). Built with -DNUPES_LIBFUZZER, each file also defines
 * LLVMFuzzerTestOneInput calling its target. */
#ifndef NUPES_FUZZ_COMMON_H
#define NUPES_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* An invariant of a parser's output: aborts with the message (the fuzzer keeps the input). */
#define FUZZ_CHECK(cond)                                                                   \
    do {                                                                                   \
        if (!(cond)) fuzz_fail(__FILE__, __LINE__, #cond);                                  \
    } while (0)
void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

/* Writes data to a new file in a scratch directory ($NUPES_FUZZ_TMP, else /dev/shm) named
 * "<scratch>/fuzz-<pid>-XXXXXX<suffix>"; 0 on success. Remove it with unlink. */
int fuzz_write_temp(const uint8_t *data, size_t size, const char *suffix, char *path,
                    size_t path_size);

/* (Re)writes path with exactly size bytes; 0 on success. */
int fuzz_write_file(const char *path, const uint8_t *data, size_t size);

/* A fresh scratch directory (mkdtemp); 0 on success. */
int fuzz_make_dir(char *path, size_t path_size);

/* The repository's data/ directory: $NUPES_DATA, else the one compiled in. */
const char *fuzz_data_dir(void);

/* Keeps the compiler from dropping reads of parsed data. */
extern volatile float fuzz_sink;

/* The targets. */
int fuzz_llama2c(const uint8_t *data, size_t size);
int fuzz_tokenizer_file(const uint8_t *data, size_t size);
int fuzz_tokenize_text(const uint8_t *data, size_t size);
int fuzz_safetensors(const uint8_t *data, size_t size);
int fuzz_hf_model(const uint8_t *data, size_t size);
int fuzz_config(const uint8_t *data, size_t size);
int fuzz_state_file(const uint8_t *data, size_t size);
int fuzz_checkpoint(const uint8_t *data, size_t size);

#ifdef NUPES_LIBFUZZER
#define FUZZ_ENTRY(fn)                                                                      \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                           \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fn(data, size); }
#else
#define FUZZ_ENTRY(fn)
#endif

#endif
