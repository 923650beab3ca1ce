/* Convolution plans: one oneDNN convolution primitive per layer and input shape, created once
 * and run many times.
 *
 * Creating a plan does everything that does not depend on the pixels: it picks oneDNN's
 * kernel for the shape, reorders the weights once into the blocked layout that kernel wants,
 * and allocates the scratch memory. Running it only points oneDNN at the caller's buffers and
 * executes: no allocation, no weight copies. Bias and an optional ReLU / ReLU6 are fused into
 * the kernel, or a residual add (HS_POST_ADD: oneDNN's sum post-op, which adds what the
 * destination holds before the kernel writes it).
 *
 * Activations are plain arrays in one of four layouts (hs_layout): NCHW as everywhere else
 * in headstart, NHWC, or blocked NCHW8C / NCHW16C (oneDNN's nChw8c / nChw16c: channels in
 * blocks of 8 or 16, the block innermost, the last block zero-padded; hs_layout_blocked says
 * which one this CPU's kernels want). Source and destination layouts are chosen
 * separately, so a network can enter the blocked layout at its first convolution.
 *
 * Either layout may be HS_LAYOUT_ANY: oneDNN then picks the layout its best kernel for this
 * shape wants (format_tag any), and hs_conv_plan_src_layout / hs_conv_plan_dst_layout say
 * which (a layout headstart cannot name makes the plan fall back to the fixed blocked one).
 * With fixed blocked formats oneDNN is pinned to its older jit kernels; with `any` it can pick
 * brgconv (and on AMX CPUs its AMX kernels).
 *
 * bf16 (opt-in): weights are stored and products taken in bfloat16 with float32
 * accumulation. With bf16_act the source and destination arrays are bfloat16 too (the
 * activations between two bf16 layers: no float32 round trip); without it the float32 source
 * is converted inside the plan and the output written in float32.
 *
 * When oneDNN cannot make a primitive, an NCHW plan falls back to im2col + OpenBLAS sgemm
 * (hs_conv2d_forward_im2col) on its own copy of the weights; a plan in another layout is
 * not made (create returns NULL) and the caller runs NCHW. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "dnnl_compat.h"
#include "ops.h"

struct hs_conv_plan {
    hs_conv2d_shape s;
    int n, h, w, oh, ow;
    hs_layout src_layout, dst_layout; /* as run (HS_LAYOUT_ANY resolved) */
    hs_conv_options opt;              /* as asked for: what hs_conv_plan_matches compares */
    hs_post_op post;
    int bf16, bf16_act;
    char impl[48];                  /* oneDNN's kernel name, or "im2col+sgemm" */

    dnnl_primitive_t conv;          /* NULL: the im2col fallback runs */
    dnnl_primitive_t src_convert;   /* f32 -> bf16 source, or NULL */
    dnnl_memory_t src_user, src, weights, bias, dst, scratch;
    void *src_buf, *scratch_buf;    /* owned, may be NULL */

    float *fallback_weight, *fallback_bias; /* im2col fallback only */
    hs_context *ctx;                /* engine and stream */
};

/* ---- the engine and stream live in the run context (context.h) -------------------------
 * A plan keeps the context it was made in (hs_conv_options.ctx, or hs_context_default()) and
 * runs on its stream; the context owns them and frees them on release. */

int hs_context_dnnl(hs_context *ctx) {
    int ready;
#pragma omp critical(hs_dnnl_init)
    {
        if (ctx->dnnl_state == 0) {
            dnnl_engine_t e;
            dnnl_stream_t s;
            ctx->dnnl_state = -1;
            if (dnnl_engine_create(&e, dnnl_cpu, 0) == dnnl_success) {
                if (dnnl_stream_create(&s, e, dnnl_stream_default_flags) == dnnl_success) {
                    ctx->dnnl_engine = e;
                    ctx->dnnl_stream = s;
                    ctx->dnnl_state = 1;
                } else {
                    dnnl_engine_destroy(e);
                }
            }
        }
        ready = ctx->dnnl_state == 1;
    }
    return ready;
}

