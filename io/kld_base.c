#include "kld_base.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "atomic_file.h"
#include "h5util.h"
#include "mpi_check.h"

#define KLD_BASE_FORMAT "nupes-mpi-kld-base"
#define KLD_BASE_VERSION 1

struct KldBase {
    char path[PATH_MAX], tmp[PATH_MAX]; /* tmp: "" when reading */
    hid_t file, logits, tokens, checksums;
    int T, V, windows;
    uint64_t *sums; /* reader: [windows] stored checksums */
    MPI_Comm comm;  /* writer: MPI_COMM_NULL for a single process */
    int rank;
};

static void base_free(KldBase *b) {
    if (!b) return;
    h5u_close(b->logits);
    h5u_close(b->tokens);
    h5u_close(b->checksums);
    if (b->file >= 0) H5Fclose(b->file);
    free(b->sums);
    free(b);
}

static KldBase *base_new(const char *path, const KldBaseIdentity *id) {
    KldBase *b = nq_calloc(1, sizeof *b, "KL base");
    if (!b) return NULL;
    b->file = b->logits = b->tokens = b->checksums = H5I_INVALID_HID;
    b->T = id->seq_len;
    b->V = id->vocab_size;
    b->windows = id->windows;
    b->comm = MPI_COMM_NULL;
    snprintf(b->path, sizeof b->path, "%s", path);
    return b;
}

static uint64_t window_checksum(const float *logits, size_t n) { return XXH3_64bits(logits, n * sizeof *logits); }

int kld_base_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Selects windows [w, w + n) of a [windows][...] dataset; *mem is the matching memory space. */
static nq_status select_windows(const KldBase *b, hid_t dset, int w, int n, hsize_t per_window, hid_t *file_space,
                                hid_t *mem) {
    *file_space = H5Dget_space(dset);
    hsize_t const start[3] = {(hsize_t)w, 0, 0};
    hsize_t const count[3] = {(hsize_t)n, (hsize_t)b->T, (hsize_t)b->V};
    int const rank = H5Sget_simple_extent_ndims(*file_space);
    hsize_t const elements = (hsize_t)n * per_window;
    *mem = H5Screate_simple(1, &elements, NULL);
    if (*file_space < 0 || rank < 1 || rank > 3 || *mem < 0 ||
        H5Sselect_hyperslab(*file_space, H5S_SELECT_SET, start, NULL, count, NULL) < 0) {
        h5u_close(*file_space);
        h5u_close(*mem);
        return h5u_fail(NQ_ERR_RUNTIME, b->path, "cannot select windows");
    }
    return NQ_OK;
}

static nq_status transfer(KldBase *b, hid_t dset, hid_t type, int w, int n, hsize_t per_window, void *data,
                          int write) {
    hid_t fs, ms;
    nq_status st = select_windows(b, dset, w, n, per_window, &fs, &ms);
    if (st != NQ_OK) return st;
    herr_t const rc = write ? H5Dwrite(dset, type, ms, fs, H5P_DEFAULT, data) : H5Dread(dset, type, ms, fs, H5P_DEFAULT, data);
    if (rc < 0) st = h5u_fail(write ? NQ_ERR_RUNTIME : NQ_ERR_INPUT, b->path, write ? "cannot write windows" : "cannot read windows");
    h5u_close(fs);
    h5u_close(ms);
    return st;
}

/* ------------------------------------------------------------------ reading */

