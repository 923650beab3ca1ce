/* Augmentation, image store, batch loader and soft-target losses. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment.h"
#include "batch_loader.h"
#include "check.h"
#include "image_store.h"
#include "loss.h"
#include "rng.h"
#include "test_util.h"

static const float MEAN[3] = {0.485f, 0.456f, 0.406f}, STD[3] = {0.229f, 0.224f, 0.225f};

/* ---- RandomResizedCrop.get_params against torchvision ----------------------------------- */

typedef struct fixed_draws {
    const float *u;
    const float *r;
    int ui, ri, un, rn;
} fixed_draws;

static float fixed_uniform(void *ctx, float lo, float hi) {
    fixed_draws *f = ctx;
    float u = f->ui < f->un ? f->u[f->ui] : 0.0f;
    f->ui++;
    return u * (hi - lo) + lo;
}

static int64_t fixed_randint(void *ctx, int64_t lo, int64_t hi) {
    fixed_draws *f = ctx;
    int64_t r = f->ri < f->rn ? (int64_t)f->r[f->ri] : 0;
    f->ri++;
    return lo + r % (hi - lo);
}

static void test_crop_params_match_torchvision(void) {
    hs_state_dict sd;
    test_load_fixture(HS_FIXTURES_DIR "/crop_boxes.safetensors", &sd);
    const hs_sd_entry *size = test_entry(&sd, "size"), *hi = test_entry(&sd, "scale_ratio_hi"),
                      *lo = test_entry(&sd, "scale_ratio_lo"), *u = test_entry(&sd, "uniforms"),
                      *r = test_entry(&sd, "ints"), *boxes = test_entry(&sd, "boxes");
    const int cases = (int)size->shape[0], un = (int)u->shape[1], rn = (int)r->shape[1];
    int mismatches = 0, fallbacks = 0;
    for (int c = 0; c < cases; c++) {
        double p[4];
        for (int k = 0; k < 4; k++)
            p[k] = (double)hi->data[c * 4 + k] + (double)lo->data[c * 4 + k];
        fixed_draws f = {u->data + (size_t)c * un, r->data + (size_t)c * rn, 0, 0, un, rn};
        hs_crop_draws d = {fixed_uniform, fixed_randint, &f};
        hs_crop_box b = hs_random_resized_crop_params((int)size->data[c * 2],
                                                      (int)size->data[c * 2 + 1], p, p + 2, &d);
        const float *want = boxes->data + (size_t)c * 6;
        int ok = b.top == (int)want[0] && b.left == (int)want[1] && b.height == (int)want[2] &&
                 b.width == (int)want[3] && f.ui == (int)want[4] && f.ri == (int)want[5];
        fallbacks += f.ui == 20;
        if (!ok && mismatches++ < 5)
            fprintf(stderr, "case %d (%gx%g): got (%d %d %d %d, %d draws) want (%g %g %g %g, %g)\n",
                    c, size->data[c * 2], size->data[c * 2 + 1], b.top, b.left, b.height, b.width,
                    f.ui, want[0], want[1], want[2], want[3], want[4]);
    }
    CHECK_MSG(mismatches == 0, "%d of %d crop boxes differ from torchvision's", mismatches, cases);
    CHECK(cases > 200 && fallbacks > 10 && fallbacks < cases - 50); /* both paths covered */
    hs_sd_free(&sd);
}

/* The invariants, for the rng-driven sampler on many sizes. */
static void test_crop_invariants(void) {
    hs_augment_options o;
    hs_augment_defaults(&o);
    hs_rng rng;
    hs_rng_seed(&rng, 11);
    int bad = 0, fallback_seen = 0;
    for (int t = 0; t < 20000; t++) {
        int w = 1 + (int)hs_rng_below(&rng, 700), h = 1 + (int)hs_rng_below(&rng, 700);
        hs_crop_box b = hs_random_resized_crop_rng(w, h, &o, &rng);
        if (b.top < 0 || b.left < 0 || b.width < 1 || b.height < 1 || b.top + b.height > h ||
            b.left + b.width > w)
            bad++;
        /* a sampled (not fallback) box: rounded area within scale, ratio within bounds */
        double area = (double)b.width * b.height, fa = area / ((double)w * h);
        double ar = (double)b.width / b.height;
        int fallback = b.top == (h - b.height) / 2 && b.left == (w - b.width) / 2 &&
                       (b.width == w || b.height == h);
        fallback_seen += fallback;
        if (!fallback && w >= 50 && h >= 50 && b.width >= 20 && b.height >= 20 &&
            (fa < 0.08 * 0.9 || fa > 1.0 || ar < 0.75 * 0.9 || ar > 4.0 / 3.0 / 0.9))
            bad++;
    }
    CHECK_MSG(bad == 0, "%d crop boxes break the invariants", bad);
    CHECK(fallback_seen > 0);
    /* the fallbacks themselves */
    hs_crop_box b = hs_random_resized_crop_rng(20, 300, &o, &rng); /* always too tall */
    CHECK(b.width == 20 && b.height == 27 && b.top == 136 && b.left == 0);
}

