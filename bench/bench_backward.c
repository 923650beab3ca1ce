/* Training-step cost of single convolutions shaped like EfficientNet-Lite0's layers: forward
 * with the current weights, backward data and backward weights + bias (all hs_conv_grad_plan,
 * activations in the training tape's layout, hs_grad_plans_layout(), or NCHW), each in
 * GFLOP/s (2 x multiply-adds / second), against the reference kernels; and the inference
 * plan's forward (hs_conv_plan, NCHW) for comparison.
 * Usage: bench_backward [threads] [batch] [reps] [blocked|nchw]. Not a test.
 *
 * The fast kernels run at the given batch (default 32), best of `reps` runs after a warm-up.
 * The reference kernels are single-threaded plain loops, hundreds of times slower: they run
 * once at batch 1 (their rate hardly depends on the batch) to keep the benchmark short. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "ops_grad.h"

typedef struct bench_case {
    const char *name;
    int in_c, out_c, h, k, stride, groups;
} bench_case;

/* Lite0 at 224 px: the stem, the first depthwise, an expansion, a stride-2 5x5 depthwise, a
 * projection. Padding is TF SAME as in the Lite checkpoints. */
static const bench_case cases[] = {
    {"stem 3x3 s2 3->32 224px", 3, 32, 224, 3, 2, 1},
    {"dw 3x3 32ch 112px", 32, 32, 112, 3, 1, 32},
    {"1x1 24->144 56px", 24, 144, 56, 1, 1, 1},
    {"dw 5x5 s2 144ch 56px", 144, 144, 56, 5, 2, 144},
    {"1x1 480->80 14px", 480, 80, 14, 1, 1, 1},
    {"dw 5x5 480ch 14px", 480, 480, 14, 5, 1, 480},
    {"3x3 32->32 56px (dense)", 32, 32, 56, 3, 1, 1},
};

static float *filled(size_t count, unsigned seed) {
    float *p = malloc(count * sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < count; i++) p[i] = (float)(((i + seed) * 7919u) % 1000u) / 1000.0f - 0.5f;
    return p;
}

int main(int argc, char **argv) {
    if (argc > 1) omp_set_num_threads(atoi(argv[1]));
    const int batch = argc > 2 ? atoi(argv[2]) : 32;
    const int reps = argc > 3 ? atoi(argv[3]) : 3;
    const hs_layout layout =
        argc > 4 && !strcmp(argv[4], "nchw") ? HS_LAYOUT_NCHW : hs_grad_plans_layout();
    printf("threads %d, batch %d (reference: batch 1, one thread), best of %d, training plans "
           "in %s\n", omp_get_max_threads(), batch, reps,
           layout == HS_LAYOUT_NCHW16C ? "nChw16c" : layout == HS_LAYOUT_NCHW8C ? "nChw8c" : "NCHW");
    printf("%-26s %9s %7s %7s %9s | %7s %7s %7s | %9s | kernels (fwd / bwd data / bwd weights)\n",
           "layer", "fwd GF/s", "bwd_d", "bwd_w", "step ms", "ref fwd", "bwd_d", "bwd_w",
           "infer fwd");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bench_case *c = &cases[i];
        hs_conv2d_shape s = {c->in_c, c->out_c, c->k, c->k, c->stride, c->stride, 0, 0, 0, 0,
                             1, 1, c->groups};
        hs_same_padding(c->h, c->k, c->stride, 1, &s.pad_top, &s.pad_bottom);
        hs_same_padding(c->h, c->k, c->stride, 1, &s.pad_left, &s.pad_right);
        const int oh = hs_conv_out_size(c->h, c->k, c->stride, s.pad_top, s.pad_bottom, 1);
        const double macs_per_image =
            (double)c->out_c * oh * oh * (c->in_c / c->groups) * c->k * c->k;
        const size_t w_count = (size_t)c->out_c * (c->in_c / c->groups) * c->k * c->k;
        /* sized for the layout (the blocked ones pad channels); values are arbitrary */
        const size_t x_count = (size_t)hs_layout_size(layout, batch, c->in_c, c->h, c->h);
        const size_t y_count = (size_t)hs_layout_size(layout, batch, c->out_c, oh, oh);
        float *x = filled(x_count, 1), *wt = filled(w_count, 2), *b = filled(c->out_c, 3);
        float *dy = filled(y_count, 4), *y = malloc(y_count * 4), *dx = malloc(x_count * 4);
        float *dw = calloc(w_count, 4), *db = calloc(c->out_c, 4);
        if (!y || !dx || !dw || !db) return 1;

        hs_conv_plan *fwd = hs_conv_plan_create(&s, batch, c->h, c->h, wt, b, NULL);
        /* the stem reads the NCHW image, as in the tape */
        hs_conv_grad_plan *bwd = hs_conv_grad_plan_create(
            &s, batch, c->h, c->h, c->in_c == 3 ? HS_LAYOUT_NCHW : layout, layout);
        if (!fwd || !bwd) return 1;
        double best[4] = {1e30, 1e30, 1e30, 1e30};
        for (int r = 0; r <= reps; r++) { /* run 0 is the warm-up */
            double ti = omp_get_wtime();
            hs_conv_plan_run(fwd, x, y);
            double t0 = omp_get_wtime();
            hs_conv_grad_plan_forward(bwd, x, wt, b, y);
            double t1 = omp_get_wtime();
            hs_conv_grad_plan_run(bwd, x, wt, dy, dx, NULL, NULL);
            double t2 = omp_get_wtime();
            hs_conv_grad_plan_run(bwd, x, wt, dy, NULL, dw, db);
            double t3 = omp_get_wtime();
            if (r == 0) continue;
            if (t1 - t0 < best[0]) best[0] = t1 - t0;
            if (t2 - t1 < best[1]) best[1] = t2 - t1;
            if (t3 - t2 < best[2]) best[2] = t3 - t2;
            if (t0 - ti < best[3]) best[3] = t0 - ti;
        }
        const double flops = 2.0 * macs_per_image * batch;

        /* the reference on one image */
        double ref[3];
        double t0 = omp_get_wtime();
        hs_conv2d_forward_ref(x, 1, c->h, c->h, wt, b, &s, y);
        double t1 = omp_get_wtime();
        hs_conv2d_backward_ref(x, 1, c->h, c->h, wt, &s, dy, dx, NULL, NULL);
        double t2 = omp_get_wtime();
        hs_conv2d_backward_ref(x, 1, c->h, c->h, wt, &s, dy, NULL, dw, db);
        double t3 = omp_get_wtime();
        ref[0] = t1 - t0;
        ref[1] = t2 - t1;
        ref[2] = t3 - t2;
        const double ref_flops = 2.0 * macs_per_image;

        printf("%-26s %9.1f %7.1f %7.1f %9.1f | %7.2f %7.2f %7.2f | %9.1f | %s (inference: %s)\n",
               c->name, flops / best[0] / 1e9, flops / best[1] / 1e9, flops / best[2] / 1e9,
               (best[0] + best[1] + best[2]) * 1e3, ref_flops / ref[0] / 1e9,
               ref_flops / ref[1] / 1e9, ref_flops / ref[2] / 1e9, flops / best[3] / 1e9,
               hs_conv_grad_plan_impl(bwd), hs_conv_plan_impl(fwd));
        hs_conv_plan_free(fwd);
        hs_conv_grad_plan_free(bwd);
        free(x);
        free(wt);
        free(b);
        free(dy);
        free(y);
        free(dx);
        free(dw);
        free(db);
    }
    return 0;
}
