/* PyTorch .pth loading: the two container layouts, then tensors out of the unpickled dict.
 * The restricted unpickler (pickle.c) does the security-critical part; this file finds each
 * storage's bytes, checks every tensor fits inside its storage, and converts to float32. */
#include "pth.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "error.h"
#include "pickle.h"

/* Bytes of one storage, inside the input buffer (both layouts store them uncompressed). */
typedef struct byte_range {
    const uint8_t *ptr;
    size_t size;
    int present;
} byte_range;

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* The unpickler may use this much (values, stack, memo, storage table), from the size of the
 * pickle alone: room for any real state dict's pickle, while a hostile one cannot make us
 * allocate without bound. */
static size_t pickle_budget(size_t pickle_size) {
    size_t extra;
    if (!hs_mul_size(pickle_size, 32, &extra) || extra > ((size_t)1 << 30)) extra = (size_t)1 << 30;
    return ((size_t)64 << 20) + extra;
}

/* ---- Tensors ---------------------------------------------------------------------------- */

typedef struct tensor_ctx {
    const char *name;
    const hs_unpickler *u;
    const byte_range *ranges;
    int64_t out_budget; /* float32 elements we may still allocate */
} tensor_ctx;

/* Number of elements, or -1 when the product overflows. */
static int64_t shape_numel(const pk_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->size[i] != 0 && n > INT64_MAX / t->size[i]) return -1;
        n *= t->size[i];
    }
    return n;
}

/* Highest element index the tensor touches (offset + sum (size-1)*stride), or -1 on overflow.
 * Only meaningful when numel > 0. */
static int64_t last_index(const pk_tensor *t, int64_t base) {
    int64_t last = base;
    if (last > INT64_MAX - t->offset) return -1;
    last += t->offset;
    for (int i = 0; i < t->ndim; i++) {
        int64_t span = t->size[i] - 1;
        if (span > 0 && t->stride[i] > (INT64_MAX - last) / span) return -1;
        last += span * t->stride[i];
    }
    return last;
}

static int is_contiguous(const pk_tensor *t) {
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->size[i] != 1 && t->stride[i] != expect) return 0;
        expect *= t->size[i];
    }
    return 1;
}

/* Copies a strided tensor element by element (an odometer over the dims). */
static void gather(const pk_tensor *t, const uint8_t *base, hs_dtype dtype, float *dst,
                   int64_t numel) {
    size_t elem = hs_dtype_size(dtype);
    int64_t index[HS_MAX_DIMS] = {0};
    int64_t at = t->offset;
    for (int64_t n = 0; n < numel; n++) {
        hs_convert_to_f32(dtype, base + (size_t)at * elem, 1, &dst[n]);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++index[d] < t->size[d]) {
                at += t->stride[d];
                break;
            }
            at -= (t->size[d] - 1) * t->stride[d];
            index[d] = 0;
        }
    }
}

