/* The --strategy auto planner (auto_plan.h) with given rates: a tiny budget gives the probe
 * (or no plan at all, saying what would fit), a large one a fine-tune at a larger size, the
 * estimate never exceeds the budget over a sweep of budgets and rates, and the paragraph
 * names the measured rates and the choice; then `train --strategy auto` end to end on tiny
 * generated data (it measures, says its plan, runs it and records estimate against actual)
 * and the flags it refuses. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "auto_plan.h"
#include "check.h"
#include "colour_images.h"
#include "fileutil.h"

#define ROOT HS_TEST_TMP_DIR "/auto"
#define DATA ROOT "/colours"

/* Rates of the shape measured on a 2-core CPU with Lite0: the feature pass and the
 * fine-tune step both slow with the pixel count. */
static hs_auto_input cifar_like(double budget) {
    hs_auto_input in;
    memset(&in, 0, sizeof in);
    in.budget_seconds = budget;
    in.spent_seconds = 20;
    in.train_images = 5000;
    in.val_images = 1000;
    in.probe_epochs = 5;
    in.head_epoch_seconds = 0.25;
    in.epoch_overhead_seconds = 1.5;
    in.finetune_setup_seconds = 0.5;
    const int sizes[] = {96, 128, 160, 224};
    for (int k = 0; k < 4; k++) {
        double pixels = (double)sizes[k] * sizes[k] / (224.0 * 224.0);
        in.sizes[k] = sizes[k];
        in.feature_ips[k] = 130.0 / pixels;
        in.finetune_ips[k] = 14.0 / pixels;
    }
    in.size_count = 4;
    return in;
}

/* Recomputes the plan's estimate from its own choice and the rates, independently. */
static double recomputed(const hs_auto_input *in, const hs_auto_plan *p) {
    int k = 0;
    while (k < in->size_count && in->sizes[k] != p->img_size) k++;
    if (k == in->size_count) return INFINITY;
    double all = in->train_images + in->val_images;
    double t = all / in->feature_ips[k] + p->probe_epochs * in->head_epoch_seconds;
    if (p->finetune)
        t += in->finetune_setup_seconds + p->epochs * (in->train_images / in->finetune_ips[k] +
                          in->val_images / in->feature_ips[k] + in->epoch_overhead_seconds);
    return t;
}