void hs_context_dnnl_release(hs_context *ctx) {
    if (ctx->dnnl_state != 1) return;
    dnnl_stream_destroy(ctx->dnnl_stream);
    dnnl_engine_destroy(ctx->dnnl_engine);
    ctx->dnnl_stream = ctx->dnnl_engine = NULL;
    ctx->dnnl_state = 0;
}

int hs_layout_dnnl_tag(hs_layout layout) {
    switch (layout) {
    case HS_LAYOUT_NHWC: return dnnl_nhwc;
    case HS_LAYOUT_NCHW16C: return dnnl_nChw16c;
    case HS_LAYOUT_NCHW8C: return dnnl_nChw8c;
    case HS_LAYOUT_ANY: return dnnl_format_tag_any;
    default: return dnnl_nchw;
    }
}
#define layout_tag(l) ((dnnl_format_tag_t)hs_layout_dnnl_tag(l))

/* The hs_layout a memory descriptor oneDNN chose is in, or HS_LAYOUT_ANY for one headstart
 * has no name for. */
static hs_layout layout_of_md(hs_md_ref md) {
    static const hs_layout named[] = {HS_LAYOUT_NCHW, HS_LAYOUT_NHWC, HS_LAYOUT_NCHW16C,
                                      HS_LAYOUT_NCHW8C};
    dnnl_dims_t dims;
    hs_md_dims(md, dims);
    hs_layout found = HS_LAYOUT_ANY;
    for (size_t i = 0; i < sizeof named / sizeof named[0] && found == HS_LAYOUT_ANY; i++) {
        hs_md want = {0};
        if (hs_md_init(&want, hs_md_ndims(md), dims, hs_md_data_type(md),
                       layout_tag(named[i])) == dnnl_success &&
            dnnl_memory_desc_equal(hs_md_get(&want), md))
            found = named[i];
        hs_md_release(&want);
    }
    return found;
}

int hs_dnnl_bf16_support(void) {
    if (hs_dnnl_isa_has(dnnl_cpu_isa_avx512_core_bf16)) return 2; /* or AMX: native */
    if (hs_dnnl_isa_has(dnnl_cpu_isa_avx512_core)) return 1; /* without it: oneDNN emulates */
    return 0;
}

int hs_dnnl_amx(void) { return hs_dnnl_isa_has(dnnl_cpu_isa_avx512_core_amx); }

int hs_layout_block(hs_layout layout) {
    switch (layout) {
    case HS_LAYOUT_NCHW16C: return 16;
    case HS_LAYOUT_NCHW8C: return 8;
    default: return 1;
    }
}

hs_layout hs_layout_blocked_for_isa(int isa) {
    unsigned core = (unsigned)dnnl_cpu_isa_avx512_core;
#if DNNL_VERSION_MAJOR < 3 /* Xeon Phi: AVX-512 without the core subset, gone in oneDNN 3 */
    if (isa == dnnl_cpu_isa_avx512_mic || isa == dnnl_cpu_isa_avx512_mic_4ops)
        return HS_LAYOUT_NCHW16C;
#endif
    /* every AVX-512 level blocks by 16; avx2_vnni, avx2, avx, sse41 by 8 */
    return ((unsigned)isa & core) == core ? HS_LAYOUT_NCHW16C : HS_LAYOUT_NCHW8C;
}

hs_layout hs_layout_blocked(void) {
    return hs_layout_blocked_for_isa((int)dnnl_get_effective_cpu_isa());
}

int64_t hs_layout_size(hs_layout layout, int n, int c, int h, int w) {
    int64_t block = hs_layout_block(layout);
    int64_t cp = (c + block - 1) / block * block;
    return (int64_t)n * cp * h * w;
}

static void *aligned_bytes(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64)) return NULL;
    return p;
}

/* Executes one primitive with up to four arguments. */
static dnnl_status_t execute(hs_context *ctx, dnnl_primitive_t prim, int nargs,
                             const dnnl_exec_arg_t *args) {
    dnnl_stream_t stream = ctx->dnnl_stream;
    dnnl_status_t st = dnnl_primitive_execute(prim, stream, nargs, args);
    if (st == dnnl_success) st = dnnl_stream_wait(stream);
    return st;
}

/* Copies user data (md_from, in memory `from`) into `to` (md_to), through a one-off
 * reorder. Used at plan creation only. */
