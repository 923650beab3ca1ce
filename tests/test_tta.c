/* Flip test-time augmentation (--tta flip) for predict and evaluate, on a head-only run and a
 * fine-tuned one: an image that is not mirror-symmetric gets different probabilities from
 * its mirror, --tta flip gives the mean of the two (the same for the image and its mirror),
 * evaluate's loss and accuracy are those of the averaged probabilities, and --tta none is
 * what predict gives without it, bit for bit. Also --img-size, the size images are resized
 * to at test time. */
#include <cairo.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "check.h"
#include "colour_images.h"
#include "fileutil.h"
#include "test_util.h"

#define ROOT HS_TEST_TMP_DIR "/tta"
#define DATA ROOT "/colours"
#define EVAL ROOT "/eval"

static const char *const class_names[] = {"blue", "green", "red"};

/* 24 x 24: the left third one class's colour, the rest another's, with a diagonal bar, so
 * the image and its mirror differ. */
static void two_colour_image(const char *path, int left, int right, double shade) {
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 24, 24);
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, test_colours[right][0], test_colours[right][1],
                         test_colours[right][2]);
    cairo_paint(cr);
    cairo_set_source_rgb(cr, test_colours[left][0] * shade, test_colours[left][1] * shade,
                         test_colours[left][2] * shade);
    cairo_rectangle(cr, 0, 0, 8, 24);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.95, 0.95, 0.95);
    cairo_move_to(cr, 8, 0);
    cairo_line_to(cr, 12, 0);
    cairo_line_to(cr, 24, 16);
    cairo_line_to(cr, 24, 20);
    cairo_fill(cr);
    cairo_surface_write_to_png(s, path);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
}

/* The same pixels mirrored left to right, through cairo's transform (exact for whole
 * pixels). */
static void mirror_png(const char *in, const char *out) {
    cairo_surface_t *src = cairo_image_surface_create_from_png(in);
    int w = cairo_image_surface_get_width(src), h = cairo_image_surface_get_height(src);
    cairo_surface_t *dst = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    cairo_t *cr = cairo_create(dst);
    cairo_translate(cr, w, 0);
    cairo_scale(cr, -1, 1);
    cairo_set_source_surface(cr, src, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_paint(cr);
    cairo_surface_write_to_png(dst, out);
    cairo_destroy(cr);
    cairo_surface_destroy(dst);
    cairo_surface_destroy(src);
}

enum { EVAL_IMAGES = 6 };
static char eval_paths[EVAL_IMAGES][300], mirror_paths[EVAL_IMAGES][300];
static int eval_labels[EVAL_IMAGES];

static void make_data(void) {
    test_make_colour_classes(ROOT, DATA, class_names, 8, 11);
    for (int i = 0; i < EVAL_IMAGES; i++) {
        int label = i % 3, other = (i + 1 + i / 3) % 3;
        char dir[200];
        snprintf(dir, sizeof dir, EVAL "/%s", class_names[label]);
        CHECK(hs_make_dirs(dir, NULL) == HS_OK);
        CHECK(hs_make_dirs(ROOT "/mirrors", NULL) == HS_OK);
        snprintf(eval_paths[i], sizeof eval_paths[i], "%s/%d.png", dir, i);
        snprintf(mirror_paths[i], sizeof mirror_paths[i], ROOT "/mirrors/%d.png", i);
        /* the label's colour covers two thirds of the image, so it is mostly predicted */
        two_colour_image(eval_paths[i], other, label, 0.6 + 0.08 * i);
        mirror_png(eval_paths[i], mirror_paths[i]);
        eval_labels[i] = label;
    }
}

static int run(const char *cmd) {
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static double max_abs_diff(const float *a, const float *b, int n) {
    double worst = 0;
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - b[i]));
    return worst;
}

/* predict with bad_predict and evaluate with bad_evaluate both exit 2, and their messages
 * hold expect_predict and expect_evaluate. */
static void check_refused(const char *dir, const char *bad_predict, const char *bad_evaluate,
                          const char *expect_predict, const char *expect_evaluate) {
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "'%s' predict '%s' %s '%s' 2> '%s'", HS_CLI_PATH, dir,
             bad_predict, eval_paths[0], ROOT "/err.txt");
    CHECK_MSG(run(cmd) == 2, "%s", cmd);
    snprintf(cmd, sizeof cmd, "'%s' evaluate '%s' '%s' %s 2>> '%s'", HS_CLI_PATH, dir, EVAL,
             bad_evaluate, ROOT "/err.txt");
    CHECK_MSG(run(cmd) == 2, "%s", cmd);
    char *text = NULL;
    size_t size = 0;
    hs_error err = {0};
    CHECK(hs_read_file(ROOT "/err.txt", 1 << 20, &text, &size, &err) == HS_OK);
    CHECK_MSG(text && strstr(text, expect_predict) && strstr(text, expect_evaluate), "%s",
              text ? text : "");
    free(text);
}

