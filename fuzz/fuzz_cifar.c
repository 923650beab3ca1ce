/* libFuzzer target: the CIFAR-10 binary parsers. The first byte picks the class count, the
 * rest is a batch (records of 1 label byte + 3072 pixel bytes) and, read as text, a
 * batches.meta.txt. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataset_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > (1u << 20)) return 0;
    int classes = data[0] + 1;
    const uint8_t *batch = data + 1;
    size_t n = size - 1;
    hs_error err;
    size_t records = n / HS_CIFAR_RECORD;
    uint8_t *pixels = malloc(records * HS_CIFAR_PIXELS + 1);
    uint8_t *labels = malloc(records + 1);
    if (hs_cifar_parse_batch(batch, n, classes, "fuzz", pixels, labels, &err) == HS_OK) {
        for (size_t i = 0; i < records; i++)
            if (labels[i] >= classes) abort();
        /* in place, as the reader does it */
        uint8_t *copy = malloc(n);
        memcpy(copy, batch, n);
        if (hs_cifar_parse_batch(copy, n, classes, "fuzz", copy, labels, &err) != HS_OK) abort();
        if (memcmp(copy, pixels, records * HS_CIFAR_PIXELS) != 0) abort();
        free(copy);
    }
    free(pixels);
    free(labels);
    char **names;
    int count;
    if (hs_cifar_parse_meta((const char *)batch, n, "fuzz", &names, &count, &err) == HS_OK) {
        if (count < 1 || count > 256) abort();
        for (int i = 0; i < count; i++) {
            if (!names[i][0]) abort();
            free(names[i]);
        }
        free(names);
    }
    return 0;
}
