/* The kernels the network runs: the same operations as ops_ref.h, computed fast
 * (oneDNN convolutions, OpenBLAS sgemm for linear layers, OpenMP threads elsewhere).
 * Each one is tested against its reference kernel in tests/test_ops_fast.c. */
#ifndef HS_OPS_H
#define HS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "ops_ref.h"

/* Convolution, NCHW in and out. Makes a plan, runs it once and frees it: for repeated calls
 * on one shape, keep a plan (below). */
void hs_conv2d_forward(const float *x, int n, int h, int w, const float *weight,
                       const float *bias, const hs_conv2d_shape *s, float *y);
/* The fallback: im2col + OpenBLAS sgemm (depthwise: direct loops). */
void hs_conv2d_forward_im2col(const float *x, int n, int h, int w, const float *weight,
                              const float *bias, const hs_conv2d_shape *s, float *y);

/* Activation layouts. The blocked ones are oneDNN's nChw8c / nChw16c: n x ceil(c/B) x h x w x
 * B, the last channel block zero-padded. oneDNN's AVX-512 kernels block by 16, its AVX2, AVX
 * and SSE4.1 kernels by 8: in the other block size every convolution falls back to gemm with
 * reorders around it, so the block size is chosen at run time (hs_layout_blocked). */
typedef enum hs_layout {
    HS_LAYOUT_NCHW = 0,
    HS_LAYOUT_NHWC,
    HS_LAYOUT_NCHW16C,
    HS_LAYOUT_NCHW8C,
    HS_LAYOUT_ANY /* convolution plans only: whatever oneDNN's best kernel wants */
} hs_layout;
/* Channels per block: 16 or 8 for the blocked layouts, 1 for NCHW and NHWC. */
int hs_layout_block(hs_layout layout);
/* The blocked layout oneDNN's convolution kernels use for a dnnl_cpu_isa_t value: NCHW16C for
 * the AVX-512 ISAs, NCHW8C for the others. */
hs_layout hs_layout_blocked_for_isa(int isa);
/* The same for the ISA oneDNN uses in this process (dnnl_get_effective_cpu_isa: the CPU's,
 * or lower under ONEDNN_MAX_CPU_ISA). */
hs_layout hs_layout_blocked(void);
/* Floats an n x c x h x w activation takes in a layout (padding included). */
int64_t hs_layout_size(hs_layout layout, int n, int c, int h, int w);
/* The dnnl_format_tag_t of a layout (HS_LAYOUT_ANY: format_tag any). */
int hs_layout_dnnl_tag(hs_layout layout);
/* Bytes an activation takes in a layout and type (bf16: 2 bytes an element, else 4). */
static inline size_t hs_act_bytes(hs_layout layout, int bf16, int n, int c, int h, int w) {
    return (size_t)hs_layout_size(layout, n, c, h, w) * (bf16 ? 2 : 4);
}
/* Converts between layouts (oneDNN reorder); 0 on success. */
int hs_layout_convert(const float *x, hs_layout from, float *y, hs_layout to, int n, int c,
                      int h, int w);
/* The same on a context's engine (NULL: hs_context_default()). */
int hs_layout_convert_in(hs_context *ctx, const float *x, hs_layout from, float *y, hs_layout to,
                         int n, int c, int h, int w);

/* ---- Activations in any layout and in float32 or bf16 (act_dnnl.c) ----------------------
 * oneDNN primitives on an n x c x h x w activation; bf16 flags say the arrays hold bfloat16
 * (uint16_t) rather than float. Each returns 0, or -1 when oneDNN failed. */
/* Converts layout and type at once (one reorder; bf16 rounds to nearest even). */
int hs_act_convert_in(hs_context *ctx, const void *x, hs_layout from, int from_bf16, void *y,
                      hs_layout to, int to_bf16, int n, int c, int h, int w);
/* Max pooling (padding never wins, as PyTorch's -inf padding) or average pooling over whole
 * windows (no padding: global pooling), y in x's layout and type. */
int hs_act_pool(hs_context *ctx, const void *x, hs_layout layout, int bf16, int n, int c, int h,
                int w, int avg, int kernel_h, int kernel_w, int stride, int pad, void *y);
/* y += x, both in one layout and type (bf16: the sum rounded once). */
int hs_act_add(hs_context *ctx, void *y, const void *x, hs_layout layout, int bf16, int n, int c,
               int h, int w);
