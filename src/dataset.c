/* Data sets: choose the layout of DATA (train/val sides, CIFAR-10 binary or class folders),
 * list its classes and images, split and subset them with a seeded, stratified shuffle. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataset.h"
#include "dataset_internal.h"
#include "error.h"
#include "rng.h"

#define LAYOUT_HINT                                                                          \
    "expected one folder per class (DATA/<class>/<image>), DATA/train and DATA/val (or "    \
    "test) of that form, a .tar/.tar.gz/.tgz of either, or the CIFAR-10 binary folder "     \
    "cifar-10-batches-bin"

/* ---- Small helpers ------------------------------------------------------------------------ */

hs_status hs_ds_check_class_name(const char *name, size_t length, const char *where,
                                 hs_error *err) {
    if (length <= HS_CLASS_NAME_MAX) return HS_OK;
    /* The first 40 bytes, cut at a character boundary, with control bytes, quotes and
     * backslashes escaped: the name is the attacker's, the message goes to a terminal. */
    size_t shown = 40;
    while (shown > 0 && ((unsigned char)name[shown] & 0xC0) == 0x80) shown--;
    char start[4 * 40 + 1];
    size_t used = 0;
    for (size_t i = 0; i < shown; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7f || ch == '\'' || ch == '\\')
            used += (size_t)snprintf(start + used, sizeof start - used, "\\x%02x", ch);
        else
            start[used++] = (char)ch;
    }
    start[used] = '\0';
    return hs_fail(err, HS_ERR_FORMAT,
                   "%s: the class name '%s...' is %zu bytes long; class names are at most %d "
                   "bytes", where, start, length, HS_CLASS_NAME_MAX);
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int add_warning(char ***list, int *count, hs_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int add_warning(char ***list, int *count, hs_error *err, const char *fmt, ...) {
    char buf[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **g = realloc(*list, (size_t)(*count + 1) * sizeof *g);
    char *s = strdup(buf);
    if (!g || !s) {
        free(s);
        if (g) *list = g;
        hs_fail(err, HS_ERR_NOMEM, "out of memory");
        return 0;
    }
    *list = g;
    g[(*count)++] = s;
    return 1;
}

static void free_strings(char **s, int n) {
    for (int i = 0; s && i < n; i++) free(s[i]);
    free(s);
}

void hs_dataset_free(hs_dataset *ds) {
    if (!ds) return;
    free_strings(ds->class_names, ds->class_count);
    for (int i = 0; ds->samples && i < ds->count; i++) free(ds->samples[i].name);
    free(ds->samples);
    free_strings(ds->warnings, ds->warning_count);
    hs_ds_storage_release(ds->storage);
    memset(ds, 0, sizeof *ds);
}

static hs_status copy_classes(hs_dataset *d, char *const *names, int n, hs_error *err) {
    d->class_names = calloc((size_t)n, sizeof *d->class_names);
    if (!d->class_names) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    d->class_count = n;
    for (int i = 0; i < n; i++)
        if (!(d->class_names[i] = strdup(names[i]))) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    return HS_OK;
}

static void attach_storage(hs_dataset *d, hs_ds_storage *s) {
    if (!s) return;
    s->refs++;
    d->storage = s;
}

/* ---- Classes of one side (a tree below a prefix) ------------------------------------------- */

typedef struct item {
    const char *cls;   /* class folder name (not zero-terminated at cls_len) */
    size_t cls_len;
    const char *rel;   /* path below the class folder; NULL for the class folder itself */
    const hs_ds_entry *e;
    size_t order;      /* position in the tree (a later duplicate member wins) */
} item;

static int item_cmp(const void *pa, const void *pb) {
    const item *a = pa, *b = pb;
    size_t n = a->cls_len < b->cls_len ? a->cls_len : b->cls_len;
    int c = memcmp(a->cls, b->cls, n);
    if (c) return c;
    if (a->cls_len != b->cls_len) return a->cls_len < b->cls_len ? -1 : 1;
    if (!a->rel || !b->rel) return a->rel ? 1 : b->rel ? -1 : (a->order < b->order ? -1 : a->order > b->order);
    c = strcmp(a->rel, b->rel);
    if (c) return c;
    return a->order < b->order ? -1 : a->order > b->order;
}

typedef struct side {
    char **classes;
    int class_count;
    const hs_ds_entry **images; /* sorted by class, then path */
    int *labels;
    int count;
    int skipped;
    char **warnings;
    int warning_count;
} side;

static void side_free(side *s) {
    free_strings(s->classes, s->class_count);
    free(s->images);
    free(s->labels);
    free_strings(s->warnings, s->warning_count);
    memset(s, 0, sizeof *s);
}

/* Lists the classes and images of the tree below prefix ("" or "train/"); where names the side
 * in messages. */
static hs_status collect(const hs_ds_tree *t, const char *prefix, const char *where, side *s,
                         hs_error *err) {
    memset(s, 0, sizeof *s);
    size_t plen = strlen(prefix);
    item *items = malloc((t->count ? t->count : 1) * sizeof *items);
    if (!items) return hs_fail(err, HS_ERR_NOMEM, "out of memory listing %s", where);
    size_t n = 0;
    int root_images = 0;
    for (size_t i = 0; i < t->count; i++) {
        const hs_ds_entry *e = &t->entries[i];
        if (strncmp(e->path, prefix, plen) != 0) continue;
        const char *r = e->path + plen;
        if (!*r) continue;
        const char *slash = strchr(r, '/');
        if (!slash) {
            if (e->is_dir) items[n++] = (item){r, strlen(r), NULL, e, i};
            else if (hs_ds_is_image_name(r)) root_images++;
            else s->skipped++;
            continue;
        }
        if (e->is_dir) continue; /* a sub-folder of a class folder: only its files count */
        items[n++] = (item){r, (size_t)(slash - r), slash + 1, e, i};
    }
    qsort(items, n, sizeof *items, item_cmp);

    hs_status st = HS_OK;
    /* Classes: groups of items with the same class name, holding at least one image. */
    s->images = malloc((n ? n : 1) * sizeof *s->images);
    s->labels = malloc((n ? n : 1) * sizeof *s->labels);
    s->classes = malloc((n ? n : 1) * sizeof *s->classes);
    if (!s->images || !s->labels || !s->classes) {
        st = hs_fail(err, HS_ERR_NOMEM, "out of memory listing %s", where);
        goto done;
    }
    for (size_t g = 0; g < n && !st;) {
        size_t h = g;
        while (h < n && items[h].cls_len == items[g].cls_len &&
               memcmp(items[h].cls, items[g].cls, items[g].cls_len) == 0)
            h++;
        int images = 0;
        for (size_t k = g; k < h; k++) {
            if (!items[k].rel) continue;
            /* a duplicate member path: the later one (as tar extracts it) */
            if (k + 1 < h && items[k + 1].rel && strcmp(items[k].rel, items[k + 1].rel) == 0)
                continue;
            if (!hs_ds_is_image_name(items[k].rel)) {
                s->skipped++;
                continue;
            }
            s->images[s->count] = items[k].e;
            s->labels[s->count++] = s->class_count;
            images++;
        }
        char *name = NULL;
        if ((st = hs_ds_check_class_name(items[g].cls, items[g].cls_len, where, err))) break;
        name = dup_n(items[g].cls, items[g].cls_len);
        if (!name) {
            st = hs_fail(err, HS_ERR_NOMEM, "out of memory listing %s", where);
        } else if (images == 0) {
            if (!add_warning(&s->warnings, &s->warning_count, err,
                             "skipped empty class folder '%s' in %s (no images)", name, where))
                st = HS_ERR_NOMEM;
            free(name);
        } else {
            s->classes[s->class_count++] = name;
        }
        g = h;
    }
    if (st) goto done;
    if (s->class_count == 0) {
        if (root_images > 0)
            st = hs_fail(err, HS_ERR_FORMAT,
                         "%s: %d image%s directly in the folder but no class folders; expected "
                         "one folder per class: %s/<class>/<image> (e.g. %s/cat/1.jpg and "
                         "%s/dog/2.jpg)", where, root_images, root_images == 1 ? " lies" : "s lie",
                         where, where, where);
        else
            st = hs_fail(err, HS_ERR_FORMAT, "%s holds no images (.jpg, .jpeg, .png); "
                         LAYOUT_HINT, where);
        goto done;
    }
    if (root_images > 0) {
        s->skipped += root_images;
        if (!add_warning(&s->warnings, &s->warning_count, err,
                         "skipped %d image%s directly in %s, outside the class folders",
                         root_images, root_images == 1 ? "" : "s", where))
            st = HS_ERR_NOMEM;
    }
done:
    free(items);
    if (st) side_free(s);
    return st;
}

/* ---- Building data sets ------------------------------------------------------------------- */

static hs_status side_to_dataset(const side *s, hs_ds_storage *storage, hs_dataset *d,
                                 hs_error *err) {
    hs_status st = copy_classes(d, s->classes, s->class_count, err);
    if (st) return st;
    attach_storage(d, storage);
    d->samples = calloc((size_t)(s->count ? s->count : 1), sizeof *d->samples);
    if (!d->samples) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < s->count; i++) {
        const hs_ds_entry *e = s->images[i];
        hs_sample *x = &d->samples[i];
        x->kind = e->kind;
        x->label = s->labels[i];
        x->name = strdup(e->name ? e->name : e->path);
        if (!x->name) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
        d->count = i + 1;
        x->size = e->size;
        x->mtime = e->mtime;
        x->bytes = e->bytes;
        x->byte_count = e->byte_count;
    }
    d->skipped_files = s->skipped;
    for (int i = 0; i < s->warning_count; i++)
        if (!add_warning(&d->warnings, &d->warning_count, err, "%s", s->warnings[i]))
            return HS_ERR_NOMEM;
    return HS_OK;
}

/* Per class, the sample indices in a seeded random order. */
static int **class_orders(const hs_dataset *d, uint64_t seed, int **lens_out) {
    int C = d->class_count;
    int *lens = calloc((size_t)C, sizeof *lens);
    int **orders = calloc((size_t)C, sizeof *orders);
    if (!lens || !orders) goto fail;
    for (int i = 0; i < d->count; i++) lens[d->samples[i].label]++;
    for (int c = 0; c < C; c++)
        if (!(orders[c] = malloc((size_t)(lens[c] ? lens[c] : 1) * sizeof(int)))) goto fail;
    int *fill = calloc((size_t)C, sizeof *fill);
    if (!fill) goto fail;
    for (int i = 0; i < d->count; i++) {
        int c = d->samples[i].label;
        orders[c][fill[c]++] = i;
    }
    free(fill);
    hs_rng rng;
    hs_rng_seed(&rng, seed);
    for (int c = 0; c < C; c++)
        for (int i = lens[c] - 1; i > 0; i--) {
            int j = (int)hs_rng_below(&rng, (uint64_t)i + 1);
            int tmp = orders[c][i];
            orders[c][i] = orders[c][j];
            orders[c][j] = tmp;
        }
    *lens_out = lens;
    return orders;
fail:
    for (int c = 0; orders && c < C; c++) free(orders[c]);
    free(orders);
    free(lens);
    return NULL;
}

static void free_orders(int **orders, int *lens, int C) {
    for (int c = 0; orders && c < C; c++) free(orders[c]);
    free(orders);
    free(lens);
}

/* Keeps the samples whose flag is set (in their order); frees the names of the others. */
static void keep_flagged(hs_dataset *d, const unsigned char *flag) {
    int k = 0;
    for (int i = 0; i < d->count; i++) {
        if (flag[i]) d->samples[k++] = d->samples[i];
        else free(d->samples[i].name);
    }
    d->count = k;
}

/* A stratified subset of `limit` samples: round-robin over the classes, each in a seeded
 * random order, so every class gets limit / classes (the first ones one more). */
static hs_status apply_limit(hs_dataset *d, int limit, uint64_t seed, hs_error *err) {
    if (limit <= 0 || limit >= d->count) return HS_OK;
    int *lens = NULL;
    int **orders = class_orders(d, seed, &lens);
    int *pos = calloc((size_t)d->class_count, sizeof *pos);
    unsigned char *flag = calloc((size_t)d->count, 1);
    if (!orders || !pos || !flag) {
        free_orders(orders, lens, d->class_count);
        free(pos);
        free(flag);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    }
    int taken = 0;
    while (taken < limit) {
        for (int c = 0; c < d->class_count && taken < limit; c++)
            if (pos[c] < lens[c]) {
                flag[orders[c][pos[c]++]] = 1;
                taken++;
            }
    }
    keep_flagged(d, flag);
    free_orders(orders, lens, d->class_count);
    free(pos);
    free(flag);
    return HS_OK;
}

#define SEED_TRAIN_LIMIT 0x9e3779b97f4a7c15ULL
#define SEED_VAL_LIMIT 0xc2b2ae3d27d4eb4fULL

/* Moves every sample of all into train or val: per class round(n * f) to val (at least one
 * when the class has two or more, never all). */
static hs_status split(hs_dataset *all, double f, uint64_t seed, hs_dataset *train,
                       hs_dataset *val, hs_error *err) {
    int *lens = NULL;
    int **orders = class_orders(all, seed, &lens);
    unsigned char *to_val = calloc((size_t)(all->count ? all->count : 1), 1);
    hs_status st = HS_OK;
    if (!orders || !to_val) {
        st = hs_fail(err, HS_ERR_NOMEM, "out of memory");
        goto done;
    }
    int nval = 0;
    for (int c = 0; c < all->class_count; c++) {
        int n = lens[c];
        long v = lround(n * f);
        if (n >= 2 && v < 1) v = 1;
        if (v > n - 1) v = n >= 1 ? n - 1 : 0;
        for (long i = 0; i < v; i++) to_val[orders[c][i]] = 1;
        nval += (int)v;
    }
    train->samples = malloc((size_t)(all->count - nval ? all->count - nval : 1) * sizeof(hs_sample));
    val->samples = malloc((size_t)(nval ? nval : 1) * sizeof(hs_sample));
    if (!train->samples || !val->samples) {
        st = hs_fail(err, HS_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < all->count; i++) {
        if (to_val[i]) val->samples[val->count++] = all->samples[i];
        else train->samples[train->count++] = all->samples[i];
    }
    all->count = 0; /* the names now belong to train and val */
done:
    free_orders(orders, lens, all->class_count);
    free(to_val);
    return st;
}

typedef struct ctx {
    const hs_dataset_options *o;
    int eval;
    hs_ds_storage *storage;
    hs_dataset *train, *val; /* eval: train is the output */
    hs_error *err;
} ctx;

static hs_status check_class_count(ctx *c, int n, const char *where) {
    if (n > HS_MAX_CLASSES)
        return hs_fail(c->err, HS_ERR_ARGUMENT, "%s has %d classes, over the limit of %d",
                       where, n, HS_MAX_CLASSES);
    if (n >= 2 || (c->eval && n >= 1)) return HS_OK;
    return hs_fail(c->err, HS_ERR_ARGUMENT,
                   "%s has %d class%s; a classifier needs at least two class folders (%s/<class>/"
                   "<image>)", where, n, n == 1 ? "" : "es", where);
}

/* One side (class folders, no split given): eval takes it all; otherwise split it. */
static hs_status finish_single(ctx *c, side *s, const char *where) {
    hs_status st = check_class_count(c, s->class_count, where);
    if (st) return st;
    if (c->eval) return side_to_dataset(s, c->storage, c->train, c->err);
    double f = c->o->val_fraction;
    if (!(f > 0 && f < 1))
        return hs_fail(c->err, HS_ERR_ARGUMENT,
                       "%s has no train/val split, and the validation fraction %g is not "
                       "between 0 and 1", where, f);
    hs_dataset all = {0};
    st = side_to_dataset(s, NULL, &all, c->err);
    if (!st) st = split(&all, f, c->o->seed, c->train, c->val, c->err);
    if (!st) st = copy_classes(c->train, all.class_names, all.class_count, c->err);
    if (!st) st = copy_classes(c->val, all.class_names, all.class_count, c->err);
    if (!st) {
        attach_storage(c->train, c->storage);
        attach_storage(c->val, c->storage);
        /* skipped files and warnings are the tree's: reported once, on the train side */
        c->train->skipped_files = all.skipped_files;
        c->train->warnings = all.warnings;
        c->train->warning_count = all.warning_count;
        all.warnings = NULL;
        all.warning_count = 0;
    }
    hs_dataset_free(&all);
    if (!st) st = apply_limit(c->train, c->o->limit_train, c->o->seed ^ SEED_TRAIN_LIMIT, c->err);
    if (!st) st = apply_limit(c->val, c->o->limit_val, c->o->seed ^ SEED_VAL_LIMIT, c->err);
    return st;
}

/* Two sides given: the same classes on both. */
static hs_status finish_pair(ctx *c, side *tr, side *va, const char *where_tr,
                             const char *where_va) {
    int i = 0, j = 0;
    while (i < tr->class_count || j < va->class_count) {
        int cmp = i >= tr->class_count ? 1 : j >= va->class_count ? -1
                                              : strcmp(tr->classes[i], va->classes[j]);
        if (cmp < 0)
            return hs_fail(c->err, HS_ERR_FORMAT,
                           "class '%s' is in %s but not in %s; both sides need the same class "
                           "folders", tr->classes[i], where_tr, where_va);
        if (cmp > 0)
            return hs_fail(c->err, HS_ERR_FORMAT,
                           "class '%s' is in %s but not in %s; both sides need the same class "
                           "folders", va->classes[j], where_va, where_tr);
        i++;
        j++;
    }
    hs_status st = check_class_count(c, tr->class_count, where_tr);
    if (!st) st = side_to_dataset(tr, c->storage, c->train, c->err);
    if (!st) st = side_to_dataset(va, c->storage, c->val, c->err);
    if (!st) st = apply_limit(c->train, c->o->limit_train, c->o->seed ^ SEED_TRAIN_LIMIT, c->err);
    if (!st) st = apply_limit(c->val, c->o->limit_val, c->o->seed ^ SEED_VAL_LIMIT, c->err);
    return st;
}

/* ---- CIFAR-10 binary ---------------------------------------------------------------------- */

enum { CIFAR_META = 6, CIFAR_FILES = 7 };
static const char *const cifar_files[CIFAR_FILES] = {
    "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
    "data_batch_5.bin", "test_batch.bin",   "batches.meta.txt"};

typedef struct cifar_file {
    int present;
    char *display;        /* the name samples get ("dir/data_batch_1.bin"); owned */
    const char *disk;     /* read from here when bytes is NULL */
    const uint8_t *bytes; /* already in the storage (archive member) */
    int64_t size, mtime;
} cifar_file;

static hs_status cifar_read(ctx *c, cifar_file *f, uint8_t **out) {
    if (f->bytes) {
        *out = (uint8_t *)f->bytes; /* ours: in the storage, converted in place */
        return HS_OK;
    }
    if (f->size > hs_dataset_member_limit)
        return hs_fail(c->err, HS_ERR_NOMEM, "%s: %lld bytes is too large for a CIFAR-10 file",
                       f->disk, (long long)f->size);
    FILE *fp = fopen(f->disk, "rb");
    if (!fp) return hs_fail(c->err, HS_ERR_IO, "cannot read %s: %s", f->disk, strerror(errno));
    uint8_t *buf = hs_ds_storage_alloc(c->storage, (size_t)f->size + 1);
    size_t got = buf ? fread(buf, 1, (size_t)f->size, fp) : 0;
    int ioerr = ferror(fp);
    fclose(fp);
    if (!buf) return hs_fail(c->err, HS_ERR_NOMEM, "out of memory reading %s", f->disk);
    if (ioerr || got != (size_t)f->size)
        return hs_fail(c->err, HS_ERR_IO, "cannot read %s (read %zu of %lld bytes)", f->disk,
                       got, (long long)f->size);
    buf[f->size] = '\0';
    *out = buf;
    return HS_OK;
}

/* Appends the records of batch f to d (labels checked against d's classes). */
static hs_status cifar_add(ctx *c, cifar_file *f, hs_dataset *d) {
    if (f->size <= 0 || f->size % HS_CIFAR_RECORD != 0)
        return hs_fail(c->err, HS_ERR_FORMAT,
                       "%s: %lld bytes is not a whole number of CIFAR-10 records of %d bytes "
                       "(truncated or not a CIFAR-10 batch)", f->display, (long long)f->size,
                       HS_CIFAR_RECORD);
    uint8_t *data;
    hs_status st = cifar_read(c, f, &data);
    if (st) return st;
    size_t n = (size_t)f->size / HS_CIFAR_RECORD;
    uint8_t *labels = malloc(n);
    hs_sample *g = realloc(d->samples, ((size_t)d->count + n) * sizeof *g);
    if (g) d->samples = g;
    if (!labels || !g) {
        free(labels);
        return hs_fail(c->err, HS_ERR_NOMEM, "out of memory reading %s", f->display);
    }
    st = hs_cifar_parse_batch(data, (size_t)f->size, d->class_count, f->display, data, labels,
                              c->err);
    for (size_t i = 0; !st && i < n; i++) {
        hs_sample *x = &d->samples[d->count];
        memset(x, 0, sizeof *x);
        char nm[64];
        snprintf(nm, sizeof nm, "#%zu", i);
        x->name = malloc(strlen(f->display) + strlen(nm) + 1);
        if (!x->name) {
            st = hs_fail(c->err, HS_ERR_NOMEM, "out of memory reading %s", f->display);
            break;
        }
        strcpy(x->name, f->display);
        strcat(x->name, nm);
        x->kind = HS_SAMPLE_RAW_RGB;
        x->label = labels[i];
        x->size = f->size;
        x->mtime = f->mtime;
        x->bytes = data + i * HS_CIFAR_PIXELS;
        x->byte_count = HS_CIFAR_PIXELS;
        x->raw_width = x->raw_height = 32;
        d->count++;
    }
    free(labels);
    return st;
}

/* Orders samples by class, keeping record order within a class (a stable counting sort). */
static hs_status sort_by_label(hs_dataset *d, hs_error *err) {
    hs_sample *s = malloc((size_t)(d->count ? d->count : 1) * sizeof *s);
    int *start = calloc((size_t)d->class_count + 1, sizeof *start);
    if (!s || !start) {
        free(s);
        free(start);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < d->count; i++) start[d->samples[i].label + 1]++;
    for (int k = 0; k < d->class_count; k++) start[k + 1] += start[k];
    for (int i = 0; i < d->count; i++) s[start[d->samples[i].label]++] = d->samples[i];
    free(d->samples);
    d->samples = s;
    free(start);
    return HS_OK;
}

static hs_status cifar_finish(ctx *c, cifar_file *f, const char *where) {
    hs_status st = HS_OK;
    char **names = NULL;
    int class_count = 0;
    if (f[CIFAR_META].present) {
        uint8_t *text;
        if (f[CIFAR_META].size > (1 << 20))
            return hs_fail(c->err, HS_ERR_FORMAT, "%s: too large for a list of class names",
                           f[CIFAR_META].display);
        if ((st = cifar_read(c, &f[CIFAR_META], &text))) return st;
        st = hs_cifar_parse_meta((const char *)text, (size_t)f[CIFAR_META].size,
                                 f[CIFAR_META].display, &names, &class_count, c->err);
        if (st) return st;
    } else {
        names = malloc(10 * sizeof *names);
        if (!names) return hs_fail(c->err, HS_ERR_NOMEM, "out of memory");
        for (int i = 0; i < 10; i++) names[i] = (char *)hs_cifar10_default_names[i];
        class_count = 10;
    }
    st = check_class_count(c, class_count, where);
    hs_dataset *tr = c->eval ? NULL : c->train, *va = c->eval ? c->train : c->val;
    if (!st && tr) st = copy_classes(tr, names, class_count, c->err);
    if (!st) st = copy_classes(va, names, class_count, c->err);
    if (f[CIFAR_META].present) free_strings(names, class_count);
    else free(names);
    if (st) return st;
    if (tr) attach_storage(tr, c->storage);
    attach_storage(va, c->storage);
    if (!f[5].present)
        return hs_fail(c->err, HS_ERR_FORMAT,
                       "%s: test_batch.bin is missing; the CIFAR-10 binary folder holds "
                       "data_batch_1.bin .. data_batch_5.bin and test_batch.bin", where);
    if (tr) {
        int batches = 0;
        for (int i = 0; i < 5 && !st; i++)
            if (f[i].present) {
                batches++;
                st = cifar_add(c, &f[i], tr);
            }
        if (st) return st;
        if (batches == 0)
            return hs_fail(c->err, HS_ERR_FORMAT,
                           "%s: no data_batch_N.bin; the CIFAR-10 binary folder holds "
                           "data_batch_1.bin .. data_batch_5.bin and test_batch.bin", where);
        if (batches < 5 && !add_warning(&tr->warnings, &tr->warning_count, c->err,
                                        "%s: only %d of the 5 CIFAR-10 training batches", where,
                                        batches))
            return HS_ERR_NOMEM;
        if ((st = sort_by_label(tr, c->err))) return st;
        st = apply_limit(tr, c->o->limit_train, c->o->seed ^ SEED_TRAIN_LIMIT, c->err);
    }
    if (!st) st = cifar_add(c, &f[5], va);
    if (!st) st = sort_by_label(va, c->err);
    if (!st && !c->eval) st = apply_limit(va, c->o->limit_val, c->o->seed ^ SEED_VAL_LIMIT, c->err);
    return st;
}

static void cifar_files_free(cifar_file *f) {
    for (int i = 0; i < CIFAR_FILES; i++) free(f[i].display);
}

/* The CIFAR-10 files of a folder on disk; 0 when it has no batch file. */
static int cifar_scan_dir(const char *dir, cifar_file *f) {
    int batches = 0;
    memset(f, 0, CIFAR_FILES * sizeof *f);
    for (int i = 0; i < CIFAR_FILES; i++) {
        char *p = malloc(strlen(dir) + strlen(cifar_files[i]) + 2);
        if (!p) continue;
        sprintf(p, "%s/%s", dir, cifar_files[i]);
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
            f[i].present = 1;
            f[i].display = p;
            f[i].disk = p;
            f[i].size = (int64_t)sb.st_size;
            f[i].mtime = (int64_t)sb.st_mtime;
            if (i < CIFAR_META) batches++;
        } else {
            free(p);
        }
    }
    if (!batches) cifar_files_free(f);
    return batches;
}

/* The CIFAR-10 files at the top of an archive's tree; 0 when it has no batch file. */
static int cifar_scan_tree(const hs_ds_tree *t, cifar_file *f) {
    int batches = 0;
    memset(f, 0, CIFAR_FILES * sizeof *f);
    for (size_t k = 0; k < t->count; k++) {
        const hs_ds_entry *e = &t->entries[k];
        if (e->is_dir || !e->bytes) continue;
        for (int i = 0; i < CIFAR_FILES; i++)
            if (strcmp(e->path, cifar_files[i]) == 0) {
                char *d = strdup(e->name);
                if (!d) break;
                free(f[i].display); /* a later duplicate wins */
                batches += !f[i].present && i < CIFAR_META;
                f[i] = (cifar_file){1, d, NULL, e->bytes, (int64_t)e->byte_count, e->mtime};
            }
    }
    if (!batches) cifar_files_free(f);
    return batches;
}

/* ---- Layouts ------------------------------------------------------------------------------ */

typedef struct side_source {
    int found;
    int is_archive;
    char *path;
} side_source;

static void find_side(const char *root, const char *name, side_source *s) {
    static const char *const suffix[] = {"", ".tar.gz", ".tgz", ".tar"};
    memset(s, 0, sizeof *s);
    for (int i = 0; i < 4; i++) {
        char *p = malloc(strlen(root) + strlen(name) + 10);
        if (!p) return;
        sprintf(p, "%s/%s%s", root, name, suffix[i]);
        struct stat sb;
        if (stat(p, &sb) == 0 && (i == 0 ? S_ISDIR(sb.st_mode) : S_ISREG(sb.st_mode))) {
            s->found = 1;
            s->is_archive = i > 0;
            s->path = p;
            return;
        }
        free(p);
    }
}

static hs_status load_side(ctx *c, const side_source *src, hs_ds_tree *t, side *s) {
    t->storage = c->storage;
    hs_status st = src->is_archive ? hs_ds_tree_read_archive_file(t, src->path, c->err)
                                   : hs_ds_tree_read_dir(t, src->path, c->err);
    if (st) return st;
    if (src->is_archive) hs_ds_tree_strip_top(t);
    return collect(t, "", src->path, s, c->err);
}

static hs_status open_folder(ctx *c, const char *path) {
    hs_status st = HS_OK;
    side_source tr, va;
    find_side(path, "train", &tr);
    find_side(path, "val", &va);
    if (!va.found) find_side(path, "test", &va);
    if (tr.found && va.found) {
        hs_ds_tree ttr = {0}, tva = {0};
        side str = {0}, sva = {0};
        if (!c->eval) st = load_side(c, &tr, &ttr, &str);
        if (!st) st = load_side(c, &va, &tva, &sva);
        if (!st) st = c->eval ? finish_single(c, &sva, va.path)
                              : finish_pair(c, &str, &sva, tr.path, va.path);
        side_free(&str);
        side_free(&sva);
        hs_ds_tree_free(&ttr);
        hs_ds_tree_free(&tva);
    } else {
        cifar_file f[CIFAR_FILES];
        char *sub = malloc(strlen(path) + 32);
        if (!sub) st = hs_fail(c->err, HS_ERR_NOMEM, "out of memory");
        else sprintf(sub, "%s/cifar-10-batches-bin", path);
        if (st) {
        } else if (cifar_scan_dir(path, f)) {
            st = cifar_finish(c, f, path);
            cifar_files_free(f);
        } else if (cifar_scan_dir(sub, f)) {
            st = cifar_finish(c, f, sub);
            cifar_files_free(f);
        } else {
            hs_ds_tree t = {0};
            side s = {0};
            t.storage = c->storage;
            st = hs_ds_tree_read_dir(&t, path, c->err);
            if (!st) st = collect(&t, "", path, &s, c->err);
            if (!st) st = finish_single(c, &s, path);
            side_free(&s);
            hs_ds_tree_free(&t);
        }
        free(sub);
    }
    free(tr.path);
    free(va.path);
    return st;
}

static int tree_has_side(const hs_ds_tree *t, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < t->count; i++) {
        const char *p = t->entries[i].path;
        if (strncmp(p, name, n) == 0 && (p[n] == '/' || (p[n] == '\0' && t->entries[i].is_dir)))
            return 1;
    }
    return 0;
}

