/* GFLOP/s of hs_sgemm / hs_sgemv through oneDNN and OpenBLAS for the products that matter:
 * the Lite0 head (batch 32, 1280 -> 10), VGG16's classifier (32 x 25088 -> 4096 and
 * 4096 -> 4096: forward, dx and dW), one image through the first classifier layer (gemv),
 * and the probe's two products (n x d x c). Best of --reps after one warm-up.
 * Usage: bench_gemm [--threads 2] [--reps 3] [--probe-n 10000]. Not a test. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_forward.h"
#include "gemm.h"

typedef struct shape {
    const char *what;
    char ta, tb;
    int m, n, k; /* m == 0: a gemv of n rows by k columns */
} shape;

static float *filled(size_t count) {
    float *x = malloc(count * sizeof(float));
    if (!x) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (size_t i = 0; i < count; i++) x[i] = (float)((i * 2654435761u) % 2000u) / 1000.0f - 1.0f;
    return x;
}

static double run(const shape *s, int reps) {
    int gemv = s->m == 0;
    int m = gemv ? s->n : s->m, n = gemv ? 1 : s->n, k = s->k;
    int a_rows = s->ta == 'T' ? k : m, a_cols = s->ta == 'T' ? m : k;
    int b_rows = s->tb == 'T' ? n : k, b_cols = s->tb == 'T' ? k : n;
    float *a = filled((size_t)a_rows * a_cols), *b = filled((size_t)b_rows * b_cols);
    float *c = filled((size_t)m * n);
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t0 = omp_get_wtime();
        if (gemv) hs_sgemv(m, k, 1.0f, a, k, b, 1.0f, c);
        else hs_sgemm(s->ta, s->tb, m, n, k, 1.0f, a, a_cols, b, b_cols, 1.0f, c, n);
        double t = omp_get_wtime() - t0;
        if (r > 0 && t < best) best = t;
    }
    free(a); free(b); free(c);
    return 2.0 * m * (double)n * k / best / 1e9;
}

int main(int argc, char **argv) {
    int threads = 2, reps = 3, probe_n = 10000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--probe-n") && i + 1 < argc) probe_n = atoi(argv[++i]);
        else { fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
    }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    const shape shapes[] = {
        {"lite0 head fwd 32x1280->10", 'N', 'T', 32, 10, 1280},
        {"lite0 head dx", 'N', 'N', 32, 1280, 10},
        {"lite0 head dW", 'T', 'N', 10, 1280, 32},
        {"vgg fc6 fwd 32x25088->4096", 'N', 'T', 32, 4096, 25088},
        {"vgg fc6 dx", 'N', 'N', 32, 25088, 4096},
        {"vgg fc6 dW", 'T', 'N', 4096, 25088, 32},
        {"vgg fc7 fwd 32x4096->4096", 'N', 'T', 32, 4096, 4096},
        {"vgg fc7 dx", 'N', 'N', 32, 4096, 4096},
        {"vgg fc7 dW", 'T', 'N', 4096, 4096, 32},
        {"vgg fc6 gemv 1 image", 'N', 'N', 0, 4096, 25088},
        {"probe logits n x 1280 -> 10", 'N', 'T', probe_n, 10, 1280},
        {"probe grad 10 x 1280 <- n", 'T', 'N', 10, 1280, probe_n},
    };
    printf("threads %d, oneDNN ISA %s, OpenBLAS core %s\n", threads, hs_dnnl_isa_name(),
           openblas_get_corename());
    printf("%-30s %6s %6s %6s %12s %12s\n", "product", "m", "n", "k", "onednn", "openblas");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        hs_gemm_set_backend(HS_GEMM_ONEDNN);
        double d = run(s, reps);
        hs_gemm_set_backend(HS_GEMM_OPENBLAS);
        double o = run(s, reps);
        printf("%-30s %6d %6d %6d %12.1f %12.1f\n", s->what, s->m ? s->m : s->n,
               s->m ? s->n : 1, s->k, d, o);
        fflush(stdout);
    }
    return 0;
}
