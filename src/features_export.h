/* headstart features: a backbone's pre-logit features of images, for use elsewhere.
 *
 * Extraction goes through the same preparation and feature cache as training
 * (feature_set.h, feature_cache.h): images resized to img_size x img_size, scaled and
 * normalised, pushed through layers [0, feature_end), the rows kept as float32. A cache
 * entry is keyed like training's (backbone, weights SHA-256, boundary, size, mean/std,
 * precision, file list), with the boundary at feature_end and precision f32, so a second
 * export of the same images reads the rows back instead of recomputing them.
 *
 * Two output formats, chosen by the file's extension:
 *
 *   .safetensors  one tensor "features" (F32, N x D) and string metadata: "paths" (a JSON
 *                 list of the N input paths, in row order), "backbone", "img_size",
 *                 "feature_dim", "weights_sha256" ("random-seed-N" for random weights),
 *                 "format" = "headstart-features". Paths must be valid UTF-8 (JSON text).
 *   .npy          NumPy format 1.0: float32 little endian, C order, shape (N, D); beside it
 *                 the same name with .txt holds one path per line, in row order. Paths that
 *                 hold a newline or carriage return are refused (a line per path could not
 *                 hold them): the command checks every path before any work.
 *
 * Both files are written through hs_atomic_file: a reader never sees half a file. */
#ifndef HS_FEATURES_EXPORT_H
#define HS_FEATURES_EXPORT_H

#include <stddef.h>

#include "dataset.h"
#include "feature_set.h"
#include "net.h"

typedef enum hs_features_format {
    HS_FEATURES_UNKNOWN = 0,
    HS_FEATURES_SAFETENSORS,
    HS_FEATURES_NPY
} hs_features_format;

/* The format an output path's extension asks for (any case); UNKNOWN for anything else. */
hs_features_format hs_features_format_of(const char *path);

/* The paths file beside an .npy output: "x.npy" -> "x.txt". */
hs_status hs_features_paths_file(const char *npy_path, char *out, size_t size, hs_error *err);

/* HS_OK when path can be stored in the format (see the top); else an HS_ERR_ARGUMENT that
 * names it (escaped) and says why. */
hs_status hs_features_check_path(hs_features_format format, const char *path, hs_error *err);

/* Fills out with rows first .. first + n - 1 (n x dim floats). */
typedef void (*hs_features_rows_fn)(void *ctx, long first, int n, float *out);

typedef struct hs_features_meta {
    const char *backbone;
    int img_size;
    const char *weights_sha256; /* or "random-seed-N" */
} hs_features_meta;

/* Writes rows x dim features (fetched through rows_fn a chunk at a time) and their paths. */
hs_status hs_features_write(const char *path, hs_features_format format, long rows, int dim,
                            hs_features_rows_fn rows_fn, void *rows_ctx,
                            const char *const *paths, const hs_features_meta *meta,
                            hs_error *err);

/* One extraction: a data set (its samples in output order) through the network's backbone,
 * with the cache when cache_dir is set. */
typedef struct hs_features_job {
    hs_net *net;
    const hs_dataset *dataset;
    const hs_feature_options *options; /* img_size, mean, std, batch, progress, stop */
    const char *cache_dir;             /* a features/ folder (hs_cache_dir_resolve), or NULL */
    const char *weights_sha256;        /* identity of the weights, as in the cache key */
    const char *source;                /* names the cache entry: "/data/photos" */
} hs_features_job;

/* Features of every readable sample (out->sample_index maps rows to samples; out->failed
 * names the others). *cached = 1 when they came from the cache. note (note_size bytes)
 * receives what happened with the cache: a hit, why it missed, or why it could not be used
 * (a cache that cannot be written never stops the job: the rows are computed in memory). */
hs_status hs_features_extract(const hs_features_job *job, hs_feature_set *out, int *cached,
                              char *note, size_t note_size, hs_error *err);

/* OpenMP and OpenBLAS threads (0: leave them as they are). */
void hs_features_set_threads(int threads);

#endif
