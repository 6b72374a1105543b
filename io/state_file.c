/* Optimiser state files: raw contiguous datasets + an XXH3-64 checksum, written atomically. */
#include "state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>

#include "atomic_file.h"
#include "clock.h"
#include "h5util.h"

#define CHECKSUM_PREFIX "xxh3-64:"

/* ------------------------------------------------------------------ checksum */

static size_t array_bytes_(const ReconArray *a) {
    return nq_mul_size(a->count, a->is_double ? sizeof(double) : sizeof(float));
}

/* XXH3-64 over (name, count, type, bytes) of every array, in order. */
static nq_status arrays_checksum_(const ReconArray *arrays, int n, uint64_t *out) {
    XXH3_state_t *st = XXH3_createState();
    if (!st) return nq_fail(NQ_ERR_RUNTIME, "state file: out of memory for the checksum state");
    XXH3_64bits_reset(st);
    for (int i = 0; i < n; i++) {
        uint64_t const meta[2] = {(uint64_t)arrays[i].count, (uint64_t)arrays[i].is_double};
        XXH3_64bits_update(st, arrays[i].name, strnlen(arrays[i].name, sizeof arrays[i].name));
        XXH3_64bits_update(st, meta, sizeof meta);
        if (arrays[i].count > 0) XXH3_64bits_update(st, arrays[i].data, array_bytes_(&arrays[i]));
    }
    *out = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return NQ_OK;
}

/* ------------------------------------------------------------------ datasets */
/* A dataset is created contiguous and allocated at once (early, never filled), and its
 * bytes are then written with pwrite at the offset HDF5 gave it, outside the library: the
 * least work a write can be (no chunk index, no cache, no copy), and a write that can be
 * paced and abandoned (state_file_save_within). On this machine's shared disk every layout
 * was bound by the disk (0.2-0.6 GB/s for 2.5 GB, dd 0.3-1.0 GB/s). float64 arrays (sums
 * kept in double) are stored as float64. The file types are little-endian, as x86-64 and
 * aarch64 memory is. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "state files write memory as little-endian float32/float64"
#endif

typedef struct {
    const void *data;
    size_t bytes;
    uint64_t offset; /* in the file */
} RawExtent;

static nq_status create_raw_(hid_t loc, const char *file, const char *name, const ReconArray *a,
                             RawExtent *extent) {
    hsize_t const dims[1] = {a->count};
    hid_t const ftype = a->is_double ? H5T_IEEE_F64LE : H5T_IEEE_F32LE;
    hid_t dset = -1;
    hid_t const dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t const space = H5Screate_simple(1, dims, NULL);
    if (dcpl >= 0 && space >= 0 && H5Pset_obj_track_times(dcpl, 0) >= 0 && H5Pset_layout(dcpl, H5D_CONTIGUOUS) >= 0 &&
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) >= 0 && H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) >= 0)
        dset = H5Dcreate2(loc, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    extent->data = a->data;
    extent->bytes = a->count ? array_bytes_(a) : 0;
    haddr_t const offset = dset >= 0 && extent->bytes ? H5Dget_offset(dset) : 0;
    extent->offset = (uint64_t)offset;
    h5u_close(dset);
    h5u_close(space);
    h5u_close(dcpl);
    if (dset < 0 || offset == HADDR_UNDEF) {
        char what[128];
        snprintf(what, sizeof what, "cannot create dataset /%s", name);
        return h5u_fail(NQ_ERR_RUNTIME, file, what);
    }
    return NQ_OK;
}

static nq_status read_f64_(hid_t loc, const char *file, const char *name, double *out, size_t count) {
    int rank = 0;
    hsize_t dims[H5U_MAX_RANK];
    nq_status st = h5u_shape(loc, file, name, &rank, dims);
    if (st != NQ_OK) return st;
    if (rank != 1 || dims[0] != count)
        return nq_fail(NQ_ERR_INPUT, "%s: dataset /%s has %d dimension(s) of %llu, expected [%zu]",
                       file, name, rank, (unsigned long long)dims[0], count);
    hid_t const dset = H5Dopen2(loc, name, H5P_DEFAULT);
    hid_t const type = dset < 0 ? -1 : H5Dget_type(dset);
    int const ok_type = type >= 0 && H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == 8;
    double dummy = 0;
    herr_t rc = -1;
    if (ok_type) rc = H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, count ? out : &dummy);
    h5u_close(type);
    h5u_close(dset);
    if (!ok_type) {
        H5Eclear2(H5E_DEFAULT);
        return nq_fail(NQ_ERR_INPUT, "%s: dataset /%s is not float64", file, name);
    }
    if (rc < 0) {
        char what[128];
        snprintf(what, sizeof what, "cannot read dataset /%s (damaged file?)", name);
        return h5u_fail(NQ_ERR_INPUT, file, what);
    }
    return NQ_OK;
}

