#include "block_file.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_file.h"
#include "h5sum.h"
#include "h5util.h"

/* ------------------------------------------------------------------ spec */

nq_status quant_spec_check(const char *file, QuantSpec spec, const ModelConfig *c) {
    if (spec.bits < QUANT_MIN_BITS || spec.bits > QUANT_MAX_BITS)
        return nq_fail(NQ_ERR_INPUT, "%s: bits = %d, expected %d..%d", file, spec.bits,
                       QUANT_MIN_BITS, QUANT_MAX_BITS);
    if (spec.group_size < 0)
        return nq_fail(NQ_ERR_INPUT, "%s: group_size = %d, expected >= 0", file, spec.group_size);
    (void)c; /* any group_size fits any shape: a row's last group may be shorter */
    if (spec.per_row != 0 && spec.per_row != 1)
        return nq_fail(NQ_ERR_INPUT, "%s: per_row = %d, expected 0 or 1", file, spec.per_row);
    if (!quantizer_of(spec))
        return nq_fail(NQ_ERR_INPUT, "%s: quantizer %d, expected 0..%d", file, spec.quantizer, QUANTIZER_COUNT - 1);
    return NQ_OK;
}

/* ------------------------------------------------------------------ writing */

static H5UType h5_type_(QArrayType t) { return t == QA_I8 ? H5U_I8 : t == QA_F16 ? H5U_F16 : H5U_F32; }

static void h5_dims_(const QArrayDesc *d, hsize_t *dims) {
    for (int k = 0; k < d->rank; k++) dims[k] = (hsize_t)d->dims[k];
}

/* The arrays the matrix's quantizer describes, each a dataset of its name (or "weight"). */
static nq_status write_matrix_(hid_t g, const char *file, const QuantMatrix *q, int zstd_level) {
    QuantShape const sh = q->shape;
    hsize_t const w_dims[2] = {(hsize_t)sh.rows, (hsize_t)sh.cols};
    if (!q->quantized) return h5u_write(g, file, "weight", H5U_F32, 2, w_dims, q->weight, zstd_level);
    nq_status st = NQ_OK;
    for (int k = 0; k < q->n_arrays && st == NQ_OK; k++) {
        hsize_t dims[2];
        h5_dims_(&q->desc[k], dims);
        st = h5u_write(g, file, q->desc[k].name, h5_type_(q->desc[k].type), q->desc[k].rank, dims, q->array[k],
                       zstd_level);
    }
    return st;
}

nq_status block_result_write_h5(hid_t g, const char *file, const BlockResult *r, int zstd_level) {
    nq_status st = NQ_OK;
    for (int i = 0; i < N_MATS && st == NQ_OK; i++) {
        hid_t mg;
        st = h5u_create_group(g, file, mat_names[i], &mg);
        if (st != NQ_OK) break;
        st = write_matrix_(mg, file, &r->mat[i], zstd_level);
        h5u_close(mg);
    }
    if (st == NQ_OK) st = h5u_attr_write_double(g, file, "loss_init", r->loss_init);
    if (st == NQ_OK) st = h5u_attr_write_double(g, file, "loss_final", r->loss_final);
    if (st == NQ_OK) st = h5u_attr_write_double(g, file, "seconds", r->seconds);
    return st;
}

static nq_status write_root_attrs_(hid_t f, const char *file, const BlockResult *r,
                                   const char *fingerprint) {
    QuantSpec const s = r->mat[0].spec;
    nq_status st = h5u_attr_write_string(f, file, "format", BLOCK_FILE_FORMAT);
    if (st == NQ_OK) st = h5u_attr_write_int(f, file, "format_version", BLOCK_FILE_VERSION);
    if (st == NQ_OK) st = h5u_attr_write_string(f, file, "quantizer", r->mat[0].quant->name);
    if (st == NQ_OK) st = h5u_attr_write_int(f, file, "block", r->block);
    if (st == NQ_OK) st = h5u_attr_write_int(f, file, "bits", s.bits);
    if (st == NQ_OK) st = h5u_attr_write_int(f, file, "group_size", s.group_size);
    if (st == NQ_OK) st = h5u_attr_write_string(f, file, "exponent", s.per_row ? "channel" : "tensor");
    if (st == NQ_OK) st = h5u_attr_write_string(f, file, "fingerprint", fingerprint ? fingerprint : "");
    return st;
}

nq_status block_file_save(const char *path, const BlockResult *r, int zstd_level) {
    return block_file_save_owned(path, r, NULL, zstd_level);
}

nq_status block_file_save_owned(const char *path, const BlockResult *r, const char *fingerprint,
                                int zstd_level) {
    char tmp[PATH_MAX];
    nq_status st = h5u_init();
    if (st == NQ_OK) st = atomic_tmp_name(path, tmp, sizeof tmp);
    if (st != NQ_OK) return st;
    hid_t f;
    st = h5u_create(tmp, &f);
    if (st != NQ_OK) {
        unlink(tmp);
        return st;
    }
    st = write_root_attrs_(f, path, r, fingerprint);
    if (st == NQ_OK) st = block_result_write_h5(f, path, r, zstd_level);
    if (st == NQ_OK) st = h5sum_seal_attrs(f, path);
    nq_status const closed = h5u_close_file(f, path);
    if (st == NQ_OK) st = closed;
    if (st != NQ_OK) {
        unlink(tmp);
        return st;
    }
    return atomic_commit(tmp, path);
}

