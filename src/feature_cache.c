#include "feature_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fileutil.h"
#include "half.h"
#include "hash.h"

#define CACHE_MAGIC "HSFCACHE"
#define CACHE_SUFFIX ".hsf"
#define MAX_HEADER_BYTES (64u << 20)
#define MAX_DIM (1 << 24)

/* The last bytes of every cache file. All fields are naturally aligned: no padding. */
typedef struct cache_footer {
    char magic[8];
    uint32_t version, precision;
    uint64_t count, dim;
    uint64_t header_offset, header_bytes;
    uint8_t sha256[32];
} cache_footer;
_Static_assert(sizeof(cache_footer) == 80, "cache footer layout");

static size_t element_bytes(hs_cache_precision p) { return p == HS_CACHE_F16 ? 2 : 4; }

/* ---- the key ------------------------------------------------------------------------------ */

typedef struct text {
    char *data;
    size_t length, capacity;
} text;

static int text_add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int text_add(text *t, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->capacity - t->length;
        int n = vsnprintf(t->data ? t->data + t->length : NULL, t->data ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return -1;
        if (t->data && (size_t)n < room) {
            t->length += (size_t)n;
            return 0;
        }
        size_t want = t->capacity * 2 + (size_t)n + 256;
        char *grown = realloc(t->data, want);
        if (!grown) return -1;
        t->data = grown;
        t->capacity = want;
    }
}

/* SHA-256 of the class names, then of every sample's name, size, mtime and label. */
static int hash_classes(const hs_dataset *ds, char hex[65]) {
    hs_sha256 *h = hs_sha256_new();
    if (!h) return -1;
    for (int i = 0; i < ds->class_count; i++)
        hs_sha256_update(h, ds->class_names[i], strlen(ds->class_names[i]) + 1);
    unsigned char digest[32];
    if (hs_sha256_finish(h, digest)) return -1;
    hs_sha256_hex(digest, hex);
    return 0;
}

static int hash_files(const hs_dataset *ds, char hex[65]) {
    hs_sha256 *h = hs_sha256_new();
    if (!h) return -1;
    for (int i = 0; i < ds->count; i++) {
        const hs_sample *s = &ds->samples[i];
        char line[96];
        int n = snprintf(line, sizeof line, "\t%lld\t%lld\t%d\n", (long long)s->size,
                         (long long)s->mtime, s->label);
        hs_sha256_update(h, s->name, strlen(s->name));
        hs_sha256_update(h, line, (size_t)n);
    }
    unsigned char digest[32];
    if (hs_sha256_finish(h, digest)) return -1;
    hs_sha256_hex(digest, hex);
    return 0;
}

hs_status hs_cache_key_make(const hs_cache_key_input *in, char **key, hs_error *err) {
    *key = NULL;
    char classes[65], files[65];
    if (hash_classes(in->dataset, classes) || hash_files(in->dataset, files))
        return hs_fail(err, HS_ERR_NOMEM, "out of memory hashing the file list");
    text t = {0};
    int bad = text_add(&t, "format=%d\nbackbone=%s\nweights=%s\nboundary=%d %s\n",
                       HS_CACHE_FORMAT_VERSION, in->backbone, in->weights_sha, in->boundary,
                       in->boundary_layer);
    /* The resize and scaling are the code's; a change to them bumps the format version. */
    bad |= text_add(&t, "img_size=%d\nresize=%s-pil-antialias rgb/255\n", in->img_size,
                    hs_interpolation_name(in->interpolation));
    bad |= text_add(&t, "mean=%.9g,%.9g,%.9g\nstd=%.9g,%.9g,%.9g\n", in->mean[0], in->mean[1],
                    in->mean[2], in->std[0], in->std[1], in->std[2]);
    bad |= text_add(&t, "compute=%s\n", in->bf16 ? "bf16" : "f32");
    bad |= text_add(&t, "precision=%s\nclasses=%d %s\nfiles=%d %s\n",
                    in->precision == HS_CACHE_F16 ? "f16" : "f32", in->dataset->class_count,
                    classes, in->dataset->count, files);
    if (bad) {
        free(t.data);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    }
    *key = t.data;
    return HS_OK;
}

