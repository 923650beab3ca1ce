/* The feature cache: the frozen backbone's output for every image of a data set, kept on disk
 * so that a second run (another head, learning rate or epoch count) costs no backbone pass.
 *
 * Where: --cache-dir, else $XDG_CACHE_HOME/headstart, else ~/.cache/headstart; files go in
 * its features/ folder, one per (data set side, key), named by the key's SHA-256.
 *
 * The key is every input that changes the stored numbers, as "name=value" lines: format
 * version, backbone, weights SHA-256, frozen boundary, image size, resize method, mean and
 * std, precision, class map, and the file list (name, size, mtime and label of each sample).
 * A lookup that finds no file for the key finds the newest file of the same data set side
 * instead and says which key fields differ: that is why it recomputes.
 *
 * File layout (little-endian, the host's; one file per cache entry):
 *
 *   rows          count x dim values (float32, or IEEE half when precision is f16)
 *   labels        count int32
 *   sample index  count int32: each row's sample in the data set
 *   header        text: the key lines, then "source=", "skipped=" lines
 *   footer        HS_CACHE_FOOTER_BYTES: magic, offsets, count, dim, precision, and the
 *                 SHA-256 of everything before it
 *
 * A file is written through hs_atomic_file (fileutil.h: a locked temporary name, renamed into
 * place when complete), so a killed run never leaves a half-written entry under a real name,
 * and its leftover is swept by the next lookup that misses. On reading, the footer, every size
 * and the checksum are verified before a byte is used, then every field is checked against
 * what the caller knows (the key byte for byte, the network's row width, the key's
 * precision, the data set's images and labels): the checksum is the file's own, so it proves
 * only that the file is whole, not that it is honest. A damaged or mismatched entry is
 * deleted and recomputed, the reason named.
 *
 * Last use: each hit sets the entry's modification time (never changed otherwise: access
 * times change with any read, a listing's too, or never on noatime mounts); 'headstart
 * cache' lists and prunes by it. */
#ifndef HS_FEATURE_CACHE_H
#define HS_FEATURE_CACHE_H

#include <stddef.h>

#include "dataset.h"
#include "feature_set.h"

/* Part of every key: raised when the same key would now compute other bytes. 2: bf16
 * backbones keep bf16 activations between layers (their features differ from version 1's in
 * the last bits). */
#define HS_CACHE_FORMAT_VERSION 2

typedef enum hs_cache_precision {
    HS_CACHE_F32 = 0,
    HS_CACHE_F16 = 1
} hs_cache_precision;

/* What identifies a data set side's features. */
typedef struct hs_cache_key_input {
    const char *backbone;
    const char *weights_sha;       /* or "random-seed-N" for --weights none */
    int boundary;                  /* layers [0, boundary) are frozen */
    const char *boundary_layer;    /* the name of layer `boundary` (the first trained one) */
    int img_size;
    const float *mean, *std;       /* 3 each */
    hs_cache_precision precision;
    int bf16;                      /* the backbone computed in bfloat16 */
    const hs_dataset *dataset;
    const char *source;            /* e.g. "/data/cifar (train)": finds predecessors */
    hs_interpolation interpolation; /* of the resize; zero: bilinear */
} hs_cache_key_input;

/* Builds the key text (owned by the caller: free). */
hs_status hs_cache_key_make(const hs_cache_key_input *in, char **key, hs_error *err);

/* Resolves the cache folder (override, else $XDG_CACHE_HOME/headstart, else
 * $HOME/.cache/headstart) and creates its features/ subfolder; writes that into out. */
hs_status hs_cache_dir_resolve(const char *override, char *out, size_t size, hs_error *err);

/* Looks the key up in dir. On a hit, *hit = 1 and out holds the mapped features (labels,
 * sample indexes and skipped images included), checked against dataset (labels within its
 * classes, indexes within its samples, one row or skipped image per image) and against dim,
 * the width of the rows the caller's network produces. On a miss, *hit = 0 and why says why
 * (no entry for this data set, or which key fields changed, or that an entry was damaged or
 * did not match and was removed). Errors are only for what stops the job (out of memory). */
