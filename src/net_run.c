/* The inference plan: shape inference and the fast forward pass over a layer range.
 *
 * A plan is built from the model for a range: each convolution becomes one step with the
 * BatchNorm after it folded into its weights and the ReLU / ReLU6 after that fused into the
 * oneDNN kernel (unless a residual edge needs one of the intermediate outputs); dropout and
 * drop connect are the identity and vanish; every residual edge gets a saved buffer, reused
 * by edges whose lifetimes do not overlap. A residual add right after a convolution (Lite0's
 * and MobileNetV2's projections, ResNet's last convolution of a block) is fused into it: the
 * kernel accumulates into the skip input's saved buffer (oneDNN's sum post-op). Folded weights and oneDNN plans are cached in the
 * convolution layers (remade when the input shape, the options or the weights change:
 * whoever writes weights sets net->prepared = 0).
 *
 * Between convolutions activations stay in the layout the convolution kernels read and write,
 * so no per-layer reorders are needed. Two policies, chosen per run:
 * - float32: oneDNN's blocked layout, nChw16c where oneDNN runs AVX-512, nChw8c on AVX2 / AVX /
 *   SSE4.1 (hs_layout_blocked, from the ISA oneDNN actually uses; in the other block size
 *   oneDNN has no jit kernel and every convolution would run gemm between two reorders).
 * - bf16: every plan is made with format `any` (HS_LAYOUT_ANY), so oneDNN picks its best kernel
 *   (brgconv, AMX where the CPU has it: fixed blocked formats pin it to older kernels); the
 *   layout it chose for a layer's destination is where the next layer reads, and a reorder
 *   runs only where the next plan chose another. Activations stay bf16 from the first
 *   convolution on; the network's input is converted once (float32 NCHW -> bf16) and the
 *   output is float32 NCHW.
 * ReLU, ReLU6, max pooling and residual adds work on the blocked layouts directly (zero-padded
 * channels stay zero), and so do sigmoid, SiLU, hard swish, hard sigmoid (which re-zero the
 * padding), global average pooling and the channel scale of squeeze-and-excitation; NHWC and
 * bf16 max pooling, global pooling and adds go through oneDNN (act_dnnl.c). Any other layer on
 * bf16 activations gets them converted to float32 in the same layout (one reorder). Every
 * other layer runs its own forward (layers/) in NCHW, and the output is NCHW: the activation
 * is converted when one needs it. If oneDNN cannot make a plan the pass continues in NCHW
 * float32 (im2col + sgemm fallback); bf16 is asked for only where oneDNN has bf16 kernels
 * (hs_dnnl_bf16_support), so below AVX-512 a bf16 request runs float32. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "layers/activation.h"
#include "layers/channel_kernels.h"
#include "layers/layer.h"
#include "net.h"
#include "ops.h"

/* Whether float32 convolutions also take the layouts oneDNN chooses (else the fixed blocked
 * layout). Measured on the nets both ways (bench/README.md). */
#define FLOAT32_CHOOSES 0

/* Whether a bf16 run of layers [first, last) plans with oneDNN's layouts. With AMX always:
 * fixed formats pin oneDNN to its pre-AMX kernels there. Without AMX, a range with depthwise
 * convolutions keeps the fixed blocked layout (jit_dw / jit_1x1 bf16 kernels rather than
 * brdgmm_dw / brgconv_1x1 in NHWC: 17-20 % less CPU time, measured both ways in
 * bench/README.md). */
static int bf16_chooses(const hs_net *net, int first, int last) {
    if (hs_dnnl_amx()) return 1;
    for (int i = first; i < last; i++) {
        const hs_layer *l = &net->layers[i];
        if (l->kind == HS_LAYER_CONV && l->conv.groups > 1 &&
            l->conv.groups == l->conv.in_channels)
            return 0;
    }
    return 1;
}

static hs_status layer_shape(const hs_layer *l, hs_act_shape in, hs_act_shape *out,
                             hs_error *err) {
    return hs_layer_ops_of(l->kind)->shape(l, in, out, err);
}

hs_status hs_net_range_shapes(const hs_net *net, int first, int last, hs_act_shape in,
                              hs_act_shape *shapes, hs_error *err) {
    shapes[0] = in;
    for (int i = first; i < last; i++) {
        const hs_layer *l = &net->layers[i];
        const hs_layer_ops *ops = hs_layer_ops_of(l->kind);
        int two = ops->check_edge != NULL;
        if (l->input < first - 1 || l->input >= i || (two && (l->from < first - 1 ||
                                                              l->from >= i)))
            return hs_fail(err, HS_ERR_ARGUMENT,
                           "layer %d (%s) reads the output of layer %d, outside the range "
                           "%d..%d", i, l->name, l->input < first - 1 || l->input >= i
                           ? l->input : l->from, first, last - 1);
        hs_act_shape x = shapes[hs_range_slot(l->input, first)];
        hs_status st;
        if (two && (st = ops->check_edge(l, x, shapes[hs_range_slot(l->from, first)], err)))
            return st;
        if ((st = layer_shape(l, x, &shapes[i - first + 1], err))) return st;
    }
    return HS_OK;
}

