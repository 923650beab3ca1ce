/* One matrix product for every linear layer, im2col convolution and the probe.
 *
 * Row-major sgemm: C[m x n] = alpha * op(A)[m x k] * op(B)[k x n] + beta * C, where op(X) is
 * X or its transpose ('N' / 'T'), as BLAS with CblasRowMajor. The kernel is chosen at run
 * time by the CPU's instruction set, never by its model name: the default backend is
 * oneDNN's dnnl_sgemm, which picks its own kernel by ISA (AVX2, AVX-512, ...) and honours
 * ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA. OpenBLAS stays as a choice for comparison
 * (HS_GEMM=openblas, or hs_gemm_set_backend): its core is picked from a table of CPU models
 * (Debian's 0.3.21 falls back to Prescott on CPUs newer than it), hence not the default. */
#ifndef HS_GEMM_H
#define HS_GEMM_H

typedef enum hs_gemm_backend {
    HS_GEMM_DEFAULT = 0, /* HS_GEMM from the environment ("onednn" / "openblas"), else oneDNN */
    HS_GEMM_ONEDNN,
    HS_GEMM_OPENBLAS
} hs_gemm_backend;

/* Sets the backend for the process (HS_GEMM_DEFAULT: back to the environment's choice). */
void hs_gemm_set_backend(hs_gemm_backend backend);
/* The backend the next call uses (never HS_GEMM_DEFAULT). */
hs_gemm_backend hs_gemm_backend_in_use(void);
const char *hs_gemm_backend_name(hs_gemm_backend backend);

/* transa/transb: 'N' or 'T'. Sizes of 0 are allowed (C is scaled by beta, as BLAS). A call
 * that oneDNN refuses is done by OpenBLAS, so the product is always computed. */
void hs_sgemm(char transa, char transb, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* y[m] = alpha * A[m x n] x + beta * y (row-major A, unit strides): one image through a
 * linear layer, a product bound by reading A once. */
void hs_sgemv(int m, int n, float alpha, const float *a, int lda, const float *x, float beta,
              float *y);

#endif
