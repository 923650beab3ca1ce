/* The interpreter over a layer range with its tape (net_train.h). */
#include "net_train.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "ops.h"
#include "ops_grad.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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
    for (int k = 0; k <= span && t->acts; k++)
        if (!(k > 0 && t->fused && t->fused[k - 1])) free(t->acts[k]); /* else acts[k + 1]'s */
    for (int b = 0; b < t->grad_buf_count; b++) free(t->grad_bufs[b]);
    for (int k = 0; k < span && t->saved; k++) {
        free(t->saved[k]);
        if (t->masks) free(t->masks[k]);
    }
    free(t->shapes);
    free(t->layouts);
    free(t->acts);
    free(t->grads);
    free(t->grad_bufs);
    free(t->pending);
    free(t->fused);
    free(t->saved);
    free(t->masks);
    free(t->scratch);
    memset(t, 0, sizeof *t);
}

int64_t hs_tape_act_floats(const hs_tape *t, int k, int n) {
    hs_act_shape s = t->shapes[k];
    return hs_layout_size(t->layouts[k], n, s.c, s.h, s.w);
}

/* Layouts of the activations (net_train.h): blocked where the producer and every reader of
 * an activation take it. NCHW-only readers and producers pin theirs; a kind that runs in one
 * layout for its inputs and output (HS_LAYOUT_RULE_SAME) pins all of them once one is pinned,
 * which is repeated until nothing changes (a few passes: pins only spread). */
static void assign_layouts(hs_tape *t, hs_backend backend, unsigned char *blocked /* zeroed */) {
    int span = t->last - t->first;
    for (int k = 0; k <= span; k++) t->layouts[k] = HS_LAYOUT_NCHW;
    hs_layout layout = backend == HS_BACKEND_CPU ? hs_grad_plans_layout() : HS_LAYOUT_NCHW;
    if (layout == HS_LAYOUT_NCHW) return;
    for (int k = 1; k < span; k++) blocked[k] = 1; /* not 0 and span: the range's edges */
    for (int k = 0; k < span; k++) {
        const hs_layer *l = &t->net->layers[t->first + k];
        hs_layout_rule rule = hs_fast_layout_rule(l);
        int in = hs_range_slot(l->input, t->first);
        if (rule == HS_LAYOUT_RULE_NCHW) {
            blocked[in] = 0;
            if (hs_layer_ops_of(l->kind)->check_edge) blocked[hs_range_slot(l->from, t->first)] = 0;
        }
        if (rule == HS_LAYOUT_RULE_NCHW || rule == HS_LAYOUT_RULE_EXIT) blocked[k + 1] = 0;
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (int k = 0; k < span; k++) {
            const hs_layer *l = &t->net->layers[t->first + k];
            if (hs_fast_layout_rule(l) != HS_LAYOUT_RULE_SAME) continue;
            int in = hs_range_slot(l->input, t->first);
            int f = hs_layer_ops_of(l->kind)->check_edge ? hs_range_slot(l->from, t->first) : in;
            if (blocked[in] && blocked[f] && blocked[k + 1]) continue;
            if (blocked[in] || blocked[f] || blocked[k + 1]) changed = 1;
            blocked[in] = blocked[f] = blocked[k + 1] = 0;
        }
    }
    for (int k = 0; k <= span; k++) t->layouts[k] = blocked[k] ? layout : HS_LAYOUT_NCHW;
}

/* Fused pairs (net_train.h): a BatchNorm at k, a ReLU / ReLU6 at k + 1 reading activation
 * k + 1, which nothing else reads, blocked. readers: work space, span + 1 ints. */
static void find_fused(hs_tape *t, int *readers) {
    int span = t->last - t->first;
    memset(readers, 0, ((size_t)span + 1) * sizeof *readers);
    for (int j = 0; j < span; j++) {
        const hs_layer *l = &t->net->layers[t->first + j];
        readers[hs_range_slot(l->input, t->first)]++;
        if (hs_layer_ops_of(l->kind)->check_edge) readers[hs_range_slot(l->from, t->first)]++;
    }
    for (int k = 0; k + 1 < span; k++) {
        const hs_layer *bn = &t->net->layers[t->first + k], *act = bn + 1;
        t->fused[k] = bn->kind == HS_LAYER_BATCHNORM &&
                      (act->kind == HS_LAYER_RELU || act->kind == HS_LAYER_RELU6) &&
                      hs_range_slot(act->input, t->first) == k + 1 && readers[k + 1] == 1 &&
                      hs_range_slot(bn->input, t->first) == k &&
                      t->layouts[k + 1] != HS_LAYOUT_NCHW && t->layouts[k] == t->layouts[k + 1] &&
                      !(k > 0 && t->fused[k - 1]);
    }
}

