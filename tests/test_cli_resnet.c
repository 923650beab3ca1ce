/* The headstart command with the ResNets and VGG16-BN, as a user runs it, with random
 * weights (--weights none: no file needed): classify, a probe and a fine-tuning run on
 * generated images, predict and evaluate of those runs, and the backbones listing. */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "check.h"
#include "cli_run.h"
#include "colour_images.h"
#include "headstart.h"
#include "test_util.h"

#define TMP HS_TEST_TMP_DIR "/cli_resnet"

static int run(const char *args) { return cli_run_in(TMP, args); }

static int count_lines(const char *text) {
    int n = 0;
    for (; *text; text++) n += *text == '\n';
    return n;
}

/* The line of out_text that follows marker (which starts with '\n'), without its '\n'. */
static void line_of(const char *marker, char *line, size_t size) {
    const char *at = strstr(out_text, marker);
    line[0] = '\0';
    if (!at) return;
    at++;
    const char *end = strchr(at, '\n');
    snprintf(line, size, "%.*s", end ? (int)(end - at) : (int)strlen(at), at);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void test_listing(void) {
    CHECK(run("backbones") == 0);
    static const char *const rows[] = {"resnet18 ", "resnet34 ", "resnet50 ", "resnet101 ",
                                       "vgg16_bn "};
    for (int i = 0; i < 5; i++)
        CHECK_MSG(strstr(out_text, rows[i]) != NULL, "%s not listed: %s", rows[i], out_text);
    /* A missing file is named with torchvision's address. */
    CHECK_MSG(strstr(out_text, "https://download.pytorch.org/models/resnet50-0676ba61.pth") ||
                  strstr(out_text, "resnet50-0676ba61.pth"), "%s", out_text);

    /* Only ResNet-50's V2 file here (the caches pointed away): it is found, and its row
     * resizes to 232 as torchvision prepares that file; EfficientNet-B0's row is bicubic. */
    setenv("HOME", TMP, 1);
    static const char *const away[] = {"TORCH_HOME", "XDG_CACHE_HOME", "HEADSTART_WEIGHTS",
                                       "HF_HOME", "HF_HUB_CACHE"};
    for (int i = 0; i < 5; i++) unsetenv(away[i]);
    test_make_dir(TMP "/weights");
    FILE *f = fopen(TMP "/weights/resnet50-11ad3fa6.pth", "w");
    CHECK(f != NULL);
    if (f) fclose(f);
    CHECK(run("backbones --format csv") == 0);
    char r50[4096], b0[4096];
    line_of("\nresnet50,", r50, sizeof r50);
    line_of("\nefficientnet_b0,", b0, sizeof b0);
    CHECK_MSG(strncmp(r50, "resnet50,224,232,2048,", 22) == 0 &&
                  ends_with(r50, "weights/resnet50-11ad3fa6.pth,bilinear"), "%s", r50);
    CHECK_MSG(strncmp(b0, "efficientnet_b0,224,256,1280,", 29) == 0 && ends_with(b0, ",bicubic"),
              "%s", b0);
    CHECK(run("backbones --format json") == 0);
    CHECK_MSG(strstr(out_text, "\"resnet50-11ad3fa6.pth\"") && strstr(out_text, "IMAGENET1K_V2") &&
                  strstr(out_text, "\"efficientnet_b0_rwightman-3dd342df.pth\""), "%s",
              out_text);
    remove(TMP "/weights/resnet50-11ad3fa6.pth");
}

/* ImageNet's 1000 classes from a random backbone: the run works, the probabilities are a
 * distribution (each of the top 3 below 1, in order). */
static void test_classify(const char *backbone) {
    char args[512];
    snprintf(args, sizeof args,
             "classify --backbone %s --weights none --format csv --top-k 3 '%s'", backbone,
             HS_FIXTURES_DIR "/images/rgb.jpg");
    int code = run(args);
    CHECK_MSG(code == 0, "%s: exit %d: %s", backbone, code, err_text);
    CHECK_MSG(count_lines(out_text) == 4 && strstr(out_text, "rgb.jpg,1,") &&
                  strstr(out_text, "rgb.jpg,3,"), "%s: %s", backbone, out_text);
    double p[3] = {0};
    const char *line = out_text;
    for (int k = 0; k < 3 && (line = strchr(line, '\n')); k++) {
        line++;
        const char *last = NULL;
        for (const char *c = line; *c && *c != '\n'; c++)
            if (*c == ',') last = c;
        p[k] = last ? atof(last + 1) : -1;
    }
    CHECK_MSG(p[0] > 0 && p[0] < 1 && p[0] >= p[1] && p[1] >= p[2] && p[2] > 0,
              "%s: %g %g %g", backbone, p[0], p[1], p[2]);
    CHECK_MSG(strstr(err_text, "random weights") != NULL, "%s: %s", backbone, err_text);
}

/* A probe, then a fine-tuning run of the top two blocks (projection shortcuts and all), each
 * predicted and evaluated from its run folder. */
static void test_train(void) {
    static const char *const names[3] = {"blue", "green", "red"};
    test_make_colour_classes(TMP "/data", TMP "/data", names, 6, 3);
    const char *common = "train data --backbone resnet18 --weights none --img-size 32 "
                         "--batch-size 4 --val-fraction 0.34 --no-cache --seed 1";
    static const struct {
        const char *run, *extra;
    } runs[] = {
        {"probe18", "--epochs 2"},
        {"tune18", "--strategy finetune --probe-epochs 1 --epochs 1 --unfreeze 2 --bn train"},
    };
    for (int i = 0; i < 2; i++) {
        char args[1024];
        snprintf(args, sizeof args, "%s %s --out %s", common, runs[i].extra, runs[i].run);
        int code = run(args);
        CHECK_MSG(code == 0, "%s: exit %d: %s", runs[i].run, code, err_text);
        char path[512], record[1 << 14];
        snprintf(path, sizeof path, TMP "/%s/run.json", runs[i].run);
        cli_read_file(path, record, sizeof record);
        CHECK_MSG(strstr(record, "\"resnet18\"") != NULL, "%s: %s", runs[i].run, record);
        /* --unfreeze 2: ResNet-18's top two blocks, layer4.0 (with its projection) and .1 */
        if (i == 1)
            CHECK_MSG(strstr(record, "\"first_trained_layer\":\t\"layer4.0.conv1\"") != NULL,
                      "%s", record);

        snprintf(args, sizeof args, "predict %s --top-k 1 --format csv data/red", runs[i].run);
        code = run(args);
        CHECK_MSG(code == 0 && count_lines(out_text) == 1 + 6, "%s: exit %d: %s%s",
                  runs[i].run, code, out_text, err_text);
        snprintf(args, sizeof args, "evaluate %s data", runs[i].run);
        code = run(args);
        CHECK_MSG(code == 0, "%s: exit %d: %s", runs[i].run, code, err_text);
        CHECK_MSG(strstr(out_text, " of 18 images)") != NULL, "%s: %s", runs[i].run,
                  out_text);
    }
}

/* A timm hub folder (model.safetensors with config.json beside it) brings its
 * preprocessing to classify, train, predict and evaluate: train records the config's size,
 * interpolation, mean and std in run.json, and predict prepares images as recorded (the
 * probabilities move when the record's interpolation or mean is edited). */
static void test_hub_config(void) {
    test_make_dir(TMP "/hub");
    hs_net *net = NULL;
    hs_error err = {0};
    CHECK(hs_net_create("resnet18", 3, &net, &err) == HS_OK);
    CHECK_MSG(hs_net_save_weights(net, TMP "/hub/model.safetensors", &err) == HS_OK, "%s",
              err.message);
    hs_net_free(net);
    FILE *f = fopen(TMP "/hub/config.json", "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("{\"architecture\": \"resnet18\", \"pretrained_cfg\": {\"input_size\": [3, 40, 40],"
          " \"crop_pct\": 0.8, \"interpolation\": \"bicubic\", \"mean\": [0.5, 0.4, 0.3],"
          " \"std\": [0.2, 0.25, 0.3]}}\n", f);
    fclose(f);

    int code = run("classify --backbone resnet18 --weights hub/model.safetensors --format csv "
                   "--top-k 1 data/red");
    CHECK_MSG(code == 0 && strstr(err_text, "hub/config.json") && strstr(err_text, "bicubic") &&
                  strstr(err_text, "40 px, resize 50"), "exit %d: %s", code, err_text);

    code = run("train data --backbone resnet18 --weights hub/model.safetensors --epochs 1 "
               "--batch-size 4 --val-fraction 0.34 --no-cache --seed 1 --out hubrun");
    CHECK_MSG(code == 0, "exit %d: %s", code, err_text);
    static char record[1 << 15];
    cli_read_file(TMP "/hubrun/run.json", record, sizeof record);
    CHECK_MSG(strstr(record, "\"img_size\":\t40") && strstr(record, "\"interpolation\":\t"
                                                                     "\"bicubic\"") &&
                  strstr(record, "\"mean\":\t[0.5, 0.4000000") &&
                  strstr(record, "\"std\":\t[0.2000000"),
              "%s", record);

    static char first[1 << 16], changed[1 << 16];
    code = run("predict hubrun --format csv --top-k 3 data/red");
    CHECK_MSG(code == 0, "exit %d: %s", code, err_text);
    snprintf(first, sizeof first, "%s", out_text);
    static const char *const edits[2][2] = {{"\"bicubic\"", "\"bilinear\""},
                                            {"[0.5, 0.4", "[0.1, 0.4"}};
    for (int k = 0; k < 2; k++) {
        static char edited[1 << 15];
        char *at = strstr(record, edits[k][0]);
        CHECK(at != NULL);
        if (!at) continue;
        snprintf(edited, sizeof edited, "%.*s%s%s", (int)(at - record), record, edits[k][1],
                 at + strlen(edits[k][0]));
        f = fopen(TMP "/hubrun/run.json", "w");
        CHECK(f != NULL);
        if (!f) return;
        fputs(edited, f);
        fclose(f);
        code = run("predict hubrun --format csv --top-k 3 data/red");
        snprintf(changed, sizeof changed, "%s", out_text);
        CHECK_MSG(code == 0 && strcmp(first, changed) != 0,
                  "edit %d of run.json did not change predict: exit %d: %s", k, code, err_text);
        f = fopen(TMP "/hubrun/run.json", "w");
        if (f) fputs(record, f), fclose(f);
    }
    code = run("predict hubrun --format csv --top-k 3 data/red");
    CHECK_MSG(code == 0 && strcmp(first, out_text) == 0, "predict is not repeatable: %s",
              out_text);
    code = run("evaluate hubrun data");
    CHECK_MSG(code == 0 && strstr(out_text, " of 18 images)"), "exit %d: %s%s", code, out_text,
              err_text);
}

int main(void) {
    CHECK(system("rm -rf '" TMP "'") == 0); /* runs of an earlier test run */
    test_make_dir(TMP);
    test_listing();
    test_classify("resnet18");
    test_classify("resnet50");
    test_classify("vgg16_bn");
    test_train();
    test_hub_config();
    return check_finish("test_cli_resnet");
}
