/* Activations between the inference plan's convolutions, through oneDNN primitives that take
 * any layout and either type: layout + type conversion (reorder), max / average pooling, and
 * the residual add (binary add, in place). The plan uses them where activations are bf16 or
 * in a layout headstart's own loops do not read (NHWC, which oneDNN's brgconv kernels choose);
 * float32 in NCHW or the blocked layouts keeps the plain loops of ops_fast.c.
 *
 * A primitive is made per call: oneDNN's primitive cache keeps the kernels of shapes seen
 * before, so after the first batch a call costs the descriptor set-up (microseconds). */
#include "dnnl_compat.h"
#include "ops.h"

static int act_md(hs_md *md, hs_layout layout, int bf16, int n, int c, int h, int w) {
    dnnl_dims_t dims = {n, c, h, w};
    return hs_md_init(md, 4, dims, bf16 ? dnnl_bf16 : dnnl_f32,
                      (dnnl_format_tag_t)hs_layout_dnnl_tag(layout)) == dnnl_success;
}

/* Makes the primitive for pd (consumed), runs it on the context's stream with args, frees it. */
static int run_once(hs_context *ctx, dnnl_primitive_desc_t pd, int nargs,
                    const dnnl_exec_arg_t *args) {
    dnnl_primitive_t prim = NULL;
    int ok = dnnl_primitive_create(&prim, pd) == dnnl_success &&
             dnnl_primitive_execute(prim, ctx->dnnl_stream, nargs, args) == dnnl_success &&
             dnnl_stream_wait(ctx->dnnl_stream) == dnnl_success;
    if (prim) dnnl_primitive_destroy(prim);
    dnnl_primitive_desc_destroy(pd);
    return ok ? 0 : -1;
}

int hs_act_convert_in(hs_context *ctx, const void *x, hs_layout from, int from_bf16, void *y,
                      hs_layout to, int to_bf16, int n, int c, int h, int w) {
    if (!ctx) ctx = hs_context_default();
    if (!hs_context_dnnl(ctx)) return -1;
    dnnl_engine_t engine = ctx->dnnl_engine;
    hs_md md_from = {0}, md_to = {0};
    dnnl_memory_t m_from = NULL, m_to = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int rc = -1;
    if (act_md(&md_from, from, from_bf16, n, c, h, w) && act_md(&md_to, to, to_bf16, n, c, h, w) &&
        dnnl_memory_create(&m_from, hs_md_get(&md_from), engine, (void *)x) == dnnl_success &&
        dnnl_memory_create(&m_to, hs_md_get(&md_to), engine, y) == dnnl_success &&
        dnnl_reorder_primitive_desc_create(&pd, hs_md_get(&md_from), engine, hs_md_get(&md_to),
                                           engine, NULL) == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, m_from}, {DNNL_ARG_TO, m_to}};
        rc = run_once(ctx, pd, 2, args);
    }
    if (m_from) dnnl_memory_destroy(m_from);
    if (m_to) dnnl_memory_destroy(m_to);
    hs_md_release(&md_from);
    hs_md_release(&md_to);
    return rc;
}

int hs_act_pool(hs_context *ctx, const void *x, hs_layout layout, int bf16, int n, int c, int h,
                int w, int avg, int kernel_h, int kernel_w, int stride, int pad, void *y) {
    if (!ctx) ctx = hs_context_default();
    if (!hs_context_dnnl(ctx)) return -1;
    dnnl_engine_t engine = ctx->dnnl_engine;
    int oh = hs_conv_out_size(h, kernel_h, stride, pad, pad, 1);
    int ow = hs_conv_out_size(w, kernel_w, stride, pad, pad, 1);
    hs_md src_md = {0}, dst_md = {0};
    /* The right padding that makes oneDNN's output size the floor one (as PyTorch's). */
    dnnl_dims_t strides = {stride, stride}, kernel = {kernel_h, kernel_w}, pad_l = {pad, pad};
    dnnl_dims_t pad_r = {(oh - 1) * stride + kernel_h - h - pad,
                         (ow - 1) * stride + kernel_w - w - pad};
    dnnl_primitive_desc_t pd = NULL;
    dnnl_memory_t m_src = NULL, m_dst = NULL;
    int rc = -1;
    if (act_md(&src_md, layout, bf16, n, c, h, w) && act_md(&dst_md, layout, bf16, n, c, oh, ow) &&
        hs_pooling_forward_pd(&pd, engine, dnnl_forward_inference,
                              avg ? dnnl_pooling_avg_exclude_padding : dnnl_pooling_max,
                              hs_md_get(&src_md), hs_md_get(&dst_md), strides, kernel, pad_l,
                              pad_r, NULL) == dnnl_success &&
        dnnl_memory_create(&m_src, hs_md_get(&src_md), engine, (void *)x) == dnnl_success &&
        dnnl_memory_create(&m_dst, hs_md_get(&dst_md), engine, y) == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_SRC, m_src}, {DNNL_ARG_DST, m_dst}};
        rc = run_once(ctx, pd, 2, args);
        pd = NULL;
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (m_src) dnnl_memory_destroy(m_src);
    if (m_dst) dnnl_memory_destroy(m_dst);
    hs_md_release(&src_md);
    hs_md_release(&dst_md);
    return rc;
}

int hs_act_add(hs_context *ctx, void *y, const void *x, hs_layout layout, int bf16, int n, int c,
               int h, int w) {
    if (!ctx) ctx = hs_context_default();
    if (!hs_context_dnnl(ctx)) return -1;
    dnnl_engine_t engine = ctx->dnnl_engine;
    hs_md md = {0};
    dnnl_primitive_desc_t pd = NULL;
    dnnl_memory_t m_y = NULL, m_x = NULL;
    int rc = -1;
    if (act_md(&md, layout, bf16, n, c, h, w) &&
        hs_binary_pd(&pd, engine, dnnl_binary_add, hs_md_get(&md), hs_md_get(&md),
                     hs_md_get(&md), NULL) == dnnl_success &&
        dnnl_memory_create(&m_y, hs_md_get(&md), engine, y) == dnnl_success &&
        dnnl_memory_create(&m_x, hs_md_get(&md), engine, (void *)x) == dnnl_success) {
        /* in place: oneDNN's binary allows dst == src0 */
        dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC_0, m_y}, {DNNL_ARG_SRC_1, m_x},
                                   {DNNL_ARG_DST, m_y}};
        rc = run_once(ctx, pd, 3, args);
        pd = NULL;
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (m_y) dnnl_memory_destroy(m_y);
    if (m_x) dnnl_memory_destroy(m_x);
    hs_md_release(&md);
    return rc;
}
