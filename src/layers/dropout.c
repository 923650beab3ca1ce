/* Dropout with probability dropout_p: in training each value is kept with probability 1 - p
 * and scaled by 1 / (1 - p); the identity at inference. The mask of each sample comes from
 * its own stream (hs_rng_for_sample: the step's key, the layer, the sample's id), one
 * uniform per value in order, so it does not depend on the batch or rank it runs in. */
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
    int64_t per_sample = hs_act_numel(a->in);
    for (int b = 0; b < a->n; b++) {
        hs_rng rng;
        hs_rng_for_sample(&rng, a->rng, a->layer, a->samples ? a->samples[b] : b);
        uint8_t *mask = a->mask + (size_t)b * per_sample;
        for (int64_t k = 0; k < per_sample; k++) mask[k] = hs_rng_uniform(&rng) >= l->dropout_p;
    }
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
