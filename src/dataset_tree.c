/* The file tree a data set is read into: a folder walked on disk or an archive read once with
 * libarchive, whose image members are held in memory. Layouts are chosen on the tree. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "dataset_internal.h"
#include "error.h"
#include "folder_walk.h"

int64_t hs_dataset_member_limit = 256LL << 20;
int64_t hs_dataset_total_limit = 8LL << 30;

/* ---- Storage ------------------------------------------------------------------------------ */

#define STORAGE_BLOCK (4u << 20)

hs_ds_storage *hs_ds_storage_new(void) {
    hs_ds_storage *s = calloc(1, sizeof *s);
    if (s) s->refs = 1;
    return s;
}

static int storage_keep(hs_ds_storage *s, uint8_t *block) {
    if (s->block_count == s->block_cap) {
        size_t cap = s->block_cap ? s->block_cap * 2 : 16;
        uint8_t **b = realloc(s->blocks, cap * sizeof *b);
        if (!b) return 0;
        s->blocks = b;
        s->block_cap = cap;
    }
    s->blocks[s->block_count++] = block;
    return 1;
}

uint8_t *hs_ds_storage_alloc(hs_ds_storage *s, size_t n) {
    if (n == 0) n = 1;
    if (n > STORAGE_BLOCK / 4) { /* a large payload gets a block of its own */
        uint8_t *b = malloc(n);
        if (!b || !storage_keep(s, b)) {
            free(b);
            return NULL;
        }
        s->total += (int64_t)n;
        return b;
    }
    n = (n + 15) & ~(size_t)15;
    if (!s->cur || s->cur_size - s->cur_used < n) {
        uint8_t *b = malloc(STORAGE_BLOCK);
        if (!b || !storage_keep(s, b)) {
            free(b);
            return NULL;
        }
        s->cur = b;
        s->cur_used = 0;
        s->cur_size = STORAGE_BLOCK;
    }
    uint8_t *p = s->cur + s->cur_used;
    s->cur_used += n;
    s->total += (int64_t)n;
    return p;
}

void hs_ds_storage_release(hs_ds_storage *s) {
    if (!s || --s->refs > 0) return;
    for (size_t i = 0; i < s->block_count; i++) free(s->blocks[i]);
    free(s->blocks);
    free(s);
}

/* ---- Names -------------------------------------------------------------------------------- */

int hs_ds_is_image_name(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) return 0;
    return strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
           strcasecmp(dot, ".png") == 0;
}

int hs_ds_is_cifar_name(const char *base) {
    if (strcmp(base, "test_batch.bin") == 0 || strcmp(base, "batches.meta.txt") == 0) return 1;
    return strncmp(base, "data_batch_", 11) == 0 && base[11] >= '1' && base[11] <= '5' &&
           strcmp(base + 12, ".bin") == 0;
}

/* Hidden entries (".git", ".DS_Store", "._x") and macOS zip debris are never data. */
static int ignored_component(const char *c, size_t n) {
    return (n > 0 && c[0] == '.') || (n == 8 && memcmp(c, "__MACOSX", 8) == 0);
}

/* ---- Tree --------------------------------------------------------------------------------- */

static hs_ds_entry *tree_add(hs_ds_tree *t) {
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        hs_ds_entry *e = realloc(t->entries, cap * sizeof *e);
        if (!e) return NULL;
        t->entries = e;
        t->cap = cap;
    }
    hs_ds_entry *e = &t->entries[t->count++];
    memset(e, 0, sizeof *e);
    return e;
}

void hs_ds_tree_free(hs_ds_tree *t) {
    for (size_t i = 0; i < t->count; i++) {
        free(t->entries[i].path);
        free(t->entries[i].name);
    }
    free(t->entries);
    t->entries = NULL;
    t->count = t->cap = 0;
}

/* One entry of the tree per folder and regular file the walker takes (folder_walk.h: links
 * followed, each folder and file once, loops end). */