hs_status hs_cache_lookup(const char *dir, const char *key, const char *source,
                          const hs_dataset *dataset, int dim, hs_feature_set *out, int *hit,
                          char *why, size_t why_size, hs_error *err);

/* Streaming writer: rows are appended as the backbone produces them. */
typedef struct hs_cache_writer hs_cache_writer;

hs_status hs_cache_writer_open(const char *dir, const char *key, const char *source, int dim,
                               hs_cache_precision precision, hs_cache_writer **out,
                               hs_error *err);
/* A hs_feature_sink_fn: ctx is the writer. */
hs_status hs_cache_writer_append(void *writer, const float *rows, int n, hs_error *err);
/* Writes labels, indexes and skipped images from set (whose rows were appended), makes the
 * file durable and renames it into place. Frees the writer, also on failure. */
hs_status hs_cache_writer_commit(hs_cache_writer *w, const hs_feature_set *set,
                                 hs_error *err);
/* Removes the temporary file and frees the writer (NULL is fine). */
void hs_cache_writer_abort(hs_cache_writer *w);

/* A missing entry's features, computed and cached (feature_cache_fill.c). */
typedef struct hs_cache_fill_job {
    hs_net *net;
    int boundary;                       /* the backbone is layers [0, boundary) */
    const hs_dataset *dataset;
    const hs_feature_options *options;  /* its sink is the cache writer's */
    const char *dir, *key, *source;
    int dim;                            /* the row width the network gives */
    hs_cache_precision precision;
} hs_cache_fill_job;

/* Computes the features into a new entry and reads them back from it. When the cache cannot
 * be written or read back, computes them in memory instead and puts the cause in fallback
 * (empty when the cache worked); errors are only what stops the job (--strict, Ctrl-C). */
hs_status hs_cache_fill(const hs_cache_fill_job *job, hs_feature_set *out, char *fallback,
                        size_t fallback_size, hs_error *err);

/* ---- managing the cache ('headstart cache') ---------------------------------------------- */

/* The features/ folder of the cache (as hs_cache_dir_resolve, without creating it). */
hs_status hs_cache_dir_path(const char *override, char *out, size_t size, hs_error *err);

/* One entry as its key describes it. Text fields are "?" when the entry is unreadable. */
typedef struct hs_cache_entry_info {
    char name[80];         /* file name in the features/ folder: the key's hash */
    char backbone[64];
    char precision[8];     /* f16 or f32 */
    char source[256];      /* the data set side it was made for, e.g. "/data/cifar (train)" */
    int img_size;
    long long images;      /* rows */
    int damaged;           /* footer or header unreadable: pruned first */
    long long bytes;       /* size on disk */
    long long last_use;    /* seconds since the epoch: the last hit (modification time) */
    long long last_use_ns; /* the same in nanoseconds: orders entries used in one second */
} hs_cache_entry_info;

typedef struct hs_cache_listing {
    hs_cache_entry_info *entries; /* least recently used first */
    int count;
    long long total_bytes;
} hs_cache_listing;

/* Lists the entries in dir (a features/ folder). A missing folder is an empty cache. */
hs_status hs_cache_list(const char *dir, hs_cache_listing *out, hs_error *err);
void hs_cache_listing_free(hs_cache_listing *listing);

/* What a prune removed. */
typedef struct hs_cache_prune_result {
    int removed, kept;
    long long removed_bytes, kept_bytes;
} hs_cache_prune_result;

/* Removes the entries last used more than older_than seconds before now (older_than < 0: no
 * age limit), then, least recently used first, entries until what is left is at most
 * max_bytes (max_bytes < 0: no size limit; 0 clears the cache). Damaged entries go first;
 * temporary files no writer holds go too, while a running writer's file stays. */
hs_status hs_cache_prune(const char *dir, long long older_than, long long max_bytes,
                         long long now, hs_cache_prune_result *result, hs_error *err);

#endif