/* ---- Images and a small data set held in memory ------------------------------------------ */

static uint8_t pixel_value(int sample, int x, int y, int c) {
    return (uint8_t)((sample * 37 + x * 7 + y * 13 + c * 71 + (x * y) % 11) & 255);
}

#define SAMPLES 23
#define BAD_SAMPLE 13

typedef struct test_set {
    hs_dataset ds;
    uint8_t *pixels[SAMPLES];
    char names[SAMPLES][32];
    char *class_names[3];
} test_set;

/* Raw RGB samples of varied sizes (some larger than the store's size bound), labels i % 3,
 * and (when with_bad) one undecodable encoded sample. */
static void test_set_make(test_set *t, int with_bad) {
    memset(t, 0, sizeof *t);
    static char a[] = "ant", b[] = "bee", c[] = "cat";
    t->class_names[0] = a;
    t->class_names[1] = b;
    t->class_names[2] = c;
    t->ds.class_names = t->class_names;
    t->ds.class_count = 3;
    t->ds.count = SAMPLES;
    t->ds.samples = calloc(SAMPLES, sizeof *t->ds.samples);
    for (int i = 0; i < SAMPLES; i++) {
        hs_sample *s = &t->ds.samples[i];
        snprintf(t->names[i], sizeof t->names[i], "img%02d.raw", i);
        s->name = t->names[i];
        s->label = i % 3;
        if (with_bad && i == BAD_SAMPLE) {
            snprintf(t->names[i], sizeof t->names[i], "broken%02d.jpg", i);
            s->kind = HS_SAMPLE_ENCODED;
            t->pixels[i] = (uint8_t *)strdup("this is not an image");
            s->bytes = t->pixels[i];
            s->byte_count = strlen((const char *)t->pixels[i]);
            continue;
        }
        int w = 17 + (i * 29) % 70, h = 15 + (i * 41) % 60;
        s->kind = HS_SAMPLE_RAW_RGB;
        s->raw_width = w;
        s->raw_height = h;
        s->byte_count = (size_t)w * h * 3;
        t->pixels[i] = malloc(s->byte_count);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int ch = 0; ch < 3; ch++)
                    t->pixels[i][(y * w + x) * 3 + ch] = pixel_value(i, x, y, ch);
        s->bytes = t->pixels[i];
    }
}

static void test_set_free(test_set *t) {
    for (int i = 0; i < SAMPLES; i++) free(t->pixels[i]);
    free(t->ds.samples);
}

static size_t decoded_bytes(const test_set *t, int max_short) {
    size_t total = (size_t)SAMPLES * (sizeof(hs_image) + sizeof(int));
    for (int i = 0; i < SAMPLES; i++) {
        const hs_sample *s = &t->ds.samples[i];
        if (s->kind != HS_SAMPLE_RAW_RGB) continue;
        int w = s->raw_width, h = s->raw_height, sh = w < h ? w : h;
        if (max_short > 0 && sh > max_short) {
            if (w <= h) {
                h = (int)((double)max_short * h / w);
                w = max_short;
            } else {
                w = (int)((double)max_short * w / h);
                h = max_short;
            }
        }
        total += (size_t)w * h * 3;
    }
    return total;
}

/* Crop, resize, flip and normalise against torchvision on a PIL image: the same floats. */
static void test_crop_images_match_torchvision(void) {
    hs_state_dict sd;
    test_load_fixture(HS_FIXTURES_DIR "/crop_images.safetensors", &sd);
    const hs_sd_entry *boxes = test_entry(&sd, "boxes"), *images = test_entry(&sd, "images"),
                      *dims = test_entry(&sd, "size");
    const int w = (int)dims->data[0], h = (int)dims->data[1], size = (int)dims->data[2];
    hs_image img = {w, h, malloc((size_t)w * h * 3)};
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) img.pixels[(y * w + x) * 3 + c] = pixel_value(5, x, y, c);
    const size_t floats = (size_t)3 * size * size;
    float *out = malloc(floats * sizeof *out);
    for (int i = 0; i < (int)boxes->shape[0]; i++) {
        const float *b = boxes->data + i * 5;
        hs_crop_box box = {(int)b[0], (int)b[1], (int)b[2], (int)b[3]};
        hs_error err = {0};
        CHECK(hs_augment_apply(&img, box, (int)b[4], size, MEAN, STD, out, &err) == HS_OK);
        char what[64];
        snprintf(what, sizeof what, "crop %d (%d x %d%s)", i, box.width, box.height,
                 b[4] ? ", flipped" : "");
        CHECK_CLOSE(what, out, images->data + i * floats, floats, 0.0f, 0.0f);
    }
    hs_error err = {0};
    hs_crop_box outside = {50, 90, 20, 10};
    CHECK(hs_augment_apply(&img, outside, 0, size, MEAN, STD, out, &err) == HS_ERR_ARGUMENT);
    free(out);
    hs_image_free(&img);
    hs_sd_free(&sd);
}