/* ------------------------------------------------------------------ reading */

/* Every array the quantizer describes, with its type and shape checked, then the
 * quantizer's value check (a damaged but readable file must not crash a reader). */
static nq_status read_matrix_(hid_t g, const char *file, const char *where, int checked,
                              QuantMatrix *q) {
    QuantShape const sh = q->shape;
    hsize_t const w_dims[2] = {(hsize_t)sh.rows, (hsize_t)sh.cols};
    nq_status (*const read)(hid_t, const char *, const char *, H5UType, int, const hsize_t *, void *) =
        checked ? h5u_read_checked : h5u_read;
    if (!q->quantized) return read(g, file, "weight", H5U_F32, 2, w_dims, q->weight);
    nq_status st = NQ_OK;
    for (int k = 0; k < q->n_arrays && st == NQ_OK; k++) {
        hsize_t dims[2];
        h5_dims_(&q->desc[k], dims);
        st = read(g, file, q->desc[k].name, h5_type_(q->desc[k].type), q->desc[k].rank, dims, q->array[k]);
    }
    if (st == NQ_OK)
        st = q->quant->check(q->spec, sh, q->desc, (const void *const *)q->array, file, where);
    return st;
}

/* Bit i set when matrix i is stored fp32 ("weight" instead of the quantizer's first
 * array, "codes" for the power quantizer). */
static unsigned skip_mask_(hid_t g, QuantSpec spec) {
    unsigned mask = 0;
    const Quantizer *quant = quantizer_of(spec);
    QArrayDesc desc[QM_MAX_ARRAYS];
    QuantShape const any = {1, 1, 1, 1};
    if (quant) quant->describe(spec, any, RESULT_FORMAT_VERSION, desc);
    for (int i = 0; i < N_MATS; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s/%s", mat_names[i], quant ? desc[0].name : "codes");
        int const has_codes = h5u_exists(g, name);
        snprintf(name, sizeof name, "%s/weight", mat_names[i]);
        if (!has_codes && h5u_exists(g, name)) mask |= 1u << i;
    }
    return mask;
}

static nq_status read_metric_(hid_t g, const char *file, const char *where, const char *name,
                              double *value) {
    return h5u_attr_read_double(g, file, where, name, value);
}

nq_status block_result_read_h5(hid_t g, const char *file, const ModelConfig *c, QuantSpec spec,
                               int block, int checked, int format_version, BlockResult *out) {
    char where[512];
    if (H5Iget_name(g, where, sizeof where) < 0) snprintf(where, sizeof where, "block %d", block);
    nq_status st = block_result_alloc_version(out, c, spec, block, skip_mask_(g, spec), format_version);
    if (st != NQ_OK) return st;
    for (int i = 0; i < N_MATS && st == NQ_OK; i++) {
        hid_t mg;
        st = h5u_open_group(g, file, mat_names[i], &mg);
        if (st != NQ_OK) break;
        char mat_where[600];
        snprintf(mat_where, sizeof mat_where, "%s%s%s", where, strcmp(where, "/") ? "/" : "", mat_names[i]);
        st = read_matrix_(mg, file, mat_where, checked, &out->mat[i]);
        h5u_close(mg);
    }
    double loss_init = 0, loss_final = 0, seconds = 0;
    if (st == NQ_OK) st = read_metric_(g, file, where, "loss_init", &loss_init);
    if (st == NQ_OK) st = read_metric_(g, file, where, "loss_final", &loss_final);
    if (st == NQ_OK) st = read_metric_(g, file, where, "seconds", &seconds);
    if (st != NQ_OK) {
        block_result_free(out);
        return st;
    }
    out->loss_init = (float)loss_init;
    out->loss_final = (float)loss_final;
    out->seconds = seconds;
    return NQ_OK;
}

static nq_status read_int_(hid_t f, const char *file, const char *name, int *value) {
    long long v;
    nq_status const st = h5u_attr_read_int(f, file, "/", name, &v);
    if (st != NQ_OK) return st;
    if (v < INT_MIN || v > INT_MAX)
        return nq_fail(NQ_ERR_INPUT, "%s: attribute %s = %lld, out of range", file, name, v);
    *value = (int)v;
    return NQ_OK;
}

