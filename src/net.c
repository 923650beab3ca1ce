/* Building a network, its parameter arenas and their PyTorch names. Running it is in
 * net_run.c (the inference plan) and net_train.c (the interpreter), loading and saving
 * weights in net_weights.c. */
#include "net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "layers/layer.h"
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
    layer->input = net->count - 2; /* the layer before (-1: the network's input) */
    layer->block = net->block_count - 1;
    snprintf(layer->name, sizeof layer->name, "%s", name ? name : "");
    net->prepared = 0;
    return layer;
}

hs_layer *hs_net_add_conv(hs_net *net, const char *name, int in_c, int out_c, int kernel,
                          int stride, int pad, int groups, int has_bias, int same_padding) {
    hs_layer *layer = hs_net_add_layer(net, HS_LAYER_CONV, name);
    if (!layer) return NULL;
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
    return layer;
}

hs_layer *hs_net_add_batchnorm(hs_net *net, const char *name, int channels, float eps,
                               float momentum) {
    hs_layer *layer = hs_net_add_layer(net, HS_LAYER_BATCHNORM, name);
    if (!layer) return NULL;
    layer->channels = channels;
    layer->bn_eps = eps;
    layer->bn_momentum = momentum;
    return layer;
}

hs_layer *hs_net_add_linear(hs_net *net, const char *name, int in_features, int out_features) {
    hs_layer *layer = hs_net_add_layer(net, HS_LAYER_LINEAR, name);
    if (!layer) return NULL;
    layer->in_features = in_features;
    layer->out_features = out_features;
    return layer;
}

hs_layer *hs_net_add_residual(hs_net *net, int from) {
    hs_layer *layer = hs_net_add_layer(net, HS_LAYER_ADD, "");
    if (layer) layer->from = from;
    return layer;
}

/* ---- Parameter listing ------------------------------------------------------------------ */

typedef struct list_sink {
    hs_param_sink base;
    hs_param_ref *refs;
    int count, capacity;
    const hs_layer *layer;
    int index;
} list_sink;

static int list_add(hs_param_sink *base, const char *suffix, float **data, float **grad,
                    int ndim, const int64_t *shape, int buffer) {
    list_sink *list = (list_sink *)base;
    if (list->count == list->capacity) {
        int capacity = list->capacity ? list->capacity * 2 : 128;
        hs_param_ref *grown = realloc(list->refs, (size_t)capacity * sizeof *grown);
        if (!grown) return 0;
        list->refs = grown;
        list->capacity = capacity;
    }
    hs_param_ref *ref = &list->refs[list->count++];
    memset(ref, 0, sizeof *ref);
    snprintf(ref->key, sizeof ref->key, "%s.%s", list->layer->name, suffix);
    snprintf(ref->timm_key, sizeof ref->timm_key, "%s.%s",
             list->layer->timm_name[0] ? list->layer->timm_name : list->layer->name, suffix);
    ref->data = data;
    ref->grad = buffer ? NULL : grad;
    ref->ndim = ndim;
    for (int i = 0; i < ndim && i < 4; i++) ref->shape[i] = shape[i];
    ref->layer = list->index;
    ref->buffer = buffer;
    return 1;
}

hs_status hs_net_params(hs_net *net, hs_param_ref **refs, int *count, hs_error *err) {
    list_sink list = {{list_add}, NULL, 0, 0, NULL, 0};
    for (int i = 0; i < net->count; i++) {
        hs_layer *l = &net->layers[i];
        const hs_layer_ops *ops = hs_layer_ops_of(l->kind);
        list.layer = l;
        list.index = i;
        if (ops->params && !ops->params(l, &list.base)) {
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

/* ---- Arenas ------------------------------------------------------------------------------- */

static float *arena_alloc(int64_t floats) {
    size_t bytes = ((size_t)(floats > 0 ? floats : 1) * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

/* Lays the arenas out for the current shapes: trainable tensors packed in state-dict order
 * into params (gradients at the same offsets in grads), buffers into buffers. A tensor that
 * already had values of the same size keeps them (a replaced head changes only its own). */
static hs_status layout_arenas(hs_net *net, hs_error *err) {
    hs_param_ref *refs = NULL;
    int count = 0;
    hs_status st = hs_net_params(net, &refs, &count, err);
    if (st) return st;
    int64_t params = 0, buffers = 0;
    for (int i = 0; i < count; i++) {
        if (refs[i].buffer) buffers += hs_param_numel(&refs[i]);
        else params += hs_param_numel(&refs[i]);
    }
    float *p = arena_alloc(params), *g = arena_alloc(params), *b = arena_alloc(buffers);
    if (!p || !g || !b) {
        free(p), free(g), free(b), free(refs);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory for %lld parameters",
                       (long long)(params + buffers));
    }
    /* The old views stay valid until the old arenas are freed: copy what still fits. */
    int64_t po = 0, bo = 0;
    for (int i = 0; i < count; i++) {
        int64_t n = hs_param_numel(&refs[i]);
        float *view = refs[i].buffer ? b + bo : p + po;
        float *old = *refs[i].data;
        /* The old tensor's size: the distance to the next view in its arena (views are
         * packed in listing order, and every view of an old layout is set). */
        if (old) {
            int64_t size;
            const float *base = refs[i].buffer ? net->buffers : net->params;
            int64_t total = refs[i].buffer ? net->buffer_floats : net->param_floats;
            int64_t end = total;
            for (int j = i + 1; j < count; j++)
                if (refs[j].buffer == refs[i].buffer && *refs[j].data) {
                    end = *refs[j].data - base;
                    break;
                }
            size = end - (old - base);
            if (size == n) memcpy(view, old, (size_t)n * sizeof(float));
        }
        *refs[i].data = view;
        if (refs[i].grad) *refs[i].grad = g + po;
        if (refs[i].buffer) bo += n;
        else po += n;
    }
    free(net->params);
    free(net->grads);
    free(net->buffers);
    net->params = p;
    net->grads = g;
    net->buffers = b;
    net->param_floats = params;
    net->buffer_floats = buffers;
    free(refs);
    net->prepared = 0;
    return HS_OK;
}

hs_status hs_net_init_params(hs_net *net, int first, int last, uint64_t seed, hs_error *err) {
    hs_status st = layout_arenas(net, err);
    if (st) return st;
    hs_rng rng;
    hs_rng_seed(&rng, seed);
    for (int i = first; i < last; i++) {
        hs_layer *l = &net->layers[i];
        const hs_layer_ops *ops = hs_layer_ops_of(l->kind);
        if (ops->init) ops->init(l, &rng);
    }
    net->prepared = 0;
    return HS_OK;
}

void hs_net_set_bn_mode(hs_net *net, int first, int last, hs_bn_mode mode) {
    for (int i = first; i < last && i < net->count; i++)
        if (net->layers[i].kind == HS_LAYER_BATCHNORM) net->layers[i].bn_mode = mode;
}

void hs_net_freeze_below(hs_net *net, int boundary) {
    for (int i = 0; i < net->count; i++) net->layers[i].frozen = i < boundary;
}

void hs_net_release(hs_net *net) {
    if (!net) return;
    hs_net_release_fast(net);
    hs_net_release_train_plans(net);
    for (int i = 0; i < net->count; i++) {
        free(net->layers[i].fused_weight);
        free(net->layers[i].fused_bias);
    }
    free(net->layers);
    free(net->params);
    free(net->grads);
    free(net->buffers);
    memset(net, 0, sizeof *net);
}
