/* Data sets of labelled images, in every form a user has them:
 *
 *   root/<class>/<image>                 class folders, split into train/val (stratified, seeded)
 *   root/{train,val|test}/<class>/...    used as given (each side a folder or a .tar/.tar.gz)
 *   x.tar, x.tar.gz, x.tgz               either layout inside an archive, read directly
 *   cifar-10-batches-bin/                the CIFAR-10 binary distribution (data_batch_1..5.bin,
 *                                        test_batch.bin, batches.meta.txt)
 *
 * An archive may wrap everything in one top-level folder. Classes are the sorted folder names
 * (byte order, as Python's sorted() gives for ImageFolder); hidden entries (a leading '.') are
 * never classes or images; files without an image extension (.jpg .jpeg .png, any case) are
 * skipped and counted; an empty class folder is skipped with a warning. Archive members and
 * CIFAR-10 records are held in memory (encoded), so a sample never needs the archive again. */
#ifndef HS_DATASET_H
#define HS_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "headstart.h"
#include "image.h"

typedef enum hs_sample_kind {
    HS_SAMPLE_FILE = 0,  /* an image file on disk: name is its path */
    HS_SAMPLE_ENCODED,   /* an encoded image (archive member) held in `bytes` */
    HS_SAMPLE_RAW_RGB    /* raw 8-bit RGB pixels, HWC (CIFAR-10 binary) in `bytes` */
} hs_sample_kind;

typedef struct hs_sample {
    hs_sample_kind kind;
    int label;                 /* index into the data set's class_names */
    char *name;                /* path, "archive.tar.gz:train/cat/1.jpg" or "data_batch_1.bin#17" */
    int64_t size;              /* file or member size in bytes (feature-cache key) */
    int64_t mtime;             /* modification time in seconds (feature-cache key) */
    const uint8_t *bytes;      /* ENCODED and RAW_RGB: payload, owned by the data set */
    size_t byte_count;
    int raw_width, raw_height; /* RAW_RGB only */
} hs_sample;

/* Class names are at most this many bytes, as file names are: every file a run writes (run.json,
 * confusion.csv, the charts) holds them, and an archive member's path or a line of
 * batches.meta.txt could otherwise make one as long as the file. */
#define HS_CLASS_NAME_MAX 255

typedef struct hs_dataset {
    char **class_names;        /* sorted; owned, at most HS_CLASS_NAME_MAX bytes each */
    int class_count;
    hs_sample *samples;        /* owned */
    int count;
    int skipped_files;         /* non-image files skipped by extension */
    char **warnings;           /* e.g. "skipped empty class folder 'x'"; owned */
    int warning_count;
    void *storage;             /* payload buffers shared between train and val; internal */
} hs_dataset;

typedef struct hs_dataset_options {
    double val_fraction;       /* for a class-folder tree without a split (0 < f < 1) */
    uint64_t seed;             /* the split's and the subsets' seed */
    int limit_train;           /* 0: all; else a stratified, seeded subset of this many */
    int limit_val;
} hs_dataset_options;

/* Opens DATA and fills train and val (both initialised by this call; free both with
 * hs_dataset_free even on failure). Both sides get the same class list; a class missing from
 * one side is an HS_ERR_FORMAT naming it. Fewer than two classes is an HS_ERR_ARGUMENT.
 * Errors name the path and show the expected layout. */
hs_status hs_dataset_open(const char *path, const hs_dataset_options *options,
                          hs_dataset *train, hs_dataset *val, hs_error *err);

/* Opens DATA for evaluation: every image of it (of its val/test side when it has one). */
hs_status hs_dataset_open_eval(const char *path, hs_dataset *out, hs_error *err);

/* Decodes sample i into RGB (file, archive member or raw pixels). */
hs_status hs_dataset_load_image(const hs_dataset *ds, int index, hs_image *out, hs_error *err);

void hs_dataset_free(hs_dataset *ds);

#endif
