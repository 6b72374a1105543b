#include "activations.h"

#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>

#include "act_dtype_h5.h"
#include "h5sum.h"
#include "h5util.h"

struct Activations {
    hid_t file;
    hid_t inputs; /* /inputs */
    hid_t sums;   /* /checksums */
    hid_t xfer_collective;
    hid_t type; /* the stored values' HDF5 type, also their memory type (act_dtype_h5.h) */
    ActDtype dtype;
    uint64_t *sums_read; /* [L+1][N], read from the file at the first read (NULL before) */
    int L, N, T, d;
    int complete;
    char path[PATH_MAX];
};

static nq_status fail(const Activations *a, const char *what) {
    return h5u_fail(NQ_ERR_RUNTIME, a->path, what);
}

static Activations *activations_new(const char *path, int L, int N, int T, int d, ActDtype dtype) {
    Activations *a = nq_calloc(1, sizeof *a, "activations handle");
    if (!a) return NULL;
    snprintf(a->path, sizeof a->path, "%s", path);
    a->file = a->inputs = a->sums = a->xfer_collective = H5I_INVALID_HID;
    a->type = act_h5_type(dtype);
    a->dtype = dtype;
    a->L = L;
    a->N = N;
    a->T = T;
    a->d = d;
    if (a->type < 0) {
        h5u_fail(NQ_ERR_RUNTIME, path, "cannot make the activations' HDF5 type");
        free(a);
        return NULL;
    }
    return a;
}

static nq_status make_collective_xfer(Activations *a) {
    a->xfer_collective = H5Pcreate(H5P_DATASET_XFER);
    if (a->xfer_collective < 0 || H5Pset_dxpl_mpio(a->xfer_collective, H5FD_MPIO_COLLECTIVE) < 0)
        return fail(a, "cannot create a collective transfer property list");
    return NQ_OK;
}