static void test_choices(void) {
    hs_auto_plan p;
    hs_error err = {0};
    /* 2 minutes (90 s usable): the features at 96 px take 6000 / 708 = 8 s, a fine-tune
     * epoch at 96 px 5000 / 76 + 1000 / 708 = 67 s: one epoch fits, not two: the probe, at
     * the largest size whose features fit (224 px: 46 s). */
    hs_auto_input in = cifar_like(120);
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK_MSG(!p.finetune && p.img_size == 224 && p.probe_epochs == 10 && p.epochs == 0,
              "%d %d %d %d", p.finetune, p.img_size, p.probe_epochs, p.epochs);
    CHECK(strstr(p.why, "probe alone") && strstr(p.why, "707.8 images/s at 96 px"));
    printf("2 min: %s\n\n", p.why);

    /* 40 s: not even 224 px fits after the 20 s spent; the largest that does. */
    in = cifar_like(40);
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK_MSG(!p.finetune && p.img_size == 128, "%d px", p.img_size);

    /* 25 s: nothing fits (usable 4.5 s; the 96 px features take 8.5 s and 10 head epochs
     * 2.5 s): no plan, and the message says what budget would do (20 + 11 / 0.9). */
    in = cifar_like(25);
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_ERR_ARGUMENT);
    CHECK_MSG(strstr(err.message, "too short") && strstr(err.message, "at least 33 s"), "%s",
              err.message);

    /* 5 minutes (252 s usable): (252 - 8) / 67 = 3 epochs at 96 px, 1 at 128 px: fewer
     * than 5 anywhere, so the size with the most. */
    in = cifar_like(300);
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK_MSG(p.finetune && p.img_size == 96 && p.epochs == 3 && p.probe_epochs == 5,
              "%d px, %d epochs", p.img_size, p.epochs);
    printf("5 min: %s\n\n", p.why);

    /* 10 minutes: 7 epochs at 96 px, 3 at 128 px: the largest size with 5 is 96 px. */
    in = cifar_like(600);
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK_MSG(p.finetune && p.img_size == 96 && p.epochs == 7, "%d px, %d epochs", p.img_size,
              p.epochs);

    /* Each epoch's checkpoint and plots count: with a minute of them, 4 epochs instead. */
    in.epoch_overhead_seconds = 60;
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK_MSG(p.finetune && p.img_size == 96 && p.epochs == 4, "%d px, %d epochs", p.img_size,
              p.epochs);

    /* 2 hours: at least 5 epochs fit at a larger size. */
    in = cifar_like(7200);
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK_MSG(p.finetune && p.img_size > 96 && p.epochs >= 5, "%d px, %d epochs", p.img_size,
              p.epochs);
    CHECK(strstr(p.why, "probe then fine-tune") &&
          strstr(p.why, "; fine-tune step 76.2 images/s at 96 px"));
    int two_hours = p.img_size;
    /* The paragraph names where the fine-tune starts when it is given. */
    snprintf(in.trained_from, sizeof in.trained_from, "_blocks.5._expand_conv");
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK_MSG(strstr(p.why, "; fine-tune step (training from _blocks.5._expand_conv up) "),
              "%s", p.why);
    printf("2 h: %s\n\n", p.why);

    /* A day: the largest size, epochs capped. */
    in = cifar_like(86400);
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK_MSG(p.finetune && p.img_size == 224 && p.epochs == HS_AUTO_MAX_FT_EPOCHS &&
                  p.img_size >= two_hours,
              "%d px, %d epochs", p.img_size, p.epochs);

    /* A cap (--epochs) below 5: the largest size where the cap fits. */
    in = cifar_like(7200);
    in.max_finetune_epochs = 3;
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK_MSG(p.finetune && p.img_size == 224 && p.epochs == 3, "%d px, %d epochs", p.img_size,
              p.epochs);
    in.max_finetune_epochs = 12;
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK_MSG(p.finetune && p.img_size == 224 && p.epochs == 12, "%d px, %d epochs", p.img_size,
              p.epochs);

    /* No fine-tune rate measured (0): the probe whatever the budget. */
    in = cifar_like(86400);
    for (int k = 0; k < in.size_count; k++) in.finetune_ips[k] = 0;
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK(!p.finetune && p.img_size == 224);

    /* Invalid input is a bug of the caller, not a plan. */
    in = cifar_like(600);
    in.feature_ips[2] = 0;
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_ERR_INTERNAL);
    in = cifar_like(600);
    in.size_count = 0;
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_ERR_INTERNAL);
}

/* Memory: a size whose fine-tune needs more than 90 % of what is available is never planned,
 * the paragraph names it and the limit; unknown memory (0) plans by time alone; when no
 * size fits, the probe. */
static void test_memory(void) {
    hs_auto_plan p;
    hs_error err = {0};
    const double gb[4] = {0.8e9, 1.2e9, 1.9e9, 3.5e9};
    hs_auto_input in = cifar_like(86400);
    for (int k = 0; k < 4; k++) in.finetune_bytes[k] = gb[k];
    /* A day: 224 px by time (test_choices), but 3.5 GB > 0.9 x 3 GB: 160 px. */
    in.memory_available_bytes = 3e9;
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK_MSG(p.finetune && p.img_size == 160 && p.epochs == HS_AUTO_MAX_FT_EPOCHS, "%d px",
              p.img_size);
    CHECK_MSG(strstr(p.why, "Memory: the fine-tune would need about 3.5 GB at 224 px, over "
                     "90 % of the 3.0 GB available, so not at that size.") &&
                  strstr(p.why, "Its memory: about 1.9 GB of the 3.0 GB available."),
              "%s", p.why);
    printf("a day, 3 GB: %s\n\n", p.why);
    /* Exactly at the margin fits (2.7 GB of 3). */
    in.finetune_bytes[3] = 2.7e9;
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK_MSG(p.img_size == 224 && !strstr(p.why, "Memory:"), "%d px: %s", p.img_size, p.why);
    /* 1.5 GB: only 96 and 128 px fit (1.35 GB). */
    in.finetune_bytes[3] = 3.5e9;
    in.memory_available_bytes = 1.5e9;
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK_MSG(p.finetune && p.img_size == 128, "%d px", p.img_size);
    CHECK_MSG(strstr(p.why, "about 3.5 GB at 224 px and 1.9 GB at 160 px, over 90 % of the 1.5 "
                     "GB available, so not at those sizes"), "%s", p.why);
    /* Unknown memory: by time alone, as before. */
    in.memory_available_bytes = 0;
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK(p.finetune && p.img_size == 224 && !strstr(p.why, "memory"));
    /* Nothing fits: the probe (its features are not what runs out). */
    in.memory_available_bytes = 0.5e9;
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK_MSG(!p.finetune && p.img_size == 224, "%d %d px", p.finetune, p.img_size);
    /* A size not timed (memory extrapolated, finetune_ips 0) says so among the rates. */
    in = cifar_like(86400);
    in.finetune_ips[3] = 0;
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_OK);
    CHECK(p.img_size == 160 && strstr(p.why, "not timed at 224 px"));
    /* A negative figure is a caller's bug. */
    in.finetune_bytes[1] = -1;
    CHECK(hs_auto_plan_make(&in, 10, &p, &err) == HS_ERR_INTERNAL);
}