static void test_flip_and_identity_crop(void) {
    uint8_t px[4 * 2 * 3];
    for (int i = 0; i < 24; i++) px[i] = (uint8_t)i;
    hs_image img = {4, 2, px};
    hs_image_flip_horizontal(&img);
    const uint8_t want[24] = {9, 10, 11, 6, 7, 8, 3, 4, 5, 0, 1, 2,
                              21, 22, 23, 18, 19, 20, 15, 16, 17, 12, 13, 14};
    CHECK(memcmp(px, want, 24) == 0);

    /* scale (1, 1), ratio (1, 1) on a square image at its own size: the image itself, mirrored
     * exactly when the flip was drawn */
    enum { S = 16 };
    uint8_t sq[S * S * 3];
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int c = 0; c < 3; c++) sq[(y * S + x) * 3 + c] = pixel_value(5, x, y, c);
    hs_image square = {S, S, sq};
    float plain[3 * S * S], out[3 * S * S];
    hs_image_to_tensor(&square, MEAN, STD, plain);
    hs_augment_options o = {{1.0, 1.0}, {1.0, 1.0}, 1};
    int flips = 0, bad = 0;
    for (uint64_t seed = 0; seed < 16; seed++) {
        hs_rng rng;
        hs_rng_seed(&rng, seed);
        hs_error err = {0};
        hs_crop_box box;
        int flipped = -1;
        CHECK(hs_augment_image(&square, S, &o, &rng, MEAN, STD, out, &box, &flipped, &err) ==
              HS_OK);
        CHECK(box.top == 0 && box.left == 0 && box.width == S && box.height == S);
        flips += flipped;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    int sx = flipped ? S - 1 - x : x;
                    bad += out[(c * S + y) * S + x] != plain[(c * S + y) * S + sx];
                }
    }
    CHECK(bad == 0);
    CHECK(flips > 0 && flips < 16);
    /* flip off: never mirrored, and the same crop as with it on for the same seed */
    o.flip = 0;
    hs_rng rng;
    hs_rng_seed(&rng, 3);
    hs_error err = {0};
    int flipped = -1;
    CHECK(hs_augment_image(&square, S, &o, &rng, MEAN, STD, out, NULL, &flipped, &err) == HS_OK);
    CHECK(flipped == 0 && memcmp(out, plain, sizeof plain) == 0);

    /* a crop is the PIL resize of the box's pixels */
    hs_augment_defaults(&o);
    hs_rng_seed(&rng, 9);
    hs_crop_box box;
    float aug[3 * 8 * 8];
    CHECK(hs_augment_image(&square, 8, &o, &rng, MEAN, STD, aug, &box, &flipped, &err) == HS_OK);
    hs_image crop = {box.width, box.height, malloc((size_t)box.width * box.height * 3)};
    for (int y = 0; y < box.height; y++)
        memcpy(crop.pixels + (size_t)y * box.width * 3, sq + ((box.top + y) * S + box.left) * 3,
               (size_t)box.width * 3);
    hs_image small;
    CHECK(hs_image_resize(&crop, 8, 8, &small, &err) == HS_OK);
    if (flipped) hs_image_flip_horizontal(&small);
    float want8[3 * 8 * 8];
    hs_image_to_tensor(&small, MEAN, STD, want8);
    CHECK(memcmp(aug, want8, sizeof want8) == 0);
    hs_image_free(&crop);
    hs_image_free(&small);
}

