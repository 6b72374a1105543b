#include "h5sum.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "h5util.h"

#define SUM_PREFIX "xxh3-64:"

uint64_t h5sum_bytes(const void *data, size_t bytes) { return XXH3_64bits(data, bytes); }

void h5sum_format(uint64_t sum, char out[H5SUM_TEXT_SIZE]) {
    snprintf(out, H5SUM_TEXT_SIZE, SUM_PREFIX "%016llx", (unsigned long long)sum);
}

/* ------------------------------------------------------------------ data */

nq_status h5sum_write_data(hid_t dset, const char *file, const void *data, size_t bytes) {
    char text[H5SUM_TEXT_SIZE];
    h5sum_format(h5sum_bytes(data, bytes), text);
    return h5u_attr_write_string(dset, file, H5SUM_DATA_ATTR, text);
}

/* The stored checksum text of obj's attribute name; *text NULL when it is absent. */
static nq_status stored_sum_(hid_t obj, const char *file, const char *where, const char *name,
                             char **text) {
    *text = NULL;
    htri_t const exists = H5Aexists(obj, name);
    H5Eclear2(H5E_DEFAULT);
    if (exists <= 0) return NQ_OK;
    return h5u_attr_read_string(obj, file, where, name, text);
}

static nq_status compare_(const char *file, const char *where, const char *what, const char *stored,
                          uint64_t actual) {
    char want[H5SUM_TEXT_SIZE];
    h5sum_format(actual, want);
    if (strcmp(stored, want) == 0) return NQ_OK;
    return nq_fail(NQ_ERR_INPUT, "%s: %s: %s checksum mismatch (stored %.40s, the content hashes to %s): damaged file",
                   file, where, what, stored, want);
}

nq_status h5sum_check_data(hid_t dset, const char *file, const char *where, const void *data,
                           size_t bytes, int required) {
    char *stored = NULL;
    nq_status st = stored_sum_(dset, file, where, H5SUM_DATA_ATTR, &stored);
    if (st == NQ_OK && !stored && required)
        st = nq_fail(NQ_ERR_INPUT, "%s: dataset %s: missing attribute " H5SUM_DATA_ATTR " (damaged file)",
                     file, where);
    if (st == NQ_OK && stored) st = compare_(file, where, "data", stored, h5sum_bytes(data, bytes));
    free(stored);
    return st;
}

/* ------------------------------------------------------------------ attributes */

typedef struct {
    XXH3_state_t *state;
    int count; /* attributes hashed (attrs_checksum excluded) */
    int failed;
} AttrDigest;

/* Hashes one attribute's value in a canonical form (see h5sum.h). */
static int hash_attr_value_(hid_t attr, XXH3_state_t *state) {
    hid_t const type = H5Aget_type(attr), space = H5Aget_space(attr);
    hssize_t const n = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    H5T_class_t const cls = type < 0 ? H5T_NO_CLASS : H5Tget_class(type);
    int ok = n >= 0 && cls != H5T_NO_CLASS;
    unsigned char const tag = (unsigned char)cls;
    if (ok) XXH3_64bits_update(state, &tag, 1);
    size_t const count = ok ? (size_t)n : 0;
    htri_t const vlen = cls == H5T_STRING ? H5Tis_variable_str(type) : 0;
    hid_t mtype = -1;
    size_t elem = 0;
    if (cls == H5T_INTEGER) mtype = H5Tcopy(H5T_NATIVE_LLONG), elem = sizeof(long long);
    else if (cls == H5T_FLOAT) mtype = H5Tcopy(H5T_NATIVE_DOUBLE), elem = sizeof(double);
    else if (vlen > 0) mtype = H5Tcopy(type), elem = sizeof(char *);
    else if (ok) mtype = H5Tcopy(type), elem = H5Tget_size(type);
    void *buf = ok && mtype >= 0 ? calloc(count ? count : 1, elem ? elem : 1) : NULL;
    ok = buf && H5Aread(attr, mtype, buf) >= 0;
    if (ok && vlen > 0) {
        char **s = buf;
        for (size_t i = 0; i < count; i++)
            if (s[i]) XXH3_64bits_update(state, s[i], strlen(s[i]) + 1);
        H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, buf);
    } else if (ok) {
        XXH3_64bits_update(state, buf, count * elem);
    }
    free(buf);
    h5u_close(mtype);
    h5u_close(space);
    h5u_close(type);
    return ok;
}