/* An archive read into a tree: the same layouts, inside it. */
static hs_status open_tree(ctx *c, hs_ds_tree *t, const char *display) {
    hs_status st = HS_OK;
    hs_ds_tree_strip_top(t);
    const char *vname = tree_has_side(t, "val") ? "val" : tree_has_side(t, "test") ? "test" : NULL;
    cifar_file f[CIFAR_FILES];
    size_t dl = strlen(display);
    if (tree_has_side(t, "train") && vname) {
        char *wtr = malloc(dl + 8), *wva = malloc(dl + 8);
        side str = {0}, sva = {0};
        char prefix[8];
        if (!wtr || !wva) {
            st = hs_fail(c->err, HS_ERR_NOMEM, "out of memory");
        } else {
            sprintf(wtr, "%s:train", display);
            sprintf(wva, "%s:%s", display, vname);
            sprintf(prefix, "%s/", vname);
            if (!c->eval) st = collect(t, "train/", wtr, &str, c->err);
            if (!st) st = collect(t, prefix, wva, &sva, c->err);
            if (!st) st = c->eval ? finish_single(c, &sva, wva)
                                  : finish_pair(c, &str, &sva, wtr, wva);
        }
        side_free(&str);
        side_free(&sva);
        free(wtr);
        free(wva);
    } else if (cifar_scan_tree(t, f)) {
        st = cifar_finish(c, f, display);
        cifar_files_free(f);
    } else {
        side s = {0};
        st = collect(t, "", display, &s, c->err);
        if (!st) st = finish_single(c, &s, display);
        side_free(&s);
    }
    return st;
}

