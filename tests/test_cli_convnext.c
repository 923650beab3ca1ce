/* The headstart command with ConvNeXt-Tiny, random weights (torchvision's file is not on these
 * machines) at 32 x 32 pixels so it runs in seconds: classify (224 px), a probe train, a fine-tune
 * through every ConvNeXt layer kind's backward (LayerNorm, GELU, layer scale, the pointwise
 * convolutions), then predict and evaluate from the fine-tuned run. What is checked is that
 * each command runs and writes what it says; the accuracy of a random backbone means nothing.
 * (Its numerics are test_convnext's.) */
#include <string.h>
#include <sys/wait.h>

#include "check.h"
#include "cli_run.h"
#include "colour_images.h"
#include "test_util.h"

#define TMP HS_TEST_TMP_DIR "/cli_convnext"

static int run(const char *args) { return cli_run_in(TMP, args); }

static int count(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

int main(void) {
    static const char *const names[3] = {"blue", "green", "red"};
    CHECK(system("rm -rf '" TMP "'") == 0); /* runs of an earlier test run */
    test_make_dir(TMP);
    test_make_colour_classes(TMP "/data", TMP "/data", names, 6, 17);
    const char *common = "--backbone convnext_tiny --weights none --img-size 32";
    char args[1024];

    /* classify (at the backbone's 224 px: it has no --img-size): the ImageNet top 5 of each
     * image (the 1000-class head is random) */
    CHECK_MSG(run("classify --backbone convnext_tiny --weights none data/red") == 0, "%s",
              err_text);
    CHECK_MSG(count(out_text, "  5. ") == 6, "%s", out_text);
    CHECK_MSG(strstr(err_text, "convnext_tiny runs with random weights"), "%s", err_text);

    /* train, probe: features at 32 px, 2 epochs */
    snprintf(args, sizeof args, "train data %s --epochs 2 --batch-size 4 --val-fraction 0.34 "
             "--no-cache --out probe", common);
    CHECK_MSG(run(args) == 0, "%s", err_text);
    CHECK_MSG(strstr(err_text, "epoch   2/2"), "%s", err_text);
    CHECK(test_file_exists(TMP "/probe/model.safetensors"));

    /* train, fine-tune: the top 2 backbone blocks, then predict and evaluate from the run */
    snprintf(args, sizeof args, "train data %s --strategy finetune --probe-epochs 1 --epochs 1 "
             "--unfreeze 2 --batch-size 4 --val-fraction 0.34 --no-cache --out finetune",
             common);
    CHECK_MSG(run(args) == 0, "%s", err_text);
    CHECK_MSG(strstr(err_text, "epoch   1/1"), "%s", err_text);
    CHECK(test_file_exists(TMP "/finetune/model.safetensors"));
    CHECK_MSG(run("predict finetune data/blue/00.png data/green/00.png") == 0, "%s", err_text);
    CHECK_MSG(strstr(out_text, "00.png") && count(out_text, "00.png") == 2, "%s", out_text);
    CHECK_MSG(run("evaluate finetune data") == 0, "%s", err_text);
    CHECK_MSG(strstr(out_text, "accuracy"), "%s", out_text);
    return check_finish("test_cli_convnext");
}
