/* Run directory: creation, resume or refusal by fingerprint, restart, paths and scan. */
#include "run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "block_file.h"
#include "h5util.h"
#include "read_file.h"
#include "state_file.h"
#include "toml_c.h"

static const char restart_hint[] = "use --restart to start over or choose another run.dir";

/* ------------------------------------------------------------------ paths */

static nq_status path_fmt_(char *buf, size_t size, const char *dir, const char *fmt, int block) {
    char name[64];
    snprintf(name, sizeof name, fmt, block);
    int const n = snprintf(buf, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size) return nq_fail(NQ_ERR_INPUT, "%s: run.dir path too long", dir);
    return NQ_OK;
}

nq_status run_dir_state_path(const char *dir, int block, char *buf, size_t size) {
    return path_fmt_(buf, size, dir, "state/block-%04d.h5", block);
}
nq_status run_dir_done_path(const char *dir, int block, char *buf, size_t size) {
    return path_fmt_(buf, size, dir, "done/block-%04d.h5", block);
}
nq_status run_dir_activations_path(const char *dir, char *buf, size_t size) {
    return path_fmt_(buf, size, dir, "activations.h5", 0);
}
nq_status run_dir_progress_path(const char *dir, char *buf, size_t size) {
    return path_fmt_(buf, size, dir, "progress.log", 0);
}
nq_status run_dir_toml_path(const char *dir, char *buf, size_t size) {
    return path_fmt_(buf, size, dir, "run.toml", 0);
}
nq_status run_dir_activations_partial_path(const char *dir, char *buf, size_t size) {
    return path_fmt_(buf, size, dir, "activations.h5.partial", 0);
}
nq_status run_dir_lock_path(const char *dir, char *buf, size_t size) {
    return path_fmt_(buf, size, dir, "lock", 0);
}
nq_status run_dir_lock_holder_path(const char *dir, char *buf, size_t size) {
    return path_fmt_(buf, size, dir, "lock.holder", 0);
}
nq_status run_dir_qlevel_path(const char *dir, int level, char *buf, size_t size) {
    return path_fmt_(buf, size, dir, "qinputs/level-%04d.h5", level);
}
nq_status run_dir_qlevel_tmp_path(const char *dir, int level, char *buf, size_t size) {
    return path_fmt_(buf, size, dir, "qinputs/.level-%04d.h5.tmp", level);
}
nq_status run_dir_qinputs_dir(const char *dir, char *buf, size_t size) {
    return path_fmt_(buf, size, dir, "qinputs", 0);
}

static int exists_(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* ------------------------------------------------------------------ our files */

/* "block-0007.h5" (4 or more digits). */
static int is_block_name_(const char *name) {
    if (strncmp(name, "block-", 6) != 0) return 0;
    size_t digits = strspn(name + 6, "0123456789");
    return digits >= 4 && strcmp(name + 6 + digits, ".h5") == 0;
}

/* "level-0003.h5" (4 or more digits). */
static int is_level_name_(const char *name) {
    if (strncmp(name, "level-", 6) != 0) return 0;
    size_t digits = strspn(name + 6, "0123456789");
    return digits >= 4 && strcmp(name + 6 + digits, ".h5") == 0;
}

/* ".<name>.tmp.<pid>" (atomic_tmp_name) or ".<name>.tmp" (a name shared by the ranks of
 * a collective writer) for one of our names. */
static int is_our_tmp_(const char *name, int (*ours)(const char *)) {
    if (name[0] != '.') return 0;
    const char *tmp = strstr(name, ".tmp");
    if (!tmp || tmp == name) return 0;
    const char *tail = tmp + 4;
    if (*tail != '\0' && (*tail != '.' || tail[1] == '\0' || strspn(tail + 1, "0123456789") != strlen(tail + 1)))
        return 0;
    char base[NAME_MAX + 1];
    snprintf(base, sizeof base, "%.*s", (int)(tmp - name - 1), name + 1);
    return ours(base);
}

/* Results at the top: what --restart removes and what makes a directory without a
 * run.toml an orphan. */
static int is_top_name_(const char *name) {
    return strcmp(name, "run.toml") == 0 || strcmp(name, "activations.h5") == 0 ||
           strcmp(name, "activations.h5.partial") == 0;
}

/* Top names whose temporaries a resume sweeps (lock.holder's too, never the lock). */
static int is_top_tmp_base_(const char *name) { return is_top_name_(name) || strcmp(name, "lock.holder") == 0; }

/* Calls unlink (remove != 0) or counts (remove == 0) our files in dir/sub; returns the
 * count, or -1 with nq_fail on an error. */
static int sweep_(const char *dir, const char *sub, int (*ours)(const char *), int remove,
                  char *first, size_t first_size) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s%s%s", dir, sub[0] ? "/" : "", sub);
    DIR *d = opendir(path);
    if (!d) return errno == ENOENT ? 0 : (nq_fail(NQ_ERR_RUNTIME, "%s: cannot list: %s", path, strerror(errno)), -1);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ours(e->d_name) && !is_our_tmp_(e->d_name, ours)) continue;
        char file[PATH_MAX + NAME_MAX + 2];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        if (first && count == 0 && strlen(file) < first_size) memcpy(first, file, strlen(file) + 1);
        count++;
        if (remove && unlink(file) != 0 && errno != ENOENT) {
            nq_fail(NQ_ERR_RUNTIME, "%s: cannot remove: %s", file, strerror(errno));
            closedir(d);
            return -1;
        }
    }
    closedir(d);
    if (remove && count > 0 && fsync_dir(path) != NQ_OK) return -1;
    return count;
}

