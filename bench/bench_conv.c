/* One convolution in each activation layout (and the im2col fallback): which layout is fastest
 * for oneDNN on this CPU. Usage: bench_conv [threads]. Not a test. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops.h"

static double now(void) { return omp_get_wtime(); }

typedef struct conv_bench {
    const char *name;
    int n, in_c, out_c, h, k, stride, groups;
} conv_bench;

static const conv_bench cases[] = {
    {"VGG conv2_2 128->128 112px", 8, 128, 128, 112, 3, 1, 1},
    {"VGG conv4_2 512->512 28px", 8, 512, 512, 28, 3, 1, 1},
    {"VGG conv1_1 3->64 224px", 8, 3, 64, 224, 3, 1, 1},
    {"Lite dw 3x3 s2 96ch 112px", 32, 96, 96, 112, 3, 2, 96},
    {"Lite 1x1 144->24 56px", 32, 144, 24, 56, 1, 1, 1},
    {"Lite dw 5x5 672ch 14px", 32, 672, 672, 14, 5, 1, 672},
};

int main(int argc, char **argv) {
    if (argc > 1) omp_set_num_threads(atoi(argv[1]));
    /* src layout, dst layout (4: oneDNN's choice), bf16 (2: bf16 activations in and out, as
     * hs_net_run runs bf16) */
    static const int variants[][3] = {{0, 0, 0}, {1, 1, 0}, {2, 2, 0}, {0, 2, 0}, {4, 4, 0},
                                      {1, 1, 1}, {2, 2, 1}, {0, 2, 1}, {2, 2, 2}, {4, 4, 2}};
    const char *names[] = {"nchw", "nhwc", "16c", "8c", "any"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const conv_bench *c = &cases[i];
        int pad = c->k / 2;
        hs_conv2d_shape s = {c->in_c, c->out_c, c->k, c->k, c->stride, c->stride,
                             pad, pad, pad, pad, 1, 1, c->groups};
        int oh = hs_conv_out_size(c->h, c->k, c->stride, pad, pad, 1);
        double macs = (double)c->n * c->out_c * oh * oh * (c->in_c / c->groups) * c->k * c->k;
        size_t wc = (size_t)c->out_c * (c->in_c / c->groups) * c->k * c->k;
        float *wt = malloc(wc * 4), *b = malloc(c->out_c * 4);
        for (size_t j = 0; j < wc; j++) wt[j] = (float)((j * 7919) % 1000) / 1000.0f - 0.5f;
        for (int j = 0; j < c->out_c; j++) b[j] = 0.01f * j;
        size_t xs = hs_layout_size(HS_LAYOUT_NCHW16C, c->n, c->in_c, c->h, c->h);
        size_t ys = hs_layout_size(HS_LAYOUT_NCHW16C, c->n, c->out_c, oh, oh);
        float *x = calloc(xs, 4), *y = calloc(ys, 4);
        for (size_t j = 0; j < xs; j++) x[j] = (float)(j % 13) * 0.1f;
        printf("%-30s", c->name);
        for (size_t l = 0; l < sizeof variants / sizeof variants[0]; l++) {
            const int *v = variants[l];
            hs_conv_options opt = {v[0], v[1], HS_POST_RELU, v[2] > 0, v[2] == 2};
            hs_conv_plan *p = hs_conv_plan_create(&s, c->n, c->h, c->h, wt, b, &opt);
            if (!p) { printf(" -"); continue; }
            double best = 1e9;
            for (int r = 0; r < 4; r++) {
                double t0 = now();
                hs_conv_plan_run(p, x, y);
                double t = now() - t0;
                if (r && t < best) best = t;
            }
            printf("\n   %s->%s%s %6.1f GF/s (%s, %s->%s)", names[v[0]], names[v[1]],
                   v[2] == 2 ? " bf16 act" : v[2] ? " bf16" : "", 2 * macs / best / 1e9,
                   hs_conv_plan_impl(p), names[hs_conv_plan_src_layout(p)],
                   names[hs_conv_plan_dst_layout(p)]);
            hs_conv_plan_free(p);
        }
        double best = 1e9;
        for (int r = 0; r < 3; r++) {
            double t0 = now();
            hs_conv2d_forward_im2col(x, c->n, c->h, c->h, wt, b, &s, y);
            double t = now() - t0;
            if (r && t < best) best = t;
        }
        printf("\n   im2col %6.1f GF/s\n", 2 * macs / best / 1e9);
        free(wt); free(b); free(x); free(y);
    }
    return 0;
}
