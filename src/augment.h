/* Training-time augmentation of one image: torchvision's RandomResizedCrop, a horizontal
 * flip, normalisation into floats. Also the per-sample seeding that makes a batch the same
 * whatever the thread count, and the batch-level mixup and label smoothing.
 *
 * Crop and resize: the crop box is copied out of the image and resized with hs_image_resize
 * (Pillow's antialiased BILINEAR), exactly what torchvision does on a PIL image
 * (img.crop(box).resize((S, S), BILINEAR)), so an upscale interpolates and a downscale
 * averages over the filter's support scaled by the factor. Then the flip (p = 0.5), then
 * (x/255 - mean)/std, the float32 operations of ToTensor and Normalize.
 *
 * Draw order for one image, as torchvision's Compose([RandomResizedCrop, RandomHorizontalFlip])
 * makes them: per attempt two uniforms (area, log aspect), and on success two randints (top,
 * left); then one uniform for the flip (only when flip is on). */
#ifndef HS_AUGMENT_H
#define HS_AUGMENT_H

#include <stdint.h>

#include "headstart.h"
#include "image.h"
#include "rng.h"

typedef struct hs_augment_options {
    double scale[2]; /* area fraction of the crop, default (0.08, 1.0) */
    double ratio[2]; /* aspect range w/h, default (3/4, 4/3); sampled log-uniformly */
    int flip;        /* 1: horizontal flip with p = 0.5 */
} hs_augment_options;

/* scale (0.08, 1), ratio (3/4, 4/3), flip on. */
void hs_augment_defaults(hs_augment_options *o);
/* HS_ERR_ARGUMENT unless 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1]. */
hs_status hs_augment_check(const hs_augment_options *o, hs_error *err);

/* A crop box in torchvision's get_params terms: (i, j, h, w) = (top, left, height, width). */
typedef struct hs_crop_box {
    int top, left, height, width;
} hs_crop_box;

/* Where the crop sampler's random numbers come from: uniform(lo, hi) is
 * torch.empty(1).uniform_(lo, hi) (float32: u * (hi - lo) + lo), randint(lo, hi) is
 * torch.randint(lo, hi) (an integer in [lo, hi)). Tests feed fixed sequences here. */
typedef struct hs_crop_draws {
    float (*uniform)(void *ctx, float lo, float hi);
    int64_t (*randint)(void *ctx, int64_t lo, int64_t hi);
    void *ctx;
} hs_crop_draws;

/* RandomResizedCrop.get_params for a width x height image: 10 attempts of a target area
 * (uniform in scale, times the area) and an aspect ratio (exp of a uniform in log ratio),
 * w = round(sqrt(area * ar)), h = round(sqrt(area / ar)) (half to even, as Python's round),
 * accepted when 0 < w <= width and 0 < h <= height, then top and left uniform; otherwise the
 * central crop of the largest box within the ratio bounds. */
hs_crop_box hs_random_resized_crop_params(int width, int height, const double scale[2],
                                          const double ratio[2], const hs_crop_draws *draws);

/* The same with draws from rng (uniform: hs_rng_uniform's 24 bits; randint: hs_rng_below). */
hs_crop_box hs_random_resized_crop_rng(int width, int height, const hs_augment_options *o,
                                       hs_rng *rng);

/* The seed of sample `sample`'s generator in epoch `epoch` of a run seeded `seed`, and of
 * batch `batch`'s (mixup) generator: different streams for every (seed, epoch, index). */
uint64_t hs_augment_sample_seed(uint64_t seed, int epoch, int64_t sample);
uint64_t hs_augment_batch_seed(uint64_t seed, int epoch, int64_t batch);

/* hs_image_to_tensor's floats, (x/255 - mean)/std, through a table of the 256 values per
 * channel (bit-identical; about 5x faster than a division per pixel). */
void hs_image_to_tensor_fast(const hs_image *img, const float mean[3], const float std[3],
                             float *out);

/* Mirrors an RGB image left to right in place. */
void hs_image_flip_horizontal(hs_image *img);

/* The deterministic part: crop `box` (inside img), resize it to size x size, mirror it when
 * flip, normalise into out (3 x size x size floats). torchvision's F.resized_crop(img, top,
 * left, height, width, [size, size], BILINEAR), then F.hflip, F.to_tensor, F.normalize. */
hs_status hs_augment_apply(const hs_image *img, hs_crop_box box, int flip, int size,
                           const float mean[3], const float std[3], float *out, hs_error *err);

/* Draws a crop (and a flip, when o->flip) from rng and applies them: crops, resizes to size x
 * size, flips, normalises into out
 * (3 x size x size floats). *box_out (may be NULL) receives the crop, *flipped_out (may be
 * NULL) whether it flipped. */
hs_status hs_augment_image(const hs_image *img, int size, const hs_augment_options *o,
                           hs_rng *rng, const float mean[3], const float std[3], float *out,
                           hs_crop_box *box_out, int *flipped_out, hs_error *err);

/* Targets (1 - eps) * onehot(label) + eps / classes for n labels: n x classes floats.
 * (timm's one_hot with off = eps/classes, on = 1 - eps + off.) */
void hs_smooth_targets(const int *labels, int n, int classes, float eps, float *targets);

/* timm's Mixup in mode 'batch': x[i] = lam * x[i] + (1 - lam) * x[n-1-i] for the n images of
 * image_floats floats each, and the same mix of their targets (n x classes), both in place. */
void hs_mixup_batch(float *images, size_t image_floats, float *targets, int n, int classes,
                    float lam);

#endif