/* ------------------------------------------------------------------ save */

/* Groups for the leading components of a name like "wq/z". */
static nq_status make_parent_groups_(hid_t file, const char *path, const char *name) {
    char prefix[sizeof ((ReconArray *)0)->name];
    for (size_t i = 1; name[i]; i++) {
        if (name[i] != '/' || i >= sizeof prefix) continue;
        memcpy(prefix, name, i);
        prefix[i] = '\0';
        if (h5u_exists(file, prefix)) continue;
        hid_t g;
        nq_status const st = h5u_create_group(file, path, prefix, &g);
        if (st != NQ_OK) return st;
        h5u_close(g);
    }
    return NQ_OK;
}

static nq_status create_array_(hid_t file, const char *path, const ReconArray *a, RawExtent *extent) {
    nq_status st = make_parent_groups_(file, path, a->name);
    if (st != NQ_OK) return st;
    return create_raw_(file, path, a->name, a, extent);
}

static nq_status write_header_(hid_t file, const char *path, const StateInfo *info, int n,
                               uint64_t checksum) {
    char sum[40];
    snprintf(sum, sizeof sum, CHECKSUM_PREFIX "%016llx", (unsigned long long)checksum);
    nq_status st = h5u_attr_write_string(file, path, "format", STATE_FILE_FORMAT);
    if (st == NQ_OK) st = h5u_attr_write_int(file, path, "format_version", STATE_FILE_VERSION);
    if (st == NQ_OK) st = h5u_attr_write_int(file, path, "block", info->block);
    if (st == NQ_OK) st = h5u_attr_write_int(file, path, "step", info->step);
    if (st == NQ_OK) st = h5u_attr_write_int(file, path, "iterations", info->iterations);
    if (st == NQ_OK) st = h5u_attr_write_double(file, path, "loss_init", info->loss_init);
    if (st == NQ_OK) st = h5u_attr_write_double(file, path, "loss_last", info->loss_last);
    if (st == NQ_OK) st = h5u_attr_write_double(file, path, "seconds", info->seconds);
    if (st == NQ_OK) st = h5u_attr_write_int(file, path, "n_arrays", n);
    if (st == NQ_OK) st = h5u_attr_write_string(file, path, "checksum", sum);
    return st;
}

/* Bytes per pwrite, and per fdatasync: syncing as it goes makes the time a limited save
 * has spent a measure of what is on the disk, not of what the page cache took in, so it
 * gives up at most one sync's worth (256 MiB, ~1 s at 0.25 GB/s) after its limit rather
 * than in a final fsync of gigabytes. */
#define WRITE_BYTES ((size_t)64 << 20)
#define SYNC_BYTES ((size_t)256 << 20)

struct StateWrite {
    char path[PATH_MAX], tmp[PATH_MAX];
    RawExtent *extents;
    int n;
    double start;                /* nq_seconds() at state_write_begin */
    atomic_llong give_up_at_ns;  /* CLOCK_MONOTONIC; 0: no limit */
    pthread_t thread;
    int threaded;
    StateSaveReport report;
    /* written by the writing thread, read after it is joined */
    nq_status status;
    const char *failed; /* what failed ("pwrite", "fdatasync", ...) */
    int failed_errno;
};

static long long ns_of_(double seconds) { return (long long)(seconds * 1e9); }

/* Records a failure of the writing thread (nq_fail is for the caller's thread). */
static void write_failed_(StateWrite *w, const char *what, int err) {
    w->status = NQ_ERR_RUNTIME;
    w->failed = what;
    w->failed_errno = err;
}

/* Writes the extents into tmp, on whichever thread runs it: so no nq_fail here (the
 * failure waits in w for state_write_finish, on the caller's thread). NQ_STOPPED when
 * the time limit ran out first. */
static void write_extents_(StateWrite *w) {
    w->status = NQ_OK;
    int const fd = open(w->tmp, O_WRONLY);
    if (fd < 0) {
        write_failed_(w, "opening the temporary file to write", errno);
        return;
    }
    size_t unsynced = 0;
    for (int i = 0; i < w->n && w->status == NQ_OK; i++) {
        const RawExtent *e = &w->extents[i];
        for (size_t off = 0; off < e->bytes && w->status == NQ_OK;) {
            long long const limit = atomic_load(&w->give_up_at_ns);
            if (limit > 0 && ns_of_(nq_seconds()) > limit) {
                w->status = NQ_STOPPED;
                break;
            }
            size_t const rest = e->bytes - off;
            size_t const len = rest < WRITE_BYTES ? rest : WRITE_BYTES;
            ssize_t const put = pwrite(fd, (const char *)e->data + off, len, (off_t)(e->offset + off));
            if (put < 0 && errno == EINTR) continue;
            if (put <= 0) {
                write_failed_(w, "pwrite", put < 0 ? errno : EIO);
                break;
            }
            off += (size_t)put;
            w->report.written += (size_t)put;
            unsynced += (size_t)put;
            if (unsynced >= SYNC_BYTES) {
                if (fdatasync(fd) != 0) write_failed_(w, "fdatasync", errno);
                unsynced = 0;
            }
        }
    }
    if (close(fd) != 0 && w->status == NQ_OK) write_failed_(w, "close", errno);
}