static int reorder_once(hs_context *ctx, dnnl_memory_t from, dnnl_memory_t to) {
    dnnl_engine_t engine = ctx->dnnl_engine;
    hs_md_ref md_from, md_to;
    dnnl_memory_get_memory_desc(from, &md_from);
    dnnl_memory_get_memory_desc(to, &md_to);
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    int ok = dnnl_reorder_primitive_desc_create(&pd, md_from, engine, md_to, engine, NULL) ==
                 dnnl_success &&
             dnnl_primitive_create(&prim, pd) == dnnl_success;
    if (ok) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
        ok = execute(ctx, prim, 2, args) == dnnl_success;
    }
    if (prim) dnnl_primitive_destroy(prim);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return ok;
}

static void destroy_dnnl(hs_conv_plan *p) {
    if (p->conv) dnnl_primitive_destroy(p->conv);
    if (p->src_convert) dnnl_primitive_destroy(p->src_convert);
    dnnl_memory_t mems[] = {p->src_user, p->src, p->weights, p->bias, p->dst, p->scratch};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
    free(p->src_buf);
    free(p->scratch_buf);
    p->conv = p->src_convert = NULL;
    p->src_user = p->src = p->weights = p->bias = p->dst = p->scratch = NULL;
    p->src_buf = p->scratch_buf = NULL;
}

/* Builds the oneDNN side of a plan; returns 0 (and leaves nothing behind) on any failure,
 * a layout oneDNN chose that headstart has no name for included. */
