/* The feature cache: half-precision conversions (scalar against F16C, known values), a
 * written entry read back exactly, every key field invalidating it with the reason named,
 * half-written, truncated or altered files never used, forged entries (a valid checksum over
 * lies: another row width, precision, row count or a longer key) refused, and the managing
 * functions behind 'headstart cache' (list, prune by age and size, clear). */
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "feature_cache.h"
#include "fileutil.h"
#include "half.h"
#include "rng.h"

#define DIR_ HS_TEST_TMP_DIR "/feature_cache"

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void test_half(void) {
    /* Known values: exact, rounding to even, overflow, subnormals, signed zero. */
    static const struct { float f; uint16_t h; } known[] = {
        {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff}, {65519.0f, 0x7bff},
        {65520.0f, 0x7c00}, {1e6f, 0x7c00}, {0x1p-24f, 0x0001}, {0x1p-25f, 0x0000},
        {0x1.8p-25f, 0x0001}, {0x1p-14f, 0x0400}, {-0.0f, 0x8000}, {INFINITY, 0x7c00},
        {1.0f + 0x1p-11f, 0x3c00}, {1.0f + 0x1.8p-11f, 0x3c01}, {0.1f, 0x2e66}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        CHECK_MSG(hs_float_to_half(known[i].f) == known[i].h, "%a -> %04x, expected %04x",
                  known[i].f, hs_float_to_half(known[i].f), known[i].h);
    CHECK((hs_float_to_half(NAN) & 0x7c00) == 0x7c00 && (hs_float_to_half(NAN) & 0x03ff));

    /* Every half to float: exact (half -> float loses nothing), and back again. */
    static uint16_t all[65536];
    static float wide[65536];
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    hs_half_to_floats(all, 65536, wide);
    int mismatches = 0;
    for (int i = 0; i < 65536; i++) {
        float scalar = hs_half_to_float((uint16_t)i);
        int nan = isnan(scalar);
        if (nan != isnan(wide[i]) || (!nan && bits_of(scalar) != bits_of(wide[i]))) mismatches++;
        if (!nan && hs_float_to_half(scalar) != (uint16_t)i) mismatches++;
    }
    CHECK_MSG(mismatches == 0, "%d half values disagree", mismatches);

    /* Random floats of every magnitude: the bulk (F16C) path equals the scalar one. */
    hs_rng rng;
    hs_rng_seed(&rng, 11);
    enum { N = 1 << 16 };
    static float in[N];
    static uint16_t fast[N];
    for (int i = 0; i < N; i++) {
        uint32_t u = (uint32_t)hs_rng_below(&rng, 1ull << 32);
        in[i] = isnan(float_of(u)) ? 0.5f : float_of(u);
        if (i % 3 == 0) in[i] = hs_rng_range(&rng, -8.0f, 8.0f);
    }
    hs_floats_to_half(in, N, fast);
    mismatches = 0;
    for (int i = 0; i < N; i++) mismatches += fast[i] != hs_float_to_half(in[i]);
    CHECK_MSG(mismatches == 0, "%d floats convert differently in bulk", mismatches);
}

/* ---- a data set and features to cache ------------------------------------------------------ */

enum { SAMPLES = 6, DIM = 5 };
static char *names[] = {"a", "b"};
static char sample_names[SAMPLES][16];
static hs_sample samples[SAMPLES];
static const float mean[3] = {0.5f, 0.5f, 0.5f}, stdev[3] = {0.25f, 0.25f, 0.25f};

static hs_dataset make_dataset(void) {
    for (int i = 0; i < SAMPLES; i++) {
        snprintf(sample_names[i], sizeof sample_names[i], "img%d.png", i);
        samples[i] = (hs_sample){HS_SAMPLE_FILE, i % 2, sample_names[i], 100 + i, 1700000000 + i,
                                 NULL, 0, 0, 0};
    }
    hs_dataset ds = {0};
    ds.class_names = names;
    ds.class_count = 2;
    ds.samples = samples;
    ds.count = SAMPLES;
    return ds;
}

static hs_cache_key_input make_input(const hs_dataset *ds) {
    hs_cache_key_input in = {"efficientnet_lite0", "abc123", 60, "_fc", 224, mean, stdev,
                             HS_CACHE_F16, 0, ds, "/data (train)", HS_INTERP_BILINEAR};
    return in;
}

static char *key_of(const hs_cache_key_input *in) {
    char *key = NULL;
    hs_error err = {0};
    CHECK_MSG(hs_cache_key_make(in, &key, &err) == HS_OK, "%s", err.message);
    return key;
}

/* Rows for samples 0, 2..5 (sample 1 "failed"), written in two appends. */
static float rows[SAMPLES * DIM];
static int row_labels[SAMPLES], row_index[SAMPLES];
static char *failed_messages[] = {"img1.png: not an image"};

static hs_feature_set written_set(void) {
    hs_feature_set set = {0};
    int n = 0;
    for (int s = 0; s < SAMPLES; s++) {
        if (s == 1) continue;
        row_labels[n] = samples[s].label;
        row_index[n] = s;
        n++;
    }
    for (int i = 0; i < n * DIM; i++) rows[i] = (float)(i * 0.37 - 3.0);
    set.count = n;
    set.dim = DIM;
    set.labels = row_labels;
    set.sample_index = row_index;
    set.failed = failed_messages;
    set.failed_count = 1;
    return set;
}

/* Writes set's rows, dim values each (the rows array holds enough for dim <= 2 DIM). */
static void write_set(const char *key, hs_cache_precision precision, int dim,
                      const hs_feature_set *set) {
    static float wide[SAMPLES * DIM * 2];
    for (int i = 0; i < SAMPLES * DIM * 2; i++) wide[i] = (float)(i * 0.37 - 3.0);
    hs_cache_writer *w = NULL;
    hs_error err = {0};
    CHECK_MSG(hs_cache_writer_open(DIR_, key, "/data (train)", dim, precision, &w, &err) ==
                  HS_OK, "%s", err.message);
    if (!w) return;
    const float *values = dim == DIM ? rows : wide;
    CHECK(hs_cache_writer_append(w, values, 2, &err) == HS_OK);
    CHECK(hs_cache_writer_append(w, values + 2 * dim, set->count - 2, &err) == HS_OK);
    CHECK_MSG(hs_cache_writer_commit(w, set, &err) == HS_OK, "%s", err.message);
}

static void write_entry(const char *key, hs_cache_precision precision) {
    hs_feature_set set = written_set();
    write_set(key, precision, DIM, &set);
}

/* Looks key up; returns hit and leaves the reason in why. */
static int lookup(const char *key, const hs_dataset *ds, hs_feature_set *out, char *why) {
    int hit = -1;
    hs_error err = {0};
    CHECK_MSG(hs_cache_lookup(DIR_, key, "/data (train)", ds, DIM, out, &hit, why, 600, &err) ==
                  HS_OK, "%s", err.message);
    return hit;
}

static void test_round_trip(hs_cache_precision precision) {
    CHECK(system("rm -rf " DIR_) == 0);
    CHECK(hs_make_dirs(DIR_, NULL) == HS_OK);
    hs_dataset ds = make_dataset();
    hs_cache_key_input in = make_input(&ds);
    in.precision = precision;
    char *key = key_of(&in), why[600];
    hs_feature_set got;
    CHECK(lookup(key, &ds, &got, why) == 0);
    CHECK_MSG(strstr(why, "no cached features"), "%s", why);
    write_entry(key, precision);
    CHECK_MSG(lookup(key, &ds, &got, why) == 1, "%s", why);
    hs_feature_set expected = written_set();
    CHECK(got.count == expected.count && got.dim == DIM);
    if (got.count == expected.count) {
        float back[SAMPLES * DIM];
        hs_feature_range(&got, 0, got.count, back);
        for (int i = 0; i < got.count * DIM; i++) {
            float want = precision == HS_CACHE_F16 ? hs_half_to_float(hs_float_to_half(rows[i]))
                                                   : rows[i];
            CHECK_MSG(back[i] == want, "row value %d: %g vs %g", i, back[i], want);
        }
        int pick[2] = {3, 0};
        float two[2 * DIM];
        hs_feature_rows(&got, pick, 2, two);
        CHECK(memcmp(two, back + 3 * DIM, DIM * sizeof(float)) == 0);
        CHECK(memcmp(two + DIM, back, DIM * sizeof(float)) == 0);
        CHECK(memcmp(got.labels, row_labels, (size_t)got.count * sizeof(int)) == 0);
        CHECK(memcmp(got.sample_index, row_index, (size_t)got.count * sizeof(int)) == 0);
        CHECK(got.failed_count == 1 && strcmp(got.failed[0], failed_messages[0]) == 0);
    }
    hs_feature_set_free(&got);
    free(key);
}

/* Each key field, changed, misses and is named as the reason. */
static void test_invalidation(void) {
    CHECK(system("rm -rf " DIR_) == 0);
    CHECK(hs_make_dirs(DIR_, NULL) == HS_OK);
    hs_dataset ds = make_dataset();
    hs_cache_key_input base = make_input(&ds);
    char *key = key_of(&base);
    write_entry(key, HS_CACHE_F16);
    free(key);
    static const float other_mean[3] = {0.5f, 0.5f, 0.6f};
    struct { const char *what, *reason; } cases[] = {
        {"backbone", "backbone"},   {"weights", "weights"},      {"boundary", "frozen boundary"},
        {"img_size", "image size"}, {"mean", "normalisation mean"}, {"precision", "precision"},
        {"class", "class map"},     {"bf16", "compute precision"},     {"size", "file list (names/sizes/modification times)"},
        {"mtime", "file list (names/sizes"}, {"label", "file list"},
        {"count", "file list (6 -> 5 images)"}, {"interpolation", "resize"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hs_dataset changed = make_dataset();
        char *other_names[] = {"a", "c"};
        hs_cache_key_input in = base;
        in.dataset = &changed;
        const char *w = cases[i].what;
        if (!strcmp(w, "backbone")) in.backbone = "efficientnet_lite1";
        if (!strcmp(w, "weights")) in.weights_sha = "abc124";
        if (!strcmp(w, "boundary")) in.boundary = 59;
        if (!strcmp(w, "img_size")) in.img_size = 256;
        if (!strcmp(w, "mean")) in.mean = other_mean;
        if (!strcmp(w, "precision")) in.precision = HS_CACHE_F32;
        if (!strcmp(w, "class")) changed.class_names = other_names;
        if (!strcmp(w, "bf16")) in.bf16 = 1;
        if (!strcmp(w, "interpolation")) in.interpolation = HS_INTERP_BICUBIC;
        if (!strcmp(w, "size")) samples[3].size++;
        if (!strcmp(w, "mtime")) samples[4].mtime++;
        if (!strcmp(w, "label")) samples[5].label = 0;
        if (!strcmp(w, "count")) changed.count = 5;
        key = key_of(&in);
        char why[600];
        hs_feature_set got;
        CHECK_MSG(lookup(key, &changed, &got, why) == 0, "%s changed but the cache was used", w);
        CHECK_MSG(strstr(why, cases[i].reason) != NULL, "%s: reason '%s'", w, why);
        /* Nothing else is named. */
        CHECK_MSG(!strchr(why, ','), "%s: reason '%s'", w, why);
        free(key);
    }
    /* The unchanged key still hits. */
    ds = make_dataset();
    key = key_of(&base);
    char why[600];
    hs_feature_set got;
    CHECK_MSG(lookup(key, &ds, &got, why) == 1, "%s", why);
    hs_feature_set_free(&got);
    free(key);
}

static void entry_file(const char *key, char *path, size_t size) {
    hs_dataset ds = make_dataset();
    hs_feature_set got;
    char why[600];
    path[0] = '\0';
    if (lookup(key, &ds, &got, why) == 1) snprintf(path, size, "%s", why); /* why: the path */
    hs_feature_set_free(&got);
}

/* A killed writer's temporary file, a truncated file or a changed byte is never used. */
static void test_damage(void) {
    CHECK(system("rm -rf " DIR_) == 0);
    CHECK(hs_make_dirs(DIR_, NULL) == HS_OK);
    hs_dataset ds = make_dataset();
    hs_cache_key_input in = make_input(&ds);
    char *key = key_of(&in), why[600], path[700];
    hs_feature_set got;

    /* Half-written: rows appended, never committed. */
    hs_cache_writer *w = NULL;
    hs_error err = {0};
    CHECK(hs_cache_writer_open(DIR_, key, "/data (train)", DIM, HS_CACHE_F16, &w, &err) == HS_OK);
    CHECK(hs_cache_writer_append(w, rows, 3, &err) == HS_OK);
    CHECK(lookup(key, &ds, &got, why) == 0);
    hs_cache_writer_abort(w);
    /* A dead process's temporary file is cleaned up by the next lookup. */
    CHECK(system("touch " DIR_ "/0123.hsf.tmp-999999999") == 0);
    CHECK(lookup(key, &ds, &got, why) == 0);
    CHECK(!hs_path_exists(DIR_ "/0123.hsf.tmp-999999999"));

    /* More rows written than the set has: the commit fails and leaves nothing. */
    CHECK(hs_cache_writer_open(DIR_, key, "/data (train)", DIM, HS_CACHE_F16, &w, &err) == HS_OK);
    CHECK(hs_cache_writer_append(w, rows, 6, &err) == HS_OK);
    hs_feature_set set = written_set();
    CHECK(hs_cache_writer_commit(w, &set, &err) == HS_ERR_INTERNAL);
    CHECK(lookup(key, &ds, &got, why) == 0);

    struct { const char *what, *command, *reason; } damage[] = {
        {"truncated", "truncate -s -1 '%s'", "truncated"},
        {"cut in half", "truncate -s 40 '%s'", "truncated"},
        {"extended", "echo x >> '%s'", "not a headstart feature cache"},
        {"a changed value", "printf '\\377' | dd of='%s' bs=1 seek=3 conv=notrunc 2>/dev/null",
         "checksum"},
        {"a changed footer", "truncate -s -80 '%1$s' && head -c 80 /dev/zero >> '%1$s'",
         "not a headstart feature cache"}};
    for (size_t i = 0; i < sizeof damage / sizeof damage[0]; i++) {
        write_entry(key, HS_CACHE_F16);
        entry_file(key, path, sizeof path);
        CHECK(path[0] != '\0');
        char command[1600];
        snprintf(command, sizeof command, damage[i].command, path);
        CHECK(system(command) == 0);
        CHECK_MSG(lookup(key, &ds, &got, why) == 0, "%s file used", damage[i].what);
        CHECK_MSG(strstr(why, "damaged") && strstr(why, damage[i].reason), "%s: %s",
                  damage[i].what, why);
        CHECK_MSG(!hs_path_exists(path), "%s file not removed", damage[i].what);
    }

    /* A FIFO or a link planted under the entry's name (or any entry name) neither blocks
     * the lookup nor is followed: refused and removed. */
    write_entry(key, HS_CACHE_F16);
    entry_file(key, path, sizeof path);
    CHECK(path[0] && unlink(path) == 0 && mkfifo(path, 0644) == 0);
    CHECK(mkfifo(DIR_ "/00000000000000000000000000000000.hsf", 0644) == 0);
    alarm(60); /* a blocked open fails the test instead of hanging it */
    CHECK(lookup(key, &ds, &got, why) == 0);
    CHECK_MSG(strstr(why, "not a file"), "%s", why);
    CHECK(!hs_path_exists(path));
    CHECK(lookup(key, &ds, &got, why) == 0); /* a miss: scans the folder, FIFO included */
    hs_cache_listing fifo_listing;
    CHECK(hs_cache_list(DIR_, &fifo_listing, NULL) == HS_OK && fifo_listing.count == 0);
    hs_cache_listing_free(&fifo_listing);
    alarm(0);
    unlink(DIR_ "/00000000000000000000000000000000.hsf");
    CHECK(symlink("/dev/zero", path) == 0);
    CHECK(lookup(key, &ds, &got, why) == 0);
    CHECK_MSG(strstr(why, "not a file"), "%s", why);

    /* An entry whose rows do not match the data set it is read for (here: a label that
     * differs, behind the key's back) is refused by the row checks too. */
    write_entry(key, HS_CACHE_F16);
    hs_dataset relabelled = make_dataset();
    samples[5].label = 0;
    CHECK(lookup(key, &relabelled, &got, why) == 0);
    CHECK_MSG(strstr(why, "do not match"), "%s", why);
    free(key);
}

/* Entries whose checksum is right (their writer computed it) but whose contents break what
 * the key and the caller promise: each is refused, named and removed, and the caller never
 * sees rows it would read past. */
static void test_forged(void) {
    CHECK(system("rm -rf " DIR_) == 0);
    CHECK(hs_make_dirs(DIR_, NULL) == HS_OK);
    hs_dataset ds = make_dataset();
    hs_cache_key_input in = make_input(&ds); /* precision f16 */
    char *key = key_of(&in), why[600], path[700];
    hs_feature_set got;

    /* Rows wider than the network's (as a forged file in a shared cache folder would hold):
     * a caller copying rows into buffers sized for its network would overflow them. */
    hs_feature_set set = written_set();
    write_set(key, HS_CACHE_F16, DIM + 3, &set);
    int hit = lookup(key, &ds, &got, why);
    CHECK_MSG(hit == 0, "an entry of %d values a row was used for a network of %d", DIM + 3, DIM);
    if (hit == 1) {
        float *back = malloc((size_t)SAMPLES * DIM * sizeof(float)); /* sized for DIM */
        hs_feature_range(&got, 0, got.count, back);
        free(back);
        hs_feature_set_free(&got);
    }
    CHECK_MSG(strstr(why, "rows of 8 values where the network gives 5"), "%s", why);
    /* Narrower rows: the rows the caller reads would run into the labels and past the map. */
    write_set(key, HS_CACHE_F16, 1, &set);
    CHECK(lookup(key, &ds, &got, why) == 0);
    CHECK_MSG(strstr(why, "rows of 1 values"), "%s", why);

    /* float32 rows under a key that says f16. */
    write_set(key, HS_CACHE_F32, DIM, &set);
    CHECK(lookup(key, &ds, &got, why) == 0);
    CHECK_MSG(strstr(why, "precision"), "%s", why);

    /* A row missing: fewer rows plus skipped images than the data set has images. */
    hs_feature_set fewer = written_set();
    fewer.count--;
    write_set(key, HS_CACHE_F16, DIM, &fewer);
    CHECK(lookup(key, &ds, &got, why) == 0);
    CHECK_MSG(strstr(why, "4 rows and 1 skipped images for 6 images"), "%s", why);

    /* A longer key (one more line) in a file named for this key. */
    write_entry(key, HS_CACHE_F16);
    entry_file(key, path, sizeof path);
    CHECK(path[0] != '\0');
    unlink(path);
    size_t key_length = strlen(key);
    char *longer = malloc(key_length + 32);
    snprintf(longer, key_length + 32, "%sextra=1\n", key);
    write_entry(longer, HS_CACHE_F16);
    char longer_path[700];
    entry_file(longer, longer_path, sizeof longer_path);
    CHECK(longer_path[0] && rename(longer_path, path) == 0);
    CHECK(lookup(key, &ds, &got, why) == 0);
    CHECK_MSG(strstr(why, "its key does not match its name"), "%s", why);
    free(longer);

    /* All refused entries were removed; an honest one still hits. */
    write_entry(key, HS_CACHE_F16);
    CHECK_MSG(lookup(key, &ds, &got, why) == 1, "%s", why);
    hs_feature_set_free(&got);
    hs_cache_listing listing;
    CHECK(hs_cache_list(DIR_, &listing, NULL) == HS_OK && listing.count == 1);
    hs_cache_listing_free(&listing);
    free(key);
}

static void set_last_use(const char *path, long long when) {
    struct timespec times[2] = {{(time_t)when, 0}, {(time_t)when, 0}};
    CHECK(utimensat(AT_FDCWD, path, times, 0) == 0);
}

/* Three entries (image sizes 224, 256, 288) last used 10 days, 2 days and 1 minute ago. */
static void make_three(long long now, char paths[3][700], char *keys[3]) {
    CHECK(system("rm -rf " DIR_) == 0);
    CHECK(hs_make_dirs(DIR_, NULL) == HS_OK);
    hs_dataset ds = make_dataset();
    static const long long ages[3] = {10 * 86400, 2 * 86400, 60};
    for (int i = 0; i < 3; i++) {
        hs_cache_key_input in = make_input(&ds);
        in.img_size = 224 + 32 * i;
        keys[i] = key_of(&in);
        write_entry(keys[i], HS_CACHE_F16);
        entry_file(keys[i], paths[i], sizeof paths[i]);
        set_last_use(paths[i], now - ages[i]);
    }
}

static void free_keys(char *keys[3]) {
    for (int i = 0; i < 3; i++) free(keys[i]);
}

static void test_manage(void) {
    long long now = (long long)time(NULL);
    char paths[3][700], *keys[3];
    make_three(now, paths, keys);

    /* Listed least recently used first, with what their keys say. */
    hs_cache_listing listing;
    CHECK(hs_cache_list(DIR_, &listing, NULL) == HS_OK);
    CHECK(listing.count == 3);
    long long total = 0;
    for (int i = 0; i < listing.count && i < 3; i++) {
        const hs_cache_entry_info *e = &listing.entries[i];
        struct stat st;
        CHECK(stat(paths[i], &st) == 0);
        CHECK_MSG(strstr(paths[i], e->name) != NULL, "entry %d is %s", i, e->name);
        CHECK(e->img_size == 224 + 32 * i && e->images == 5 && !e->damaged);
        CHECK(strcmp(e->backbone, "efficientnet_lite0") == 0 && strcmp(e->precision, "f16") == 0);
        CHECK(strcmp(e->source, "/data (train)") == 0);
        CHECK(e->bytes == (long long)st.st_size && e->bytes > 0);
        total += e->bytes;
    }
    CHECK(listing.total_bytes == total);
    long long entry_bytes = listing.count ? listing.entries[0].bytes : 0;
    hs_cache_listing_free(&listing);

    /* A hit is a use: the oldest entry, read now, is listed last. */
    hs_dataset ds = make_dataset();
    hs_feature_set got;
    char why[600];
    CHECK(lookup(keys[0], &ds, &got, why) == 1);
    hs_feature_set_free(&got);
    CHECK(hs_cache_list(DIR_, &listing, NULL) == HS_OK && listing.count == 3);
    if (listing.count == 3) {
        CHECK(strstr(paths[0], listing.entries[2].name) != NULL);
        CHECK(listing.entries[2].last_use >= now);
    }
    hs_cache_listing_free(&listing);
    set_last_use(paths[0], now - 10 * 86400);

    /* By age: older than 5 days goes. */
    hs_cache_prune_result r;
    CHECK(hs_cache_prune(DIR_, 5 * 86400, -1, now, &r, NULL) == HS_OK);
    CHECK(r.removed == 1 && r.kept == 2 && r.removed_bytes == entry_bytes);
    CHECK(!hs_path_exists(paths[0]) && hs_path_exists(paths[1]) && hs_path_exists(paths[2]));

    /* By size: the least recently used go until what is left fits. */
    CHECK(hs_cache_prune(DIR_, -1, entry_bytes + entry_bytes / 2, now, &r, NULL) == HS_OK);
    CHECK(r.removed == 1 && r.kept == 1 && r.kept_bytes == entry_bytes);
    CHECK(!hs_path_exists(paths[1]) && hs_path_exists(paths[2]));
    CHECK(hs_cache_prune(DIR_, -1, entry_bytes, now, &r, NULL) == HS_OK);
    CHECK(r.removed == 0 && r.kept == 1);
    free_keys(keys);

    /* A damaged entry goes with any prune; a stale temporary file goes; a live writer's
     * (this process holds its lock through another open file) stays. */
    make_three(now, paths, keys);
    CHECK(system("echo junk > " DIR_ "/0123456789abcdef0123456789abcdef.hsf") == 0);
    CHECK(system("touch " DIR_ "/.0123.hsf.tmp.abcdefABCDEF") == 0);
    hs_cache_writer *live = NULL;
    CHECK(hs_cache_writer_open(DIR_, keys[0], "/data (train)", DIM, HS_CACHE_F16, &live, NULL) ==
          HS_OK);
    CHECK(hs_cache_list(DIR_, &listing, NULL) == HS_OK);
    CHECK(listing.count == 4 && listing.count && listing.entries[0].damaged);
    hs_cache_listing_free(&listing);
    CHECK(hs_cache_prune(DIR_, 30 * 86400, -1, now, &r, NULL) == HS_OK);
    CHECK(r.removed == 1 && r.kept == 3);
    CHECK(!hs_path_exists(DIR_ "/0123456789abcdef0123456789abcdef.hsf"));
    CHECK(!hs_path_exists(DIR_ "/.0123.hsf.tmp.abcdefABCDEF"));

    /* Clear: every entry; the live writer still commits. */
    CHECK(hs_cache_prune(DIR_, -1, 0, now, &r, NULL) == HS_OK);
    CHECK(r.removed == 3 && r.kept == 0 && r.kept_bytes == 0);
    hs_feature_set set = written_set();
    hs_error err = {0};
    CHECK(hs_cache_writer_append(live, rows, set.count, &err) == HS_OK);
    CHECK_MSG(hs_cache_writer_commit(live, &set, &err) == HS_OK, "%s", err.message);
    CHECK(hs_cache_list(DIR_, &listing, NULL) == HS_OK && listing.count == 1);
    hs_cache_listing_free(&listing);
    free_keys(keys);

    /* A cache folder that does not exist yet is an empty cache. */
    CHECK(hs_cache_list(DIR_ "/none", &listing, NULL) == HS_OK && listing.count == 0);
    CHECK(hs_cache_prune(DIR_ "/none", -1, 0, now, &r, NULL) == HS_OK && r.removed == 0);
}

int main(void) {
    CHECK(hs_make_dirs(HS_TEST_TMP_DIR, NULL) == HS_OK);
    test_half();
    test_round_trip(HS_CACHE_F16);
    test_round_trip(HS_CACHE_F32);
    test_invalidation();
    test_damage();
    test_forged();
    test_manage();
    return check_finish("test_feature_cache");
}