static hs_status add_tensor(tensor_ctx *c, const char *key, const pk_tensor *t,
                            hs_state_dict *out, hs_error *err) {
    const pk_value *sv = t->storage;
    const pk_storage_record *rec = &c->u->storages[sv->u.storage.record];
    const byte_range *r = &c->ranges[sv->u.storage.record];
    if (!r->present)
        return hs_fail(err, HS_ERR_FORMAT, "%s: tensor '%s': the data of storage '%s' is missing",
                       c->name, key, rec->key);
    size_t elem = hs_dtype_size(rec->dtype);
    int64_t avail = (int64_t)(r->size / elem) - sv->u.storage.offset; /* elements in the view */
    if (sv->u.storage.numel < avail) avail = sv->u.storage.numel;
    int64_t numel = shape_numel(t);
    int64_t last = numel > 0 ? last_index(t, 0) : -1;
    if (numel < 0 || (numel > 0 && (last < 0 || last >= avail)))
        return hs_fail(err, HS_ERR_FORMAT,
                       "%s: tensor '%s' reaches past the end of its storage '%s'", c->name, key,
                       rec->key);
    if (numel > c->out_budget)
        return hs_fail(err, HS_ERR_NOMEM, "%s: tensor '%s': the tensors add up to more "
                       "elements than the file could hold", c->name, key);
    c->out_budget -= numel;
    float *data = malloc((size_t)numel * sizeof(float) + 1);
    if (!data) return hs_fail(err, HS_ERR_NOMEM, "%s: out of memory for tensor '%s'", c->name, key);
    const uint8_t *base = numel ? r->ptr + (size_t)sv->u.storage.offset * elem : r->ptr;
    if (numel == 0)
        ; /* nothing to copy; base may lie past the storage */
    else if (is_contiguous(t))
        hs_convert_to_f32(rec->dtype, base + (size_t)t->offset * elem, numel, data);
    else
        gather(t, base, rec->dtype, data, numel);
    hs_status st = hs_sd_add(out, key, t->ndim, t->size, rec->dtype, data, err);
    if (st) return hs_fail_context(err, st, "%s", c->name);
    return HS_OK;
}

/* The dict of tensors: the root itself, or a checkpoint's "state_dict" / "model" entry when the
 * root holds no tensors itself. */
static const pk_value *find_state_dict(const pk_value *root) {
    for (size_t i = 0; i < root->u.dict.count; i++)
        if (root->u.dict.vals[i]->kind == PK_TENSOR) return root;
    static const char *const wrappers[] = {"state_dict", "model"};
    for (size_t i = 0; i < 2; i++) {
        const pk_value *inner = pk_dict_get(root, wrappers[i]);
        if (inner && inner->kind == PK_DICT) return inner;
    }
    return root;
}

static hs_status extract(const char *name, const hs_unpickler *u, const pk_value *root,
                         const byte_range *ranges, size_t input_size, hs_state_dict *out,
                         hs_error *err) {
    if (root->kind != PK_DICT)
        return hs_fail(err, HS_ERR_FORMAT, "%s: the pickle does not hold a dict of tensors", name);
    const pk_value *dict = find_state_dict(root);
    if (dict->u.dict.count > HS_SD_MAX_TENSORS)
        return hs_fail(err, HS_ERR_NOMEM, "%s: %zu tensors (at most %d are supported)", name,
                       dict->u.dict.count, HS_SD_MAX_TENSORS);
    /* Every tensor's elements lie inside the input, and views of one storage rarely overlap,
     * so this is generous for real files and stops a hostile one from asking for terabytes. */
    tensor_ctx c = {name, u, ranges, (int64_t)(input_size < ((size_t)1 << 40) ? input_size : ((size_t)1 << 40)) * 2 + (1 << 24)};
    for (size_t i = 0; i < dict->u.dict.count; i++) {
        const pk_value *k = dict->u.dict.keys[i], *v = dict->u.dict.vals[i];
        if (k->kind != PK_STR || strlen(k->u.str.ptr) != k->u.str.len)
            return hs_fail(err, HS_ERR_FORMAT, "%s: entry %zu of the state dict has no string name",
                           name, i);
        if (v->kind != PK_TENSOR)
            return hs_fail(err, HS_ERR_FORMAT, "%s: entry '%.200s' of the state dict is not a tensor",
                           name, k->u.str.ptr);
        hs_status st = add_tensor(&c, k->u.str.ptr, v->u.tensor, out, err);
        if (st) return st;
    }
    return HS_OK;
}

/* ---- Zip layout ------------------------------------------------------------------------- */

typedef struct zip_entry {
    const char *name;
    size_t name_len;
    unsigned method, flags;
    uint32_t crc; /* the central directory's CRC-32 of the entry's bytes */
    uint64_t comp_size, size, local_offset;
} zip_entry;

typedef struct zip_archive {
    const uint8_t *data;
    size_t size;
    zip_entry *entries;
    size_t count;
} zip_archive;