static int create_dnnl(hs_conv_plan *p, const float *weight, const float *bias) {
    if (!hs_context_dnnl(p->ctx)) return 0;
    dnnl_engine_t engine = p->ctx->dnnl_engine;
    const hs_conv2d_shape *s = &p->s;
    int g = s->groups;
    dnnl_data_type_t compute = p->bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_data_type_t out_type = p->bf16_act ? dnnl_bf16 : dnnl_f32;
    dnnl_dims_t src_dims = {p->n, s->in_channels, p->h, p->w};
    dnnl_dims_t dst_dims = {p->n, s->out_channels, p->oh, p->ow};
    dnnl_dims_t w_dims = {g, s->out_channels / g, s->in_channels / g, s->kernel_h, s->kernel_w};
    dnnl_dims_t w4_dims = {s->out_channels, s->in_channels, s->kernel_h, s->kernel_w};
    int w_ndims = g > 1 ? 5 : 4;
    dnnl_dims_t b_dims = {s->out_channels};
    dnnl_dims_t strides = {s->stride_h, s->stride_w};
    dnnl_dims_t dilates = {s->dilation_h - 1, s->dilation_w - 1};
    dnnl_dims_t pad_l = {s->pad_top, s->pad_left}, pad_r = {s->pad_bottom, s->pad_right};
    /* A 1x1 kernel over a 1x1 image in NHWC (flat n x features either side) is a fully
     * connected layer: oneDNN's inner product runs it, in about a tenth of the time its 1x1
     * convolution took for VGG16's classifier in bf16 at batch 32 on an AMX Xeon (25 ms
     * against about 270). Its destination is the 2-D n x out array. */
    const int fc = s->kernel_h == 1 && s->kernel_w == 1 && p->h == 1 && p->w == 1 && g == 1 &&
                   s->stride_h == 1 && s->stride_w == 1 && s->pad_top == 0 &&
                   s->pad_left == 0 && s->pad_bottom == 0 && s->pad_right == 0 &&
                   p->src_layout == HS_LAYOUT_NHWC && p->dst_layout == HS_LAYOUT_NHWC;
    dnnl_dims_t fc_dst_dims = {p->n, s->out_channels};

    hs_md src_md = {0}, w_user_md = {0}, w_any_md = {0}, b_md = {0}, dst_md = {0};
    int ok =
        hs_md_init(&src_md, 4, src_dims, compute, layout_tag(p->src_layout)) == dnnl_success &&
        hs_md_init(&w_user_md, w_ndims, g > 1 ? w_dims : w4_dims, dnnl_f32,
                   g > 1 ? dnnl_goihw : dnnl_oihw) == dnnl_success &&
        hs_md_init(&w_any_md, w_ndims, g > 1 ? w_dims : w4_dims, compute,
                   dnnl_format_tag_any) == dnnl_success &&
        hs_md_init(&b_md, 1, b_dims, dnnl_f32, dnnl_x) == dnnl_success &&
        (fc ? hs_md_init(&dst_md, 2, fc_dst_dims, out_type, dnnl_ab)
            : hs_md_init(&dst_md, 4, dst_dims, out_type, layout_tag(p->dst_layout))) ==
            dnnl_success;

    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    ok = ok && dnnl_primitive_attr_create(&attr) == dnnl_success &&
         dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success;
    if (ok && p->post != HS_POST_NONE) {
        ok = dnnl_post_ops_create(&ops) == dnnl_success &&
             (p->post == HS_POST_ADD    ? hs_post_ops_append_sum(ops, 1.0f)
              : p->post == HS_POST_RELU ? hs_post_ops_append_eltwise(ops, dnnl_eltwise_relu, 0.0f,
                                                                     0.0f)
                                        : hs_post_ops_append_eltwise(ops, dnnl_eltwise_clip, 0.0f,
                                                                     6.0f)) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, ops) == dnnl_success;
    }
    ok = ok &&
         (fc ? hs_inner_product_forward_pd(&pd, engine, dnnl_forward_inference,
                                           hs_md_get(&src_md), hs_md_get(&w_any_md),
                                           hs_md_get(&b_md), hs_md_get(&dst_md), attr)
             : hs_conv_forward_pd(&pd, engine, dnnl_forward_inference, hs_md_get(&src_md),
                                  hs_md_get(&w_any_md), hs_md_get(&b_md), hs_md_get(&dst_md),
                                  strides, dilates, pad_l, pad_r, attr)) == dnnl_success &&
         dnnl_primitive_create(&p->conv, pd) == dnnl_success;
    const char *impl = NULL;
    if (ok && dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success
        && impl)
        snprintf(p->impl, sizeof p->impl, "%s", impl);
    /* oneDNN's reference kernels are hundreds of times slower than the caller's other
     * options (another layout, or im2col): refuse them. */
    if (ok && strncmp(p->impl, "ref", 3) == 0) ok = 0;
    /* The layouts oneDNN chose (the asked-for ones when fixed; NHWC for an inner product). */
    hs_md_ref src_pd_md = NULL, dst_pd_md = NULL;
    if (ok) {
        src_pd_md = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
        dst_pd_md = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
        if (!fc) {
            p->src_layout = layout_of_md(src_pd_md);
            p->dst_layout = layout_of_md(dst_pd_md);
        }
        ok = p->src_layout != HS_LAYOUT_ANY && p->dst_layout != HS_LAYOUT_ANY;
    }

    dnnl_memory_t w_user = NULL;
    if (ok) {
        hs_md_ref w_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        hs_md_ref sp_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        size_t sp_bytes = sp_md ? dnnl_memory_desc_get_size(sp_md) : 0;
        ok = dnnl_memory_create(&w_user, hs_md_get(&w_user_md), engine, (void *)weight) ==
                 dnnl_success &&
             dnnl_memory_create(&p->weights, w_md, engine, DNNL_MEMORY_ALLOCATE) ==
                 dnnl_success &&
             reorder_once(p->ctx, w_user, p->weights);
        /* The bias is copied so the plan does not depend on the caller's array. */
        ok = ok && dnnl_memory_create(&p->bias, hs_md_get(&b_md), engine, DNNL_MEMORY_ALLOCATE) ==
                       dnnl_success;
        if (ok) {
            void *b = NULL;
            dnnl_memory_get_data_handle(p->bias, &b);
            for (int o = 0; o < s->out_channels; o++)
                ((float *)b)[o] = bias ? bias[o] : 0.0f;
        }
        if (ok && sp_bytes) {
            p->scratch_buf = aligned_bytes(sp_bytes);
            ok = p->scratch_buf &&
                 dnnl_memory_create(&p->scratch, sp_md, engine, p->scratch_buf) == dnnl_success;
        }
        ok = ok && dnnl_memory_create(&p->dst, dst_pd_md, engine, DNNL_MEMORY_NONE) ==
                       dnnl_success;
    }
    if (ok && p->bf16 && !p->bf16_act) {
        /* the caller's float32 source is converted into a bf16 buffer the plan owns */
        hs_md src_user_md = {0};
        dnnl_primitive_desc_t rpd = NULL;
        p->src_buf = aligned_bytes(dnnl_memory_desc_get_size(src_pd_md));
        ok = p->src_buf &&
             hs_md_init(&src_user_md, 4, src_dims, dnnl_f32, layout_tag(p->src_layout)) ==
                 dnnl_success &&
             dnnl_memory_create(&p->src_user, hs_md_get(&src_user_md), engine,
                                DNNL_MEMORY_NONE) == dnnl_success &&
             dnnl_memory_create(&p->src, src_pd_md, engine, p->src_buf) == dnnl_success &&
             dnnl_reorder_primitive_desc_create(&rpd, hs_md_get(&src_user_md), engine,
                                                src_pd_md, engine, NULL) == dnnl_success &&
             dnnl_primitive_create(&p->src_convert, rpd) == dnnl_success;
        if (rpd) dnnl_primitive_desc_destroy(rpd);
        hs_md_release(&src_user_md);
    } else if (ok) { /* the caller's array is the kernel's source */
        ok = dnnl_memory_create(&p->src_user, src_pd_md, engine, DNNL_MEMORY_NONE) ==
             dnnl_success;
    }
    if (w_user) dnnl_memory_destroy(w_user);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (ops) dnnl_post_ops_destroy(ops);
    if (attr) dnnl_primitive_attr_destroy(attr);
    hs_md *mds[] = {&src_md, &w_user_md, &w_any_md, &b_md, &dst_md};
    for (size_t i = 0; i < sizeof mds / sizeof mds[0]; i++) hs_md_release(mds[i]);
    if (!ok) destroy_dnnl(p);
    return ok;
}

