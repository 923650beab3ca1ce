/* Batches of images for fine-tuning, prepared on worker threads ahead of the consumer.
 *
 * Batch k of epoch e holds samples order[k*B .. k*B+B) (the last one may be shorter), as
 * B x 3 x S x S normalised floats plus their targets (B x classes). Training batches
 * (augment = 1) are random-resized-cropped, flipped, then optionally label-smoothed and mixed
 * up; validation batches (augment = 0) are resized as the probe does (hs_image_prepare_square)
 * with one-hot targets. Every random draw comes from a generator seeded by (seed, epoch,
 * sample) for an image and (seed, epoch, k) for a batch's mixup, so a batch depends on
 * nothing else: not the thread count, not the order batches were asked in, not whether the
 * store holds the images.
 *
 * The loader keeps `depth` batches in flight (ring buffers): while the consumer computes on
 * batch k, the workers fill k+1 .. k+depth-1, one image per task (decode or look up, crop,
 * resize, flip, normalise), so every worker helps with every batch. Errors (an image that
 * cannot be decoded) come back from hs_batch_loader_next, naming the image; nothing prints. */
#ifndef HS_BATCH_LOADER_H
#define HS_BATCH_LOADER_H

#include <stdint.h>

#include "augment.h"
#include "image_store.h"

typedef struct hs_loader_options {
    int image_size;        /* S */
    int batch_size;        /* B */
    float mean[3], std[3]; /* normalisation after scaling pixels to [0, 1] */
    int augment;           /* 1: training batches; 0: validation batches */
    hs_augment_options crop; /* training: crop scale and ratio, flip */
    float mixup_alpha;     /* training: lambda ~ Beta(alpha, alpha) per batch; 0: no mixup */
    float label_smoothing; /* training: eps of the targets; 0: one-hot */
    uint64_t seed;
    int threads;           /* worker threads, >= 1 */
    int depth;             /* batches in flight, >= 2 (2: double buffering) */
} hs_loader_options;

/* S 224, B 64, ImageNet mean/std, training with the default crop, no mixup or smoothing,
 * seed 0, 2 threads, depth 3. */
void hs_loader_defaults(hs_loader_options *o);

typedef struct hs_batch {
    int epoch;
    int index;           /* k */
    int n;               /* images in this batch */
    float *images;       /* n x 3 x S x S */
    float *targets;      /* n x classes */
    int *labels;         /* n: each image's own label (before mixup) */
    int *samples;        /* n: sample indices, order[k*B ..] */
    float mixup_lambda;  /* the batch's lambda; 1 without mixup */
} hs_batch;

/* One image of a batch, synchronously: what a worker computes for `sample` in `epoch`. */
hs_status hs_loader_prepare_image(const hs_image_store *store, const hs_loader_options *o,
                                  int epoch, int sample, float *out, hs_error *err);

/* Batch k of an epoch, synchronously on the calling thread, into b (whose buffers the caller
 * sized for batch_size images; hs_batch_alloc does that). The reference the loader matches. */
hs_status hs_loader_fill_batch(const hs_image_store *store, const hs_loader_options *o,
                               int epoch, const int *order, int count, int k, hs_batch *b,
                               hs_error *err);
hs_status hs_batch_alloc(const hs_loader_options *o, int classes, hs_batch *b, hs_error *err);
void hs_batch_free(hs_batch *b);

/* The shuffled order of epoch `epoch`: every usable sample of the store (hs_image_store_usable:
 * failed decodes left out) once, in a Fisher-Yates order seeded by (seed, epoch) alone, so a
 * resumed run gets the same order. order has room for store->count; returns how many it wrote. */
int hs_loader_epoch_order(const hs_image_store *store, uint64_t seed, int epoch, int *order);

typedef struct hs_batch_loader hs_batch_loader;

/* Starts the worker threads (idle until an epoch starts). store must outlive the loader. */
hs_status hs_batch_loader_create(const hs_image_store *store, const hs_loader_options *o,
                                 hs_batch_loader **out, hs_error *err);

/* Begins epoch `epoch` over order[0..count) (copied; indices into the store's data set), at
 * batch first_batch (0; a resumed run passes the batch it stopped before and gets the batches
 * a run never stopped would have). Batches of an unfinished previous epoch are dropped; every
 * batch handed out must have been released (else HS_ERR_ARGUMENT). */
hs_status hs_batch_loader_start(hs_batch_loader *l, int epoch, const int *order, int count,
                                int first_batch, hs_error *err);

/* The epoch's next batch, in order, blocking until it is ready; *batch is NULL after the last.
 * A batch with an image that failed returns that image's error (the batch is dropped, the
 * epoch goes on with the next). At most depth - 1 batches may be held at once. */
hs_status hs_batch_loader_next(hs_batch_loader *l, hs_batch **batch, hs_error *err);

/* Gives a batch from hs_batch_loader_next back, so its buffer can take a later batch. */
void hs_batch_loader_release(hs_batch_loader *l, hs_batch *batch);

/* Stops and joins the workers (an epoch in progress is abandoned) and frees everything. */
void hs_batch_loader_free(hs_batch_loader *l);

#endif
