/* Dropout with probability dropout_p: in training each value is kept with probability 1 - p
 * (mask drawn from the caller's stream, one uniform per value in order) and scaled by
 * 1 / (1 - p); the identity at inference. */
#include <string.h>

#include "layer.h"

static hs_status same_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                            hs_error *err) {
    *out = in;
    return HS_OK;
}

static void dropout_tape(const hs_layer *l, hs_act_shape in, hs_act_shape out, int n,
                         int64_t *floats, int64_t *bytes) {
    *floats = 0;
    *bytes = (int64_t)n * hs_act_numel(in);
}

static hs_status dropout_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    int64_t count = (int64_t)a->n * hs_act_numel(a->in);
    if (!a->training) {
        memcpy(a->y, a->x, (size_t)count * sizeof(float));
        return HS_OK;
    }
    for (int64_t k = 0; k < count; k++) a->mask[k] = hs_rng_uniform(a->rng) >= l->dropout_p;
    hs_dropout_forward_ref(a->x, a->mask, count, l->dropout_p, a->y);
    return HS_OK;
}

static hs_status dropout_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    if (a->dx)
        hs_dropout_backward_ref(a->dy, a->mask, (int64_t)a->n * hs_act_numel(a->in),
                                l->dropout_p, a->dx);
    return HS_OK;
}

const hs_layer_ops hs_dropout_ops = {"dropout", same_shape, NULL, NULL, dropout_tape,
                                     dropout_forward, dropout_backward, NULL};
