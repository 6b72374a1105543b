#include "qlevel_file.h"

#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "act_dtype_h5.h"
#include "atomic_file.h"
#include "h5sum.h"
#include "h5util.h"
#include "mpi_check.h"
#include "run_dir.h"

struct QLevelReader {
    hid_t file, set;
    hid_t type; /* stored values' type, also their memory type */
    ActDtype dtype;
    uint64_t *sums; /* [N] */
    int N, T, d;
    char path[PATH_MAX];
};

nq_status qlevel_path(const char *run_dir, int level, char *buf, size_t size) {
    return run_dir_qlevel_path(run_dir, level, buf, size);
}

int qlevel_exists(const char *run_dir, int level) {
    char path[PATH_MAX];
    return qlevel_path(run_dir, level, path, sizeof path) == NQ_OK && access(path, F_OK) == 0;
}

/* Collective: the checksums of this rank's sequences (their stored bytes, per_seq each)
 * into /checksums [N]. */
static nq_status write_sums(hid_t file, const char *path, hid_t dcpl, hid_t xfer, int N, size_t per_seq,
                            int first, int count, const void *stored) {
    uint64_t *sums = nq_calloc((size_t)(count > 0 ? count : 1), sizeof *sums, "hand-on checksums");
    if (!sums) return NQ_ERR_RUNTIME;
    for (int i = 0; i < count; i++) sums[i] = h5sum_bytes((const char *)stored + (size_t)i * per_seq, per_seq);
    hsize_t const dims[1] = {(hsize_t)N}, start[1] = {(hsize_t)first}, size[1] = {(hsize_t)count};
    hsize_t const n_mem = (hsize_t)(count > 0 ? count : 1);
    hid_t const space = H5Screate_simple(1, dims, NULL), mem = H5Screate_simple(1, &n_mem, NULL);
    hid_t const set = space < 0 ? -1 : H5Dcreate2(file, "checksums", H5T_STD_U64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t const sel = space < 0 ? -1
                       : count > 0 ? H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, size, NULL)
                                   : H5Sselect_none(space);
    nq_status st = NQ_OK;
    if (set < 0 || mem < 0 || sel < 0 || (count == 0 && H5Sselect_none(mem) < 0) ||
        H5Dwrite(set, H5T_NATIVE_UINT64, mem, space, xfer, sums) < 0)
        st = h5u_fail(NQ_ERR_RUNTIME, path, "write of /checksums failed");
    h5u_close(set);
    h5u_close(space);
    h5u_close(mem);
    free(sums);
    return st;
}

static nq_status write_shard(hid_t file, const char *path, ActDtype dtype, int N, int T, int d, int first,
                             int count, float *data) {
    hsize_t const dims[3] = {(hsize_t)N, (hsize_t)T, (hsize_t)d};
    hsize_t const start[3] = {(hsize_t)first, 0, 0}, size[3] = {(hsize_t)count, (hsize_t)T, (hsize_t)d};
    hsize_t const n_mem = (hsize_t)(count > 0 ? count : 1) * T * d;
    hid_t const space = H5Screate_simple(3, dims, NULL);
    hid_t const mem = H5Screate_simple(1, &n_mem, NULL);
    hid_t const dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t const xfer = H5Pcreate(H5P_DATASET_XFER);
    hid_t const type = act_h5_type(dtype);
    hid_t set = H5I_INVALID_HID;
    size_t const values = (size_t)count * T * d;
    size_t const overflows = act_overflows(dtype, data, values); /* reported after the collectives */
    void *const stored = act_encode_in_place(dtype, data, values);
    nq_status st = NQ_OK;
    if (space < 0 || mem < 0 || dcpl < 0 || xfer < 0 || type < 0 || H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0 ||
        H5Pset_obj_track_times(dcpl, 0) < 0 || H5Pset_dxpl_mpio(xfer, H5FD_MPIO_COLLECTIVE) < 0) {
        st = h5u_fail(NQ_ERR_RUNTIME, path, "cannot set up the quantized activations");
        goto done;
    }
    set = H5Dcreate2(file, "qinputs", type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t const sel = count > 0 ? H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, size, NULL)
                                 : H5Sselect_none(space);
    if (set < 0 || sel < 0 || (count == 0 && H5Sselect_none(mem) < 0) ||
        H5Dwrite(set, type, mem, space, xfer, stored) < 0)
        st = h5u_fail(NQ_ERR_RUNTIME, path, "write of /qinputs failed");
    if (st == NQ_OK) st = write_sums(file, path, dcpl, xfer, N, (size_t)T * d * act_dtype_bytes(dtype), first, count, stored);
    if (st == NQ_OK) st = act_h5_write_dtype(file, path, dtype);
done:
    act_decode_in_place(dtype, data, values);
    if (st == NQ_OK && overflows > 0)
        st = nq_fail(NQ_ERR_RUNTIME,
                     "%s: %zu activations beyond the %s range would be stored as Inf; "
                     "run again with --restart and calibration.activation_dtype = \"bf16\" or \"fp32\"",
                     path, overflows, act_dtype_name(dtype));
    h5u_close(type);
    h5u_close(set);
    h5u_close(space);
    h5u_close(mem);
    h5u_close(dcpl);
    h5u_close(xfer);
    return st;
}