static void *write_thread_(void *arg) {
    write_extents_(arg);
    return NULL;
}

static void state_write_free_(StateWrite *w) {
    if (!w) return;
    free(w->extents);
    free(w);
}

nq_status state_write_begin(const char *path, const StateInfo *info, const ReconArray *arrays, int n,
                            StateWrite **out) {
    *out = NULL;
    StateWrite *w = nq_calloc(1, sizeof *w, "state write");
    if (!w) return NQ_ERR_RUNTIME;
    w->start = nq_seconds();
    atomic_init(&w->give_up_at_ns, 0);
    w->n = n;
    snprintf(w->path, sizeof w->path, "%s", path);
    for (int i = 0; i < n; i++) w->report.bytes += arrays[i].count ? array_bytes_(&arrays[i]) : 0;
    w->extents = nq_calloc(n > 0 ? (size_t)n : 1, sizeof *w->extents, "state file extents");
    uint64_t checksum = 0;
    nq_status st = w->extents ? h5u_init() : NQ_ERR_RUNTIME;
    if (st == NQ_OK) st = atomic_tmp_name(path, w->tmp, sizeof w->tmp);
    if (st == NQ_OK) st = arrays_checksum_(arrays, n, &checksum);
    if (st != NQ_OK) {
        state_write_free_(w);
        return st;
    }
    hid_t file = -1;
    st = h5u_create(w->tmp, &file);
    if (st == NQ_OK) st = write_header_(file, path, info, n, checksum);
    for (int i = 0; i < n && st == NQ_OK; i++) st = create_array_(file, path, &arrays[i], &w->extents[i]);
    nq_status const closed = h5u_close_file(file, path);
    if (st == NQ_OK) st = closed;
    if (st != NQ_OK) {
        unlink(w->tmp);
        state_write_free_(w);
        return NQ_ERR_RUNTIME;
    }
    *out = w;
    return NQ_OK;
}

nq_status state_write_start(StateWrite *w) {
    int const rc = pthread_create(&w->thread, NULL, write_thread_, w);
    if (rc != 0) return nq_fail(NQ_ERR_RUNTIME, "%s: cannot start the writing thread: %s", w->path, strerror(rc));
    w->threaded = 1;
    return NQ_OK;
}

void state_write_limit(StateWrite *w, double seconds_from_now) {
    atomic_store(&w->give_up_at_ns, ns_of_(nq_seconds() + seconds_from_now));
}

nq_status state_write_finish(StateWrite *w, StateSaveReport *report) {
    if (w->threaded) {
        pthread_join(w->thread, NULL);
    } else {
        write_extents_(w);
    }
    nq_status st = w->status;
    if (st == NQ_ERR_RUNTIME)
        nq_fail(NQ_ERR_RUNTIME, "%s: %s of %s failed after %zu of %zu bytes: %s", w->path, w->failed, w->tmp,
                w->report.written, w->report.bytes, strerror(w->failed_errno));
    if (st == NQ_OK) st = atomic_commit(w->tmp, w->path);
    else unlink(w->tmp);
    w->report.seconds = nq_seconds() - w->start;
    w->report.gave_up = st == NQ_STOPPED;
    if (report) *report = w->report;
    state_write_free_(w);
    return st == NQ_OK || st == NQ_STOPPED ? st : NQ_ERR_RUNTIME;
}

nq_status state_file_save_within(const char *path, const StateInfo *info, const ReconArray *arrays, int n,
                                 double seconds_allowed, StateSaveReport *report) {
    double const start = nq_seconds();
    StateWrite *w = NULL;
    nq_status const st = state_write_begin(path, info, arrays, n, &w);
    if (st != NQ_OK) return st;
    if (seconds_allowed > 0) state_write_limit(w, seconds_allowed - (nq_seconds() - start));
    return state_write_finish(w, report);
}

nq_status state_file_save(const char *path, const StateInfo *info, const ReconArray *arrays, int n) {
    return state_file_save_within(path, info, arrays, n, 0, NULL);
}

/* ------------------------------------------------------------------ load */

static nq_status read_int_(hid_t file, const char *path, const char *name, int *out) {
    long long v = 0;
    nq_status const st = h5u_attr_read_int(file, path, "/", name, &v);
    if (st != NQ_OK) return st;
    if (v < INT_MIN || v > INT_MAX)
        return nq_fail(NQ_ERR_INPUT, "%s: attribute %s = %lld, expected an int", path, name, v);
    *out = (int)v;
    return NQ_OK;
}