/* ---- where ------------------------------------------------------------------------------- */

hs_status hs_cache_dir_path(const char *override, char *out, size_t size, hs_error *err) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (override && *override) n = snprintf(out, size, "%s/features", override);
    else if (xdg && *xdg) n = snprintf(out, size, "%s/headstart/features", xdg);
    else if (home && *home) n = snprintf(out, size, "%s/.cache/headstart/features", home);
    else
        return hs_fail(err, HS_ERR_ARGUMENT,
                       "no cache folder: set HOME or XDG_CACHE_HOME, or pass --cache-dir "
                       "(or --no-cache)");
    if (n < 0 || (size_t)n >= size) return hs_fail(err, HS_ERR_ARGUMENT, "cache path too long");
    return HS_OK;
}

hs_status hs_cache_dir_resolve(const char *override, char *out, size_t size, hs_error *err) {
    hs_status st = hs_cache_dir_path(override, out, size, err);
    return st ? st : hs_make_dirs(out, err);
}

static int entry_path(const char *dir, const char *key, char *out, size_t size) {
    hs_sha256 *h = hs_sha256_new();
    if (!h) return -1;
    hs_sha256_update(h, key, strlen(key));
    unsigned char digest[32];
    char hex[65];
    if (hs_sha256_finish(h, digest)) return -1;
    hs_sha256_hex(digest, hex);
    int n = snprintf(out, size, "%s/%.32s%s", dir, hex, CACHE_SUFFIX);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* ---- reading ------------------------------------------------------------------------------ */

/* Checks a footer against the file size; returns NULL or what is wrong. */
static const char *check_footer(const cache_footer *f, uint64_t file_size) {
    if (memcmp(f->magic, CACHE_MAGIC, 8) != 0) return "no footer: truncated, or not a headstart feature cache";
    if (f->version != HS_CACHE_FORMAT_VERSION) return "another cache format version";
    if (f->precision != HS_CACHE_F32 && f->precision != HS_CACHE_F16) return "unknown precision";
    if (f->dim < 1 || f->dim > MAX_DIM || f->count > INT32_MAX) return "impossible sizes";
    uint64_t rows = f->count * f->dim * element_bytes((hs_cache_precision)f->precision);
    if (f->header_offset != rows + 8 * f->count) return "inconsistent offsets";
    if (f->header_bytes > MAX_HEADER_BYTES) return "oversized header";
    if (f->header_offset + f->header_bytes + sizeof *f != file_size)
        return "truncated or extended";
    return NULL;
}

/* Opens a cache file for reading: never through a link, never blocking on a FIFO (anyone who
 * can write a shared cache folder can plant either); a regular file or -1. */
static int open_regular(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Reads the footer and header of path (without the rows); NULL when unreadable. */
static char *read_header(const char *path, cache_footer *f) {
    int fd = open_regular(path);
    if (fd < 0) return NULL;
    struct stat st;
    char *header = NULL;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= sizeof *f &&
        pread(fd, f, sizeof *f, st.st_size - (off_t)sizeof *f) == (ssize_t)sizeof *f &&
        !check_footer(f, (uint64_t)st.st_size) && (header = malloc(f->header_bytes + 1))) {
        if (pread(fd, header, f->header_bytes, (off_t)f->header_offset) !=
            (ssize_t)f->header_bytes) {
            free(header);
            header = NULL;
        } else {
            header[f->header_bytes] = '\0';
        }
    }
    close(fd);
    return header;
}

/* The value of "name=" in a key or header text (up to the newline), or NULL. */
static const char *field(const char *text_, const char *name, size_t *length) {
    size_t n = strlen(name);
    for (const char *line = text_; line && *line;) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        if ((size_t)(end - line) > n && strncmp(line, name, n) == 0 && line[n] == '=') {
            *length = (size_t)(end - line) - n - 1;
            return line + n + 1;
        }
        line = *end ? end + 1 : NULL;
    }
    return NULL;
}