static hs_status tree_visit(void *ctx, const hs_walk_item *item, hs_error *err) {
    hs_ds_tree *t = ctx;
    char *relp = strdup(item->rel);
    char *disk = item->is_dir ? NULL : strdup(item->disk);
    hs_ds_entry *e = relp && (item->is_dir || disk) ? tree_add(t) : NULL;
    if (!e) {
        free(relp);
        free(disk);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory listing %s", item->disk);
    }
    e->path = relp;
    e->is_dir = item->is_dir;
    if (!item->is_dir) {
        e->name = disk;
        e->kind = HS_SAMPLE_FILE;
        e->size = item->size;
        e->mtime = item->mtime;
    }
    return HS_OK;
}

hs_status hs_ds_tree_read_dir(hs_ds_tree *t, const char *dir, hs_error *err) {
    return hs_walk_folder(dir, tree_visit, t, NULL, err);
}

/* "./a//b/" -> "a/b"; NULL for a hidden, "..", or empty path (never data). */
static char *normalize_member(const char *p) {
    size_t n = strlen(p);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t k = 0;
    const char *s = p;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 0 || (len == 1 && s[0] == '.')) {
            /* empty or "." component */
        } else if ((len == 2 && s[0] == '.' && s[1] == '.') || ignored_component(s, len)) {
            free(out);
            return NULL;
        } else {
            if (k) out[k++] = '/';
            memcpy(out + k, s, len);
            k += len;
        }
        s += len;
        if (*s == '/') s++;
    }
    out[k] = '\0';
    if (k == 0) {
        free(out);
        return NULL;
    }
    return out;
}

static hs_status read_member(hs_ds_tree *t, struct archive *a, struct archive_entry *ae,
                             const char *display, const char *member, hs_ds_entry *e,
                             hs_error *err) {
    int64_t limit = hs_dataset_member_limit;
    int known = archive_entry_size_is_set(ae);
    int64_t size = known ? archive_entry_size(ae) : 0;
    if (known && (size < 0 || size > limit))
        return hs_fail(err, HS_ERR_NOMEM,
                       "%s: member %s is %lld bytes, more than the %lld a member may have",
                       display, member, (long long)size, (long long)limit);
    if (known && t->storage->total + size > hs_dataset_total_limit)
        return hs_fail(err, HS_ERR_NOMEM,
                       "%s: the images of the archive exceed %lld bytes in all; extract it or "
                       "use a smaller subset", display, (long long)hs_dataset_total_limit);
    uint8_t *buf = NULL;
    size_t have = 0, cap = known ? (size_t)size : 65536;
    uint8_t *tmp = malloc(cap ? cap : 1);
    if (!tmp) return hs_fail(err, HS_ERR_NOMEM, "out of memory reading %s:%s", display, member);
    for (;;) {
        if (have == cap) {
            if (known) { /* a member may not hold more than its header says */
                char probe;
                la_ssize_t r = archive_read_data(a, &probe, 1);
                if (r > 0) {
                    free(tmp);
                    return hs_fail(err, HS_ERR_FORMAT, "%s: member %s is longer than its header says",
                                   display, member);
                }
                if (r < 0) goto read_error;
                break;
            }
            if ((int64_t)cap >= limit) {
                free(tmp);
                return hs_fail(err, HS_ERR_NOMEM,
                               "%s: member %s is more than the %lld bytes a member may have",
                               display, member, (long long)limit);
            }
            size_t ncap = cap * 2;
            if ((int64_t)ncap > limit) ncap = (size_t)limit;
            uint8_t *g = realloc(tmp, ncap);
            if (!g) {
                free(tmp);
                return hs_fail(err, HS_ERR_NOMEM, "out of memory reading %s:%s", display, member);
            }
            tmp = g;
            cap = ncap;
        }
        la_ssize_t r = archive_read_data(a, tmp + have, cap - have);
        if (r < 0) goto read_error;
        if (r == 0) break;
        have += (size_t)r;
    }
    if (known && have != (size_t)size) {
        free(tmp);
        return hs_fail(err, HS_ERR_FORMAT, "%s: member %s is truncated (%zu of %lld bytes)",
                       display, member, have, (long long)size);
    }
    if (t->storage->total + (int64_t)have > hs_dataset_total_limit) {
        free(tmp);
        return hs_fail(err, HS_ERR_NOMEM,
                       "%s: the images of the archive exceed %lld bytes in all; extract it or "
                       "use a smaller subset", display, (long long)hs_dataset_total_limit);
    }
    buf = hs_ds_storage_alloc(t->storage, have);
    if (!buf) {
        free(tmp);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory reading %s:%s", display, member);
    }
    if (have) memcpy(buf, tmp, have);
    free(tmp);
    e->bytes = buf;
    e->byte_count = have;
    e->size = (int64_t)have;
    return HS_OK;
read_error:
    free(tmp);
    return hs_fail(err, HS_ERR_FORMAT, "%s: cannot read member %s: %s", display, member,
                   archive_error_string(a) ? archive_error_string(a) : "corrupt data");
}

