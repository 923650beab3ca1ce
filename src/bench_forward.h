/* Forward throughput of a backbone's frozen part (headstart bench): warm-up plus timed
 * batches of random input through layers [0, feature_end), with the FLOPs counted from the
 * layer list and the kernel each layer ran. Not a test: the figures depend on the machine. */
#ifndef HS_BENCH_FORWARD_H
#define HS_BENCH_FORWARD_H

#include "headstart.h"

#define HS_BENCH_MAX_KERNELS 16

typedef struct hs_bench_options {
    int batch;          /* images per forward pass (>= 1) */
    int img_size;       /* square input side in pixels */
    int threads;        /* OpenMP threads (0: leave the current setting) */
    int bf16;           /* convolutions in bfloat16; refused where oneDNN has no bf16 kernels */
    int warmup;         /* untimed passes first (they make the convolution plans) */
    int min_runs;       /* timed passes: at least this many ... */
    double min_seconds; /* ... and until this much time has passed */
} hs_bench_options;

/* One kind of layer and the kernel it ran, with how many layers and their share of FLOPs. */
typedef struct hs_bench_kernel {
    char layer[32];  /* "conv 3x3", "conv 1x1", "conv depthwise", "linear" */
    char kernel[64]; /* oneDNN's implementation name and the layout it writes
                      * ("brgconv:avx512_core_bf16 nhwc"), "im2col+sgemm", "onednn sgemm" */
    int layers;
    double gflop;    /* per image */
} hs_bench_kernel;

typedef struct hs_bench_result {
    double images_per_s;   /* batch / median seconds per pass */
    double gflops;         /* gflop_per_image * images_per_s */
    double gflop_per_image;
    double median_s, best_s;
    int runs;
    int threads;
    char isa[32];          /* the ISA oneDNN runs at ("avx2", "avx512_core_amx", ...) */
    char dnnl_version[16]; /* the oneDNN loaded ("2.6.3", "3.2.0", ...) */
    char gemm[16];         /* the GEMM backend ("onednn", "openblas") */
    hs_bench_kernel kernels[HS_BENCH_MAX_KERNELS];
    int kernel_count;
} hs_bench_result;

/* Defaults: batch 32, 224 px, current threads, float32, 1 warm-up, 3 runs, 1 second. */
void hs_bench_options_init(hs_bench_options *o);

/* Runs the benchmark on net (its weights as they are: random or loaded). */
hs_status hs_bench_forward(hs_net *net, const hs_bench_options *o, hs_bench_result *r,
                           hs_error *err);

/* 2 x multiply-adds of the convolutions and linear layers of [0, feature_end) for one image
 * of 3 x size x size, in GFLOP. */
hs_status hs_bench_count_gflop(const hs_net *net, int img_size, double *gflop, hs_error *err);

/* The ISA oneDNN runs at (after ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA caps). */
const char *hs_dnnl_isa_name(void);

#endif
