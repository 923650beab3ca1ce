/* libFuzzer target: the folder walker (folder_walk.c) and the data set reader on a folder.
 * Each input is a program that builds a small tree in a private temporary folder: folders,
 * files (image, CIFAR and other names, hidden ones), symbolic links (to ".", "..", to other
 * entries by relative or absolute path, to nothing, chains of links) and hard links. The tree
 * is then walked and opened as a data set, and the walk is checked: it ends, reports every
 * folder and file once by device and inode, never a hidden entry, never leaves the tree, and
 * agrees with the image list. Links never point above the tree's own folder, so the walk stays
 * in the temporary folder (under /dev/shm when it exists, else /tmp, or $FUZZ_WALK_TMP;
 * removed at exit). At most 96 operations an input keep each run in milliseconds. */
#define _GNU_SOURCE
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset.h"
#include "folder_walk.h"

#define MAX_OPS 96
#define MAX_NODES 128

static char base[64]; /* the private folder: base/t is the tree, base itself holds only t */
static char tree[96];

typedef struct node {
    char rel[512]; /* below tree, "" for tree itself */
    int depth;     /* 0 for the tree's own entries' folder (tree itself) */
    int is_dir;
} node;

static node nodes[MAX_NODES];
static int node_count;

static const char *const dir_names[] = {"cat", "dog", "train", "val", "test", ".hid",
                                        "__MACOSX", "cifar-10-batches-bin", "d", "e"};