/* Finds the end of central directory (and its zip64 form, which PyTorch always writes) and
 * returns the central directory's bounds. */
static int zip_find_directory(const uint8_t *d, size_t n, uint64_t *cd_off, uint64_t *cd_size,
                              uint64_t *count) {
    if (n < 22) return 0;
    size_t lowest = n - 22 > 65535 ? n - 22 - 65535 : 0;
    size_t eocd = n - 22;
    while (le(d + eocd, 4) != 0x06054b50) {
        if (eocd == lowest) return 0;
        eocd--;
    }
    *count = le(d + eocd + 10, 2);
    *cd_size = le(d + eocd + 12, 4);
    *cd_off = le(d + eocd + 16, 4);
    if (*count != 0xffff && *cd_size != 0xffffffff && *cd_off != 0xffffffff) return 1;
    if (eocd < 20 || le(d + eocd - 20, 4) != 0x07064b50) return 0;
    uint64_t z64 = le(d + eocd - 20 + 8, 8);
    if (n < 56 || z64 > n - 56 || le(d + z64, 4) != 0x06064b50) return 0;
    *count = le(d + z64 + 32, 8);
    *cd_size = le(d + z64 + 40, 8);
    *cd_off = le(d + z64 + 48, 8);
    return 1;
}

/* Zip64 extra field (id 1): the 64-bit values of whichever fields were saturated, in order. */
static int zip_read_extra(const uint8_t *x, size_t len, zip_entry *e) {
    while (len >= 4) {
        unsigned id = (unsigned)le(x, 2);
        size_t sz = (size_t)le(x + 2, 2);
        if (sz > len - 4) return 0;
        if (id == 1) {
            const uint8_t *f = x + 4;
            size_t left = sz;
            uint64_t *fields[3] = {&e->size, &e->comp_size, &e->local_offset};
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != 0xffffffff) continue;
                if (left < 8) return 0;
                *fields[i] = le(f, 8);
                f += 8;
                left -= 8;
            }
        }
        x += 4 + sz;
        len -= 4 + sz;
    }
    return 1;
}

static hs_status zip_open(zip_archive *z, const uint8_t *d, size_t n, const char *name,
                          hs_error *err) {
    uint64_t cd_off, cd_size, count;
    z->data = d;
    z->size = n;
    if (!zip_find_directory(d, n, &cd_off, &cd_size, &count) || cd_off > n ||
        cd_size > n - cd_off || count > cd_size / 46)
        return hs_fail(err, HS_ERR_FORMAT, "%s: the zip archive's directory is missing or damaged",
                       name);
    z->entries = calloc(count ? count : 1, sizeof *z->entries);
    if (!z->entries) return hs_fail(err, HS_ERR_NOMEM, "%s: out of memory", name);
    const uint8_t *p = d + cd_off, *end = d + cd_off + cd_size;
    for (z->count = 0; z->count < count; z->count++) {
        zip_entry *e = &z->entries[z->count];
        if (end - p < 46 || le(p, 4) != 0x02014b50)
            return hs_fail(err, HS_ERR_FORMAT, "%s: zip directory entry %zu is damaged", name,
                           z->count);
        size_t nlen = le(p + 28, 2), xlen = le(p + 30, 2), clen = le(p + 32, 2);
        if ((size_t)(end - p) - 46 < nlen + xlen + clen)
            return hs_fail(err, HS_ERR_FORMAT, "%s: zip directory entry %zu is truncated", name,
                           z->count);
        *e = (zip_entry){(const char *)p + 46, nlen, (unsigned)le(p + 10, 2), (unsigned)le(p + 8, 2),
                         (uint32_t)le(p + 16, 4), le(p + 20, 4), le(p + 24, 4), le(p + 42, 4)};
        if (!zip_read_extra(p + 46 + nlen, xlen, e))
            return hs_fail(err, HS_ERR_FORMAT, "%s: zip entry %zu has a damaged extra field", name,
                           z->count);
        p += 46 + nlen + xlen + clen;
    }
    return HS_OK;
}

