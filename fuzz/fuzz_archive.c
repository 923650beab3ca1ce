/* libFuzzer target: a data set read from an archive in memory (tar, gzip, zip through
 * libarchive), its layout (class folders, train/val, CIFAR-10 batches), split and subsets,
 * then the first samples loaded. Lower member limits keep each run small. */
#include <stddef.h>
#include <stdint.h>

#include "dataset_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hs_dataset_member_limit = 1 << 20;
    hs_dataset_total_limit = 8 << 20;
    hs_dataset_options o = {0.25, size, (int)(size % 5), (int)(size % 3)};
    hs_dataset train, val;
    hs_error err;
    int eval = size % 7 == 0;
    if (hs_dataset_open_archive_memory(data, size, "fuzz.tar", &o, eval, &train, &val, &err) ==
        HS_OK) {
        for (int i = 0; i < train.count && i < 4; i++) {
            hs_image img;
            if (hs_dataset_load_image(&train, i, &img, &err) == HS_OK) hs_image_free(&img);
        }
        hs_dataset_free(&train);
        if (!eval) hs_dataset_free(&val);
    } else {
        hs_dataset_free(&train);
        if (!eval) hs_dataset_free(&val);
    }
    return 0;
}