static const char *const file_names[] = {"1.png", "2.jpg", "3.JPEG", "x.txt", ".h.png",
                                         "data_batch_1.bin", "test_batch.bin",
                                         "batches.meta.txt", "4.png", "5.jpeg"};

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void remove_base(void) {
    nftw(base, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void reset_tree(void) {
    nftw(tree, remove_one, 16, FTW_DEPTH | FTW_PHYS); /* links removed, never followed */
    if (mkdir(tree, 0755) != 0) abort();
    node_count = 1;
    nodes[0].rel[0] = '\0';
    nodes[0].depth = 0;
    nodes[0].is_dir = 1;
}

/* The path on disk of a node, and a link target to it from a folder at depth d. */
static void disk_path(const node *n, char *out, size_t size) {
    snprintf(out, size, "%s%s%s", tree, n->rel[0] ? "/" : "", n->rel);
}

static void add_node(const node *parent, const char *name, int is_dir) {
    if (node_count == MAX_NODES) return;
    node *n = &nodes[node_count];
    int len = snprintf(n->rel, sizeof n->rel, "%s%s%s", parent->rel, parent->rel[0] ? "/" : "",
                       name);
    if (len < 0 || (size_t)len >= sizeof n->rel) return;
    n->depth = parent->depth + 1;
    n->is_dir = is_dir;
    node_count++;
}

static void build(const uint8_t *data, size_t size) {
    size_t i = 0;
    for (int op = 0; op < MAX_OPS && i + 3 <= size; op++, i += 3) {
        uint8_t kind = data[i], a = data[i + 1], b = data[i + 2];
        /* the parent: a folder among the nodes */
        const node *parent = &nodes[a % node_count];
        if (!parent->is_dir) parent = &nodes[0];
        char where[640], path[768];
        disk_path(parent, where, sizeof where);
        switch (kind % 6) {
        case 0: { /* a folder; "d" again and again nests deep */
            const char *name = dir_names[b % 10];
            snprintf(path, sizeof path, "%s/%s", where, name);
            if (mkdir(path, 0755) == 0) add_node(parent, name, 1);
            break;
        }
        case 1: { /* a file with a few bytes of the input */
            const char *name = file_names[b % 10];
            snprintf(path, sizeof path, "%s/%s", where, name);
            FILE *f = fopen(path, "wbx");
            if (f) {
                fwrite(data, 1, size < 64 ? size : 64, f);
                fclose(f);
                add_node(parent, name, 0);
            }
            break;
        }
        case 2:
        case 3: { /* a symbolic link, named like a folder or a file */
            char name[32], target[1024];
            snprintf(name, sizeof name, "%s%s", kind % 6 == 2 ? "l" : "m",
                     kind & 0x40 ? file_names[b % 10] : dir_names[b % 10]);
            const node *to = &nodes[(b >> 4 ^ a) % node_count];
            int ups = parent->depth; /* from parent to the tree itself */
            switch ((kind >> 3) % 5) {
            case 0: snprintf(target, sizeof target, "."); break;
            case 1: snprintf(target, sizeof target, ".."); break; /* at depth 0: base */
            case 2: { /* relative, through the tree itself */
                size_t k = 0;
                target[0] = '\0';
                for (int u = 0; u < ups && k + 4 < sizeof target; u++) {
                    memcpy(target + k, "../", 4);
                    k += 3;
                }
                snprintf(target + k, sizeof target - k, "%s", to->rel[0] ? to->rel : ".");
                break;
            }
            case 3: disk_path(to, target, sizeof target); break; /* absolute */
            default: snprintf(target, sizeof target, "missing/%u", b); break;
            }
            snprintf(path, sizeof path, "%s/%s", where, name);
            if (symlink(target, path) == 0) add_node(parent, name, 0); /* not walked into */
            break;
        }
        case 4: { /* a hard link to a regular file (never to a symbolic link: its relative
                   * target, moved to another depth, could point out of the tree) */
            const node *to = &nodes[b % node_count];
            if (to->is_dir) break;
            char from[640];
            struct stat sb;
            disk_path(to, from, sizeof from);
            if (lstat(from, &sb) != 0 || !S_ISREG(sb.st_mode)) break;
            snprintf(path, sizeof path, "%s/h%s", where, file_names[b % 10]);
            if (link(from, path) == 0) add_node(parent, strrchr(path, '/') + 1, 0);
            break;
        }
        default: /* a folder named by the input's byte (maybe hidden, maybe odd) */
        {
            char name[4] = {(char)(b ? b : 'z'), (char)(a % 3 ? 'q' : '.'), 0, 0};
            if (name[0] == '/') name[0] = 's';
            snprintf(path, sizeof path, "%s/%s", where, name);
            if (mkdir(path, 0755) == 0) add_node(parent, name, 1);
            break;
        }
        }
    }
}

typedef struct seen {
    dev_t dev[4096];
    ino_t ino[4096];
    int count, images;
} seen;

static hs_status check_item(void *ctx, const hs_walk_item *item, hs_error *err) {
    (void)err;
    seen *s = ctx;
    size_t tl = strlen(tree);
    /* disk is tree + "/" + rel; no component of rel is hidden */
    if (strncmp(item->disk, tree, tl) != 0 || item->disk[tl] != '/' ||
        strcmp(item->disk + tl + 1, item->rel) != 0)
        abort();
    if (item->rel[0] == '.' || strstr(item->rel, "/.") || !item->rel[0]) abort();
    struct stat sb;
    if (stat(item->disk, &sb) != 0 || (S_ISDIR(sb.st_mode) ? 1 : 0) != item->is_dir) abort();
    if (!item->is_dir && !S_ISREG(sb.st_mode)) abort();
    for (int i = 0; i < s->count; i++)
        if (s->dev[i] == sb.st_dev && s->ino[i] == sb.st_ino) abort(); /* taken twice */
    if (s->count < 4096) {
        s->dev[s->count] = sb.st_dev;
        s->ino[s->count++] = sb.st_ino;
    }
    const char *name = strrchr(item->rel, '/');
    name = name ? name + 1 : item->rel;
    const char *dot = strrchr(name, '.');
    if (!item->is_dir && dot && dot != name &&
        (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg")))
        s->images++;
    return HS_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!base[0]) {
        /* a memory file system when there is one: on a disk, creating and removing the tree
         * costs more than everything else (38 against 400+ runs a second) */
        const char *where = getenv("FUZZ_WALK_TMP");
        if (!where) where = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(base, sizeof base, "%.40s/fuzz_walk.XXXXXX", where);
        if (!mkdtemp(base)) abort();
        snprintf(tree, sizeof tree, "%s/t", base);
        atexit(remove_base);
    }
    reset_tree();
    build(data, size);

    static seen s;
    s.count = s.images = 0;
    hs_error err;
    hs_walk_stats stats;
    hs_status st = hs_walk_folder(tree, check_item, &s, &stats, &err);
    char **paths = NULL;
    int n = 0;
    hs_status st2 = hs_walk_images(tree, &paths, &n, NULL, &err);
    if (st != st2 || (st == HS_OK && n != s.images)) abort(); /* the same walk */
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);

    hs_dataset tr, va;
    hs_dataset_options o = {0.25, size, 0, 0};
    hs_dataset_open(tree, &o, &tr, &va, &err);
    hs_dataset_free(&va);
    hs_dataset_free(&tr);
    hs_dataset ev;
    hs_dataset_open_eval(tree, &ev, &err);
    hs_dataset_free(&ev);
    return 0;
}
