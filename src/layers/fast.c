/* The fast training passes: the forward and backward of the kinds that have oneDNN training
 * plans (ops_grad.h), used instead of each kind's own reference kernels when the context's
 * backend is HS_BACKEND_CPU (registry.c chooses; HS_BACKEND_REFERENCE keeps the reference).
 *
 * Plans are kept per layer for the last shape it ran on (l->train_plan), like the inference
 * plan keeps hs_conv_plan: made on the first pass, remade when the batch or image size
 * changes, freed by hs_net_release_train_plans. They hold no weights (each run reads the
 * layer's current ones), so an optimiser step or a loaded state dict leaves them valid.
 *
 * Where a pass has nothing faster (inference BatchNorm, a batch too small for batch
 * statistics) it calls the kind's own operation, so behaviour and messages stay the same.
 *
 * Layouts (hs_fast_layout_rule). The tape keeps activations in the blocked layout of this
 * CPU's kernels (hs_grad_plans_layout: nChw16c on AVX-512, nChw8c below) from the first
 * convolution to the global pooling: convolutions read and write any layout (oneDNN takes
 * them as they are), BatchNorm and pooling run oneDNN or threaded loops in their input's
 * layout, the global average pool is the exit to NCHW. Element-wise kinds whose function
 * maps 0 to 0 (ReLU, ReLU6, hardswish, SiLU, GELU, residual add, drop connect) run their
 * NCHW code over all of a blocked activation's floats: the padding channels stay zero and
 * drop connect's per-sample scale still covers one sample. Every other kind (linear,
 * flatten, dropout, sigmoid, hard sigmoid, SE scale, LayerNorm2d, layer scale, adaptive
 * pooling to more than 1 x 1) is NCHW only: the tape keeps its inputs and output NCHW, which
 * makes the convolutions around it read or write NCHW (MobileNet's SE blocks, ConvNeXt's
 * LayerNorm2d and layer scale are such boundaries).
 *
 * Precision: oneDNN accumulates in float32 where the reference accumulates in double. With
 * batch-statistics BatchNorm over tiny maps (2 x 2 x 2 values a channel) that rounding is
 * amplified to ~1 % in deep gradients; on well-conditioned batches (>= 8 images, maps >= 4 x
 * 4) a whole step agrees with the reference to ~1e-4 (tests/test_engine_fast.c).
 *
 * Mixed precision (hs_tape.bf16, args->bf16): the convolutions' plans run in bfloat16
 * (hs_conv_grad_plan_create_prec: float32 arrays at their edges, depthwise float32); every
 * other pass, the activations between layers and the parameters stay float32. */
#include <math.h>
#include <stdlib.h>

#include "layer.h"
#include "ops.h"
#include "ops_grad.h"

struct hs_train_plan {
    hs_conv_grad_plan *conv;
    int conv_bf16; /* what conv was asked for (a plan without bf16 kernels is float32) */
    hs_bn_grad_plan *bn;
    hs_pool_grad_plan *pool;
    int pool_n, pool_c, pool_h, pool_w; /* hs_pool_grad_plan has no matches() */
    hs_layout pool_layout;
    hs_act_grad_plan *act;
    int64_t act_count;
};

void hs_layer_train_plan_free(hs_layer *l) {
    struct hs_train_plan *p = l->train_plan;
    if (!p) return;
    hs_conv_grad_plan_free(p->conv);
    hs_bn_grad_plan_free(p->bn);
    hs_pool_grad_plan_free(p->pool);
    hs_act_grad_plan_free(p->act);
    free(p);
    l->train_plan = NULL;
}

static hs_status plan_nomem(const hs_layer *l, hs_error *err) {
    return hs_fail(err, HS_ERR_NOMEM, "out of memory for the training plan of %s", l->name);
}

/* The layer's plan holder, made on first use. */
static hs_status plan_slot(hs_layer *l, struct hs_train_plan **out, hs_error *err) {
    if (!l->train_plan && !(l->train_plan = calloc(1, sizeof(struct hs_train_plan))))
        return plan_nomem(l, err);
    *out = l->train_plan;
    return HS_OK;
}

