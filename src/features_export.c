/* headstart features: extraction through the cache and the two output formats (see
 * features_export.h). */
#include "features_export.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "feature_cache.h"
#include "fileutil.h"
#include "safetensors.h"

/* Rows fetched and written per chunk: bounded memory whatever N is. */
#define CHUNK_ROWS 256

static int ends_with_ci(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    if (n < m) return 0;
    for (size_t i = 0; i < m; i++)
        if (tolower((unsigned char)s[n - m + i]) != suffix[i]) return 0;
    return 1;
}

hs_features_format hs_features_format_of(const char *path) {
    if (!path) return HS_FEATURES_UNKNOWN;
    if (ends_with_ci(path, ".safetensors") && strlen(path) > strlen(".safetensors"))
        return HS_FEATURES_SAFETENSORS;
    if (ends_with_ci(path, ".npy") && strlen(path) > strlen(".npy")) return HS_FEATURES_NPY;
    return HS_FEATURES_UNKNOWN;
}

hs_status hs_features_paths_file(const char *npy_path, char *out, size_t size, hs_error *err) {
    size_t n = strlen(npy_path);
    if (!ends_with_ci(npy_path, ".npy"))
        return hs_fail(err, HS_ERR_ARGUMENT, "%s does not end in .npy", npy_path);
    if (n + 1 > size) return hs_fail(err, HS_ERR_ARGUMENT, "output path too long");
    memcpy(out, npy_path, n - 4);
    memcpy(out + n - 4, ".txt", 5);
    return HS_OK;
}