/* Over budgets from a minute to a week and rates over three orders of magnitude, the
 * estimate (recomputed here from the choice) stays within the usable time, which stays
 * within the budget; larger budgets never give a smaller image or fewer epochs at the same
 * size. */
static void test_never_over_budget(void) {
    int plans = 0, finetunes = 0;
    for (double scale = 0.1; scale <= 100; scale *= 3.1) {
        int last_size = 0, last_epochs = -1, last_ft = 0;
        for (double budget = 60; budget <= 7 * 86400; budget *= 1.37) {
            hs_auto_input in = cifar_like(budget);
            for (int k = 0; k < in.size_count; k++) {
                in.feature_ips[k] *= scale;
                in.finetune_ips[k] *= scale;
                in.finetune_bytes[k] = 1e9 * in.sizes[k] * in.sizes[k] / (128.0 * 128.0);
            }
            /* every other scale: 2 GB, so 224 px (3.1 GB) never fine-tunes */
            int limited = ((int)(log(scale / 0.1) / log(3.1) + 0.5)) % 2;
            in.memory_available_bytes = limited ? 2e9 : 0;
            hs_auto_plan p;
            hs_error err = {0};
            hs_status st = hs_auto_plan_make(&in, 10, &p, &err);
            if (st) {
                CHECK_MSG(st == HS_ERR_ARGUMENT && last_size == 0, "budget %g: %s", budget,
                          err.message);
                continue;
            }
            plans++;
            finetunes += p.finetune;
            double t = recomputed(&in, &p);
            CHECK_MSG(fabs(t - p.estimate_seconds) < 1e-6 * t, "estimate %g, recomputed %g",
                      p.estimate_seconds, t);
            CHECK_MSG(t <= p.usable_seconds + 1e-9 && p.usable_seconds <= budget,
                      "budget %g: estimate %g, usable %g", budget, t, p.usable_seconds);
            CHECK_MSG(p.finetune >= last_ft, "budget %g: back to the probe", budget);
            CHECK_MSG(!(limited && p.finetune && p.img_size == 224), "budget %g: 224 px over "
                      "the memory", budget);
            if (p.finetune == last_ft && p.img_size == last_size)
                CHECK_MSG(p.epochs >= last_epochs, "budget %g: fewer epochs", budget);
            if (p.finetune && p.epochs >= HS_AUTO_GOOD_FT_EPOCHS && last_ft &&
                last_epochs >= HS_AUTO_GOOD_FT_EPOCHS)
                CHECK_MSG(p.img_size >= last_size, "budget %g: a smaller image", budget);
            last_size = p.img_size;
            last_epochs = p.epochs;
            last_ft = p.finetune;
        }
    }
    CHECK(plans > 100 && finetunes > 50);
}

static int run(const char *args, const char *out) {
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "'%s' train '%s' --img-size 32 --batch-size 6 --seed 1 "
             "--threads 2 --cache-dir '%s' %s > '%s' 2> '%s'", HS_CLI_PATH, DATA, ROOT "/cache",
             args, out, ROOT "/stderr.txt");
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *read_all(const char *path) {
    char *text = NULL;
    size_t size = 0;
    hs_error err = {0};
    return hs_read_file(path, 1 << 24, &text, &size, &err) ? NULL : text;
}

static double number(const cJSON *o, const char *a, const char *b) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b) x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static int finetune_epochs_at_most(const cJSON *choice, int cap) {
    return number(choice, "finetune_epochs", NULL) <= cap;
}