static hs_status run_failed(const hs_layer *l, const char *what, hs_error *err) {
    return hs_fail(err, HS_ERR_INTERNAL, "oneDNN failed in the %s of %s", what, l->name);
}

/* ---- convolution ------------------------------------------------------------------------ */

static hs_status plan_failed(const hs_layer *l, hs_layout layout, hs_error *err) {
    if (layout == HS_LAYOUT_NCHW) return plan_nomem(l, err);
    return hs_fail(err, HS_ERR_INTERNAL,
                   "out of memory, or oneDNN cannot make a blocked-layout training plan, for %s",
                   l->name);
}

static hs_status conv_plan(hs_layer *l, const hs_conv2d_shape *s, int n, int h, int w,
                           hs_layout src, hs_layout dst, int bf16, hs_conv_grad_plan **out,
                           hs_error *err) {
    struct hs_train_plan *p = NULL;
    hs_status st = plan_slot(l, &p, err);
    if (st) return st;
    bf16 = bf16 != 0;
    if (!p->conv || !hs_conv_grad_plan_matches(p->conv, s, n, h, w, src, dst) ||
        p->conv_bf16 != bf16) {
        hs_conv_grad_plan_free(p->conv);
        if (!(p->conv = hs_conv_grad_plan_create_prec(s, n, h, w, src, dst, bf16)))
            return plan_failed(l, src != HS_LAYOUT_NCHW ? src : dst, err);
        p->conv_bf16 = bf16;
    }
    *out = p->conv;
    return HS_OK;
}

static hs_status conv_forward_fast(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    hs_conv2d_shape s = hs_conv_for_input(l, a->in.h, a->in.w);
    hs_conv_grad_plan *plan = NULL;
    hs_status st =
        conv_plan(l, &s, a->n, a->in.h, a->in.w, a->in_layout, a->out_layout, a->bf16, &plan,
                  err);
    if (st) return st;
    if (hs_conv_grad_plan_forward(plan, a->x, l->weight, l->bias, a->y))
        return run_failed(l, "convolution forward", err);
    return HS_OK;
}

static hs_status conv_backward_fast(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    hs_conv2d_shape s = hs_conv_for_input(l, a->in.h, a->in.w);
    hs_conv_grad_plan *plan = NULL;
    hs_status st =
        conv_plan(l, &s, a->n, a->in.h, a->in.w, a->in_layout, a->out_layout, a->bf16, &plan,
                  err);
    if (st) return st;
    int grads = a->param_grads && l->dweight;
    if (hs_conv_grad_plan_run(plan, a->x, l->weight, a->dy, a->dx, grads ? l->dweight : NULL,
                              grads ? l->dbias : NULL))
        return run_failed(l, "convolution backward", err);
    return HS_OK;
}

/* ---- BatchNorm -------------------------------------------------------------------------- */

static hs_status bn_plan(hs_layer *l, int n, int hw, hs_layout layout, hs_bn_grad_plan **out,
                         hs_error *err) {
    struct hs_train_plan *p = NULL;
    hs_status st = plan_slot(l, &p, err);
    if (st) return st;
    if (!p->bn || !hs_bn_grad_plan_matches(p->bn, n, l->channels, hw, l->bn_eps, layout)) {
        hs_bn_grad_plan_free(p->bn);
        if (!(p->bn = hs_bn_grad_plan_create(n, l->channels, hw, l->bn_eps, layout)))
            return plan_failed(l, layout, err);
    }
    *out = p->bn;
    return HS_OK;
}

