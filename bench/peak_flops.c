/* Measured peaks on N threads:
 *   fma    float32 FMA loop, 24 independent accumulators per thread (enough to hide the FMA
 *          latency), AVX-512 where the CPU has it, else AVX2 + FMA (picked at run time);
 *   sgemm, onednn_sgemm  a 2048^3 float32 product through OpenBLAS (with the core it
 *          detected) and through oneDNN's dnnl_sgemm (with the ISA it runs at);
 *   bf16   a 4096^3 bf16 oneDNN matmul (f32 result) where oneDNN has bf16 kernels (AVX-512,
 *          native with AVX512_BF16 / AMX), "not available" otherwise.
 * Usage: peak_flops [threads]. One line per figure: "NAME GFLOPS" and the ISA it ran. */
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_forward.h" /* hs_dnnl_isa_name */
#include "dnnl_compat.h"

#define ACC 24

__attribute__((target("avx512f"))) static float fma_avx512(long iters) {
    __m512 a[ACC];
    for (int i = 0; i < ACC; i++) a[i] = _mm512_set1_ps(0.001f * (float)i);
    __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 24
        for (int i = 0; i < ACC; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
    }
    for (int i = 1; i < ACC; i++) a[0] = _mm512_add_ps(a[0], a[i]);
    return _mm512_reduce_add_ps(a[0]);
}

/* AVX2 has 16 ymm registers: 12 accumulators plus the two constants fit, and 12 still
 * cover latency x throughput on current cores (4 cycles x 2 ports = 8). */
#define ACC2 12
__attribute__((target("avx2,fma"))) static float fma_avx2(long iters) {
    __m256 a[ACC2];
    for (int i = 0; i < ACC2; i++) a[i] = _mm256_set1_ps(0.001f * (float)i);
    __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < ACC2; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
    }
    for (int i = 1; i < ACC2; i++) a[0] = _mm256_add_ps(a[0], a[i]);
    float lanes[8];
    _mm256_storeu_ps(lanes, a[0]);
    float s = 0;
    for (int i = 0; i < 8; i++) s += lanes[i];
    return s;
}

/* GFLOP/s of the FMA loop on every thread; *isa names the variant. */
static double fma_loop(long iters, const char **isa) {
    int avx512 = __builtin_cpu_supports("avx512f");
    *isa = avx512 ? "avx512f" : "avx2+fma";
    double flops_per_iter = avx512 ? 2.0 * 16 * ACC : 2.0 * 8 * ACC2;
    if (!avx512) iters *= 2; /* the same time per run for half the work per iteration */
    double t0 = omp_get_wtime();
    float sink = 0.0f;
#pragma omp parallel reduction(+ : sink)
    sink += avx512 ? fma_avx512(iters) : fma_avx2(iters);
    double t = omp_get_wtime() - t0;
    if (sink == 12345.0f) printf(" ");
    return flops_per_iter * (double)iters * omp_get_max_threads() / t / 1e9;
}

static double sgemm_peak(int n, int use_dnnl) {
    float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4), *c = malloc((size_t)n * n * 4);
    for (long i = 0; i < (long)n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
    double best = 0;
    for (int r = 0; r < 4; r++) {
        double t0 = omp_get_wtime();
        if (use_dnnl) dnnl_sgemm('N', 'N', n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n,
                         0.0f, c, n);
        double g = 2.0 * n * n * (double)n / (omp_get_wtime() - t0) / 1e9;
        if (g > best) best = g;
    }
    free(a); free(b); free(c);
    return best;
}

/* A bf16 x bf16 -> f32 matmul of n^3; 0 with *why set when oneDNN cannot make one or has
 * only its reference kernel (which would measure nothing but the reference). */
static double bf16_peak(int n, char *impl, size_t impl_size, const char **why) {
    double best = 0;
    dnnl_engine_t engine = NULL;
    dnnl_stream_t stream = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t mem[3] = {NULL, NULL, NULL};
    hs_md md[3];
    memset(md, 0, sizeof md);
    dnnl_dims_t dims[3] = {{n, n}, {n, n}, {n, n}};
    *why = NULL;
    impl[0] = '\0';
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) || dnnl_stream_create(&stream, engine, 0)) {
        *why = "no oneDNN engine";
        goto done;
    }
    if (hs_md_init(&md[0], 2, dims[0], dnnl_bf16, dnnl_ab) ||
        hs_md_init(&md[1], 2, dims[1], dnnl_bf16, dnnl_ab) ||
        hs_md_init(&md[2], 2, dims[2], dnnl_f32, dnnl_ab) ||
        hs_matmul_pd(&pd, engine, hs_md_get(&md[0]), hs_md_get(&md[1]), NULL, hs_md_get(&md[2]),
                     NULL)) {
        *why = "oneDNN has no bf16 matmul for this CPU";
        goto done;
    }
    const char *name = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name);
    snprintf(impl, impl_size, "%s", name ? name : "?");
    if (strncmp(impl, "ref", 3) == 0) {
        *why = "oneDNN has only its reference bf16 matmul here";
        goto done;
    }
    if (dnnl_primitive_create(&prim, pd)) { *why = "oneDNN could not make the matmul"; goto done; }
    for (int i = 0; i < 3; i++) {
        if (dnnl_memory_create(&mem[i], hs_md_get(&md[i]), engine, DNNL_MEMORY_ALLOCATE)) {
            *why = "out of memory";
            goto done;
        }
        void *p = NULL;
        dnnl_memory_get_data_handle(mem[i], &p);
        /* zeros: bf16 0 is all bits clear */
        memset(p, 0, dnnl_memory_desc_get_size(hs_md_get(&md[i])));
    }
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, mem[0]}, {DNNL_ARG_WEIGHTS, mem[1]},
                               {DNNL_ARG_DST, mem[2]}};
    for (int r = 0; r < 4; r++) {
        double t0 = omp_get_wtime();
        if (dnnl_primitive_execute(prim, stream, 3, args) || dnnl_stream_wait(stream)) {
            *why = "the matmul failed";
            break;
        }
        double g = 2.0 * n * n * (double)n / (omp_get_wtime() - t0) / 1e9;
        if (r > 0 && g > best) best = g; /* the first run warms the caches and the JIT */
    }
done:
    for (int i = 0; i < 3; i++) {
        if (mem[i]) dnnl_memory_destroy(mem[i]);
        hs_md_release(&md[i]);
    }
    if (prim) dnnl_primitive_destroy(prim);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (stream) dnnl_stream_destroy(stream);
    if (engine) dnnl_engine_destroy(engine);
    return *why ? 0 : best;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : omp_get_max_threads();
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    double best = 0;
    const char *isa = "";
    for (int r = 0; r < 5; r++) {
        double g = fma_loop(20000000, &isa);
        if (g > best) best = g;
    }
    printf("fma %.1f (%s, %d threads)\n", best, isa, threads);
    printf("sgemm %.1f (OpenBLAS %s)\n", sgemm_peak(2048, 0), openblas_get_corename());
    printf("onednn_sgemm %.1f (oneDNN ISA %s)\n", sgemm_peak(2048, 1), hs_dnnl_isa_name());
    char impl[128];
    const char *why = NULL;
    double bf = bf16_peak(4096, impl, sizeof impl, &why);
    if (why) printf("bf16 not available (%s%s%s)\n", why, impl[0] ? ": " : "", impl);
    else printf("bf16 %.1f (oneDNN matmul %s)\n", bf, impl);
    return 0;
}
