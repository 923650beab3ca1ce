/* Charts: the files exist, are PNGs of the expected size, are not blank, show the series'
 * colours and dark diagonal cells; failures are reported and leave no temporary file. */
#include <cairo.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "plot.h"

#define OUT_DIR HS_TEST_TMP_DIR "/plot"

static void make_out_dir(void) {
    mkdir(HS_TEST_TMP_DIR, 0755);
    mkdir(OUT_DIR, 0755);
}

/* Loads a PNG; NULL (and a failed check) when it is missing or not a PNG. */
static cairo_surface_t *load_png(const char *path) {
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    int ok = cairo_surface_status(s) == CAIRO_STATUS_SUCCESS;
    CHECK_MSG(ok, "%s: %s", path, cairo_status_to_string(cairo_surface_status(s)));
    if (!ok) {
        cairo_surface_destroy(s);
        return NULL;
    }
    cairo_surface_flush(s);
    return s;
}

static uint32_t pixel_at(cairo_surface_t *s, int x, int y) {
    const unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    return ((const uint32_t *)(const void *)(data + (size_t)y * (size_t)stride))[x] & 0xffffff;
}

static long count_pixels(cairo_surface_t *s, int (*match)(uint32_t, uint32_t), uint32_t rgb) {
    long n = 0;
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) n += match(pixel_at(s, x, y), rgb);
    return n;
}

static int not_white(uint32_t p, uint32_t unused) {
    (void)unused;
    return p != 0xffffff;
}

static int close_to(uint32_t p, uint32_t rgb) {
    for (int shift = 0; shift <= 16; shift += 8) {
        int a = (int)((p >> shift) & 0xff), b = (int)((rgb >> shift) & 0xff);
        if (abs(a - b) > 6) return 0;
    }
    return 1;
}

/* A dark blue of the upper end of the colour map (white text aside). */
static int dark_blue(uint32_t p, uint32_t unused) {
    (void)unused;
    int r = (int)(p >> 16) & 0xff, g = (int)(p >> 8) & 0xff, b = (int)p & 0xff;
    return b > r + 60 && b > g + 20 && 0.299 * r + 0.587 * g + 0.114 * b < 110;
}

/* Checks a chart file: a PNG of width x height with enough drawing in it; returns it. */
static cairo_surface_t *check_chart(const char *path, int width, int height) {
    cairo_surface_t *s = load_png(path);
    if (!s) return NULL;
    CHECK_MSG(cairo_image_surface_get_width(s) == width, "%s: width %d, expected %d", path,
              cairo_image_surface_get_width(s), width);
    CHECK_MSG(cairo_image_surface_get_height(s) == height, "%s: height %d, expected %d", path,
              cairo_image_surface_get_height(s), height);
    long inked = count_pixels(s, not_white, 0);
    long total = (long)cairo_image_surface_get_width(s) * cairo_image_surface_get_height(s);
    CHECK_MSG(inked > total / 100, "%s: only %ld of %ld pixels drawn", path, inked, total);
    CHECK_MSG(inked < total * 9 / 10, "%s: %ld of %ld pixels drawn", path, inked, total);
    return s;
}