/* Gradient buffers (net_train.h). Activation k's gradient is live over the layers
 * [producer, last reader] (backward runs them from the top): written first by its last
 * reader's backward (the caller writes the output's before backward starts), read last by its
 * producer's, layer k - 1 or, for a fused pair's output, the BatchNorm k - 2 (the caller reads
 * the input's after it ends). A fused pair's middle activation has none. Lives are taken from the top down
 * and each gets the first buffer whose occupant's life ended above it. */
static int assign_grad_buffers(hs_tape *t, int boundary, int *top, int *buf_of,
                               int64_t *buf_floats) {
    int span = t->last - t->first, count = 0;
    for (int k = 0; k <= span; k++) top[k] = k - 1; /* no reader: only its producer */
    top[span] = span;
    for (int j = 0; j < span; j++) {
        const hs_layer *l = &t->net->layers[t->first + j];
        int in = hs_range_slot(l->input, t->first);
        if (top[in] < j) top[in] = j;
        if (hs_layer_ops_of(l->kind)->check_edge) {
            int f = hs_range_slot(l->from, t->first);
            if (top[f] < j) top[f] = j;
        }
    }
    /* buf_of[b + span + 1]: the bottom (k - 1) of buffer b's current occupant */
    int *occupant_end = buf_of + span + 1;
    for (int k = 0; k <= span; k++) buf_of[k] = -1;
    for (int start = span; start >= -1; start--) {
        for (int k = span; k >= 0; k--) {
            if (top[k] != start || !(k > boundary || (k == 0 && t->input_grad))) continue;
            if (k > 0 && t->fused[k - 1]) continue; /* a pair's middle: no gradient */
            const int bottom = k > 1 && t->fused[k - 2] ? k - 2 : k - 1;
            int b = 0;
            while (b < count && occupant_end[b] <= start) b++;
            if (b == count) buf_floats[count++] = 0;
            /* the output's gradient is the caller's: never reused, so a second backward of
             * the same tape reads it again */
            occupant_end[b] = k == span ? -2 : bottom;
            buf_of[k] = b;
            int64_t floats = hs_tape_act_floats(t, k, t->max_batch);
            if (floats > buf_floats[b]) buf_floats[b] = floats;
        }
    }
    return count;
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
    t->bf16 = net->bf16 && backend_of(net) == HS_BACKEND_CPU;
    size_t span = (size_t)(last - first);
    t->shapes = calloc(span + 1, sizeof *t->shapes);
    t->layouts = calloc(span + 1, sizeof *t->layouts);
    t->acts = calloc(span + 1, sizeof *t->acts);
    t->grads = calloc(span + 1, sizeof *t->grads);
    t->pending = calloc(span + 1, sizeof *t->pending);
    t->fused = calloc(span + 1, sizeof *t->fused);
    t->saved = calloc(span, sizeof *t->saved);
    t->masks = calloc(span, sizeof *t->masks);
    /* work space for the layout and buffer choices: top, buf_of + occupant_end, blocked */
    int *work = calloc(3 * (span + 2), sizeof *work);
    int64_t *buf_floats = calloc(span + 1, sizeof *buf_floats);
    unsigned char *blocked = calloc(span + 1, 1);
    if (!t->shapes || !t->layouts || !t->acts || !t->grads || !t->pending || !t->fused ||
        !t->saved || !t->masks || !work || !buf_floats || !blocked)
        goto oom;
    hs_status st = hs_net_range_shapes(net, first, last, (hs_act_shape){c, h, w}, t->shapes,
                                       err);
    if (st) {
        free(work);
        free(buf_floats);
        free(blocked);
        hs_tape_free(t);
        return st;
    }
    assign_layouts(t, backend_of(net), blocked);
    find_fused(t, work);
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
        int64_t floats = hs_tape_act_floats(t, (int)k, max_batch);
        if (floats > largest) largest = floats;
        if (k > 0 && t->fused[k - 1]) continue; /* a pair's middle: the pair's output's */
        if (!(t->acts[k] = malloc((size_t)floats * sizeof(float)))) goto oom;
    }
    for (size_t k = span; k-- > 1;)
        if (t->fused[k - 1]) t->acts[k] = t->acts[k + 1];
    /* Backward reaches activation k when its producer (layer first + k - 1) is at or above
     * the boundary. */
    int *buf_of = work + span + 2;
    t->grad_buf_count = assign_grad_buffers(t, boundary, work, buf_of, buf_floats);
    if (!(t->grad_bufs = calloc((size_t)t->grad_buf_count + 1, sizeof *t->grad_bufs))) {
        t->grad_buf_count = 0;
        goto oom;
    }
    for (int b = 0; b < t->grad_buf_count; b++)
        if (!(t->grad_bufs[b] = malloc((size_t)buf_floats[b] * sizeof(float)))) goto oom;
    for (size_t k = 0; k <= span; k++)
        t->grads[k] = buf_of[k] >= 0 ? t->grad_bufs[buf_of[k]] : NULL;
    if (!(t->scratch = malloc((size_t)largest * sizeof(float)))) goto oom;
    free(work);
    free(buf_floats);
    free(blocked);
    return HS_OK;
