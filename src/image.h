/* Images: decode JPEG and PNG into 8-bit RGB, resize, crop and normalise. */
#ifndef HS_IMAGE_H
#define HS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "headstart.h"

/* Refuse images above this many pixels before decoding (decompression bombs); same as
 * PIL's default limit. */
#define HS_IMAGE_MAX_PIXELS 89478485LL

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

/* Resizes with an antialiased bilinear (triangle) filter, as PIL's Image.resize(BILINEAR). */
hs_status hs_image_resize(const hs_image *src, int width, int height, hs_image *dst,
                          hs_error *err);

/* Resize the shorter side to pp->resize_size (keeping aspect, as torchvision's Resize(int)),
 * centre-crop input_size x input_size, then write 3 x S x S floats of (x/255 - mean) / std. */
hs_status hs_image_preprocess(const hs_image *img, const hs_preprocess *pp, float *out,
                              hs_error *err);

/* Writes the 3 x H x W float tensor (x/255 - mean) / std of an image as it is. */
void hs_image_to_tensor(const hs_image *img, const float mean[3], const float std[3],
                        float *out);

#endif