/* Removes run.toml first, so that an interrupted restart is never mistaken for a run. */
static nq_status remove_our_files_(const char *dir) {
    char toml[PATH_MAX];
    nq_status st = run_dir_toml_path(dir, toml, sizeof toml);
    if (st != NQ_OK) return st;
    if (unlink(toml) != 0 && errno != ENOENT)
        return nq_fail(NQ_ERR_RUNTIME, "%s: cannot remove: %s", toml, strerror(errno));
    if (sweep_(dir, "", is_top_name_, 1, NULL, 0) < 0) return NQ_ERR_RUNTIME;
    if (sweep_(dir, "state", is_block_name_, 1, NULL, 0) < 0) return NQ_ERR_RUNTIME;
    if (sweep_(dir, "done", is_block_name_, 1, NULL, 0) < 0) return NQ_ERR_RUNTIME;
    if (sweep_(dir, "qinputs", is_level_name_, 1, NULL, 0) < 0) return NQ_ERR_RUNTIME;
    return NQ_OK;
}

/* Removes the temporaries (only) of `ours` names in path; the real files stay. */
static nq_status remove_tmps_in_(const char *path, int (*ours)(const char *)) {
    DIR *d = opendir(path);
    if (!d) return NQ_OK;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_our_tmp_(e->d_name, ours)) continue;
        char file[PATH_MAX + NAME_MAX + 2];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        if (unlink(file) != 0 && errno != ENOENT) {
            closedir(d);
            return nq_fail(NQ_ERR_RUNTIME, "%s: cannot remove: %s", file, strerror(errno));
        }
        removed++;
    }
    closedir(d);
    return removed ? fsync_dir(path) : NQ_OK;
}

/* The checkpoint's name, for remove_tmps_in_ (one path at a time: root only). */
static char checkpoint_base_[NAME_MAX + 1];
static int is_checkpoint_name_(const char *name) { return strcmp(name, checkpoint_base_) == 0; }

/* Splits path into its directory ("." when none) and base name. */
static void split_(const char *path, char *dir, size_t dir_size, char *base, size_t base_size) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, dir_size, ".");
        snprintf(base, base_size, "%s", path);
    } else {
        snprintf(dir, dir_size, "%.*s", slash == path ? 1 : (int)(slash - path), path);
        snprintf(base, base_size, "%s", slash + 1);
    }
}

/* Temporaries of a writer that died (".block-0003.h5.tmp.<pid>", the hand-ons'
 * ".level-0003.h5.tmp", the checkpoint's ".checkpoint.h5.tmp.<pid>"): the caller holds
 * the run directory's lock, so no writer of them is alive, and they are wasted space
 * (2+ GB for a 7B state, the size of the model for a checkpoint). */
static nq_status remove_stale_tmps_(const char *dir, const char *output_path) {
    static const char *const subs[] = {"", "state", "done", "qinputs"};
    int (*const ours[])(const char *) = {is_top_tmp_base_, is_block_name_, is_block_name_, is_level_name_};
    nq_status st = NQ_OK;
    for (int i = 0; i < 4 && st == NQ_OK; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s%s%s", dir, i ? "/" : "", subs[i]);
        st = remove_tmps_in_(path, ours[i]);
    }
    if (st == NQ_OK && output_path && output_path[0]) {
        char out_dir[PATH_MAX];
        split_(output_path, out_dir, sizeof out_dir, checkpoint_base_, sizeof checkpoint_base_);
        if (checkpoint_base_[0]) st = remove_tmps_in_(out_dir, is_checkpoint_name_);
    }
    return st;
}

