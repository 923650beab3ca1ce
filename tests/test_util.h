/* Helpers shared by the tests: fixtures, the deterministic input, temporary folders. */
#ifndef HS_TEST_UTIL_H
#define HS_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rng.h"
#include "safetensors.h"

/* tools/fixture_io.py's deterministic_input: x[i] = sin(0.37 i) * 1.7 in double, as float. */
static inline float *test_deterministic_input(long count) {
    float *x = malloc((size_t)count * sizeof(float));
    for (long i = 0; i < count; i++) x[i] = (float)(sin(0.37 * (double)i) * 1.7);
    return x;
}

/* count zeroed floats (at least one), or exits: tests treat out of memory as a failure. */
static inline float *test_alloc_floats(int64_t count) {
    float *p = calloc((size_t)(count > 0 ? count : 1), sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* count floats drawn uniformly from [lo, hi) by rng. */
static inline float *test_random_floats(hs_rng *rng, int64_t count, float lo, float hi) {
    float *p = test_alloc_floats(count);
    for (int64_t i = 0; i < count; i++) p[i] = hs_rng_range(rng, lo, hi);
    return p;
}

static inline int test_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Loads a fixture or exits with a clear message (a missing fixture is a broken checkout). */
static inline void test_load_fixture(const char *path, hs_state_dict *sd) {
    hs_error err = {0};
    hs_sd_init(sd);
    if (hs_safetensors_load(path, sd, &err)) {
        fprintf(stderr, "cannot load fixture %s: %s\n", path, err.message);
        exit(1);
    }
}

static inline const hs_sd_entry *test_entry(const hs_state_dict *sd, const char *name) {
    const hs_sd_entry *e = hs_sd_find(sd, name);
    if (!e) {
        fprintf(stderr, "fixture has no tensor '%s'\n", name);
        exit(1);
    }
    return e;
}

/* Writes text to path; 0 on success. */
static inline int test_write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* A fresh temporary folder under the build tree for one test. */
static inline void test_make_dir(const char *path) {
    mkdir(HS_TEST_TMP_DIR, 0755);
    mkdir(path, 0755);
}

#endif