/* The stored identity against the current one: one line naming the first difference. */
static nq_status check_identity(KldBase *b, const KldBaseIdentity *id) {
    const char *p = b->path;
    char *format = NULL, *model_hash = NULL;
    long long version = 0, seq_len = 0, windows = 0, vocab = 0;
    nq_status st = h5u_attr_read_string(b->file, p, "/", "format", &format);
    if (st == NQ_OK && strcmp(format, KLD_BASE_FORMAT) != 0)
        st = nq_fail(NQ_ERR_INPUT, "%s: format = '%s', expected '%s' (not a KL base file)", p, format, KLD_BASE_FORMAT);
    if (st == NQ_OK) st = h5u_attr_read_int(b->file, p, "/", "format_version", &version);
    if (st == NQ_OK && version != KLD_BASE_VERSION)
        st = nq_fail(NQ_ERR_INPUT, "%s: format_version = %lld, expected %d", p, version, KLD_BASE_VERSION);
    if (st == NQ_OK) st = h5u_attr_read_int(b->file, p, "/", "seq_len", &seq_len);
    if (st == NQ_OK) st = h5u_attr_read_int(b->file, p, "/", "windows", &windows);
    if (st == NQ_OK) st = h5u_attr_read_int(b->file, p, "/", "vocab_size", &vocab);
    if (st == NQ_OK) st = h5u_attr_read_string(b->file, p, "/", "model_hash", &model_hash);
    char want_hash[17];
    snprintf(want_hash, sizeof want_hash, "%016" PRIx64, id->model_hash);
    if (st == NQ_OK && (vocab != id->vocab_size || strcmp(model_hash, want_hash) != 0))
        st = nq_fail(NQ_ERR_INPUT,
                     "%s: made from another model (weights hash %s, vocab %lld; this model: %s, vocab %d): "
                     "delete it or choose another --kld-base",
                     p, model_hash, vocab, want_hash, id->vocab_size);
    if (st == NQ_OK && seq_len != id->seq_len)
        st = nq_fail(NQ_ERR_INPUT, "%s: made with --seq-len %lld, not %d: delete it or choose another --kld-base", p,
                     seq_len, id->seq_len);
    if (st == NQ_OK && windows != id->windows)
        st = nq_fail(NQ_ERR_INPUT,
                     "%s: made from another text or --sequences (%lld windows, now %d): delete it or choose "
                     "another --kld-base",
                     p, windows, id->windows);
    free(format);
    free(model_hash);
    if (st != NQ_OK) return st;
    /* The datasets' shapes, then the windows themselves. */
    hsize_t const want_logits[3] = {(hsize_t)windows, (hsize_t)seq_len, (hsize_t)vocab};
    const struct { const char *name; int rank; const hsize_t *dims; } shapes[] = {
        {"logits", 3, want_logits}, {"tokens", 2, want_logits}, {"checksums", 1, want_logits}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int rank = 0;
        hsize_t dims[H5U_MAX_RANK];
        st = h5u_shape(b->file, p, shapes[i].name, &rank, dims);
        if (st != NQ_OK) return st;
        int same = rank == shapes[i].rank;
        for (int d = 0; same && d < rank; d++) same = dims[d] == shapes[i].dims[d];
        if (!same) return nq_fail(NQ_ERR_INPUT, "%s: dataset /%s has the wrong shape for %lld windows of %lld x %lld", p,
                                  shapes[i].name, windows, seq_len, vocab);
    }
    size_t const n_tokens = (size_t)id->windows * (size_t)id->seq_len;
    int *stored = nq_calloc(n_tokens ? n_tokens : 1, sizeof *stored, "KL base tokens");
    if (!stored) return NQ_ERR_RUNTIME;
    hsize_t const tok_dims[2] = {(hsize_t)id->windows, (hsize_t)id->seq_len};
    st = h5u_read(b->file, p, "tokens", H5U_I32, 2, tok_dims, stored);
    if (st == NQ_OK) {
        for (size_t i = 0; i < n_tokens; i++)
            if (stored[i] != id->tokens[i]) {
                st = nq_fail(NQ_ERR_INPUT,
                             "%s: made from another text (window %zu differs at token %zu): delete it or choose "
                             "another --kld-base",
                             p, i / (size_t)id->seq_len, i % (size_t)id->seq_len);
                break;
            }
    }
    free(stored);
    return st;
}

