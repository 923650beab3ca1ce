/* Running the frozen part of a network once per image: the features the head trains on.
 *
 * Images are decoded and resized on every core, a batch at a time, then pushed through layers
 * [0, boundary) of the network in inference mode. An image that cannot be decoded is skipped
 * and named (or, with strict, stops the run). (The file is not features.h: that name would
 * shadow glibc's <features.h>.) */
#ifndef HS_FEATURE_SET_H
#define HS_FEATURE_SET_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "net.h"

/* Called after each batch with what is done so far; seconds since the phase began. */
typedef void (*hs_progress_fn)(void *ctx, const char *phase, long done, long total,
                               double seconds);

/* Receives each batch of feature rows as it is computed (the cache writer), instead of the
 * set keeping them in memory. Returns non-zero with err filled to stop. */
typedef hs_status (*hs_feature_sink_fn)(void *ctx, const float *rows, int n, hs_error *err);

typedef struct hs_feature_options {
    int img_size;            /* images are resized to img_size x img_size (no crop) */
    hs_interpolation interpolation; /* of that resize; zero: bilinear */
    float mean[3], std[3];   /* normalisation after scaling pixels to [0, 1] */
    int batch_size;
    int strict;              /* an unreadable image is an error instead of skipped */
    hs_progress_fn progress; /* may be NULL */
    void *progress_ctx;
    const char *phase;       /* progress label, e.g. "train features" */
    volatile int *stop;      /* when set to non-zero, stop with HS_ERR_INTERRUPTED */
    hs_feature_sink_fn sink; /* when set, rows go there and `values` stays NULL */
    void *sink_ctx;
    /* When `sharded`: only images [shard_first, shard_first + shard_count) of the data set
     * (one rank's share of a data-parallel run); sample_index still names data-set indexes. */
    int sharded, shard_first, shard_count;
} hs_feature_options;

typedef struct hs_feature_set {
    int count;          /* samples that have features */
    int dim;
    /* The rows, one of: float32 (`values`, in `owned` memory or in a memory-mapped cache
     * file) or half precision (`half`, in a mapped cache file). Read them with
     * hs_feature_rows / hs_feature_range, which convert. */
    const float *values;     /* count x dim, or NULL */
    const uint16_t *half;    /* count x dim, or NULL */
    float *owned;            /* what `values` points to when computed in memory */
    void *map;               /* the cache file mapping `values` or `half` point into */
    size_t map_bytes;
    int *labels;        /* count */
    int *sample_index;  /* count: index of each row's sample in the data set */
    char **failed;      /* "name: reason" for each skipped image; owned */
    int failed_count;
} hs_feature_set;

hs_status hs_extract_features(hs_net *net, int boundary, const hs_dataset *ds,
                              const hs_feature_options *options, hs_feature_set *out,
                              hs_error *err);
/* The same, and with mirrors (not NULL) the features of each decoded image mirrored left to
 * right, row for row with out (flip test-time augmentation): one decode for both. Not with a
 * sink. */
hs_status hs_extract_features_mirrored(hs_net *net, int boundary, const hs_dataset *ds,
                                       const hs_feature_options *options, hs_feature_set *out,
                                       hs_feature_set *mirrors, hs_error *err);
void hs_feature_set_free(hs_feature_set *fs);

/* Copies rows rows[0..n) (or, for hs_feature_range, rows first..first+n) into out as
 * float32, n x dim. */
void hs_feature_rows(const hs_feature_set *fs, const int *rows, int n, float *out);
void hs_feature_range(const hs_feature_set *fs, int first, int n, float *out);

/* The image preparation training uses: resize to size x size with interpolation, scale,
 * normalise (3 x size x size floats). Prediction uses the same, so a model sees what it was
 * trained on. */
hs_status hs_image_prepare_square(const hs_image *img, int size, hs_interpolation interpolation,
                                  const float mean[3], const float std[3], float *out,
                                  hs_error *err);

#endif