static void test_cli(void) {
    const char *names[3] = {"blue", "green", "red"};
    test_make_colour_classes(ROOT, DATA, names, 8, 3);
    /* 10 minutes and at most 2 fine-tune epochs: enough for a fine-tune even when other
     * processes slow the measurement down, and short. */
    CHECK(run("--strategy auto --budget 10m --epochs 2 --out '" ROOT "/run'",
              ROOT "/stdout.txt") == 0);
    char *out = read_all(ROOT "/stdout.txt"), *log = read_all(ROOT "/stderr.txt");
    CHECK_MSG(out && strstr(out, "auto: chose"), "%s", out ? out : "");
    /* The paragraph: the rates it measured and what it chose. */
    CHECK_MSG(log && strstr(log, "auto: Measured on 18 + 6 images: feature pass") &&
                  strstr(log, "images/s at 32 px; fine-tune step") &&
                  strstr(log, "the same run by hand"),
              "%s", log ? log : "");
    /* Its progress counts images (the callback's contract, and what images/s divides): three
     * feature passes over the 18 images, then 1 warm-up + 3 timed steps of 6. */
    CHECK_MSG(log && strstr(log, "measuring speeds") && strstr(log, "78/78 "), "%s",
              log ? log : "");
    free(out);
    free(log);
    char *text = read_all(ROOT "/run/run.json");
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "auto");
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(root, "options");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(a, "choice");
    const cJSON *strategy = cJSON_GetObjectItemCaseSensitive(choice, "strategy");
    const cJSON *ran = cJSON_GetObjectItemCaseSensitive(opts, "strategy");
    CHECK(cJSON_IsString(strategy) && cJSON_IsString(ran) &&
          !strcmp(strategy->valuestring, ran->valuestring));
    const cJSON *measured = cJSON_GetObjectItemCaseSensitive(a, "measured");
    CHECK(cJSON_GetArraySize(measured) == 1);
    const cJSON *m0 = cJSON_GetArrayItem(measured, 0);
    CHECK(number(m0, "img_size", NULL) == 32 && number(m0, "feature_images_per_second", NULL) > 0 &&
          number(m0, "finetune_images_per_second", NULL) > 0);
    /* Memory, on Linux: what is available and the fine-tune's peak (its tape, optimizer and
     * loader at 32 px: more than a megabyte, less than what is available). */
    double avail = number(a, "memory_available_bytes", NULL);
    double peak = number(m0, "finetune_peak_bytes", NULL);
    CHECK_MSG(avail > 0 && peak > 1e6 && peak < avail, "available %g, peak %g", avail, peak);
    double estimate = number(a, "estimate", "after_plan_seconds");
    double usable = number(a, "usable_seconds", NULL);
    CHECK_MSG(estimate > 0 && estimate <= usable && usable <= 600, "estimate %g, usable %g",
              estimate, usable);
    CHECK(number(a, "actual", "total_seconds") > 0 && number(a, "budget_seconds", NULL) == 600);
    CHECK(finetune_epochs_at_most(choice, 2));
    /* The epochs it ran are the plan's. */
    double epochs = number(root, "metrics", "epochs_run");
    int finetune = cJSON_IsString(strategy) && !strcmp(strategy->valuestring, "finetune");
    CHECK_MSG(epochs == (finetune ? number(choice, "finetune_epochs", NULL)
                                  : number(choice, "probe_epochs", NULL)),
              "%g epochs", epochs);
    printf("auto on 18 images, 10 minutes, --epochs 2: %s, estimated %.1f s after planning, took %.1f s\n",
           cJSON_IsString(strategy) ? strategy->valuestring : "?", estimate,
           number(a, "actual", "after_plan_seconds"));
    cJSON_Delete(root);

    /* What it refuses, exit 2 naming the flag, before any work. */
    const char *bad[][2] = {{"--strategy auto", "--budget"},
                            {"--strategy auto --budget 30s", "at least 1m"},
                            {"--strategy auto --budget 10x", "--budget"},
                            {"--budget 10m", "--budget is for --strategy auto"},
                            {"--strategy auto --budget 10m --resume", "--resume"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char args[300];
        snprintf(args, sizeof args, "%s --out '%s'", bad[i][0], ROOT "/never");
        CHECK_MSG(run(args, "/dev/null") == 2, "%s", bad[i][0]);
        char *e = read_all(ROOT "/stderr.txt");
        CHECK_MSG(e && strstr(e, bad[i][1]), "%s: %s", bad[i][0], e ? e : "");
        free(e);
    }
    CHECK(!hs_path_exists(ROOT "/never"));
}

int main(void) {
    test_choices();
    test_memory();
    test_never_over_budget();
    test_require_lite0_weights();
    test_cli();
    return check_finish("test_auto_plan");
}
