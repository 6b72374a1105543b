#include "h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "h5sum.h"
#include "h5zstd.h"

/* ------------------------------------------------------------------ errors */

/* The innermost (first when walking upward) description of the error stack. */
static herr_t innermost_cb_(unsigned n, const H5E_error2_t *err, void *data) {
    if (n == 0 && err->desc) snprintf((char *)data, 256, "%s", err->desc);
    /* sec2's description holds a ctime() with its newline: keep the error on one line */
    for (char *c = data; *c; c++)
        if (*c == '\n') *c = ' ';
    return 0;
}

nq_status h5u_fail(nq_status code, const char *file, const char *what) {
    char detail[256] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_cb_, detail);
    H5Eclear2(H5E_DEFAULT);
    if (detail[0]) return nq_fail(code, "%s: %s (%s)", file, what, detail);
    return nq_fail(code, "%s: %s", file, what);
}

/* "/blocks/0003" + "wq/codes" -> "/blocks/0003/wq/codes", for messages. */
static void object_path_(hid_t loc, const char *name, char *out, size_t size) {
    char base[384] = "";
    if (H5Iget_name(loc, base, sizeof base) < 0) base[0] = '\0';
    H5Eclear2(H5E_DEFAULT);
    size_t const n = strlen(base);
    const char *sep = n > 0 && base[n - 1] == '/' ? "" : "/";
    snprintf(out, size, "%s%s%s", base, sep, name);
}

nq_status h5u_init(void) {
    if (H5open() < 0) return nq_fail(NQ_ERR_RUNTIME, "HDF5: library initialisation failed");
    if (H5Eset_auto2(H5E_DEFAULT, NULL, NULL) < 0)
        return nq_fail(NQ_ERR_RUNTIME, "HDF5: cannot switch off automatic error printing");
    return h5zstd_register();
}

void h5u_close(hid_t id) {
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_FILE: H5Fclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
}

/* ------------------------------------------------------------------ files */

/* sec2 driver; H5F_CLOSE_SEMI makes H5Fclose fail instead of silently keeping the file
 * open when an object was left open (a leak would otherwise defer the real close until
 * after our rename). */
static hid_t fapl_create_(void) {
    hid_t const fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    if (H5Pset_fapl_sec2(fapl) < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_SEMI) < 0) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

/* Creates path with fapl (consumed): timestamps off, the 1.10 format. */
static nq_status create_(const char *path, hid_t fapl, hid_t *file) {
    *file = -1;
    hid_t const fcpl = H5Pcreate(H5P_FILE_CREATE);
    nq_status st = NQ_OK;
    if (fapl < 0 || fcpl < 0 || H5Pset_obj_track_times(fcpl, 0) < 0) {
        st = h5u_fail(NQ_ERR_RUNTIME, path, "cannot set up file creation properties");
        goto cleanup;
    }
    /* The 1.10 format checksums all file metadata (superblock, object headers, chunk
     * indexes): a damaged file is then refused with an error instead of being decoded,
     * which libhdf5 1.10.8 does not always survive (found by fuzz/fuzz_state_file.c). */
    if (H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST) < 0) {
        st = h5u_fail(NQ_ERR_RUNTIME, path, "cannot set up file format version");
        goto cleanup;
    }
    *file = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
    if (*file < 0) st = h5u_fail(NQ_ERR_RUNTIME, path, "cannot create HDF5 file");
cleanup:
    h5u_close(fcpl);
    h5u_close(fapl);
    return st;
}

nq_status h5u_create(const char *path, hid_t *file) { return create_(path, fapl_create_(), file); }

nq_status h5u_create_in_memory(const char *name, hid_t *file) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && (H5Pset_fapl_core(fapl, 64u << 20, 0) < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_SEMI) < 0)) {
        H5Pclose(fapl);
        fapl = -1;
    }
    return create_(name, fapl, file);
}