static int same_field(const char *a, const char *b, const char *name) {
    size_t la = 0, lb = 0;
    const char *va = field(a, name, &la), *vb = field(b, name, &lb);
    if (!va || !vb) return va == vb;
    return la == lb && memcmp(va, vb, la) == 0;
}

/* Says which key fields differ between an older entry's header and the new key. */
static void describe_change(const char *old_header, const char *key, char *why, size_t size) {
    static const char *const fields[][2] = {
        {"format", "cache format version"}, {"backbone", "backbone"}, {"weights", "weights"},
        {"boundary", "frozen boundary"},    {"img_size", "image size"}, {"resize", "resize"},
        {"mean", "normalisation mean"},     {"std", "normalisation std"},
        {"compute", "compute precision"},
        {"precision", "precision"},         {"classes", "class map"}, {"files", "file list"}};
    size_t used = (size_t)snprintf(why, size, "changed since the cached features:");
    for (size_t i = 0; i < sizeof fields / sizeof fields[0] && used < size; i++) {
        if (same_field(old_header, key, fields[i][0])) continue;
        used += (size_t)snprintf(why + used, size - used, " %s", fields[i][1]);
        if (strcmp(fields[i][0], "files") == 0 && used < size) {
            size_t lo = 0, ln = 0;
            const char *vo = field(old_header, "files", &lo), *vn = field(key, "files", &ln);
            int old_count = vo ? atoi(vo) : -1, new_count = vn ? atoi(vn) : -1;
            used += (size_t)(old_count != new_count
                                 ? snprintf(why + used, size - used, " (%d -> %d images)",
                                            old_count, new_count)
                                 : snprintf(why + used, size - used,
                                            " (names/sizes/modification times)"));
        }
        if (used < size) used += (size_t)snprintf(why + used, size - used, ",");
    }
    if (used > 0 && used < size && why[used - 1] == ',') why[used - 1] = '\0';
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Removes temporary files no writer holds (killed runs; see hs_remove_stale_temps), and
 * finds the newest entry of the same source to explain a miss. */
static void scan_dir(const char *dir, const char *key, const char *source, char *why,
                     size_t size) {
    snprintf(why, size, "no cached features for this data set yet");
    hs_remove_stale_temps(dir);
    DIR *d = opendir(dir);
    if (!d) return;
    time_t newest = 0; /* the most recently used (hits set the modification time) */
    struct dirent *e;
    char path[4400];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !ends_with(e->d_name, CACHE_SUFFIX)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        cache_footer f;
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_mtime < newest) continue;
        char *header = read_header(path, &f);
        size_t length = 0;
        const char *src = header ? field(header, "source", &length) : NULL;
        if (src && length == strlen(source) && memcmp(src, source, length) == 0) {
            newest = st.st_mtime;
            describe_change(header, key, why, size);
        }
        free(header);
    }
    closedir(d);
}

/* What the caller knows independently of the entry: the data set it reads the entry for
 * and the width of the rows its network produces. */
typedef struct expectation {
    const char *key;
    const hs_dataset *ds;
    int dim;
} expectation;

/* Checks the footer's precision against the key's "precision=" line (a key without one,
 * as in tests, promises nothing). */
static int precision_matches(const char *key, uint32_t precision) {
    size_t length = 0;
    const char *value = field(key, "precision", &length);
    if (!value) return 1;
    const char *want = precision == HS_CACHE_F16 ? "f16" : "f32";
    return length == strlen(want) && memcmp(value, want, length) == 0;
}

/* Fills out from a mapped, checksummed entry after checking every field against what the
 * caller expects: the checksum only proves the file is whole, not that whoever wrote it (a
 * forged file in a writable cache folder) told the truth. Returns NULL or what is wrong,
 * possibly formatted into note. */
