#include "augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

void hs_augment_defaults(hs_augment_options *o) {
    o->scale[0] = 0.08;
    o->scale[1] = 1.0;
    o->ratio[0] = 3.0 / 4.0;
    o->ratio[1] = 4.0 / 3.0;
    o->flip = 1;
}

hs_status hs_augment_check(const hs_augment_options *o, hs_error *err) {
    if (!(o->scale[0] > 0.0 && o->scale[0] <= o->scale[1] && o->scale[1] <= 1.0))
        return hs_fail(err, HS_ERR_ARGUMENT,
                       "crop scale (%g, %g): need 0 < min <= max <= 1 (default 0.08, 1)",
                       o->scale[0], o->scale[1]);
    if (!(o->ratio[0] > 0.0 && o->ratio[0] <= o->ratio[1] && isfinite(o->ratio[1])))
        return hs_fail(err, HS_ERR_ARGUMENT,
                       "crop ratio (%g, %g): need 0 < min <= max (default 3/4, 4/3)",
                       o->ratio[0], o->ratio[1]);
    return HS_OK;
}

/* Python's int(round(x)) for x >= 0 (halves to even), in the default rounding mode. */
static int round_half_even(double x) { return (int)nearbyint(x); }

hs_crop_box hs_random_resized_crop_params(int width, int height, const double scale[2],
                                          const double ratio[2], const hs_crop_draws *d) {
    const double area = (double)height * (double)width;
    /* torch.log(torch.tensor(ratio)): float32 logs of the float32 ratios */
    const float log_lo = logf((float)ratio[0]), log_hi = logf((float)ratio[1]);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target_area = area * (double)d->uniform(d->ctx, (float)scale[0], (float)scale[1]);
        double aspect = (double)expf(d->uniform(d->ctx, log_lo, log_hi));
        int w = round_half_even(sqrt(target_area * aspect));
        int h = round_half_even(sqrt(target_area / aspect));
        if (0 < w && w <= width && 0 < h && h <= height) {
            hs_crop_box box;
            box.top = (int)d->randint(d->ctx, 0, height - h + 1);
            box.left = (int)d->randint(d->ctx, 0, width - w + 1);
            box.height = h;
            box.width = w;
            return box;
        }
    }
    /* the central crop fallback */
    double in_ratio = (double)width / (double)height;
    int w, h;
    if (in_ratio < ratio[0]) {
        w = width;
        h = round_half_even(w / ratio[0]);
    } else if (in_ratio > ratio[1]) {
        h = height;
        w = round_half_even(h * ratio[1]);
    } else {
        w = width;
        h = height;
    }
    hs_crop_box box = {(height - h) / 2, (width - w) / 2, h, w};
    return box;
}

static float rng_uniform(void *ctx, float lo, float hi) {
    float u = hs_rng_uniform(ctx);
    return u * (hi - lo) + lo;
}

static int64_t rng_randint(void *ctx, int64_t lo, int64_t hi) {
    return lo + (int64_t)hs_rng_below(ctx, (uint64_t)(hi - lo));
}

hs_crop_box hs_random_resized_crop_rng(int width, int height, const hs_augment_options *o,
                                       hs_rng *rng) {
    hs_crop_draws d = {rng_uniform, rng_randint, rng};
    return hs_random_resized_crop_params(width, height, o->scale, o->ratio, &d);
}

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Each step mixes in one coordinate, so (epoch, index) pairs never collide by addition. */
static uint64_t stream_seed(uint64_t seed, uint64_t domain, int epoch, int64_t index) {
    uint64_t h = mix64(seed ^ domain);
    h = mix64(h + 0x9e3779b97f4a7c15ull * ((uint64_t)(uint32_t)epoch + 1));
    return mix64(h + 0xd1b54a32d192ed03ull * ((uint64_t)index + 1));
}

uint64_t hs_augment_sample_seed(uint64_t seed, int epoch, int64_t sample) {
    return stream_seed(seed, 0x5a4d504c45ull /* "SAMPLE" */, epoch, sample);
}

uint64_t hs_augment_batch_seed(uint64_t seed, int epoch, int64_t batch) {
    return stream_seed(seed, 0x4241544348ull /* "BATCH" */, epoch, batch);
}

void hs_image_flip_horizontal(hs_image *img) {
    for (int y = 0; y < img->height; y++) {
        uint8_t *row = img->pixels + (size_t)y * img->width * 3u;
        for (int a = 0, b = img->width - 1; a < b; a++, b--)
            for (int c = 0; c < 3; c++) {
                uint8_t t = row[a * 3 + c];
                row[a * 3 + c] = row[b * 3 + c];
                row[b * 3 + c] = t;
            }
    }
}

