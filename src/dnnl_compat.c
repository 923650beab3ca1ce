/* The oneDNN 2 / 3 shim (dnnl_compat.h). Each function holds both versions: oneDNN 3's call,
 * and its oneDNN 2 equivalent (an operation descriptor, then dnnl_primitive_desc_create). */
#include "dnnl_compat.h"

#include <stdio.h>
#include <string.h>

#define DNNL3 (DNNL_VERSION_MAJOR >= 3)

dnnl_status_t hs_md_init(hs_md *m, int ndims, const dnnl_dims_t dims, dnnl_data_type_t type,
                         dnnl_format_tag_t tag) {
    hs_md_release(m);
#if DNNL3
    dnnl_status_t st = dnnl_memory_desc_create_with_tag(&m->md, ndims, dims, type, tag);
    if (st != dnnl_success) m->md = NULL;
#else
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(&m->md, ndims, dims, type, tag);
#endif
    m->made = st == dnnl_success;
    return st;
}

void hs_md_release(hs_md *m) {
#if DNNL3
    if (m->made) dnnl_memory_desc_destroy(m->md);
    m->md = NULL;
#endif
    m->made = 0;
}

hs_md_ref hs_md_get(const hs_md *m) {
#if DNNL3
    return m->made ? m->md : NULL;
#else
    return m->made ? &m->md : NULL;
#endif
}

int hs_md_ndims(hs_md_ref md) {
#if DNNL3
    int n = 0;
    return dnnl_memory_desc_query(md, dnnl_query_ndims_s32, &n) == dnnl_success ? n : 0;
#else
    return md->ndims;
#endif
}

void hs_md_dims(hs_md_ref md, dnnl_dims_t dims) {
#if DNNL3
    const dnnl_dims_t *d = NULL;
    if (dnnl_memory_desc_query(md, dnnl_query_dims, &d) == dnnl_success && d)
        memcpy(dims, *d, (size_t)hs_md_ndims(md) * sizeof(dnnl_dim_t));
#else
    memcpy(dims, md->dims, (size_t)md->ndims * sizeof(dnnl_dim_t));
#endif
}

dnnl_data_type_t hs_md_data_type(hs_md_ref md) {
#if DNNL3
    dnnl_data_type_t t = dnnl_data_type_undef;
    dnnl_memory_desc_query(md, dnnl_query_data_type, &t);
    return t;
#else
    return md->data_type;
#endif
}

dnnl_status_t hs_post_ops_append_eltwise(dnnl_post_ops_t ops, dnnl_alg_kind_t alg, float alpha,
                                         float beta) {
#if DNNL3
    return dnnl_post_ops_append_eltwise(ops, alg, alpha, beta);
#else
    return dnnl_post_ops_append_eltwise(ops, 1.0f, alg, alpha, beta);
#endif
}

dnnl_status_t hs_post_ops_append_sum(dnnl_post_ops_t ops, float scale) {
#if DNNL3
    return dnnl_post_ops_append_sum(ops, scale, 0, dnnl_data_type_undef);
#else
    return dnnl_post_ops_append_sum(ops, scale);
#endif
}

#if !DNNL3
/* oneDNN 2: the primitive descriptor of the operation descriptor `desc` that `init` filled. */
#define MAKE_PD(init, desc, hint)                                                          \
    do {                                                                                   \
        dnnl_status_t st_ = (init);                                                        \
        return st_ == dnnl_success ? dnnl_primitive_desc_create(pd, &(desc), attr, engine, \
                                                                (hint))                    \
                                   : st_;                                                  \
    } while (0)
#endif

dnnl_status_t hs_conv_forward_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                 dnnl_prop_kind_t prop, hs_md_ref src, hs_md_ref weights,
                                 hs_md_ref bias, hs_md_ref dst, const dnnl_dims_t strides,
                                 const dnnl_dims_t dilates, const dnnl_dims_t pad_l,
                                 const dnnl_dims_t pad_r, const_dnnl_primitive_attr_t attr) {
#if DNNL3
    return dnnl_convolution_forward_primitive_desc_create(pd, engine, prop,
                                                          dnnl_convolution_direct, src, weights,
                                                          bias, dst, strides, dilates, pad_l,
                                                          pad_r, attr);
#else
    dnnl_convolution_desc_t d;
    MAKE_PD(dnnl_dilated_convolution_forward_desc_init(&d, prop, dnnl_convolution_direct, src,
                                                       weights, bias, dst, strides, dilates,
                                                       pad_l, pad_r),
            d, NULL);
#endif
}