/* Files left in the output folder whose name contains ".tmp.". */
static int temp_files_left(void) {
    DIR *d = opendir(OUT_DIR);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static void test_lines(void) {
    double train[10], val[10];
    for (int i = 0; i < 10; i++) {
        train[i] = 100 - 60 * exp(-0.4 * i);
        val[i] = 95 - 58 * exp(-0.35 * i) + (i % 3 == 0 ? 1.5 : -0.7);
    }
    hs_series acc[] = {{"train", train, 10}, {"validation", val, 10}};
    hs_error err = {0};
    const char *path = OUT_DIR "/accuracy.png";
    remove(path);
    hs_status st = hs_plot_lines(path, "Accuracy", "accuracy (%)", acc, 2, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    cairo_surface_t *s = check_chart(path, 900, 600);
    if (s) {
        long blue = count_pixels(s, close_to, 0x1f77b4);
        long orange = count_pixels(s, close_to, 0xff7f0e);
        CHECK_MSG(blue > 200, "only %ld pixels of #1f77b4", blue);
        CHECK_MSG(orange > 200, "only %ld pixels of #ff7f0e", orange);
        cairo_surface_destroy(s);
    }

    double loss_train[10], loss_val[10];
    for (int i = 0; i < 10; i++) {
        loss_train[i] = 2.3 * exp(-0.3 * i) + 0.05;
        loss_val[i] = 2.2 * exp(-0.25 * i) + 0.15;
    }
    hs_series loss[] = {{"train", loss_train, 10}, {"validation", loss_val, 10}};
    st = hs_plot_lines(OUT_DIR "/loss.png", "Loss", "cross-entropy loss", loss, 2, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    s = check_chart(OUT_DIR "/loss.png", 900, 600);
    if (s) cairo_surface_destroy(s);

    /* a single epoch: each point still shows as a marker */
    double one_train[] = {61.5}, one_val[] = {58.25};
    hs_series one[] = {{"train", one_train, 1}, {"validation", one_val, 1}};
    st = hs_plot_lines(OUT_DIR "/one.png", "One epoch", "accuracy (%)", one, 2, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    s = check_chart(OUT_DIR "/one.png", 900, 600);
    if (s) {
        long blue = count_pixels(s, close_to, 0x1f77b4);
        CHECK_MSG(blue > 20, "single point: only %ld pixels of #1f77b4", blue);
        cairo_surface_destroy(s);
    }

    /* all values equal, and all zero */
    double flat[] = {0.5, 0.5, 0.5, 0.5, 0.5}, zero[] = {0, 0, 0, 0, 0};
    hs_series flats[] = {{"flat", flat, 5}, {"zero", zero, 5}};
    st = hs_plot_lines(OUT_DIR "/flat.png", "Flat", "loss", flats, 1, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    s = check_chart(OUT_DIR "/flat.png", 900, 600);
    if (s) {
        CHECK(count_pixels(s, close_to, 0x1f77b4) > 200);
        cairo_surface_destroy(s);
    }
    st = hs_plot_lines(OUT_DIR "/zero.png", "Zero", "loss", flats + 1, 1, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    s = check_chart(OUT_DIR "/zero.png", 900, 600);
    if (s) cairo_surface_destroy(s);

    /* NaN and infinite values are gaps; a series of only NaN draws nothing but the legend */
    double gaps[] = {2.0, NAN, 1.5, 1.2, INFINITY, 0.9, -INFINITY, 0.7, NAN, 0.6};
    double none[] = {NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    hs_series with_gaps[] = {{"train", gaps, 10}, {"validation", none, 10}};
    st = hs_plot_lines(OUT_DIR "/nan.png", "Loss with gaps", NULL, with_gaps, 2, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    s = check_chart(OUT_DIR "/nan.png", 900, 600);
    if (s) {
        CHECK(count_pixels(s, close_to, 0x1f77b4) > 100);
        cairo_surface_destroy(s);
    }
    st = hs_plot_lines(OUT_DIR "/all_nan.png", NULL, NULL, with_gaps + 1, 1, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    s = check_chart(OUT_DIR "/all_nan.png", 900, 600);
    if (s) cairo_surface_destroy(s);

    /* many epochs and huge values, long and invalid UTF-8 labels */
    enum { LONG_RUN = 300 };
    static double many[LONG_RUN], huge[LONG_RUN];
    for (int i = 0; i < LONG_RUN; i++) {
        many[i] = 1.0 / (1 + i) + 0.01 * sin(i);
        huge[i] = (i % 2 ? 1e305 : -1e305);
    }
    hs_series long_run[] = {
        {"a very long legend label that goes on and on and on and on and on and on", many,
         LONG_RUN},
        {"bad \xff\xfe utf-8 \xe2\x82", huge, 3}};
    st = hs_plot_lines(OUT_DIR "/many.png",
                       "A title far too long to fit: \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 "
                       "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do "
                       "eiusmod tempor incididunt ut labore et dolore magna aliqua",
                       "loss", long_run, 1, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    s = check_chart(OUT_DIR "/many.png", 900, 600);
    if (s) cairo_surface_destroy(s);
    st = hs_plot_lines(OUT_DIR "/huge.png", "Huge", "x", long_run + 1, 1, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    s = check_chart(OUT_DIR "/huge.png", 900, 600);
    if (s) cairo_surface_destroy(s);

    /* overwriting an existing chart */
    const char *again = OUT_DIR "/overwrite.png";
    st = hs_plot_lines(again, "Accuracy", "accuracy (%)", acc, 2, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    st = hs_plot_lines(again, "Accuracy", "accuracy (%)", acc + 1, 1, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    s = check_chart(again, 900, 600);
    if (s) {
        CHECK(count_pixels(s, close_to, 0xff7f0e) < 10); /* the first series is gone */
        cairo_surface_destroy(s);
    }
}

static void test_lines_errors(void) {
    double v[] = {1, 2, 3};
    hs_series one[] = {{"train", v, 3}};
    hs_series empty[] = {{"train", v, 0}};
    hs_error err = {0};
    const char *path = OUT_DIR "/error.png";
    remove(path);
    CHECK(hs_plot_lines(path, "t", "y", one, 0, &err) == HS_ERR_ARGUMENT);
    CHECK(err.code == HS_ERR_ARGUMENT && strlen(err.message) > 0);
    CHECK(hs_plot_lines(path, "t", "y", NULL, 1, &err) == HS_ERR_ARGUMENT);
    CHECK(hs_plot_lines(path, "t", "y", empty, 1, &err) == HS_ERR_ARGUMENT);
    CHECK(access(path, F_OK) != 0);

    memset(&err, 0, sizeof err);
    const char *bad = "/nonexistent/dir/x.png";
    CHECK(hs_plot_lines(bad, "t", "y", one, 1, &err) == HS_ERR_IO);
    CHECK_MSG(strstr(err.message, bad) != NULL, "message does not name the path: %s",
              err.message);
    CHECK(access(bad, F_OK) != 0);

    /* a folder we cannot write into: a read-only one, or for root (who may write anywhere
     * the permission bits say no) /proc, where no one can create a file */
    char ro[512];
    snprintf(ro, sizeof ro, "%s/readonly", OUT_DIR);
    mkdir(ro, 0755);
    chmod(ro, 0555);
    char target[600];
    snprintf(target, sizeof target, "%s/x.png", access(ro, W_OK) != 0 ? ro : "/proc");
    memset(&err, 0, sizeof err);
    CHECK(hs_plot_lines(target, "t", "y", one, 1, &err) == HS_ERR_IO);
    CHECK_MSG(strstr(err.message, target) != NULL, "message does not name %s: %s", target,
              err.message);
    CHECK(access(target, F_OK) != 0);
    chmod(ro, 0755);
    remove(target);
    rmdir(ro);

    /* the target is a folder: the temporary file is written, the rename fails */
    char dir_target[512];
    snprintf(dir_target, sizeof dir_target, "%s/is_a_folder.png", OUT_DIR);
    mkdir(dir_target, 0755);
    memset(&err, 0, sizeof err);
    CHECK(hs_plot_lines(dir_target, "t", "y", one, 1, &err) == HS_ERR_IO);
    CHECK(strstr(err.message, dir_target) != NULL);
    rmdir(dir_target);
    CHECK(temp_files_left() == 0);
}

static void test_confusion(void) {
    enum { C = 10 };
    static const char *const names[C] = {"airplane", "automobile", "bird", "cat", "deer",
                                         "dog", "frog", "horse", "ship", "truck"};
    int m[C * C];
    for (int r = 0; r < C; r++) {
        int left = 1000;
        for (int c = 0; c < C; c++) {
            if (c == r) continue;
            int v = (r * 7 + c * 13) % 23;
            if ((r == 3 && c == 5) || (r == 5 && c == 3)) v = 140; /* cat <-> dog */
            m[r * C + c] = v;
            left -= v;
        }
        m[r * C + r] = left;
    }
    hs_error err = {0};
    const char *path = OUT_DIR "/confusion.png";
    hs_status st = hs_plot_confusion(path, "Validation confusion matrix", m, C, names, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    cairo_surface_t *s = load_png(path);
    if (s) {
        int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
        CHECK_MSG(w >= 500 && w <= 3000 && h >= 500 && h <= 3000, "size %dx%d", w, h);
        CHECK_MSG(w >= C * 60 && h >= C * 60, "size %dx%d too small for 60 px cells", w, h);
        long inked = count_pixels(s, not_white, 0);
        CHECK(inked > (long)w * h / 20);
        /* dark blue fills most of the diagonal cells (and nothing much else) */
        long dark = count_pixels(s, dark_blue, 0);
        CHECK_MSG(dark > 8 * 60 * 60 * 3 / 4 && dark < 12 * 60 * 60, "%ld dark pixels", dark);
        cairo_surface_destroy(s);
    }

    /* three classes, one with a long unicode name, one row empty */
    static const char *const three[] = {
        "caf\xc3\xa9 au lait \xe2\x98\x95 with a long name \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
        "\xe7\x8c\xab", NULL};
    int m3[9] = {50, 3, 2, 4, 40, 6, 0, 0, 0};
    st = hs_plot_confusion(OUT_DIR "/confusion3.png", "Three", m3, 3, three, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    s = load_png(OUT_DIR "/confusion3.png");
    if (s) {
        int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
        CHECK_MSG(w >= 500 && h >= 500 && w <= 3000 && h <= 3000, "size %dx%d", w, h);
        CHECK(count_pixels(s, dark_blue, 0) > 2 * 100 * 100 / 2);
        CHECK(count_pixels(s, not_white, 0) > (long)w * h / 20);
        cairo_surface_destroy(s);
    }

    /* many classes: no numbers, names thinned, still within the size cap */
    enum { MANY = 120 };
    static int big[MANY * MANY];
    for (int r = 0; r < MANY; r++)
        for (int c = 0; c < MANY; c++) big[r * MANY + c] = r == c ? 90 : (r + c) % 3;
    st = hs_plot_confusion(OUT_DIR "/confusion_many.png", "Many", big, MANY, NULL, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    s = load_png(OUT_DIR "/confusion_many.png");
    if (s) {
        int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
        CHECK_MSG(w <= 3200 && h <= 3200, "size %dx%d", w, h);
        CHECK(count_pixels(s, not_white, 0) > (long)w * h / 20);
        cairo_surface_destroy(s);
    }

    /* errors */
    CHECK(hs_plot_confusion(OUT_DIR "/c.png", "t", m, 0, names, &err) == HS_ERR_ARGUMENT);
    CHECK(hs_plot_confusion(OUT_DIR "/c.png", "t", NULL, 3, names, &err) == HS_ERR_ARGUMENT);
    int negative[4] = {1, -1, 0, 2};
    CHECK(hs_plot_confusion(OUT_DIR "/c.png", "t", negative, 2, NULL, &err) == HS_ERR_ARGUMENT);
    memset(&err, 0, sizeof err);
    const char *bad = "/nonexistent/dir/confusion.png";
    CHECK(hs_plot_confusion(bad, "t", m, C, names, &err) == HS_ERR_IO);
    CHECK(strstr(err.message, bad) != NULL);
    CHECK(temp_files_left() == 0);
}

int main(void) {
    make_out_dir();
    test_lines();
    test_lines_errors();
    test_confusion();
    cairo_debug_reset_static_data();
    return check_finish("test_plot");
}
