/* The interpreter over a layer range with its tape (net_train.h). */
#include "net_train.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ops.h"

static int has_trainable_params(const hs_layer *l) { return !l->frozen && l->dweight; }

int hs_net_freeze_boundary(const hs_net *net, int first, int last) {
    for (int i = first; i < last; i++)
        if (has_trainable_params(&net->layers[i])) return i;
    return last;
}

void hs_net_release_train_plans(hs_net *net) {
    for (int i = 0; i < net->count; i++) hs_layer_train_plan_free(&net->layers[i]);
}

static hs_backend backend_of(const hs_net *net) {
    return (net->ctx ? net->ctx : hs_context_default())->backend;
}

void hs_net_zero_grad(hs_net *net) {
    if (net->grads) memset(net->grads, 0, (size_t)net->param_floats * sizeof(float));
}

void hs_tape_free(hs_tape *t) {
    int span = t->last - t->first;
    for (int k = 0; k <= span && t->acts; k++) {
        free(t->acts[k]);
        if (t->grads) free(t->grads[k]);
    }
    for (int k = 0; k < span && t->saved; k++) {
        free(t->saved[k]);
        if (t->masks) free(t->masks[k]);
    }
    free(t->shapes);
    free(t->acts);
    free(t->grads);
    free(t->pending);
    free(t->saved);
    free(t->masks);
    free(t->scratch);
    memset(t, 0, sizeof *t);
}

hs_status hs_tape_init(hs_tape *t, hs_net *net, int first, int last, int max_batch, int c,
                       int h, int w, int input_grad, hs_error *err) {
    memset(t, 0, sizeof *t);
    if (first < 0 || last > net->count || first >= last || max_batch < 1)
        return hs_fail(err, HS_ERR_ARGUMENT, "invalid layer range %d..%d or batch %d", first,
                       last, max_batch);
    t->net = net;
    t->first = first;
    t->last = last;
    t->max_batch = max_batch;
    t->input_grad = input_grad;
    size_t span = (size_t)(last - first);
    t->shapes = calloc(span + 1, sizeof *t->shapes);
    t->acts = calloc(span + 1, sizeof *t->acts);
    t->grads = calloc(span + 1, sizeof *t->grads);
    t->pending = calloc(span + 1, sizeof *t->pending);
    t->saved = calloc(span, sizeof *t->saved);
    t->masks = calloc(span, sizeof *t->masks);
    if (!t->shapes || !t->acts || !t->grads || !t->pending || !t->saved || !t->masks) goto oom;
    hs_status st = hs_net_range_shapes(net, first, last, (hs_act_shape){c, h, w}, t->shapes,
                                       err);
    if (st) {
        hs_tape_free(t);
        return st;
    }
    int64_t largest = 0;
    for (size_t k = 0; k < span; k++) {
        hs_layer *l = &net->layers[first + k];
        const hs_layer_ops *ops = hs_layer_ops_of(l->kind);
        int64_t floats = 0, bytes = 0;
        if (ops->tape_size)
            ops->tape_size(l, t->shapes[hs_range_slot(l->input, first)], t->shapes[k + 1],
                           max_batch, &floats, &bytes);
        if (floats && !(t->saved[k] = malloc((size_t)floats * sizeof(float)))) goto oom;
        if (bytes && !(t->masks[k] = malloc((size_t)bytes))) goto oom;
    }
    int boundary = input_grad ? 0 : hs_net_freeze_boundary(net, first, last) - first;
    for (size_t k = 0; k <= span; k++) {
        int64_t numel = hs_act_numel(t->shapes[k]);
        if (numel > largest) largest = numel;
        size_t floats = (size_t)max_batch * (size_t)numel;
        if (!(t->acts[k] = malloc(floats * sizeof(float)))) goto oom;
        /* Backward reaches activation k when its producer (layer first + k - 1) is at or
         * above the boundary. */
        if (((int)k > boundary || (k == 0 && input_grad)) &&
            !(t->grads[k] = malloc(floats * sizeof(float))))
            goto oom;
    }
    if (!(t->scratch = malloc((size_t)max_batch * (size_t)largest * sizeof(float)))) goto oom;
    return HS_OK;
oom:
    hs_tape_free(t);
    return hs_fail(err, HS_ERR_NOMEM,
                   "out of memory for training activations with a batch of %d; lower "
                   "--batch-size", max_batch);
}

hs_status hs_tape_forward(hs_tape *t, const float *input, int n, int training, hs_rng *rng,
                          hs_error *err) {
    hs_status st = hs_tape_forward_samples(t, input, n, training, rng, NULL, err);
    /* Without ids the positions repeat from step to step: a new key for the next one. */
    if (rng) hs_rng_next(rng);
    return st;
}

