/* One walker for every folder the user names: data set folders, and the folders given to
 * classify and predict.
 *
 * Symbolic links are followed, to folders and to files alike (a data set assembled from links
 * is common), and every folder and every file is taken once, by device and inode, at the first
 * place the walk meets it. The walk visits the entries of each folder in byte order of their
 * names, so "first" is the same on every run. That makes a link to "." or ".." (or any loop)
 * end at once, and a file reachable twice (two links, a link and its target, hard links) count
 * once. Hidden entries (a name starting with '.') and "__MACOSX" are left out; broken links,
 * devices, FIFOs and sockets are not data and are skipped. Folders nested deeper than
 * HS_WALK_MAX_DEPTH are an error, not a silent cut. */
#ifndef HS_FOLDER_WALK_H
#define HS_FOLDER_WALK_H

#include <stdint.h>

#include "headstart.h"

#define HS_WALK_MAX_DEPTH 64

typedef struct hs_walk_item {
    const char *rel;  /* path below the root, '/'-separated ("cat/1.jpg") */
    const char *disk; /* the root joined with rel: what to open */
    int is_dir;       /* else a regular file */
    int64_t size, mtime;
} hs_walk_item;

/* Called for each folder (before what it holds) and each regular file; a non-zero status
 * stops the walk and is returned. The strings live until the call returns. */
typedef hs_status (*hs_walk_visit_fn)(void *ctx, const hs_walk_item *item, hs_error *err);

typedef struct hs_walk_stats {
    long repeats; /* entries left out because the walk had already taken them */
} hs_walk_stats;

/* Walks root (which must be a folder). stats may be NULL. */
hs_status hs_walk_folder(const char *root, hs_walk_visit_fn visit, void *ctx,
                         hs_walk_stats *stats, hs_error *err);

/* The .jpg, .jpeg and .png files below root (by name, any case), in walk order, as owned
 * paths root/rel appended to *paths (grown with realloc; *count updated). On error what was
 * appended so far stays in *paths for the caller to free. */
hs_status hs_walk_images(const char *root, char ***paths, int *count, hs_walk_stats *stats,
                         hs_error *err);

#endif
