/* safetensors reader and writer (see safetensors.h). */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fileutil.h"
#include "json_bound.h"

static int parse_dtype(const char *s, hs_dtype *out) {
    static const struct {
        const char *name;
        hs_dtype dtype;
    } table[] = {{"F32", HS_DTYPE_F32}, {"F16", HS_DTYPE_F16}, {"BF16", HS_DTYPE_BF16},
                 {"F64", HS_DTYPE_F64}, {"I64", HS_DTYPE_I64}, {"I32", HS_DTYPE_I32},
                 {"I16", HS_DTYPE_I16}, {"I8", HS_DTYPE_I8},   {"U8", HS_DTYPE_U8},
                 {"BOOL", HS_DTYPE_BOOL}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(s, table[i].name) == 0) {
            *out = table[i].dtype;
            return 1;
        }
    }
    return 0;
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_uint(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double d = item->valuedouble;
    if (!(d >= 0.0) || d > 9007199254740992.0 || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static hs_status load_entry(const cJSON *item, const uint8_t *data, uint64_t data_size,
                            const char *name, hs_state_dict *out, hs_error *err) {
    const char *tname = item->string;
    if (!cJSON_IsObject(item))
        return hs_fail(err, HS_ERR_FORMAT, "%s: tensor '%s': header entry is not an object",
                       name, tname);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    hs_dtype dtype;
    if (!cJSON_IsString(jd) || !parse_dtype(jd->valuestring, &dtype))
        return hs_fail(err, HS_ERR_FORMAT, "%s: tensor '%s': missing or unsupported dtype%s%s",
                       name, tname, cJSON_IsString(jd) ? " " : "",
                       cJSON_IsString(jd) ? jd->valuestring : "");
    if (!cJSON_IsArray(js))
        return hs_fail(err, HS_ERR_FORMAT, "%s: tensor '%s': missing shape", name, tname);
    int ndim = cJSON_GetArraySize(js);
    if (ndim > HS_MAX_DIMS)
        return hs_fail(err, HS_ERR_FORMAT, "%s: tensor '%s': %d dimensions (at most %d)", name,
                       tname, ndim, HS_MAX_DIMS);
    int64_t shape[HS_MAX_DIMS];
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < ndim; i++) {
        uint64_t d;
        if (!json_uint(cJSON_GetArrayItem(js, i), &d))
            return hs_fail(err, HS_ERR_FORMAT,
                           "%s: tensor '%s': shape must be non-negative integers", name, tname);
        shape[i] = (int64_t)d;
        if (d != 0 && numel > UINT64_MAX / d) overflow = 1;
        else numel *= d;
    }
    /* A zero anywhere makes numel 0 even if the other dims overflowed. */
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0) {
            numel = 0;
            overflow = 0;
        }
    size_t esize = hs_dtype_size(dtype);
    if (overflow || numel > (uint64_t)INT64_MAX / 8)
        return hs_fail(err, HS_ERR_FORMAT, "%s: tensor '%s': shape is too large", name, tname);
    uint64_t nbytes = numel * esize;
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return hs_fail(err, HS_ERR_FORMAT, "%s: tensor '%s': data_offsets must be [begin, end]",
                       name, tname);
    uint64_t begin, end;
    if (!json_uint(cJSON_GetArrayItem(jo, 0), &begin) ||
        !json_uint(cJSON_GetArrayItem(jo, 1), &end) || end < begin)
        return hs_fail(err, HS_ERR_FORMAT, "%s: tensor '%s': invalid data_offsets", name, tname);
    if (end > data_size)
        return hs_fail(err, HS_ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] beyond the %llu data bytes",
                       name, tname, (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)data_size);
    if (end - begin != nbytes)
        return hs_fail(err, HS_ERR_FORMAT,
                       "%s: tensor '%s': %llu data bytes but shape and dtype need %llu", name,
                       tname, (unsigned long long)(end - begin), (unsigned long long)nbytes);
    size_t fbytes;
    if (numel > SIZE_MAX || !hs_mul_size((size_t)numel, sizeof(float), &fbytes))
        return hs_fail(err, HS_ERR_NOMEM, "%s: tensor '%s' is too large", name, tname);
    float *buf = malloc(fbytes ? fbytes : 1);
    if (!buf) return hs_fail(err, HS_ERR_NOMEM, "%s: out of memory for tensor '%s'", name, tname);
    hs_convert_to_f32(dtype, data + begin, (int64_t)numel, buf);
    hs_status st = hs_sd_add(out, tname, ndim, shape, dtype, buf, err);
    if (st != HS_OK) return hs_fail_context(err, st, "%s", name);
    return HS_OK;
}