hs_status hs_net_shape(const hs_net *net, int first, int last, int c, int h, int w, int *out_c,
                       int *out_h, int *out_w, hs_error *err) {
    hs_act_shape *shapes = malloc(((size_t)(last > first ? last - first : 0) + 1) *
                                  sizeof *shapes);
    if (!shapes) return hs_fail(err, HS_ERR_NOMEM, "out of memory for the network's shapes");
    hs_status st = hs_net_range_shapes(net, first, last, (hs_act_shape){c, h, w}, shapes, err);
    if (!st) {
        hs_act_shape s = shapes[last > first ? last - first : 0];
        *out_c = s.c;
        *out_h = s.h;
        *out_w = s.w;
    }
    free(shapes);
    return st;
}

/* ---- building the plan --------------------------------------------------------------- */

typedef struct plan_step {
    int layer, last;   /* layers [layer, last] run as this step */
    int bn;            /* conv: the folded BatchNorm layer, or -1 */
    hs_post_op post;   /* conv: the fused activation */
    int load_slot;     /* the step's input is not the previous output: it is in this slot */
    int save_slot;     /* the step's output is kept in this slot, or -1 */
    int edge_slot;     /* two-input kinds: the slot holding the second input */
    int sum_slot;      /* conv: a residual add fused in (layer `last` is the add): the slot
                          holding its skip input, which the kernel accumulates into; or -1 */
} plan_step;

typedef struct run_plan {
    plan_step *steps;
    int count;
    int slots;
    int input_slot; /* the range's input is kept in this slot, or -1 */
} run_plan;

static int is_identity_at_inference(hs_layer_kind kind) {
    return kind == HS_LAYER_DROPOUT || kind == HS_LAYER_DROP_CONNECT;
}

static int is_two_input(const hs_layer *l) { return hs_layer_ops_of(l->kind)->check_edge != NULL; }

/* The plan keeps one current activation; an output read by any layer but the next one (an
 * edge) is kept in a slot until its last reader has run. Slots are given in the order the
 * outputs are made, each to the first slot whose previous output has been read for the last
 * time. Range checks are hs_net_range_shapes's (run first). */
static hs_status build_plan(const hs_net *net, int first, int last, run_plan *p, hs_error *err) {
    int span = last - first;
    memset(p, 0, sizeof *p);
    p->input_slot = -1;
    int *slot_of = malloc(((size_t)span + 1) * sizeof *slot_of);     /* slot of output k */
    int *last_read = malloc(((size_t)span + 1) * sizeof *last_read); /* by an edge, or -1 */
    int *busy_until = malloc(((size_t)span + 1) * sizeof *busy_until);
    p->steps = malloc(((size_t)span + 1) * sizeof *p->steps);
    if (!slot_of || !last_read || !busy_until || !p->steps) {
        free(slot_of), free(last_read), free(busy_until), free(p->steps);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory planning the network");
    }
    for (int k = 0; k <= span; k++) slot_of[k] = last_read[k] = -1;
    for (int i = first; i < last; i++) {
        const hs_layer *l = &net->layers[i];
        if (l->input != i - 1) last_read[hs_range_slot(l->input, first)] = i;
        if (is_two_input(l)) last_read[hs_range_slot(l->from, first)] = i;
    }
    for (int k = 0; k <= span; k++) {
        if (last_read[k] < 0) continue;
        int producer = first + k - 1, slot = 0;
        while (slot < p->slots && busy_until[slot] >= producer) slot++;
        if (slot == p->slots) p->slots++;
        slot_of[k] = slot;
        busy_until[slot] = last_read[k];
    }
    p->input_slot = slot_of[0];
    for (int i = first; i < last; i++) {
        const hs_layer *l = &net->layers[i];
        plan_step st = {i, i, -1, HS_POST_NONE, -1, -1, -1, -1};
        if (l->input != i - 1) st.load_slot = slot_of[hs_range_slot(l->input, first)];
        if (is_identity_at_inference(l->kind)) {
            /* No work; an edge from it reads the same values as its input. */
            if (slot_of[i - first + 1] < 0 && st.load_slot < 0) continue;
            st.save_slot = slot_of[i - first + 1];
            p->steps[p->count++] = st;
            continue;
        }
        if (l->kind == HS_LAYER_CONV) {
            int j = i;
            const hs_layer *next = j + 1 < last ? &net->layers[j + 1] : NULL;
            if (next && next->kind == HS_LAYER_BATCHNORM && next->input == j &&
                slot_of[j - first + 1] < 0 && next->channels == l->conv.out_channels) {
                st.bn = ++j;
                next = j + 1 < last ? &net->layers[j + 1] : NULL;
            }
            if (next && next->input == j && slot_of[j - first + 1] < 0 &&
                (next->kind == HS_LAYER_RELU || next->kind == HS_LAYER_RELU6)) {
                st.post = next->kind == HS_LAYER_RELU ? HS_POST_RELU : HS_POST_RELU6;
                j++;
            }
            /* A residual add right after it (dropout and drop connect between are the
             * identity here), with the add's other input kept in a slot that the add reads
             * last: the convolution adds its output into that slot (oneDNN's sum post-op),
             * which saves a pass over the activation. Not after a fused activation (the add
             * comes first in the model then). run_conv adds separately where oneDNN cannot. */
            int k = j;
            while (st.post == HS_POST_NONE && k + 1 < last && slot_of[k - first + 1] < 0 &&
                   is_identity_at_inference(net->layers[k + 1].kind) &&
                   net->layers[k + 1].input == k)
                k++;
            const hs_layer *add = k + 1 < last ? &net->layers[k + 1] : NULL;
            if (st.post == HS_POST_NONE && add && add->kind == HS_LAYER_ADD &&
                add->input == k && add->from != k && slot_of[k - first + 1] < 0) {
                int skip = hs_range_slot(add->from, first);
                if (slot_of[skip] >= 0 && last_read[skip] == k + 1) {
                    st.sum_slot = slot_of[skip];
                    j = k + 1;
                }
            }
            st.last = j;
        }
        if (l->kind == HS_LAYER_LINEAR && i + 1 < last && net->layers[i + 1].input == i &&
            net->layers[i + 1].kind == HS_LAYER_RELU && slot_of[i - first + 1] < 0) {
            st.post = HS_POST_RELU; /* in the bf16 kernel, or in place after float32's */
            st.last = i + 1;
        }
        if (is_two_input(l)) st.edge_slot = slot_of[hs_range_slot(l->from, first)];
        st.save_slot = slot_of[st.last - first + 1];
        p->steps[p->count++] = st;
        i = st.last;
    }
    free(slot_of);
    free(last_read);
    free(busy_until);
    return HS_OK;
}

