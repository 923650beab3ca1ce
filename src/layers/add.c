/* Residual add: y = x + (output of layer `from`), an edge to an earlier layer (darknet's
 * shortcut layer). Backward passes dy to both inputs; the edge's share is accumulated (+=)
 * because that output also feeds other layers. */
#include "layer.h"
#include "ops.h"

static hs_status add_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                           hs_error *err) {
    *out = in;
    return HS_OK;
}

static hs_status add_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    int64_t count = (int64_t)a->n * hs_act_numel(a->in);
    if (!a->other) return hs_fail(err, HS_ERR_INTERNAL, "residual add without its edge");
    for (int64_t i = 0; i < count; i++) a->y[i] = a->x[i] + a->other[i];
    return HS_OK;
}

static hs_status add_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    int64_t count = (int64_t)a->n * hs_act_numel(a->in);
    for (int64_t i = 0; a->dx && i < count; i++) a->dx[i] = a->dy[i];
    if (a->dother) hs_add_inplace(a->dother, a->dy, count);
    return HS_OK;
}

static hs_status add_check_edge(const hs_layer *l, hs_act_shape in, hs_act_shape other,
                                hs_error *err) {
    if (in.c == other.c && in.h == other.h && in.w == other.w) return HS_OK;
    return hs_fail(err, HS_ERR_ARGUMENT, "residual add %s: %dx%dx%d and %dx%dx%d differ",
                   l->name, in.c, in.h, in.w, other.c, other.h, other.w);
}

const hs_layer_ops hs_add_ops = {"add", add_shape, NULL, NULL, NULL, add_forward,
                                 add_backward, add_check_edge};
