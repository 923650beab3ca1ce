/* libFuzzer target: the feature cache reader on arbitrary entries. The input is the body of
 * an entry (rows, labels, indexes, header) followed by 40 bytes of footer fields (version,
 * precision, count, dim, header offset and size); the target adds the magic and a correct
 * checksum, so the fuzzer reaches every check behind it rather than stopping at SHA-256. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "feature_cache.h"
#include "hash.h"

#define KEY "format=1\nbackbone=fuzz\n"
enum { FIELDS = 40 };

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
    if (hs_cache_lookup(dir, KEY, "fuzz (train)", &ds, &out, &hit, why, sizeof why, &err) == HS_OK &&
        hit) {
        float row[1 << 10];
        if (out.count > 0 && out.dim <= (int)(sizeof row / sizeof row[0]))
            hs_feature_range(&out, out.count - 1, 1, row);
        hs_feature_set_free(&out);
    }
    unlink(path);
    return 0;
}