/* out is initialised here (any previous content is not freed): on success it holds every
 * tensor, on failure it is empty. */
hs_status hs_safetensors_load_memory(const uint8_t *data, size_t size, const char *name,
                                     hs_state_dict *out, hs_error *err) {
    if (!name) name = "<memory>";
    hs_sd_init(out);
    if (size < 8)
        return hs_fail(err, HS_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file",
                       name, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i];
    if (hlen > size - 8)
        return hs_fail(err, HS_ERR_FORMAT,
                       "%s: header length %llu is larger than the file (%zu bytes)", name,
                       (unsigned long long)hlen, size);
    if (hlen > HS_ST_MAX_HEADER)
        return hs_fail(err, HS_ERR_FORMAT, "%s: header length %llu is over the limit of %u",
                       name, (unsigned long long)hlen, HS_ST_MAX_HEADER);
    if (hlen < 2)
        return hs_fail(err, HS_ERR_FORMAT, "%s: header is too short", name);
    const char *text = (const char *)data + 8;
    if (hs_json_value_bound(text, (size_t)hlen) > HS_ST_MAX_JSON_VALUES)
        return hs_fail(err, HS_ERR_NOMEM,
                       "%s: the header holds more JSON values than %d tensors can need", name,
                       HS_SD_MAX_TENSORS);
    cJSON *root = cJSON_ParseWithLength(text, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return hs_fail(err, HS_ERR_FORMAT, "%s: header is not a JSON object", name);
    }
    /* Counted before any tensor is built: a huge header of tiny entries is refused at once,
     * and hs_sd_add checks each name for a duplicate in constant time. */
    size_t tensors = 0;
    for (const cJSON *item = root->child; item; item = item->next)
        if (!item->string || strcmp(item->string, "__metadata__") != 0) tensors++;
    if (tensors > HS_SD_MAX_TENSORS) {
        cJSON_Delete(root);
        return hs_fail(err, HS_ERR_NOMEM, "%s: %zu tensors (at most %d are supported)", name,
                       tensors, HS_SD_MAX_TENSORS);
    }
    const uint8_t *body = data + 8 + hlen;
    uint64_t body_size = size - 8 - hlen;
    hs_state_dict sd;
    hs_sd_init(&sd);
    hs_status st = HS_OK;
    for (const cJSON *item = root->child; item; item = item->next) {
        if (!item->string) {
            st = hs_fail(err, HS_ERR_FORMAT, "%s: header entry without a name", name);
            break;
        }
        if (strcmp(item->string, "__metadata__") == 0) continue;
        st = load_entry(item, body, body_size, name, &sd, err);
        if (st != HS_OK) break;
    }
    cJSON_Delete(root);
    if (st != HS_OK) {
        hs_sd_free(&sd);
        return st;
    }
    /* out is an output parameter: it receives the whole dict, or stays empty on failure. */
    *out = sd;
    return HS_OK;
}

hs_status hs_safetensors_load(const char *path, hs_state_dict *out, hs_error *err) {
    hs_sd_init(out);
    FILE *f = fopen(path, "rb");
    if (!f) return hs_fail(err, HS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat stt;
    if (fstat(fileno(f), &stt) != 0 || !S_ISREG(stt.st_mode)) {
        fclose(f);
        return hs_fail(err, HS_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)stt.st_size > (uint64_t)SIZE_MAX) {
        fclose(f);
        return hs_fail(err, HS_ERR_NOMEM, "%s: file is too large", path);
    }
    size_t size = (size_t)stt.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return hs_fail(err, HS_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, size);
    }
    size_t got = size ? fread(buf, 1, size, f) : 0;
    int rerr = ferror(f);
    fclose(f);
    if (got != size || rerr) {
        free(buf);
        return hs_fail(err, HS_ERR_IO, "%s: read error", path);
    }
    hs_status st = hs_safetensors_load_memory(buf, size, path, out, err);
    free(buf);
    return st;
}