static nq_status read_header_(hid_t file, const char *path, StateInfo *info, int *n_arrays) {
    char *format = NULL;
    nq_status st = h5u_attr_read_string(file, path, "/", "format", &format);
    if (st == NQ_OK && strcmp(format, STATE_FILE_FORMAT) != 0)
        st = nq_fail(NQ_ERR_INPUT, "%s: format = \"%s\", expected \"%s\" (not a state file)", path,
                     format, STATE_FILE_FORMAT);
    free(format);
    int version = 0;
    if (st == NQ_OK) st = read_int_(file, path, "format_version", &version);
    if (st == NQ_OK && version != STATE_FILE_VERSION)
        st = nq_fail(NQ_ERR_INPUT, "%s: format_version = %d, expected %d", path, version,
                     STATE_FILE_VERSION);
    if (st == NQ_OK) st = read_int_(file, path, "block", &info->block);
    if (st == NQ_OK) st = read_int_(file, path, "step", &info->step);
    if (st == NQ_OK) st = read_int_(file, path, "iterations", &info->iterations);
    if (st == NQ_OK) st = h5u_attr_read_double(file, path, "/", "loss_init", &info->loss_init);
    if (st == NQ_OK) st = h5u_attr_read_double(file, path, "/", "loss_last", &info->loss_last);
    if (st == NQ_OK) st = h5u_attr_read_double(file, path, "/", "seconds", &info->seconds);
    if (st == NQ_OK) st = read_int_(file, path, "n_arrays", n_arrays);
    if (st == NQ_OK && (info->step < 0 || info->step > info->iterations))
        st = nq_fail(NQ_ERR_INPUT, "%s: step = %d, expected 0..iterations (%d)", path, info->step,
                     info->iterations);
    return st;
}

nq_status state_file_info(const char *path, StateInfo *info) {
    hid_t file = -1;
    int n_arrays = 0;
    memset(info, 0, sizeof *info);
    nq_status st = h5u_init();
    if (st == NQ_OK) st = h5u_open_read(path, &file);
    if (st == NQ_OK) st = read_header_(file, path, info, &n_arrays);
    h5u_close(file);
    return st == NQ_OK ? NQ_OK : NQ_ERR_INPUT;
}

static nq_status read_arrays_(hid_t file, const char *path, ReconArray *arrays, int n) {
    for (int i = 0; i < n; i++) {
        ReconArray *a = &arrays[i];
        nq_status st;
        if (a->is_double) {
            st = read_f64_(file, path, a->name, a->data, a->count);
        } else {
            float dummy = 0;
            hsize_t const dims[1] = {a->count};
            st = h5u_read(file, path, a->name, H5U_F32, 1, dims, a->count ? a->data : &dummy);
        }
        if (st != NQ_OK) return st;
    }
    return NQ_OK;
}

static nq_status check_checksum_(hid_t file, const char *path, const ReconArray *arrays, int n) {
    char *stored = NULL;
    uint64_t actual = 0;
    nq_status st = h5u_attr_read_string(file, path, "/", "checksum", &stored);
    if (st == NQ_OK) st = arrays_checksum_(arrays, n, &actual);
    if (st == NQ_OK) {
        char want[40];
        snprintf(want, sizeof want, CHECKSUM_PREFIX "%016llx", (unsigned long long)actual);
        if (strcmp(stored, want) != 0)
            st = nq_fail(NQ_ERR_INPUT, "%s: checksum = %s, but the data hash to %s (damaged file)",
                         path, stored, want);
    }
    free(stored);
    return st;
}

nq_status state_file_load(const char *path, int expected_block, ReconArray *arrays, int n,
                          StateInfo *info) {
    hid_t file = -1;
    int n_arrays = 0;
    memset(info, 0, sizeof *info);
    nq_status st = h5u_init();
    if (st == NQ_OK) st = h5u_open_read(path, &file);
    if (st == NQ_OK) st = read_header_(file, path, info, &n_arrays);
    if (st == NQ_OK && info->block != expected_block)
        st = nq_fail(NQ_ERR_INPUT, "%s: block = %d, expected %d", path, info->block, expected_block);
    if (st == NQ_OK && n_arrays != n)
        st = nq_fail(NQ_ERR_INPUT, "%s: n_arrays = %d, expected %d (made with another config?)",
                     path, n_arrays, n);
    if (st == NQ_OK) st = read_arrays_(file, path, arrays, n);
    if (st == NQ_OK) st = check_checksum_(file, path, arrays, n);
    h5u_close(file);
    return st == NQ_OK ? NQ_OK : NQ_ERR_INPUT;
}