#define NOT_ARCHIVE                                                                          \
    "%s is neither a folder nor a .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz, .tar.zst or .zip "  \
    "archive (%s); expected a folder "                                                        \
    "DATA/<class>/<image>, DATA/train and DATA/val, an archive of either, or "              \
    "cifar-10-batches-bin"

#define DAMAGED "%s: cannot read the archive (damaged, truncated, or no tar inside): %s"

/* gzip, bzip2, xz, zstd: a failure to read such a file is damage, not a foreign format. */
static int compressed_magic(const uint8_t *b, size_t n) {
    return (n >= 2 && b[0] == 0x1f && b[1] == 0x8b) || (n >= 3 && !memcmp(b, "BZh", 3)) ||
           (n >= 6 && !memcmp(b, "\xfd" "7zXZ\0", 6)) || (n >= 4 && !memcmp(b, "\x28\xb5\x2f\xfd", 4));
}

static hs_status read_archive(hs_ds_tree *t, struct archive *a, const char *display,
                              int compressed, hs_error *err) {
    struct archive_entry *ae;
    int first = 1, retries = 0;
    for (;;) {
        int r = archive_read_next_header(a, &ae);
        if (r == ARCHIVE_EOF) break;
        if (r == ARCHIVE_RETRY && ++retries < 100) continue;
        if (r < ARCHIVE_WARN) {
            const char *why = archive_error_string(a) ? archive_error_string(a) : "unreadable";
            if (first && !compressed)
                return hs_fail(err, HS_ERR_FORMAT, NOT_ARCHIVE, display, why);
            return hs_fail(err, HS_ERR_FORMAT, DAMAGED, display, why);
        }
        first = 0;
        retries = 0;
        const char *raw = archive_entry_pathname(ae);
        if (!raw) raw = archive_entry_pathname_utf8(ae);
        if (!raw) continue;
        int type = (int)archive_entry_filetype(ae);
        if (type != AE_IFDIR && type != AE_IFREG) continue; /* links, devices: not data */
        char *path = normalize_member(raw);
        if (!path) continue;
        hs_ds_entry *e = tree_add(t);
        if (!e) {
            free(path);
            return hs_fail(err, HS_ERR_NOMEM, "out of memory reading %s", display);
        }
        e->path = path;
        e->mtime = (int64_t)archive_entry_mtime(ae);
        if (type == AE_IFDIR) {
            e->is_dir = 1;
            continue;
        }
        e->kind = HS_SAMPLE_ENCODED;
        e->size = archive_entry_size_is_set(ae) ? (int64_t)archive_entry_size(ae) : 0;
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (!hs_ds_is_image_name(path) && !hs_ds_is_cifar_name(base)) continue;
        size_t ld = strlen(display), lp = strlen(path);
        e->name = malloc(ld + lp + 2);
        if (!e->name) return hs_fail(err, HS_ERR_NOMEM, "out of memory reading %s", display);
        memcpy(e->name, display, ld);
        e->name[ld] = ':';
        memcpy(e->name + ld + 1, path, lp + 1);
        hs_status st = read_member(t, a, ae, display, path, e, err);
        if (st) return st;
    }
    return HS_OK;
}

