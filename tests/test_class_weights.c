/* --class-weights: the weighted cross-entropy against PyTorch's CrossEntropyLoss(weight=...)
 * (plain, label-smoothed, and the fine-tune's mixed soft targets), resolving "balanced" and a
 * FILE (every malformed file refused, naming the line), the weighted L-BFGS probe on
 * imbalanced features (the rare class's recall rises), and end to end: a skewed generated
 * set where balanced weights raise the rare class's validation recall, run.json recording
 * the weights, --resume refusing a change, and a fine-tune with weights and mixup. */
#include <cairo.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "augment.h"
#include "check.h"
#include "class_weights.h"
#include "colour_images.h"
#include "fileutil.h"
#include "loss.h"
#include "probe.h"
#include "rng.h"
#include "test_util.h"

#define ROOT HS_TEST_TMP_DIR "/class_weights"
#define SKEWED ROOT "/skewed"

/* ---- The loss against PyTorch -------------------------------------------------------------- */

static void test_weighted_loss(void) {
    hs_state_dict sd;
    test_load_fixture(HS_FIXTURES_DIR "/loss.safetensors", &sd);
    const hs_sd_entry *z = test_entry(&sd, "logits"), *lab = test_entry(&sd, "labels");
    const float *w = test_entry(&sd, "class_weights")->data;
    const int n = (int)z->shape[0], classes = (int)z->shape[1];
    int labels[64];
    for (int i = 0; i < n; i++) labels[i] = (int)lab->data[i];
    float grad[64 * 8], loss;
    double d = hs_class_weight_sum(labels, n, w);

    loss = hs_weighted_smoothed_cross_entropy(z->data, labels, n, classes, 0.0f, w, d, grad);
    CHECK_CLOSE("weighted loss", &loss, test_entry(&sd, "wplain_loss")->data, 1, 1e-6f, 0.0f);
    CHECK_CLOSE("weighted grad", grad, test_entry(&sd, "wplain_grad")->data, n * classes, 1e-6f,
                1e-9f);
    loss = hs_weighted_smoothed_cross_entropy(z->data, labels, n, classes, 0.1f, w, d, grad);
    CHECK_CLOSE("weighted smooth loss", &loss, test_entry(&sd, "wsmooth_loss")->data, 1, 1e-6f,
                0.0f);
    CHECK_CLOSE("weighted smooth grad", grad, test_entry(&sd, "wsmooth_grad")->data,
                n * classes, 1e-6f, 1e-9f);

    /* The fine-tune's path: the loader's smoothing and mixup build the targets, then the
     * weighted soft loss over the images' own weight sum. */
    float targets[64 * 8], images[64];
    for (int i = 0; i < n; i++) images[i] = (float)i;
    hs_smooth_targets(labels, n, classes, 0.1f, targets);
    hs_mixup_batch(images, 1, targets, n, classes, 0.3f);
    CHECK_CLOSE("mixed targets", targets, test_entry(&sd, "mixed_targets")->data, n * classes,
                1e-6f, 1e-7f);
    loss = hs_weighted_soft_cross_entropy(z->data, targets, n, classes, w, d, grad);
    CHECK_CLOSE("weighted mixup loss", &loss, test_entry(&sd, "wmixed_loss")->data, 1, 1e-6f,
                0.0f);
    CHECK_CLOSE("weighted mixup grad", grad, test_entry(&sd, "wmixed_grad")->data, n * classes,
                1e-6f, 1e-9f);

    /* Weights of 1 and the count as denominator: exactly the unweighted loss. */
    float ones[8] = {1, 1, 1, 1, 1, 1, 1, 1}, plain_grad[64 * 8];
    float a = hs_weighted_smoothed_cross_entropy(z->data, labels, n, classes, 0.1f, ones,
                                                 hs_class_weight_sum(labels, n, ones), grad);
    float b = hs_smoothed_cross_entropy(z->data, labels, n, classes, 0.1f, plain_grad);
    CHECK(a == b && memcmp(grad, plain_grad, sizeof(float) * n * classes) == 0);
    hs_sd_free(&sd);
}

/* ---- Resolving the spec ------------------------------------------------------------------ */

static void write_text(const char *path, const char *text) {
    CHECK_MSG(test_write_text(path, text) == 0, "cannot write %s", path);
}