static const char *load_entry(const uint8_t *map, const cache_footer *f, const expectation *x,
                              hs_feature_set *out, char *note, size_t note_size) {
    const hs_dataset *ds = x->ds;
    const char *header = (const char *)map + f->header_offset;
    const char *header_end = header + f->header_bytes;
    size_t key_length = strlen(x->key);
    /* The key, byte for byte, then the source line: a key that merely starts the same way
     * (a longer, forged key) does not match. */
    if (f->header_bytes < key_length + 7 || memcmp(header, x->key, key_length) != 0 ||
        memcmp(header + key_length, "source=", 7) != 0)
        return "its key does not match its name";
    if (f->dim != (uint64_t)x->dim) {
        snprintf(note, note_size, "rows of %llu values where the network gives %d",
                 (unsigned long long)f->dim, x->dim);
        return note;
    }
    if (!precision_matches(x->key, f->precision)) return "its precision is not its key's";
    if (f->count > (uint64_t)ds->count) return "more rows than the data set has images";
    int count = (int)f->count;
    const uint8_t *labels = map + f->header_offset - 8 * f->count;
    const uint8_t *indexes = labels + 4 * f->count;
    out->labels = malloc((size_t)(count ? count : 1) * sizeof(int));
    out->sample_index = malloc((size_t)(count ? count : 1) * sizeof(int));
    if (!out->labels || !out->sample_index) return "out of memory";
    memcpy(out->labels, labels, (size_t)count * sizeof(int32_t));
    memcpy(out->sample_index, indexes, (size_t)count * sizeof(int32_t));
    for (int i = 0; i < count; i++) {
        int s = out->sample_index[i], label = out->labels[i];
        if (label < 0 || label >= ds->class_count) return "a label outside the class map";
        if (s < 0 || s >= ds->count || (i > 0 && s <= out->sample_index[i - 1]) ||
            label != ds->samples[s].label)
            return "its rows do not match the data set's images";
    }
    /* After the source line, only the images that could not be read when it was made, named
     * again for this run. */
    const char *line = memchr(header + key_length, '\n', (size_t)(header_end - header - key_length));
    line = line ? line + 1 : header_end;
    while (line < header_end) {
        const char *end = memchr(line, '\n', (size_t)(header_end - line));
        if (!end) end = header_end;
        if (end - line < 8 || strncmp(line, "skipped=", 8) != 0)
            return "an unknown line in its header";
        if (out->failed_count >= ds->count - count) /* bounds the work a forged header asks */
            return "more rows and skipped images than the data set has images";
        char **grown = realloc(out->failed, (size_t)(out->failed_count + 1) * sizeof *grown);
        if (!grown) return "out of memory";
        out->failed = grown;
        if (!(out->failed[out->failed_count] = strndup(line + 8, (size_t)(end - line - 8))))
            return "out of memory";
        out->failed_count++;
        line = end + 1;
    }
    /* Every image of the data set is a row or a skipped image, as when it was computed. */
    if ((int64_t)count + out->failed_count != ds->count) {
        snprintf(note, note_size, "%d rows and %d skipped images for %d images", count,
                 out->failed_count, ds->count);
        return note;
    }
    out->count = count;
    out->dim = (int)f->dim;
    if (f->precision == HS_CACHE_F16) out->half = (const uint16_t *)map;
    else out->values = (const float *)map;
    return NULL;
}

/* Maps and verifies the entry at path; returns NULL (out filled) or what is wrong (possibly
 * in note). */