static void test_targets_and_mixup(void) {
    const int labels[4] = {2, 0, 1, 2};
    float t[4 * 3];
    hs_smooth_targets(labels, 4, 3, 0.3f, t);
    for (int b = 0; b < 4; b++)
        for (int k = 0; k < 3; k++) {
            float want = k == labels[b] ? 1.0f - 0.3f + 0.1f : 0.1f;
            CHECK(fabsf(t[b * 3 + k] - want) < 1e-7f);
        }
    hs_smooth_targets(labels, 4, 3, 0.0f, t);
    CHECK(t[2] == 1.0f && t[0] == 0.0f && t[3] == 1.0f);

    /* an odd batch of 5 images of 2 floats */
    const int lab5[5] = {0, 1, 2, 1, 0};
    float img[10], orig[10], tg[15];
    for (int i = 0; i < 10; i++) orig[i] = img[i] = (float)(i * i) - 3.0f;
    hs_smooth_targets(lab5, 5, 3, 0.0f, tg);
    const float lam = 0.3f;
    hs_mixup_batch(img, 2, tg, 5, 3, lam);
    int bad = 0;
    for (int i = 0; i < 5; i++) {
        int j = 4 - i;
        float sum = 0;
        for (int k = 0; k < 3; k++) {
            float want = (i == j) ? (k == lab5[i])
                                  : lam * (k == lab5[i]) + (1.0f - lam) * (k == lab5[j]);
            bad += fabsf(tg[i * 3 + k] - want) > 1e-6f;
            sum += tg[i * 3 + k];
        }
        bad += fabsf(sum - 1.0f) > 1e-6f;
        for (int c = 0; c < 2; c++) {
            float want = i == j ? orig[i * 2 + c]
                                : lam * orig[i * 2 + c] + (1.0f - lam) * orig[j * 2 + c];
            bad += fabsf(img[i * 2 + c] - want) > 1e-5f;
        }
    }
    CHECK(bad == 0);
}

static void test_beta(void) {
    hs_rng rng;
    hs_rng_seed(&rng, 5);
    const double shapes[][2] = {{0.2, 0.2}, {1.0, 1.0}, {2.0, 5.0}, {0.4, 3.0}};
    const int n = 200000;
    for (int s = 0; s < 4; s++) {
        double a = shapes[s][0], b = shapes[s][1], sum = 0, sq = 0;
        int outside = 0;
        for (int i = 0; i < n; i++) {
            double x = hs_rng_beta(&rng, a, b);
            outside += !(x >= 0.0 && x <= 1.0);
            sum += x;
            sq += x * x;
        }
        double mean = sum / n, var = sq / n - mean * mean;
        double want_mean = a / (a + b), want_var = a * b / ((a + b) * (a + b) * (a + b + 1));
        /* 5 standard errors of the mean; variance within 3% */
        CHECK_MSG(fabs(mean - want_mean) < 5 * sqrt(want_var / n), "Beta(%g, %g) mean %g want %g",
                  a, b, mean, want_mean);
        CHECK_MSG(fabs(var - want_var) < 0.03 * want_var, "Beta(%g, %g) var %g want %g", a, b,
                  var, want_var);
        CHECK(outside == 0);
    }
    double g = 0;
    for (int i = 0; i < n; i++) g += hs_rng_gamma(&rng, 3.5);
    CHECK(fabs(g / n - 3.5) < 5 * sqrt(3.5 / n));
}

/* ---- Soft-target cross-entropy against PyTorch ----------------------------------------- */

static void test_loss(void) {
    hs_state_dict sd;
    test_load_fixture(HS_FIXTURES_DIR "/loss.safetensors", &sd);
    const hs_sd_entry *z = test_entry(&sd, "logits"), *t = test_entry(&sd, "soft_targets"),
                      *lab = test_entry(&sd, "labels");
    const int n = (int)z->shape[0], classes = (int)z->shape[1];
    int labels[64];
    for (int i = 0; i < n; i++) labels[i] = (int)lab->data[i];
    float grad[64 * 8], loss;
    float *scaled = malloc((size_t)n * classes * sizeof *scaled);
    for (int i = 0; i < n * classes; i++) scaled[i] = t->data[i] * 0.7f;

    loss = hs_soft_cross_entropy(z->data, t->data, n, classes, grad);
    CHECK_CLOSE("soft loss", &loss, test_entry(&sd, "soft_loss")->data, 1, 1e-6f, 0.0f);
    CHECK_CLOSE("soft grad", grad, test_entry(&sd, "soft_grad")->data, n * classes, 1e-6f, 1e-9f);
    loss = hs_soft_cross_entropy(z->data, scaled, n, classes, grad);
    CHECK_CLOSE("scaled loss", &loss, test_entry(&sd, "scaled_loss")->data, 1, 1e-6f, 0.0f);
    CHECK_CLOSE("scaled grad", grad, test_entry(&sd, "scaled_grad")->data, n * classes, 1e-6f,
                1e-9f);
    loss = hs_smoothed_cross_entropy(z->data, labels, n, classes, 0.1f, grad);
    CHECK_CLOSE("smooth loss", &loss, test_entry(&sd, "smooth_loss")->data, 1, 1e-6f, 0.0f);
    CHECK_CLOSE("smooth grad", grad, test_entry(&sd, "smooth_grad")->data, n * classes, 1e-6f,
                1e-9f);
    /* the smoothed targets through the soft loss: the same */
    float *smooth = malloc((size_t)n * classes * sizeof *smooth);
    hs_smooth_targets(labels, n, classes, 0.1f, smooth);
    loss = hs_soft_cross_entropy(z->data, smooth, n, classes, grad);
    CHECK_CLOSE("smooth loss (soft)", &loss, test_entry(&sd, "smooth_loss")->data, 1, 1e-6f, 0.0f);
    CHECK_CLOSE("smooth grad (soft)", grad, test_entry(&sd, "smooth_grad")->data, n * classes,
                1e-6f, 1e-9f);
    loss = hs_smoothed_cross_entropy(z->data, labels, n, classes, 0.0f, NULL);
    CHECK_CLOSE("plain loss", &loss, test_entry(&sd, "plain_loss")->data, 1, 1e-6f, 0.0f);
    free(scaled);
    free(smooth);
    hs_sd_free(&sd);
}

