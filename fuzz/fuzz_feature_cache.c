/* libFuzzer target: the feature cache reader on arbitrary entries. The input is the body of
 * an entry (rows, labels, indexes, header) followed by 40 bytes of footer fields (version,
 * precision, count, dim, header offset and size); the target adds the magic and a correct
 * checksum, so the fuzzer reaches every check behind it rather than stopping at SHA-256.
 * Seeds: fuzz/make-feature-cache-corpus.sh. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "feature_cache.h"
#include "hash.h"

#define KEY "format=1\nbackbone=fuzz\n"
enum { FIELDS = 40, DIM = 3 }; /* DIM: the row width the "network" gives */

static char sample_names[4][8] = {"a.png", "b.png", "c.png", "d.png"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char dir[64] = "", path[200];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/fuzz_feature_cache.XXXXXX");
        if (!mkdtemp(dir)) abort();
        unsigned char digest[32];
        char hex[65];
        hs_sha256 *h = hs_sha256_new();
        hs_sha256_update(h, KEY, strlen(KEY));
        hs_sha256_finish(h, digest);
        hs_sha256_hex(digest, hex);
        snprintf(path, sizeof path, "%s/%.32s.hsf", dir, hex);
    }
    if (size < FIELDS) return 0;
    size_t body = size - FIELDS;
    unsigned char digest[32];
    hs_sha256 *h = hs_sha256_new();
    hs_sha256_update(h, data, body);
    hs_sha256_finish(h, digest);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(data, 1, body, f);
    fwrite("HSFCACHE", 1, 8, f);
    fwrite(data + body, 1, FIELDS, f);
    fwrite(digest, 1, 32, f);
    fclose(f);

    hs_sample samples[4];
    for (int i = 0; i < 4; i++)
        samples[i] = (hs_sample){HS_SAMPLE_FILE, i % 2, sample_names[i], 1, 1, NULL, 0, 0, 0};
    char *classes[] = {"x", "y"};
    hs_dataset ds = {0};
    ds.class_names = classes;
    ds.class_count = 2;
    ds.samples = samples;
    ds.count = 4;
    hs_feature_set out;
    int hit = 0;
    char why[600];
    hs_error err;
    if (hs_cache_lookup(dir, KEY, "fuzz (train)", &ds, DIM, &out, &hit, why, sizeof why, &err) ==
            HS_OK &&
        hit) {
        /* A hit keeps every promise the caller relies on; anything else is a bug. */
        if (out.dim != DIM || out.count < 0 || out.count + out.failed_count != ds.count) abort();
        float row[DIM];
        for (int i = 0; i < out.count; i++) {
            if (out.labels[i] < 0 || out.labels[i] >= ds.class_count ||
                out.sample_index[i] < 0 || out.sample_index[i] >= ds.count)
                abort();
            hs_feature_range(&out, i, 1, row);
        }
        hs_feature_set_free(&out);
    }
    unlink(path);
    return 0;
}
