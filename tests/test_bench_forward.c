/* The benchmark's FLOP count against the published figures, and its result fields. */
#include <string.h>

#include "bench_forward.h"
#include "check.h"
#include "net.h"
#include "ops.h"

/* GFLOP = 2 x multiply-adds of the backbone: the layers before feature_end. */
static void check_gflop(const char *backbone, double want, double rtol) {
    hs_error err = {0};
    hs_net *net = NULL;
    CHECK(hs_net_create(backbone, 1, &net, &err) == HS_OK);
    if (!net) return;
    double gflop = 0;
    CHECK(hs_bench_count_gflop(net, 224, &gflop, &err) == HS_OK);
    CHECK_MSG(fabs(gflop - want) <= rtol * want, "%s: %.4f GFLOP per image, want %.4f",
              backbone, gflop, want);
    hs_net_free(net);
}

static void check_run(void) {
    hs_error err = {0};
    hs_net *net = NULL;
    CHECK(hs_net_create("efficientnet_lite0", 1, &net, &err) == HS_OK);
    if (!net) return;
    hs_bench_options o;
    hs_bench_options_init(&o);
    o.batch = 2;
    o.img_size = 64;
    o.min_runs = 2;
    o.min_seconds = 0;
    hs_bench_result r;
    CHECK_MSG(hs_bench_forward(net, &o, &r, &err) == HS_OK, "%s", err.message);
    CHECK(r.runs == 2 && r.best_s > 0 && r.best_s <= r.median_s);
    CHECK(fabs(r.images_per_s - 2 / r.median_s) < 1e-9 * r.images_per_s);
    CHECK(fabs(r.gflops - r.gflop_per_image * r.images_per_s) < 1e-9 * r.gflops);
    int layers = 0, convs = 0;
    double gflop = 0;
    for (int k = 0; k < r.kernel_count; k++) {
        layers += r.kernels[k].layers;
        gflop += r.kernels[k].gflop;
        CHECK(r.kernels[k].kernel[0] != '\0');
    }
    for (int i = 0; i < net->feature_end; i++) convs += net->layers[i].kind == HS_LAYER_CONV;
    CHECK_MSG(layers == convs, "%d layers in the kernel table, %d convolutions", layers, convs);
    CHECK(fabs(gflop - r.gflop_per_image) < 1e-9);
    /* bf16: oneDNN's bf16 kernels in the table where the CPU has them natively; refused
     * where oneDNN has none (capped to AVX2: test_bench_forward_AVX2) */
    o.bf16 = 1;
    hs_status st = hs_bench_forward(net, &o, &r, &err);
    if (hs_dnnl_bf16_support() == 0) {
        CHECK_MSG(st == HS_ERR_ARGUMENT && strstr(err.message, "--precision f32"), "%s",
                  err.message);
    } else {
        CHECK_MSG(st == HS_OK, "%s", err.message);
        /* oneDNN 2.6 names its AMX kernels ..._amx_bf16, oneDNN 3 ..._amx */
        for (int k = 0; k < r.kernel_count && hs_dnnl_bf16_support() == 2; k++)
            CHECK_MSG(strstr(r.kernels[k].kernel, "bf16") || strstr(r.kernels[k].kernel, "amx"),
                      "%s runs %s in bf16", r.kernels[k].layer, r.kernels[k].kernel);
    }
    o.bf16 = 0;
    o.batch = 0;
    CHECK(hs_bench_forward(net, &o, &r, &err) == HS_ERR_ARGUMENT && strstr(err.message, "batch"));
    hs_net_free(net);
}

int main(void) {
    /* torchvision's VGG16: 15.47 G multiply-adds, less the classifier (the head here:
     * 25088 x 4096, 4096 x 4096, 4096 x 1000) */
    check_gflop("vgg16", 2 * (15.470e9 - 25088.0 * 4096 - 4096.0 * 4096 - 4096.0 * 1000) / 1e9,
                0.002);
    /* EfficientNet-Lite0: 0.40 G multiply-adds per image as bench/README.md and timm give
     * it, classifier (1280 x 1000) included; counts of that figure differ in what they
     * include, and the convolutions alone come to about 4 % less */
    check_gflop("efficientnet_lite0", 2 * (0.40e9 - 1280.0 * 1000) / 1e9, 0.05);
    check_run();
    return check_finish("test_bench_forward");
}