/* ---- Image store ------------------------------------------------------------------------- */

typedef struct progress_log {
    int calls;
    long last_done, last_total;
} progress_log;

static void note_progress(void *ctx, const char *phase, long done, long total, double seconds) {
    progress_log *p = ctx;
    p->calls++;
    p->last_done = done;
    p->last_total = total;
    (void)phase;
    (void)seconds;
}

static void test_store(void) {
    test_set t;
    test_set_make(&t, 1);
    hs_error err = {0};
    hs_image_store s;
    const int max_short = 30;
    const size_t need = decoded_bytes(&t, max_short);
    progress_log log = {0, 0, 0};
    hs_image_store_options o = {need, max_short, note_progress, &log, "decode", NULL};
    CHECK(hs_image_store_open(&t.ds, &o, &s, &err) == HS_OK);
    CHECK(log.calls >= 1 && log.last_done == SAMPLES && log.last_total == SAMPLES);
    CHECK(s.in_memory == 1 && s.bytes == need && s.bytes <= o.memory_budget);
    CHECK(s.failed_count == 1 && strstr(s.failed[0], "broken13.jpg") != NULL);
    CHECK(!hs_image_store_usable(&s, BAD_SAMPLE) && hs_image_store_usable(&s, 0));
    int resized = 0, bad = 0;
    for (int i = 0; i < SAMPLES; i++) {
        if (i == BAD_SAMPLE) continue;
        const hs_image *img = s.images + i;
        int w = t.ds.samples[i].raw_width, h = t.ds.samples[i].raw_height;
        int shorter = img->width < img->height ? img->width : img->height;
        if (w != img->width) resized++;
        bad += shorter > max_short;
        if (w == img->width) bad += memcmp(img->pixels, t.pixels[i], (size_t)w * h * 3) != 0;
    }
    CHECK(resized > 3 && bad == 0);
    /* epoch orders: the usable samples once each, the same for the same (seed, epoch) */
    int o1[SAMPLES], o2[SAMPLES], o3[SAMPLES], hits[SAMPLES] = {0};
    CHECK(hs_loader_epoch_order(&s, 9, 4, o1) == SAMPLES - 1);
    CHECK(hs_loader_epoch_order(&s, 9, 4, o2) == SAMPLES - 1);
    CHECK(hs_loader_epoch_order(&s, 9, 5, o3) == SAMPLES - 1);
    for (int i = 0; i < SAMPLES - 1; i++) hits[o1[i]]++;
    int once = 0;
    for (int i = 0; i < SAMPLES; i++) once += hits[i] == (i != BAD_SAMPLE);
    CHECK(once == SAMPLES);
    CHECK(memcmp(o1, o2, (SAMPLES - 1) * sizeof(int)) == 0);
    CHECK(memcmp(o1, o3, (SAMPLES - 1) * sizeof(int)) != 0);
    hs_image scratch = {0};
    const hs_image *img;
    CHECK(hs_image_store_get(&s, BAD_SAMPLE, &scratch, &img, &err) != HS_OK && img == NULL);
    CHECK(strstr(err.message, "broken13.jpg") != NULL);
    hs_image_store_free(&s);

    /* one byte short of the budget: nothing kept, decoded on demand, with the same pixels */
    o.memory_budget = need - 1;
    CHECK(hs_image_store_open(&t.ds, &o, &s, &err) == HS_OK);
    CHECK(s.in_memory == 0 && s.images == NULL && s.bytes == 0 && s.bytes_seen > need - 1);
    CHECK(hs_image_store_get(&s, 4, &scratch, &img, &err) == HS_OK);
    CHECK(img == &scratch && (img->width < img->height ? img->width : img->height) <= max_short);
    hs_image_free(&scratch);
    CHECK(hs_image_store_get(&s, BAD_SAMPLE, &scratch, &img, &err) != HS_OK);
    CHECK(strstr(err.message, "broken13.jpg") != NULL);
    hs_image_free(&scratch);
    hs_image_store_free(&s);
    o.memory_budget = 0;
    CHECK(hs_image_store_open(&t.ds, &o, &s, &err) == HS_OK && s.in_memory == 0);
    hs_image_store_free(&s);
    /* a stop request */
    volatile int stop = 1;
    o.memory_budget = need;
    o.stop = &stop;
    CHECK(hs_image_store_open(&t.ds, &o, &s, &err) == HS_ERR_INTERRUPTED && !s.in_memory &&
          s.images == NULL);
    hs_image_store_free(&s);
    o.stop = NULL;

    /* the size rule */
    hs_image big = {100, 60, calloc(100 * 60 * 3, 1)};
    CHECK(hs_image_limit_short_side(&big, 30, &err) == HS_OK && big.width == 50 &&
          big.height == 30);
    hs_image_free(&big);
    test_set_free(&t);
}