nq_status h5u_open_mpio(const char *path, MPI_Comm comm, int create, const char *what, hid_t *file) {
    *file = H5I_INVALID_HID;
    hid_t const fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0) {
        h5u_close(fapl);
        return h5u_fail(NQ_ERR_RUNTIME, path, "cannot set up MPI-IO file access");
    }
    *file = create ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl) : H5Fopen(path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    if (*file >= 0) return NQ_OK;
    char message[200];
    snprintf(message, sizeof message, "cannot %s %s", create ? "create" : "open", what);
    return h5u_fail(create ? NQ_ERR_RUNTIME : NQ_ERR_INPUT, path, message);
}

nq_status h5u_open_read(const char *path, hid_t *file) {
    *file = -1;
    struct stat sb;
    if (stat(path, &sb) != 0) return nq_fail(NQ_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    htri_t const is_hdf5 = H5Fis_hdf5(path);
    H5Eclear2(H5E_DEFAULT);
    if (is_hdf5 <= 0) return nq_fail(NQ_ERR_INPUT, "%s: not an HDF5 file", path);
    hid_t const fapl = fapl_create_();
    if (fapl < 0) return h5u_fail(NQ_ERR_RUNTIME, path, "cannot set up file access properties");
    *file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    /* every H5 call clears the error stack: take the message before closing fapl */
    nq_status const st = *file < 0 ? h5u_fail(NQ_ERR_INPUT, path, "damaged HDF5 file, cannot open") : NQ_OK;
    H5Pclose(fapl);
    return st;
}

nq_status h5u_reserve(hid_t file, const char *path, size_t bytes) {
    hid_t const fapl = H5Fget_access_plist(file);
    void *handle = NULL;
    int const sec2 = fapl >= 0 && H5Pget_driver(fapl) == H5FD_SEC2 && H5Fget_vfd_handle(file, fapl, &handle) >= 0;
    h5u_close(fapl);
    H5Eclear2(H5E_DEFAULT);
    if (!sec2 || !handle) return NQ_OK;
    if (fallocate(*(int *)handle, FALLOC_FL_KEEP_SIZE, 0, (off_t)bytes) == 0) return NQ_OK;
    if (errno == EOPNOTSUPP || errno == ENOSYS) return NQ_OK; /* a file system without it */
    return nq_fail(NQ_ERR_RUNTIME, "%s: cannot reserve %.1f MB for the file: %s", path, (double)bytes / 1e6,
                   strerror(errno));
}

void h5u_release(const char *path) {
    int const fd = open(path, O_WRONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0) return;
    /* Blocks kept beyond the end: punched out (ext4, xfs, tmpfs), else a truncation to the
     * same size frees them on file systems that do that; at worst they stay until unlink. */
    if (fstat(fd, &sb) == 0 &&
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, sb.st_size, (off_t)1 << 50) != 0 &&
        ftruncate(fd, sb.st_size) != 0) {
    }
    close(fd);
}

nq_status h5u_close_file(hid_t file, const char *path) {
    if (file < 0) return NQ_OK;
    if (H5Fclose(file) < 0) return h5u_fail(NQ_ERR_RUNTIME, path, "closing the HDF5 file failed");
    return NQ_OK;
}

/* ------------------------------------------------------------------ groups */

int h5u_exists(hid_t loc, const char *name) {
    char prefix[512];
    size_t const n = strlen(name);
    if (n == 0 || n >= sizeof prefix) return 0;
    /* H5Lexists fails on a path whose intermediate link is missing: check each prefix. */
    for (size_t i = 1; i <= n; i++) {
        if (i < n && name[i] != '/') continue;
        memcpy(prefix, name, i);
        prefix[i] = '\0';
        if (H5Lexists(loc, prefix, H5P_DEFAULT) <= 0) {
            H5Eclear2(H5E_DEFAULT);
            return 0;
        }
    }
    htri_t const ok = H5Oexists_by_name(loc, name, H5P_DEFAULT);
    H5Eclear2(H5E_DEFAULT);
    return ok > 0;
}

