/* The command line with the mobile backbones (issue 10): `headstart backbones` lists them,
 * and classify, a tiny probe run, a tiny fine-tune run and predict work for
 * mobilenet_v3_small and efficientnet_b0 with random weights (--weights none: no file is
 * needed) at --img-size 32. What is checked is that each command succeeds and says what it
 * did; the numbers themselves are checked against PyTorch in test_mobile.c. */
#include <string.h>
#include <sys/wait.h>

#include "check.h"
#include "cli_run.h"
#include "test_util.h"

#define TMP HS_TEST_TMP_DIR "/mobile_cli"

static int run(const char *args) { return cli_run_in(TMP, args); }

static void test_listed(void) {
    CHECK(run("backbones") == 0);
    static const char *const names[] = {"mobilenet_v2",    "mobilenet_v3_small",
                                        "mobilenet_v3_large", "efficientnet_b0",
                                        "efficientnet_b1", "efficientnet_b2",
                                        "efficientnet_b3"};
    for (int i = 0; i < 7; i++) CHECK_MSG(strstr(out_text, names[i]), "%s", names[i]);
    /* feature sizes as the table gives them (checked against the built nets in test_mobile),
     * and torchvision's interpolation for each net's weights */
    CHECK_MSG(strstr(out_text, "mobilenet_v3_small     224    256 bilinear      576"), "%s",
              out_text);
    CHECK_MSG(strstr(out_text, "efficientnet_b3        300    320 bicubic      1536"), "%s",
              out_text);
}

static void test_backbone(const char *name) {
    char args[1024];
    snprintf(args, sizeof args, "classify --backbone %s --weights none --top-k 3 --format csv "
             "data/a/0.jpg data/b/0.png", name);
    int code = run(args);
    CHECK_MSG(code == 0, "%s classify: exit %d: %s", name, code, err_text);
    /* a header and three rows an image */
    int lines = 0;
    for (const char *p = out_text; *p; p++) lines += *p == '\n';
    CHECK_MSG(lines == 7, "%s classify: %s", name, out_text);

    static const char *const strategies[] = {"probe", "finetune"};
    for (int s = 0; s < 2; s++) {
        snprintf(args, sizeof args, "train data --backbone %s --weights none --img-size 32 "
                 "--epochs 1 --probe-epochs 1 --batch-size 2 --val-fraction 0.34 --no-cache "
                 "--strategy %s --out run_%s_%s", name, strategies[s], name, strategies[s]);
        code = run(args);
        CHECK_MSG(code == 0, "%s %s: exit %d: %s", name, strategies[s], code, err_text);
        CHECK_MSG(strstr(out_text, "run written to run_"), "%s %s: %s", name, strategies[s],
                  out_text);
        snprintf(args, sizeof args, "predict run_%s_%s --format csv data/b", name,
                 strategies[s]);
        code = run(args);
        CHECK_MSG(code == 0 && strstr(out_text, "data/b/0.png"), "%s %s predict: exit %d: %s%s",
                  name, strategies[s], code, out_text, err_text);
    }
}

int main(void) {
    test_make_dir(TMP);
    /* Two classes of three images each. */
    CHECK(system("cd " TMP " && rm -rf data run_* && mkdir -p data/a data/b && for i in 0 1 2; "
                 "do cp " HS_FIXTURES_DIR "/images/rgb.jpg data/a/$i.jpg && cp " HS_FIXTURES_DIR
                 "/images/gray.png data/b/$i.png; done") == 0);
    test_listed();
    test_backbone("mobilenet_v3_small");
    test_backbone("efficientnet_b0");
    return check_finish("test_mobile_cli");
}