/* ---- Batches ---------------------------------------------------------------------------- */

static void loader_options(hs_loader_options *o, int threads) {
    hs_loader_defaults(o);
    o->image_size = 24;
    o->batch_size = 4;
    o->threads = threads;
    o->depth = 2;
    o->seed = 77;
    o->crop.scale[0] = 0.35;
}

/* Runs an epoch through a loader, checking each batch against the synchronous reference;
 * returns the number of batches that differ, and the samples seen in *seen. */
static int run_epoch_from(const hs_image_store *s, const hs_loader_options *o, int epoch,
                          const int *order, int count, int first_batch, int *seen,
                          int *errors_out, char *first_error) {
    hs_error err = {0};
    hs_batch_loader *l = NULL;
    hs_batch ref;
    CHECK(hs_batch_alloc(o, s->ds->class_count, &ref, &err) == HS_OK);
    CHECK(hs_batch_loader_create(s, o, &l, &err) == HS_OK);
    CHECK(hs_batch_loader_start(l, epoch, order, count, first_batch, &err) == HS_OK);
    int differ = 0, got = first_batch * o->batch_size, errors = 0;
    const size_t floats = (size_t)3 * o->image_size * o->image_size;
    for (int k = first_batch;; k++) {
        hs_batch *b = NULL;
        hs_status st = hs_batch_loader_next(l, &b, &err);
        if (st) {
            if (!errors++ && first_error)
                snprintf(first_error, sizeof err.message, "%s", err.message);
            CHECK(b == NULL);
            got += o->batch_size; /* a dropped batch is a full one in these tests */
            continue;
        }
        if (!b) {
            CHECK(k == (count + o->batch_size - 1) / o->batch_size);
            break;
        }
        CHECK(b->index == k && b->epoch == epoch);
        for (int i = 0; i < b->n; i++) seen[got + i] = b->samples[i];
        got += b->n;
        hs_error e2 = {0};
        CHECK(hs_loader_fill_batch(s, o, epoch, order, count, k, &ref, &e2) == HS_OK);
        if (ref.n != b->n || memcmp(ref.images, b->images, (size_t)b->n * floats * sizeof(float)) ||
            memcmp(ref.targets, b->targets, (size_t)b->n * s->ds->class_count * sizeof(float)) ||
            memcmp(ref.labels, b->labels, (size_t)b->n * sizeof(int)) ||
            ref.mixup_lambda != b->mixup_lambda)
            differ++;
        hs_batch_loader_release(l, b);
    }
    hs_batch_loader_free(l);
    hs_batch_free(&ref);
    if (errors_out) *errors_out = errors;
    return differ;
}

static int run_epoch(const hs_image_store *s, const hs_loader_options *o, int epoch,
                     const int *order, int count, int *seen, int *errors_out, char *first_error) {
    return run_epoch_from(s, o, epoch, order, count, 0, seen, errors_out, first_error);
}