/* ------------------------------------------------------------------ run.toml */

static void append_quoted_(char *out, size_t size, const char *s) {
    size_t used = strlen(out);
    used += (size_t)snprintf(out + used, size - used, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p && used + 8 < size; p++) {
        if (*p == '"' || *p == '\\') used += (size_t)snprintf(out + used, size - used, "\\%c", *p);
        else if (*p == '\n') used += (size_t)snprintf(out + used, size - used, "\\n");
        else if (*p < 0x20 || *p == 0x7f) used += (size_t)snprintf(out + used, size - used, "\\u%04x", *p);
        else out[used++] = (char)*p, out[used] = '\0';
    }
    snprintf(out + used, size - used, "\"\n");
}

static nq_status write_run_toml_(const char *dir, const char *config_toml, const Fingerprint *fp) {
    char path[PATH_MAX];
    nq_status st = run_dir_toml_path(dir, path, sizeof path);
    if (st != NQ_OK) return st;
    size_t const size = strlen(config_toml) + 2 * FINGERPRINT_SETTINGS_MAX * 6 / 2 + 1024;
    char *text = nq_calloc(size, 1, "run.toml text");
    if (!text) return NQ_ERR_RUNTIME;
    size_t const n = strlen(config_toml);
    snprintf(text, size,
             "%s%s\n# What the results depend on; a run with another fingerprint is refused.\n"
             "[fingerprint]\nhash = \"%s\"\nmodel = \"%016llx\"\ncalibration = \"%016llx\"\n"
             "settings = \"%016llx\"\nsettings_toml = ",
             config_toml, n > 0 && config_toml[n - 1] != '\n' ? "\n" : "", fp->hex,
             (unsigned long long)fp->model, (unsigned long long)fp->calibration,
             (unsigned long long)fp->settings);
    append_quoted_(text, size, fp->settings_toml);
    st = atomic_write_file(path, text, strlen(text));
    free(text);
    return st;
}

static int parse_hex64_(const char *s, uint64_t *out) {
    if (!s || strlen(s) != 16 || strspn(s, "0123456789abcdef") != 16) return 0;
    *out = strtoull(s, NULL, 16);
    return 1;
}

/* Fills fp from the [fingerprint] entries of doc. */
static nq_status fingerprint_from_doc_(const TomlcDoc *doc, const char *path, Fingerprint *fp) {
    const char *hash = NULL, *model = NULL, *calib = NULL, *settings = NULL, *text = NULL;
    for (size_t i = 0; i < tomlc_count(doc); i++) {
        const TomlcEntry *e = tomlc_entry(doc, i);
        if (e->depth != 2 || strcmp(e->section, "fingerprint") != 0 || e->kind != TOMLC_STRING) continue;
        if (strcmp(e->key, "hash") == 0) hash = e->string;
        if (strcmp(e->key, "model") == 0) model = e->string;
        if (strcmp(e->key, "calibration") == 0) calib = e->string;
        if (strcmp(e->key, "settings") == 0) settings = e->string;
        if (strcmp(e->key, "settings_toml") == 0) text = e->string;
    }
    memset(fp, 0, sizeof *fp);
    if (!hash || strlen(hash) != 32 || strspn(hash, "0123456789abcdef") != 32 ||
        !parse_hex64_(model, &fp->model) || !parse_hex64_(calib, &fp->calibration) ||
        !parse_hex64_(settings, &fp->settings) || !text ||
        strlen(text) >= sizeof fp->settings_toml)
        return nq_fail(NQ_ERR_INPUT,
                       "%s: [fingerprint] table missing or damaged (expected hash, model, "
                       "calibration, settings, settings_toml); %s", path, restart_hint);
    snprintf(fp->hex, sizeof fp->hex, "%s", hash);
    snprintf(fp->settings_toml, sizeof fp->settings_toml, "%s", text);
    return NQ_OK;
}

/* Parses dir/run.toml into *doc (tomlc_free) and *text (free): path holds its name. */
static nq_status parse_run_toml_(const char *dir, char path[PATH_MAX], char **text, TomlcDoc **doc) {
    char err[512];
    size_t len = 0;
    *text = NULL, *doc = NULL;
    nq_status st = run_dir_toml_path(dir, path, PATH_MAX);
    if (st == NQ_OK) st = read_file(path, "run description", text, &len);
    if (st == NQ_OK) {
        TomlcStatus const ts = tomlc_parse(*text, len, path, doc, err, sizeof err);
        if (ts == TOMLC_NOMEM) st = nq_fail(NQ_ERR_RUNTIME, "%s", err);
        else if (ts != TOMLC_OK)
            st = nq_fail(NQ_ERR_INPUT, "%s: cannot be parsed as a run file (%s); %s", path, err, restart_hint);
    }
    return st;
}