static nq_status create_inputs(Activations *a) {
    hsize_t const dims[4] = {(hsize_t)a->L + 1, (hsize_t)a->N, (hsize_t)a->T, (hsize_t)a->d};
    hid_t const space = H5Screate_simple(4, dims, NULL);
    hid_t const dcpl = H5Pcreate(H5P_DATASET_CREATE);
    nq_status st = NQ_OK;
    if (space < 0 || dcpl < 0 || H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0 ||
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0 || H5Pset_obj_track_times(dcpl, 0) < 0) {
        st = fail(a, "cannot set up the activation datasets");
        goto done;
    }
    a->inputs = H5Dcreate2(a->file, "inputs", a->type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (a->inputs < 0) st = fail(a, "cannot create dataset /inputs");
    hsize_t const sum_dims[2] = {(hsize_t)a->L + 1, (hsize_t)a->N};
    hid_t const sum_space = st == NQ_OK ? H5Screate_simple(2, sum_dims, NULL) : -1;
    if (sum_space >= 0)
        a->sums = H5Dcreate2(a->file, "checksums", H5T_STD_U64LE, sum_space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (st == NQ_OK && a->sums < 0) st = fail(a, "cannot create dataset /checksums");
    h5u_close(sum_space);
done:
    if (space >= 0) H5Sclose(space);
    if (dcpl >= 0) H5Pclose(dcpl);
    return st;
}

nq_status activations_create(const char *path, MPI_Comm comm, int L, int N, int T, int d, ActDtype dtype,
                             Activations **out) {
    *out = NULL;
    Activations *a = activations_new(path, L, N, T, d, dtype);
    if (!a) return NQ_ERR_RUNTIME;
    nq_status st = h5u_init();
    if (st == NQ_OK) st = h5u_open_mpio(path, comm, 1, "the activations file", &a->file);
    if (st == NQ_OK) st = create_inputs(a);
    if (st == NQ_OK) st = make_collective_xfer(a);
    if (st == NQ_OK) st = h5u_attr_write_int(a->file, a->path, "complete", 0);
    if (st == NQ_OK) st = act_h5_write_dtype(a->file, a->path, dtype);
    if (st != NQ_OK) {
        activations_close(a);
        return st;
    }
    *out = a;
    return NQ_OK;
}

static nq_status open_inputs(Activations *a) {
    hsize_t const want[4] = {(hsize_t)a->L + 1, (hsize_t)a->N, (hsize_t)a->T, (hsize_t)a->d};
    int rank = 0;
    hsize_t dims[H5U_MAX_RANK] = {0};
    nq_status st = h5u_shape(a->file, a->path, "inputs", &rank, dims);
    if (st != NQ_OK) return st;
    if (rank != 4 || dims[0] != want[0] || dims[1] != want[1] || dims[2] != want[2] || dims[3] != want[3])
        return nq_fail(NQ_ERR_INPUT,
                       "%s: dataset /inputs has shape [%llu][%llu][%llu][%llu], expected [%d][%d][%d][%d] "
                       "(made for another model or calibration set)",
                       a->path, (unsigned long long)dims[0], (unsigned long long)dims[1],
                       (unsigned long long)dims[2], (unsigned long long)dims[3], a->L + 1, a->N, a->T, a->d);
    a->inputs = H5Dopen2(a->file, "inputs", H5P_DEFAULT);
    if (a->inputs < 0) return fail(a, "cannot open dataset /inputs");
    st = h5u_shape(a->file, a->path, "checksums", &rank, dims);
    if (st != NQ_OK) return st; /* a file from before checksums: "missing dataset /checksums" */
    if (rank != 2 || dims[0] != want[0] || dims[1] != want[1])
        return nq_fail(NQ_ERR_INPUT, "%s: dataset /checksums has the wrong shape, expected [%d][%d]", a->path,
                       a->L + 1, a->N);
    a->sums = H5Dopen2(a->file, "checksums", H5P_DEFAULT);
    if (a->sums < 0) return fail(a, "cannot open dataset /checksums");
    return NQ_OK;
}

nq_status activations_open(const char *path, MPI_Comm comm, int L, int N, int T, int d, ActDtype dtype,
                           Activations **out) {
    *out = NULL;
    Activations *a = activations_new(path, L, N, T, d, dtype);
    if (!a) return NQ_ERR_RUNTIME;
    nq_status st = h5u_init();
    if (st == NQ_OK) st = h5u_open_mpio(path, comm, 0, "the activations file", &a->file);
    long long complete = 0;
    if (st == NQ_OK) st = act_h5_check_dtype(a->file, a->path, dtype);
    if (st == NQ_OK) st = open_inputs(a);
    if (st == NQ_OK) st = make_collective_xfer(a);
    if (st == NQ_OK) st = h5u_attr_read_int(a->file, a->path, "/", "complete", &complete);
    if (st != NQ_OK) {
        activations_close(a);
        return st;
    }
    a->complete = complete == 1;
    *out = a;
    return NQ_OK;
}

nq_status activations_close(Activations *a) {
    if (!a) return NQ_OK;
    h5u_close(a->inputs);
    h5u_close(a->sums);
    h5u_close(a->xfer_collective);
    h5u_close(a->type);
    free(a->sums_read);
    nq_status const st = h5u_close_file(a->file, a->path);
    free(a);
    return st;
}

int activations_complete(const Activations *a) { return a->complete; }

nq_status activations_set_complete(Activations *a) {
    if (H5Adelete(a->file, "complete") < 0) return fail(a, "cannot update attribute complete");
    nq_status const st = h5u_attr_write_int(a->file, a->path, "complete", 1);
    if (st == NQ_OK) a->complete = 1;
    return st;
}

/* The file space of sequences [first, first + count) of one level, in /inputs or (sums)
 * in /checksums. */
static hid_t slab_of(Activations *a, int sums, int level, int first, int count) {
    hid_t const space = H5Dget_space(sums ? a->sums : a->inputs);
    if (space < 0) return -1;
    hsize_t const start[4] = {(hsize_t)level, (hsize_t)first, 0, 0};
    hsize_t const size[4] = {1, (hsize_t)count, (hsize_t)a->T, (hsize_t)a->d};
    herr_t const rc = count > 0 ? H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, size, NULL)
                                : H5Sselect_none(space);
    if (rc < 0) {
        H5Sclose(space);
        return -1;
    }
    return space;
}

static hid_t slab(Activations *a, int level, int first, int count) { return slab_of(a, 0, level, first, count); }

/* Collective: the checksums of the sequences this rank writes (their stored bytes), beside
 * them. */
static nq_status write_sums(Activations *a, int level, int first, int count, const void *stored) {
    size_t const per_seq = (size_t)a->T * a->d * act_dtype_bytes(a->dtype);
    uint64_t *sums = nq_calloc((size_t)(count > 0 ? count : 1), sizeof *sums, "activation checksums");
    if (!sums) return NQ_ERR_RUNTIME;
    for (int i = 0; i < count; i++) sums[i] = h5sum_bytes((const char *)stored + (size_t)i * per_seq, per_seq);
    hsize_t const n = (hsize_t)(count > 0 ? count : 1);
    hid_t const mem = H5Screate_simple(1, &n, NULL);
    hid_t const file = slab_of(a, 1, level, first, count);
    nq_status st = NQ_OK;
    if (mem < 0 || file < 0 || (count == 0 && H5Sselect_none(mem) < 0) ||
        H5Dwrite(a->sums, H5T_NATIVE_UINT64, mem, file, a->xfer_collective, sums) < 0) {
        char what[96];
        snprintf(what, sizeof what, "write of /checksums level %d failed", level);
        st = fail(a, what);
    }
    h5u_close(mem);
    h5u_close(file);
    free(sums);
    return st;
}

/* Independent: every sequence's checksum, read once (after capture has finished). */
static nq_status load_sums(Activations *a) {
    if (a->sums_read) return NQ_OK;
    uint64_t *sums = nq_calloc((size_t)(a->L + 1) * a->N, sizeof *sums, "activation checksums");
    if (!sums) return NQ_ERR_RUNTIME;
    if (H5Dread(a->sums, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, sums) < 0) {
        free(sums);
        return h5u_fail(NQ_ERR_INPUT, a->path, "read of /checksums failed (damaged file?)");
    }
    a->sums_read = sums;
    return NQ_OK;
}

static nq_status check_sequence(Activations *a, int level, int seq, const void *stored) {
    size_t const per_seq = (size_t)a->T * a->d * act_dtype_bytes(a->dtype);
    uint64_t const want = a->sums_read[(size_t)level * a->N + seq];
    if (h5sum_bytes(stored, per_seq) == want) return NQ_OK;
    return nq_fail(NQ_ERR_INPUT, "%s: /inputs level %d sequence %d: checksum mismatch (damaged file)", a->path,
                   level, seq);
}

nq_status activations_write(Activations *a, int level, int first, int count, float *data) {
    hsize_t const n = (hsize_t)(count > 0 ? count : 1) * a->T * a->d;
    size_t const values = (size_t)count * a->T * a->d;
    size_t const overflows = act_overflows(a->dtype, data, values); /* reported after the collectives */
    void *const stored = act_encode_in_place(a->dtype, data, values);
    hid_t const mem = H5Screate_simple(1, &n, NULL);
    hid_t const file = slab(a, level, first, count);
    nq_status st = NQ_OK;
    if (mem < 0 || file < 0 || (count == 0 && H5Sselect_none(mem) < 0)) {
        st = fail(a, "cannot select the sequences to write");
    } else if (H5Dwrite(a->inputs, a->type, mem, file, a->xfer_collective, stored) < 0) {
        /* MPI-IO's error names no errno: tell a full file system apart (fault test). */
        struct statvfs fs;
        int const full = statvfs(a->path, &fs) == 0 &&
                         (double)fs.f_bavail * (double)fs.f_frsize < (double)n * act_dtype_bytes(a->dtype);
        char what[128];
        snprintf(what, sizeof what, "write of /inputs level %d failed%s", level,
                 full ? ", the file system is full" : "");
        st = fail(a, what);
    }
    if (mem >= 0) H5Sclose(mem);
    if (file >= 0) H5Sclose(file);
    if (st == NQ_OK) st = write_sums(a, level, first, count, stored);
    act_decode_in_place(a->dtype, data, values); /* data = what a read returns */
    if (st == NQ_OK && overflows > 0)
        st = nq_fail(NQ_ERR_RUNTIME,
                     "%s: level %d: %zu activations beyond the %s range would be stored as Inf; "
                     "run again with --restart and calibration.activation_dtype = \"bf16\" or \"fp32\"",
                     a->path, level, overflows, act_dtype_name(a->dtype));
    return st;
}

nq_status activations_read(Activations *a, int level, const int *seqs, int n, float *out) {
    size_t const per_seq = (size_t)a->T * a->d;
    hsize_t const count = per_seq;
    nq_status st = load_sums(a);
    if (st != NQ_OK) return st;
    hid_t const mem = H5Screate_simple(1, &count, NULL);
    if (mem < 0) return fail(a, "cannot create a memory space");
    for (int i = 0; i < n && st == NQ_OK; i++) {
        hid_t const file = slab(a, level, seqs[i], 1);
        float *const seq = out + i * per_seq; /* the stored values land at its start */
        if (file < 0 || H5Dread(a->inputs, a->type, mem, file, H5P_DEFAULT, seq) < 0) {
            char what[96];
            snprintf(what, sizeof what, "read of /inputs level %d sequence %d failed", level, seqs[i]);
            st = fail(a, what);
        }
        if (st == NQ_OK) st = check_sequence(a, level, seqs[i], seq);
        if (st == NQ_OK) act_decode_in_place(a->dtype, seq, per_seq);
        if (file >= 0) H5Sclose(file);
    }
    H5Sclose(mem);
    return st;
}

nq_status activations_verify(Activations *a, int first, int count) {
    size_t const per_seq = (size_t)a->T * a->d;
    float *buf = nq_calloc(per_seq, sizeof(float), "activations being verified");
    nq_status st = buf ? NQ_OK : NQ_ERR_RUNTIME;
    for (int level = 0; level <= a->L && st == NQ_OK; level++)
        for (int s = first; s < first + count && st == NQ_OK; s++) st = activations_read(a, level, &s, 1, buf);
    free(buf);
    return st;
}

nq_status activations_flush(Activations *a) {
    if (H5Fflush(a->file, H5F_SCOPE_GLOBAL) < 0) return fail(a, "flush failed");
    return NQ_OK;
}

/* ------------------------------------------------------------------ capture progress */

nq_status activations_levels_done(Activations *a, int *levels) {
    *levels = 0;
    if (H5Aexists(a->file, "levels_done") <= 0) return NQ_OK;
    long long n = 0;
    nq_status const st = h5u_attr_read_int(a->file, a->path, "/", "levels_done", &n);
    if (st == NQ_OK) *levels = n >= 0 && n <= a->L + 1 ? (int)n : 0;
    return st;
}

nq_status activations_mark_levels_done(Activations *a, int levels) {
    nq_status st = activations_flush(a); /* the data first: the mark never runs ahead of it */
    if (st == NQ_OK && H5Aexists(a->file, "levels_done") > 0 && H5Adelete(a->file, "levels_done") < 0)
        st = fail(a, "cannot update attribute levels_done");
    if (st == NQ_OK) st = h5u_attr_write_int(a->file, a->path, "levels_done", levels);
    if (st == NQ_OK) st = activations_flush(a);
    return st;
}
