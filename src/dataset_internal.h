/* Inside the data set reader: the payload storage, the file tree that folders and archives are
 * read into before a layout is chosen, and the in-memory parsers the fuzz targets call. */
#ifndef HS_DATASET_INTERNAL_H
#define HS_DATASET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"

/* Limits on what an archive may make us hold in memory (image members and CIFAR batches).
 * Variables, not constants, so that tests can lower them. */
extern int64_t hs_dataset_member_limit; /* one member: 256 MB */
extern int64_t hs_dataset_total_limit;  /* all members of one data set together: 8 GB */

/* Payload buffers shared by the train and val sides of one data set (reference counted). */
typedef struct hs_ds_storage {
    int refs;
    uint8_t **blocks;
    size_t block_count, block_cap;
    uint8_t *cur;        /* the block small payloads are carved from */
    size_t cur_used, cur_size;
    int64_t total;       /* bytes handed out */
} hs_ds_storage;

hs_ds_storage *hs_ds_storage_new(void);
/* n bytes that live as long as the storage; NULL when out of memory. */
uint8_t *hs_ds_storage_alloc(hs_ds_storage *s, size_t n);
void hs_ds_storage_release(hs_ds_storage *s);

/* One file or folder of a tree, by its path relative to the tree's root. */
typedef struct hs_ds_entry {
    char *path;             /* "cat/1.jpg": '/'-separated, no hidden component; owned */
    int is_dir;
    hs_sample_kind kind;    /* FILE (on disk) or ENCODED (bytes held) */
    char *name;             /* FILE: the path on disk; ENCODED: "archive:member"; owned */
    const uint8_t *bytes;   /* ENCODED: payload in the storage; NULL for a skipped member */
    size_t byte_count;
    int64_t size, mtime;
} hs_ds_entry;

typedef struct hs_ds_tree {
    hs_ds_entry *entries;
    size_t count, cap;
    hs_ds_storage *storage; /* borrowed: where archive payloads go */
} hs_ds_tree;

/* Reads a folder recursively with the one folder walker (folder_walk.h: hidden entries left
 * out, links followed, every folder and file taken once, so loops end). */
hs_status hs_ds_tree_read_dir(hs_ds_tree *t, const char *dir, hs_error *err);
/* Reads every entry of a .tar/.tar.gz/.tgz (or .zip) once: image members and CIFAR-10 batch
 * files keep their bytes, other files are listed without them. */
hs_status hs_ds_tree_read_archive_file(hs_ds_tree *t, const char *path, hs_error *err);
hs_status hs_ds_tree_read_archive_memory(hs_ds_tree *t, const void *data, size_t size,
                                         const char *name, hs_error *err);
/* Removes one top-level folder that holds everything (when below it there are folders or
 * CIFAR-10 batch files, so a one-class archive is never flattened). */
void hs_ds_tree_strip_top(hs_ds_tree *t);
void hs_ds_tree_free(hs_ds_tree *t);

int hs_ds_is_image_name(const char *path);
/* data_batch_1..5.bin, test_batch.bin, batches.meta.txt */
int hs_ds_is_cifar_name(const char *base);

/* CIFAR-10 binary: checks a batch (records of 1 label byte + 3072 bytes of R, G and B planes of
 * 32x32; size a non-zero multiple of 3073, labels below class_count) and writes size / 3073
 * HWC-interleaved 32x32 RGB images to pixels and their labels to labels. pixels may be the
 * same buffer as data (converted in place). */
#define HS_CIFAR_RECORD 3073
#define HS_CIFAR_PIXELS 3072
hs_status hs_cifar_parse_batch(const uint8_t *data, size_t size, int class_count,
                               const char *name, uint8_t *pixels, uint8_t *labels,
                               hs_error *err);
/* batches.meta.txt: one class name a line (trailing spaces and '\r' dropped, empty lines
 * ignored), at most 256. *names is an owned array of owned strings. */
hs_status hs_cifar_parse_meta(const char *text, size_t size, const char *name, char ***names,
                              int *count, hs_error *err);
extern const char *const hs_cifar10_default_names[10];

/* HS_CLASS_NAME_MAX (dataset.h): HS_OK, or HS_ERR_FORMAT naming where, the start of the name (escaped) and the limit. */
hs_status hs_ds_check_class_name(const char *name, size_t length, const char *where,
                                 hs_error *err);

/* The whole reader on an archive held in memory (what hs_dataset_open does for a file);
 * eval != 0 does what hs_dataset_open_eval does (train is then the output, val untouched). */
hs_status hs_dataset_open_archive_memory(const void *data, size_t size, const char *name,
                                         const hs_dataset_options *options, int eval,
                                         hs_dataset *train, hs_dataset *val, hs_error *err);

#endif
