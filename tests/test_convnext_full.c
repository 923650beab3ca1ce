/* Full-size convnext_tiny (random weights: torchvision's file is not on these machines)
 * against PyTorch, from state dicts PyTorch saved in both .pth layouts and from the same
 * weights under timm 1.0.29's names. The fixtures are 115 MB a file, so they are not in the
 * repository: make them with
 *   .venv/bin/python tools/make_convnext_fixtures.py --full DIR
 * and run this test with HS_CONVNEXT_FULL_DIR=DIR; without it the test is skipped.
 * Tolerance: 1e-4 relative plus 1e-5 absolute, as every whole-network check. */
#include <string.h>

#include "check.h"
#include "convnext_timm.h"
#include "net.h"
#include "test_util.h"

static void check_outputs(hs_net *net, const hs_state_dict *expected, const char *what) {
    hs_error err = {0};
    float *x = test_deterministic_input(2L * 3 * 224 * 224);
    float features[2 * 768], logits[2 * 1000];
    char key[128];
    CHECK(hs_net_features(net, x, 2, 224, 224, features, &err) == HS_OK);
    CHECK(hs_net_head(net, features, 2, logits, &err) == HS_OK);
    snprintf(key, sizeof key, "convnext_tiny %s: features", what);
    CHECK_CLOSE(key, features, test_entry(expected, "features")->data, 2 * 768, 1e-4f, 1e-5f);
    snprintf(key, sizeof key, "convnext_tiny %s: logits", what);
    CHECK_CLOSE(key, logits, test_entry(expected, "logits")->data, 2 * 1000, 1e-4f, 1e-5f);
    free(x);
}

int main(void) {
    const char *dir = getenv("HS_CONVNEXT_FULL_DIR");
    if (!dir)
        CHECK_SKIP("test_convnext_full needs the 115 MB-a-file full-size convnext_tiny fixtures "
                   "that PyTorch makes (tools/make_convnext_fixtures.py --full DIR, not in CI, "
                   "which has no PyTorch); set HS_CONVNEXT_FULL_DIR=DIR to run it");
    char path[4096];
    snprintf(path, sizeof path, "%s/convnext_tiny_random_expected.safetensors", dir);
    hs_state_dict expected;
    test_load_fixture(path, &expected);
    static const char *const layouts[] = {"zip", "legacy"};
    for (int i = 0; i < 2; i++) {
        hs_error err = {0};
        hs_net *net = NULL;
        CHECK(hs_net_create("convnext_tiny", 0, &net, &err) == HS_OK);
        snprintf(path, sizeof path, "%s/convnext_tiny_random_%s.pth", dir, layouts[i]);
        CHECK_MSG(hs_net_load_weights(net, path, &err) == HS_OK, "%s", err.message);
        check_outputs(net, &expected, layouts[i]);
        hs_net_free(net);
    }
    hs_state_dict timm, mapped;
    snprintf(path, sizeof path, "%s/convnext_tiny_random_timm.safetensors", dir);
    test_load_fixture(path, &timm);
    hs_sd_init(&mapped);
    hs_error err = {0};
    hs_net *net = NULL;
    CHECK(hs_net_create("convnext_tiny", 0, &net, &err) == HS_OK);
    CHECK(test_convnext_from_timm(net, &timm, &mapped) == 182);
    CHECK_MSG(hs_net_load_state_dict(net, &mapped, "timm", &err) == HS_OK, "%s", err.message);
    check_outputs(net, &expected, "timm names");
    hs_net_free(net);
    hs_sd_free(&timm);
    hs_sd_free(&mapped);
    hs_sd_free(&expected);
    return check_finish("test_convnext_full");
}