static hs_status bn_forward_fast(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    int hw = a->in.h * a->in.w;
    int batch_stats = a->training && l->bn_mode == HS_BN_TRAIN;
    if (a->in_layout != HS_LAYOUT_NCHW && !batch_stats) { /* running statistics, blocked */
        hs_batchnorm_frozen_forward(a->x, a->in_layout, a->n, l->channels, hw, l->weight,
                                    l->bias, l->running_mean, l->running_var, l->bn_eps, a->y);
        return HS_OK;
    }
    if (!batch_stats || (int64_t)a->n * hw < 2)
        return hs_batchnorm_ops.forward(l, a, err); /* running statistics, or its message */
    hs_bn_grad_plan *plan = NULL;
    hs_status st = bn_plan(l, a->n, hw, a->in_layout, &plan, err);
    if (st) return st;
    if (hs_bn_grad_plan_forward(plan, a->x, l->weight, l->bias, l->bn_momentum,
                                l->running_mean, l->running_var, a->saved,
                                a->saved + l->channels, a->y))
        return run_failed(l, "BatchNorm forward", err);
    l->bn_batches_tracked++;
    return HS_OK;
}

static hs_status bn_backward_fast(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    int hw = a->in.h * a->in.w;
    int grads = a->param_grads && l->dweight;
    float *dg = grads ? l->dweight : NULL, *db = grads ? l->dbias : NULL;
    if (l->bn_mode != HS_BN_TRAIN) {
        hs_batchnorm_frozen_backward(a->x, a->dy, a->in_layout, a->n, l->channels, hw,
                                     l->weight, l->running_mean, l->running_var, l->bn_eps,
                                     a->dx, dg, db);
        return HS_OK;
    }
    hs_bn_grad_plan *plan = NULL;
    hs_status st = bn_plan(l, a->n, hw, a->in_layout, &plan, err);
    if (st) return st;
    if (hs_bn_grad_plan_backward(plan, a->x, a->dy, l->weight, a->saved,
                                 a->saved + l->channels, a->dx, dg, db))
        return run_failed(l, "BatchNorm backward", err);
    return HS_OK;
}

/* ---- BatchNorm + ReLU / ReLU6, fused (the tape pairs them, net_train.c) ---------------- */

static float act_upper(const hs_layer *act) { return act->kind == HS_LAYER_RELU6 ? 6.0f : INFINITY; }

hs_status hs_fast_bn_act_forward(hs_layer *bn, const hs_layer *act, const hs_forward_args *a,
                                 hs_error *err) {
    int hw = a->in.h * a->in.w;
    int batch_stats = a->training && bn->bn_mode == HS_BN_TRAIN;
    if (batch_stats && (int64_t)a->n * hw < 2)
        return hs_batchnorm_ops.forward(bn, a, err); /* its message: refused before any work */
    hs_bn_act_forward(a->x, a->in_layout, a->n, bn->channels, hw, bn->weight, bn->bias,
                      bn->bn_eps, bn->bn_momentum, batch_stats, bn->running_mean,
                      bn->running_var, a->saved, a->saved + bn->channels, act_upper(act), a->y);
    if (batch_stats) bn->bn_batches_tracked++;
    return HS_OK;
}

hs_status hs_fast_bn_act_backward(hs_layer *bn, const hs_layer *act, const hs_backward_args *a,
                                  hs_error *err) {
    int grads = a->param_grads && bn->dweight;
    hs_bn_act_backward(a->x, a->dy, a->in_layout, a->n, bn->channels, a->in.h * a->in.w,
                       bn->weight, bn->bias, a->saved, a->saved + bn->channels,
                       bn->bn_mode == HS_BN_TRAIN, act_upper(act), a->dx,
                       grads ? bn->dweight : NULL, grads ? bn->dbias : NULL);
    return HS_OK;
}

/* ---- pooling ---------------------------------------------------------------------------- */