nq_status h5u_create_group(hid_t loc, const char *file, const char *name, hid_t *group) {
    *group = -1;
    hid_t const gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl >= 0 && H5Pset_obj_track_times(gcpl, 0) >= 0)
        *group = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    h5u_close(gcpl);
    if (*group < 0) {
        char what[600], path[512];
        object_path_(loc, name, path, sizeof path);
        snprintf(what, sizeof what, "cannot create group %s", path);
        return h5u_fail(NQ_ERR_RUNTIME, file, what);
    }
    return NQ_OK;
}

/* Opens group or dataset `name` (kind says which, for messages) with H5Gopen2 or
 * H5Dopen2: a missing one and one that fails to open are told apart. */
static nq_status open_object_(hid_t loc, const char *file, const char *name, const char *kind,
                              hid_t (*open)(hid_t, const char *, hid_t), hid_t *id) {
    char path[512];
    *id = -1;
    if (!h5u_exists(loc, name)) {
        object_path_(loc, name, path, sizeof path);
        return nq_fail(NQ_ERR_INPUT, "%s: missing %s %s", file, kind, path);
    }
    *id = open(loc, name, H5P_DEFAULT);
    if (*id < 0) {
        char what[600];
        object_path_(loc, name, path, sizeof path);
        snprintf(what, sizeof what, "cannot open %s %s", kind, path);
        return h5u_fail(NQ_ERR_INPUT, file, what);
    }
    return NQ_OK;
}

nq_status h5u_open_group(hid_t loc, const char *file, const char *name, hid_t *group) {
    return open_object_(loc, file, name, "group", H5Gopen2, group);
}

/* ------------------------------------------------------------------ datasets */

/* IEEE binary16 little-endian: HDF5 1.10 has no predefined half type, so it is built as
 * h5py builds its float16 (sign bit 15, exponent bits 10..14 biased by 15, mantissa 0..9),
 * once per process. */
static hid_t half_type_(void) {
    static hid_t t = -1;
    if (t < 0) {
        hid_t const h = H5Tcopy(H5T_IEEE_F32LE);
        if (h >= 0 && H5Tset_fields(h, 15, 10, 5, 0, 10) >= 0 && H5Tset_size(h, 2) >= 0 &&
            H5Tset_ebias(h, 15) >= 0 && H5Tset_precision(h, 16) >= 0)
            t = h;
        else if (h >= 0)
            H5Tclose(h);
    }
    return t;
}

static hid_t file_type_(H5UType t) {
    switch (t) {
    case H5U_I8: return H5T_STD_I8LE;
    case H5U_I32: return H5T_STD_I32LE;
    case H5U_F16: return half_type_();
    default: return H5T_IEEE_F32LE;
    }
}

static hid_t mem_type_(H5UType t) {
    switch (t) {
    case H5U_I8: return H5T_NATIVE_INT8;
    case H5U_I32: return H5T_NATIVE_INT32;
    case H5U_F16: return half_type_(); /* the bits as they are (little-endian machines) */
    default: return H5T_NATIVE_FLOAT;
    }
}

static size_t type_size_(H5UType t) { return t == H5U_I8 ? 1 : t == H5U_F16 ? 2 : 4; }

static const char *type_name_(H5UType t) {
    return t == H5U_F32 ? "float32" : t == H5U_F16 ? "float16" : t == H5U_I8 ? "int8" : "int32";
}

static void format_dims_(int rank, const hsize_t *dims, char *out, size_t size) {
    size_t used = 0;
    out[0] = '\0';
    if (rank == 0) snprintf(out, size, "[] (scalar)");
    for (int i = 0; i < rank && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "[%llu]", (unsigned long long)dims[i]);
}

/* Chunks of whole trailing dimensions: the leading dimensions are cut so that a chunk
 * holds about H5U_CHUNK_BYTES (whole tensor when smaller). */