static void test_loader(void) {
    test_set t;
    test_set_make(&t, 0);
    hs_error err = {0};
    hs_image_store mem, lazy;
    hs_image_store_options so = {1 << 24, 30, NULL, NULL, "decode", NULL};
    CHECK(hs_image_store_open(&t.ds, &so, &mem, &err) == HS_OK && mem.in_memory);
    so.memory_budget = 0;
    CHECK(hs_image_store_open(&t.ds, &so, &lazy, &err) == HS_OK && !lazy.in_memory);

    int order[SAMPLES], seen[SAMPLES + 8];
    hs_rng rng;
    hs_rng_seed(&rng, 1);
    for (int i = 0; i < SAMPLES; i++) order[i] = i;
    for (int i = SAMPLES - 1; i > 0; i--) {
        int j = (int)hs_rng_below(&rng, (uint64_t)i + 1), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    hs_loader_options o;
    for (int threads = 1; threads <= 3; threads++) {
        loader_options(&o, threads);
        memset(seen, -1, sizeof seen);
        CHECK_MSG(run_epoch(&mem, &o, 2, order, SAMPLES, seen, NULL, NULL) == 0,
                  "%d threads: batches differ from the reference", threads);
        CHECK(memcmp(seen, order, sizeof order) == 0); /* each sample once, in order */
    }
    /* 1 and 2 threads, in memory or on demand: the same bytes */
    loader_options(&o, 1);
    hs_batch a, b;
    CHECK(hs_batch_alloc(&o, 3, &a, &err) == HS_OK && hs_batch_alloc(&o, 3, &b, &err) == HS_OK);
    CHECK(hs_loader_fill_batch(&mem, &o, 2, order, SAMPLES, 1, &a, &err) == HS_OK);
    CHECK(hs_loader_fill_batch(&lazy, &o, 2, order, SAMPLES, 1, &b, &err) == HS_OK);
    const size_t floats = (size_t)4 * 3 * 24 * 24;
    CHECK(memcmp(a.images, b.images, floats * sizeof(float)) == 0);
    /* another epoch: other crops */
    CHECK(hs_loader_fill_batch(&mem, &o, 3, order, SAMPLES, 1, &b, &err) == HS_OK);
    CHECK(memcmp(a.images, b.images, floats * sizeof(float)) != 0);
    memset(seen, -1, sizeof seen);
    CHECK(run_epoch(&lazy, &o, 2, order, SAMPLES, seen, NULL, NULL) == 0);
    CHECK(memcmp(seen, order, sizeof order) == 0);

    /* a resumed epoch: from batch 3 on, the batches of the whole epoch (mixup included) */
    hs_loader_options r = o;
    r.mixup_alpha = 0.4f;
    r.threads = 2;
    memset(seen, -1, sizeof seen);
    CHECK(run_epoch_from(&mem, &r, 2, order, SAMPLES, 3, seen, NULL, NULL) == 0);
    CHECK(seen[11] == -1 && memcmp(seen + 12, order + 12, (SAMPLES - 12) * sizeof(int)) == 0);
    hs_batch_loader *rl = NULL;
    CHECK(hs_batch_loader_create(&mem, &r, &rl, &err) == HS_OK);
    CHECK(hs_batch_loader_start(rl, 2, order, SAMPLES, 7, &err) == HS_ERR_ARGUMENT);
    hs_batch *none = NULL;
    /* 6 batches in all: none left */
    CHECK(hs_batch_loader_start(rl, 2, order, SAMPLES, 6, &err) == HS_OK);
    CHECK(hs_batch_loader_next(rl, &none, &err) == HS_OK && none == NULL);
    hs_batch_loader_free(rl);

    /* mixup: lambda per batch, the reversed batch mixed in, targets summing to 1 */
    hs_loader_options m = o;
    m.mixup_alpha = 0.4f;
    m.label_smoothing = 0.1f;
    CHECK(hs_loader_fill_batch(&mem, &m, 2, order, SAMPLES, 1, &b, &err) == HS_OK);
    const float lam = b.mixup_lambda;
    CHECK(lam > 0.0f && lam < 1.0f);
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        int j = 3 - i;
        float sum = 0;
        for (int k = 0; k < 3; k++) {
            float ti = (k == a.labels[i] ? 0.9f : 0.0f) + 0.1f / 3;
            float tj = (k == a.labels[j] ? 0.9f : 0.0f) + 0.1f / 3;
            bad += fabsf(b.targets[i * 3 + k] - (lam * ti + (1 - lam) * tj)) > 1e-6f;
            sum += b.targets[i * 3 + k];
        }
        bad += fabsf(sum - 1.0f) > 1e-6f;
        for (size_t p = 0; p < floats / 4; p++) {
            float want =
                lam * a.images[i * floats / 4 + p] + (1 - lam) * a.images[j * floats / 4 + p];
            bad += fabsf(b.images[i * floats / 4 + p] - want) > 1e-5f;
        }
    }
    CHECK(bad == 0);
    memset(seen, -1, sizeof seen);
    m.threads = 2;
    CHECK(run_epoch(&mem, &m, 2, order, SAMPLES, seen, NULL, NULL) == 0);

    /* validation batches: the probe's resize of each image, one-hot targets */
    hs_loader_options v = o;
    v.augment = 0;
    v.threads = 2;
    hs_image_store native;
    hs_image_store_options no = {1 << 24, 0, NULL, NULL, "decode", NULL};
    CHECK(hs_image_store_open(&t.ds, &no, &native, &err) == HS_OK);
    CHECK(hs_loader_fill_batch(&native, &v, 0, order, SAMPLES, 5, &b, &err) == HS_OK);
    CHECK(b.n == 3); /* 23 = 5 x 4 + 3 */
    float want[3 * 24 * 24];
    hs_image img = {0};
    CHECK(hs_dataset_load_image(&t.ds, order[21], &img, &err) == HS_OK);
    CHECK(hs_image_prepare_square(&img, 24, HS_INTERP_BILINEAR, o.mean, o.std, want, &err) == HS_OK);
    hs_image_free(&img);
    CHECK(memcmp(b.images + floats / 4, want, sizeof want) == 0);
    CHECK(b.targets[3 + t.ds.samples[order[21]].label] == 1.0f);
    memset(seen, -1, sizeof seen);
    CHECK(run_epoch(&native, &v, 0, order, SAMPLES, seen, NULL, NULL) == 0);
    CHECK(memcmp(seen, order, sizeof order) == 0);
    hs_image_store_free(&native);

    /* misuse: every buffer held; an order out of range; a new epoch while one is held */
    hs_batch_loader *l = NULL;
    CHECK(hs_batch_loader_create(&mem, &o, &l, &err) == HS_OK);
    CHECK(hs_batch_loader_start(l, 0, order, SAMPLES, 0, &err) == HS_OK);
    hs_batch *b1 = NULL, *b2 = NULL, *b3 = NULL;
    CHECK(hs_batch_loader_next(l, &b1, &err) == HS_OK && b1);
    CHECK(hs_batch_loader_next(l, &b2, &err) == HS_OK && b2);
    CHECK(hs_batch_loader_next(l, &b3, &err) == HS_ERR_ARGUMENT && !b3);
    CHECK(hs_batch_loader_start(l, 1, order, SAMPLES, 0, &err) == HS_ERR_ARGUMENT);
    hs_batch_loader_release(l, b1);
    hs_batch_loader_release(l, b2);
    int bad_order[2] = {0, SAMPLES};
    CHECK(hs_batch_loader_start(l, 1, bad_order, 2, 0, &err) == HS_ERR_ARGUMENT);
    /* an abandoned epoch, then a full one */
    CHECK(hs_batch_loader_start(l, 1, order, SAMPLES, 0, &err) == HS_OK);
    int n = 0;
    for (;;) {
        CHECK(hs_batch_loader_next(l, &b1, &err) == HS_OK);
        if (!b1) break;
        for (int i = 0; i < b1->n; i++) n += b1->samples[i] == order[n];
        hs_batch_loader_release(l, b1);
    }
    CHECK(n == SAMPLES);
    hs_batch_loader_free(l);
    /* a loader freed in the middle of an epoch */
    CHECK(hs_batch_loader_create(&lazy, &o, &l, &err) == HS_OK);
    CHECK(hs_batch_loader_start(l, 0, order, SAMPLES, 0, &err) == HS_OK);
    CHECK(hs_batch_loader_next(l, &b1, &err) == HS_OK && b1);
    hs_batch_loader_free(l);

    hs_batch_free(&a);
    hs_batch_free(&b);
    hs_image_store_free(&mem);
    hs_image_store_free(&lazy);
    test_set_free(&t);
}

