/* hs_sgemm / hs_sgemv: oneDNN by default, OpenBLAS on request (see gemm.h). */
#include "gemm.h"

#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

/* 0: not chosen yet (read HS_GEMM on first use). Set once per process in practice; a race
 * between two first calls writes the same value. */
static volatile int chosen_backend;

static hs_gemm_backend from_environment(void) {
    const char *v = getenv("HS_GEMM");
    if (v && (strcmp(v, "openblas") == 0 || strcmp(v, "blas") == 0)) return HS_GEMM_OPENBLAS;
    return HS_GEMM_ONEDNN;
}

void hs_gemm_set_backend(hs_gemm_backend backend) {
    chosen_backend = backend == HS_GEMM_DEFAULT ? (int)from_environment() : (int)backend;
}

hs_gemm_backend hs_gemm_backend_in_use(void) {
    if (!chosen_backend) chosen_backend = (int)from_environment();
    return (hs_gemm_backend)chosen_backend;
}

const char *hs_gemm_backend_name(hs_gemm_backend backend) {
    if (backend == HS_GEMM_DEFAULT) backend = hs_gemm_backend_in_use();
    return backend == HS_GEMM_OPENBLAS ? "openblas" : "onednn";
}

static void openblas_sgemm(char transa, char transb, int m, int n, int k, float alpha,
                           const float *a, int lda, const float *b, int ldb, float beta,
                           float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, transa == 'T' ? CblasTrans : CblasNoTrans,
                transb == 'T' ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta,
                c, ldc);
}

/* Below this many multiply-adds (about 0.1 ms on one core) a product runs on one thread:
 * oneDNN threads every product with OpenMP, and waking a second thread costs more than it
 * saves there (on a busy machine, a time slice: the Lite0 head's 32 x 1280 -> 10 ran at
 * 0.1 GFLOP/s on 2 threads against 27 on one). OpenBLAS makes the same cut itself. */
#define HS_GEMM_SMALL_MACS (1 << 21)

/* oneDNN's sgemm (row-major, as ours); nonzero when it refused. */
static int onednn_sgemm(char transa, char transb, int m, int n, int k, float alpha,
                        const float *a, int lda, const float *b, int ldb, float beta, float *c,
                        int ldc) {
    int threads = omp_get_max_threads();
    int small = (double)m * n * k < HS_GEMM_SMALL_MACS && threads > 1;
    if (small) omp_set_num_threads(1); /* this thread's setting only, restored below */
    dnnl_status_t st = dnnl_sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (small) omp_set_num_threads(threads);
    return st != dnnl_success;
}

void hs_sgemm(char transa, char transb, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (hs_gemm_backend_in_use() == HS_GEMM_ONEDNN &&
        onednn_sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == 0)
        return;
    openblas_sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void hs_sgemv(int m, int n, float alpha, const float *a, int lda, const float *x, float beta,
              float *y) {
    if (m <= 0) return;
    /* As a product with one column: y^T[1 x m] = x^T[1 x n] * A^T[n x m]. oneDNN runs its
     * gemv kernel for a single row or column. */
    if (hs_gemm_backend_in_use() == HS_GEMM_ONEDNN &&
        onednn_sgemm('N', 'T', 1, m, n, alpha, x, n, a, lda, beta, y, m) == 0)
        return;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, m, n, alpha, a, lda, x, 1, beta, y, 1);
}