nq_status kld_base_open(const char *path, const KldBaseIdentity *id, int first, int count, KldBase **out) {
    *out = NULL;
    nq_status st = h5u_init();
    if (st != NQ_OK) return st;
    KldBase *b = base_new(path, id);
    if (!b) return NQ_ERR_RUNTIME;
    st = h5u_open_read(path, &b->file);
    if (st == NQ_OK) st = check_identity(b, id);
    if (st == NQ_OK) {
        b->logits = H5Dopen2(b->file, "logits", H5P_DEFAULT);
        b->checksums = H5Dopen2(b->file, "checksums", H5P_DEFAULT);
        b->sums = nq_calloc((size_t)(id->windows > 0 ? id->windows : 1), sizeof *b->sums, "KL base checksums");
        if (!b->sums) st = NQ_ERR_RUNTIME;
        else if (b->logits < 0 || b->checksums < 0 ||
                 H5Dread(b->checksums, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, b->sums) < 0)
            st = h5u_fail(NQ_ERR_INPUT, path, "cannot read /logits and /checksums");
    }
    /* Every window this rank will use, once, before any work. */
    size_t const per_window = (size_t)b->T * (size_t)b->V;
    float *window = st == NQ_OK ? nq_calloc(per_window, sizeof *window, "KL base window") : NULL;
    if (st == NQ_OK && !window) st = NQ_ERR_RUNTIME;
    for (int w = first; st == NQ_OK && w < first + count; w++) st = kld_base_read(b, w, 1, window);
    free(window);
    if (st != NQ_OK) {
        base_free(b);
        return st;
    }
    *out = b;
    return NQ_OK;
}

nq_status kld_base_read(KldBase *b, int w, int n, float *logits) {
    size_t const per_window = (size_t)b->T * (size_t)b->V;
    nq_status const st = transfer(b, b->logits, H5T_NATIVE_FLOAT, w, n, per_window, logits, 0);
    if (st != NQ_OK) return st;
    for (int i = 0; i < n; i++)
        if (window_checksum(logits + (size_t)i * per_window, per_window) != b->sums[w + i])
            return nq_fail(NQ_ERR_INPUT,
                           "%s: window %d: checksum mismatch (the file is damaged): delete it to compute it again",
                           b->path, w + i);
    return NQ_OK;
}

void kld_base_close(KldBase *b) { base_free(b); }

/* ------------------------------------------------------------------ writing */

