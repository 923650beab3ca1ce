/* libFuzzer target: JPEG / PNG decoding (with EXIF orientation), then a small resize and the
 * preprocessing of whatever decoded. */
#include <stddef.h>
#include <stdint.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hs_image img;
    hs_error err;
    if (hs_image_decode_memory(data, size, "fuzz", &img, &err) != HS_OK) return 0;
    /* keep the follow-up work small: only for small pictures */
    if ((long long)img.width * img.height <= 1 << 16) {
        hs_image out;
        if (hs_image_resize(&img, 7, 5, &out, &err) == HS_OK) hs_image_free(&out);
        hs_preprocess pp = {8, 9, {0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}};
        float tensor[3 * 8 * 8];
        hs_image_preprocess(&img, &pp, tensor, &err);
    }
    hs_image_free(&img);
    return 0;
}