static void test_resolve(void) {
    test_make_dir(ROOT);
    char *names[] = {"ant", "bee", "cat", "dog,2"}; /* a name may hold a comma */
    int labels[10] = {0, 0, 0, 0, 0, 0, 1, 1, 2, 3};
    float *w = NULL;
    hs_error err = {0};
    CHECK(hs_class_weights_resolve("none", names, 4, labels, 10, &w, &err) == HS_OK && !w);
    /* scikit-learn's compute_class_weight("balanced", classes=[0,1,2,3], y=labels) */
    CHECK(hs_class_weights_resolve("balanced", names, 4, labels, 10, &w, &err) == HS_OK);
    const float sklearn[4] = {10.0f / 24, 10.0f / 8, 10.0f / 4, 10.0f / 4};
    if (w) CHECK_CLOSE("balanced", w, sklearn, 4, 1e-7f, 0.0f);
    free(w);
    w = NULL;
    /* A class without a training image has no balanced weight. */
    int missing[3] = {0, 1, 1};
    CHECK(hs_class_weights_resolve("balanced", names, 4, missing, 3, &w, &err) ==
          HS_ERR_ARGUMENT);
    CHECK_MSG(strstr(err.message, "'cat'") != NULL, "%s", err.message);

    write_text(ROOT "/good.csv", "# weights\nant,0.5\n\n bee , 2\ncat,1e-3\r\ndog,2,7.5\n");
    CHECK(hs_class_weights_resolve(ROOT "/good.csv", names, 4, labels, 10, &w, &err) == HS_OK);
    const float expect[4] = {0.5f, 2.0f, 1e-3f, 7.5f};
    if (w) CHECK_CLOSE("file", w, expect, 4, 0.0f, 0.0f);
    free(w);
    w = NULL;

    const char *bad[][2] = {
        {"ant,1\nbee,1\ncat,1\n", "dog,2"},              /* a class left out */
        {"ant,1\nbee,1\ncat,1\ndog,2,1\nemu,1\n", "emu"}, /* unknown class */
        {"ant,1\nant,1\nbee,1\ncat,1\ndog,2,1\n", "twice"},
        {"ant,0\nbee,1\ncat,1\ndog,2,1\n", "line 1"},     /* weights must be > 0 */
        {"ant,1\nbee,-1\ncat,1\ndog,2,1\n", "line 2"},
        {"ant,1\nbee,1\ncat,nan\ndog,2,1\n", "line 3"},
        {"ant,1\nbee,1\ncat,1e9\ndog,2,1\n", "line 3"},   /* above the limit */
        {"ant,1\nbee,1\ncat,1x\ndog,2,1\n", "line 3"},
        {"ant 1\n", "class,weight"},
        {"ant,\n", "line 1"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(ROOT "/bad.csv", bad[i][0]);
        memset(&err, 0, sizeof err);
        CHECK_MSG(hs_class_weights_resolve(ROOT "/bad.csv", names, 4, labels, 10, &w, &err) ==
                      HS_ERR_ARGUMENT && !w,
                  "case %zu", i);
        CHECK_MSG(strstr(err.message, bad[i][1]) != NULL, "case %zu: %s", i, err.message);
    }
    CHECK(hs_class_weights_resolve(ROOT "/absent.csv", names, 4, labels, 10, &w, &err) ==
          HS_ERR_IO);
    CHECK_MSG(strstr(err.message, "--class-weights") != NULL, "%s", err.message);
}

/* ---- The weighted probe on imbalanced features ------------------------------------------- */

/* Two overlapping Gaussian classes in 4 dimensions: class 0 at -0.5, class 1 at +0.5. */
static void blobs(hs_rng *rng, int n0, int n1, float *x, int *labels) {
    for (int i = 0; i < n0 + n1; i++) {
        labels[i] = i >= n0;
        for (int j = 0; j < 4; j++) {
            /* a sum of uniforms: close enough to a normal, and seeded */
            float v = 0;
            for (int k = 0; k < 6; k++) v += hs_rng_range(rng, -0.5f, 0.5f);
            x[i * 4 + j] = v * 1.4f + (labels[i] ? 0.5f : -0.5f);
        }
    }
}

static double recall(const float *x, const int *labels, int n, const float *w, const float *b,
                     int cls) {
    int hit = 0, total = 0;
    for (int i = 0; i < n; i++) {
        if (labels[i] != cls) continue;
        double s[2];
        for (int k = 0; k < 2; k++) {
            s[k] = b[k];
            for (int j = 0; j < 4; j++) s[k] += (double)w[k * 4 + j] * x[i * 4 + j];
        }
        total++;
        hit += (s[1] > s[0]) == cls;
    }
    return 100.0 * hit / total;
}

static void test_probe(void) {
    enum { N0 = 900, N1 = 60, T = 1000 };
    hs_rng rng;
    hs_rng_seed(&rng, 21);
    float *x = test_alloc_floats((N0 + N1) * 4), *tx = test_alloc_floats(2 * T * 4);
    int *labels = malloc((N0 + N1) * sizeof(int)), *tl = malloc(2 * T * sizeof(int));
    blobs(&rng, N0, N1, x, labels);
    blobs(&rng, T, T, tx, tl);
    char *names[] = {"common", "rare"};
    float *cw = NULL, w0[8], b0[2], w1[8], b1[2];
    hs_error err = {0};
    CHECK(hs_class_weights_resolve("balanced", names, 2, labels, N0 + N1, &cw, &err) == HS_OK);
    hs_probe_result r;
    CHECK(hs_probe_fit_dist(NULL, x, labels, N0 + N1, 4, 2, 3, NULL, w0, b0, &r, &err) == HS_OK);
    CHECK(hs_probe_fit_dist(NULL, x, labels, N0 + N1, 4, 2, 3, cw, w1, b1, &r, &err) == HS_OK);
    double rare_plain = recall(tx, tl, 2 * T, w0, b0, 1);
    double rare_weighted = recall(tx, tl, 2 * T, w1, b1, 1);
    double common_plain = recall(tx, tl, 2 * T, w0, b0, 0);
    double common_weighted = recall(tx, tl, 2 * T, w1, b1, 0);
    printf("probe on 900:60 blobs, recall rare / common: none %.1f / %.1f %%, balanced %.1f / "
           "%.1f %%\n", rare_plain, common_plain, rare_weighted, common_weighted);
    /* The weights move the boundary towards the common class: the rare class is found far
     * more often, at some cost to the common one. */
    CHECK(rare_weighted > rare_plain + 15);
    CHECK(common_weighted < common_plain);
    /* Balanced weights on balanced data change nothing (every weight is 1). */
    float *even = NULL;
    CHECK(hs_class_weights_resolve("balanced", names, 2, tl, 2 * T, &even, &err) == HS_OK);
    CHECK(even && even[0] == 1.0f && even[1] == 1.0f);
    free(even);
    free(cw);
    free(x);
    free(tx);
    free(labels);
    free(tl);
}

/* ---- End to end on a skewed generated set ------------------------------------------------ */

/* A 24 x 24 grey image: brightness 0.42 (common) or 0.58 (rare), shifted per image by up to
 * +-0.2 and per 4 x 4 tile by +-0.08, so that the classes overlap. */
static void grey_image(const char *path, int rare, hs_rng *rng) {
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 24, 24);
    cairo_t *cr = cairo_create(s);
    double base = (rare ? 0.58 : 0.42) + hs_rng_range(rng, -0.2f, 0.2f);
    for (int y = 0; y < 24; y += 4)
        for (int x = 0; x < 24; x += 4) {
            double v = base + hs_rng_range(rng, -0.08f, 0.08f);
            cairo_set_source_rgb(cr, v, v, v);
            cairo_rectangle(cr, x, y, 4, 4);
            cairo_fill(cr);
        }
    cairo_surface_write_to_png(s, path);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
}