hs_conv_plan *hs_conv_plan_create(const hs_conv2d_shape *s, int n, int h, int w,
                                  const float *weight, const float *bias,
                                  const hs_conv_options *opt) {
    return hs_conv_plan_create_in(NULL, s, n, h, w, weight, bias, opt);
}

hs_conv_plan *hs_conv_plan_create_in(hs_context *ctx, const hs_conv2d_shape *s, int n, int h,
                                     int w, const float *weight, const float *bias,
                                     const hs_conv_options *opt) {
    static const hs_conv_options defaults = {HS_LAYOUT_NCHW, HS_LAYOUT_NCHW, HS_POST_NONE, 0, 0};
    if (!opt) opt = &defaults;
    if (opt->bf16_act && !opt->bf16) return NULL; /* bf16 arrays need bf16 products */
    hs_conv_plan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->s = *s;
    p->n = n;
    p->h = h;
    p->w = w;
    p->oh = hs_conv_out_size(h, s->kernel_h, s->stride_h, s->pad_top, s->pad_bottom,
                             s->dilation_h);
    p->ow = hs_conv_out_size(w, s->kernel_w, s->stride_w, s->pad_left, s->pad_right,
                             s->dilation_w);
    p->opt = *opt;
    p->src_layout = opt->src_layout;
    p->dst_layout = opt->dst_layout;
    p->post = opt->post;
    p->bf16 = opt->bf16;
    p->bf16_act = opt->bf16_act;
    p->ctx = ctx ? ctx : hs_context_default();
    if (create_dnnl(p, weight, bias)) return p;
    /* A layout oneDNN chose that has no name here: ask again for the fixed blocked one. */
    if (opt->src_layout == HS_LAYOUT_ANY || opt->dst_layout == HS_LAYOUT_ANY) {
        hs_layout blocked = hs_layout_blocked();
        p->src_layout = opt->src_layout == HS_LAYOUT_ANY ? blocked : opt->src_layout;
        p->dst_layout = opt->dst_layout == HS_LAYOUT_ANY ? blocked : opt->dst_layout;
        p->impl[0] = '\0';
        if (create_dnnl(p, weight, bias)) return p;
    }

    /* Fallback: im2col + sgemm, NCHW only, float32 only, no fused add (the caller adds). */
    if (opt->src_layout != HS_LAYOUT_NCHW || opt->dst_layout != HS_LAYOUT_NCHW || p->bf16 ||
        p->post == HS_POST_ADD) {
        free(p);
        return NULL;
    }
    p->src_layout = p->dst_layout = HS_LAYOUT_NCHW;
    size_t wcount = (size_t)s->out_channels * (s->in_channels / s->groups) * s->kernel_h *
                    s->kernel_w;
    p->fallback_weight = malloc(wcount * sizeof(float));
    p->fallback_bias = bias ? malloc((size_t)s->out_channels * sizeof(float)) : NULL;
    if (!p->fallback_weight || (bias && !p->fallback_bias)) {
        hs_conv_plan_free(p);
        return NULL;
    }
    memcpy(p->fallback_weight, weight, wcount * sizeof(float));
    if (bias) memcpy(p->fallback_bias, bias, (size_t)s->out_channels * sizeof(float));
    return p;
}