static const zip_entry *zip_find(const zip_archive *z, const char *prefix, size_t prefix_len,
                                 const char *suffix) {
    size_t slen = strlen(suffix);
    for (size_t i = 0; i < z->count; i++) {
        const zip_entry *e = &z->entries[i];
        if (e->name_len == prefix_len + slen && memcmp(e->name, prefix, prefix_len) == 0 &&
            memcmp(e->name + prefix_len, suffix, slen) == 0)
            return e;
    }
    return NULL;
}

/* The bytes of a stored (uncompressed) entry, found through its local header. */
static hs_status zip_entry_bytes(const zip_archive *z, const zip_entry *e, const char *name,
                                 byte_range *out, hs_error *err) {
    const char *what = NULL;
    if (e->method != 0) what = "is compressed (PyTorch stores entries uncompressed)";
    else if (e->flags & 1) what = "is encrypted";
    else if (e->comp_size != e->size) what = "has inconsistent sizes";
    else if (e->local_offset > z->size || z->size - e->local_offset < 30 ||
             le(z->data + e->local_offset, 4) != 0x04034b50)
        what = "has a damaged local header";
    if (!what) {
        uint64_t start = e->local_offset + 30 + le(z->data + e->local_offset + 26, 2) +
                         le(z->data + e->local_offset + 28, 2);
        if (start > z->size || e->size > z->size - start) {
            what = "runs past the end of the file";
        } else if (crc32_z(0, z->data + start, (z_size_t)e->size) != e->crc) {
            /* Without this a flipped byte of tensor data loads as a different weight. */
            what = "is damaged (its CRC-32 does not match the zip directory's)";
        } else {
            *out = (byte_range){z->data + start, (size_t)e->size, 1};
            return HS_OK;
        }
    }
    return hs_fail(err, HS_ERR_FORMAT, "%s: zip entry '%.*s' %s", name,
                   (int)(e->name_len > 200 ? 200 : e->name_len), e->name, what);
}

static const zip_entry *zip_find_pickle(const zip_archive *z, size_t *prefix_len) {
    for (size_t i = 0; i < z->count; i++) {
        const zip_entry *e = &z->entries[i];
        if (e->name_len >= 8 && memcmp(e->name + e->name_len - 8, "data.pkl", 8) == 0 &&
            (e->name_len == 8 || e->name[e->name_len - 9] == '/')) {
            *prefix_len = e->name_len - 8;
            return e;
        }
    }
    return NULL;
}

/* Points each storage record at its entry <prefix>data/<key>: one pass over the directory,
 * looking each name up in the unpickler's key table. */
static hs_status zip_storages(const zip_archive *z, const char *prefix, size_t prefix_len,
                              const hs_unpickler *u, byte_range *ranges, const char *name,
                              hs_error *err) {
    for (size_t i = 0; i < z->count; i++) {
        const zip_entry *e = &z->entries[i];
        size_t head = prefix_len + 5; /* "<prefix>data/" */
        if (e->name_len <= head || memcmp(e->name, prefix, prefix_len) != 0 ||
            memcmp(e->name + prefix_len, "data/", 5) != 0)
            continue;
        size_t r = hs_unpickler_find_storage(u, e->name + head, e->name_len - head);
        if (r == SIZE_MAX || ranges[r].present) continue; /* unused, or a duplicate entry */
        hs_status st = zip_entry_bytes(z, e, name, &ranges[r], err);
        if (st) return st;
    }
    for (size_t r = 0; r < u->storage_count; r++)
        if (!ranges[r].present)
            return hs_fail(err, HS_ERR_FORMAT, "%s: the archive has no entry for storage '%.200s'",
                           name, u->storages[r].key);
    return HS_OK;
}

