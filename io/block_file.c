#include "block_file.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic_file.h"
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
    return NQ_OK;
}

/* ------------------------------------------------------------------ writing */

static nq_status write_matrix_(hid_t g, const char *file, const QuantMatrix *q, int zstd_level) {
    QuantShape const sh = q->shape;
    hsize_t const w_dims[2] = {(hsize_t)sh.rows, (hsize_t)sh.cols};
    if (!q->quantized) return h5u_write(g, file, "weight", H5U_F32, 2, w_dims, q->weight, zstd_level);
    hsize_t const s_dims[2] = {(hsize_t)sh.rows, (hsize_t)sh.groups};
    hsize_t const e_dims[1] = {(hsize_t)sh.n_exponents};
    nq_status st = h5u_write(g, file, "codes", H5U_I8, 2, w_dims, q->codes, zstd_level);
    if (st == NQ_OK) st = h5u_write(g, file, "scale", H5U_F32, 2, s_dims, q->scales, zstd_level);
    if (st == NQ_OK) st = h5u_write(g, file, "exponent", H5U_F32, 1, e_dims, q->exponents, zstd_level);
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

static nq_status write_root_attrs_(hid_t f, const char *file, const BlockResult *r) {
    QuantSpec const s = r->mat[0].spec;
    nq_status st = h5u_attr_write_string(f, file, "format", BLOCK_FILE_FORMAT);
    if (st == NQ_OK) st = h5u_attr_write_int(f, file, "format_version", BLOCK_FILE_VERSION);
    if (st == NQ_OK) st = h5u_attr_write_int(f, file, "block", r->block);
    if (st == NQ_OK) st = h5u_attr_write_int(f, file, "bits", s.bits);
    if (st == NQ_OK) st = h5u_attr_write_int(f, file, "group_size", s.group_size);
    if (st == NQ_OK) st = h5u_attr_write_string(f, file, "exponent", s.per_row ? "channel" : "tensor");
    return st;
}

nq_status block_file_save(const char *path, const BlockResult *r, int zstd_level) {
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
    st = write_root_attrs_(f, path, r);
    if (st == NQ_OK) st = block_result_write_h5(f, path, r, zstd_level);
    nq_status const closed = h5u_close_file(f, path);
    if (st == NQ_OK) st = closed;
    if (st != NQ_OK) {
        unlink(tmp);
        return st;
    }
    return atomic_commit(tmp, path);
}

/* ------------------------------------------------------------------ reading */

/* Codes within [-m, m] (the dequantization table is indexed by them) and finite
 * positive exponents: a damaged but readable file must not crash a reader. */
static nq_status check_values_(const char *file, const char *where, const QuantMatrix *q) {
    int const m = quant_max_code(q->spec.bits);
    size_t const n = (size_t)q->shape.rows * q->shape.cols;
    for (size_t i = 0; i < n; i++)
        if (q->codes[i] < -m || q->codes[i] > m)
            return nq_fail(NQ_ERR_INPUT, "%s: %s/codes[%zu] = %d, expected a code in [%d, %d]", file,
                           where, i, q->codes[i], -m, m);
    for (int i = 0; i < q->shape.n_exponents; i++)
        if (!(q->exponents[i] > 0) || !isfinite(q->exponents[i]))
            return nq_fail(NQ_ERR_INPUT, "%s: %s/exponent[%d] = %g, expected a finite value > 0", file,
                           where, i, q->exponents[i]);
    return NQ_OK;
}

static nq_status read_matrix_(hid_t g, const char *file, const char *where, QuantMatrix *q) {
    QuantShape const sh = q->shape;
    hsize_t const w_dims[2] = {(hsize_t)sh.rows, (hsize_t)sh.cols};
    if (!q->quantized) return h5u_read(g, file, "weight", H5U_F32, 2, w_dims, q->weight);
    hsize_t const s_dims[2] = {(hsize_t)sh.rows, (hsize_t)sh.groups};
    hsize_t const e_dims[1] = {(hsize_t)sh.n_exponents};
    nq_status st = h5u_read(g, file, "codes", H5U_I8, 2, w_dims, q->codes);
    if (st == NQ_OK) st = h5u_read(g, file, "scale", H5U_F32, 2, s_dims, q->scales);
    if (st == NQ_OK) st = h5u_read(g, file, "exponent", H5U_F32, 1, e_dims, q->exponents);
    if (st == NQ_OK) st = check_values_(file, where, q);
    return st;
}

/* Bit i set when matrix i is stored fp32 ("weight" instead of "codes"). */
static unsigned skip_mask_(hid_t g) {
    unsigned mask = 0;
    for (int i = 0; i < N_MATS; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s/codes", mat_names[i]);
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
                               int block, BlockResult *out) {
    char where[512];
    if (H5Iget_name(g, where, sizeof where) < 0) snprintf(where, sizeof where, "block %d", block);
    nq_status st = block_result_alloc(out, c, spec, block, skip_mask_(g));
    if (st != NQ_OK) return st;
    for (int i = 0; i < N_MATS && st == NQ_OK; i++) {
        hid_t mg;
        st = h5u_open_group(g, file, mat_names[i], &mg);
        if (st != NQ_OK) break;
        char mat_where[600];
        snprintf(mat_where, sizeof mat_where, "%s%s%s", where, strcmp(where, "/") ? "/" : "", mat_names[i]);
        st = read_matrix_(mg, file, mat_where, &out->mat[i]);
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
    if (st == NQ_OK && version != BLOCK_FILE_VERSION)
        st = nq_fail(NQ_ERR_INPUT, "%s: format_version = %d, expected %d", file, version, BLOCK_FILE_VERSION);
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

nq_status block_file_load(const char *path, const ModelConfig *c, BlockResult *out) {
    memset(out, 0, sizeof *out);
    nq_status st = h5u_init();
    hid_t f = -1;
    if (st == NQ_OK) st = h5u_open_read(path, &f);
    int block = -1;
    QuantSpec spec = {0, 0, 0};
    if (st == NQ_OK) st = read_header_(f, path, c, &block, &spec);
    if (st == NQ_OK) st = block_result_read_h5(f, path, c, spec, block, out);
    h5u_close_file(f, path);
    return st;
}