nq_status run_dir_read_fingerprint(const char *dir, Fingerprint *out) {
    char path[PATH_MAX];
    char *text = NULL;
    TomlcDoc *doc = NULL;
    nq_status st = parse_run_toml_(dir, path, &text, &doc);
    if (st == NQ_OK) st = fingerprint_from_doc_(doc, path, out);
    tomlc_free(doc);
    free(text);
    return st;
}

nq_status run_dir_read_blas_kernel(const char *dir, char *kernel, size_t size) {
    char path[PATH_MAX];
    char *text = NULL;
    TomlcDoc *doc = NULL;
    nq_status st = parse_run_toml_(dir, path, &text, &doc);
    if (size > 0) kernel[0] = '\0';
    for (size_t i = 0; st == NQ_OK && i < tomlc_count(doc); i++) {
        const TomlcEntry *e = tomlc_entry(doc, i);
        if (e->depth == 2 && strcmp(e->section, "blas") == 0 && strcmp(e->key, "kernel") == 0 &&
            e->kind == TOMLC_STRING)
            snprintf(kernel, size, "%s", e->string);
    }
    tomlc_free(doc);
    free(text);
    return st;
}

/* ------------------------------------------------------------------ prepare */

/* 1 when the directory of output_path is dir or inside it (lexically). */
static int output_inside_(const char *dir, const char *output_path, char *out_dir, size_t size) {
    char base[NAME_MAX + 1];
    split_(output_path, out_dir, size, base, sizeof base);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    return strncmp(out_dir, dir, n) == 0 && (out_dir[n] == '\0' || out_dir[n] == '/');
}

static nq_status make_layout_(const char *dir, const char *output_path) {
    char path[PATH_MAX];
    nq_status st = make_dirs(dir);
    snprintf(path, sizeof path, "%s/state", dir);
    if (st == NQ_OK) st = make_dirs(path);
    snprintf(path, sizeof path, "%s/done", dir);
    if (st == NQ_OK) st = make_dirs(path);
    if (st == NQ_OK) st = run_dir_qinputs_dir(dir, path, sizeof path);
    if (st == NQ_OK) st = make_dirs(path);
    if (st == NQ_OK && output_path && output_path[0] && output_inside_(dir, output_path, path, sizeof path))
        st = make_dirs(path);
    if (st == NQ_OK) st = fsync_dir(dir);
    return st;
}

