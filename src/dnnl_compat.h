/* oneDNN 2 and 3 behind one interface (DESIGN.md 8: version shims at the edge).
 *
 * Debian 12 ships oneDNN 2.6: operation descriptors (dnnl_convolution_desc_t ...) turned into
 * primitive descriptors by dnnl_primitive_desc_create, memory descriptors as plain structs.
 * oneDNN 3 (PyPI's onednn-devel-cpu-gomp, what scripts/setup.sh installs) creates each primitive
 * descriptor in one call and hands memory descriptors out as handles that must be destroyed;
 * its AMX convolutions run VGG16 about 3x faster than 2.6's on an AMX Xeon.
 *
 * The rest of headstart calls the functions below, which take oneDNN 3's shape on both:
 * memory descriptors pass as hs_md_ref (a const pointer in either version), the descriptors
 * headstart makes itself are hs_md values released with hs_md_release, and every primitive
 * descriptor is made by one hs_*_pd call. Everything else (memory objects, primitives,
 * reorders, attributes, execution) is the same in both versions and called directly. */
#ifndef HS_DNNL_COMPAT_H
#define HS_DNNL_COMPAT_H

#include <oneapi/dnnl/dnnl.h>
#include <stddef.h>

#if DNNL_VERSION_MAJOR >= 3
typedef const_dnnl_memory_desc_t hs_md_ref;
#else
typedef const dnnl_memory_desc_t *hs_md_ref;
#endif

/* A memory descriptor headstart made: a struct in oneDNN 2, an owned handle in 3 (NULL
 * until made). Zero-initialise it, make it with hs_md_init, release it with hs_md_release
 * (a no-op on oneDNN 2, safe on one never made). */
typedef struct {
    dnnl_memory_desc_t md;
    int made;
} hs_md;

dnnl_status_t hs_md_init(hs_md *m, int ndims, const dnnl_dims_t dims, dnnl_data_type_t type,
                         dnnl_format_tag_t tag);
void hs_md_release(hs_md *m);
hs_md_ref hs_md_get(const hs_md *m);

/* A descriptor's rank, dimensions (hs_md_dims fills dims[0..ndims)) and data type. */
int hs_md_ndims(hs_md_ref md);
void hs_md_dims(hs_md_ref md, dnnl_dims_t dims);
dnnl_data_type_t hs_md_data_type(hs_md_ref md);

/* Post-ops: an eltwise with scale 1, and a sum (the destination's old contents times scale
 * added) in the destination's own data type. */
dnnl_status_t hs_post_ops_append_eltwise(dnnl_post_ops_t ops, dnnl_alg_kind_t alg, float alpha,
                                         float beta);
dnnl_status_t hs_post_ops_append_sum(dnnl_post_ops_t ops, float scale);

/* Primitive descriptors, in oneDNN 3's argument order. dilates are 0-based (0: none) as in
 * both versions; bias descriptors may be NULL. attr and hint may be NULL. */
dnnl_status_t hs_conv_forward_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                 dnnl_prop_kind_t prop, hs_md_ref src, hs_md_ref weights,
                                 hs_md_ref bias, hs_md_ref dst, const dnnl_dims_t strides,
                                 const dnnl_dims_t dilates, const dnnl_dims_t pad_l,
                                 const dnnl_dims_t pad_r, const_dnnl_primitive_attr_t attr);
dnnl_status_t hs_conv_backward_data_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                       hs_md_ref diff_src, hs_md_ref weights, hs_md_ref diff_dst,
                                       const dnnl_dims_t strides, const dnnl_dims_t dilates,
                                       const dnnl_dims_t pad_l, const dnnl_dims_t pad_r,
                                       const_dnnl_primitive_desc_t hint,
                                       const_dnnl_primitive_attr_t attr);
dnnl_status_t hs_conv_backward_weights_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                          hs_md_ref src, hs_md_ref diff_weights,
                                          hs_md_ref diff_bias, hs_md_ref diff_dst,
                                          const dnnl_dims_t strides, const dnnl_dims_t dilates,
                                          const dnnl_dims_t pad_l, const dnnl_dims_t pad_r,
                                          const_dnnl_primitive_desc_t hint,
                                          const_dnnl_primitive_attr_t attr);
/* A fully connected layer: src n x in (or n x in x 1 x 1), weights out x in (x 1 x 1), dst
 * n x out. */
dnnl_status_t hs_inner_product_forward_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                          dnnl_prop_kind_t prop, hs_md_ref src,
                                          hs_md_ref weights, hs_md_ref bias, hs_md_ref dst,
                                          const_dnnl_primitive_attr_t attr);
/* Pooling without dilation (what torchvision's nets use). */
dnnl_status_t hs_pooling_forward_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                    dnnl_prop_kind_t prop, dnnl_alg_kind_t alg, hs_md_ref src,
                                    hs_md_ref dst, const dnnl_dims_t strides,
                                    const dnnl_dims_t kernel, const dnnl_dims_t pad_l,
                                    const dnnl_dims_t pad_r, const_dnnl_primitive_attr_t attr);
dnnl_status_t hs_pooling_backward_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                     dnnl_alg_kind_t alg, hs_md_ref diff_src, hs_md_ref diff_dst,
                                     const dnnl_dims_t strides, const dnnl_dims_t kernel,
                                     const dnnl_dims_t pad_l, const dnnl_dims_t pad_r,
                                     const_dnnl_primitive_desc_t hint,
                                     const_dnnl_primitive_attr_t attr);
/* Eltwise and batch normalisation with one descriptor for source and destination (oneDNN 2
 * has no separate destination descriptor for them). */
dnnl_status_t hs_eltwise_forward_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                    dnnl_prop_kind_t prop, dnnl_alg_kind_t alg, hs_md_ref data,
                                    float alpha, float beta, const_dnnl_primitive_attr_t attr);
dnnl_status_t hs_eltwise_backward_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                     dnnl_alg_kind_t alg, hs_md_ref diff_data, hs_md_ref data,
                                     float alpha, float beta, const_dnnl_primitive_desc_t hint,
                                     const_dnnl_primitive_attr_t attr);
dnnl_status_t hs_batch_norm_forward_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                       dnnl_prop_kind_t prop, hs_md_ref data, float epsilon,
                                       unsigned flags, const_dnnl_primitive_attr_t attr);
dnnl_status_t hs_batch_norm_backward_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                        dnnl_prop_kind_t prop, hs_md_ref diff_data,
                                        hs_md_ref data, float epsilon, unsigned flags,
                                        const_dnnl_primitive_desc_t hint,
                                        const_dnnl_primitive_attr_t attr);
dnnl_status_t hs_binary_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, dnnl_alg_kind_t alg,
                           hs_md_ref src0, hs_md_ref src1, hs_md_ref dst,
                           const_dnnl_primitive_attr_t attr);
dnnl_status_t hs_matmul_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, hs_md_ref src,
                           hs_md_ref weights, hs_md_ref bias, hs_md_ref dst,
                           const_dnnl_primitive_attr_t attr);

/* Whether the effective ISA includes `isa`'s instructions (oneDNN's ISA values are bit sets
 * in both versions: one includes another when it holds all of its bits). */
int hs_dnnl_isa_has(dnnl_cpu_isa_t isa);
/* The loaded oneDNN's version as "major.minor.patch". */
void hs_dnnl_version(char *text, size_t size);

#endif