nq_status qlevel_write(const char *run_dir, int level, MPI_Comm comm, ActDtype dtype, int N, int T, int d,
                       int first, int count, float *data) {
    char tmp[PATH_MAX], path[PATH_MAX];
    int rank = 0;
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    /* The same temporary name on every rank of the writing group (a pid would differ);
     * qinputs/ itself is made with the run directory's layout (io/run_dir.h). */
    nq_status st = run_dir_qlevel_tmp_path(run_dir, level, tmp, sizeof tmp);
    if (st == NQ_OK) st = qlevel_path(run_dir, level, path, sizeof path);
    int ok = st == NQ_OK, all_ok = 0;
    MPI_CHECK(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, comm));
    if (!all_ok) return st != NQ_OK ? st : nq_fail(NQ_ERR_RUNTIME, "%s: another rank failed", run_dir);

    hid_t file = H5I_INVALID_HID;
    st = h5u_open_mpio(tmp, comm, 1, "the quantized activations", &file);
    if (st == NQ_OK) st = write_shard(file, tmp, dtype, N, T, d, first, count, data);
    nq_status const closed = file >= 0 ? h5u_close_file(file, tmp) : NQ_OK;
    if (st == NQ_OK) st = closed;
    ok = st == NQ_OK;
    MPI_CHECK(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, comm));
    if (!all_ok) {
        if (rank == 0) unlink(tmp);
        return st != NQ_OK ? st : nq_fail(NQ_ERR_RUNTIME, "%s: another rank failed to write", tmp);
    }
    if (rank == 0) st = atomic_commit(tmp, path);
    ok = st == NQ_OK;
    MPI_CHECK(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, comm));
    return all_ok ? NQ_OK : (st != NQ_OK ? st : nq_fail(NQ_ERR_RUNTIME, "%s: rename failed", path));
}