static void make_skewed(void) {
    const char *sides[] = {"train", "val"};
    const int counts[2][2] = {{60, 6}, {30, 30}}; /* [side][common, rare] */
    const char *names[] = {"common", "rare"};
    hs_rng rng;
    hs_rng_seed(&rng, 5);
    char path[1024];
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < 2; c++) {
            snprintf(path, sizeof path, SKEWED "/%s/%s", sides[s], names[c]);
            CHECK(hs_make_dirs(path, NULL) == HS_OK);
            for (int i = 0; i < counts[s][c]; i++) {
                snprintf(path, sizeof path, SKEWED "/%s/%s/%02d.png", sides[s], names[c], i);
                grey_image(path, c, &rng);
            }
        }
}

static char *read_all(const char *path) {
    char *text = NULL;
    size_t size = 0;
    hs_error err = {0};
    if (hs_read_file(path, 1 << 24, &text, &size, &err)) return NULL;
    return text;
}

/* The rare class's recall from a run's confusion.csv (rows: true class, header first). */
static double rare_recall(const char *dir) {
    char path[600];
    snprintf(path, sizeof path, "%s/confusion.csv", dir);
    char *text = read_all(path);
    CHECK_MSG(text != NULL, "%s", path);
    if (!text) return -1;
    int to_common = -1, to_rare = -1;
    char *row = strstr(text, "\nrare,");
    if (row) sscanf(row + 6, "%d,%d", &to_common, &to_rare);
    free(text);
    CHECK_MSG(to_common >= 0 && to_rare >= 0, "confusion.csv of %s", dir);
    return to_common + to_rare > 0 ? 100.0 * to_rare / (to_common + to_rare) : -1;
}

