/* Every image of a data set decoded once and kept in memory, for fine-tuning's many epochs.
 *
 * hs_image_store_open decodes all samples on every core (OpenMP) when their decoded pixels
 * fit the caller's memory budget; when they do not (or the budget is 0) it keeps nothing and
 * hs_image_store_get decodes on demand, which in_memory = 0 tells the caller (to report).
 *
 * Size rule: an image whose shorter side exceeds max_short_side is downscaled once (Pillow
 * BILINEAR, hs_image_resize) so that side becomes max_short_side and the longer one
 * int(max_short_side * long / short), torchvision's Resize(int) rule. Fine-tuning at S px
 * uses 2 S: a RandomResizedCrop of area fraction >= 0.25 of such an image still has at least
 * S source pixels a side (smaller crops are upscaled, as they would be from a typical
 * 256-400 px photo anyway). The rule is applied identically on demand, so a batch is the same
 * whether the store holds the images or not. 0 keeps native sizes (validation: then a batch
 * equals the probe's hs_image_prepare_square of the original).
 *
 * An image that cannot be decoded is recorded in `failed` ("name: reason", as
 * hs_feature_set.failed) and hs_image_store_get returns that error for it; it is never
 * replaced. In on-demand mode failures surface when the image is asked for. */
#ifndef HS_IMAGE_STORE_H
#define HS_IMAGE_STORE_H

#include <stddef.h>

#include "dataset.h"
#include "feature_set.h"
#include "image.h"

typedef struct hs_image_store_options {
    size_t memory_budget;    /* bytes the decoded images may take; 0: decode on demand */
    int max_short_side;      /* downscale rule above; 0: keep native sizes */
    hs_progress_fn progress; /* may be NULL; called between chunks of decoded images */
    void *progress_ctx;
    const char *phase;       /* progress label, e.g. "decoding train images" */
    volatile int *stop;      /* non-zero: stop with HS_ERR_INTERRUPTED */
} hs_image_store_options;

typedef struct hs_image_store {
    const hs_dataset *ds;    /* not owned; must outlive the store */
    int count;               /* ds->count */
    int max_short_side;
    int in_memory;           /* 1: images[] holds every decodable sample */
    hs_image *images;        /* count, when in_memory; pixels NULL where decoding failed */
    int *failure;            /* count, when in_memory: index into failed[], or -1 */
    size_t bytes;            /* memory held: pixels plus the per-sample arrays */
    size_t bytes_seen;       /* when the budget ran out: bytes counted by then (> budget) */
    char **failed;           /* "name: reason"; owned */
    int failed_count;
} hs_image_store;

hs_status hs_image_store_open(const hs_dataset *ds, const hs_image_store_options *o,
                              hs_image_store *out, hs_error *err);

/* Sample i's image: *img points into the store (in memory) or at scratch, decoded and sized by
 * the rule. Call hs_image_free(scratch) after use either way (scratch starts zeroed). */
hs_status hs_image_store_get(const hs_image_store *s, int i, hs_image *scratch,
                             const hs_image **img, hs_error *err);

/* Sample i could be decoded (always 1 in on-demand mode, where nothing is known yet). */
int hs_image_store_usable(const hs_image_store *s, int i);

void hs_image_store_free(hs_image_store *s);

/* The size rule on one decoded image, in place. */
hs_status hs_image_limit_short_side(hs_image *img, int max_short_side, hs_error *err);

#endif