/* ---- running it ------------------------------------------------------------------------ */

void hs_net_release_fast(hs_net *net) {
    for (int i = 0; i < net->count; i++) {
        hs_conv_plan_free(net->layers[i].plan);
        net->layers[i].plan = NULL;
    }
    free(net->run_buffer);
    net->run_buffer = NULL;
    net->run_buffer_bytes = 0;
}

hs_status hs_net_prepare(hs_net *net, hs_error *err) {
    if (net->prepared) return HS_OK;
    for (int i = 0; i < net->count; i++) { /* folded weights are remade on demand */
        hs_layer *l = &net->layers[i];
        if (l->kind == HS_LAYER_CONV && !l->weight)
            return hs_fail(err, HS_ERR_INTERNAL, "%s has no weights", l->name);
        free(l->fused_weight);
        free(l->fused_bias);
        l->fused_weight = l->fused_bias = NULL;
    }
    hs_net_release_fast(net); /* plans hold copies of old weights */
    net->prepared = 1;
    return HS_OK;
}

/* The conv's weights with BatchNorm layer bn (or none: -1) folded in. */
static hs_status fold_conv(hs_net *net, hs_layer *l, int bn, hs_error *err) {
    if (l->fused_weight && l->fused_bn == bn + 1) return HS_OK;
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
    if (bn >= 0) {
        const hs_layer *n = &net->layers[bn];
        hs_fold_batchnorm(w, b, s->out_channels, (int)per_out, n->weight, n->bias,
                          n->running_mean, n->running_var, n->bn_eps);
    }
    l->fused_bn = bn + 1;
    hs_conv_plan_free(l->plan); /* made from other weights */
    l->plan = NULL;
    return HS_OK;
}

/* The layer's plan for these options, made or remade as needed; NULL when impossible. */
static hs_conv_plan *layer_plan(hs_net *net, hs_layer *l, const hs_conv2d_shape *s, int n,
                                int h, int w, const hs_conv_options *opt) {
    if (l->plan && hs_conv_plan_matches(l->plan, s, n, h, w, opt)) return l->plan;
    hs_conv_plan_free(l->plan);
    l->plan = hs_conv_plan_create_in(net->ctx, s, n, h, w, l->fused_weight, l->fused_bias, opt);
    return l->plan;
}

typedef struct run_state {
    float *buf[2];
    int current;            /* buf[current] is the next output */
    const float *x;         /* current activation (bf16: the array holds uint16_t) */
    hs_layout layout;       /* its layout */
    int bf16;               /* whether it is bfloat16 */
    hs_layout blocked;      /* the blocked layout of this CPU's kernels */
    int choose;             /* convolutions in the layouts oneDNN chooses (HS_LAYOUT_ANY) */
    int bf16_convs;         /* convolutions in bf16 with bf16 activations */
    int n;
    float **slot;           /* saved edge outputs */
    hs_layout *slot_layout;
    int *slot_bf16;
    hs_context *ctx;
    hs_act_shape edge_shape; /* the running step's second input */
} run_state;

/* The free buffer now holds the current activation. */
static void advance(run_state *r) {
    r->x = r->buf[r->current];
    r->current ^= 1;
}

/* Moves the current activation into `layout` and type (through the free buffer). */
static hs_status convert_to(run_state *r, hs_act_shape s, hs_layout layout, int bf16,
                            hs_error *err) {
    if (r->layout == layout && r->bf16 == bf16) return HS_OK;
    float *y = r->buf[r->current];
    if (hs_act_convert_in(r->ctx, r->x, r->layout, r->bf16, y, layout, bf16, r->n, s.c, s.h,
                          s.w))
        return hs_fail(err, HS_ERR_INTERNAL, "oneDNN failed to convert an activation");
    advance(r);
    r->layout = layout;
    r->bf16 = bf16;
    return HS_OK;
}

