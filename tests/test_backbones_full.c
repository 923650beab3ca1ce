/* Full-size backbones against PyTorch, from random-weight state dicts that torchvision or
 * timm saved (hundreds of MB: not in the repository). Make them, and run this test, with
 *   .venv/bin/python tools/check_backbones_pytorch.py [--dir DIR] [NAME...]
 * which sets HS_BACKBONES_FULL_DIR=DIR; without it the test is skipped.
 *
 * For every DIR/<backbone>.<source>.expected.safetensors (features and logits of
 * deterministic_input(2, 3, 224, 224)) the weights are DIR/<backbone>.<source>.pth or
 * .safetensors; <backbone> is a name of hs_backbone_find. Prints the worst relative error of
 * each; checks 1e-4 relative + 1e-5 absolute, as every whole-network check. */
#include <dirent.h>
#include <string.h>

#include "check.h"
#include "net.h"
#include "test_util.h"

/* How much of the check's tolerance the worst value uses: max |got - want| / (1e-4 |want| +
 * 1e-5), at most 1 when the check passes. */
static double tolerance_used(const float *got, const float *want, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / (1e-4 * fabs((double)want[i]) + 1e-5);
        if (e > worst) worst = e;
    }
    return worst;
}

/* max |got - want| / |want| over the values of at least 1 % of the largest |want| (the
 * smaller ones are held to the absolute tolerance). */
static double worst_relative(const float *got, const float *want, int64_t n) {
    double largest = 0, worst = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs((double)want[i]) > largest) largest = fabs((double)want[i]);
    for (int64_t i = 0; i < n; i++) {
        double w = fabs((double)want[i]);
        if (w < 0.01 * largest) continue;
        double e = fabs((double)got[i] - want[i]) / w;
        if (e > worst) worst = e;
    }
    return worst;
}

/* dir/stem + ext into out; 0 when it does not fit. */
static int join(char *out, size_t size, const char *dir, const char *stem, const char *ext) {
    int n = snprintf(out, size, "%s/%s%s", dir, stem, ext);
    return n > 0 && (size_t)n < size;
}

static void check_one(const char *dir, const char *stem) {
    char path[4096], name[256];
    size_t len = (size_t)(strchr(stem, '.') - stem);
    if (len >= sizeof name) len = sizeof name - 1;
    memcpy(name, stem, len);
    name[len] = '\0';
    const hs_backbone_info *info = hs_backbone_find(name);
    CHECK_MSG(info != NULL, "%s: no backbone %s", stem, name);
    if (!info) return;
    CHECK(join(path, sizeof path, dir, stem, ".pth"));
    if (!test_file_exists(path)) CHECK(join(path, sizeof path, dir, stem, ".safetensors"));
    hs_error err = {0};
    hs_net *net = NULL;
    CHECK(hs_net_create(name, 0, &net, &err) == HS_OK);
    hs_status st = hs_net_load_weights(net, path, &err);
    CHECK_MSG(st == HS_OK, "%s: %s", path, err.message);

    hs_state_dict expected;
    CHECK(join(path, sizeof path, dir, stem, ".expected.safetensors"));
    test_load_fixture(path, &expected);
    const hs_sd_entry *want_f = test_entry(&expected, "features");
    const hs_sd_entry *want_l = test_entry(&expected, "logits");
    int dim = hs_net_feature_dim(net), classes = hs_net_num_classes(net);
    CHECK(want_f->ndim == 2 && want_f->shape[0] == 2 && want_f->shape[1] == dim);
    CHECK(want_l->ndim == 2 && want_l->shape[0] == 2 && want_l->shape[1] == classes);
    int size = info->preprocess.input_size;
    float *x = test_deterministic_input(2L * 3 * size * size);
    float *f = test_alloc_floats(2L * dim), *logits = test_alloc_floats(2L * classes);
    if (!st && want_f->shape[1] == dim && want_l->shape[1] == classes) {
        CHECK(hs_net_features(net, x, 2, size, size, f, &err) == HS_OK);
        CHECK(hs_net_head(net, f, 2, logits, &err) == HS_OK);
        CHECK_CLOSE(stem, f, want_f->data, 2L * dim, 1e-4f, 1e-5f);
        CHECK_CLOSE(stem, logits, want_l->data, 2L * classes, 1e-4f, 1e-5f);
        printf("%-22s worst relative error (values >= 1 %% of the largest): features %.2e, "
               "logits %.2e; tolerance used: features %.0f %%, logits %.0f %%\n", stem,
               worst_relative(f, want_f->data, 2L * dim),
               worst_relative(logits, want_l->data, 2L * classes),
               100 * tolerance_used(f, want_f->data, 2L * dim),
               100 * tolerance_used(logits, want_l->data, 2L * classes));
    }
    free(x);
    free(f);
    free(logits);
    hs_sd_free(&expected);
    hs_net_free(net);
}

static int compare_names(const void *a, const void *b) { return strcmp(a, b); }

int main(void) {
    const char *dir = getenv("HS_BACKBONES_FULL_DIR");
    if (!dir)
        CHECK_SKIP("test_backbones_full needs full-size random-weight state dicts that PyTorch "
                   "saves (tools/check_backbones_pytorch.py, not in CI, which has no PyTorch); "
                   "set HS_BACKBONES_FULL_DIR=DIR to run it");
    DIR *d = opendir(dir);
    if (!d) CHECK_SKIP("cannot open HS_BACKBONES_FULL_DIR=%s", dir);
    static const char suffix[] = ".expected.safetensors";
    char stems[64][256];
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) && count < 64) {
        size_t n = strlen(e->d_name), m = sizeof suffix - 1;
        if (n <= m || strcmp(e->d_name + n - m, suffix) != 0 || n - m >= sizeof stems[0])
            continue;
        memcpy(stems[count], e->d_name, n - m);
        stems[count][n - m] = '\0';
        if (strchr(stems[count], '.')) count++; /* <backbone>.<source> */
    }
    closedir(d);
    if (count == 0) CHECK_SKIP("no *%s in %s", suffix, dir);
    qsort(stems, (size_t)count, sizeof stems[0], compare_names);
    for (int i = 0; i < count; i++) check_one(dir, stems[i]);
    return check_finish("test_backbones_full");
}
