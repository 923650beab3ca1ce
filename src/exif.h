/* EXIF orientation (internal to the image module). */
#ifndef HS_EXIF_H
#define HS_EXIF_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

/* Reads IFD0 tag 0x0112 from TIFF-structured EXIF data (starting at the "II*\0" / "MM\0*"
 * header, i.e. after a JPEG APP1's "Exif\0\0"). Returns 1..8, or 0 when absent or invalid.
 * Every offset is bounds-checked. */
int hs_exif_orientation(const uint8_t *tiff, size_t size);

/* Same, from a JPEG APP1 payload that starts with "Exif\0\0"; 0 when it does not. */
int hs_exif_orientation_app1(const uint8_t *data, size_t size);

/* Applies an orientation as PIL's ImageOps.exif_transpose does (2 mirror, 3 rotate 180,
 * 4 flip, 5 transpose, 6 rotate 270, 7 transverse, 8 rotate 90). Replaces img->pixels;
 * 1, 0 or unknown values leave the image as it is. */
hs_status hs_image_apply_orientation(hs_image *img, int orientation, hs_error *err);

#endif