/* ---- Entry points ------------------------------------------------------------------------- */

static hs_status begin(ctx *c, const hs_dataset_options *o, hs_dataset_options *defaults) {
    if (!o) {
        memset(defaults, 0, sizeof *defaults);
        defaults->val_fraction = 0.2;
        o = defaults;
    }
    c->o = o;
    if (o->limit_train < 0 || o->limit_val < 0)
        return hs_fail(c->err, HS_ERR_ARGUMENT, "a limit on the number of images is negative");
    c->storage = hs_ds_storage_new();
    if (!c->storage) return hs_fail(c->err, HS_ERR_NOMEM, "out of memory");
    return HS_OK;
}

static hs_status finish(ctx *c, hs_status st) {
    hs_ds_storage_release(c->storage); /* the data sets hold their own references */
    if (st) {
        hs_dataset_free(c->train);
        if (c->val) hs_dataset_free(c->val);
    }
    return st;
}

static hs_status open_any(const char *path, const hs_dataset_options *options, int eval,
                          hs_dataset *train, hs_dataset *val, hs_error *err) {
    memset(train, 0, sizeof *train);
    if (val) memset(val, 0, sizeof *val);
    hs_dataset_options defaults;
    ctx c = {.eval = eval, .train = train, .val = val, .err = err};
    if (!path || !*path) return hs_fail(err, HS_ERR_ARGUMENT, "no data path given");
    hs_status st = begin(&c, options, &defaults);
    if (st) return finish(&c, st);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        st = hs_fail(err, HS_ERR_IO, "cannot open data %s: %s", path, strerror(errno));
    } else if (S_ISDIR(sb.st_mode)) {
        st = open_folder(&c, path);
    } else if (S_ISREG(sb.st_mode)) {
        hs_ds_tree t = {0};
        t.storage = c.storage;
        st = hs_ds_tree_read_archive_file(&t, path, err);
        if (!st) st = open_tree(&c, &t, path);
        hs_ds_tree_free(&t);
    } else {
        st = hs_fail(err, HS_ERR_FORMAT, "%s is neither a folder nor an archive; " LAYOUT_HINT,
                     path);
    }
    return finish(&c, st);
}

