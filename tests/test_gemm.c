/* hs_sgemm / hs_sgemv against a plain double-precision loop: every transpose combination,
 * odd sizes, padded leading dimensions, alpha/beta, both backends. CTest also runs this
 * program with oneDNN capped to AVX2 and SSE4.1 and OpenBLAS forced to Haswell
 * (tests/CMakeLists.txt), so CPUs other than this one stay right. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_forward.h" /* hs_dnnl_isa_name */
#include "check.h"
#include "gemm.h"

static float value(unsigned seed, long i) {
    unsigned h = (unsigned)(i * 2654435761u) ^ (seed * 40503u);
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return (float)(h % 20001u) / 10000.0f - 1.0f;
}

static float *filled(unsigned seed, long count) {
    float *x = malloc((size_t)(count ? count : 1) * sizeof(float));
    for (long i = 0; i < count; i++) x[i] = value(seed, i);
    return x;
}

/* op(X)[r][c] of a row-major matrix with leading dimension ld. */
static double at(const float *x, char trans, int ld, int r, int c) {
    return trans == 'T' ? x[(size_t)c * ld + r] : x[(size_t)r * ld + c];
}

/* Checks hs_sgemm on one shape: |C - reference| <= 1e-5 * (|alpha| sum |a b| + |beta c|),
 * the relative error of the sum against the size of its terms (cancellation cannot hide a
 * wrong product behind a small result). Padding columns of C must stay untouched. */
static void check_gemm(char ta, char tb, int m, int n, int k, float alpha, float beta, int pad) {
    int a_rows = ta == 'T' ? k : m, a_cols = ta == 'T' ? m : k;
    int b_rows = tb == 'T' ? n : k, b_cols = tb == 'T' ? k : n;
    int lda = a_cols + pad, ldb = b_cols + pad, ldc = n + pad;
    float *a = filled(1, (long)a_rows * lda), *b = filled(2, (long)b_rows * ldb);
    float *c = filled(3, (long)m * ldc), *c0 = filled(3, (long)m * ldc);
    hs_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    long bad = 0;
    double worst = 0;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < ldc; j++) {
            double got = c[(size_t)i * ldc + j], old = c0[(size_t)i * ldc + j];
            if (j >= n) { /* outside the matrix: left alone */
                if (got != old) bad++;
                continue;
            }
            double sum = 0, size = 0;
            for (int p = 0; p < k; p++) {
                double t = at(a, ta, lda, i, p) * at(b, tb, ldb, p, j);
                sum += t;
                size += fabs(t);
            }
            double want = alpha * sum + beta * old;
            double scale = fabs(alpha) * size + fabs(beta * old) + 1e-30;
            double rel = fabs(got - want) / scale;
            if (!(rel <= 1e-5)) bad++;
            if (rel > worst || isnan(rel)) worst = rel;
        }
    }
    CHECK_MSG(bad == 0, "%s sgemm %c%c m=%d n=%d k=%d alpha=%g beta=%g pad=%d: %ld wrong, worst "
              "relative error %.3g", hs_gemm_backend_name(HS_GEMM_DEFAULT), ta, tb, m, n, k,
              alpha, beta, pad, bad, worst);
    free(a); free(b); free(c); free(c0);
}

static void check_gemv(int m, int n, float alpha, float beta, int pad) {
    int lda = n + pad;
    float *a = filled(4, (long)m * lda), *x = filled(5, n), *y = filled(6, m), *y0 = filled(6, m);
    hs_sgemv(m, n, alpha, a, lda, x, beta, y);
    long bad = 0;
    double worst = 0;
    for (int i = 0; i < m; i++) {
        double sum = 0, size = 0;
        for (int p = 0; p < n; p++) {
            double t = (double)a[(size_t)i * lda + p] * x[p];
            sum += t;
            size += fabs(t);
        }
        double want = alpha * sum + beta * y0[i];
        double rel = fabs(y[i] - want) / (fabs(alpha) * size + fabs(beta * y0[i]) + 1e-30);
        if (!(rel <= 1e-5)) bad++;
        if (rel > worst || isnan(rel)) worst = rel;
    }
    CHECK_MSG(bad == 0, "%s sgemv m=%d n=%d alpha=%g beta=%g pad=%d: %ld wrong, worst %.3g",
              hs_gemm_backend_name(HS_GEMM_DEFAULT), m, n, alpha, beta, pad, bad, worst);
    free(a); free(x); free(y); free(y0);
}

static void check_backend(hs_gemm_backend backend) {
    hs_gemm_set_backend(backend);
    CHECK(hs_gemm_backend_in_use() == backend);
    const char trans[2] = {'N', 'T'};
    /* odd sizes, a single row / column, and the shapes of the linear layers and the probe */
    static const int shapes[][3] = {{1, 1, 1},   {1, 17, 33}, {29, 1, 65},  {7, 13, 1},
                                    {31, 37, 41}, {64, 10, 1280}, {33, 130, 257},
                                    {2, 300, 513}};
    for (int ia = 0; ia < 2; ia++)
        for (int ib = 0; ib < 2; ib++)
            for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
                check_gemm(trans[ia], trans[ib], shapes[s][0], shapes[s][1], shapes[s][2], 1.0f,
                           0.0f, 0);
                check_gemm(trans[ia], trans[ib], shapes[s][0], shapes[s][1], shapes[s][2], -0.5f,
                           1.0f, 3);
                check_gemm(trans[ia], trans[ib], shapes[s][0], shapes[s][1], shapes[s][2], 2.0f,
                           0.25f, 1);
            }
    /* k = 0: C = beta C */
    check_gemm('N', 'N', 5, 6, 0, 1.0f, 0.5f, 0);
    check_gemv(1, 1, 1.0f, 0.0f, 0);
    check_gemv(37, 1, 1.0f, 1.0f, 0);
    check_gemv(1000, 513, 1.0f, 1.0f, 5);
    check_gemv(4096, 257, -1.5f, 0.5f, 0);
}

/* A large product, parallel: the threaded paths split m, n and k. */
static void check_large(hs_gemm_backend backend) {
    hs_gemm_set_backend(backend);
    check_gemm('N', 'T', 32, 1000, 2049, 1.0f, 1.0f, 0);
    check_gemm('T', 'N', 517, 300, 64, 1.0f, 1.0f, 0);
}

int main(void) {
    const char *isa = getenv("DNNL_MAX_CPU_ISA");
    if (!isa) isa = getenv("ONEDNN_MAX_CPU_ISA");
    printf("oneDNN runs at %s (DNNL_MAX_CPU_ISA=%s), OPENBLAS_CORETYPE=%s\n",
           hs_dnnl_isa_name(), isa ? isa : "unset",
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset");
    check_backend(HS_GEMM_ONEDNN);
    check_backend(HS_GEMM_OPENBLAS);
    check_large(HS_GEMM_ONEDNN);
    check_large(HS_GEMM_OPENBLAS);
    /* the environment's choice */
    setenv("HS_GEMM", "openblas", 1);
    hs_gemm_set_backend(HS_GEMM_DEFAULT);
    CHECK(hs_gemm_backend_in_use() == HS_GEMM_OPENBLAS);
    unsetenv("HS_GEMM");
    hs_gemm_set_backend(HS_GEMM_DEFAULT);
    CHECK(hs_gemm_backend_in_use() == HS_GEMM_ONEDNN);
    CHECK(strcmp(hs_gemm_backend_name(HS_GEMM_OPENBLAS), "openblas") == 0);
    return check_finish("test_gemm");
}