/* Makes the context's oneDNN engine and stream on first use; 0 when oneDNN cannot. */
int hs_context_dnnl(hs_context *ctx);
/* What bf16 convolutions cost at the ISA oneDNN runs: 2 native (AVX512_BF16 or AMX), 1
 * emulated on AVX-512 (slower than float32), 0 none (AVX2 and below: oneDNN 2.6 has only its
 * reference kernels, which plans refuse, so a bf16 request runs float32). */
int hs_dnnl_bf16_support(void);
/* Whether oneDNN runs its AMX kernels here (the ISA it runs at is avx512_core_amx). */
int hs_dnnl_amx(void);

/* ---- Convolution plans (conv_dnnl.c) ----------------------------------------------------
 * A plan is one convolution for one input shape (n, h, w): created once (kernel choice,
 * weights reordered into the kernel's layout, scratch memory), run many times without
 * allocating. It copies what it needs: weight and bias may be freed after create. */
/* HS_POST_ADD: the destination's prior contents are added to the convolution's output (a
 * residual add fused into the kernel: the caller fills y with the skip input and the plan
 * overwrites it with conv + skip). Only oneDNN kernels do it: such a plan has no im2col
 * fallback. */
typedef enum hs_post_op { HS_POST_NONE = 0, HS_POST_RELU, HS_POST_RELU6, HS_POST_ADD } hs_post_op;
typedef struct hs_conv_options {
    hs_layout src_layout, dst_layout; /* HS_LAYOUT_ANY: oneDNN picks (the plan says which) */
    hs_post_op post;  /* activation fused after bias */
    int bf16;         /* bfloat16 weights and inputs, float32 accumulation */
    int bf16_act;     /* with bf16: source and destination arrays in bfloat16 too */
} hs_conv_options;
typedef struct hs_conv_plan hs_conv_plan;

/* opt NULL: NCHW, no post-op, float32. Returns NULL when out of memory, or when oneDNN cannot
 * make the convolution and the options need it (a layout other than NCHW, bf16); an NCHW
 * float32 plan then falls back to im2col + sgemm. */
hs_conv_plan *hs_conv_plan_create(const hs_conv2d_shape *s, int n, int h, int w,
                                  const float *weight, const float *bias,
                                  const hs_conv_options *opt);
/* The same on a context's oneDNN engine and stream (NULL: hs_context_default()); the plan
 * keeps the context, which must outlive it. */
hs_conv_plan *hs_conv_plan_create_in(hs_context *ctx, const hs_conv2d_shape *s, int n, int h,
                                     int w, const float *weight, const float *bias,
                                     const hs_conv_options *opt);
/* The layouts the plan reads and writes: the asked-for ones, or oneDNN's choice for
 * HS_LAYOUT_ANY (NCHW for the im2col fallback). */
hs_layout hs_conv_plan_src_layout(const hs_conv_plan *plan);
hs_layout hs_conv_plan_dst_layout(const hs_conv_plan *plan);
/* x and y in the plan's layouts and types (float, or bf16 with bf16_act), sized for its
 * shape. Returns 0, or -1 if oneDNN failed. */
int hs_conv_plan_run(hs_conv_plan *plan, const void *x, void *y);
/* Whether the plan was made for exactly this convolution, shape and options. */
int hs_conv_plan_matches(const hs_conv_plan *plan, const hs_conv2d_shape *s, int n, int h,
                         int w, const hs_conv_options *opt);
int hs_conv_plan_uses_dnnl(const hs_conv_plan *plan);
const char *hs_conv_plan_impl(const hs_conv_plan *plan); /* kernel name, for benchmarks */
void hs_conv_plan_free(hs_conv_plan *plan);

void hs_linear_forward(const float *x, int n, int in, const float *weight, const float *bias,
                       int out, float *y);
/* Same contract as hs_linear_backward_ref: dx overwritten (skipped when NULL), dweight and
 * dbias accumulate. */
void hs_linear_backward(const float *x, int n, int in, const float *weight, int out,
                        const float *dy, float *dx, float *dweight, float *dbias);
void hs_relu_forward(const float *x, int64_t count, float *y);
void hs_relu6_forward(const float *x, int64_t count, float *y);

/* Max pooling in NCHW or a blocked layout (symmetric padding, as hs_maxpool2d_forward_ref); threaded. */
void hs_maxpool2d_forward(const float *x, hs_layout layout, int n, int c, int h, int w,
                          int kernel, int stride, int pad, float *y);
/* hs_adaptive_avgpool2d_forward_ref, NCHW, threaded over planes. */
void hs_adaptive_avgpool2d_forward(const float *x, int n, int c, int h, int w, int out_h,
                                   int out_w, float *y);
/* y += x, threaded. */
void hs_add_inplace(float *y, const float *x, int64_t count);

#endif