static herr_t digest_cb_(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    AttrDigest *d = data;
    if (strcmp(name, H5SUM_ATTRS_ATTR) == 0) return 0;
    XXH3_64bits_update(d->state, name, strlen(name) + 1);
    hid_t const attr = H5Aopen(loc, name, H5P_DEFAULT);
    int const ok = attr >= 0 && hash_attr_value_(attr, d->state);
    h5u_close(attr);
    d->count++;
    if (!ok) {
        d->failed = 1;
        return -1;
    }
    return 0;
}

static nq_status attrs_digest_(hid_t obj, const char *file, const char *where, uint64_t *sum,
                               int *count) {
    AttrDigest d = {XXH3_createState(), 0, 0};
    if (!d.state) return nq_fail(NQ_ERR_RUNTIME, "out of memory for a checksum state");
    XXH3_64bits_reset(d.state);
    hsize_t idx = 0;
    herr_t const rc = H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, digest_cb_, &d);
    *sum = XXH3_64bits_digest(d.state);
    *count = d.count;
    XXH3_freeState(d.state);
    if (rc < 0 || d.failed) {
        char what[300];
        snprintf(what, sizeof what, "%s: cannot read the attributes (damaged file?)", where);
        return h5u_fail(NQ_ERR_INPUT, file, what);
    }
    return NQ_OK;
}

nq_status h5sum_seal_attrs(hid_t obj, const char *file) {
    uint64_t sum = 0;
    int count = 0;
    nq_status st = attrs_digest_(obj, file, "(being written)", &sum, &count);
    if (st != NQ_OK) return nq_fail(NQ_ERR_RUNTIME, "%s", nq_last_error());
    char text[H5SUM_TEXT_SIZE];
    h5sum_format(sum, text);
    return h5u_attr_write_string(obj, file, H5SUM_ATTRS_ATTR, text);
}

nq_status h5sum_check_attrs(hid_t obj, const char *file, const char *where, int required) {
    char *stored = NULL;
    nq_status st = stored_sum_(obj, file, where, H5SUM_ATTRS_ATTR, &stored);
    if (st == NQ_OK && !stored && required)
        st = nq_fail(NQ_ERR_INPUT, "%s: %s: missing attribute " H5SUM_ATTRS_ATTR " (damaged file)", file, where);
    uint64_t sum = 0;
    int count = 0;
    if (st == NQ_OK && stored) st = attrs_digest_(obj, file, where, &sum, &count);
    if (st == NQ_OK && stored) st = compare_(file, where, "attribute", stored, sum);
    free(stored);
    return st;
}

/* ------------------------------------------------------------------ whole file */

typedef struct {
    const char *path;
    nq_status status;
    int datasets, attr_sets;
    const char *where; /* the group being listed */
} VerifyWalk;

