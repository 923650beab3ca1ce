/* Generated data for the training tests: three classes of noisy one-colour images (blue,
 * green, red), 24 x 24 PNGs drawn with cairo, so a classifier can learn them in a few steps. */
#ifndef HS_TEST_COLOUR_IMAGES_H
#define HS_TEST_COLOUR_IMAGES_H

#include <cairo.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "headstart.h"
#include "fileutil.h"
#include "rng.h"

static const double test_colours[3][3] = {{0.1, 0.2, 0.9}, {0.1, 0.8, 0.2}, {0.9, 0.1, 0.1}};

/* A 24 x 24 image of class cls (0..2): 4 x 4 tiles of its colour, each jittered by rng. */
static inline void test_write_colour_image(const char *path, int cls, hs_rng *rng) {
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 24, 24);
    cairo_t *cr = cairo_create(s);
    for (int y = 0; y < 24; y += 4)
        for (int x = 0; x < 24; x += 4) {
            double jitter = hs_rng_range(rng, -0.25f, 0.25f);
            cairo_set_source_rgb(cr, test_colours[cls][0] + jitter,
                                 test_colours[cls][1] + jitter, test_colours[cls][2] + jitter);
            cairo_rectangle(cr, x, y, 4, 4);
            cairo_fill(cr);
        }
    cairo_surface_write_to_png(s, path);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
}

/* Writes data_dir/<names[c]>/NN.png, per_class images of each of the 3 classes, after
 * removing root (a folder that holds data_dir). */
static inline void test_make_colour_classes(const char *root, const char *data_dir,
                                            const char *const names[3], int per_class,
                                            uint64_t seed) {
    hs_rng rng;
    hs_rng_seed(&rng, seed);
    char path[1024];
    snprintf(path, sizeof path, "rm -rf '%s'", root);
    CHECK(system(path) == 0);
    for (int c = 0; c < 3; c++) {
        snprintf(path, sizeof path, "%s/%s", data_dir, names[c]);
        CHECK(hs_make_dirs(path, NULL) == HS_OK);
        for (int i = 0; i < per_class; i++) {
            snprintf(path, sizeof path, "%s/%s/%02d.png", data_dir, names[c], i);
            test_write_colour_image(path, c, &rng);
        }
    }
}

/* The training tests run on Lite0's real weights: CI must have them (scripts/fetch-weights.sh
 * puts them in weights/); elsewhere their absence skips the test, saying why. */
static inline void test_require_lite0_weights(void) {
    char path[4096];
    hs_error err = {0};
    if (hs_find_weights(hs_backbone_find("efficientnet_lite0"), path, sizeof path, &err)) {
        if (getenv("CI")) {
            fprintf(stderr, "CI must have the Lite0 weights: %s\n", err.message);
            exit(1);
        }
        CHECK_SKIP("%s", err.message);
    }
}

#endif