/* predict and evaluate of the run in dir with and without --tta flip. */
static void check_run(const char *dir, const char *what) {
    hs_model *m = NULL;
    hs_error err = {0};
    CHECK_MSG(hs_model_open(dir, NULL, &m, &err) == HS_OK, "%s: %s", what, err.message);
    if (!m) return;
    int classes = hs_model_num_classes(m);
    enum { N = 2 * EVAL_IMAGES };
    const char *paths[N];
    for (int i = 0; i < EVAL_IMAGES; i++) {
        paths[i] = eval_paths[i];
        paths[EVAL_IMAGES + i] = mirror_paths[i];
    }
    float plain[N * 3], none[N * 3], flip[N * 3];
    hs_error errors[N];
    CHECK(classes == 3);
    CHECK(hs_model_predict_files(m, paths, N, plain, errors, &err) == HS_OK);
    hs_model_set_tta(m, HS_TTA_NONE);
    CHECK(hs_model_predict_files(m, paths, N, none, errors, &err) == HS_OK);
    CHECK_MSG(memcmp(plain, none, sizeof plain) == 0, "%s: --tta none changed predict", what);
    hs_model_set_tta(m, HS_TTA_FLIP);
    CHECK(hs_model_predict_files(m, paths, N, flip, errors, &err) == HS_OK);
    double asym = 0, worst = 0, symmetric = 0;
    for (int i = 0; i < EVAL_IMAGES; i++) {
        const float *p = plain + i * 3, *q = plain + (EVAL_IMAGES + i) * 3;
        float mean[3];
        for (int k = 0; k < 3; k++) mean[k] = 0.5f * (p[k] + q[k]);
        asym = fmax(asym, max_abs_diff(p, q, 3));
        worst = fmax(worst, max_abs_diff(flip + i * 3, mean, 3));
        symmetric = fmax(symmetric, max_abs_diff(flip + i * 3, flip + (EVAL_IMAGES + i) * 3, 3));
    }
    printf("%s: image vs mirror differ by up to %.4f; flip vs the mean of both %.2g; flip of "
           "the image vs of its mirror %.2g\n", what, asym, worst, symmetric);
    /* The images are not mirror-symmetric, and neither is the network. */
    CHECK_MSG(asym > 1e-3, "%s: the mirror gives the same probabilities (%g)", what, asym);
    /* The mirror PNG and the mirrored decoded image are the same pixels; only the order of
     * float sums in the resize and the network differs. */
    CHECK_MSG(worst < 2e-5, "%s: flip is not the mean (%g)", what, worst);
    CHECK_MSG(symmetric < 2e-5, "%s: flip of an image and of its mirror differ (%g)", what,
              symmetric);

    /* evaluate: the loss and accuracy of the probabilities above. */
    double loss_none = 0, loss_flip = 0;
    int correct_none = 0, correct_flip = 0;
    for (int i = 0; i < EVAL_IMAGES; i++) {
        int y = eval_labels[i], a = 0, b = 0;
        for (int k = 1; k < 3; k++) {
            if (plain[i * 3 + k] > plain[i * 3 + a]) a = k;
            if (flip[i * 3 + k] > flip[i * 3 + b]) b = k;
        }
        loss_none += -log(plain[i * 3 + y]) / EVAL_IMAGES;
        loss_flip += -log(flip[i * 3 + y]) / EVAL_IMAGES;
        correct_none += a == y;
        correct_flip += b == y;
    }
    hs_eval_result r;
    CHECK(hs_model_evaluate(m, EVAL, NULL, &r, &err) == HS_OK);
    CHECK_MSG(r.images == EVAL_IMAGES && r.correct == correct_flip &&
                  fabs(r.loss - loss_flip) < 1e-4 * fmax(1, loss_flip),
              "%s: evaluate --tta flip: %d correct, loss %.6f; predict: %d, %.6f", what,
              r.correct, r.loss, correct_flip, loss_flip);
    hs_eval_result_free(&r);
    hs_model_set_tta(m, HS_TTA_NONE);
    CHECK(hs_model_evaluate(m, EVAL, NULL, &r, &err) == HS_OK);
    CHECK_MSG(r.correct == correct_none && fabs(r.loss - loss_none) < 1e-4 * fmax(1, loss_none),
              "%s: evaluate: %d correct, loss %.6f; predict: %d, %.6f", what, r.correct, r.loss,
              correct_none, loss_none);
    CHECK_MSG(fabs(loss_none - loss_flip) > 1e-5, "%s: the same loss with and without flip",
              what);
    hs_eval_result_free(&r);
    hs_model_free(m);

    /* The command line: --tta flip works, a bad value exits 2 naming the flag. */
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "'%s' predict '%s' --tta flip '%s' > /dev/null", HS_CLI_PATH, dir,
             eval_paths[0]);
    CHECK_MSG(run(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "'%s' evaluate '%s' '%s' --tta flip > '%s'", HS_CLI_PATH, dir,
             EVAL, ROOT "/eval.txt");
    CHECK_MSG(run(cmd) == 0, "%s", cmd);
    check_refused(dir, "--tta mirror", "--tta 5", "--tta must be none or flip, not 'mirror'",
                  "not '5'");
    char *text = NULL;
    size_t size = 0;
    CHECK(hs_read_file(ROOT "/eval.txt", 1 << 20, &text, &size, &err) == HS_OK);
    CHECK_MSG(text && strstr(text, "flip test-time augmentation"), "%s", text ? text : "");
    free(text);
}

