/* CIFAR-10 binary batches: records of one label byte and a 32x32 image as three planes (R, G,
 * B), turned into interleaved RGB pixels. */
#include <stdlib.h>
#include <string.h>

#include "dataset_internal.h"
#include "error.h"

const char *const hs_cifar10_default_names[10] = {"airplane", "automobile", "bird", "cat",
                                                  "deer",     "dog",        "frog", "horse",
                                                  "ship",     "truck"};

hs_status hs_cifar_parse_batch(const uint8_t *data, size_t size, int class_count,
                               const char *name, uint8_t *pixels, uint8_t *labels,
                               hs_error *err) {
    if (size == 0)
        return hs_fail(err, HS_ERR_FORMAT, "%s: an empty CIFAR-10 batch", name);
    if (size % HS_CIFAR_RECORD != 0)
        return hs_fail(err, HS_ERR_FORMAT,
                       "%s: %zu bytes is not a whole number of CIFAR-10 records of %d bytes "
                       "(truncated or not a CIFAR-10 batch)", name, size, HS_CIFAR_RECORD);
    size_t n = size / HS_CIFAR_RECORD;
    for (size_t i = 0; i < n; i++) { /* check every label before touching anything */
        if (data[i * HS_CIFAR_RECORD] >= class_count)
            return hs_fail(err, HS_ERR_FORMAT,
                           "%s: record %zu has label %d, but there are %d classes", name, i,
                           data[i * HS_CIFAR_RECORD], class_count);
    }
    uint8_t plane[HS_CIFAR_PIXELS];
    /* Record i is read before output i is written, and output i ends before record i + 1
     * starts, so the conversion also works in place. */
    for (size_t i = 0; i < n; i++) {
        const uint8_t *rec = data + i * HS_CIFAR_RECORD;
        uint8_t label = rec[0];
        memcpy(plane, rec + 1, HS_CIFAR_PIXELS);
        uint8_t *out = pixels + i * HS_CIFAR_PIXELS;
        for (int p = 0; p < 1024; p++) {
            out[3 * p + 0] = plane[p];
            out[3 * p + 1] = plane[1024 + p];
            out[3 * p + 2] = plane[2048 + p];
        }
        labels[i] = label;
    }
    return HS_OK;
}

hs_status hs_cifar_parse_meta(const char *text, size_t size, const char *name, char ***names,
                              int *count, hs_error *err) {
    *names = NULL;
    *count = 0;
    char **out = NULL;
    int n = 0;
    size_t i = 0;
    while (i < size) {
        size_t start = i;
        while (i < size && text[i] != '\n') i++;
        size_t end = i;
        if (i < size) i++; /* the newline */
        while (end > start && (text[end - 1] == '\r' || text[end - 1] == ' ' ||
                               text[end - 1] == '\t'))
            end--;
        if (end == start) continue;
        if (memchr(text + start, '\0', end - start)) {
            for (int k = 0; k < n; k++) free(out[k]);
            free(out);
            return hs_fail(err, HS_ERR_FORMAT, "%s: a class name holds a zero byte", name);
        }
        hs_status bad = hs_ds_check_class_name(text + start, end - start, name, err);
        if (bad) {
            for (int k = 0; k < n; k++) free(out[k]);
            free(out);
            return bad;
        }
        if (n == 256) {
            for (int k = 0; k < n; k++) free(out[k]);
            free(out);
            return hs_fail(err, HS_ERR_FORMAT,
                           "%s: more than 256 class names (a label is one byte)", name);
        }
        char **g = realloc(out, (size_t)(n + 1) * sizeof *g);
        char *s = malloc(end - start + 1);
        if (!g || !s) {
            free(s);
            if (g) out = g;
            for (int k = 0; k < n; k++) free(out[k]);
            free(out);
            return hs_fail(err, HS_ERR_NOMEM, "out of memory reading %s", name);
        }
        out = g;
        memcpy(s, text + start, end - start);
        s[end - start] = '\0';
        out[n++] = s;
    }
    if (n == 0) {
        free(out);
        return hs_fail(err, HS_ERR_FORMAT, "%s: no class names (expected one a line)", name);
    }
    *names = out;
    *count = n;
    return HS_OK;
}