static nq_status verify_dataset_(hid_t dset, const char *file, const char *where) {
    char what[700];
    hid_t const type = H5Dget_type(dset), space = H5Dget_space(dset);
    /* A 2-byte float (fp16 scales) has no native type in HDF5 1.10: its bits as stored,
     * which is what its checksum covers (io/h5util.h H5U_F16). */
    int const half = type >= 0 && H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == 2;
    hid_t const mtype = type < 0 ? -1 : half ? H5Tcopy(type) : H5Tget_native_type(type, H5T_DIR_ASCEND);
    hssize_t const n = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    size_t const elem = mtype < 0 ? 0 : H5Tget_size(mtype);
    nq_status st = NQ_OK;
    void *buf = NULL;
    if (n < 0 || elem == 0) {
        st = h5u_fail(NQ_ERR_INPUT, file, "cannot read a dataset's type or shape (damaged file?)");
    } else {
        size_t const bytes = nq_mul_size((size_t)n, elem);
        buf = nq_calloc(bytes ? bytes : 1, 1, "dataset being verified");
        if (!buf) st = NQ_ERR_RUNTIME;
        else if (H5Dread(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            snprintf(what, sizeof what, "dataset %s: cannot read (damaged file)", where);
            st = h5u_fail(NQ_ERR_INPUT, file, what);
        } else {
            st = h5sum_check_data(dset, file, where, buf, bytes, 1);
        }
    }
    free(buf);
    h5u_close(mtype);
    h5u_close(space);
    h5u_close(type);
    return st;
}

static herr_t verify_link_cb_(hid_t group, const char *name, const H5L_info_t *info, void *data);

/* One object: a dataset is read and checked, a group's attributes are checked and its
 * members walked. where is its full path, for messages. */
static nq_status verify_object_(hid_t obj, const char *where, VerifyWalk *w) {
    H5O_info_t info;
    if (H5Oget_info2(obj, &info, H5O_INFO_BASIC | H5O_INFO_NUM_ATTRS) < 0) {
        char what[700];
        snprintf(what, sizeof what, "%s: cannot read the object header (damaged file)", where);
        return h5u_fail(NQ_ERR_INPUT, w->path, what);
    }
    if (info.type == H5O_TYPE_DATASET) {
        w->datasets++;
        return verify_dataset_(obj, w->path, where);
    }
    nq_status st = NQ_OK;
    if (info.num_attrs > 0) {
        w->attr_sets++;
        st = h5sum_check_attrs(obj, w->path, where, 1);
    }
    if (st != NQ_OK || info.type != H5O_TYPE_GROUP) return st;
    char const *saved = w->where;
    w->where = where;
    hsize_t idx = 0;
    herr_t const rc = H5Literate(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, verify_link_cb_, w);
    w->where = saved;
    if (w->status != NQ_OK) return w->status;
    if (rc < 0) {
        char what[700];
        snprintf(what, sizeof what, "%s: cannot list the group's members (damaged file)", where);
        return h5u_fail(NQ_ERR_INPUT, w->path, what);
    }
    return NQ_OK;
}

static herr_t verify_link_cb_(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    (void)info;
    VerifyWalk *w = data;
    char where[600];
    snprintf(where, sizeof where, "%s%s%s", w->where, strcmp(w->where, "/") ? "/" : "", name);
    hid_t const obj = H5Oopen(group, name, H5P_DEFAULT);
    nq_status st;
    if (obj < 0) {
        char what[700];
        snprintf(what, sizeof what, "%s: cannot open (damaged file)", where);
        st = h5u_fail(NQ_ERR_INPUT, w->path, what);
    } else {
        st = verify_object_(obj, where, w);
    }
    h5u_close(obj);
    if (st != NQ_OK) {
        w->status = st;
        return -1;
    }
    return 0;
}

nq_status h5sum_verify_file(hid_t file, const char *path, int *n_datasets, int *n_attr_sets) {
    VerifyWalk w = {path, NQ_OK, 0, 0, "/"};
    hid_t const root = H5Gopen2(file, "/", H5P_DEFAULT);
    nq_status const st = root < 0 ? h5u_fail(NQ_ERR_INPUT, path, "/: cannot open (damaged file)")
                                  : verify_object_(root, "/", &w);
    h5u_close(root);
    H5Eclear2(H5E_DEFAULT);
    if (st != NQ_OK) return st;
    *n_datasets = w.datasets;
    *n_attr_sets = w.attr_sets;
    return NQ_OK;
}
