/* headstart forward throughput of any backbone (random weights) at 224 px.
 * Usage: bench_forward [--threads N] [--batches 1,32] [--reps R] [--nets vgg16,efficientnet_lite0]
 *                      [--bf16] [--layout any|blocked] [--bf16-check]
 * Prints one line per (net, batch): "net batch img/s GFLOP/s cpu_ms/img", with GFLOP/s =
 * 2 * MACs * img/s (15.47 G MACs per image for VGG16 and 0.40 G for Lite0, the published
 * whole-net figures; for the other nets the backbone's count, hs_bench_count_gflop, whose heads
 * add under 1 %). --bf16-check instead compares the bf16 and float32 features of Lite0 and
 * VGG16 with real weights when present (max relative error). Not a test. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench_forward.h"
#include "headstart.h"
#include "net.h"
#include "ops.h"

static double macs_of(const hs_net *net, const char *name) {
    if (strcmp(name, "vgg16") == 0) return 15.47e9;
    if (strcmp(name, "efficientnet_lite0") == 0) return 0.40e9;
    double gflop = 0;
    hs_error err = {0};
    return hs_bench_count_gflop(net, 224, &gflop, &err) == HS_OK ? gflop * 1e9 / 2 : 0;
}

static float *input(int n) {
    size_t count = (size_t)n * 3 * 224 * 224;
    float *x = malloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++) x[i] = (float)((i * 2654435761u) % 2000) / 1000.0f - 1.0f;
    return x;
}

static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + (double)u.ru_stime.tv_sec +
           u.ru_stime.tv_usec * 1e-6;
}

static void bf16_check(const char *name) {
    hs_error err = {0};
    hs_net *net = NULL;
    char weights[4096];
    if (hs_net_create(name, 1, &net, &err)) { fprintf(stderr, "%s\n", err.message); return; }
    int real = hs_find_weights(hs_backbone_find(name), weights, sizeof weights, &err) == HS_OK &&
               hs_net_load_weights(net, weights, &err) == HS_OK;
    int n = 4, dim = hs_net_feature_dim(net);
    float *x = input(n), *f32 = malloc((size_t)n * dim * 4), *bf = malloc((size_t)n * dim * 4);
    hs_net_features(net, x, n, 224, 224, f32, &err);
    net->bf16 = 1;
    hs_net_features(net, x, n, 224, 224, bf, &err);
    double max_abs = 0, max_f = 0, worst_rel = 0;
    for (long i = 0; i < (long)n * dim; i++) {
        double d = fabs((double)bf[i] - f32[i]);
        if (d > max_abs) max_abs = d;
        if (fabs(f32[i]) > max_f) max_f = fabs(f32[i]);
        double rel = d / (fabs(f32[i]) + 1e-3);
        if (rel > worst_rel) worst_rel = rel;
    }
    printf("bf16 vs f32 %s (%s weights): max |diff| %.3g, max |feature| %.3g, max |diff|/max|f| %.3g, "
           "max |diff|/(|f|+1e-3) %.3g\n", name, real ? "real" : "random", max_abs, max_f,
           max_abs / max_f, worst_rel);
    free(x); free(f32); free(bf);
    hs_net_free(net);
}

int main(int argc, char **argv) {
    int threads = 2, reps = 3, bf16 = 0, layout = 0;
    const char *batches = "1,32", *nets = "vgg16,efficientnet_lite0";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) batches = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--nets") && i + 1 < argc) nets = argv[++i];
        else if (!strcmp(argv[i], "--bf16")) bf16 = 1;
        /* the activation layouts: oneDNN's choice or the fixed blocked one (default: the
         * library's, per precision) */
        else if (!strcmp(argv[i], "--layout") && i + 1 < argc) {
            const char *v = argv[++i];
            layout = !strcmp(v, "any") ? HS_LAYOUT_ANY : !strcmp(v, "blocked") ? (int)hs_layout_blocked() : -1;
            if (layout < 0) { fprintf(stderr, "--layout any|blocked\n"); return 2; }
        }
        else if (!strcmp(argv[i], "--bf16-check")) bf16 = -1;
        else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
    }
    omp_set_num_threads(threads);
    if (bf16 < 0) {
        bf16_check("efficientnet_lite0");
        bf16_check("vgg16");
        return 0;
    }
    char list[256];
    snprintf(list, sizeof list, "%s", nets);
    for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
        hs_error err = {0};
        hs_net *net = NULL;
        if (hs_net_create(name, 1, &net, &err)) { fprintf(stderr, "%s\n", err.message); return 1; }
        net->bf16 = bf16;
        net->blocked_layout = layout;
        const char *b = batches;
        while (*b) {
            int n = atoi(b);
            float *x = input(n), *y = malloc((size_t)n * 1000 * sizeof(float));
            double best = 1e30, best_cpu = 1e30;
            for (int r = 0; r <= reps; r++) { /* the first run makes the plans */
                double c0 = cpu_seconds(), t0 = omp_get_wtime();
                if (hs_net_forward(net, x, n, 224, 224, y, &err)) { fprintf(stderr, "%s\n", err.message); return 1; }
                double t = omp_get_wtime() - t0, c = cpu_seconds() - c0;
                if (r > 0 && t < best) best = t;
                if (r > 0 && c < best_cpu) best_cpu = c;
            }
            double ips = n / best;
            /* the last column: CPU milliseconds per image, which other processes on a shared
             * machine disturb less than the wall time (with OMP_WAIT_POLICY=passive, waiting
             * threads take none) */
            printf("%s %d %.2f %.1f %.2f\n", name, n, ips, 2 * macs_of(net, name) * ips / 1e9,
                   1e3 * best_cpu / n);
            fflush(stdout);
            free(x);
            free(y);
            b = strchr(b, ',');
            if (!b) break;
            b++;
        }
        hs_net_free(net);
    }
    return 0;
}