/* The same keeping the type (float32 kernels call it on float32 activations). */
static hs_status convert(run_state *r, hs_act_shape s, hs_layout layout, hs_error *err) {
    return convert_to(r, s, layout, r->bf16, err);
}

/* Converts a kept output to a layout and type in place (through the free buffer, which
 * holds nothing). */
static hs_status slot_to(run_state *r, int slot, hs_act_shape s, hs_layout layout, int bf16,
                         hs_error *err) {
    if (r->slot_layout[slot] == layout && r->slot_bf16[slot] == bf16) return HS_OK;
    float *tmp = r->buf[r->current];
    if (tmp == r->x) return hs_fail(err, HS_ERR_INTERNAL, "no free buffer to convert an edge");
    if (hs_act_convert_in(r->ctx, r->slot[slot], r->slot_layout[slot], r->slot_bf16[slot], tmp,
                          layout, bf16, r->n, s.c, s.h, s.w))
        return hs_fail(err, HS_ERR_INTERNAL, "oneDNN failed to convert an activation");
    memcpy(r->slot[slot], tmp, hs_act_bytes(layout, bf16, r->n, s.c, s.h, s.w));
    r->slot_layout[slot] = layout;
    r->slot_bf16[slot] = bf16;
    return HS_OK;
}

static hs_status save_output(run_state *r, int slot, hs_act_shape s) {
    memcpy(r->slot[slot], r->x, hs_act_bytes(r->layout, r->bf16, r->n, s.c, s.h, s.w));
    r->slot_layout[slot] = r->layout;
    r->slot_bf16[slot] = r->bf16;
    return HS_OK;
}

/* The residual add: the kept output in slot `edge` is added to the current activation, in
 * the edge's layout and type, in place on a buffer of ours. */
static hs_status add_edge(run_state *r, int edge, hs_act_shape s, hs_error *err) {
    hs_status st = convert_to(r, s, r->slot_layout[edge], r->slot_bf16[edge], err);
    if (st) return st;
    if (r->x != r->buf[0] && r->x != r->buf[1]) { /* the caller's input or a slot: not ours */
        memcpy(r->buf[r->current], r->x, hs_act_bytes(r->layout, r->bf16, r->n, s.c, s.h, s.w));
        advance(r);
    }
    if (r->bf16) {
        if (hs_act_add(r->ctx, (float *)r->x, r->slot[edge], r->layout, 1, r->n, s.c, s.h, s.w))
            return hs_fail(err, HS_ERR_INTERNAL, "oneDNN failed to add a residual");
    } else {
        hs_add_inplace((float *)r->x, r->slot[edge], hs_layout_size(r->layout, r->n, s.c, s.h,
                                                                    s.w));
    }
    return HS_OK;
}

/* The layer's plan in the layouts of this run's policy, for opt's post-op and types (opt's
 * layouts are set to the ones asked for); NULL when oneDNN cannot make one. */
static hs_conv_plan *policy_plan(hs_net *net, hs_layer *l, const hs_conv2d_shape *s,
                                 const run_state *r, hs_act_shape in, hs_conv_options *opt) {
    opt->src_layout = opt->dst_layout = HS_LAYOUT_ANY;
    if (r->choose) return layer_plan(net, l, s, r->n, in.h, in.w, opt);
    /* Fixed blocked layouts. oneDNN reads NCHW directly only for few input channels (a
     * network's first layer). */
    hs_conv_plan *plan = NULL;
    opt->dst_layout = r->blocked;
    if (r->layout == HS_LAYOUT_NCHW && s->in_channels <= 4) {
        opt->src_layout = HS_LAYOUT_NCHW;
        plan = layer_plan(net, l, s, r->n, in.h, in.w, opt);
    }
    if (!plan) {
        opt->src_layout = r->blocked;
        plan = layer_plan(net, l, s, r->n, in.h, in.w, opt);
    }
    return plan;
}

/* Whether the layer's cached plan is an unfused one for this shape and policy: the fused plan
 * was refused before (asking again every batch would remake both). */
static int has_unfused_plan(const hs_layer *l, const hs_conv2d_shape *s, const run_state *r,
                            hs_act_shape in, hs_conv_options opt) {
    opt.post = HS_POST_NONE;
    if (r->choose) {
        opt.src_layout = opt.dst_layout = HS_LAYOUT_ANY;
        return hs_conv_plan_matches(l->plan, s, r->n, in.h, in.w, &opt);
    }
    opt.dst_layout = r->blocked;
    opt.src_layout = r->blocked;
    if (hs_conv_plan_matches(l->plan, s, r->n, in.h, in.w, &opt)) return 1;
    opt.src_layout = HS_LAYOUT_NCHW;
    return hs_conv_plan_matches(l->plan, s, r->n, in.h, in.w, &opt);
}

/* Runs one convolution step from r->x; out is its output's shape. With a fused residual add
 * (step->sum_slot) the kernel accumulates into the skip input's slot, whose memory then
 * becomes the output buffer (pointer swap, no copy); otherwise the output goes to
 * buf[current] and an unfused add follows. */