nq_status run_dir_check_paths(const char *dir, const char *output_path) {
    struct stat sb;
    if (stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode))
        return nq_fail(NQ_ERR_INPUT, "run.dir = %s: exists and is not a directory, expected a directory "
                       "(or a path to create one)", dir);
    if (!output_path || !output_path[0]) return NQ_OK;
    if (stat(output_path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return nq_fail(NQ_ERR_INPUT, "output.path = %s: is a directory, expected a file name", output_path);
    char out_dir[PATH_MAX];
    if (output_inside_(dir, output_path, out_dir, sizeof out_dir)) return NQ_OK; /* made with the layout */
    if (stat(out_dir, &sb) != 0)
        return nq_fail(NQ_ERR_INPUT, "output.path = %s: directory %s does not exist (%s)", output_path, out_dir,
                       strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return nq_fail(NQ_ERR_INPUT, "output.path = %s: %s is not a directory", output_path, out_dir);
    if (access(out_dir, W_OK | X_OK) != 0)
        return nq_fail(NQ_ERR_INPUT, "output.path = %s: cannot write in %s: %s", output_path, out_dir,
                       strerror(errno));
    return NQ_OK;
}

/* Results without a run.toml: from an unknown run, never resumed silently. */
static nq_status check_orphans_(const char *dir) {
    char first[PATH_MAX] = "";
    int n = sweep_(dir, "state", is_block_name_, 0, first, sizeof first);
    if (n == 0) n = sweep_(dir, "done", is_block_name_, 0, first, sizeof first);
    if (n == 0) n = sweep_(dir, "qinputs", is_level_name_, 0, first, sizeof first);
    if (n == 0) n = sweep_(dir, "", is_top_name_, 0, first, sizeof first);
    if (n < 0) return NQ_ERR_RUNTIME;
    if (n > 0)
        return nq_fail(NQ_ERR_INPUT, "%s/run.toml: missing, but the run directory holds %s from an "
                       "unknown run; %s", dir, first, restart_hint);
    return NQ_OK;
}

nq_status run_dir_prepare(const char *dir, const char *config_toml_resolved,
                          const Fingerprint *fp, const char *output_path, int restart,
                          RunDirStatus *out) {
    char toml[PATH_MAX];
    memset(out, 0, sizeof *out);
    nq_status st = run_dir_toml_path(dir, toml, sizeof toml);
    if (st == NQ_OK) st = make_dirs(dir);
    if (st != NQ_OK) return st;
    if (exists_(toml)) {
        Fingerprint stored;
        st = run_dir_read_fingerprint(dir, &stored);
        if (st == NQ_OK) st = fingerprint_check(&stored, fp, toml);
        if (st == NQ_OK && !restart) {
            out->resumed = 1;
            st = remove_stale_tmps_(dir, output_path);
            return st == NQ_OK ? make_layout_(dir, output_path) : st;
        }
    } else {
        /* A job killed between taking the lock and writing run.toml leaves lock.holder's or
         * run.toml's temporary: stale, since the caller holds the lock, and no result of an
         * unknown run (which check_orphans_ then looks for). */
        st = remove_stale_tmps_(dir, output_path);
        if (st == NQ_OK) st = check_orphans_(dir);
    }
    if (st == NQ_ERR_RUNTIME || (st != NQ_OK && !restart)) return st;
    if (restart) {
        nq_clear_error(); /* the mismatch is what --restart overrides */
        st = remove_our_files_(dir);
        if (st == NQ_OK) st = remove_stale_tmps_(dir, output_path);
        if (st != NQ_OK) return st;
        out->restarted = 1;
    }
    st = make_layout_(dir, output_path);
    if (st == NQ_OK) st = write_run_toml_(dir, config_toml_resolved, fp);
    return st;
}

/* ------------------------------------------------------------------ scan */

/* Header of a done file: format and block, and its metrics. */
static nq_status read_done_header_(const char *path, int block, BlockStatus *s) {
    hid_t file = -1;
    char *format = NULL;
    long long got = -1;
    nq_status st = h5u_open_read(path, &file);
    if (st == NQ_OK) st = h5u_attr_read_string(file, path, "/", "format", &format);
    if (st == NQ_OK && strcmp(format, BLOCK_FILE_FORMAT) != 0)
        st = nq_fail(NQ_ERR_INPUT, "%s: format = \"%s\", expected \"%s\"", path, format, BLOCK_FILE_FORMAT);
    if (st == NQ_OK) st = h5u_attr_read_int(file, path, "/", "block", &got);
    if (st == NQ_OK && got != block) st = nq_fail(NQ_ERR_INPUT, "%s: block = %lld, expected %d", path, got, block);
    if (st == NQ_OK) st = h5u_attr_read_double(file, path, "/", "loss_init", &s->loss_init);
    if (st == NQ_OK) st = h5u_attr_read_double(file, path, "/", "loss_final", &s->loss_final);
    if (st == NQ_OK) st = h5u_attr_read_double(file, path, "/", "seconds", &s->seconds);
    free(format);
    h5u_close(file);
    return st;
}

static nq_status scan_block_(const char *dir, int block, BlockStatus *s) {
    char path[PATH_MAX];
    memset(s, 0, sizeof *s);
    nq_status st = run_dir_done_path(dir, block, path, sizeof path);
    if (st != NQ_OK) return st;
    if (exists_(path)) {
        if (read_done_header_(path, block, s) == NQ_OK) {
            s->state = BLOCK_DONE;
            return NQ_OK;
        }
        memset(s, 0, sizeof *s);
        s->damaged = 1;
        nq_clear_error();
    }
    st = run_dir_state_path(dir, block, path, sizeof path);
    if (st != NQ_OK || !exists_(path)) return st;
    StateInfo info;
    if (state_file_info(path, &info) == NQ_OK && info.block == block) {
        s->state = BLOCK_IN_PROGRESS;
        s->step = info.step;
        s->iterations = info.iterations;
        s->loss_init = info.loss_init;
        s->loss_final = info.loss_last;
        s->seconds = info.seconds;
    } else {
        s->damaged = 1;
        nq_clear_error();
    }
    return NQ_OK;
}

nq_status run_dir_scan(const char *dir, int n_blocks, BlockStatus *out) {
    nq_status st = h5u_init();
    for (int l = 0; l < n_blocks && st == NQ_OK; l++) st = scan_block_(dir, l, &out[l]);
    return st;
}
