/* Linear: y = x W^T + b. Keys: weight (out x in), bias (out). */
#include "layer.h"
#include "ops.h"

static hs_status linear_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                              hs_error *err) {
    if (hs_act_numel(in) != l->in_features)
        return hs_fail(err, HS_ERR_ARGUMENT, "%s expects %d inputs, got %lld", l->name,
                       l->in_features, (long long)hs_act_numel(in));
    out->c = l->out_features;
    out->h = out->w = 1;
    return hs_layer_check_size(l, in, *out, err);
}

static int linear_params(hs_layer *l, hs_param_sink *sink) {
    int64_t w[2] = {l->out_features, l->in_features};
    int64_t b[1] = {l->out_features};
    return sink->add(sink, "weight", &l->weight, &l->dweight, 2, w, 0) &&
           sink->add(sink, "bias", &l->bias, &l->dbias, 1, b, 0);
}

static void linear_init(hs_layer *l, hs_rng *rng) {
    hs_fill_fan_in_uniform(l->weight, (int64_t)l->in_features * l->out_features,
                           l->in_features, rng);
    hs_fill_fan_in_uniform(l->bias, l->out_features, l->in_features, rng);
}

static hs_status linear_forward(hs_layer *l, const hs_forward_args *a, hs_error *err) {
    hs_linear_forward(a->x, a->n, l->in_features, l->weight, l->bias, l->out_features, a->y);
    return HS_OK;
}

static hs_status linear_backward(hs_layer *l, const hs_backward_args *a, hs_error *err) {
    int grads = a->param_grads && l->dweight;
    hs_linear_backward(a->x, a->n, l->in_features, l->weight, l->out_features, a->dy, a->dx,
                       grads ? l->dweight : NULL, grads ? l->dbias : NULL);
    return HS_OK;
}

const hs_layer_ops hs_linear_ops = {"linear", linear_shape, linear_params, linear_init, NULL,
                                    linear_forward, linear_backward, NULL};