void hs_image_to_tensor_fast(const hs_image *img, const float mean[3], const float std[3],
                             float *out) {
    /* the float32 operations of ToTensor (x / 255) then Normalize ((x - m) / s), once per byte
     * value: the same floats as hs_image_to_tensor, without a division per pixel */
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            volatile float x = (float)v / 255.0f;
            lut[c][v] = (x - mean[c]) / std[c];
        }
    const size_t plane = (size_t)img->width * (size_t)img->height;
    const uint8_t *px = img->pixels;
    float *o0 = out, *o1 = out + plane, *o2 = out + 2 * plane;
    for (size_t i = 0; i < plane; i++) {
        o0[i] = lut[0][px[i * 3 + 0]];
        o1[i] = lut[1][px[i * 3 + 1]];
        o2[i] = lut[2][px[i * 3 + 2]];
    }
}

hs_status hs_augment_apply(const hs_image *img, hs_crop_box box, int flip, int size,
                           const float mean[3], const float std[3], float *out, hs_error *err) {
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "augment: empty image");
    if (size <= 0) return hs_fail(err, HS_ERR_ARGUMENT, "augment: invalid size %d", size);
    if (box.top < 0 || box.left < 0 || box.height <= 0 || box.width <= 0 ||
        box.height > img->height - box.top || box.width > img->width - box.left)
        return hs_fail(err, HS_ERR_ARGUMENT,
                       "augment: crop (%d, %d, %d x %d) outside a %d x %d image", box.left, box.top, box.width, box.height, img->width, img->height);
    /* PIL's crop: copy the box out, then resize the whole crop */
    hs_image crop = {box.width, box.height, malloc((size_t)box.width * box.height * 3u)};
    if (!crop.pixels) return hs_fail(err, HS_ERR_NOMEM, "augment: out of memory");
    for (int y = 0; y < box.height; y++)
        memcpy(crop.pixels + (size_t)y * box.width * 3u,
               img->pixels + ((size_t)(box.top + y) * img->width + box.left) * 3u,
               (size_t)box.width * 3u);
    hs_image resized = {0};
    hs_status st = hs_image_resize(&crop, size, size, &resized, err);
    hs_image_free(&crop);
    if (st) return hs_fail_context(err, st, "augment");
    if (flip) hs_image_flip_horizontal(&resized);
    hs_image_to_tensor_fast(&resized, mean, std, out);
    hs_image_free(&resized);
    return HS_OK;
}

hs_status hs_augment_image(const hs_image *img, int size, const hs_augment_options *o,
                           hs_rng *rng, const float mean[3], const float std[3], float *out,
                           hs_crop_box *box_out, int *flipped_out, hs_error *err) {
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "augment: empty image");
    hs_crop_box box = hs_random_resized_crop_rng(img->width, img->height, o, rng);
    /* torch.rand(1) < p, drawn after the crop as RandomHorizontalFlip after RandomResizedCrop */
    int flipped = o->flip ? hs_rng_uniform(rng) < 0.5f : 0;
    if (box_out) *box_out = box;
    if (flipped_out) *flipped_out = flipped;
    return hs_augment_apply(img, box, flipped, size, mean, std, out, err);
}

void hs_smooth_targets(const int *labels, int n, int classes, float eps, float *targets) {
    const float off = eps / (float)classes, on = 1.0f - eps + off;
    for (int b = 0; b < n; b++) {
        float *row = targets + (size_t)b * classes;
        for (int k = 0; k < classes; k++) row[k] = off;
        row[labels[b]] = on;
    }
}

/* rows a and b (a < b) of width m become lam * a + (1 - lam) * b and lam * b + (1 - lam) * a */
static void mix_pair(float *a, float *b, size_t m, float lam) {
    const float mu = 1.0f - lam;
    for (size_t i = 0; i < m; i++) {
        float x = a[i], y = b[i];
        a[i] = x * lam + y * mu;
        b[i] = y * lam + x * mu;
    }
}

void hs_mixup_batch(float *images, size_t image_floats, float *targets, int n, int classes,
                    float lam) {
    for (int i = 0, j = n - 1; i <= j; i++, j--) {
        if (i == j) continue; /* the middle of an odd batch mixes with itself: unchanged */
        mix_pair(images + (size_t)i * image_floats, images + (size_t)j * image_floats,
                 image_floats, lam);
        mix_pair(targets + (size_t)i * classes, targets + (size_t)j * classes, (size_t)classes,
                 lam);
    }
}