static hs_status run_conv(hs_net *net, const plan_step *step, run_state *r, hs_act_shape in,
                          hs_act_shape out, hs_error *err) {
    hs_layer *l = &net->layers[step->layer];
    hs_status st = fold_conv(net, l, step->bn, err);
    if (st) return st;
    hs_conv2d_shape s = hs_conv_for_input(l, in.h, in.w);
    int bf16 = r->bf16_convs;
    hs_conv_options opt = {HS_LAYOUT_ANY, HS_LAYOUT_ANY, step->post, bf16, bf16};
    hs_conv_plan *plan = NULL;
    /* in place would read what it writes: fuse only where the source is elsewhere */
    int fuse = step->sum_slot >= 0 && r->x != r->slot[step->sum_slot];
    if (fuse && !has_unfused_plan(l, &s, r, in, opt)) {
        opt.post = HS_POST_ADD;
        plan = policy_plan(net, l, &s, r, in, &opt);
        opt.post = step->post;
    }
    fuse = fuse && plan;
    if (!plan) plan = policy_plan(net, l, &s, r, in, &opt);
    if (!plan) { /* oneDNN cannot: NCHW, float32, im2col fallback */
        opt = (hs_conv_options){HS_LAYOUT_NCHW, HS_LAYOUT_NCHW, step->post, 0, 0};
        plan = layer_plan(net, l, &s, r->n, in.h, in.w, &opt);
    }
    /* The source in the layout and type the plan reads: a reorder only where the previous
     * layer wrote another (or at the network's float32 NCHW input). */
    if ((st = convert_to(r, in, plan ? hs_conv_plan_src_layout(plan) : HS_LAYOUT_NCHW,
                         opt.bf16_act, err)))
        return st;
    if (plan) opt.dst_layout = hs_conv_plan_dst_layout(plan);
    float *y = r->buf[r->current];
    if (fuse) { /* the skip input, in the layout and type the plan writes, is the destination */
        if ((st = slot_to(r, step->sum_slot, out, opt.dst_layout, opt.bf16_act, err))) return st;
        y = r->slot[step->sum_slot];
    }
    if (plan) {
        if (hs_conv_plan_run(plan, r->x, y))
            return hs_fail(err, HS_ERR_INTERNAL, "%s: oneDNN convolution failed", l->name);
    } else { /* out of memory for a plan: the direct path still works */
        hs_conv2d_forward_im2col(r->x, r->n, in.h, in.w, l->fused_weight, l->fused_bias, &s,
                                 y);
        opt.dst_layout = HS_LAYOUT_NCHW;
        hs_act_shape o;
        layer_shape(l, in, &o, NULL);
        int64_t out_count = (int64_t)r->n * hs_act_numel(o);
        if (step->post == HS_POST_RELU) hs_relu_forward(y, out_count, y);
        if (step->post == HS_POST_RELU6) hs_relu6_forward(y, out_count, y);
    }
    r->layout = opt.dst_layout;
    r->bf16 = opt.bf16_act;
    if (fuse) {
        /* The slot's memory holds the output and the slot is dead (the add was its last
         * reader): it becomes the buffer of the current activation, and the buffer that held
         * this step's source (read, so dead too) becomes the slot's. */
        float *dead = r->buf[r->current ^ 1];
        r->buf[r->current ^ 1] = r->slot[step->sum_slot];
        r->slot[step->sum_slot] = dead;
        r->x = r->buf[r->current ^ 1];
        return HS_OK;
    }
    advance(r);
    if (step->sum_slot >= 0) return add_edge(r, step->sum_slot, out, err);
    return HS_OK;
}

/* Zeroes the padded lanes of the last channel block of a blocked activation (nothing to do
 * in NCHW, or when the channels fill their blocks). oneDNN expects a blocked tensor's padding
 * to be zero (its primitives may read it); no step of today's nets reads the padding of a
 * gate, so this keeps the invariant rather than fixing an output a test could see. */
static void zero_padded_channels(float *y, hs_layout layout, int n, int c, int hw) {
    int block = hs_layout_block(layout);
    if (layout == HS_LAYOUT_NCHW || layout == HS_LAYOUT_NHWC || c % block == 0) return;
    int64_t blocks = (c + block - 1) / block;
    for (int64_t b = 0; b < n; b++) {
        float *last = y + ((b * blocks + blocks - 1) * hw) * block;
        for (int64_t p = 0; p < hw; p++)
            for (int lane = c % block; lane < block; lane++) last[p * block + lane] = 0.0f;
    }
}

/* The channel scale (layers/scale.c) with x in NCHW or a blocked layout (n x ceil(c/B) x hw x
 * B; B = 1 is NCHW) and the gate, c x 1 x 1 per image, in its own layout: either way gate
 * (b, ch) sits at b * (its padded size) + ch. Padded channels of y are zero. */
static void scale_any_layout(const float *x, hs_layout layout, const float *gate,
                             hs_layout gate_layout, int n, int c, int hw, float *y) {
    int block = hs_layout_block(layout);
    int64_t blocks = (c + block - 1) / block;
    int64_t gate_stride = hs_layout_size(gate_layout, 1, c, 1, 1);
#pragma omp parallel for collapse(2) schedule(static) if ((int64_t)n * c * hw > 65536)
    for (int b = 0; b < n; b++)
        for (int64_t cb = 0; cb < blocks; cb++) {
            int64_t at = (b * blocks + cb) * hw * block;
            for (int64_t p = 0; p < hw; p++)
                for (int lane = 0; lane < block; lane++) {
                    int64_t ch = cb * block + lane, i = at + p * block + lane;
                    y[i] = ch < c ? x[i] * gate[b * gate_stride + ch] : 0.0f;
                }
        }
}

