/* Measured peak FP32 FLOP/s on N threads: (1) an AVX-512 FMA loop with 24 independent
 * accumulators per thread (enough to hide FMA latency), (2) a large OpenBLAS sgemm.
 * Usage: peak_flops [threads]. Prints "fma GFLOPS" and "sgemm GFLOPS". */
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#define ACC 24

static double fma_loop(long iters) {
    double t0 = omp_get_wtime();
    float sink = 0.0f;
#pragma omp parallel reduction(+ : sink)
    {
        __m512 a[ACC];
        for (int i = 0; i < ACC; i++) a[i] = _mm512_set1_ps(0.001f * (float)i);
        __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
        for (long it = 0; it < iters; it++) {
#pragma GCC unroll 24
            for (int i = 0; i < ACC; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
        }
        for (int i = 1; i < ACC; i++) a[0] = _mm512_add_ps(a[0], a[i]);
        sink += _mm512_reduce_add_ps(a[0]);
    }
    double t = omp_get_wtime() - t0;
    if (sink == 12345.0f) printf(" ");
    return 2.0 * 16 * ACC * (double)iters * omp_get_max_threads() / t / 1e9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : omp_get_max_threads();
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double g = fma_loop(20000000);
        if (g > best) best = g;
    }
    printf("fma %.1f\n", best);

    int n = 2048;
    float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4), *c = malloc((size_t)n * n * 4);
    for (long i = 0; i < (long)n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
    double gbest = 0;
    for (int r = 0; r < 4; r++) {
        double t0 = omp_get_wtime();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * n * (double)n / (omp_get_wtime() - t0) / 1e9;
        if (g > gbest) gbest = g;
    }
    printf("sgemm %.1f\n", gbest);
    free(a); free(b); free(c);
    return 0;
}