/* Whether s is well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF): what JSON text must be. */
static int valid_utf8(const unsigned char *s) {
    while (*s) {
        unsigned c = *s;
        int extra;
        unsigned min, cp;
        if (c < 0x80) {
            s++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            extra = 1, min = 0x80, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2, min = 0x800, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return 0;
        }
        for (int i = 1; i <= extra; i++) {
            if ((s[i] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        s += extra + 1;
    }
    return 1;
}

hs_status hs_features_check_path(hs_features_format format, const char *path, hs_error *err) {
    if (format == HS_FEATURES_NPY && strpbrk(path, "\r\n")) {
        char shown[160];
        size_t n = 0;
        for (const char *p = path; *p && n + 3 < sizeof shown; p++) {
            if (*p == '\n' || *p == '\r') {
                shown[n++] = '\\';
                shown[n++] = *p == '\n' ? 'n' : 'r';
            } else {
                shown[n++] = *p;
            }
        }
        shown[n] = '\0';
        return hs_fail(err, HS_ERR_ARGUMENT,
                       "'%s' has a line break in its name, which the .txt paths file (one path "
                       "a line) cannot hold; rename it or write .safetensors", shown);
    }
    if (format == HS_FEATURES_SAFETENSORS && !valid_utf8((const unsigned char *)path))
        return hs_fail(err, HS_ERR_ARGUMENT,
                       "a path is not valid UTF-8, which the safetensors header (JSON) cannot "
                       "hold; rename it or write .npy");
    return HS_OK;
}

/* ---- writing ------------------------------------------------------------------------------ */

/* Writes n floats as little-endian IEEE binary32. */
static int write_le_floats(FILE *f, const float *x, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return fwrite(x, sizeof(float), n, f) == n;
#else
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        unsigned char b[4] = {u & 0xff, (u >> 8) & 0xff, (u >> 16) & 0xff, u >> 24};
        if (fwrite(b, 1, 4, f) != 4) return 0;
    }
    return 1;
#endif
}

static hs_status write_rows(FILE *f, const char *path, long rows, int dim,
                            hs_features_rows_fn rows_fn, void *ctx, hs_error *err) {
    float *chunk = malloc((size_t)CHUNK_ROWS * (size_t)dim * sizeof(float));
    if (!chunk) return hs_fail(err, HS_ERR_NOMEM, "out of memory writing %s", path);
    hs_status st = HS_OK;
    for (long first = 0; first < rows && !st; first += CHUNK_ROWS) {
        int n = rows - first < CHUNK_ROWS ? (int)(rows - first) : CHUNK_ROWS;
        rows_fn(ctx, first, n, chunk);
        if (!write_le_floats(f, chunk, (size_t)n * dim))
            st = hs_fail(err, HS_ERR_IO, "cannot write %s (disk full?)", path);
    }
    free(chunk);
    return st;
}

/* The safetensors header: metadata and the one tensor, padded with spaces to 8 bytes so
 * the data is aligned (as the safetensors library writes it). */
static hs_status safetensors_header(long rows, int dim, const char *const *paths,
                                    const hs_features_meta *meta, char **out, size_t *len,
                                    hs_error *err) {
    *out = NULL;
    hs_status st = HS_OK;
    char *paths_json = NULL, *text = NULL;
    char img_size[16], dim_text[16];
    snprintf(img_size, sizeof img_size, "%d", meta->img_size);
    snprintf(dim_text, sizeof dim_text, "%d", dim);
    cJSON *list = cJSON_CreateArray();
    for (long i = 0; list && i < rows; i++) {
        cJSON *s = cJSON_CreateString(paths[i]);
        if (!s || !cJSON_AddItemToArray(list, s)) {
            cJSON_Delete(s);
            cJSON_Delete(list);
            list = NULL;
        }
    }
    if (list) paths_json = cJSON_PrintUnformatted(list);
    cJSON_Delete(list);
    cJSON *root = paths_json ? cJSON_CreateObject() : NULL;
    cJSON *m = root ? cJSON_AddObjectToObject(root, "__metadata__") : NULL;
    int ok = m && cJSON_AddStringToObject(m, "format", "headstart-features") &&
             cJSON_AddStringToObject(m, "backbone", meta->backbone) &&
             cJSON_AddStringToObject(m, "img_size", img_size) &&
             cJSON_AddStringToObject(m, "feature_dim", dim_text) &&
             cJSON_AddStringToObject(m, "weights_sha256", meta->weights_sha256) &&
             cJSON_AddStringToObject(m, "paths", paths_json);
    cJSON *t = ok ? cJSON_AddObjectToObject(root, "features") : NULL;
    cJSON *shape = t ? cJSON_AddArrayToObject(t, "shape") : NULL;
    cJSON *offsets = t ? cJSON_AddArrayToObject(t, "data_offsets") : NULL;
    ok = shape && offsets && cJSON_AddStringToObject(t, "dtype", "F32");
    double bytes = (double)rows * dim * 4; /* exact: far below 2^53 */
    cJSON *items[4] = {cJSON_CreateNumber((double)rows), cJSON_CreateNumber(dim),
                       cJSON_CreateNumber(0), cJSON_CreateNumber(bytes)};
    for (int i = 0; i < 4; i++) {
        if (ok && items[i] && cJSON_AddItemToArray(i < 2 ? shape : offsets, items[i])) continue;
        cJSON_Delete(items[i]);
        ok = 0;
    }
    if (ok) text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    free(paths_json);
    if (!text) return hs_fail(err, HS_ERR_NOMEM, "out of memory for the safetensors header");
    size_t n = strlen(text), padded = (n + 7) / 8 * 8;
    if (padded > HS_ST_MAX_HEADER) {
        st = hs_fail(err, HS_ERR_ARGUMENT,
                     "the paths of %ld images make a safetensors header of %zu MB, over the "
                     "%u MB readers accept; write .npy (paths in a .txt) instead",
                     rows, padded >> 20, HS_ST_MAX_HEADER >> 20);
        free(text);
        return st;
    }
    char *grown = realloc(text, padded + 1);
    if (!grown) {
        free(text);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory for the safetensors header");
    }
    memset(grown + n, ' ', padded - n);
    grown[padded] = '\0';
    *out = grown;
    *len = padded;
    return HS_OK;
}

static hs_status write_safetensors(const char *path, long rows, int dim,
                                   hs_features_rows_fn rows_fn, void *ctx,
                                   const char *const *paths, const hs_features_meta *meta,
                                   hs_error *err) {
    char *header = NULL;
    size_t len = 0;
    hs_status st = safetensors_header(rows, dim, paths, meta, &header, &len, err);
    if (st) return st;
    hs_atomic_file af;
    if ((st = hs_atomic_begin(&af, path, err))) {
        free(header);
        return st;
    }
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++) prefix[i] = (unsigned char)((uint64_t)len >> (8 * i));
    if (fwrite(prefix, 1, 8, af.file) != 8 || fwrite(header, 1, len, af.file) != len)
        st = hs_fail(err, HS_ERR_IO, "cannot write %s (disk full?)", path);
    free(header);
    if (!st) st = write_rows(af.file, path, rows, dim, rows_fn, ctx, err);
    if (st) {
        hs_atomic_abort(&af);
        return st;
    }
    return hs_atomic_commit(&af, err);
}

/* NumPy format 1.0: magic, version 1.0, a 2-byte little-endian header length, then a
 * Python dict literal padded with spaces and ended by '\n' so that the data starts at a
 * multiple of 64 bytes (what numpy.save writes). */
static int npy_header(long rows, int dim, char *out, size_t size) {
    char dict[128];
    int n = snprintf(dict, sizeof dict,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%ld, %d), }", rows, dim);
    size_t total = (10 + (size_t)n + 1 + 63) / 64 * 64;
    if (total > size) return -1;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    size_t header_len = total - 10;
    out[8] = (char)(header_len & 0xff);
    out[9] = (char)(header_len >> 8);
    memcpy(out + 10, dict, (size_t)n);
    memset(out + 10 + n, ' ', total - 10 - (size_t)n - 1);
    out[total - 1] = '\n';
    return (int)total;
}

