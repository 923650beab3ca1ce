/* The folder walker (see folder_walk.h): sorted entries, a visited set of (device, inode). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "error.h"
#include "folder_walk.h"

/* ---- The visited set: open addressing on (dev, ino) --------------------------------------- */

typedef struct file_id {
    dev_t dev;
    ino_t ino;
} file_id;

typedef struct id_set {
    file_id *slots;
    unsigned char *used;
    size_t cap, count; /* cap is a power of two */
} id_set;

static size_t id_hash(file_id id) {
    uint64_t h = (uint64_t)id.ino * 0x9E3779B97F4A7C15ull;
    h ^= (uint64_t)id.dev * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h ^ (h >> 29));
}

static int id_set_grow(id_set *s) {
    size_t cap = s->cap ? s->cap * 2 : 256;
    file_id *slots = malloc(cap * sizeof *slots);
    unsigned char *used = calloc(cap, 1);
    if (!slots || !used) {
        free(slots);
        free(used);
        return 0;
    }
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->used[i]) continue;
        size_t j = id_hash(s->slots[i]) & (cap - 1);
        while (used[j]) j = (j + 1) & (cap - 1);
        used[j] = 1;
        slots[j] = s->slots[i];
    }
    free(s->slots);
    free(s->used);
    s->slots = slots;
    s->used = used;
    s->cap = cap;
    return 1;
}

/* 1 when id was new (and is now in the set), 0 when seen before, -1 when out of memory. */
static int id_set_add(id_set *s, file_id id) {
    if ((s->count + 1) * 2 > s->cap && !id_set_grow(s)) return -1;
    size_t j = id_hash(id) & (s->cap - 1);
    while (s->used[j]) {
        if (s->slots[j].dev == id.dev && s->slots[j].ino == id.ino) return 0;
        j = (j + 1) & (s->cap - 1);
    }
    s->used[j] = 1;
    s->slots[j] = id;
    s->count++;
    return 1;
}

/* ---- The walk ----------------------------------------------------------------------------- */

typedef struct walker {
    hs_walk_visit_fn visit;
    void *ctx;
    id_set seen;
    long repeats;
} walker;

static int left_out(const char *name) {
    return name[0] == '.' || strcmp(name, "__MACOSX") == 0; /* also "." and ".." */
}

static char *join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a, la);
    size_t k = la;
    if (la && a[la - 1] != '/') s[k++] = '/';
    memcpy(s + k, b, lb + 1);
    return s;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n) {
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* The visible names of a folder, sorted. */
static hs_status list_names(const char *disk, char ***out, size_t *count, hs_error *err) {
    DIR *d = opendir(disk);
    if (!d) return hs_fail(err, HS_ERR_IO, "cannot read folder %s: %s", disk, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    hs_status st = HS_OK;
    while ((de = readdir(d)) != NULL) {
        if (left_out(de->d_name)) continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            char **g = realloc(names, ncap * sizeof *g);
            if (!g) {
                st = hs_fail(err, HS_ERR_NOMEM, "out of memory listing %s", disk);
                break;
            }
            names = g;
            cap = ncap;
        }
        if (!(names[n] = strdup(de->d_name))) {
            st = hs_fail(err, HS_ERR_NOMEM, "out of memory listing %s", disk);
            break;
        }
        n++;
    }
    closedir(d);
    if (st) {
        free_names(names, n);
        return st;
    }
    if (n > 1) qsort(names, n, sizeof *names, compare_names);
    *out = names;
    *count = n;
    return HS_OK;
}

static hs_status walk(walker *w, const char *disk, const char *rel, int depth, hs_error *err) {
    if (depth >= HS_WALK_MAX_DEPTH)
        return hs_fail(err, HS_ERR_FORMAT, "folder %s is nested more than %d levels deep",
                       disk, HS_WALK_MAX_DEPTH);
    char **names = NULL;
    size_t n = 0;
    hs_status st = list_names(disk, &names, &n, err);
    for (size_t i = 0; !st && i < n; i++) {
        char *full = join(disk, names[i]);
        char *relp = rel[0] ? join(rel, names[i]) : strdup(names[i]);
        struct stat sb;
        if (!full || !relp) {
            st = hs_fail(err, HS_ERR_NOMEM, "out of memory listing %s", disk);
        } else if (stat(full, &sb) != 0 || (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode))) {
            /* a broken link, a device, a FIFO: not data */
        } else {
            int fresh = id_set_add(&w->seen, (file_id){sb.st_dev, sb.st_ino});
            if (fresh < 0) {
                st = hs_fail(err, HS_ERR_NOMEM, "out of memory listing %s", disk);
            } else if (!fresh) {
                w->repeats++;
            } else {
                hs_walk_item item = {relp, full, S_ISDIR(sb.st_mode), (int64_t)sb.st_size,
                                     (int64_t)sb.st_mtime};
                st = w->visit(w->ctx, &item, err);
                if (!st && item.is_dir) st = walk(w, full, relp, depth + 1, err);
            }
        }
        free(full);
        free(relp);
    }
    free_names(names, n);
    return st;
}

hs_status hs_walk_folder(const char *root, hs_walk_visit_fn visit, void *ctx,
                         hs_walk_stats *stats, hs_error *err) {
    struct stat sb;
    if (stat(root, &sb) != 0)
        return hs_fail(err, HS_ERR_IO, "cannot read folder %s: %s", root, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return hs_fail(err, HS_ERR_IO, "%s is not a folder", root);
    walker w = {visit, ctx, {0}, 0};
    hs_status st = HS_OK;
    if (id_set_add(&w.seen, (file_id){sb.st_dev, sb.st_ino}) < 0)
        st = hs_fail(err, HS_ERR_NOMEM, "out of memory listing %s", root);
    else
        st = walk(&w, root, "", 0, err);
    free(w.seen.slots);
    free(w.seen.used);
    if (stats) stats->repeats = w.repeats;
    return st;
}

/* ---- Images ------------------------------------------------------------------------------- */

typedef struct image_list {
    char ***paths;
    int *count;
    size_t cap;
} image_list;

static int is_image_name(const char *name) {
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strrchr(base, '.');
    return dot && dot != base &&
           (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
            strcasecmp(dot, ".png") == 0);
}

static hs_status add_image(void *ctx, const hs_walk_item *item, hs_error *err) {
    image_list *l = ctx;
    if (item->is_dir || !is_image_name(item->rel)) return HS_OK;
    if (*l->count == INT_MAX) return hs_fail(err, HS_ERR_NOMEM, "too many images");
    if ((size_t)*l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        if (cap > INT_MAX) cap = INT_MAX;
        char **g = realloc(*l->paths, cap * sizeof *g);
        if (!g) return hs_fail(err, HS_ERR_NOMEM, "out of memory listing images");
        *l->paths = g;
        l->cap = cap;
    }
    char *copy = strdup(item->disk);
    if (!copy) return hs_fail(err, HS_ERR_NOMEM, "out of memory listing images");
    (*l->paths)[(*l->count)++] = copy;
    return HS_OK;
}

hs_status hs_walk_images(const char *root, char ***paths, int *count, hs_walk_stats *stats,
                         hs_error *err) {
    image_list l = {paths, count, (size_t)*count};
    return hs_walk_folder(root, add_image, &l, stats, err);
}
