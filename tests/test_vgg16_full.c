/* Full-size VGG16 (random weights: torchvision's file is not on these machines) against
 * PyTorch, from state dicts PyTorch saved in both .pth layouts. The fixtures are 528 MB a
 * layout, so they are not in the repository: make them with
 *   .venv/bin/python tools/make_net_fixtures.py --full-vgg DIR
 * and run this test with HS_VGG16_FULL_DIR=DIR; without it the test is skipped.
 * Tolerance: 1e-4 relative plus 1e-5 absolute, as every whole-network check. */
#include <string.h>

#include "check.h"
#include "net.h"
#include "test_util.h"

static void check_layout(const char *dir, const char *layout, const hs_state_dict *expected) {
    char path[4096];
    snprintf(path, sizeof path, "%s/vgg16_random_%s.pth", dir, layout);
    hs_error err = {0};
    hs_net *net = NULL;
    CHECK(hs_net_create("vgg16", 0, &net, &err) == HS_OK);
    CHECK_MSG(hs_net_load_weights(net, path, &err) == HS_OK, "%s", err.message);
    float *x = test_deterministic_input(3L * 224 * 224);
    float *features = malloc(25088 * sizeof(float)), logits[1000];
    CHECK(hs_net_features(net, x, 1, 224, 224, features, &err) == HS_OK);
    CHECK(hs_net_head(net, features, 1, logits, &err) == HS_OK);
    /* The fixture keeps the first 4096 features: enough to see every channel's first maps. */
    CHECK_CLOSE("VGG16 features", features, test_entry(expected, "features")->data, 4096,
                1e-4f, 1e-5f);
    CHECK_CLOSE("VGG16 logits", logits, test_entry(expected, "logits")->data, 1000, 1e-4f,
                1e-5f);
    free(x);
    free(features);
    hs_net_free(net);
}

int main(void) {
    const char *dir = getenv("HS_VGG16_FULL_DIR");
    if (!dir)
        CHECK_SKIP("test_vgg16_full needs the 528 MB-a-layout full-size VGG16 fixtures that "
                   "PyTorch makes (tools/make_net_fixtures.py --full-vgg DIR, not in CI, which "
                   "has no PyTorch); set HS_VGG16_FULL_DIR=DIR to run it");
    char path[4096];
    snprintf(path, sizeof path, "%s/vgg16_random_expected.safetensors", dir);
    hs_state_dict expected;
    test_load_fixture(path, &expected);
    check_layout(dir, "zip", &expected);
    check_layout(dir, "legacy", &expected);
    hs_sd_free(&expected);
    return check_finish("test_vgg16_full");
}