oom:
    free(work);
    free(buf_floats);
    free(blocked);
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
                             samples, t->first + k, t->layouts[in],
                             t->layouts[k + 1], t->bf16};
        if (hs_layer_ops_of(l->kind)->check_edge) {
            int f = hs_range_slot(l->from, t->first);
            a.other = t->acts[f];
            a.other_shape = t->shapes[f];
        }
        if (training && !rng && (l->kind == HS_LAYER_DROPOUT ||
                                 (l->kind == HS_LAYER_DROP_CONNECT && l->dropout_p > 0)))
            return hs_fail(err, HS_ERR_INTERNAL, "training forward without a random stream");
        double t0 = t->seconds ? now() : 0;
        hs_status st;
        if (t->fused[k]) { /* the BatchNorm writes its activation's output */
            a.y = t->acts[k + 2];
            a.out = t->shapes[k + 2];
            a.out_layout = t->layouts[k + 2];
            st = hs_fast_bn_act_forward(l, l + 1, &a, err);
        } else {
            st = hs_layer_pass_of(l->kind, backend).forward(l, &a, err);
        }
        if (st) return st;
        if (t->seconds) t->seconds[k] += now() - t0;
        k += t->fused[k]; /* the pair's activation layer ran with it */
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
        memset(t->grads[k], 0, (size_t)hs_tape_act_floats(t, k, t->n) * sizeof(float));
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
        if (k > 0 && t->fused[k - 1]) continue; /* runs with its BatchNorm, below */
        hs_layer *l = &t->net->layers[t->first + k];
        const hs_layer_ops *ops = hs_layer_ops_of(l->kind);
        const int out = k + 1 + t->fused[k]; /* the pair's output for a fused BatchNorm */
        const float *dy = accumulate_target(t, out);
        if (!dy) return hs_fail(err, HS_ERR_INTERNAL, "no gradient reaches layer %d",
                                t->first + k);
        int in = hs_range_slot(l->input, t->first);
        hs_backward_args a = {t->acts[in], t->shapes[in], t->acts[out], t->shapes[out], n,
                              dy, NULL, !l->frozen, t->saved[k], t->masks[k], NULL,
                              {0, 0, 0}, NULL, t->layouts[in], t->layouts[out], t->bf16};
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
        double t0 = t->seconds ? now() : 0;
        hs_status st = t->fused[k] ? hs_fast_bn_act_backward(l, l + 1, &a, err)
                                   : hs_layer_pass_of(l->kind, backend).backward(l, &a, err);
        if (st) return st;
        if (add_into) hs_add_inplace(dx, t->scratch, hs_tape_act_floats(t, in, n));
        if (t->seconds) t->seconds[span + k] += now() - t0;
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