/* Global average pooling of a blocked activation (n x ceil(c/B) x hw x B) into the same
 * layout at 1 x 1 (n x ceil(c/B) x B): squeeze-and-excitation pools every block's map, and
 * its 1x1 convolutions then read the blocked result with no reorder either way. Sums in
 * double, as the reference pooling; padded channels average zeros and stay zero. */
static void global_pool_blocked(const float *x, int block, int n, int c, int hw, float *y) {
    int64_t blocks = (c + block - 1) / block;
#pragma omp parallel for collapse(2) schedule(static) if ((int64_t)n * c * hw > 65536)
    for (int b = 0; b < n; b++)
        for (int64_t cb = 0; cb < blocks; cb++) {
            const float *map = x + (b * blocks + cb) * hw * block;
            double sum[16] = {0};
            for (int64_t p = 0; p < hw; p++)
                for (int lane = 0; lane < block; lane++) sum[lane] += map[p * block + lane];
            for (int lane = 0; lane < block; lane++)
                y[(b * blocks + cb) * block + lane] = (float)(sum[lane] / (double)hw);
        }
}

/* Runs any other single-layer step from r->x into buf[current]. */
static hs_status run_other(hs_net *net, const plan_step *step, run_state *r, hs_act_shape in,
                           hs_act_shape out, hs_error *err) {
    hs_layer *l = &net->layers[step->layer];
    int n = r->n;
    hs_status st = HS_OK;
    /* bf16 activations: max pooling and the residual add run on them (oneDNN, any layout);
     * every other kind gets float32 in the same layout, one reorder. */
    if (r->bf16 && l->kind != HS_LAYER_MAXPOOL && l->kind != HS_LAYER_ADD &&
        (st = convert_to(r, in, r->layout, 0, err)))
        return st;
    float *y = r->buf[r->current];
    switch (l->kind) {
    case HS_LAYER_RELU: case HS_LAYER_RELU6: { /* any layout */
        int64_t count = hs_layout_size(r->layout, n, out.c, out.h, out.w);
        if (l->kind == HS_LAYER_RELU) hs_relu_forward(r->x, count, y);
        else hs_relu6_forward(r->x, count, y);
        advance(r);
        return HS_OK;
    }
    case HS_LAYER_SIGMOID: case HS_LAYER_SILU: case HS_LAYER_HARDSWISH:
    case HS_LAYER_HARDSIGMOID: { /* any layout */
        int64_t count = hs_layout_size(r->layout, n, out.c, out.h, out.w);
        if (l->kind == HS_LAYER_SIGMOID) hs_sigmoid_apply(r->x, count, y);
        else if (l->kind == HS_LAYER_SILU) hs_silu_apply(r->x, count, y);
        else if (l->kind == HS_LAYER_HARDSWISH) hs_hardswish_apply(r->x, count, y);
        else hs_hardsigmoid_apply(r->x, count, y);
        /* The gates map 0 to 1/2: padded channels must stay zero. */
        if (l->kind == HS_LAYER_SIGMOID || l->kind == HS_LAYER_HARDSIGMOID)
            zero_padded_channels(y, r->layout, n, out.c, out.h * out.w);
        advance(r);
        return HS_OK;
    }
    case HS_LAYER_ADAPTIVE_AVGPOOL: /* global pooling in a blocked layout stays blocked */
        if (l->out_h != 1 || l->out_w != 1 || r->layout == HS_LAYOUT_NCHW) break;
        if (r->layout == HS_LAYOUT_NHWC) { /* oneDNN's average over the whole map */
            if (hs_act_pool(r->ctx, r->x, r->layout, 0, n, in.c, in.h, in.w, 1, in.h, in.w, 1,
                            0, y))
                return hs_fail(err, HS_ERR_INTERNAL, "%s: oneDNN pooling failed", l->name);
        } else {
            global_pool_blocked(r->x, hs_layout_block(r->layout), n, in.c, in.h * in.w, y);
        }
        advance(r);
        return HS_OK;
    case HS_LAYER_SCALE:
        if (r->layout == HS_LAYOUT_NHWC && (st = convert(r, in, HS_LAYOUT_NCHW, err))) return st;
        if ((st = slot_to(r, step->edge_slot, r->edge_shape, r->slot_layout[step->edge_slot], 0,
                          err)))
            return st;
        y = r->buf[r->current];
        scale_any_layout(r->x, r->layout, r->slot[step->edge_slot],
                         r->slot_layout[step->edge_slot], n, in.c, in.h * in.w, y);
        advance(r);
        return HS_OK;
    case HS_LAYER_MAXPOOL:
        if (r->bf16 || r->layout == HS_LAYOUT_NHWC) { /* oneDNN's pooling reads those */
            if (hs_act_pool(r->ctx, r->x, r->layout, r->bf16, n, in.c, in.h, in.w, 0,
                            l->pool_kernel, l->pool_kernel, l->pool_stride, l->pool_pad, y))
                return hs_fail(err, HS_ERR_INTERNAL, "%s: oneDNN pooling failed", l->name);
        } else {
            hs_maxpool2d_forward(r->x, r->layout, n, in.c, in.h, in.w, l->pool_kernel,
                                 l->pool_stride, l->pool_pad, y);
        }
        advance(r);
        return HS_OK;
    case HS_LAYER_ADD: /* in the edge's layout and type, in place on a buffer of ours */
        return add_edge(r, step->edge_slot, in, err);
    /* ConvNeXt's kinds: per pixel or per channel, in NCHW or a blocked layout as it comes
     * (layers/channel_kernels.h), so its blocks stay blocked from conv to conv. */
    case HS_LAYER_GELU:
        hs_gelu_forward(r->x, hs_layout_size(r->layout, n, out.c, out.h, out.w), y);
        advance(r);
        return HS_OK;
    case HS_LAYER_LAYERNORM2D: case HS_LAYER_LAYER_SCALE:
        if (r->layout == HS_LAYOUT_NHWC) break; /* not blocked by channel: NCHW below */
        if (l->kind == HS_LAYER_LAYERNORM2D)
            hs_layernorm2d_forward(r->x, r->layout, n, in.c, in.h * in.w, l->weight, l->bias,
                                   l->bn_eps, y, NULL, NULL);
        else
            hs_channel_scale_forward(r->x, r->layout, n, in.c, in.h * in.w, l->weight, y);
        advance(r);
        return HS_OK;
    default: break;
    }
    if ((st = convert(r, in, HS_LAYOUT_NCHW, err))) return st;
    if (l->kind == HS_LAYER_FLATTEN) return HS_OK; /* NCHW is already flat: no copy */
    y = r->buf[r->current];
    hs_forward_args a = {r->x, in, y, out, n, 0, NULL, NULL, NULL, NULL, {0, 0, 0}, NULL, 0, HS_LAYOUT_NCHW, HS_LAYOUT_NCHW, 0};
    if (step->edge_slot >= 0) { /* the layer's own forward reads its second input in NCHW */
        hs_act_shape e = r->edge_shape;
        if ((st = slot_to(r, step->edge_slot, e, HS_LAYOUT_NCHW, 0, err))) return st;
        a.other = r->slot[step->edge_slot];
        a.other_shape = e;
    }
    if ((st = hs_layer_ops_of(l->kind)->forward(l, &a, err))) return st;
    advance(r);
    return HS_OK;
}