static const char *open_entry(const char *path, const expectation *x, hs_feature_set *out,
                              char *note, size_t note_size) {
    int fd = open_regular(path);
    if (fd < 0) return "unreadable or not a file";
    struct stat st;
    cache_footer f;
    const char *problem = NULL;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < sizeof f ||
             pread(fd, &f, sizeof f, st.st_size - (off_t)sizeof f) != (ssize_t)sizeof f)
        problem = "truncated";
    if (!problem) problem = check_footer(&f, (uint64_t)st.st_size);
    void *map = MAP_FAILED;
    if (!problem) {
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) problem = "cannot be mapped";
    }
    close(fd);
    if (problem) return problem;
    madvise(map, (size_t)st.st_size, MADV_WILLNEED);
    /* The checksum proves the file is the one its writer finished. */
    hs_sha256 *h = hs_sha256_new();
    unsigned char digest[32];
    if (!h) problem = "out of memory";
    if (h) {
        hs_sha256_update(h, map, f.header_offset + f.header_bytes);
        if (hs_sha256_finish(h, digest) || memcmp(digest, f.sha256, 32) != 0)
            problem = "checksum mismatch";
    }
    if (!problem) problem = load_entry(map, &f, x, out, note, note_size);
    if (problem) {
        munmap(map, (size_t)st.st_size);
        out->half = NULL;
        out->values = NULL;
        hs_feature_set_free(out);
        return problem;
    }
    out->map = map;
    out->map_bytes = (size_t)st.st_size;
    return NULL;
}

hs_status hs_cache_lookup(const char *dir, const char *key, const char *source,
                          const hs_dataset *dataset, int dim, hs_feature_set *out, int *hit,
                          char *why, size_t why_size, hs_error *err) {
    memset(out, 0, sizeof *out);
    *hit = 0;
    char path[4200];
    if (entry_path(dir, key, path, sizeof path))
        return hs_fail(err, HS_ERR_ARGUMENT, "cache path too long: %s", dir);
    struct stat st;
    if (lstat(path, &st) != 0) {
        scan_dir(dir, key, source, why, why_size);
        return HS_OK;
    }
    expectation x = {key, dataset, dim};
    char note[160];
    const char *problem = open_entry(path, &x, out, note, sizeof note);
    if (problem && strcmp(problem, "out of memory") == 0)
        return hs_fail(err, HS_ERR_NOMEM, "out of memory reading %s", path);
    if (problem) {
        unlink(path);
        snprintf(why, why_size, "the cached features %s were damaged (%s) and were removed",
                 path, problem);
        return HS_OK;
    }
    /* The last use, for 'headstart cache list' and prune: the modification time, which
     * nothing else changes once an entry is written (access times are changed by any read,
     * listing included, or not at all on noatime mounts). Failing to set it is harmless. */
    struct timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    utimensat(AT_FDCWD, path, times, 0);
    snprintf(why, why_size, "%s", path);
    *hit = 1;
    return HS_OK;
}

/* ---- writing ------------------------------------------------------------------------------ */

struct hs_cache_writer {
    hs_atomic_file out;     /* the entry, under a temporary name until the commit */
    char final_path[4200];
    char *header;           /* key and source lines */
    int dim;
    hs_cache_precision precision;
    uint64_t rows;
    hs_sha256 *sha;
    uint16_t *half;         /* conversion buffer */
    size_t half_capacity;
};

void hs_cache_writer_abort(hs_cache_writer *w) {
    if (!w) return;
    hs_atomic_abort(&w->out);
    if (w->sha) {
        unsigned char ignored[32];
        hs_sha256_finish(w->sha, ignored);
    }
    free(w->header);
    free(w->half);
    free(w);
}

hs_status hs_cache_writer_open(const char *dir, const char *key, const char *source, int dim,
                               hs_cache_precision precision, hs_cache_writer **out,
                               hs_error *err) {
    *out = NULL;
    hs_cache_writer *w = calloc(1, sizeof *w);
    if (!w) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    w->dim = dim;
    w->precision = precision;
    text header = {0};
    if (entry_path(dir, key, w->final_path, sizeof w->final_path) ||
        text_add(&header, "%ssource=%s\n", key, source) || !(w->sha = hs_sha256_new())) {
        free(header.data);
        hs_cache_writer_abort(w);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    }
    w->header = header.data;
    hs_error open_err = {0};
    if (hs_atomic_begin(&w->out, w->final_path, &open_err)) {
        hs_status st = hs_fail(err, open_err.code, "feature cache: %s", open_err.message);
        hs_cache_writer_abort(w);
        return st;
    }
    *out = w;
    return HS_OK;
}