static void test_loader_reports_failure(void) {
    test_set t;
    test_set_make(&t, 1);
    hs_error err = {0};
    int order[SAMPLES], seen[SAMPLES + 8];
    for (int i = 0; i < SAMPLES; i++) order[i] = i;
    for (int budget = 0; budget < 2; budget++) {
        hs_image_store s;
        hs_image_store_options so = {budget ? 1 << 24 : 0, 30, NULL, NULL, "decode", NULL};
        CHECK(hs_image_store_open(&t.ds, &so, &s, &err) == HS_OK && s.in_memory == budget);
        hs_loader_options o;
        loader_options(&o, 2);
        int errors = 0;
        char first[HS_ERROR_MESSAGE_SIZE] = "";
        memset(seen, -1, sizeof seen);
        run_epoch(&s, &o, 0, order, SAMPLES, seen, &errors, first);
        CHECK(errors == 1);
        CHECK_MSG(strstr(first, "broken13.jpg") && strstr(first, "batch 3"), "%s", first);
        /* the other batches came, in order */
        CHECK(memcmp(seen, order, 12 * sizeof(int)) == 0 &&
              memcmp(seen + 16, order + 16, 7 * sizeof(int)) == 0);
        hs_image_store_free(&s);
    }
    test_set_free(&t);
}

int main(void) {
    test_crop_params_match_torchvision();
    test_crop_invariants();
    test_crop_images_match_torchvision();
    test_flip_and_identity_crop();
    test_targets_and_mixup();
    test_beta();
    test_loss();
    test_store();
    test_loader();
    test_loader_reports_failure();
    return check_finish("test_augment");
}
