#include "qlevel_file.h"

#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "atomic_file.h"
#include "h5util.h"
#include "mpi_check.h"

struct QLevelReader {
    hid_t file, set;
    int N, T, d;
    char path[PATH_MAX];
};

nq_status qlevel_path(const char *run_dir, int level, char *buf, size_t size) {
    int const n = snprintf(buf, size, "%s/qinputs/level-%04d.h5", run_dir, level);
    if (n < 0 || (size_t)n >= size) return nq_fail(NQ_ERR_INPUT, "%s: run directory path too long", run_dir);
    return NQ_OK;
}

int qlevel_exists(const char *run_dir, int level) {
    char path[PATH_MAX];
    return qlevel_path(run_dir, level, path, sizeof path) == NQ_OK && access(path, F_OK) == 0;
}

/* The same temporary name on every rank of the writing group (a pid would differ). */
static nq_status tmp_path(const char *run_dir, int level, char *buf, size_t size) {
    int const n = snprintf(buf, size, "%s/qinputs/.level-%04d.h5.tmp", run_dir, level);
    if (n < 0 || (size_t)n >= size) return nq_fail(NQ_ERR_INPUT, "%s: run directory path too long", run_dir);
    return NQ_OK;
}

static nq_status write_shard(hid_t file, const char *path, int N, int T, int d, int first, int count,
                             const float *data) {
    hsize_t const dims[3] = {(hsize_t)N, (hsize_t)T, (hsize_t)d};
    hsize_t const start[3] = {(hsize_t)first, 0, 0}, size[3] = {(hsize_t)count, (hsize_t)T, (hsize_t)d};
    hsize_t const n_mem = (hsize_t)(count > 0 ? count : 1) * T * d;
    hid_t const space = H5Screate_simple(3, dims, NULL);
    hid_t const mem = H5Screate_simple(1, &n_mem, NULL);
    hid_t const dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t const xfer = H5Pcreate(H5P_DATASET_XFER);
    hid_t set = H5I_INVALID_HID;
    nq_status st = NQ_OK;
    if (space < 0 || mem < 0 || dcpl < 0 || xfer < 0 || H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0 ||
        H5Pset_obj_track_times(dcpl, 0) < 0 || H5Pset_dxpl_mpio(xfer, H5FD_MPIO_COLLECTIVE) < 0) {
        st = h5u_fail(NQ_ERR_RUNTIME, path, "cannot set up the quantized activations");
        goto done;
    }
    set = H5Dcreate2(file, "qinputs", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t const sel = count > 0 ? H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, size, NULL)
                                 : H5Sselect_none(space);
    if (set < 0 || sel < 0 || (count == 0 && H5Sselect_none(mem) < 0) ||
        H5Dwrite(set, H5T_NATIVE_FLOAT, mem, space, xfer, data) < 0)
        st = h5u_fail(NQ_ERR_RUNTIME, path, "write of /qinputs failed");
done:
    h5u_close(set);
    h5u_close(space);
    h5u_close(mem);
    h5u_close(dcpl);
    h5u_close(xfer);
    return st;
}

nq_status qlevel_write(const char *run_dir, int level, MPI_Comm comm, int N, int T, int d,
                       int first, int count, const float *data) {
    char dir[PATH_MAX], tmp[PATH_MAX], path[PATH_MAX];
    int rank = 0;
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    snprintf(dir, sizeof dir, "%s/qinputs", run_dir);
    nq_status st = tmp_path(run_dir, level, tmp, sizeof tmp);
    if (st == NQ_OK) st = qlevel_path(run_dir, level, path, sizeof path);
    if (st == NQ_OK && rank == 0) st = make_dirs(dir);
    int ok = st == NQ_OK, all_ok = 0;
    MPI_CHECK(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, comm));
    if (!all_ok) return st != NQ_OK ? st : nq_fail(NQ_ERR_RUNTIME, "%s: another rank failed", dir);

    hid_t file = H5I_INVALID_HID;
    st = h5u_open_mpio(tmp, comm, 1, "the quantized activations", &file);
    if (st == NQ_OK) st = write_shard(file, tmp, N, T, d, first, count, data);
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

nq_status qlevel_open(const char *run_dir, int level, int N, int T, int d, QLevelReader **out) {
    *out = NULL;
    QLevelReader *r = nq_calloc(1, sizeof *r, "quantized activations reader");
    if (!r) return NQ_ERR_RUNTIME;
    r->file = r->set = H5I_INVALID_HID;
    r->N = N;
    r->T = T;
    r->d = d;
    nq_status st = qlevel_path(run_dir, level, r->path, sizeof r->path);
    if (st == NQ_OK) st = h5u_open_read(r->path, &r->file);
    int rank = 0;
    hsize_t dims[H5U_MAX_RANK] = {0};
    if (st == NQ_OK) st = h5u_shape(r->file, r->path, "qinputs", &rank, dims);
    if (st == NQ_OK && (rank != 3 || dims[0] != (hsize_t)N || dims[1] != (hsize_t)T || dims[2] != (hsize_t)d))
        st = nq_fail(NQ_ERR_INPUT, "%s: /qinputs has the wrong shape, expected [%d][%d][%d]", r->path, N, T, d);
    if (st == NQ_OK) {
        r->set = H5Dopen2(r->file, "qinputs", H5P_DEFAULT);
        if (r->set < 0) st = h5u_fail(NQ_ERR_INPUT, r->path, "cannot open /qinputs");
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
        if (H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, size, NULL) < 0 ||
            H5Dread(r->set, H5T_NATIVE_FLOAT, mem, space, H5P_DEFAULT, out + (size_t)i * per_seq) < 0)
            st = h5u_fail(NQ_ERR_RUNTIME, r->path, "read of /qinputs failed");
    }
    h5u_close(mem);
    h5u_close(space);
    return st;
}

void qlevel_close(QLevelReader *r) {
    if (!r) return;
    h5u_close(r->set);
    if (r->file >= 0) h5u_close_file(r->file, r->path);
    free(r);
}