/* format, version, block index and spec from the root attributes. */
static nq_status read_header_(hid_t f, const char *file, const ModelConfig *c, int *block,
                              QuantSpec *spec) {
    char *format = NULL, *exponent = NULL;
    int version = 0;
    nq_status st = h5u_attr_read_string(f, file, "/", "format", &format);
    if (st == NQ_OK && strcmp(format, BLOCK_FILE_FORMAT) != 0)
        st = nq_fail(NQ_ERR_INPUT, "%s: attribute format = \"%s\", expected \"%s\"", file, format,
                     BLOCK_FILE_FORMAT);
    if (st == NQ_OK) st = read_int_(f, file, "format_version", &version);
    if (st == NQ_OK && version == 2)
        st = nq_fail(NQ_ERR_INPUT, "%s: format_version = 2 (fp32 scales and exponents), expected %d (fp16): written "
                     "by an older nupes-mpi; a resumed run quantizes this block again", file, BLOCK_FILE_VERSION);
    else if (st == NQ_OK && version != BLOCK_FILE_VERSION)
        st = nq_fail(NQ_ERR_INPUT, "%s: format_version = %d, expected %d", file, version, BLOCK_FILE_VERSION);
    char *quantizer = NULL;
    if (st == NQ_OK) st = h5u_attr_read_string(f, file, "/", "quantizer", &quantizer);
    if (st == NQ_OK && (spec->quantizer = quantizer_find(quantizer)) < 0)
        st = nq_fail(NQ_ERR_INPUT, "%s: quantizer = \"%s\", expected \"%s\"", file, quantizer,
                     quantizer_table[QUANTIZER_POWER]->name);
    free(quantizer);
    if (st == NQ_OK) st = read_int_(f, file, "block", block);
    if (st == NQ_OK && (*block < 0 || *block >= c->n_layers))
        st = nq_fail(NQ_ERR_INPUT, "%s: block = %d, expected 0..%d", file, *block, c->n_layers - 1);
    if (st == NQ_OK) st = read_int_(f, file, "bits", &spec->bits);
    if (st == NQ_OK) st = read_int_(f, file, "group_size", &spec->group_size);
    if (st == NQ_OK) st = h5u_attr_read_string(f, file, "/", "exponent", &exponent);
    if (st == NQ_OK) {
        if (strcmp(exponent, "tensor") != 0 && strcmp(exponent, "channel") != 0)
            st = nq_fail(NQ_ERR_INPUT, "%s: exponent = \"%s\", expected \"tensor\" or \"channel\"", file, exponent);
        spec->per_row = strcmp(exponent, "channel") == 0;
    }
    if (st == NQ_OK) st = quant_spec_check(file, *spec, c);
    free(format);
    free(exponent);
    return st;
}

/* The file must be what the run expects (BlockFileExpect). */
static nq_status check_expected_(hid_t f, const char *file, int block, QuantSpec spec,
                                 const BlockResult *r, const BlockFileExpect *want) {
    if (block != want->block)
        return nq_fail(NQ_ERR_INPUT, "%s: block = %d, expected %d (a file of another block)", file, block,
                       want->block);
    if (spec.bits != want->spec.bits || spec.group_size != want->spec.group_size ||
        spec.per_row != want->spec.per_row || spec.quantizer != want->spec.quantizer)
        return nq_fail(NQ_ERR_INPUT, "%s: bits %d, group_size %d, exponent %s; expected %d, %d, %s (another config)",
                       file, spec.bits, spec.group_size, spec.per_row ? "channel" : "tensor", want->spec.bits,
                       want->spec.group_size, want->spec.per_row ? "channel" : "tensor");
    for (int i = 0; i < N_MATS; i++)
        if (!r->mat[i].quantized != !!(want->skip_mask & (1u << i)))
            return nq_fail(NQ_ERR_INPUT, "%s: %s is %s, expected %s (another config)", file, mat_names[i],
                           r->mat[i].quantized ? "quantized" : "kept fp32",
                           r->mat[i].quantized ? "kept fp32" : "quantized");
    char *fingerprint = NULL;
    nq_status st = h5u_attr_read_string(f, file, "/", "fingerprint", &fingerprint);
    if (st == NQ_OK && want->fingerprint && strcmp(fingerprint, want->fingerprint) != 0)
        st = nq_fail(NQ_ERR_INPUT, "%s: fingerprint = %.20s..., expected %.20s... (a file from another run)",
                     file, fingerprint, want->fingerprint);
    free(fingerprint);
    return st;
}

nq_status block_file_load_expected(const char *path, const ModelConfig *c,
                                   const BlockFileExpect *want, BlockResult *out) {
    memset(out, 0, sizeof *out);
    nq_status st = h5u_init();
    hid_t f = -1;
    if (st == NQ_OK) st = h5u_open_read(path, &f);
    int block = -1;
    QuantSpec spec = {0, 0, 0, 0};
    if (st == NQ_OK) st = read_header_(f, path, c, &block, &spec);
    if (st == NQ_OK) st = h5sum_check_attrs(f, path, "/", 1);
    if (st == NQ_OK) st = block_result_read_h5(f, path, c, spec, block, 1, BLOCK_FILE_VERSION, out);
    if (st == NQ_OK && want) {
        st = check_expected_(f, path, block, spec, out, want);
        if (st != NQ_OK) block_result_free(out);
    }
    h5u_close_file(f, path);
    return st;
}

nq_status block_file_load(const char *path, const ModelConfig *c, BlockResult *out) {
    return block_file_load_expected(path, c, NULL, out);
}