static hs_status pool_plan(hs_layer *l, hs_pool_kind kind, int n, hs_act_shape in,
                           hs_layout layout, hs_pool_grad_plan **out, hs_error *err) {
    struct hs_train_plan *p = NULL;
    hs_status st = plan_slot(l, &p, err);
    if (st) return st;
    if (!p->pool || p->pool_n != n || p->pool_c != in.c || p->pool_h != in.h ||
        p->pool_w != in.w || p->pool_layout != layout) {
        hs_pool_grad_plan_free(p->pool);
        p->pool_n = 0;
        if (!(p->pool = hs_pool_grad_plan_create(kind, n, in.c, in.h, in.w, l->pool_kernel,
                                                 l->pool_stride, l->pool_pad, layout)))
            return plan_failed(l, layout, err);
        p->pool_layout = layout;
        p->pool_n = n;
        p->pool_c = in.c;
        p->pool_h = in.h;
        p->pool_w = in.w;
    }
    *out = p->pool;
    return HS_OK;
}

/* Max pooling's backward routes through the argmax the plan kept from the last training
 * forward of this layer, so a layer's training forward and backward must pair up (as the
 * tape runs them); an NCHW inference forward does not touch the plan (a blocked one has no
 * other kernel: it runs the plan and leaves an argmax no backward reads). */
static hs_status pool_forward_fast(hs_layer *l, hs_pool_kind kind, const hs_forward_args *a,
                                   hs_error *err) {
    if (!a->training && a->in_layout == HS_LAYOUT_NCHW)
        return (kind == HS_POOL_MAX ? hs_maxpool_ops : hs_avgpool_ops).forward(l, a, err);
    hs_pool_grad_plan *plan = NULL;
    hs_status st = pool_plan(l, kind, a->n, a->in, a->in_layout, &plan, err);
    if (st) return st;
    if (hs_pool_grad_plan_forward(plan, a->x, a->y)) return run_failed(l, "pooling forward", err);
    return HS_OK;
}

static hs_status pool_backward_fast(hs_layer *l, hs_pool_kind kind, const hs_backward_args *a,
                                    hs_error *err) {
    if (!a->dx) return HS_OK;
    hs_pool_grad_plan *plan = NULL;
    hs_status st = pool_plan(l, kind, a->n, a->in, a->in_layout, &plan, err);
    if (st) return st;
    if (hs_pool_grad_plan_backward(plan, a->x, a->dy, a->dx))
        return run_failed(l, "pooling backward", err);
    return HS_OK;
}

static hs_status maxpool_forward_fast(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    return pool_forward_fast(l, HS_POOL_MAX, a, err);
}
static hs_status maxpool_backward_fast(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    return pool_backward_fast(l, HS_POOL_MAX, a, err);
}
static hs_status avgpool_forward_fast(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    return pool_forward_fast(l, HS_POOL_AVG, a, err);
}
static hs_status avgpool_backward_fast(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    return pool_backward_fast(l, HS_POOL_AVG, a, err);
}

/* Global (1 x 1) pooling is the blocked layout's exit: x in any layout, y NCHW. */
static hs_status adaptive_forward_fast(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    if (a->in_layout == HS_LAYOUT_NCHW) return hs_adaptive_avgpool_ops.forward(l, a, err);
    hs_global_avgpool_forward(a->x, a->in_layout, a->n, a->in.c, a->in.h * a->in.w, a->y);
    return HS_OK;
}

static hs_status adaptive_backward_fast(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    if (!a->dx) return HS_OK;
    if (a->in_layout != HS_LAYOUT_NCHW)
        hs_global_avgpool_backward(a->dy, a->in_layout, a->n, a->in.c, a->in.h * a->in.w,
                                   a->dx);
    else
        hs_adaptive_avgpool2d_backward(a->n, a->in.c, a->in.h, a->in.w, l->out_h, l->out_w,
                                       a->dy, a->dx);
    return HS_OK;
}

/* ---- element-wise kinds -------------------------------------------------------------------
 * In a blocked layout they see shapes whose channels are rounded up to whole blocks, so
 * their NCHW code covers every float of the activation (padding included). */

static hs_act_shape padded(hs_act_shape s, hs_layout layout) {
    int block = hs_layout_block(layout);
    s.c = (s.c + block - 1) / block * block;
    return s;
}

static hs_status eltwise_forward_fast(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    hs_forward_args b = *a;
    b.in = padded(a->in, a->in_layout);
    b.out = padded(a->out, a->out_layout);
    b.other_shape = padded(a->other_shape, a->in_layout);
    return hs_layer_ops_of(l->kind)->forward(l, &b, err);
}