/* A linear layer (with the ReLU after it when step->post says so). Layers of the pretrained
 * network in a bf16 run take bf16 products: the layer as a 1x1 convolution of a 1 x 1 image
 * (the same weight array, out x in) on a oneDNN plan that keeps the weights in bf16 and runs
 * it as an inner product (conv_dnnl.c), which halves the bytes a batch of one streams
 * (VGG16's classifier: 480 MB in float32). A head made here (layers from head_begin on)
 * trained in float32 and stays float32, and so does any layer oneDNN has no bf16 plan for;
 * those run the layer's own forward (sgemm / sgemv). */
static hs_status run_linear(hs_net *net, const plan_step *step, run_state *r, hs_act_shape in,
                            hs_act_shape out, hs_error *err) {
    hs_layer *l = &net->layers[step->layer];
    hs_conv_plan *plan = NULL;
    if (r->bf16_convs && (net->head_begin < 0 || step->layer < net->head_begin) && l->weight) {
        hs_conv2d_shape s = {l->in_features, l->out_features, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1};
        /* NHWC of a 1 x 1 image is the flat n x features array either side */
        hs_conv_options opt = {HS_LAYOUT_NHWC, HS_LAYOUT_NHWC, step->post, 1, 0};
        if (!hs_conv_plan_matches(l->plan, &s, r->n, 1, 1, &opt)) {
            hs_conv_plan_free(l->plan);
            l->plan = hs_conv_plan_create_in(net->ctx, &s, r->n, 1, 1, l->weight, l->bias,
                                             &opt);
        }
        plan = l->plan && hs_conv_plan_uses_dnnl(l->plan) ? l->plan : NULL;
    }
    if (!plan) {
        hs_status st = run_other(net, step, r, in, out, err);
        if (!st && step->post == HS_POST_RELU)
            hs_relu_forward(r->x, (int64_t)r->n * hs_act_numel(out), (float *)r->x); /* ours */
        return st;
    }
    hs_status st = convert_to(r, in, HS_LAYOUT_NCHW, 0, err); /* flat float32 */
    if (st) return st;
    if (hs_conv_plan_run(plan, r->x, r->buf[r->current]))
        return hs_fail(err, HS_ERR_INTERNAL, "%s: oneDNN linear layer failed", l->name);
    advance(r);
    return HS_OK;
}