static hs_status write_bytes(hs_cache_writer *w, const void *data, size_t size, hs_error *err) {
    if (size && fwrite(data, 1, size, w->out.file) != size)
        return hs_fail(err, HS_ERR_IO, "cannot write the feature cache %s: %s", w->final_path,
                       strerror(errno));
    hs_sha256_update(w->sha, data, size);
    return HS_OK;
}

hs_status hs_cache_writer_append(void *writer, const float *rows, int n, hs_error *err) {
    hs_cache_writer *w = writer;
    size_t count = (size_t)n * w->dim;
    w->rows += (uint64_t)n;
    if (w->precision == HS_CACHE_F32) return write_bytes(w, rows, count * sizeof(float), err);
    if (count > w->half_capacity) {
        uint16_t *grown = realloc(w->half, count * sizeof *grown);
        if (!grown) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
        w->half = grown;
        w->half_capacity = count;
    }
    hs_floats_to_half(rows, count, w->half);
    return write_bytes(w, w->half, count * sizeof *w->half, err);
}

static hs_status write_tail(hs_cache_writer *w, const hs_feature_set *set, hs_error *err) {
    if (w->rows != (uint64_t)set->count)
        return hs_fail(err, HS_ERR_INTERNAL, "feature cache: %llu rows written for %d images",
                       (unsigned long long)w->rows, set->count);
    hs_status st = HS_OK;
    for (int i = 0; i < set->count && !st; i++) {
        int32_t v = set->labels[i];
        st = write_bytes(w, &v, sizeof v, err);
    }
    for (int i = 0; i < set->count && !st; i++) {
        int32_t v = set->sample_index[i];
        st = write_bytes(w, &v, sizeof v, err);
    }
    if (st) return st;
    cache_footer f = {{0}, HS_CACHE_FORMAT_VERSION, (uint32_t)w->precision, w->rows,
                      (uint64_t)w->dim, 0, 0, {0}};
    memcpy(f.magic, CACHE_MAGIC, 8);
    f.header_offset = w->rows * (uint64_t)w->dim * element_bytes(w->precision) + 8 * w->rows;
    text header = {0};
    int bad = text_add(&header, "%s", w->header);
    for (int i = 0; i < set->failed_count && !bad; i++) {
        bad |= text_add(&header, "skipped=");
        for (const char *c = set->failed[i]; *c && !bad; c++) /* one line each */
            bad |= text_add(&header, "%c", *c == '\n' ? ' ' : *c);
        bad |= text_add(&header, "\n");
    }
    if (bad) {
        free(header.data);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    }
    f.header_bytes = header.length;
    st = write_bytes(w, header.data, header.length, err);
    free(header.data);
    if (st) return st;
    hs_sha256 *sha = w->sha;
    w->sha = NULL;
    if (hs_sha256_finish(sha, f.sha256))
        return hs_fail(err, HS_ERR_INTERNAL, "SHA-256 failed");
    if (fwrite(&f, sizeof f, 1, w->out.file) != 1)
        return hs_fail(err, HS_ERR_IO, "cannot write the feature cache %s: %s", w->final_path,
                       strerror(errno));
    return HS_OK;
}

hs_status hs_cache_writer_commit(hs_cache_writer *w, const hs_feature_set *set,
                                 hs_error *err) {
    hs_status st = write_tail(w, set, err);
    hs_error commit_err = {0};
    if (!st && hs_atomic_commit(&w->out, &commit_err))
        st = hs_fail(err, commit_err.code, "feature cache: %s", commit_err.message);
    hs_cache_writer_abort(w); /* frees; after a commit there is no temporary file left */
    return st;
}

/* ---- managing the cache ------------------------------------------------------------------- */

static void copy_field(const char *header, const char *name, char *out, size_t size) {
    size_t length = 0;
    const char *value = header ? field(header, name, &length) : NULL;
    if (!value) {
        snprintf(out, size, "?");
        return;
    }
    snprintf(out, size, "%.*s", (int)(length < size ? length : size - 1), value);
}