static nq_status create_dataset(KldBase *b, const char *name, hid_t type, int rank, const hsize_t *dims, hid_t *dset) {
    hid_t const space = H5Screate_simple(rank, dims, NULL);
    hid_t const dcpl = H5Pcreate(H5P_DATASET_CREATE);
    /* Contiguous and unfiltered: ranks write their windows independently. */
    if (space >= 0 && dcpl >= 0 && H5Pset_obj_track_times(dcpl, 0) >= 0)
        *dset = H5Dcreate2(b->file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    h5u_close(space);
    h5u_close(dcpl);
    if (*dset < 0) return h5u_fail(NQ_ERR_RUNTIME, b->tmp, "cannot create a dataset of the KL base");
    return NQ_OK;
}

nq_status kld_base_create(const char *path, const KldBaseIdentity *id, MPI_Comm comm, KldBase **out) {
    *out = NULL;
    nq_status st = h5u_init();
    if (st != NQ_OK) return st;
    KldBase *b = base_new(path, id);
    if (!b) return NQ_ERR_RUNTIME;
    b->comm = comm;
    if (comm != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_rank(comm, &b->rank));
    /* Root's temporary name (its pid) for every rank; a directory that cannot be written
     * is bad input, refused before any work. */
    if (b->rank == 0) st = atomic_tmp_name(path, b->tmp, sizeof b->tmp);
    if (b->rank == 0 && st == NQ_OK) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (!slash) snprintf(dir, sizeof dir, ".");
        else if (slash == dir) dir[1] = '\0';
        else *slash = '\0';
        if (access(dir, W_OK) != 0)
            st = nq_fail(NQ_ERR_INPUT, "--kld-base %s: cannot write to directory %s: %s", path, dir, strerror(errno));
    }
    if (comm != MPI_COMM_NULL) {
        int s = (int)st;
        MPI_CHECK(MPI_Bcast(&s, 1, MPI_INT, 0, comm));
        MPI_CHECK(MPI_Bcast(b->tmp, (int)sizeof b->tmp, MPI_CHAR, 0, comm));
        st = (nq_status)s;
    }
    if (st == NQ_OK)
        st = comm != MPI_COMM_NULL ? h5u_open_mpio(b->tmp, comm, 1, "the KL base file", &b->file)
                                   : h5u_create(b->tmp, &b->file);
    hsize_t const dims[3] = {(hsize_t)id->windows, (hsize_t)id->seq_len, (hsize_t)id->vocab_size};
    if (st == NQ_OK) st = create_dataset(b, "logits", H5T_IEEE_F32LE, 3, dims, &b->logits);
    if (st == NQ_OK) st = create_dataset(b, "tokens", H5T_STD_I32LE, 2, dims, &b->tokens);
    if (st == NQ_OK) st = create_dataset(b, "checksums", H5T_STD_U64LE, 1, dims, &b->checksums);
    char hash[17];
    snprintf(hash, sizeof hash, "%016" PRIx64, id->model_hash);
    /* Attributes are written by every rank alike (collective under MPI-IO). */
    if (st == NQ_OK) st = h5u_attr_write_string(b->file, b->tmp, "format", KLD_BASE_FORMAT);
    if (st == NQ_OK) st = h5u_attr_write_int(b->file, b->tmp, "format_version", KLD_BASE_VERSION);
    if (st == NQ_OK) st = h5u_attr_write_string(b->file, b->tmp, "model_hash", hash);
    if (st == NQ_OK) st = h5u_attr_write_int(b->file, b->tmp, "seq_len", id->seq_len);
    if (st == NQ_OK) st = h5u_attr_write_int(b->file, b->tmp, "windows", id->windows);
    if (st == NQ_OK) st = h5u_attr_write_int(b->file, b->tmp, "vocab_size", id->vocab_size);
    if (st == NQ_OK && b->rank == 0 && id->windows > 0 &&
        H5Dwrite(b->tokens, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, id->tokens) < 0)
        st = h5u_fail(NQ_ERR_RUNTIME, b->tmp, "cannot write /tokens");
    if (st != NQ_OK) {
        if (b->file >= 0 || b->tmp[0]) return kld_base_finish(b, st), st;
        base_free(b);
        return st;
    }
    *out = b;
    return NQ_OK;
}

nq_status kld_base_write(KldBase *b, int w, int n, const float *logits) {
    size_t const per_window = (size_t)b->T * (size_t)b->V;
    uint64_t *sums = nq_calloc((size_t)n, sizeof *sums, "KL base checksums");
    if (!sums) return NQ_ERR_RUNTIME;
    for (int i = 0; i < n; i++) sums[i] = window_checksum(logits + (size_t)i * per_window, per_window);
    /* transfer() selects whole windows: [n][T][V] of logits, [n] of checksums. */
    nq_status st = transfer(b, b->logits, H5T_NATIVE_FLOAT, w, n, per_window, (void *)logits, 1);
    if (st == NQ_OK) st = transfer(b, b->checksums, H5T_NATIVE_UINT64, w, n, 1, sums, 1);
    free(sums);
    return st;
}

/* The worst of every rank's status (runtime over input over success). */
static nq_status worst(KldBase *b, nq_status st) {
    if (b->comm == MPI_COMM_NULL) return st;
    int mine = (int)st, all = 0;
    MPI_CHECK(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MAX, b->comm));
    return (nq_status)all;
}

nq_status kld_base_finish(KldBase *b, nq_status st) {
    st = worst(b, st);
    h5u_close(b->logits);
    h5u_close(b->tokens);
    h5u_close(b->checksums);
    b->logits = b->tokens = b->checksums = H5I_INVALID_HID;
    nq_status close_st = h5u_close_file(b->file, b->tmp);
    b->file = H5I_INVALID_HID;
    st = worst(b, st != NQ_OK ? st : close_st);
    if (b->rank == 0) {
        if (st == NQ_OK) st = atomic_commit(b->tmp, b->path); /* removes tmp on failure */
        else if (b->tmp[0]) unlink(b->tmp);
    }
    st = worst(b, st);
    base_free(b);
    return st;
}