int hs_conv_plan_uses_dnnl(const hs_conv_plan *p) { return p->conv != NULL; }

const char *hs_conv_plan_impl(const hs_conv_plan *p) {
    return p->conv ? p->impl : "im2col+sgemm";
}

hs_layout hs_conv_plan_src_layout(const hs_conv_plan *p) { return p->src_layout; }

hs_layout hs_conv_plan_dst_layout(const hs_conv_plan *p) { return p->dst_layout; }

int hs_conv_plan_run(hs_conv_plan *p, const void *x, void *y) {
    if (!p->conv) {
        hs_conv2d_forward_im2col(x, p->n, p->h, p->w, p->fallback_weight, p->fallback_bias,
                                 &p->s, y);
        int64_t count = (int64_t)p->n * p->s.out_channels * p->oh * p->ow;
        if (p->post == HS_POST_RELU) hs_relu_forward(y, count, y);
        if (p->post == HS_POST_RELU6) hs_relu6_forward(y, count, y);
        return 0;
    }
    dnnl_memory_set_data_handle(p->src_user, (void *)x);
    dnnl_memory_set_data_handle(p->dst, y);
    if (p->src_convert) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, p->src_user}, {DNNL_ARG_TO, p->src}};
        if (execute(p->ctx, p->src_convert, 2, args) != dnnl_success) return -1;
    }
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, p->src_convert ? p->src : p->src_user},
                               {DNNL_ARG_WEIGHTS, p->weights},
                               {DNNL_ARG_BIAS, p->bias},
                               {DNNL_ARG_DST, p->dst},
                               {DNNL_ARG_SCRATCHPAD, p->scratch}};
    return execute(p->ctx, p->conv, p->scratch ? 5 : 4, args) == dnnl_success ? 0 : -1;
}

int hs_conv_plan_matches(const hs_conv_plan *p, const hs_conv2d_shape *s, int n, int h, int w,
                         const hs_conv_options *opt) {
    return p && p->n == n && p->h == h && p->w == w && memcmp(&p->s, s, sizeof *s) == 0 &&
           p->opt.src_layout == opt->src_layout && p->opt.dst_layout == opt->dst_layout &&
           p->opt.post == opt->post && p->opt.bf16 == opt->bf16 &&
           p->opt.bf16_act == opt->bf16_act;
}

void hs_conv_plan_free(hs_conv_plan *p) {
    if (!p) return;
    destroy_dnnl(p);
    free(p->fallback_weight);
    free(p->fallback_bias);
    free(p);
}

/* Layout conversion between NCHW and another layout, through a oneDNN reorder (cached by
 * oneDNN's primitive cache, so repeated calls with one shape are cheap). Returns 0 on
 * success. */
int hs_layout_convert(const float *x, hs_layout from, float *y, hs_layout to, int n, int c,
                      int h, int w) {
    return hs_layout_convert_in(NULL, x, from, y, to, n, c, h, w);
}

int hs_layout_convert_in(hs_context *ctx, const float *x, hs_layout from, float *y, hs_layout to,
                         int n, int c, int h, int w) {
    return hs_act_convert_in(ctx, x, from, 0, y, to, 0, n, c, h, w);
}