hs_status hs_net_run(hs_net *net, int first, int last, const float *input, int n, int c, int h,
                     int w, float *out, hs_error *err) {
    if (first < 0 || last > net->count || first > last || n <= 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "invalid layer range or batch size");
    hs_status st = hs_net_prepare(net, err);
    if (st) return st;

    /* Two ping-pong buffers sized for the largest activation (in either layout), plus one
     * per kept output. */
    /* Activation layouts: by default the ones oneDNN's kernels choose where that measured
     * faster (bf16_chooses, FLOAT32_CHOOSES above); net->blocked_layout forces the fixed
     * blocked layout of either size, or HS_LAYOUT_ANY the chosen ones (tests). */
    hs_layout blocked = hs_layout_blocked();
    int bf16_convs = net->bf16 && hs_dnnl_bf16_support() > 0;
    int choose = bf16_convs ? bf16_chooses(net, first, last) : FLOAT32_CHOOSES;
    if (hs_layout_block((hs_layout)net->blocked_layout) > 1) {
        blocked = net->blocked_layout;
        choose = 0;
    } else if (net->blocked_layout == HS_LAYOUT_ANY) {
        choose = 1;
    }
    int span = last - first;
    hs_act_shape *shapes = malloc(((size_t)span + 1) * sizeof *shapes);
    if (!shapes) return hs_fail(err, HS_ERR_NOMEM, "out of memory for the network's shapes");
    if ((st = hs_net_range_shapes(net, first, last, (hs_act_shape){c, h, w}, shapes, err))) {
        free(shapes);
        return st;
    }
    size_t largest = 0;
    for (int k = 0; k <= span; k++) {
        hs_act_shape a = shapes[k];
        size_t size = (size_t)hs_layout_size(blocked, 1, a.c, a.h, a.w);
        if (size > largest) largest = size;
    }
    run_plan p;
    if ((st = build_plan(net, first, last, &p, err))) {
        free(shapes);
        return st;
    }
    size_t bytes = largest * (size_t)n * sizeof(float);
    size_t buffers = 2 + (size_t)p.slots;
    float *slot_ptr[8 + 2];
    hs_layout slot_layout[8 + 2];
    int slot_bf16[8 + 2] = {0};
    if (p.slots > 8) {
        free(p.steps);
        free(shapes);
        return hs_fail(err, HS_ERR_INTERNAL, "more than 8 residual edges alive at once");
    }
    if (bytes / sizeof(float) / (size_t)n != largest) {
        free(p.steps);
        free(shapes);
        return hs_fail(err, HS_ERR_NOMEM, "batch of %d is too large", n);
    }
    bytes = (bytes + 63) / 64 * 64;
    if (net->run_buffer_bytes < buffers * bytes) { /* kept: no allocation per batch */
        free(net->run_buffer);
        net->run_buffer_bytes = 0;
        net->run_buffer = aligned_alloc(64, buffers * bytes);
        if (!net->run_buffer) {
            free(p.steps);
            free(shapes);
            return hs_fail(err, HS_ERR_NOMEM,
                           "out of memory for a batch of %d images (%.0f MB of activations); "
                           "lower --batch-size", n, (double)buffers * (double)bytes / 1e6);
        }
        net->run_buffer_bytes = buffers * bytes;
    }
    float *base = net->run_buffer;
    size_t stride = bytes / sizeof(float);
    for (int k = 0; k < p.slots; k++) slot_ptr[k] = base + (2 + k) * stride;
    run_state r = {{base, base + stride}, 0, input, HS_LAYOUT_NCHW, 0, blocked, choose,
                   bf16_convs, n, slot_ptr, slot_layout, slot_bf16, net->ctx, {0, 0, 0}};

    if (p.input_slot >= 0) save_output(&r, p.input_slot, shapes[0]);
    hs_act_shape s = shapes[0];
    for (int k = 0; k < p.count && !st; k++) {
        const plan_step *step = &p.steps[k];
        hs_layer *l = &net->layers[step->layer];
        hs_act_shape in = shapes[hs_range_slot(l->input, first)];
        hs_act_shape next = shapes[step->last - first + 1];
        if (step->load_slot >= 0) {
            r.x = r.slot[step->load_slot];
            r.layout = r.slot_layout[step->load_slot];
            r.bf16 = r.slot_bf16[step->load_slot];
        }
        if (step->edge_slot >= 0) r.edge_shape = shapes[hs_range_slot(l->from, first)];
        if (!is_identity_at_inference(l->kind)) {
            if (l->kind == HS_LAYER_CONV) st = run_conv(net, step, &r, in, next, err);
            else if (l->kind == HS_LAYER_LINEAR) st = run_linear(net, step, &r, in, next, err);
            else st = run_other(net, step, &r, in, next, err);
            if (st) break;
        }
        s = next;
        if (step->save_slot >= 0) save_output(&r, step->save_slot, s);
    }
    free(p.steps);
    s = shapes[span];
    free(shapes);
    if (!st) { /* float32 NCHW out */
        if (r.layout == HS_LAYOUT_NCHW && !r.bf16)
            memcpy(out, r.x, (size_t)n * s.c * s.h * s.w * sizeof(float));
        else if (hs_act_convert_in(net->ctx, r.x, r.layout, r.bf16, out, HS_LAYOUT_NCHW, 0, n,
                                   s.c, s.h, s.w))
            st = hs_fail(err, HS_ERR_INTERNAL, "oneDNN failed to convert the output");
    }
    return st;
}