hs_status hs_dataset_open(const char *path, const hs_dataset_options *options,
                          hs_dataset *train, hs_dataset *val, hs_error *err) {
    return open_any(path, options, 0, train, val, err);
}

hs_status hs_dataset_open_eval(const char *path, hs_dataset *out, hs_error *err) {
    return open_any(path, NULL, 1, out, NULL, err);
}

hs_status hs_dataset_open_archive_memory(const void *data, size_t size, const char *name,
                                         const hs_dataset_options *options, int eval,
                                         hs_dataset *train, hs_dataset *val, hs_error *err) {
    memset(train, 0, sizeof *train);
    if (val && !eval) memset(val, 0, sizeof *val);
    hs_dataset_options defaults;
    ctx c = {.eval = eval, .train = train, .val = eval ? NULL : val, .err = err};
    hs_status st = begin(&c, options, &defaults);
    if (st) return finish(&c, st);
    hs_ds_tree t = {0};
    t.storage = c.storage;
    st = hs_ds_tree_read_archive_memory(&t, data, size, name, err);
    if (!st) st = open_tree(&c, &t, name);
    hs_ds_tree_free(&t);
    return finish(&c, st);
}

hs_status hs_dataset_load_image(const hs_dataset *ds, int index, hs_image *out, hs_error *err) {
    memset(out, 0, sizeof *out);
    if (!ds || index < 0 || index >= ds->count)
        return hs_fail(err, HS_ERR_ARGUMENT, "sample %d is not in the data set", index);
    const hs_sample *s = &ds->samples[index];
    switch (s->kind) {
    case HS_SAMPLE_FILE: return hs_image_load(s->name, out, err);
    case HS_SAMPLE_ENCODED:
        return hs_image_decode_memory(s->bytes, s->byte_count, s->name, out, err);
    case HS_SAMPLE_RAW_RGB: {
        size_t n = (size_t)s->raw_width * (size_t)s->raw_height * 3;
        if (s->raw_width <= 0 || s->raw_height <= 0 || n > s->byte_count)
            return hs_fail(err, HS_ERR_INTERNAL, "%s: raw sample of %dx%d has %zu bytes", s->name,
                           s->raw_width, s->raw_height, s->byte_count);
        out->pixels = malloc(n);
        if (!out->pixels) return hs_fail(err, HS_ERR_NOMEM, "out of memory decoding %s", s->name);
        memcpy(out->pixels, s->bytes, n);
        out->width = s->raw_width;
        out->height = s->raw_height;
        return HS_OK;
    }
    }
    return hs_fail(err, HS_ERR_INTERNAL, "%s: unknown sample kind", s->name);
}