static hs_status eltwise_backward_fast(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    hs_backward_args b = *a;
    b.in = padded(a->in, a->in_layout);
    b.out = padded(a->out, a->out_layout);
    b.other_shape = padded(a->other_shape, a->in_layout);
    return hs_layer_ops_of(l->kind)->backward(l, &b, err);
}

/* ---- ReLU, ReLU6 (their forwards in ops.h are already threaded) ------------------------- */

static hs_status act_backward_fast(hs_layer *l, hs_act_kind kind, const hs_backward_args *a,
                                   hs_error *err) {
    if (!a->dx) return HS_OK;
    int64_t count = (int64_t)a->n * hs_act_numel(padded(a->in, a->in_layout));
    struct hs_train_plan *p = NULL;
    hs_status st = plan_slot(l, &p, err);
    if (st) return st;
    if (!p->act || p->act_count != count) {
        hs_act_grad_plan_free(p->act);
        p->act_count = 0;
        if (!(p->act = hs_act_grad_plan_create(kind, count))) return plan_nomem(l, err);
        p->act_count = count;
    }
    if (hs_act_grad_plan_run(p->act, a->x, a->dy, a->dx))
        return run_failed(l, "activation backward", err);
    return HS_OK;
}

static hs_status relu_backward_fast(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    return act_backward_fast(l, HS_ACT_RELU, a, err);
}
static hs_status relu6_backward_fast(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    return act_backward_fast(l, HS_ACT_RELU6, a, err);
}

/* NULL members: the kind's own operation. */
const hs_layer_pass hs_fast_passes[HS_LAYER_KIND_COUNT] = {
    [HS_LAYER_CONV] = {conv_forward_fast, conv_backward_fast},
    [HS_LAYER_BATCHNORM] = {bn_forward_fast, bn_backward_fast},
    [HS_LAYER_MAXPOOL] = {maxpool_forward_fast, maxpool_backward_fast},
    [HS_LAYER_AVGPOOL] = {avgpool_forward_fast, avgpool_backward_fast},
    [HS_LAYER_ADAPTIVE_AVGPOOL] = {adaptive_forward_fast, adaptive_backward_fast},
    [HS_LAYER_RELU] = {eltwise_forward_fast, relu_backward_fast},
    [HS_LAYER_RELU6] = {eltwise_forward_fast, relu6_backward_fast},
    [HS_LAYER_HARDSWISH] = {eltwise_forward_fast, eltwise_backward_fast},
    [HS_LAYER_SILU] = {eltwise_forward_fast, eltwise_backward_fast},
    [HS_LAYER_GELU] = {eltwise_forward_fast, eltwise_backward_fast},
    [HS_LAYER_ADD] = {eltwise_forward_fast, eltwise_backward_fast},
    [HS_LAYER_DROP_CONNECT] = {eltwise_forward_fast, eltwise_backward_fast},
};

hs_layout_rule hs_fast_layout_rule(const hs_layer *l) {
    switch (l->kind) {
    case HS_LAYER_CONV: return HS_LAYOUT_RULE_ANY;
    case HS_LAYER_ADAPTIVE_AVGPOOL:
        return l->out_h == 1 && l->out_w == 1 ? HS_LAYOUT_RULE_EXIT : HS_LAYOUT_RULE_NCHW;
    case HS_LAYER_BATCHNORM:
    case HS_LAYER_MAXPOOL:
    case HS_LAYER_AVGPOOL:
    case HS_LAYER_RELU:
    case HS_LAYER_RELU6:
    case HS_LAYER_HARDSWISH:
    case HS_LAYER_SILU:
    case HS_LAYER_GELU:
    case HS_LAYER_ADD:
    case HS_LAYER_DROP_CONNECT: return HS_LAYOUT_RULE_SAME;
    default: return HS_LAYOUT_RULE_NCHW;
    }
}
