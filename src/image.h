/* Images: decode JPEG and PNG into 8-bit RGB, resize, crop and normalise. */
#ifndef HS_IMAGE_H
#define HS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "headstart.h"

/* Refuse images above this many pixels before decoding (decompression bombs); same as
 * PIL's default limit. */
#define HS_IMAGE_MAX_PIXELS 89478485LL

/* Refuse, from the header and before decoding, images whose longer side is more than this
 * many times the shorter. Preprocessing resizes the shorter side to S (256 for the ImageNet
 * backbones) and the longer to S times the ratio, then keeps a centre square: at 100:1 that is
 * a 256 x 25,600 buffer (20 MB) of which 1 % is used, and past it the buffer and the resize
 * kernels grow without serving any network (a 1 x 89,478,485 PNG asked 2.4 GB). Real photos,
 * panoramas included, stay far below. */
#define HS_IMAGE_MAX_ASPECT 100

/* The most filter taps one axis of a resize may have (output side times kernel width, which
 * is 2 * ceil(support * input / output) + 1 when shrinking; support 1 bilinear, 2 bicubic):
 * 4 M taps are 48 MB of kernels. Within the limits above a preprocessing resize needs under
 * 0.6 M (bicubic). */
#define HS_RESIZE_MAX_TAPS (1LL << 22)

typedef struct hs_image {
    int width;
    int height;
    uint8_t *pixels; /* width * height * 3 bytes, RGB interleaved, row-major; owned */
} hs_image;

/* Decodes by content (magic bytes), not by extension. Grayscale, gray+alpha, palette,
 * 16-bit, RGBA and CMYK all become RGB (alpha dropped as PIL's convert("RGB") does); EXIF
 * orientation in JPEGs is applied. */
hs_status hs_image_load(const char *path, hs_image *out, hs_error *err);
hs_status hs_image_decode_memory(const uint8_t *data, size_t size, const char *name,
                                 hs_image *out, hs_error *err);
void hs_image_free(hs_image *img);

/* Resizes as PIL's Image.resize(size, BILINEAR or BICUBIC), pixel for pixel. Refuses
 * (HS_ERR_IMAGE) a resize whose kernels would pass HS_RESIZE_MAX_TAPS on an axis. */
hs_status hs_image_resize_with(const hs_image *src, int width, int height,
                               hs_interpolation interpolation, hs_image *dst, hs_error *err);
/* hs_image_resize_with(..., HS_INTERP_BILINEAR, ...): the resize of training's square
 * inputs and augmentation. */
hs_status hs_image_resize(const hs_image *src, int width, int height, hs_image *dst,
                          hs_error *err);

/* Resize the shorter side to pp->resize_size (keeping aspect, as torchvision's Resize(int),
 * with pp->interpolation),
 * centre-crop input_size x input_size, then write 3 x S x S floats of (x/255 - mean) / std.
 * Refuses (HS_ERR_IMAGE) an image whose resized size would pass HS_IMAGE_MAX_PIXELS. */
hs_status hs_image_preprocess(const hs_image *img, const hs_preprocess *pp, float *out,
                              hs_error *err);

/* Writes the 3 x H x W float tensor (x/255 - mean) / std of an image as it is. */
void hs_image_to_tensor(const hs_image *img, const float mean[3], const float std[3],
                        float *out);

#endif