/* --img-size for predict and evaluate: the training size changes nothing, another size
 * changes the probabilities and evaluate agrees with predict at it, sizes out of range are
 * refused by the API and on the command line. */
static void check_img_size(const char *dir, const char *what) {
    hs_model *m = NULL;
    hs_error err = {0};
    CHECK_MSG(hs_model_open(dir, NULL, &m, &err) == HS_OK, "%s: %s", what, err.message);
    if (!m) return;
    const char *paths[EVAL_IMAGES];
    for (int i = 0; i < EVAL_IMAGES; i++) paths[i] = eval_paths[i];
    float trained[EVAL_IMAGES * 3], same[EVAL_IMAGES * 3], larger[EVAL_IMAGES * 3];
    hs_error errors[EVAL_IMAGES];
    CHECK(hs_model_predict_files(m, paths, EVAL_IMAGES, trained, errors, &err) == HS_OK);
    CHECK(hs_model_set_img_size(m, 32, &err) == HS_OK);
    CHECK(hs_model_predict_files(m, paths, EVAL_IMAGES, same, errors, &err) == HS_OK);
    CHECK_MSG(memcmp(trained, same, sizeof same) == 0, "%s: --img-size 32 changed predict", what);
    CHECK(hs_model_set_img_size(m, 48, &err) == HS_OK);
    CHECK(hs_model_predict_files(m, paths, EVAL_IMAGES, larger, errors, &err) == HS_OK);
    double moved = max_abs_diff(trained, larger, EVAL_IMAGES * 3), loss = 0;
    int correct = 0;
    for (int i = 0; i < EVAL_IMAGES; i++) {
        const float *p = larger + i * 3;
        int y = eval_labels[i], guess = 0;
        for (int k = 1; k < 3; k++)
            if (p[k] > p[guess]) guess = k;
        CHECK_MSG(fabs((double)p[0] + p[1] + p[2] - 1) < 1e-5, "%s: row %d sums to %g", what, i,
                  (double)p[0] + p[1] + p[2]);
        correct += guess == y;
        loss += -log(p[y]) / EVAL_IMAGES;
    }
    printf("%s: at 48 px the probabilities move by up to %.4f from 32 px\n", what, moved);
    CHECK_MSG(moved > 1e-4, "%s: --img-size 48 gives the 32 px probabilities (%g)", what, moved);
    hs_eval_result r;
    CHECK(hs_model_evaluate(m, EVAL, NULL, &r, &err) == HS_OK);
    CHECK_MSG(r.images == EVAL_IMAGES && r.correct == correct &&
                  fabs(r.loss - loss) < 1e-4 * fmax(1, loss),
              "%s: evaluate at 48 px: %d correct, loss %.6f; predict: %d, %.6f", what, r.correct,
              r.loss, correct, loss);
    hs_eval_result_free(&r);
    CHECK(hs_model_set_img_size(m, 31, &err) == HS_ERR_ARGUMENT &&
          strstr(err.message, "32..1024, not 31"));
    CHECK(hs_model_set_img_size(m, 1025, &err) == HS_ERR_ARGUMENT);
    hs_model_free(m);

    char cmd[2000];
    snprintf(cmd, sizeof cmd, "'%s' evaluate '%s' '%s' --img-size 48 > /dev/null", HS_CLI_PATH,
             dir, EVAL);
    CHECK_MSG(run(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "'%s' predict '%s' --img-size 48 '%s' > /dev/null", HS_CLI_PATH,
             dir, eval_paths[0]);
    CHECK_MSG(run(cmd) == 0, "%s", cmd);
    check_refused(dir, "--img-size big", "--img-size 8",
                  "--img-size needs a whole number, not 'big'",
                  "--img-size must be 32..1024, not 8");
}

int main(void) {
    test_require_lite0_weights();
    make_data();
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "'%s' train '%s' --img-size 32 --epochs 3 --lr 0.01 --seed 1 "
             "--threads 2 --cache-dir '%s' --out '%s' > /dev/null 2>&1", HS_CLI_PATH, DATA,
             ROOT "/cache", ROOT "/head");
    CHECK_MSG(run(cmd) == 0, "%s", cmd);
    check_run(ROOT "/head", "head-only run");
    check_img_size(ROOT "/head", "head-only run");
    snprintf(cmd, sizeof cmd, "'%s' train '%s' --strategy finetune --img-size 32 --epochs 1 "
             "--probe-epochs 1 --batch-size 6 --optimizer sgd --lr 0.05 --seed 1 --threads 2 "
             "--cache-dir '%s' --out '%s' > /dev/null 2>&1", HS_CLI_PATH, DATA, ROOT "/cache",
             ROOT "/finetuned");
    CHECK_MSG(run(cmd) == 0, "%s", cmd);
    check_run(ROOT "/finetuned", "fine-tuned run");
    check_img_size(ROOT "/finetuned", "fine-tuned run");
    return check_finish("test_tta");
}