/* ---- Writing --------------------------------------------------------------------------- */

static int write_all(FILE *f, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, f) == n; }

hs_status hs_safetensors_save(const char *path, const hs_state_dict *sd, const hs_kv *metadata,
                              size_t metadata_count, hs_error *err) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return hs_fail(err, HS_ERR_NOMEM, "%s: out of memory", path);
    hs_status st = HS_OK;
    if (metadata_count > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (size_t i = 0; meta && i < metadata_count; i++)
            if (!cJSON_AddStringToObject(meta, metadata[i].key, metadata[i].value)) meta = NULL;
        if (!meta) st = hs_fail(err, HS_ERR_NOMEM, "%s: out of memory", path);
    }
    uint64_t offset = 0;
    for (size_t i = 0; st == HS_OK && i < sd->count; i++) {
        const hs_sd_entry *e = &sd->entries[i];
        if (strcmp(e->name, "__metadata__") == 0) {
            st = hs_fail(err, HS_ERR_ARGUMENT, "%s: a tensor cannot be named __metadata__", path);
            break;
        }
        cJSON *t = cJSON_AddObjectToObject(root, e->name);
        cJSON *shape = t ? cJSON_AddArrayToObject(t, "shape") : NULL;
        cJSON *offs = t ? cJSON_AddArrayToObject(t, "data_offsets") : NULL;
        int ok = t && shape && offs && cJSON_AddStringToObject(t, "dtype", "F32");
        for (int d = 0; ok && d < e->ndim; d++) {
            cJSON *n = cJSON_CreateNumber((double)e->shape[d]);
            ok = n && cJSON_AddItemToArray(shape, n);
        }
        uint64_t nbytes = (uint64_t)e->numel * 4u;
        cJSON *b = ok ? cJSON_CreateNumber((double)offset) : NULL;
        ok = b && cJSON_AddItemToArray(offs, b);
        cJSON *en = ok ? cJSON_CreateNumber((double)(offset + nbytes)) : NULL;
        ok = en && cJSON_AddItemToArray(offs, en);
        if (!ok) st = hs_fail(err, HS_ERR_NOMEM, "%s: out of memory", path);
        offset += nbytes;
    }
    char *json = st == HS_OK ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (st != HS_OK) return st;
    if (!json) return hs_fail(err, HS_ERR_NOMEM, "%s: out of memory", path);
    size_t jlen = strlen(json);
    size_t pad = (8 - jlen % 8) % 8;
    uint64_t hlen = jlen + pad;
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)(hlen >> (8 * i));

    hs_atomic_file out;
    if ((st = hs_atomic_begin(&out, path, err))) {
        free(json);
        return st;
    }
    FILE *f = out.file;
    static const char spaces[8] = "        ";
    int ok = write_all(f, lenbuf, 8) && write_all(f, json, jlen) && write_all(f, spaces, pad);
    free(json);
    for (size_t i = 0; ok && i < sd->count; i++) {
        const hs_sd_entry *e = &sd->entries[i];
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        ok = write_all(f, e->data, (size_t)e->numel * 4u);
#else
        for (int64_t k = 0; ok && k < e->numel; k++) {
            uint32_t v;
            memcpy(&v, &e->data[k], 4);
            unsigned char b[4] = {v, v >> 8, v >> 16, v >> 24};
            ok = write_all(f, b, 4);
        }
#endif
    }
    if (!ok) {
        int saved_errno = errno;
        hs_atomic_abort(&out);
        return hs_fail(err, HS_ERR_IO, "%s: write failed: %s", path,
                       saved_errno ? strerror(saved_errno) : "short write");
    }
    st = hs_atomic_commit(&out, err);
    return st;
}