/* PyTorch 2.x records the byte order; we read little-endian data only. */
static hs_status zip_check_byteorder(const zip_archive *z, const char *prefix, size_t prefix_len,
                                     const char *name, hs_error *err) {
    const zip_entry *e = zip_find(z, prefix, prefix_len, "byteorder");
    byte_range r;
    if (!e) return HS_OK;
    hs_status st = zip_entry_bytes(z, e, name, &r, err);
    if (st) return st;
    if (r.size >= 3 && memcmp(r.ptr, "big", 3) == 0)
        return hs_fail(err, HS_ERR_FORMAT, "%s: big-endian files are not supported", name);
    return HS_OK;
}

static hs_status load_zip(const uint8_t *data, size_t size, const char *name, hs_state_dict *out,
                          hs_error *err) {
    zip_archive z = {0};
    hs_unpickler u;
    hs_unpickler_init(&u, name, 0);
    byte_range *ranges = NULL;
    size_t prefix_len = 0;
    const zip_entry *pkl;
    byte_range pr;
    pk_value *root = NULL;
    hs_status st = zip_open(&z, data, size, name, err);
    if (st) goto done;
    if (!(pkl = zip_find_pickle(&z, &prefix_len))) {
        st = hs_fail(err, HS_ERR_FORMAT, "%s: the zip archive has no data.pkl", name);
        goto done;
    }
    if ((st = zip_entry_bytes(&z, pkl, name, &pr, err)) ||
        (st = zip_check_byteorder(&z, pkl->name, prefix_len, name, err)))
        goto done;
    hs_unpickler_init(&u, name, pickle_budget(pr.size));
    size_t pos = 0;
    if ((st = hs_unpickle(&u, pr.ptr, pr.size, &pos, 1, &root, err))) goto done;
    ranges = calloc(u.storage_count + 1, sizeof *ranges);
    if (!ranges) {
        st = hs_fail(err, HS_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    if ((st = zip_storages(&z, pkl->name, prefix_len, &u, ranges, name, err))) goto done;
    st = extract(name, &u, root, ranges, size, out, err);
done:
    free(ranges);
    free(z.entries);
    hs_unpickler_free(&u);
    return st;
}

/* ---- Legacy layout ---------------------------------------------------------------------- */

/* 0x1950a86a20f9469cfc6c, as the little-endian bytes LONG1 carries. */
static const uint8_t legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

/* The three small pickles before the data: magic number, protocol version 1001, sys_info. */
static hs_status legacy_header(hs_unpickler *u, const uint8_t *d, size_t n, size_t *pos,
                               const char *name, hs_error *err) {
    pk_value *v = NULL;
    hs_status st = hs_unpickle(u, d, n, pos, 0, &v, err);
    if (st) return st;
    if (v->kind != PK_BIGINT || v->u.str.len != 10 || memcmp(v->u.str.ptr, legacy_magic, 10) != 0)
        return hs_fail(err, HS_ERR_FORMAT, "%s: not a PyTorch file (wrong magic number)", name);
    if ((st = hs_unpickle(u, d, n, pos, 0, &v, err))) return st;
    if (v->kind != PK_INT || v->u.i != 1001)
        return hs_fail(err, HS_ERR_FORMAT, "%s: unsupported legacy protocol version", name);
    if ((st = hs_unpickle(u, d, n, pos, 0, &v, err))) return st;
    const pk_value *little = pk_dict_get(v, "little_endian");
    if (v->kind != PK_DICT || (little && (little->kind != PK_BOOL || !little->u.i)))
        return hs_fail(err, HS_ERR_FORMAT, "%s: big-endian or unknown system info", name);
    return HS_OK;
}

static hs_status legacy_storages(const hs_unpickler *u, const pk_value *keys, const uint8_t *d,
                                 size_t n, size_t pos, byte_range *ranges, const char *name,
                                 hs_error *err) {
    if (keys->kind != PK_LIST)
        return hs_fail(err, HS_ERR_FORMAT, "%s: the storage key list is missing", name);
    for (size_t i = 0; i < keys->u.seq.count; i++) {
        const pk_value *k = keys->u.seq.items[i];
        size_t r = k->kind == PK_STR ? hs_unpickler_find_storage(u, k->u.str.ptr, k->u.str.len)
                                     : SIZE_MAX;
        if (r == SIZE_MAX || ranges[r].present)
            return hs_fail(err, HS_ERR_FORMAT, "%s: storage key %zu is unknown or repeated", name, i);
        size_t elem = hs_dtype_size(u->storages[r].dtype), bytes;
        if (n - pos < 8)
            return hs_fail(err, HS_ERR_FORMAT, "%s: truncated before storage '%.200s'", name,
                           u->storages[r].key);
        uint64_t numel = le(d + pos, 8);
        pos += 8;
        if (numel > n || !hs_mul_size((size_t)numel, elem, &bytes) || bytes > n - pos)
            return hs_fail(err, HS_ERR_FORMAT, "%s: storage '%.200s' is truncated", name,
                           u->storages[r].key);
        ranges[r] = (byte_range){d + pos, bytes, 1};
        pos += bytes;
    }
    return HS_OK;
}

/* The stream's five pickles (magic number, protocol, sys_info, the dict, the storage keys)
 * come before the storages' bytes. The unpickler sees only them, and its budget follows
 * their size: a small pickle at the head of a huge file gets no more memory than alone. */
#define LEGACY_PICKLES 5

static hs_status load_legacy(const uint8_t *data, size_t size, const char *name,
                             hs_state_dict *out, hs_error *err) {
    size_t pickles_end = 0;
    for (int i = 0; i < LEGACY_PICKLES; i++)
        pickles_end = hs_pickle_extent(data, size, pickles_end);
    hs_unpickler u;
    hs_unpickler_init(&u, name, pickle_budget(pickles_end));
    byte_range *ranges = NULL;
    pk_value *root = NULL, *keys = NULL;
    size_t pos = 0;
    hs_status st;
    if ((st = legacy_header(&u, data, pickles_end, &pos, name, err)) ||
        (st = hs_unpickle(&u, data, pickles_end, &pos, 1, &root, err)) ||
        (st = hs_unpickle(&u, data, pickles_end, &pos, 0, &keys, err)))
        goto done;
    ranges = calloc(u.storage_count + 1, sizeof *ranges);
    if (!ranges) {
        st = hs_fail(err, HS_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    if ((st = legacy_storages(&u, keys, data, size, pos, ranges, name, err))) goto done;
    st = extract(name, &u, root, ranges, size, out, err);
done:
    free(ranges);
    hs_unpickler_free(&u);
    return st;
}

/* ---- Entry points ----------------------------------------------------------------------- */

hs_status hs_pth_load_memory(const uint8_t *data, size_t size, const char *name,
                             hs_state_dict *out, hs_error *err) {
    if (!name) name = "<memory>";
    if (size >= 4 && memcmp(data, "PK\x03\x04", 4) == 0) return load_zip(data, size, name, out, err);
    if (size >= 2 && data[0] == 0x80) return load_legacy(data, size, name, out, err);
    return hs_fail(err, HS_ERR_FORMAT,
                   "%s: not a PyTorch file (neither a zip archive nor a legacy pickle stream)", name);
}

hs_status hs_pth_load(const char *path, hs_state_dict *out, hs_error *err) {
    int fd = open(path, O_RDONLY);
    struct stat sb;
    if (fd < 0) return hs_fail(err, HS_ERR_IO, "%s: cannot open the file", path);
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return hs_fail(err, HS_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size == 0) {
        close(fd);
        return hs_fail(err, HS_ERR_FORMAT, "%s: the file is empty", path);
    }
    /* Mapped read-only: a 500 MB checkpoint is not copied, and pages we never touch (for
     * instance storages no tensor uses) are never read. */
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return hs_fail(err, HS_ERR_IO, "%s: cannot read the file", path);
    hs_status st = hs_pth_load_memory(map, size, path, out, err);
    munmap(map, size);
    return st;
}
