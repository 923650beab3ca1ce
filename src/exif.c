/* EXIF orientation: a minimal, bounds-checked TIFF IFD0 reader and the eight transposes. */
#include "exif.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

static uint32_t rd16(const uint8_t *p, int le) {
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 : (uint32_t)p[0] << 8 | (uint32_t)p[1];
}

static uint32_t rd32(const uint8_t *p, int le) {
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                    (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
                    (uint32_t)p[3];
}

int hs_exif_orientation(const uint8_t *tiff, size_t size) {
    if (!tiff || size < 8) return 0;
    int le;
    if (tiff[0] == 'I' && tiff[1] == 'I') le = 1;
    else if (tiff[0] == 'M' && tiff[1] == 'M') le = 0;
    else return 0;
    if (rd16(tiff + 2, le) != 42) return 0;
    uint32_t ifd = rd32(tiff + 4, le);
    if (ifd > size || size - ifd < 2) return 0;
    uint32_t count = rd16(tiff + ifd, le);
    size_t pos = (size_t)ifd + 2;
    for (uint32_t i = 0; i < count; i++, pos += 12) {
        if (pos > size || size - pos < 12) return 0;
        const uint8_t *e = tiff + pos;
        if (rd16(e, le) != 0x0112) continue;
        uint32_t type = rd16(e + 2, le);
        uint32_t n = rd32(e + 4, le);
        if (n != 1) return 0; /* PIL reads a tuple then, which is no orientation */
        uint32_t v;
        switch (type) {
        case 1: v = e[8]; break;             /* BYTE */
        case 3: v = rd16(e + 8, le); break;  /* SHORT, the usual */
        case 4: v = rd32(e + 8, le); break;  /* LONG */
        default: return 0;
        }
        return v >= 1 && v <= 8 ? (int)v : 0;
    }
    return 0;
}

int hs_exif_orientation_app1(const uint8_t *data, size_t size) {
    if (!data || size < 6 || memcmp(data, "Exif\0\0", 6) != 0) return 0;
    return hs_exif_orientation(data + 6, size - 6);
}

hs_status hs_image_apply_orientation(hs_image *img, int orientation, hs_error *err) {
    if (orientation < 2 || orientation > 8) return HS_OK;
    const int w = img->width, h = img->height;
    const int swap = orientation >= 5; /* 5..8 exchange width and height */
    const int ow = swap ? h : w, oh = swap ? w : h;
    uint8_t *out = malloc((size_t)w * (size_t)h * 3u);
    if (!out) return hs_fail(err, HS_ERR_NOMEM, "out of memory rotating a %d x %d image", w, h);
    const uint8_t *in = img->pixels;
    for (int y = 0; y < oh; y++) {
        for (int x = 0; x < ow; x++) {
            int sx, sy;
            switch (orientation) {
            case 2: sx = w - 1 - x; sy = y; break;              /* FLIP_LEFT_RIGHT */
            case 3: sx = w - 1 - x; sy = h - 1 - y; break;      /* ROTATE_180 */
            case 4: sx = x; sy = h - 1 - y; break;              /* FLIP_TOP_BOTTOM */
            case 5: sx = y; sy = x; break;                      /* TRANSPOSE */
            case 6: sx = y; sy = h - 1 - x; break;              /* ROTATE_270 */
            case 7: sx = w - 1 - y; sy = h - 1 - x; break;      /* TRANSVERSE */
            default: sx = w - 1 - y; sy = x; break;             /* 8: ROTATE_90 */
            }
            const uint8_t *s = in + ((size_t)sy * (size_t)w + (size_t)sx) * 3u;
            uint8_t *d = out + ((size_t)y * (size_t)ow + (size_t)x) * 3u;
            d[0] = s[0];
            d[1] = s[1];
            d[2] = s[2];
        }
    }
    free(img->pixels);
    img->pixels = out;
    img->width = ow;
    img->height = oh;
    return HS_OK;
}