hs_status hs_tape_forward_samples(hs_tape *t, const float *input, int n, int training,
                                  hs_rng *rng, const int *samples, hs_error *err) {
    if (n < 1 || n > t->max_batch)
        return hs_fail(err, HS_ERR_ARGUMENT, "batch of %d for a tape of %d", n, t->max_batch);
    memcpy(t->acts[0], input, (size_t)n * hs_act_numel(t->shapes[0]) * sizeof(float));
    int span = t->last - t->first, stats_moved = 0;
    hs_backend backend = backend_of(t->net);
    for (int k = 0; k < span; k++) {
        hs_layer *l = &t->net->layers[t->first + k];
        stats_moved |= training && l->kind == HS_LAYER_BATCHNORM && l->bn_mode == HS_BN_TRAIN;
        int in = hs_range_slot(l->input, t->first);
        hs_forward_args a = {t->acts[in], t->shapes[in], t->acts[k + 1], t->shapes[k + 1], n,
                             training, t->saved[k], t->masks[k], rng, NULL, {0, 0, 0},
                             samples, t->first + k};
        if (hs_layer_ops_of(l->kind)->check_edge) {
            int f = hs_range_slot(l->from, t->first);
            a.other = t->acts[f];
            a.other_shape = t->shapes[f];
        }
        if (training && !rng && (l->kind == HS_LAYER_DROPOUT ||
                                 (l->kind == HS_LAYER_DROP_CONNECT && l->dropout_p > 0)))
            return hs_fail(err, HS_ERR_INTERNAL, "training forward without a random stream");
        hs_status st = hs_layer_pass_of(l->kind, backend).forward(l, &a, err);
        if (st) return st;
    }
    if (stats_moved) t->net->prepared = 0; /* the plan folds the running statistics */
    t->n = n;
    t->trained = training;
    return HS_OK;
}

/* grads[k] for an accumulation: zeroed the first time. */
static float *accumulate_target(hs_tape *t, int k) {
    if (!t->grads[k]) return NULL;
    if (!t->pending[k]) {
        memset(t->grads[k], 0, (size_t)t->n * hs_act_numel(t->shapes[k]) * sizeof(float));
        t->pending[k] = 1;
    }
    return t->grads[k];
}

/* Layers run in reverse; each writes its input's gradient, or adds it (through scratch) when
 * another reader of that activation already wrote one. A two-input layer accumulates the
 * second input's gradient itself. An activation no layer read has a zero gradient. */
hs_status hs_tape_backward(hs_tape *t, hs_error *err) {
    if (!t->trained)
        return hs_fail(err, HS_ERR_INTERNAL, "backward needs a training forward first");
    int span = t->last - t->first, n = t->n;
    hs_backend backend = backend_of(t->net);
    int boundary = t->input_grad ? 0 : hs_net_freeze_boundary(t->net, t->first, t->last) - t->first;
    memset(t->pending, 0, ((size_t)span + 1) * sizeof *t->pending);
    t->pending[span] = 1; /* the caller wrote d(loss)/d(output) */
    for (int k = span - 1; k >= 0 && k >= boundary; k--) {
        hs_layer *l = &t->net->layers[t->first + k];
        const hs_layer_ops *ops = hs_layer_ops_of(l->kind);
        const float *dy = accumulate_target(t, k + 1);
        if (!dy) return hs_fail(err, HS_ERR_INTERNAL, "no gradient reaches layer %d",
                                t->first + k);
        int in = hs_range_slot(l->input, t->first);
        hs_backward_args a = {t->acts[in], t->shapes[in], t->acts[k + 1], t->shapes[k + 1], n,
                              dy, NULL, !l->frozen, t->saved[k], t->masks[k], NULL,
                              {0, 0, 0}, NULL};
        if (ops->check_edge) {
            /* Before dx's target: when both inputs are one activation, dx then goes to
             * scratch and is added. */
            int f = hs_range_slot(l->from, t->first);
            a.other = t->acts[f];
            a.other_shape = t->shapes[f];
            a.dother = accumulate_target(t, f);
        }
        float *dx = t->grads[in];
        int add_into = dx && t->pending[in];
        a.dx = add_into ? t->scratch : dx;
        hs_status st = hs_layer_pass_of(l->kind, backend).backward(l, &a, err);
        if (st) return st;
        if (add_into) hs_add_inplace(dx, t->scratch, (int64_t)n * hs_act_numel(t->shapes[in]));
        if (dx) t->pending[in] = 1;
        if (t->grads_ready) t->grads_ready(t->grads_ready_ctx, t->first + k);
    }
    return HS_OK;
}

hs_status hs_net_run_layers(hs_net *net, int first, int last, const float *input, int n, int c,
                            int h, int w, float *out, hs_error *err) {
    if (first == last) {
        memcpy(out, input, (size_t)n * c * h * w * sizeof(float));
        return HS_OK;
    }
    hs_tape t;
    hs_status st = hs_tape_init(&t, net, first, last, n, c, h, w, 0, err);
    if (st) return st;
    st = hs_tape_forward(&t, input, n, 0, NULL, err);
    if (!st)
        memcpy(out, hs_tape_output(&t),
               (size_t)n * hs_act_numel(t.shapes[last - first]) * sizeof(float));
    hs_tape_free(&t);
    return st;
}