static void chunk_dims_(H5UType type, int rank, const hsize_t *dims, hsize_t *chunk) {
    for (int i = 0; i < rank; i++) chunk[i] = dims[i] > 0 ? dims[i] : 1;
    for (int i = 0; i < rank; i++) {
        hsize_t inner = type_size_(type);
        for (int j = i + 1; j < rank; j++) inner *= chunk[j];
        if (inner <= H5U_CHUNK_BYTES) {
            hsize_t const rows = H5U_CHUNK_BYTES / inner;
            chunk[i] = rows < 1 ? 1 : rows < chunk[i] ? rows : chunk[i];
            return;
        }
        chunk[i] = 1;
    }
}

nq_status h5u_dcpl(const char *file, H5UType type, int rank, const hsize_t *dims,
                   int zstd_level, hid_t *dcpl) {
    if (rank < 1 || rank > H5U_MAX_RANK)
        return nq_fail(NQ_ERR_RUNTIME, "%s: dataset rank %d, expected 1..%d", file, rank, H5U_MAX_RANK);
    hsize_t chunk[H5U_MAX_RANK];
    chunk_dims_(type, rank, dims, chunk);
    *dcpl = H5Pcreate(H5P_DATASET_CREATE);
    /* int8 datasets are quantization codes: compressed as symbols (io/h5zstd_filter.h). */
    unsigned const cd_values[2] = {(unsigned)zstd_level,
                                   type == H5U_I8 ? H5Z_ZSTD_PARSE_SYMBOLS : H5Z_ZSTD_PARSE_LEVEL};
    if (*dcpl < 0 || H5Pset_obj_track_times(*dcpl, 0) < 0 || H5Pset_chunk(*dcpl, rank, chunk) < 0 ||
        (zstd_level > 0 &&
         H5Pset_filter(*dcpl, H5Z_FILTER_ZSTD, H5Z_FLAG_MANDATORY, 2, cd_values) < 0)) {
        h5u_close(*dcpl);
        *dcpl = -1;
        return h5u_fail(NQ_ERR_RUNTIME, file, "cannot set up dataset creation properties");
    }
    return NQ_OK;
}

static size_t element_count_(int rank, const hsize_t *dims) {
    size_t n = 1;
    for (int i = 0; i < rank; i++) n = nq_mul_size(n, (size_t)dims[i]);
    return n;
}