static int run(const char *args) {
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "'%s' train '%s' --img-size 32 --seed 2 --threads 2 "
             "--cache-dir '%s' %s > '%s' 2> '%s'", HS_CLI_PATH, SKEWED, ROOT "/cache", args,
             ROOT "/stdout.txt", ROOT "/stderr.txt");
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A run's metrics.csv without its seconds column, and its model file. */
static int same_run(const char *a, const char *b) {
    int same = 1;
    const char *files[] = {"metrics.csv", "model.safetensors"};
    for (int f = 0; f < 2; f++) {
        char pa[600], pb[600];
        snprintf(pa, sizeof pa, "%s/%s", a, files[f]);
        snprintf(pb, sizeof pb, "%s/%s", b, files[f]);
        char *ta = NULL, *tb = NULL;
        size_t na = 0, nb = 0;
        hs_error err = {0};
        CHECK(hs_read_file(pa, 1u << 26, &ta, &na, &err) == HS_OK);
        CHECK(hs_read_file(pb, 1u << 26, &tb, &nb, &err) == HS_OK);
        if (f == 0 && ta && tb) /* cut each line at its last comma */
            for (char *t = ta; t; t = t == ta ? tb : NULL)
                for (char *line = t; *line;) {
                    char *end = strchr(line, '\n'), *comma = NULL;
                    for (char *c = line; c < (end ? end : line + strlen(line)); c++)
                        if (*c == ',') comma = c;
                    if (comma) memset(comma, ' ', (size_t)((end ? end : line + strlen(line)) - comma));
                    if (!end) break;
                    line = end + 1;
                }
        same &= ta && tb && na == nb && memcmp(ta, tb, na) == 0;
        free(ta);
        free(tb);
    }
    return same;
}