nq_status qlevel_open(const char *run_dir, int level, ActDtype dtype, int N, int T, int d, QLevelReader **out) {
    *out = NULL;
    QLevelReader *r = nq_calloc(1, sizeof *r, "quantized activations reader");
    if (!r) return NQ_ERR_RUNTIME;
    r->file = r->set = H5I_INVALID_HID;
    r->type = act_h5_type(dtype);
    r->dtype = dtype;
    r->N = N;
    r->T = T;
    r->d = d;
    nq_status st = qlevel_path(run_dir, level, r->path, sizeof r->path);
    if (st == NQ_OK && r->type < 0) st = h5u_fail(NQ_ERR_RUNTIME, r->path, "cannot make the hand-on's HDF5 type");
    if (st == NQ_OK) st = h5u_open_read(r->path, &r->file);
    if (st == NQ_OK) st = act_h5_check_dtype(r->file, r->path, dtype);
    int rank = 0;
    hsize_t dims[H5U_MAX_RANK] = {0};
    if (st == NQ_OK) st = h5u_shape(r->file, r->path, "qinputs", &rank, dims);
    if (st == NQ_OK && (rank != 3 || dims[0] != (hsize_t)N || dims[1] != (hsize_t)T || dims[2] != (hsize_t)d))
        st = nq_fail(NQ_ERR_INPUT, "%s: /qinputs has the wrong shape, expected [%d][%d][%d]", r->path, N, T, d);
    if (st == NQ_OK) {
        r->set = H5Dopen2(r->file, "qinputs", H5P_DEFAULT);
        if (r->set < 0) st = h5u_fail(NQ_ERR_INPUT, r->path, "cannot open /qinputs");
    }
    hsize_t const sum_dims[1] = {(hsize_t)N};
    if (st == NQ_OK) st = (r->sums = nq_calloc((size_t)N, sizeof *r->sums, "hand-on checksums")) ? NQ_OK : NQ_ERR_RUNTIME;
    if (st == NQ_OK) st = h5u_shape(r->file, r->path, "checksums", &rank, dims);
    if (st == NQ_OK && (rank != 1 || dims[0] != sum_dims[0]))
        st = nq_fail(NQ_ERR_INPUT, "%s: /checksums has the wrong shape, expected [%d]", r->path, N);
    if (st == NQ_OK) {
        hid_t const set = H5Dopen2(r->file, "checksums", H5P_DEFAULT);
        if (set < 0 || H5Dread(set, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, r->sums) < 0)
            st = h5u_fail(NQ_ERR_INPUT, r->path, "cannot read /checksums (damaged file)");
        h5u_close(set);
    }
    if (st != NQ_OK) {
        qlevel_close(r);
        return st;
    }
    *out = r;
    return NQ_OK;
}

nq_status qlevel_read(QLevelReader *r, const int *seqs, int n, float *out) {
    hsize_t const per_seq = (hsize_t)r->T * r->d;
    hid_t const mem = H5Screate_simple(1, &per_seq, NULL);
    hid_t const space = H5Dget_space(r->set);
    nq_status st = mem >= 0 && space >= 0 ? NQ_OK : h5u_fail(NQ_ERR_RUNTIME, r->path, "cannot create a dataspace");
    for (int i = 0; i < n && st == NQ_OK; i++) {
        hsize_t const start[3] = {(hsize_t)seqs[i], 0, 0}, size[3] = {1, (hsize_t)r->T, (hsize_t)r->d};
        float *const seq = out + (size_t)i * per_seq; /* the stored values land at its start */
        if (H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, size, NULL) < 0 ||
            H5Dread(r->set, r->type, mem, space, H5P_DEFAULT, seq) < 0)
            st = h5u_fail(NQ_ERR_RUNTIME, r->path, "read of /qinputs failed");
        else if (h5sum_bytes(seq, per_seq * act_dtype_bytes(r->dtype)) != r->sums[seqs[i]])
            st = nq_fail(NQ_ERR_INPUT, "%s: /qinputs sequence %d: checksum mismatch (damaged file)", r->path,
                         seqs[i]);
        else
            act_decode_in_place(r->dtype, seq, per_seq);
    }
    h5u_close(mem);
    h5u_close(space);
    return st;
}

void qlevel_close(QLevelReader *r) {
    if (!r) return;
    h5u_close(r->set);
    h5u_close(r->type);
    if (r->file >= 0) h5u_close_file(r->file, r->path);
    free(r->sums);
    free(r);
}

nq_status qlevel_verify(const char *run_dir, int level, ActDtype dtype, int N, int T, int d) {
    QLevelReader *r = NULL;
    nq_status st = qlevel_open(run_dir, level, dtype, N, T, d, &r);
    float *buf = st == NQ_OK ? nq_calloc((size_t)T * d, sizeof(float), "hand-on being verified") : NULL;
    if (st == NQ_OK && !buf) st = NQ_ERR_RUNTIME;
    for (int s = 0; s < N && st == NQ_OK; s++) st = qlevel_read(r, &s, 1, buf);
    free(buf);
    qlevel_close(r);
    return st;
}