nq_status h5u_write(hid_t loc, const char *file, const char *name, H5UType type, int rank,
                    const hsize_t *dims, const void *data, int zstd_level) {
    hid_t dcpl = -1, space = -1, dset = -1;
    nq_status st = h5u_dcpl(file, type, rank, dims, zstd_level, &dcpl);
    if (st != NQ_OK) return st;
    char path[512], what[600];
    space = H5Screate_simple(rank, dims, NULL);
    if (space >= 0)
        dset = H5Dcreate2(loc, name, file_type_(type), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dset < 0 || H5Dwrite(dset, mem_type_(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        object_path_(loc, name, path, sizeof path);
        snprintf(what, sizeof what, "cannot write dataset %s", path);
        st = h5u_fail(NQ_ERR_RUNTIME, file, what);
    }
    if (st == NQ_OK) st = h5sum_write_data(dset, file, data, element_count_(rank, dims) * type_size_(type));
    h5u_close(dset);
    h5u_close(space);
    h5u_close(dcpl);
    return st;
}

static nq_status open_dataset_(hid_t loc, const char *file, const char *name, hid_t *dset) {
    return open_object_(loc, file, name, "dataset", H5Dopen2, dset);
}

static nq_status dataset_shape_(hid_t dset, const char *file, const char *path, int *rank,
                                hsize_t *dims) {
    hid_t const space = H5Dget_space(dset);
    int const r = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    if (r < 0 || r > H5U_MAX_RANK) {
        h5u_close(space);
        H5Eclear2(H5E_DEFAULT);
        return nq_fail(NQ_ERR_INPUT, "%s: dataset %s has an unreadable or unsupported shape", file, path);
    }
    H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    *rank = r;
    return NQ_OK;
}

nq_status h5u_shape(hid_t loc, const char *file, const char *name, int *rank, hsize_t *dims) {
    char path[512];
    hid_t dset;
    nq_status st = open_dataset_(loc, file, name, &dset);
    if (st != NQ_OK) return st;
    object_path_(loc, name, path, sizeof path);
    st = dataset_shape_(dset, file, path, rank, dims);
    H5Dclose(dset);
    return st;
}

static nq_status check_type_(hid_t dset, const char *file, const char *path, H5UType type) {
    hid_t const t = H5Dget_type(dset);
    H5T_class_t const cls = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    size_t const size = t < 0 ? 0 : H5Tget_size(t);
    h5u_close(t);
    H5T_class_t const want = type == H5U_F32 || type == H5U_F16 ? H5T_FLOAT : H5T_INTEGER;
    if (cls != want || size != type_size_(type))
        return nq_fail(NQ_ERR_INPUT, "%s: dataset %s has elements of %zu bytes (%s), expected %s", file,
                       path, size, cls == H5T_FLOAT ? "float" : cls == H5T_INTEGER ? "integer" : "other",
                       type_name_(type));
    return NQ_OK;
}

static nq_status read_(hid_t loc, const char *file, const char *name, H5UType type, int rank,
                       const hsize_t *dims, void *out, int checksum_required) {
    char path[512];
    hid_t dset;
    nq_status st = open_dataset_(loc, file, name, &dset);
    if (st != NQ_OK) return st;
    object_path_(loc, name, path, sizeof path);
    int got_rank = 0;
    hsize_t got[H5U_MAX_RANK];
    st = dataset_shape_(dset, file, path, &got_rank, got);
    if (st == NQ_OK && (got_rank != rank || memcmp(got, dims, (size_t)rank * sizeof *dims) != 0)) {
        char have_s[96], want_s[96];
        format_dims_(got_rank, got, have_s, sizeof have_s);
        format_dims_(rank, dims, want_s, sizeof want_s);
        st = nq_fail(NQ_ERR_INPUT, "%s: dataset %s has shape %s, expected %s", file, path, have_s, want_s);
    }
    if (st == NQ_OK) st = check_type_(dset, file, path, type);
    if (st == NQ_OK && H5Dread(dset, mem_type_(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
        char what[600];
        snprintf(what, sizeof what, "cannot read dataset %s (damaged file?)", path);
        st = h5u_fail(NQ_ERR_INPUT, file, what);
    }
    if (st == NQ_OK)
        st = h5sum_check_data(dset, file, path, out, element_count_(rank, dims) * type_size_(type),
                              checksum_required);
    H5Dclose(dset);
    return st;
}

nq_status h5u_read(hid_t loc, const char *file, const char *name, H5UType type, int rank,
                   const hsize_t *dims, void *out) {
    return read_(loc, file, name, type, rank, dims, out, 0);
}

nq_status h5u_read_checked(hid_t loc, const char *file, const char *name, H5UType type, int rank,
                           const hsize_t *dims, void *out) {
    return read_(loc, file, name, type, rank, dims, out, 1);
}

/* ------------------------------------------------------------------ attributes */

static nq_status attr_write_(hid_t obj, const char *file, const char *name, hid_t ftype,
                             hid_t mtype, const void *value) {
    hid_t const space = H5Screate(H5S_SCALAR);
    hid_t const attr = space < 0 ? -1 : H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t const rc = attr < 0 ? -1 : H5Awrite(attr, mtype, value);
    nq_status st = NQ_OK;
    if (rc < 0) {
        char what[300];
        snprintf(what, sizeof what, "cannot write attribute %s", name);
        st = h5u_fail(NQ_ERR_RUNTIME, file, what);
    }
    h5u_close(attr);
    h5u_close(space);
    return st;
}

nq_status h5u_attr_write_int(hid_t obj, const char *file, const char *name, long long value) {
    return attr_write_(obj, file, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, &value);
}

nq_status h5u_attr_write_double(hid_t obj, const char *file, const char *name, double value) {
    return attr_write_(obj, file, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

nq_status h5u_attr_write_string(hid_t obj, const char *file, const char *name, const char *value) {
    hid_t const t = H5Tcopy(H5T_C_S1);
    if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        h5u_close(t);
        return h5u_fail(NQ_ERR_RUNTIME, file, "cannot make a string type");
    }
    nq_status const st = attr_write_(obj, file, name, t, t, &value);
    H5Tclose(t);
    return st;
}

/* Opens attribute name of obj with a class check; "missing attribute" otherwise. */
static nq_status attr_open_(hid_t obj, const char *file, const char *where, const char *name,
                            H5T_class_t want, hid_t *attr, hid_t *type) {
    *attr = *type = -1;
    htri_t const exists = H5Aexists(obj, name);
    H5Eclear2(H5E_DEFAULT);
    if (exists <= 0) return nq_fail(NQ_ERR_INPUT, "%s: %s: missing attribute %s", file, where, name);
    *attr = H5Aopen(obj, name, H5P_DEFAULT);
    *type = *attr < 0 ? -1 : H5Aget_type(*attr);
    hid_t const space = *attr < 0 ? -1 : H5Aget_space(*attr);
    hssize_t const n = space < 0 ? -1 : H5Sget_simple_extent_npoints(space);
    h5u_close(space);
    H5Eclear2(H5E_DEFAULT);
    if (*type < 0 || H5Tget_class(*type) != want || n != 1) {
        h5u_close(*type);
        h5u_close(*attr);
        *attr = *type = -1;
        return nq_fail(NQ_ERR_INPUT, "%s: %s: attribute %s is not a single %s", file, where, name,
                       want == H5T_STRING ? "string" : want == H5T_FLOAT ? "float" : "integer");
    }
    return NQ_OK;
}

static nq_status attr_read_num_(hid_t obj, const char *file, const char *where, const char *name,
                                H5T_class_t cls, hid_t mtype, void *value) {
    hid_t attr, type;
    nq_status st = attr_open_(obj, file, where, name, cls, &attr, &type);
    if (st != NQ_OK) return st;
    if (H5Aread(attr, mtype, value) < 0) {
        char what[300];
        snprintf(what, sizeof what, "%s: cannot read attribute %s", where, name);
        st = h5u_fail(NQ_ERR_INPUT, file, what);
    }
    H5Tclose(type);
    H5Aclose(attr);
    return st;
}

nq_status h5u_attr_read_int(hid_t obj, const char *file, const char *where, const char *name,
                            long long *value) {
    return attr_read_num_(obj, file, where, name, H5T_INTEGER, H5T_NATIVE_LLONG, value);
}

nq_status h5u_attr_read_double(hid_t obj, const char *file, const char *where,
                               const char *name, double *value) {
    return attr_read_num_(obj, file, where, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, value);
}

/* Variable-length string: HDF5 allocates the copy; we duplicate it with malloc. */
static char *read_vlen_string_(hid_t attr, hid_t type) {
    char *raw = NULL;
    if (H5Aread(attr, type, &raw) < 0 || !raw) return NULL;
    char *copy = nq_calloc(strlen(raw) + 1, 1, "string attribute");
    if (copy) memcpy(copy, raw, strlen(raw));
    H5free_memory(raw);
    return copy;
}

static char *read_fixed_string_(hid_t attr, hid_t type) {
    size_t const size = H5Tget_size(type);
    char *buf = nq_calloc(size + 1, 1, "string attribute");
    if (buf && H5Aread(attr, type, buf) < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

nq_status h5u_attr_read_string(hid_t obj, const char *file, const char *where,
                               const char *name, char **value) {
    *value = NULL;
    hid_t attr, type;
    nq_status st = attr_open_(obj, file, where, name, H5T_STRING, &attr, &type);
    if (st != NQ_OK) return st;
    htri_t const vlen = H5Tis_variable_str(type);
    *value = vlen > 0 ? read_vlen_string_(attr, type) : read_fixed_string_(attr, type);
    if (!*value) {
        char what[300];
        snprintf(what, sizeof what, "%s: cannot read attribute %s", where, name);
        st = h5u_fail(NQ_ERR_INPUT, file, what);
    }
    H5Tclose(type);
    H5Aclose(attr);
    return st;
}
