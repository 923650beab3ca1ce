/* Building a network, its parameters and their PyTorch names. Running it is in net_run.c,
 * loading and saving weights in net_weights.c. */
#include "net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "rng.h"

hs_layer *hs_net_add_layer(hs_net *net, hs_layer_kind kind, const char *name) {
    if (net->count == net->capacity) {
        int capacity = net->capacity ? net->capacity * 2 : 64;
        hs_layer *grown = realloc(net->layers, (size_t)capacity * sizeof *grown);
        if (!grown) return NULL;
        net->layers = grown;
        net->capacity = capacity;
    }
    hs_layer *layer = &net->layers[net->count++];
    memset(layer, 0, sizeof *layer);
    layer->kind = kind;
    snprintf(layer->name, sizeof layer->name, "%s", name ? name : "");
    net->prepared = 0;
    return layer;
}

hs_layer *hs_net_add_conv(hs_net *net, const char *name, const char *bn_name, int in_c,
                          int out_c, int kernel, int stride, int pad, int groups, int has_bias,
                          int same_padding, float bn_eps) {
    hs_layer *layer = hs_net_add_layer(net, HS_LAYER_CONV, name);
    if (!layer) return NULL;
    snprintf(layer->bn_name, sizeof layer->bn_name, "%s", bn_name ? bn_name : "");
    hs_conv2d_shape *s = &layer->conv;
    s->in_channels = in_c;
    s->out_channels = out_c;
    s->kernel_h = s->kernel_w = kernel;
    s->stride_h = s->stride_w = stride;
    s->pad_top = s->pad_bottom = s->pad_left = s->pad_right = pad;
    s->dilation_h = s->dilation_w = 1;
    s->groups = groups;
    layer->has_bias = has_bias;
    layer->same_padding = same_padding;
    layer->bn_eps = bn_eps;
    return layer;
}

hs_layer *hs_net_add_linear(hs_net *net, const char *name, int in_features, int out_features) {
    hs_layer *layer = hs_net_add_layer(net, HS_LAYER_LINEAR, name);
    if (!layer) return NULL;
    layer->in_features = in_features;
    layer->out_features = out_features;
    return layer;
}

/* ---- Parameter listing ------------------------------------------------------------------ */

typedef struct param_list {
    hs_param_ref *refs;
    int count;
    int capacity;
} param_list;

static int push_param(param_list *list, int layer, const char *prefix, const char *suffix,
                      float **data, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    if (list->count == list->capacity) {
        int capacity = list->capacity ? list->capacity * 2 : 128;
        hs_param_ref *grown = realloc(list->refs, (size_t)capacity * sizeof *grown);
        if (!grown) return 0;
        list->refs = grown;
        list->capacity = capacity;
    }
    hs_param_ref *ref = &list->refs[list->count++];
    memset(ref, 0, sizeof *ref);
    snprintf(ref->key, sizeof ref->key, "%s.%s", prefix, suffix);
    ref->data = data;
    ref->ndim = ndim;
    int64_t dims[4] = {d0, d1, d2, d3};
    for (int i = 0; i < ndim; i++) ref->shape[i] = dims[i];
    ref->layer = layer;
    return 1;
}

static int list_layer_params(param_list *list, hs_layer *l, int index) {
    if (l->kind == HS_LAYER_CONV) {
        const hs_conv2d_shape *s = &l->conv;
        int ok = push_param(list, index, l->name, "weight", &l->weight, 4, s->out_channels,
                            s->in_channels / s->groups, s->kernel_h, s->kernel_w);
        if (ok && l->has_bias)
            ok = push_param(list, index, l->name, "bias", &l->bias, 1, s->out_channels, 0, 0, 0);
        if (ok && l->bn_name[0]) {
            int64_t c = s->out_channels;
            ok = push_param(list, index, l->bn_name, "weight", &l->bn_weight, 1, c, 0, 0, 0) &&
                 push_param(list, index, l->bn_name, "bias", &l->bn_bias, 1, c, 0, 0, 0) &&
                 push_param(list, index, l->bn_name, "running_mean", &l->bn_mean, 1, c, 0, 0, 0) &&
                 push_param(list, index, l->bn_name, "running_var", &l->bn_var, 1, c, 0, 0, 0);
        }
        return ok;
    }
    if (l->kind == HS_LAYER_LINEAR) {
        return push_param(list, index, l->name, "weight", &l->weight, 2, l->out_features,
                          l->in_features, 0, 0) &&
               push_param(list, index, l->name, "bias", &l->bias, 1, l->out_features, 0, 0, 0);
    }
    return 1;
}

hs_status hs_net_params(hs_net *net, hs_param_ref **refs, int *count, hs_error *err) {
    param_list list = {0};
    for (int i = 0; i < net->count; i++) {
        if (!list_layer_params(&list, &net->layers[i], i)) {
            free(list.refs);
            return hs_fail(err, HS_ERR_NOMEM, "out of memory listing parameters");
        }
    }
    *refs = list.refs;
    *count = list.count;
    return HS_OK;
}