static hs_status write_npy(const char *path, long rows, int dim, hs_features_rows_fn rows_fn,
                           void *ctx, const char *const *paths, hs_error *err) {
    char txt_path[4096], header[256];
    hs_status st = hs_features_paths_file(path, txt_path, sizeof txt_path, err);
    if (st) return st;
    int header_len = npy_header(rows, dim, header, sizeof header);
    if (header_len < 0) return hs_fail(err, HS_ERR_INTERNAL, "npy header too long");
    hs_atomic_file npy, txt;
    if ((st = hs_atomic_begin(&npy, path, err))) return st;
    if ((st = hs_atomic_begin(&txt, txt_path, err))) {
        hs_atomic_abort(&npy);
        return st;
    }
    if (fwrite(header, 1, (size_t)header_len, npy.file) != (size_t)header_len)
        st = hs_fail(err, HS_ERR_IO, "cannot write %s (disk full?)", path);
    if (!st) st = write_rows(npy.file, path, rows, dim, rows_fn, ctx, err);
    for (long i = 0; i < rows && !st; i++)
        if (fputs(paths[i], txt.file) == EOF || fputc('\n', txt.file) == EOF)
            st = hs_fail(err, HS_ERR_IO, "cannot write %s (disk full?)", txt_path);
    if (st) {
        hs_atomic_abort(&npy);
        hs_atomic_abort(&txt);
        return st;
    }
    /* The paths first: once the .npy is in place, the .txt beside it is its own. */
    if ((st = hs_atomic_commit(&txt, err))) {
        hs_atomic_abort(&npy);
        return st;
    }
    return hs_atomic_commit(&npy, err);
}

hs_status hs_features_write(const char *path, hs_features_format format, long rows, int dim,
                            hs_features_rows_fn rows_fn, void *rows_ctx,
                            const char *const *paths, const hs_features_meta *meta,
                            hs_error *err) {
    if (rows < 0 || dim <= 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "invalid feature matrix %ld x %d", rows, dim);
    for (long i = 0; i < rows; i++) {
        hs_status st = hs_features_check_path(format, paths[i], err);
        if (st) return st;
    }
    switch (format) {
    case HS_FEATURES_SAFETENSORS:
        return write_safetensors(path, rows, dim, rows_fn, rows_ctx, paths, meta, err);
    case HS_FEATURES_NPY: return write_npy(path, rows, dim, rows_fn, rows_ctx, paths, err);
    case HS_FEATURES_UNKNOWN: break;
    }
    return hs_fail(err, HS_ERR_ARGUMENT, "%s: the output must end in .safetensors or .npy",
                   path);
}

/* ---- extraction through the cache --------------------------------------------------------- */

hs_status hs_features_extract(const hs_features_job *job, hs_feature_set *out, int *cached,
                              char *note, size_t note_size, hs_error *err) {
    memset(out, 0, sizeof *out);
    *cached = 0;
    if (note_size) note[0] = '\0';
    hs_net *net = job->net;
    int boundary = net->feature_end;
    if (boundary <= 0 || boundary >= net->count)
        return hs_fail(err, HS_ERR_INTERNAL, "%s has no backbone/head seam", net->info->name);
    hs_feature_options o = *job->options;
    o.sink = NULL;
    o.sink_ctx = NULL;
    int c = 0, h = 0, w = 0;
    hs_status st = hs_net_shape(net, 0, boundary, 3, o.img_size, o.img_size, &c, &h, &w, err);
    if (st) return st;
    int dim = c * h * w;
    if (!job->cache_dir || !job->cache_dir[0]) {
        snprintf(note, note_size, "computed (no cache)");
        return hs_extract_features(net, boundary, job->dataset, &o, out, err);
    }

    char *key = NULL;
    hs_cache_key_input in = {net->info->name, job->weights_sha256, boundary,
                             net->layers[boundary].name, o.img_size, o.mean, o.std,
                             HS_CACHE_F32, net->bf16, job->dataset, job->source,
                             o.interpolation};
    if ((st = hs_cache_key_make(&in, &key, err))) return st;
    int hit = 0;
    char why[600];
    st = hs_cache_lookup(job->cache_dir, key, job->source, job->dataset, dim, out, &hit, why,
                         sizeof why, err);
    if (st || hit) {
        if (hit) {
            *cached = 1;
            snprintf(note, note_size, "read from the cache (%s)", why);
        }
        free(key);
        return st;
    }
    hs_cache_fill_job fill = {net, boundary, job->dataset, &o, job->cache_dir, key,
                              job->source, dim, HS_CACHE_F32};
    char fallback[700];
    st = hs_cache_fill(&fill, out, fallback, sizeof fallback, err);
    free(key);
    if (!st) {
        if (fallback[0]) snprintf(note, note_size, "%s; computed in memory", fallback);
        else snprintf(note, note_size, "computed (%s)", why);
    }
    return st;
}

void hs_features_set_threads(int threads) {
    if (threads <= 0) return;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
}
