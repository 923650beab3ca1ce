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
 * Precision: oneDNN accumulates in float32 where the reference accumulates in double. With
 * batch-statistics BatchNorm over tiny maps (2 x 2 x 2 values a channel) that rounding is
 * amplified to ~1 % in deep gradients; on well-conditioned batches (>= 8 images, maps >= 4 x
 * 4) a whole step agrees with the reference to ~1e-4 (tests/test_engine_fast.c). */
#include <stdlib.h>

#include "layer.h"
#include "ops.h"
#include "ops_grad.h"

struct hs_train_plan {
    hs_conv_grad_plan *conv;
    hs_bn_grad_plan *bn;
    hs_pool_grad_plan *pool;
    int pool_n, pool_c, pool_h, pool_w; /* hs_pool_grad_plan has no matches() */
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

static hs_status conv_plan(hs_layer *l, const hs_conv2d_shape *s, int n, int h, int w,
                           hs_conv_grad_plan **out, hs_error *err) {
    struct hs_train_plan *p = NULL;
    hs_status st = plan_slot(l, &p, err);
    if (st) return st;
    if (!p->conv || !hs_conv_grad_plan_matches(p->conv, s, n, h, w)) {
        hs_conv_grad_plan_free(p->conv);
        if (!(p->conv = hs_conv_grad_plan_create(s, n, h, w))) return plan_nomem(l, err);
    }
    *out = p->conv;
    return HS_OK;
}

static hs_status conv_forward_fast(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    hs_conv2d_shape s = hs_conv_for_input(l, a->in.h, a->in.w);
    hs_conv_grad_plan *plan = NULL;
    hs_status st = conv_plan(l, &s, a->n, a->in.h, a->in.w, &plan, err);
    if (st) return st;
    if (hs_conv_grad_plan_forward(plan, a->x, l->weight, l->bias, a->y))
        return run_failed(l, "convolution forward", err);
    return HS_OK;
}

static hs_status conv_backward_fast(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    hs_conv2d_shape s = hs_conv_for_input(l, a->in.h, a->in.w);
    hs_conv_grad_plan *plan = NULL;
    hs_status st = conv_plan(l, &s, a->n, a->in.h, a->in.w, &plan, err);
    if (st) return st;
    int grads = a->param_grads && l->dweight;
    if (hs_conv_grad_plan_run(plan, a->x, l->weight, a->dy, a->dx, grads ? l->dweight : NULL,
                              grads ? l->dbias : NULL))
        return run_failed(l, "convolution backward", err);
    return HS_OK;
}

/* ---- BatchNorm -------------------------------------------------------------------------- */

static hs_status bn_plan(hs_layer *l, int n, int hw, hs_bn_grad_plan **out, hs_error *err) {
    struct hs_train_plan *p = NULL;
    hs_status st = plan_slot(l, &p, err);
    if (st) return st;
    if (!p->bn || !hs_bn_grad_plan_matches(p->bn, n, l->channels, hw, l->bn_eps)) {
        hs_bn_grad_plan_free(p->bn);
        if (!(p->bn = hs_bn_grad_plan_create(n, l->channels, hw, l->bn_eps)))
            return plan_nomem(l, err);
    }
    *out = p->bn;
    return HS_OK;
}

static hs_status bn_forward_fast(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    int hw = a->in.h * a->in.w;
    if (!a->training || l->bn_mode != HS_BN_TRAIN || (int64_t)a->n * hw < 2)
        return hs_batchnorm_ops.forward(l, a, err); /* running statistics, or its message */
    hs_bn_grad_plan *plan = NULL;
    hs_status st = bn_plan(l, a->n, hw, &plan, err);
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
        hs_batchnorm_frozen_backward(a->x, a->dy, a->n, l->channels, hw, l->weight,
                                     l->running_mean, l->running_var, l->bn_eps, a->dx, dg, db);
        return HS_OK;
    }
    hs_bn_grad_plan *plan = NULL;
    hs_status st = bn_plan(l, a->n, hw, &plan, err);
    if (st) return st;
    if (hs_bn_grad_plan_backward(plan, a->x, a->dy, l->weight, a->saved,
                                 a->saved + l->channels, a->dx, dg, db))
        return run_failed(l, "BatchNorm backward", err);
    return HS_OK;
}

/* ---- pooling ---------------------------------------------------------------------------- */

static hs_status pool_plan(hs_layer *l, hs_pool_kind kind, int n, hs_act_shape in,
                           hs_pool_grad_plan **out, hs_error *err) {
    struct hs_train_plan *p = NULL;
    hs_status st = plan_slot(l, &p, err);
    if (st) return st;
    if (!p->pool || p->pool_n != n || p->pool_c != in.c || p->pool_h != in.h ||
        p->pool_w != in.w) {
        hs_pool_grad_plan_free(p->pool);
        p->pool_n = 0;
        if (!(p->pool = hs_pool_grad_plan_create(kind, n, in.c, in.h, in.w, l->pool_kernel,
                                                 l->pool_stride, l->pool_pad)))
            return plan_nomem(l, err);
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
 * tape runs them); an inference forward does not touch the plan. */
static hs_status pool_forward_fast(hs_layer *l, hs_pool_kind kind, const hs_forward_args *a,
                                   hs_error *err) {
    if (!a->training)
        return (kind == HS_POOL_MAX ? hs_maxpool_ops : hs_avgpool_ops).forward(l, a, err);
    hs_pool_grad_plan *plan = NULL;
    hs_status st = pool_plan(l, kind, a->n, a->in, &plan, err);
    if (st) return st;
    if (hs_pool_grad_plan_forward(plan, a->x, a->y)) return run_failed(l, "pooling forward", err);
    return HS_OK;
}

static hs_status pool_backward_fast(hs_layer *l, hs_pool_kind kind, const hs_backward_args *a,
                                    hs_error *err) {
    if (!a->dx) return HS_OK;
    hs_pool_grad_plan *plan = NULL;
    hs_status st = pool_plan(l, kind, a->n, a->in, &plan, err);
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

static hs_status adaptive_backward_fast(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    hs_adaptive_avgpool2d_backward(a->n, a->in.c, a->in.h, a->in.w, l->out_h, l->out_w, a->dy,
                                   a->dx);
    return HS_OK;
}

/* ---- ReLU, ReLU6 (their forwards in ops.h are already threaded) ------------------------- */

static hs_status act_backward_fast(hs_layer *l, hs_act_kind kind, const hs_backward_args *a,
                                   hs_error *err) {
    if (!a->dx) return HS_OK;
    int64_t count = (int64_t)a->n * hs_act_numel(a->in);
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
    [HS_LAYER_ADAPTIVE_AVGPOOL] = {NULL, adaptive_backward_fast},
    [HS_LAYER_RELU] = {NULL, relu_backward_fast},
    [HS_LAYER_RELU6] = {NULL, relu6_backward_fast},
};