dnnl_status_t hs_conv_backward_data_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                       hs_md_ref diff_src, hs_md_ref weights, hs_md_ref diff_dst,
                                       const dnnl_dims_t strides, const dnnl_dims_t dilates,
                                       const dnnl_dims_t pad_l, const dnnl_dims_t pad_r,
                                       const_dnnl_primitive_desc_t hint,
                                       const_dnnl_primitive_attr_t attr) {
#if DNNL3
    return dnnl_convolution_backward_data_primitive_desc_create(
        pd, engine, dnnl_convolution_direct, diff_src, weights, diff_dst, strides, dilates,
        pad_l, pad_r, hint, attr);
#else
    dnnl_convolution_desc_t d;
    MAKE_PD(dnnl_dilated_convolution_backward_data_desc_init(&d, dnnl_convolution_direct,
                                                             diff_src, weights, diff_dst,
                                                             strides, dilates, pad_l, pad_r),
            d, hint);
#endif
}

dnnl_status_t hs_conv_backward_weights_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                          hs_md_ref src, hs_md_ref diff_weights,
                                          hs_md_ref diff_bias, hs_md_ref diff_dst,
                                          const dnnl_dims_t strides, const dnnl_dims_t dilates,
                                          const dnnl_dims_t pad_l, const dnnl_dims_t pad_r,
                                          const_dnnl_primitive_desc_t hint,
                                          const_dnnl_primitive_attr_t attr) {
#if DNNL3
    return dnnl_convolution_backward_weights_primitive_desc_create(
        pd, engine, dnnl_convolution_direct, src, diff_weights, diff_bias, diff_dst, strides,
        dilates, pad_l, pad_r, hint, attr);
#else
    dnnl_convolution_desc_t d;
    MAKE_PD(dnnl_dilated_convolution_backward_weights_desc_init(
                &d, dnnl_convolution_direct, src, diff_weights, diff_bias, diff_dst, strides,
                dilates, pad_l, pad_r),
            d, hint);
#endif
}

dnnl_status_t hs_inner_product_forward_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                          dnnl_prop_kind_t prop, hs_md_ref src,
                                          hs_md_ref weights, hs_md_ref bias, hs_md_ref dst,
                                          const_dnnl_primitive_attr_t attr) {
#if DNNL3
    return dnnl_inner_product_forward_primitive_desc_create(pd, engine, prop, src, weights, bias,
                                                            dst, attr);
#else
    dnnl_inner_product_desc_t d;
    MAKE_PD(dnnl_inner_product_forward_desc_init(&d, prop, src, weights, bias, dst), d, NULL);
#endif
}

#if DNNL3
static const dnnl_dims_t no_dilation = {0, 0, 0};
#endif

dnnl_status_t hs_pooling_forward_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                    dnnl_prop_kind_t prop, dnnl_alg_kind_t alg, hs_md_ref src,
                                    hs_md_ref dst, const dnnl_dims_t strides,
                                    const dnnl_dims_t kernel, const dnnl_dims_t pad_l,
                                    const dnnl_dims_t pad_r, const_dnnl_primitive_attr_t attr) {
#if DNNL3
    return dnnl_pooling_forward_primitive_desc_create(pd, engine, prop, alg, src, dst, strides,
                                                      kernel, no_dilation, pad_l, pad_r, attr);
#else
    dnnl_pooling_desc_t d;
    MAKE_PD(dnnl_pooling_forward_desc_init(&d, prop, alg, src, dst, strides, kernel, pad_l,
                                           pad_r),
            d, NULL);
#endif
}

dnnl_status_t hs_pooling_backward_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                     dnnl_alg_kind_t alg, hs_md_ref diff_src, hs_md_ref diff_dst,
                                     const dnnl_dims_t strides, const dnnl_dims_t kernel,
                                     const dnnl_dims_t pad_l, const dnnl_dims_t pad_r,
                                     const_dnnl_primitive_desc_t hint,
                                     const_dnnl_primitive_attr_t attr) {
#if DNNL3
    return dnnl_pooling_backward_primitive_desc_create(pd, engine, alg, diff_src, diff_dst,
                                                       strides, kernel, no_dilation, pad_l,
                                                       pad_r, hint, attr);
#else
    dnnl_pooling_desc_t d;
    MAKE_PD(dnnl_pooling_backward_desc_init(&d, alg, diff_src, diff_dst, strides, kernel, pad_l,
                                            pad_r),
            d, hint);
#endif
}

