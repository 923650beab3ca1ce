/* EfficientNet's drop connect (efficientnet_lite_pytorch `drop_connect`), applied to a
 * block's output before its residual add: in training each sample is kept with probability
 * 1 - p (keep = floor(1 - p + U), i.e. U >= p, one uniform per sample from the sample's own
 * stream, hs_rng_for_sample, so that it does not depend on the batch or rank it runs in) and
 * scaled by 1 / (1 - p); the identity at inference or when p is 0. */
#include <string.h>

#include "layer.h"

static hs_status same_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                            hs_error *err) {
    *out = in;
    return HS_OK;
}

static void drop_connect_tape(const hs_layer *l, hs_act_shape in, hs_act_shape out, int n,
                              int64_t *floats, int64_t *bytes) {
    *floats = 0;
    *bytes = n;
}

static int active(const hs_layer *l, int training) { return training && l->dropout_p > 0; }

static hs_status drop_connect_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    int64_t per_sample = hs_act_numel(a->in);
    if (!active(l, a->training)) {
        memcpy(a->y, a->x, (size_t)a->n * per_sample * sizeof(float));
        if (a->mask) memset(a->mask, 1, (size_t)a->n);
        return HS_OK;
    }
    for (int b = 0; b < a->n; b++) {
        hs_rng rng;
        hs_rng_for_sample(&rng, a->rng, a->layer, a->samples ? a->samples[b] : b);
        a->mask[b] = hs_rng_uniform(&rng) >= l->dropout_p;
    }
    hs_drop_connect_forward_ref(a->x, a->mask, a->n, per_sample, l->dropout_p, a->y);
    return HS_OK;
}

static hs_status drop_connect_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    if (!a->dx) return HS_OK;
    int64_t per_sample = hs_act_numel(a->in);
    if (l->dropout_p > 0)
        hs_drop_connect_backward_ref(a->dy, a->mask, a->n, per_sample, l->dropout_p, a->dx);
    else
        memcpy(a->dx, a->dy, (size_t)a->n * per_sample * sizeof(float));
    return HS_OK;
}

const hs_layer_ops hs_drop_connect_ops = {"drop_connect", same_shape, NULL, NULL,
                                          drop_connect_tape, drop_connect_forward,
                                          drop_connect_backward, NULL};
