/* Reading a whole input file (text, tokenizer, run.toml) into memory. */
#ifndef NUPES_READ_FILE_H
#define NUPES_READ_FILE_H

#include <stddef.h>

#include "status.h"

/* *data: malloc'd, size bytes plus a terminating NUL (text can be used as a string).
 * what names the file's role in errors: "<path>: cannot open <what>: <reason>"
 * (NQ_ERR_INPUT); a short read is NQ_ERR_RUNTIME. */
nq_status read_file(const char *path, const char *what, char **data, size_t *size);

#endif