dnnl_status_t hs_eltwise_forward_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                    dnnl_prop_kind_t prop, dnnl_alg_kind_t alg, hs_md_ref data,
                                    float alpha, float beta, const_dnnl_primitive_attr_t attr) {
#if DNNL3
    return dnnl_eltwise_forward_primitive_desc_create(pd, engine, prop, alg, data, data, alpha,
                                                      beta, attr);
#else
    dnnl_eltwise_desc_t d;
    MAKE_PD(dnnl_eltwise_forward_desc_init(&d, prop, alg, data, alpha, beta), d, NULL);
#endif
}

dnnl_status_t hs_eltwise_backward_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                     dnnl_alg_kind_t alg, hs_md_ref diff_data, hs_md_ref data,
                                     float alpha, float beta, const_dnnl_primitive_desc_t hint,
                                     const_dnnl_primitive_attr_t attr) {
#if DNNL3
    return dnnl_eltwise_backward_primitive_desc_create(pd, engine, alg, diff_data, diff_data,
                                                       data, alpha, beta, hint, attr);
#else
    dnnl_eltwise_desc_t d;
    MAKE_PD(dnnl_eltwise_backward_desc_init(&d, alg, diff_data, data, alpha, beta), d, hint);
#endif
}

dnnl_status_t hs_batch_norm_forward_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                       dnnl_prop_kind_t prop, hs_md_ref data, float epsilon,
                                       unsigned flags, const_dnnl_primitive_attr_t attr) {
#if DNNL3
    return dnnl_batch_normalization_forward_primitive_desc_create(pd, engine, prop, data, data,
                                                                  epsilon, flags, attr);
#else
    dnnl_batch_normalization_desc_t d;
    MAKE_PD(dnnl_batch_normalization_forward_desc_init(&d, prop, data, epsilon, flags), d,
            NULL);
#endif
}

dnnl_status_t hs_batch_norm_backward_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                        dnnl_prop_kind_t prop, hs_md_ref diff_data,
                                        hs_md_ref data, float epsilon, unsigned flags,
                                        const_dnnl_primitive_desc_t hint,
                                        const_dnnl_primitive_attr_t attr) {
#if DNNL3
    return dnnl_batch_normalization_backward_primitive_desc_create(
        pd, engine, prop, diff_data, diff_data, data, epsilon, flags, hint, attr);
#else
    dnnl_batch_normalization_desc_t d;
    MAKE_PD(dnnl_batch_normalization_backward_desc_init(&d, prop, diff_data, data, epsilon,
                                                        flags),
            d, hint);
#endif
}

dnnl_status_t hs_binary_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, dnnl_alg_kind_t alg,
                           hs_md_ref src0, hs_md_ref src1, hs_md_ref dst,
                           const_dnnl_primitive_attr_t attr) {
#if DNNL3
    return dnnl_binary_primitive_desc_create(pd, engine, alg, src0, src1, dst, attr);
#else
    dnnl_binary_desc_t d;
    MAKE_PD(dnnl_binary_desc_init(&d, alg, src0, src1, dst), d, NULL);
#endif
}

dnnl_status_t hs_matmul_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, hs_md_ref src,
                           hs_md_ref weights, hs_md_ref bias, hs_md_ref dst,
                           const_dnnl_primitive_attr_t attr) {
#if DNNL3
    return dnnl_matmul_primitive_desc_create(pd, engine, src, weights, bias, dst, attr);
#else
    dnnl_matmul_desc_t d;
    MAKE_PD(dnnl_matmul_desc_init(&d, src, weights, bias, dst), d, NULL);
#endif
}

int hs_dnnl_isa_has(dnnl_cpu_isa_t isa) {
    unsigned have = (unsigned)dnnl_get_effective_cpu_isa(), want = (unsigned)isa;
    return (have & want) == want;
}

void hs_dnnl_version(char *text, size_t size) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(text, size, "%d.%d.%d", v->major, v->minor, v->patch);
}