int64_t hs_param_numel(const hs_param_ref *ref) {
    int64_t n = 1;
    for (int i = 0; i < ref->ndim; i++) n *= ref->shape[i];
    return n;
}

/* ---- Initialisation ---------------------------------------------------------------------- */

/* PyTorch's default for Conv2d and Linear: kaiming_uniform_(a=sqrt(5)) on the weight, which
 * is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias. BatchNorm starts as
 * the identity (weight 1, bias 0, mean 0, var 1). */
static void init_layer(hs_layer *l, hs_rng *rng) {
    int64_t fan_in = 0, weights = 0, outputs = 0;
    if (l->kind == HS_LAYER_CONV) {
        const hs_conv2d_shape *s = &l->conv;
        fan_in = (int64_t)(s->in_channels / s->groups) * s->kernel_h * s->kernel_w;
        outputs = s->out_channels;
    } else if (l->kind == HS_LAYER_LINEAR) {
        fan_in = l->in_features;
        outputs = l->out_features;
    } else {
        return;
    }
    weights = fan_in * outputs;
    float bound = 1.0f / sqrtf((float)fan_in);
    for (int64_t i = 0; i < weights; i++) l->weight[i] = hs_rng_range(rng, -bound, bound);
    if (l->bias)
        for (int64_t i = 0; i < outputs; i++) l->bias[i] = hs_rng_range(rng, -bound, bound);
    if (l->bn_weight) {
        for (int64_t i = 0; i < outputs; i++) {
            l->bn_weight[i] = 1.0f;
            l->bn_bias[i] = 0.0f;
            l->bn_mean[i] = 0.0f;
            l->bn_var[i] = 1.0f;
        }
    }
}

hs_status hs_net_init_params(hs_net *net, int first, int last, uint64_t seed, hs_error *err) {
    hs_param_ref *refs = NULL;
    int count = 0;
    hs_status st = hs_net_params(net, &refs, &count, err);
    if (st) return st;
    for (int i = 0; i < count; i++) {
        if (refs[i].layer < first || refs[i].layer >= last) continue;
        int64_t n = hs_param_numel(&refs[i]);
        float *data = realloc(*refs[i].data, (size_t)n * sizeof(float));
        if (!data) {
            free(refs);
            return hs_fail(err, HS_ERR_NOMEM, "out of memory allocating %s (%lld floats)",
                           refs[i].key, (long long)n);
        }
        *refs[i].data = data;
    }
    free(refs);
    hs_rng rng;
    hs_rng_seed(&rng, seed);
    for (int i = first; i < last; i++) init_layer(&net->layers[i], &rng);
    net->prepared = 0;
    return HS_OK;
}

/* ---- BatchNorm folding ------------------------------------------------------------------- */

static hs_status prepare_conv(hs_layer *l, hs_error *err) {
    const hs_conv2d_shape *s = &l->conv;
    size_t per_out = (size_t)(s->in_channels / s->groups) * s->kernel_h * s->kernel_w;
    size_t weights = per_out * (size_t)s->out_channels;
    float *w = realloc(l->fused_weight, weights * sizeof(float));
    if (!w) return hs_fail(err, HS_ERR_NOMEM, "out of memory preparing %s", l->name);
    l->fused_weight = w;
    float *b = realloc(l->fused_bias, (size_t)s->out_channels * sizeof(float));
    if (!b) return hs_fail(err, HS_ERR_NOMEM, "out of memory preparing %s", l->name);
    l->fused_bias = b;
    memcpy(w, l->weight, weights * sizeof(float));
    for (int o = 0; o < s->out_channels; o++) b[o] = l->bias ? l->bias[o] : 0.0f;
    if (l->bn_name[0])
        hs_fold_batchnorm(w, b, s->out_channels, (int)per_out, l->bn_weight, l->bn_bias,
                          l->bn_mean, l->bn_var, l->bn_eps);
    return HS_OK;
}

hs_status hs_net_prepare(hs_net *net, hs_error *err) {
    if (net->prepared) return HS_OK;
    for (int i = 0; i < net->count; i++) {
        hs_layer *l = &net->layers[i];
        if (l->kind == HS_LAYER_CONV) {
            if (!l->weight) return hs_fail(err, HS_ERR_INTERNAL, "%s has no weights", l->name);
            hs_status st = prepare_conv(l, err);
            if (st) return st;
        }
    }
    net->prepared = 1;
    return HS_OK;
}

void hs_net_release(hs_net *net) {
    if (!net) return;
    hs_net_release_fast(net);
    for (int i = 0; i < net->count; i++) {
        hs_layer *l = &net->layers[i];
        free(l->weight);
        free(l->bias);
        free(l->bn_weight);
        free(l->bn_bias);
        free(l->bn_mean);
        free(l->bn_var);
        free(l->fused_weight);
        free(l->fused_bias);
    }
    free(net->layers);
    memset(net, 0, sizeof *net);
}