static void test_end_to_end(void) {
    make_skewed();
    /* The head on cached features (AdamW), then the L-BFGS probe, each without and with
     * balanced weights. */
    const char *trainers[][2] = {{"adamw", "--epochs 30 --lr 0.1 --batch-size 8"},
                                  {"lbfgs", "--optimizer lbfgs"}};
    for (int t = 0; t < 2; t++) {
        char args[600], dir_none[300], dir_bal[300];
        snprintf(dir_none, sizeof dir_none, ROOT "/%s_none", trainers[t][0]);
        snprintf(dir_bal, sizeof dir_bal, ROOT "/%s_balanced", trainers[t][0]);
        snprintf(args, sizeof args, "%s --out '%s' --overwrite", trainers[t][1], dir_none);
        CHECK_MSG(run(args) == 0, "%s", args);
        snprintf(args, sizeof args, "%s --out '%s' --overwrite --class-weights balanced",
                 trainers[t][1], dir_bal);
        CHECK_MSG(run(args) == 0, "%s", args);
        double none = rare_recall(dir_none), balanced = rare_recall(dir_bal);
        printf("%s head on 60:6 images, rare-class validation recall: none %.1f %%, balanced "
               "%.1f %%\n", trainers[t][0], none, balanced);
        CHECK_MSG(balanced > none, "%s: rare recall %.1f (balanced) vs %.1f (none)",
                  trainers[t][0], balanced, none);
        char path[400];
        snprintf(path, sizeof path, "%s/run.json", dir_bal);
        char *json = read_all(path);
        /* 66 / (2 x 60) and 66 / (2 x 6) */
        CHECK_MSG(json && strstr(json, "\"class_weights\":\t\"balanced\"") &&
                      strstr(json, "\"common\":\t0.55") && strstr(json, "\"rare\":\t5.5"),
                  "%s", json ? json : "(no run.json)");
        free(json);
    }
    /* Every weight 2: the weighted mean is the plain mean exactly (powers of two), so each
     * trainer gives the unweighted run's metrics and model bit for bit; that checks that the
     * weights reach the head trainer, the probe and the fine-tune (with smoothing and mixup)
     * and that nothing else changes. */
    write_text(ROOT "/twos.csv", "common,2\nrare,2\n");
    const char *same[][2] = {
        {"adamw", "--epochs 30 --lr 0.1 --batch-size 8"},
        {"lbfgs", "--optimizer lbfgs"},
        {"ft", "--strategy finetune --probe-epochs 1 --epochs 1 --batch-size 8 --mixup 0.4 "
               "--optimizer sgd --lr 0.05"}};
    for (int t = 0; t < 3; t++) {
        char args[600], a[300], b[300];
        snprintf(a, sizeof a, ROOT "/%s_none", same[t][0]);
        snprintf(b, sizeof b, ROOT "/%s_twos", same[t][0]);
        snprintf(args, sizeof args, "%s --out '%s' --overwrite", same[t][1], a);
        if (t == 2) CHECK_MSG(run(args) == 0, "%s", args); /* the others ran above */
        snprintf(args, sizeof args, "%s --out '%s' --overwrite --class-weights '%s'", same[t][1],
                 b, ROOT "/twos.csv");
        CHECK_MSG(run(args) == 0, "%s", args);
        CHECK_MSG(same_run(a, b), "%s: weights of 2 changed the run", same[t][0]);
    }
    /* --resume with other weights is refused, naming them. */
    CHECK(run("--epochs 31 --lr 0.1 --batch-size 8 --out '" ROOT "/adamw_balanced' "
              "--resume") == 7);
    char *text = read_all(ROOT "/stderr.txt");
    CHECK_MSG(text && strstr(text, "class weights=balanced") &&
                  strstr(text, "class weights=none now"),
              "%s", text ? text : "");
    free(text);
    /* Same weights from a file: the same values, so the run resumes (and trains one more
     * epoch); other values are another run. */
    write_text(ROOT "/same.csv", "common,0.55\nrare,5.5\n");
    CHECK(run("--epochs 31 --lr 0.1 --batch-size 8 --out '" ROOT "/adamw_balanced' --resume "
              "--class-weights '" ROOT "/same.csv'") == 7); /* "file" is another spec than "balanced" */
    CHECK(run("--epochs 31 --lr 0.1 --batch-size 8 --out '" ROOT "/adamw_balanced' --resume "
              "--class-weights balanced") == 0);
    /* A fine-tune with weights, label smoothing and mixup runs through. */
    CHECK(run("--strategy finetune --probe-epochs 1 --epochs 1 --batch-size 8 --mixup 0.4 "
              "--optimizer sgd --lr 0.05 --class-weights balanced --out '" ROOT "/ft' "
              "--overwrite") == 0);
    text = read_all(ROOT "/ft/run.json");
    CHECK_MSG(text && strstr(text, "\"rare\":\t5.5") && strstr(text, "\"completed\""), "%s",
              text ? text : "");
    free(text);
    /* Bad specs exit 2 before any work. */
    write_text(ROOT "/partial.csv", "common,1\n");
    CHECK(run("--class-weights '" ROOT "/partial.csv' --out '" ROOT "/never'") == 2);
    text = read_all(ROOT "/stderr.txt");
    CHECK_MSG(text && strstr(text, "'rare'"), "%s", text ? text : "");
    free(text);
    CHECK(run("--class-weights '' --out '" ROOT "/never'") == 2);
    CHECK(!hs_path_exists(ROOT "/never/run.json"));
}

int main(void) {
    test_weighted_loss();
    test_resolve();
    test_probe();
    test_require_lite0_weights();
    test_end_to_end();
    return check_finish("test_class_weights");
}