/* What an entry's footer and key say about it. */
static void describe_entry(const char *path, hs_cache_entry_info *info) {
    cache_footer f;
    char *header = read_header(path, &f);
    info->damaged = header == NULL;
    copy_field(header, "backbone", info->backbone, sizeof info->backbone);
    copy_field(header, "precision", info->precision, sizeof info->precision);
    copy_field(header, "source", info->source, sizeof info->source);
    size_t length = 0;
    const char *size_text = header ? field(header, "img_size", &length) : NULL;
    info->img_size = size_text ? atoi(size_text) : 0;
    info->images = header ? (long long)f.count : 0;
    free(header);
}

static int by_last_use(const void *a, const void *b) {
    const hs_cache_entry_info *x = a, *y = b;
    if (x->damaged != y->damaged) return y->damaged - x->damaged; /* damaged first */
    if (x->last_use_ns != y->last_use_ns) return x->last_use_ns < y->last_use_ns ? -1 : 1;
    return strcmp(x->name, y->name);
}

void hs_cache_listing_free(hs_cache_listing *listing) {
    if (!listing) return;
    free(listing->entries);
    memset(listing, 0, sizeof *listing);
}

hs_status hs_cache_list(const char *dir, hs_cache_listing *out, hs_error *err) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return HS_OK;
        return hs_fail(err, HS_ERR_IO, "cannot read the cache folder %s: %s", dir,
                       strerror(errno));
    }
    int capacity = 0;
    struct dirent *e;
    char path[4400];
    hs_status st = HS_OK;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !ends_with(e->d_name, CACHE_SUFFIX) ||
            strlen(e->d_name) >= sizeof out->entries[0].name)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st_;
        if (lstat(path, &st_) != 0 || !S_ISREG(st_.st_mode)) continue;
        if (out->count == capacity) {
            capacity = capacity ? capacity * 2 : 16;
            hs_cache_entry_info *grown = realloc(out->entries, (size_t)capacity * sizeof *grown);
            if (!grown) {
                st = hs_fail(err, HS_ERR_NOMEM, "out of memory listing %s", dir);
                break;
            }
            out->entries = grown;
        }
        hs_cache_entry_info *info = &out->entries[out->count++];
        memset(info, 0, sizeof *info);
        snprintf(info->name, sizeof info->name, "%s", e->d_name);
        info->bytes = (long long)st_.st_size;
        info->last_use = (long long)st_.st_mtime; /* set by every hit */
        info->last_use_ns =
            (long long)st_.st_mtim.tv_sec * 1000000000LL + (long long)st_.st_mtim.tv_nsec;
        describe_entry(path, info);
        out->total_bytes += info->bytes;
    }
    closedir(d);
    if (st) {
        hs_cache_listing_free(out);
        return st;
    }
    if (out->count > 1) qsort(out->entries, (size_t)out->count, sizeof *out->entries, by_last_use);
    return HS_OK;
}

hs_status hs_cache_prune(const char *dir, long long older_than, long long max_bytes,
                         long long now, hs_cache_prune_result *result, hs_error *err) {
    memset(result, 0, sizeof *result);
    hs_cache_listing listing;
    hs_status st = hs_cache_list(dir, &listing, err);
    if (st) return st;
    hs_remove_stale_temps(dir);
    long long left = listing.total_bytes;
    char path[4400];
    for (int i = 0; i < listing.count; i++) {
        const hs_cache_entry_info *info = &listing.entries[i];
        int too_old = older_than >= 0 && now - info->last_use > older_than;
        int too_big = max_bytes >= 0 && left > max_bytes;
        snprintf(path, sizeof path, "%s/%s", dir, info->name);
        if ((info->damaged || too_old || too_big) && unlink(path) == 0) {
            result->removed++;
            result->removed_bytes += info->bytes;
            left -= info->bytes;
        } else {
            result->kept++;
            result->kept_bytes += info->bytes;
        }
    }
    hs_cache_listing_free(&listing);
    return HS_OK;
}