/* Only decompressors that run inside this process. archive_read_support_filter_all would
 * also register lz4, lzop, lrzip, grzip (and gzip, bzip2, xz, zstd where libarchive was built
 * without their library) as external programs found on PATH: a file named by the user would
 * then choose a program for us to run. Each filter here is registered only when libarchive
 * reports its library linked in, so none can fall back to a program; an archive compressed
 * otherwise (.tar.lz4, .tar.Z, lrzip, ...) is refused as not an archive. */
static void support_builtin_filters(struct archive *a) {
    if (archive_zlib_version()) archive_read_support_filter_gzip(a);
    if (archive_bzlib_version()) archive_read_support_filter_bzip2(a);
    if (archive_liblzma_version()) archive_read_support_filter_xz(a);
    if (archive_libzstd_version()) archive_read_support_filter_zstd(a);
}

static struct archive *new_reader(void) {
    struct archive *a = archive_read_new();
    if (!a) return NULL;
    support_builtin_filters(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    archive_read_support_format_zip(a);
    return a;
}

hs_status hs_ds_tree_read_archive_file(hs_ds_tree *t, const char *path, hs_error *err) {
    uint8_t magic[6] = {0};
    size_t got = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return hs_fail(err, HS_ERR_IO, "cannot read %s: %s", path, strerror(errno));
    got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    int compressed = compressed_magic(magic, got);
    struct archive *a = new_reader();
    if (!a) return hs_fail(err, HS_ERR_NOMEM, "out of memory opening %s", path);
    hs_status st;
    if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
        int e = archive_errno(a);
        const char *why = archive_error_string(a) ? archive_error_string(a) : "unreadable";
        if (e == ENOENT || e == EACCES || e == EISDIR || e == EIO)
            st = hs_fail(err, HS_ERR_IO, "cannot read %s: %s", path, why);
        else if (compressed)
            st = hs_fail(err, HS_ERR_FORMAT, DAMAGED, path,
                         why);
        else
            st = hs_fail(err, HS_ERR_FORMAT, NOT_ARCHIVE, path, why);
    } else {
        st = read_archive(t, a, path, compressed, err);
    }
    archive_read_free(a);
    return st;
}

hs_status hs_ds_tree_read_archive_memory(hs_ds_tree *t, const void *data, size_t size,
                                         const char *name, hs_error *err) {
    struct archive *a = new_reader();
    if (!a) return hs_fail(err, HS_ERR_NOMEM, "out of memory opening %s", name);
    hs_status st;
    if (archive_read_open_memory(a, data, size) != ARCHIVE_OK)
        st = hs_fail(err, HS_ERR_FORMAT,
                     compressed_magic(data, size) ? DAMAGED
                                                  : NOT_ARCHIVE,
                     name, archive_error_string(a) ? archive_error_string(a) : "unreadable");
    else
        st = read_archive(t, a, name, compressed_magic(data, size), err);
    archive_read_free(a);
    return st;
}

void hs_ds_tree_strip_top(hs_ds_tree *t) {
    const char *top = NULL;
    size_t toplen = 0;
    int below = 0;
    for (size_t i = 0; i < t->count; i++) {
        const hs_ds_entry *e = &t->entries[i];
        const char *slash = strchr(e->path, '/');
        if (!slash && !e->is_dir) return; /* a file at the top */
        size_t len = slash ? (size_t)(slash - e->path) : strlen(e->path);
        if (!top) {
            top = e->path;
            toplen = len;
        } else if (len != toplen || memcmp(top, e->path, len) != 0) {
            return;
        }
        if (slash) {
            const char *rest = slash + 1;
            if (e->is_dir || strchr(rest, '/') || hs_ds_is_cifar_name(rest)) below = 1;
        }
    }
    if (!top || !below) return;
    size_t k = 0;
    for (size_t i = 0; i < t->count; i++) {
        hs_ds_entry *e = &t->entries[i];
        if (strlen(e->path) == toplen) { /* the top folder itself */
            free(e->path);
            free(e->name);
            continue;
        }
        memmove(e->path, e->path + toplen + 1, strlen(e->path + toplen + 1) + 1);
        t->entries[k++] = *e;
    }
    t->count = k;
}
