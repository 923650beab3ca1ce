/* Fast backward kernels: oneDNN backward primitives behind per-shape plans (ops_grad.h).
 *
 * Every backward primitive in oneDNN is created from a hint, the forward-training primitive
 * descriptor of the same layer, so each plan makes that forward descriptor first. Memory the
 * caller passes is plain NCHW float32 ("user" memory); where a primitive prefers another
 * layout (format_tag_any lets it choose) the plan owns a buffer in that layout and a reorder
 * into or out of it: a "port" below. Parameter gradients go to plan-owned buffers and are
 * added to the caller's afterwards, because oneDNN overwrites and the contract accumulates.
 *
 * When a primitive cannot be made, that part of the plan runs the reference kernel. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnnl_compat.h"
#include "ops.h"
#include "ops_grad.h"

/* ---- the engine and stream -------------------------------------------------------------------
 * One CPU engine and stream for the process, made on first use. This is the only function
 * that knows where they come from: moving them into a context object changes only it. */

static dnnl_engine_t grad_engine;
static dnnl_stream_t grad_stream;
static int grad_dnnl_allowed = 1; /* hs_grad_plans_use_dnnl */

void hs_grad_plans_use_dnnl(int on) { grad_dnnl_allowed = on != 0; }

static int grad_dnnl_ready(void);

hs_layout hs_grad_plans_layout(void) {
    return grad_dnnl_ready() ? hs_layout_blocked() : HS_LAYOUT_NCHW;
}

static int grad_dnnl_ready(void) {
    static int state; /* 0 not tried, 1 ready, -1 failed */
    if (!grad_dnnl_allowed) return 0;
#pragma omp critical(hs_grad_dnnl_init)
    if (state == 0) {
        state = -1;
        if (dnnl_engine_create(&grad_engine, dnnl_cpu, 0) == dnnl_success) {
            if (dnnl_stream_create(&grad_stream, grad_engine, dnnl_stream_default_flags) ==
                dnnl_success)
                state = 1;
            else
                dnnl_engine_destroy(grad_engine);
        }
    }
    return state == 1;
}

/* ---- small helpers ----------------------------------------------------------------------- */

static void *aligned_bytes(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64)) return NULL;
    return p;
}

static int execute(dnnl_primitive_t prim, int nargs, const dnnl_exec_arg_t *args) {
    dnnl_status_t st = dnnl_primitive_execute(prim, grad_stream, nargs, args);
    if (st == dnnl_success) st = dnnl_stream_wait(grad_stream);
    return st == dnnl_success;
}

static const char *impl_of(const_dnnl_primitive_desc_t pd) {
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
        !impl)
        return "?";
    return impl;
}

static size_t scratch_size(const_dnnl_primitive_desc_t pd) {
    hs_md_ref md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

/* A primitive attribute asking for user-managed scratchpad (the plan allocates it once). */
static dnnl_primitive_attr_t user_scratch_attr(void) {
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
    if (dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) !=
        dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        return NULL;
    }
    return attr;
}

/* Scratchpad memory for one primitive over a buffer shared by the plan's primitives (they run
 * one after another). *mem stays NULL when the primitive needs none. */
static int scratch_memory(const_dnnl_primitive_desc_t pd, void *buf, dnnl_memory_t *mem) {
    hs_md_ref md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (!md || dnnl_memory_desc_get_size(md) == 0) return 1;
    return dnnl_memory_create(mem, md, grad_engine, buf) == dnnl_success;
}

/* Adds the plan's freshly computed gradient to the caller's accumulator. Threaded only for
 * large tensors: a parameter gradient is small (Lite0's largest, 368k floats, takes ~50 us on
 * one core), and each parallel region is a barrier, which costs a scheduler slice whenever the
 * machine runs more threads than it has cores. */
static void accumulate(float *dst, const float *src, int64_t count) {
#pragma omp parallel for schedule(static) if (count > (1 << 19))
    for (int64_t i = 0; i < count; i++) dst[i] += src[i];
}

/* ---- ports: a caller's array and the layout a primitive wants -------------------------------
 * `user` is described in the caller's layout; when the primitive chose the same one (the
 * blocked training path, for activations) the port is the caller's memory and no reorder
 * runs. */
typedef struct port {
    dnnl_memory_t user;        /* the caller's array; its handle is set on every run */
    dnnl_memory_t inner;       /* what the primitive reads or writes: `user` or `buf` */
    dnnl_primitive_t reorder;  /* user -> inner (inputs) or inner -> user (outputs), or NULL */
    void *buf;
    int slot;                  /* >= 0: inner lives in that slot of the shared arena below */
} port;

/* ---- the shared arena of bf16 plans' converted activations --------------------------------
 * A bf16 convolution plan converts x and dy on every run into bf16 buffers that live only
 * during that run (the tape runs one layer at a time): per-plan buffers would add half of
 * every convolution's input and output to the tape's memory, so the plans share two slots,
 * one for a dy (SLOT_DY) and one for an x (SLOT_X), sized for the largest plan. A run points
 * its ports at the slots before converting. Plans are made, run and freed by one thread at a
 * time (the tape's); the arena is freed with the last plan that uses it. */
enum { SLOT_DY = 0, SLOT_X = 1, SLOT_COUNT = 2 };
static struct {
    char *base;
    size_t slot_bytes[SLOT_COUNT];
    int users;
} arena;

/* Grows the arena so that `slot` holds `bytes` (contents are not kept: nothing lives in it
 * between runs). */
static int arena_reserve(int slot, size_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    if (arena.base && arena.slot_bytes[slot] >= bytes) return 1;
    size_t sizes[SLOT_COUNT];
    memcpy(sizes, arena.slot_bytes, sizeof sizes);
    if (sizes[slot] < bytes) sizes[slot] = bytes;
    char *base = aligned_bytes(sizes[0] + sizes[1]);
    if (!base) return 0;
    free(arena.base);
    arena.base = base;
    memcpy(arena.slot_bytes, sizes, sizeof sizes);
    return 1;
}

static void *arena_slot(int slot) {
    return arena.base + (slot == SLOT_X ? arena.slot_bytes[SLOT_DY] : 0);
}

static void arena_release(void) {
    if (--arena.users > 0) return;
    free(arena.base);
    memset(&arena, 0, sizeof arena);
}

/* slot < 0: the port owns its buffer; else the buffer is that arena slot (inputs only). */
static int port_init_in(port *p, hs_md_ref user_md, hs_md_ref inner_md, int is_input,
                        int slot) {
    p->slot = -1;
    if (dnnl_memory_create(&p->user, user_md, grad_engine, DNNL_MEMORY_NONE) != dnnl_success)
        return 0;
    if (dnnl_memory_desc_equal(user_md, inner_md)) {
        p->inner = p->user;
        return 1;
    }
    if (slot >= 0 && is_input) {
        if (!arena_reserve(slot, dnnl_memory_desc_get_size(inner_md)) ||
            dnnl_memory_create(&p->inner, inner_md, grad_engine, DNNL_MEMORY_NONE) !=
                dnnl_success)
            return 0;
        p->slot = slot;
    } else {
        p->buf = aligned_bytes(dnnl_memory_desc_get_size(inner_md));
        if (!p->buf ||
            dnnl_memory_create(&p->inner, inner_md, grad_engine, p->buf) != dnnl_success)
            return 0;
    }
    dnnl_primitive_desc_t rpd = NULL;
    hs_md_ref from = is_input ? user_md : inner_md;
    hs_md_ref to = is_input ? inner_md : user_md;
    int ok = dnnl_reorder_primitive_desc_create(&rpd, from, grad_engine, to, grad_engine, NULL) ==
                 dnnl_success &&
             dnnl_primitive_create(&p->reorder, rpd) == dnnl_success;
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    return ok;
}

static int port_init(port *p, hs_md_ref user_md, hs_md_ref inner_md, int is_input) {
    return port_init_in(p, user_md, inner_md, is_input, -1);
}

static void port_destroy(port *p) {
    if (p->reorder) dnnl_primitive_destroy(p->reorder);
    if (p->inner && p->inner != p->user) dnnl_memory_destroy(p->inner);
    if (p->user) dnnl_memory_destroy(p->user);
    free(p->buf);
    memset(p, 0, sizeof *p);
}

/* An input: points the port at the caller's data and reorders it in if needed. */
static int port_in(port *p, const void *data) {
    if (dnnl_memory_set_data_handle(p->user, (void *)data) != dnnl_success) return 0;
    if (!p->reorder) return 1;
    if (p->slot >= 0 && dnnl_memory_set_data_handle(p->inner, arena_slot(p->slot)) != dnnl_success)
        return 0;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, p->user}, {DNNL_ARG_TO, p->inner}};
    return execute(p->reorder, 2, args);
}

/* An output: the caller's array, filled by port_out after the primitive ran. */
static int port_set_out(port *p, void *data) {
    return dnnl_memory_set_data_handle(p->user, data) == dnnl_success;
}

static int port_out(port *p) {
    if (!p->reorder) return 1;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, p->inner}, {DNNL_ARG_TO, p->user}};
    return execute(p->reorder, 2, args);
}

/* Makes a descriptor; 1 on success. */
static int typed_md(hs_md *md, int ndims, const dnnl_dims_t dims, dnnl_data_type_t type,
                    dnnl_format_tag_t tag) {
    return hs_md_init(md, ndims, dims, type, tag) == dnnl_success;
}

static int plain_md(hs_md *md, int ndims, const dnnl_dims_t dims, dnnl_format_tag_t tag) {
    return typed_md(md, ndims, dims, dnnl_f32, tag);
}

static void release_mds(hs_md *const *mds, size_t count) {
    for (size_t i = 0; i < count; i++) hs_md_release(mds[i]);
}

/* oneDNN's tag for a 4-D activation layout. */
static dnnl_format_tag_t act_tag(hs_layout layout) {
    switch (layout) {
    case HS_LAYOUT_NHWC: return dnnl_nhwc;
    case HS_LAYOUT_NCHW16C: return dnnl_nChw16c;
    case HS_LAYOUT_NCHW8C: return dnnl_nChw8c;
    default: return dnnl_nchw;
    }
}

/* ---- convolution ------------------------------------------------------------------------------ */

struct hs_conv_grad_plan {
    hs_conv2d_shape s;
    int n, h, w, oh, ow;
    hs_layout src_layout, dst_layout; /* of x and dx, of y and dy */
    int bf16;                      /* products in bfloat16 (hs_conv_grad_plan_create_prec) */
    int arena_user;                /* counted in arena.users (freed with the last) */
    char impl[160];
    dnnl_primitive_t fwd;          /* forward training with the current weights; NULL: im2col */
    port f_x, f_w, f_y;            /* forward: src in, weights in, dst out */
    dnnl_memory_t f_b;             /* forward bias, over bias_buf */
    float *bias_buf;               /* the caller's bias (or zeros) copied in on each run */
    dnnl_primitive_t bwd_data;     /* NULL: dx by the reference kernel */
    dnnl_primitive_t bwd_weights;  /* NULL: dweight and dbias by the reference kernel, */
    int dw_direct;                 /* or by depthwise_backward_weights when this is set, */
    port dw_x;                     /* reading x reordered into dy's layout when they differ */
    void *dw_work;                 /* the blocked direct loops' sums */
    port d_dy, d_w, d_dx;          /* backward data: diff_dst in, weights in, diff_src out */
    port w_x, w_dy, w_dw;          /* backward weights: src in, diff_dst in, diff_weights out */
    int share_dy;                  /* both primitives read diff_dst in one layout: w_dy unused */
    dnnl_memory_t w_db;            /* diff_bias, over db_acc */
    dnnl_memory_t scratch_data, scratch_weights;
    void *scratch_buf;
    float *dw_acc, *db_acc;        /* oneDNN's parameter gradients, added to the caller's */
    int64_t w_count;
};

static void conv_grad_destroy_dnnl(hs_conv_grad_plan *p) {
    if (p->fwd) dnnl_primitive_destroy(p->fwd);
    p->fwd = NULL;
    port_destroy(&p->f_x);
    port_destroy(&p->f_w);
    port_destroy(&p->f_y);
    if (p->f_b) dnnl_memory_destroy(p->f_b);
    p->f_b = NULL;
    if (p->bwd_data) dnnl_primitive_destroy(p->bwd_data);
    if (p->bwd_weights) dnnl_primitive_destroy(p->bwd_weights);
    p->bwd_data = p->bwd_weights = NULL;
    port *ports[] = {&p->d_dy, &p->d_w, &p->d_dx, &p->w_x, &p->w_dy, &p->w_dw, &p->dw_x};
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) port_destroy(ports[i]);
    dnnl_memory_t mems[] = {p->w_db, p->scratch_data, p->scratch_weights};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
    p->w_db = p->scratch_data = p->scratch_weights = NULL;
    free(p->scratch_buf);
    p->scratch_buf = NULL;
}

/* Depthwise weight and bias gradients as direct loops threaded over channels, overwriting dw
 * and db. oneDNN 2.6's jit depthwise backward-weights kernel takes 3x3 windows only; for
 * other kernels (Lite's 5x5) it falls back to a per-group gemm that runs at ~0.01 GFLOP/s, a
 * hundred times slower than these loops. Each (channel, tap) sums one image row at a time in
 * float and the rows in double. */
static void depthwise_backward_weights(const float *x, int n, int h, int w,
                                       const hs_conv2d_shape *s, int oh, int ow, const float *dy,
                                       float *dw, float *db) {
    const int channels = s->in_channels, kh = s->kernel_h, kw = s->kernel_w;
#pragma omp parallel for schedule(dynamic)
    for (int c = 0; c < channels; c++) {
        for (int ky = 0; ky < kh; ky++) {
            for (int kx = 0; kx < kw; kx++) {
                /* outputs whose tap (ky, kx) reads inside the input: ix = ox*sw - pl + kx*dw */
                const int off_x = kx * s->dilation_w - s->pad_left;
                int ox0 = 0, ox1 = ow; /* [ox0, ox1) */
                while (ox0 < ow && ox0 * s->stride_w + off_x < 0) ox0++;
                while (ox1 > ox0 && (ox1 - 1) * s->stride_w + off_x >= w) ox1--;
                double total = 0.0;
                for (int b = 0; b < n; b++) {
                    const float *xp = x + ((int64_t)b * channels + c) * h * w;
                    const float *dyp = dy + ((int64_t)b * channels + c) * oh * ow;
                    for (int oy = 0; oy < oh; oy++) {
                        const int iy = oy * s->stride_h - s->pad_top + ky * s->dilation_h;
                        if (iy < 0 || iy >= h) continue;
                        const float *xrow = xp + (int64_t)iy * w + off_x;
                        const float *dyrow = dyp + (int64_t)oy * ow;
                        float row = 0.0f;
                        for (int ox = ox0; ox < ox1; ox++) row += dyrow[ox] * xrow[ox * s->stride_w];
                        total += row;
                    }
                }
                dw[((int64_t)c * kh + ky) * kw + kx] = (float)total;
            }
        }
        double bias = 0.0;
        for (int b = 0; b < n; b++) {
            const float *dyp = dy + ((int64_t)b * channels + c) * oh * ow;
            float plane = 0.0f;
            for (int64_t i = 0; i < (int64_t)oh * ow; i++) plane += dyp[i];
            bias += plane;
        }
        db[c] = (float)bias;
    }
}

/* The same for x and dy in a blocked layout of `block` channels (8 or 16): the lanes of a
 * block are independent channels, so the innermost loop is one vector over them. Threaded
 * over channel blocks; each output row of dy is read once for all taps (and the bias) while
 * it is in L1, each tap summing the row in float and the rows in double. Padding lanes
 * compute zeros and are not stored. The body is compiled for AVX-512 and AVX2 too and picked
 * at run time (the build targets the baseline x86-64). */
#define HS_DW_MAX_KW 64 /* widest depthwise kernel the blocked loops take */

typedef struct dw_args {
    const float *x, *dy;
    int n, h, w, oh, ow;
    const hs_conv2d_shape *s;
    float *dw, *db;
    void *work; /* per block: double sums, then float row sums, (taps + 1) x 16 each */
    int ox0[HS_DW_MAX_KW], ox1[HS_DW_MAX_KW]; /* per kx: outputs whose tap reads in the row */
} dw_args;

static inline __attribute__((always_inline)) void dw_block(const int block, const dw_args *a,
                                                           int cb) {
    const hs_conv2d_shape *s = a->s;
    const int channels = s->in_channels, kh = s->kernel_h, kw = s->kernel_w, taps = kh * kw;
    const int cblocks = (channels + block - 1) / block, sw = s->stride_w, ow = a->ow;
    const int64_t x_plane = (int64_t)a->h * a->w * block, y_plane = (int64_t)a->oh * ow * block;
    double (*total)[16] = (double (*)[16])a->work + (int64_t)cb * (taps + 1); /* [taps]: bias */
    float (*row)[16] = (float (*)[16])((double (*)[16])a->work + (int64_t)cblocks * (taps + 1)) +
                       (int64_t)cb * (taps + 1);
    memset(total, 0, ((size_t)taps + 1) * sizeof *total);
    for (int b = 0; b < a->n; b++) {
        const float *xp = a->x + ((int64_t)b * cblocks + cb) * x_plane;
        const float *dyp = a->dy + ((int64_t)b * cblocks + cb) * y_plane;
        for (int oy = 0; oy < a->oh; oy++) {
            const float *dyrow = dyp + (int64_t)oy * ow * block;
            memset(row, 0, ((size_t)taps + 1) * sizeof *row);
            for (int ox = 0; ox < ow; ox++)
#pragma omp simd
                for (int l = 0; l < block; l++) row[taps][l] += dyrow[ox * block + l];
            for (int ky = 0; ky < kh; ky++) {
                const int iy = oy * s->stride_h - s->pad_top + ky * s->dilation_h;
                if (iy < 0 || iy >= a->h) continue;
                for (int kx = 0; kx < kw; kx++) {
                    const float *xrow =
                        xp + ((int64_t)iy * a->w + kx * s->dilation_w - s->pad_left) * block;
                    float *acc = row[ky * kw + kx];
                    for (int ox = a->ox0[kx]; ox < a->ox1[kx]; ox++)
#pragma omp simd
                        for (int l = 0; l < block; l++)
                            acc[l] += dyrow[ox * block + l] * xrow[ox * sw * block + l];
                }
            }
            for (int t = 0; t <= taps; t++)
                for (int l = 0; l < block; l++) total[t][l] += row[t][l];
        }
    }
    const int lanes = channels - cb * block < block ? channels - cb * block : block;
    for (int l = 0; l < lanes; l++) {
        const int c = cb * block + l;
        for (int t = 0; t < taps; t++) a->dw[(int64_t)c * taps + t] = (float)total[t][l];
        a->db[c] = (float)total[taps][l];
    }
}

__attribute__((target("avx512f"))) static void dw_block_16_avx512(const dw_args *a, int cb) {
    dw_block(16, a, cb);
}
static void dw_block_16(const dw_args *a, int cb) { dw_block(16, a, cb); }
__attribute__((target("avx2,fma"))) static void dw_block_8_avx2(const dw_args *a, int cb) {
    dw_block(8, a, cb);
}
static void dw_block_8(const dw_args *a, int cb) { dw_block(8, a, cb); }

static void depthwise_backward_weights_blocked(int block, const float *x, int n, int h, int w,
                                               const hs_conv2d_shape *s, int oh, int ow,
                                               const float *dy, float *dw, float *db,
                                               void *work) {
    dw_args a = {x, dy, n, h, w, oh, ow, s, dw, db, work, {0}, {0}};
    for (int kx = 0; kx < s->kernel_w; kx++) {
        const int off_x = kx * s->dilation_w - s->pad_left;
        int o0 = 0, o1 = ow;
        while (o0 < ow && o0 * s->stride_w + off_x < 0) o0++;
        while (o1 > o0 && (o1 - 1) * s->stride_w + off_x >= w) o1--;
        a.ox0[kx] = o0;
        a.ox1[kx] = o1;
    }
    void (*run)(const dw_args *, int) =
        block == 16 ? (__builtin_cpu_supports("avx512f") ? dw_block_16_avx512 : dw_block_16)
                    : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                           ? dw_block_8_avx2
                           : dw_block_8);
    const int cblocks = (s->in_channels + block - 1) / block;
#pragma omp parallel for schedule(dynamic)
    for (int cb = 0; cb < cblocks; cb++) run(&a, cb);
}

/* Bytes of the work buffer the blocked loops need. */
static size_t depthwise_work_bytes(const hs_conv2d_shape *s) {
    const size_t cblocks = ((size_t)s->in_channels + 7) / 8; /* the larger count: block 8 */
    return cblocks * ((size_t)s->kernel_h * s->kernel_w + 1) * 16 * (sizeof(double) + sizeof(float));
}

static int is_depthwise(const hs_conv2d_shape *s) {
    return s->groups > 1 && s->groups == s->in_channels && s->groups == s->out_channels;
}

/* Makes the forward-training primitive and the two backward primitives (each independently:
 * one may fail and fall back). */
static void conv_grad_create_dnnl(hs_conv_grad_plan *p) {
    if (!grad_dnnl_ready()) return;
    const hs_conv2d_shape *s = &p->s;
    const int g = s->groups;
    dnnl_dims_t src_dims = {p->n, s->in_channels, p->h, p->w};
    dnnl_dims_t dst_dims = {p->n, s->out_channels, p->oh, p->ow};
    dnnl_dims_t w5_dims = {g, s->out_channels / g, s->in_channels / g, s->kernel_h, s->kernel_w};
    dnnl_dims_t w4_dims = {s->out_channels, s->in_channels, s->kernel_h, s->kernel_w};
    const int w_ndims = g > 1 ? 5 : 4;
    dnnl_dims_t b_dims = {s->out_channels};
    dnnl_dims_t strides = {s->stride_h, s->stride_w};
    dnnl_dims_t dilates = {s->dilation_h - 1, s->dilation_w - 1}; /* oneDNN: 0 = none */
    dnnl_dims_t pad_l = {s->pad_top, s->pad_left}, pad_r = {s->pad_bottom, s->pad_right};

    /* bf16: what the kernels read (src, weights, diff_dst) is bfloat16, what they write
     * (dst, diff_src, diff_weights, diff_bias) float32, so only the inputs are converted */
    const dnnl_data_type_t in_type = p->bf16 ? dnnl_bf16 : dnnl_f32;
    /* bf16 plans convert x and dy into the shared arena (float32 plans keep their own) */
    const int x_slot = p->bf16 ? SLOT_X : -1, dy_slot = p->bf16 ? SLOT_DY : -1;
    hs_md src_user_m = {0}, dst_user_m = {0}, w_user_m = {0}, src_any_m = {0}, dst_any_m = {0};
    hs_md w_any_m = {0}, b_m = {0}, src_out_any_m = {0}, dst_in_any_m = {0}, dw_any_m = {0};
    hs_md *const mds[] = {&src_user_m, &dst_user_m, &w_user_m,      &src_any_m,    &dst_any_m,
                          &w_any_m,    &b_m,        &src_out_any_m, &dst_in_any_m, &dw_any_m};
    int made =
        plain_md(&src_user_m, 4, src_dims, act_tag(p->src_layout)) &&
        plain_md(&dst_user_m, 4, dst_dims, act_tag(p->dst_layout)) &&
        plain_md(&w_user_m, w_ndims, g > 1 ? w5_dims : w4_dims, g > 1 ? dnnl_goihw : dnnl_oihw) &&
        typed_md(&src_any_m, 4, src_dims, in_type, dnnl_format_tag_any) &&
        plain_md(&dst_any_m, 4, dst_dims, dnnl_format_tag_any) &&
        typed_md(&w_any_m, w_ndims, g > 1 ? w5_dims : w4_dims, in_type, dnnl_format_tag_any) &&
        plain_md(&b_m, 1, b_dims, dnnl_x) &&
        plain_md(&src_out_any_m, 4, src_dims, dnnl_format_tag_any) &&        /* diff_src */
        typed_md(&dst_in_any_m, 4, dst_dims, in_type, dnnl_format_tag_any) && /* diff_dst */
        plain_md(&dw_any_m, w_ndims, g > 1 ? w5_dims : w4_dims, dnnl_format_tag_any); /* diff_w */
    hs_md_ref src_user = hs_md_get(&src_user_m), dst_user = hs_md_get(&dst_user_m);
    hs_md_ref w_user = hs_md_get(&w_user_m), src_any = hs_md_get(&src_any_m);
    hs_md_ref dst_any = hs_md_get(&dst_any_m), w_any = hs_md_get(&w_any_m);
    hs_md_ref b_md = hs_md_get(&b_m), src_out_any = hs_md_get(&src_out_any_m);
    hs_md_ref dst_in_any = hs_md_get(&dst_in_any_m), dw_any = hs_md_get(&dw_any_m);

    dnnl_primitive_desc_t hint = NULL, data_pd = NULL, weights_pd = NULL;
    char fwd_impl[48] = "im2col+sgemm";
    dnnl_primitive_attr_t attr = made ? user_scratch_attr() : NULL;
    if (!attr ||
        hs_conv_forward_pd(&hint, grad_engine, dnnl_forward_training, src_any, w_any, b_md,
                           dst_any, strides, dilates, pad_l, pad_r, NULL) != dnnl_success) {
        if (attr) dnnl_primitive_attr_destroy(attr);
        release_mds(mds, sizeof mds / sizeof mds[0]);
        return;
    }
    /* the hint itself is the forward primitive (its scratchpad owned by oneDNN) */
    {
        hs_md_ref x_md = dnnl_primitive_desc_query_md(hint, dnnl_query_src_md, 0);
        hs_md_ref w_md = dnnl_primitive_desc_query_md(hint, dnnl_query_weights_md, 0);
        hs_md_ref y_md = dnnl_primitive_desc_query_md(hint, dnnl_query_dst_md, 0);
        int ok = port_init_in(&p->f_x, src_user, x_md, 1, x_slot) &&
                 port_init(&p->f_w, w_user, w_md, 1) &&
                 port_init(&p->f_y, dst_user, y_md, 0) &&
                 dnnl_memory_create(&p->f_b, b_md, grad_engine, p->bias_buf) == dnnl_success &&
                 dnnl_primitive_create(&p->fwd, hint) == dnnl_success;
        if (ok) snprintf(fwd_impl, sizeof fwd_impl, "%s", impl_of(hint));
        if (!ok) {
            if (p->fwd) dnnl_primitive_destroy(p->fwd);
            p->fwd = NULL;
            port_destroy(&p->f_x);
            port_destroy(&p->f_w);
            port_destroy(&p->f_y);
            if (p->f_b) dnnl_memory_destroy(p->f_b);
            p->f_b = NULL;
        }
    }
    if (hs_conv_backward_data_pd(&data_pd, grad_engine, src_out_any, w_any, dst_in_any, strides,
                                 dilates, pad_l, pad_r, hint, attr) != dnnl_success)
        data_pd = NULL;
    if (hs_conv_backward_weights_pd(&weights_pd, grad_engine, src_any, dw_any, b_md, dst_in_any,
                                    strides, dilates, pad_l, pad_r, hint, attr) != dnnl_success)
        weights_pd = NULL;

    if (is_depthwise(s) && (!weights_pd || strstr(impl_of(weights_pd), "gemm"))) {
        if (weights_pd) dnnl_primitive_desc_destroy(weights_pd);
        weights_pd = NULL;
        p->dw_direct = 1;
        if (p->src_layout != p->dst_layout) {
            hs_md x_as_dy = {0};
            if (!plain_md(&x_as_dy, 4, src_dims, act_tag(p->dst_layout)) ||
                !port_init(&p->dw_x, src_user, hs_md_get(&x_as_dy), 1))
                port_destroy(&p->dw_x);
            hs_md_release(&x_as_dy);
        }
    }
    size_t sp = 0;
    if (data_pd && scratch_size(data_pd) > sp) sp = scratch_size(data_pd);
    if (weights_pd && scratch_size(weights_pd) > sp) sp = scratch_size(weights_pd);
    int ok_scratch = (p->scratch_buf = aligned_bytes(sp)) != NULL;

    if (data_pd && ok_scratch) {
        hs_md_ref dy_md = dnnl_primitive_desc_query_md(data_pd, dnnl_query_diff_dst_md, 0);
        hs_md_ref w_md = dnnl_primitive_desc_query_md(data_pd, dnnl_query_weights_md, 0);
        hs_md_ref dx_md = dnnl_primitive_desc_query_md(data_pd, dnnl_query_diff_src_md, 0);
        int ok = port_init_in(&p->d_dy, dst_user, dy_md, 1, dy_slot) &&
                 port_init(&p->d_w, w_user, w_md, 1) &&
                 port_init(&p->d_dx, src_user, dx_md, 0) &&
                 scratch_memory(data_pd, p->scratch_buf, &p->scratch_data) &&
                 dnnl_primitive_create(&p->bwd_data, data_pd) == dnnl_success;
        if (!ok) {
            if (p->bwd_data) dnnl_primitive_destroy(p->bwd_data);
            p->bwd_data = NULL;
            port_destroy(&p->d_dy);
            port_destroy(&p->d_w);
            port_destroy(&p->d_dx);
        }
    }
    if (weights_pd && ok_scratch) {
        hs_md_ref x_md = dnnl_primitive_desc_query_md(weights_pd, dnnl_query_src_md, 0);
        hs_md_ref dy_md = dnnl_primitive_desc_query_md(weights_pd, dnnl_query_diff_dst_md, 0);
        hs_md_ref dw_md = dnnl_primitive_desc_query_md(weights_pd, dnnl_query_diff_weights_md, 0);
        hs_md_ref data_dy_md =
            p->bwd_data ? dnnl_primitive_desc_query_md(data_pd, dnnl_query_diff_dst_md, 0) : NULL;
        p->share_dy = data_dy_md && dnnl_memory_desc_equal(dy_md, data_dy_md);
        p->dw_acc = aligned_bytes((size_t)p->w_count * sizeof(float));
        p->db_acc = aligned_bytes((size_t)s->out_channels * sizeof(float));
        int ok = p->dw_acc && p->db_acc && port_init_in(&p->w_x, src_user, x_md, 1, x_slot) &&
                 (p->share_dy || port_init_in(&p->w_dy, dst_user, dy_md, 1, dy_slot)) &&
                 port_init(&p->w_dw, w_user, dw_md, 0) &&
                 dnnl_memory_create(&p->w_db, b_md, grad_engine, p->db_acc) == dnnl_success &&
                 scratch_memory(weights_pd, p->scratch_buf, &p->scratch_weights) &&
                 dnnl_primitive_create(&p->bwd_weights, weights_pd) == dnnl_success;
        if (ok) ok = port_set_out(&p->w_dw, p->dw_acc);
        if (!ok) {
            if (p->bwd_weights) dnnl_primitive_destroy(p->bwd_weights);
            p->bwd_weights = NULL;
            port_destroy(&p->w_x);
            port_destroy(&p->w_dy);
            port_destroy(&p->w_dw);
            if (p->w_db) dnnl_memory_destroy(p->w_db);
            p->w_db = NULL;
            p->share_dy = 0;
        }
    }
    snprintf(p->impl, sizeof p->impl, "%s / %s / %s", fwd_impl,
             p->bwd_data ? impl_of(data_pd) : "reference",
             p->bwd_weights ? impl_of(weights_pd)
                            : p->dw_direct ? "direct depthwise" : "reference");
    if (data_pd) dnnl_primitive_desc_destroy(data_pd);
    if (weights_pd) dnnl_primitive_desc_destroy(weights_pd);
    dnnl_primitive_desc_destroy(hint);
    dnnl_primitive_attr_destroy(attr);
    release_mds(mds, sizeof mds / sizeof mds[0]);
}

/* Whether a bf16 plan has every primitive (its fallbacks are float32 kernels). */
static int conv_grad_complete(const hs_conv_grad_plan *p) {
    return p->fwd && p->bwd_data && (p->bwd_weights || p->dw_direct);
}

hs_conv_grad_plan *hs_conv_grad_plan_create(const hs_conv2d_shape *s, int n, int h, int w,
                                            hs_layout src_layout, hs_layout dst_layout) {
    return hs_conv_grad_plan_create_prec(s, n, h, w, src_layout, dst_layout, 0);
}

hs_conv_grad_plan *hs_conv_grad_plan_create_prec(const hs_conv2d_shape *s, int n, int h, int w,
                                                 hs_layout src_layout, hs_layout dst_layout,
                                                 int bf16) {
    hs_conv_grad_plan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->bf16 = bf16 && !is_depthwise(s); /* depthwise stays float32: see ops_grad.h */
    if (p->bf16) {
        p->arena_user = 1;
        arena.users++;
    }
    p->s = *s;
    p->n = n;
    p->h = h;
    p->w = w;
    p->src_layout = src_layout;
    p->dst_layout = dst_layout;
    p->oh = hs_conv_out_size(h, s->kernel_h, s->stride_h, s->pad_top, s->pad_bottom,
                             s->dilation_h);
    p->ow = hs_conv_out_size(w, s->kernel_w, s->stride_w, s->pad_left, s->pad_right,
                             s->dilation_w);
    p->w_count = (int64_t)s->out_channels * (s->in_channels / s->groups) * s->kernel_h *
                 s->kernel_w;
    /* depthwise weight gradients: direct loops unless oneDNN has a jit kernel (see above) */
    p->dw_direct = is_depthwise(s);
    snprintf(p->impl, sizeof p->impl, "im2col+sgemm / reference / %s",
             p->dw_direct ? "direct depthwise" : "reference");
    p->bias_buf = aligned_bytes((size_t)s->out_channels * sizeof(float));
    if (!p->bias_buf) {
        hs_conv_grad_plan_free(p);
        return NULL;
    }
    conv_grad_create_dnnl(p);
    if (p->bf16 && !conv_grad_complete(p)) { /* no bf16 kernels here: a float32 plan */
        conv_grad_destroy_dnnl(p);
        free(p->dw_acc);
        free(p->db_acc);
        p->dw_acc = p->db_acc = NULL;
        p->share_dy = 0;
        p->dw_direct = is_depthwise(s);
        p->bf16 = 0;
        conv_grad_create_dnnl(p);
    }
    /* the reference kernels are NCHW only; the direct depthwise loops take NCHW, nChw8c and
     * nChw16c (the same layout for x and dy) */
    if (!p->bwd_weights && p->dw_direct && dst_layout != HS_LAYOUT_NCHW &&
        s->kernel_w <= HS_DW_MAX_KW)
        p->dw_work = aligned_bytes(depthwise_work_bytes(s));
    if ((src_layout != HS_LAYOUT_NCHW || dst_layout != HS_LAYOUT_NCHW) &&
        (!p->fwd || !p->bwd_data ||
         (!p->bwd_weights &&
          !(p->dw_direct && dst_layout != HS_LAYOUT_NHWC &&
            (dst_layout == HS_LAYOUT_NCHW || p->dw_work) &&
            (src_layout == dst_layout || p->dw_x.reorder))))) {
        hs_conv_grad_plan_free(p);
        return NULL;
    }
    if (p->dw_direct && !p->bwd_weights && (!p->dw_acc || !p->db_acc)) {
        free(p->dw_acc);
        free(p->db_acc);
        p->dw_acc = aligned_bytes((size_t)p->w_count * sizeof(float));
        p->db_acc = aligned_bytes((size_t)s->out_channels * sizeof(float));
        if (!p->dw_acc || !p->db_acc) {
            hs_conv_grad_plan_free(p);
            return NULL;
        }
    }
    return p;
}

int hs_conv_grad_plan_forward(hs_conv_grad_plan *p, const float *x, const float *weight,
                              const float *bias, float *y) {
    if (!p->fwd) {
        hs_conv2d_forward_im2col(x, p->n, p->h, p->w, weight, bias, &p->s, y);
        return 0;
    }
    for (int o = 0; o < p->s.out_channels; o++) p->bias_buf[o] = bias ? bias[o] : 0.0f;
    if (!port_in(&p->f_x, x) || !port_in(&p->f_w, weight) || !port_set_out(&p->f_y, y))
        return -1;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->f_x.inner},
                               {DNNL_ARG_WEIGHTS, p->f_w.inner},
                               {DNNL_ARG_BIAS, p->f_b},
                               {DNNL_ARG_DST, p->f_y.inner}};
    return execute(p->fwd, 4, args) && port_out(&p->f_y) ? 0 : -1;
}

int hs_conv_grad_plan_run(hs_conv_grad_plan *p, const float *x, const float *weight,
                          const float *dy, float *dx, float *dweight, float *dbias) {
    if (dx) {
        if (!p->bwd_data) {
            hs_conv2d_backward_ref(x, p->n, p->h, p->w, weight, &p->s, dy, dx, NULL, NULL);
        } else {
            if (!port_in(&p->d_dy, dy) || !port_in(&p->d_w, weight) || !port_set_out(&p->d_dx, dx))
                return -1;
            dnnl_exec_arg_t args[4] = {{DNNL_ARG_DIFF_DST, p->d_dy.inner},
                                       {DNNL_ARG_WEIGHTS, p->d_w.inner},
                                       {DNNL_ARG_DIFF_SRC, p->d_dx.inner},
                                       {DNNL_ARG_SCRATCHPAD, p->scratch_data}};
            if (!execute(p->bwd_data, p->scratch_data ? 4 : 3, args) || !port_out(&p->d_dx))
                return -1;
        }
    }
    if (!dweight && !dbias) return 0;
    if (!p->bwd_weights && p->dw_direct) {
        const float *xd = x; /* x in dy's layout */
        if (p->dw_x.reorder) {
            if (!port_in(&p->dw_x, x)) return -1;
            xd = p->dw_x.buf;
        }
        if (p->dst_layout == HS_LAYOUT_NCHW16C || p->dst_layout == HS_LAYOUT_NCHW8C)
            depthwise_backward_weights_blocked(hs_layout_block(p->dst_layout), xd, p->n, p->h,
                                               p->w, &p->s, p->oh, p->ow, dy, p->dw_acc,
                                               p->db_acc, p->dw_work);
        else
            depthwise_backward_weights(xd, p->n, p->h, p->w, &p->s, p->oh, p->ow, dy,
                                       p->dw_acc, p->db_acc);
        if (dweight) accumulate(dweight, p->dw_acc, p->w_count);
        if (dbias) accumulate(dbias, p->db_acc, p->s.out_channels);
        return 0;
    }
    if (!p->bwd_weights) {
        hs_conv2d_backward_ref(x, p->n, p->h, p->w, weight, &p->s, dy, NULL, dweight, dbias);
        return 0;
    }
    /* diff_dst: already reordered by the data pass when both read the same layout */
    port *dyp = p->share_dy ? &p->d_dy : &p->w_dy;
    if (!(p->share_dy && dx) && !port_in(dyp, dy)) return -1;
    if (!port_in(&p->w_x, x)) return -1;
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, p->w_x.inner},
                               {DNNL_ARG_DIFF_DST, dyp->inner},
                               {DNNL_ARG_DIFF_WEIGHTS, p->w_dw.inner},
                               {DNNL_ARG_DIFF_BIAS, p->w_db},
                               {DNNL_ARG_SCRATCHPAD, p->scratch_weights}};
    if (!execute(p->bwd_weights, p->scratch_weights ? 5 : 4, args) || !port_out(&p->w_dw))
        return -1;
    if (dweight) accumulate(dweight, p->dw_acc, p->w_count);
    if (dbias) accumulate(dbias, p->db_acc, p->s.out_channels);
    return 0;
}

int hs_conv_grad_plan_matches(const hs_conv_grad_plan *p, const hs_conv2d_shape *s, int n,
                              int h, int w, hs_layout src_layout, hs_layout dst_layout) {
    return p && p->n == n && p->h == h && p->w == w && p->src_layout == src_layout &&
           p->dst_layout == dst_layout && memcmp(&p->s, s, sizeof *s) == 0;
}

int hs_conv_grad_plan_bf16(const hs_conv_grad_plan *p) { return p->bf16; }

int hs_conv_grad_plan_uses_dnnl(const hs_conv_grad_plan *p) {
    return p->fwd != NULL && p->bwd_data != NULL && (p->bwd_weights != NULL || p->dw_direct);
}

const char *hs_conv_grad_plan_impl(const hs_conv_grad_plan *p) { return p->impl; }

void hs_conv_grad_plan_free(hs_conv_grad_plan *p) {
    if (!p) return;
    conv_grad_destroy_dnnl(p);
    if (p->arena_user) arena_release();
    free(p->dw_work);
    free(p->dw_acc);
    free(p->db_acc);
    free(p->bias_buf);
    free(p);
}

/* ---- BatchNorm, training mode ------------------------------------------------------------ */

struct hs_bn_grad_plan {
    int n, c, hw;
    float eps;
    hs_layout layout;
    char impl[96];
    dnnl_primitive_t fwd, bwd;    /* both or neither */
    dnnl_memory_t src, dst, scale, shift, mean, var, diff_dst, diff_src, diff_scale, diff_shift;
    dnnl_memory_t shift_bwd;      /* oneDNN 2.6's backward asks for a shift it does not use */
    dnnl_memory_t scratch_fwd, scratch_bwd;
    void *scratch_buf;
    float *var_buf, *dgamma_buf, *dbeta_buf, *zero_shift;
    float *dx_scratch;            /* diff_src when the caller passes dx = NULL (made on demand) */
};

static void bn_destroy_dnnl(hs_bn_grad_plan *p) {
    if (p->fwd) dnnl_primitive_destroy(p->fwd);
    if (p->bwd) dnnl_primitive_destroy(p->bwd);
    p->fwd = p->bwd = NULL;
    dnnl_memory_t *mems[] = {&p->src, &p->dst, &p->scale, &p->shift, &p->mean, &p->var,
                             &p->diff_dst, &p->diff_src, &p->diff_scale, &p->diff_shift,
                             &p->shift_bwd, &p->scratch_fwd, &p->scratch_bwd};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++) {
        if (*mems[i]) dnnl_memory_destroy(*mems[i]);
        *mems[i] = NULL;
    }
    free(p->scratch_buf);
    p->scratch_buf = NULL;
}

static int bn_create_dnnl(hs_bn_grad_plan *p) {
    if (!grad_dnnl_ready()) return 0;
    /* n x c x hw as a tensor of height 1 (the same memory in NCHW and the blocked layouts):
     * BatchNorm only cares about the channel axis */
    dnnl_dims_t dims = {p->n, p->c, 1, p->hw};
    dnnl_dims_t stat_dims = {p->c};
    hs_md data_m = {0}, stat_m = {0};
    const unsigned flags = dnnl_use_scale | dnnl_use_shift;
    dnnl_primitive_desc_t fpd = NULL, bpd = NULL;
    dnnl_primitive_attr_t attr = user_scratch_attr();
    int ok = attr && plain_md(&data_m, 4, dims, act_tag(p->layout)) &&
             plain_md(&stat_m, 1, stat_dims, dnnl_x);
    hs_md_ref data_md = hs_md_get(&data_m), stat_md = hs_md_get(&stat_m);
    ok = ok &&
         hs_batch_norm_forward_pd(&fpd, grad_engine, dnnl_forward_training, data_md, p->eps,
                                  flags, attr) == dnnl_success &&
         hs_batch_norm_backward_pd(&bpd, grad_engine, dnnl_backward, data_md, data_md, p->eps,
                                   flags, fpd, attr) == dnnl_success;
    if (ok) {
        size_t sp = scratch_size(fpd) > scratch_size(bpd) ? scratch_size(fpd) : scratch_size(bpd);
        p->scratch_buf = aligned_bytes(sp);
        dnnl_memory_t *data_mems[] = {&p->src, &p->dst, &p->diff_dst, &p->diff_src};
        dnnl_memory_t *stat_mems[] = {&p->scale, &p->shift, &p->mean, &p->var, &p->diff_scale,
                                      &p->diff_shift, &p->shift_bwd};
        ok = p->scratch_buf != NULL;
        for (size_t i = 0; ok && i < sizeof data_mems / sizeof data_mems[0]; i++)
            ok = dnnl_memory_create(data_mems[i], data_md, grad_engine, DNNL_MEMORY_NONE) ==
                 dnnl_success;
        for (size_t i = 0; ok && i < sizeof stat_mems / sizeof stat_mems[0]; i++)
            ok = dnnl_memory_create(stat_mems[i], stat_md, grad_engine, DNNL_MEMORY_NONE) ==
                 dnnl_success;
        ok = ok && dnnl_memory_set_data_handle(p->var, p->var_buf) == dnnl_success &&
             dnnl_memory_set_data_handle(p->diff_scale, p->dgamma_buf) == dnnl_success &&
             dnnl_memory_set_data_handle(p->diff_shift, p->dbeta_buf) == dnnl_success &&
             dnnl_memory_set_data_handle(p->shift_bwd, p->zero_shift) == dnnl_success &&
             scratch_memory(fpd, p->scratch_buf, &p->scratch_fwd) &&
             scratch_memory(bpd, p->scratch_buf, &p->scratch_bwd) &&
             dnnl_primitive_create(&p->fwd, fpd) == dnnl_success &&
         dnnl_primitive_create(&p->bwd, bpd) == dnnl_success;
        if (ok) snprintf(p->impl, sizeof p->impl, "%s / %s", impl_of(fpd), impl_of(bpd));
    }
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    if (bpd) dnnl_primitive_desc_destroy(bpd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    hs_md_release(&data_m);
    hs_md_release(&stat_m);
    if (!ok) bn_destroy_dnnl(p);
    return ok;
}

hs_bn_grad_plan *hs_bn_grad_plan_create(int n, int c, int hw, float eps, hs_layout layout) {
    hs_bn_grad_plan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n;
    p->c = c;
    p->hw = hw;
    p->eps = eps;
    p->layout = layout;
    p->var_buf = aligned_bytes((size_t)c * sizeof(float));
    p->dgamma_buf = aligned_bytes((size_t)c * sizeof(float));
    p->dbeta_buf = aligned_bytes((size_t)c * sizeof(float));
    p->zero_shift = calloc((size_t)(c > 0 ? c : 1), sizeof(float));
    if (!p->var_buf || !p->dgamma_buf || !p->dbeta_buf || !p->zero_shift) {
        hs_bn_grad_plan_free(p);
        return NULL;
    }
    snprintf(p->impl, sizeof p->impl, "reference");
    if (!bn_create_dnnl(p) && layout != HS_LAYOUT_NCHW) { /* no reference kernel for it */
        hs_bn_grad_plan_free(p);
        return NULL;
    }
    return p;
}

int hs_bn_grad_plan_forward(hs_bn_grad_plan *p, const float *x, const float *gamma,
                            const float *beta, float momentum, float *running_mean,
                            float *running_var, float *save_mean, float *save_rstd, float *y) {
    if (!p->fwd) {
        hs_batchnorm_train_forward_ref(x, p->n, p->c, p->hw, gamma, beta, p->eps, momentum,
                                       running_mean, running_var, save_mean, save_rstd, y);
        return 0;
    }
    dnnl_memory_set_data_handle(p->src, (void *)x);
    dnnl_memory_set_data_handle(p->dst, y);
    dnnl_memory_set_data_handle(p->scale, (void *)gamma);
    dnnl_memory_set_data_handle(p->shift, (void *)beta);
    dnnl_memory_set_data_handle(p->mean, save_mean);
    dnnl_exec_arg_t args[7] = {{DNNL_ARG_SRC, p->src},     {DNNL_ARG_DST, p->dst},
                               {DNNL_ARG_SCALE, p->scale}, {DNNL_ARG_SHIFT, p->shift},
                               {DNNL_ARG_MEAN, p->mean},   {DNNL_ARG_VARIANCE, p->var},
                               {DNNL_ARG_SCRATCHPAD, p->scratch_fwd}};
    if (!execute(p->fwd, p->scratch_fwd ? 7 : 6, args)) return -1;
    /* oneDNN gives the biased variance; the contract wants rstd and PyTorch's running update
     * (unbiased variance, m / (m - 1)) */
    const int64_t m = (int64_t)p->n * p->hw;
    for (int ch = 0; ch < p->c; ch++) {
        const double var = p->var_buf[ch];
        save_rstd[ch] = (float)(1.0 / sqrt(var + (double)p->eps));
        if (running_mean && running_var) {
            const double unbiased = m > 1 ? var * (double)m / (double)(m - 1) : var;
            running_mean[ch] = (float)((1.0 - (double)momentum) * running_mean[ch] +
                                       (double)momentum * save_mean[ch]);
            running_var[ch] = (float)((1.0 - (double)momentum) * running_var[ch] +
                                      (double)momentum * unbiased);
        }
    }
    return 0;
}

int hs_bn_grad_plan_backward(hs_bn_grad_plan *p, const float *x, const float *dy,
                             const float *gamma, const float *save_mean,
                             const float *save_rstd, float *dx, float *dgamma, float *dbeta) {
    if (!p->bwd) {
        hs_batchnorm_train_backward_ref(x, dy, p->n, p->c, p->hw, gamma, save_mean, save_rstd,
                                        dx, dgamma, dbeta);
        return 0;
    }
    for (int ch = 0; ch < p->c; ch++) {
        const double r = save_rstd[ch];
        const double var = 1.0 / (r * r) - (double)p->eps;
        p->var_buf[ch] = var > 0.0 ? (float)var : 0.0f;
    }
    float *diff_src = dx;
    if (!diff_src) { /* only the parameter gradients are wanted: oneDNN still writes dx */
        if (!p->dx_scratch)
            p->dx_scratch = aligned_bytes(
                (size_t)hs_layout_size(p->layout, p->n, p->c, 1, p->hw) * sizeof(float));
        if (!p->dx_scratch) return -1;
        diff_src = p->dx_scratch;
    }
    dnnl_memory_set_data_handle(p->src, (void *)x);
    dnnl_memory_set_data_handle(p->diff_dst, (void *)dy);
    dnnl_memory_set_data_handle(p->scale, (void *)gamma);
    dnnl_memory_set_data_handle(p->mean, (void *)save_mean);
    dnnl_memory_set_data_handle(p->diff_src, diff_src);
    dnnl_exec_arg_t args[10] = {{DNNL_ARG_SRC, p->src},
                                {DNNL_ARG_DIFF_DST, p->diff_dst},
                                {DNNL_ARG_SCALE, p->scale},
                                {DNNL_ARG_MEAN, p->mean},
                                {DNNL_ARG_VARIANCE, p->var},
                                {DNNL_ARG_DIFF_SRC, p->diff_src},
                                {DNNL_ARG_DIFF_SCALE, p->diff_scale},
                                {DNNL_ARG_DIFF_SHIFT, p->diff_shift}};
    int nargs = 8;
#if DNNL_VERSION_MAJOR < 3 /* 2.6 asks for the shift; 3 refuses an argument it does not use */
    args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SHIFT, p->shift_bwd};
#endif
    if (p->scratch_bwd) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->scratch_bwd};
    if (!execute(p->bwd, nargs, args)) return -1;
    if (dgamma) accumulate(dgamma, p->dgamma_buf, p->c);
    if (dbeta) accumulate(dbeta, p->dbeta_buf, p->c);
    return 0;
}

int hs_bn_grad_plan_matches(const hs_bn_grad_plan *p, int n, int c, int hw, float eps,
                            hs_layout layout) {
    return p && p->n == n && p->c == c && p->hw == hw && p->eps == eps && p->layout == layout;
}

int hs_bn_grad_plan_uses_dnnl(const hs_bn_grad_plan *p) { return p->fwd != NULL; }

const char *hs_bn_grad_plan_impl(const hs_bn_grad_plan *p) { return p->impl; }

void hs_bn_grad_plan_free(hs_bn_grad_plan *p) {
    if (!p) return;
    bn_destroy_dnnl(p);
    free(p->var_buf);
    free(p->dgamma_buf);
    free(p->dbeta_buf);
    free(p->zero_shift);
    free(p->dx_scratch);
    free(p);
}

/* The frozen BatchNorm and global pooling loops below walk one channel block at a time
 * (block 1: one NCHW plane), the block's lanes innermost: contiguous in every layout. */
static int layout_block(hs_layout layout) {
    return layout == HS_LAYOUT_NCHW16C ? 16 : layout == HS_LAYOUT_NCHW8C ? 8 : 1;
}

void hs_batchnorm_frozen_forward(const float *x, hs_layout layout, int n, int c, int hw,
                                 const float *gamma, const float *beta, const float *mean,
                                 const float *var, float eps, float *y) {
    const int block = layout_block(layout), cblocks = (c + block - 1) / block;
#pragma omp parallel for schedule(static)
    for (int cb = 0; cb < cblocks; cb++) {
        float scale[16] = {0}, shift[16] = {0}; /* padding lanes: 0 */
        for (int l = 0; l < block && cb * block + l < c; l++) {
            const int ch = cb * block + l;
            const double inv_std = 1.0 / sqrt((double)var[ch] + (double)eps);
            scale[l] = (float)((double)gamma[ch] * inv_std);
            shift[l] = (float)((double)beta[ch] - (double)mean[ch] * (double)gamma[ch] * inv_std);
        }
        for (int b = 0; b < n; b++) {
            const int64_t base = ((int64_t)b * cblocks + cb) * hw * block;
            for (int64_t i = 0; i < hw; i++)
#pragma omp simd
                for (int l = 0; l < block; l++)
                    y[base + i * block + l] = x[base + i * block + l] * scale[l] + shift[l];
        }
    }
}

void hs_batchnorm_frozen_backward(const float *x, const float *dy, hs_layout layout, int n,
                                  int c, int hw, const float *gamma, const float *mean,
                                  const float *var, float eps, float *dx, float *dgamma,
                                  float *dbeta) {
    const int block = layout_block(layout), cblocks = (c + block - 1) / block;
#pragma omp parallel for schedule(dynamic)
    for (int cb = 0; cb < cblocks; cb++) {
        float scale[16] = {0}, mu[16] = {0};
        double inv_std[16] = {0}, sum_dy[16] = {0}, sum_dy_xc[16] = {0};
        const int lanes = c - cb * block < block ? c - cb * block : block;
        for (int l = 0; l < lanes; l++) {
            const int ch = cb * block + l;
            inv_std[l] = 1.0 / sqrt((double)var[ch] + (double)eps);
            scale[l] = (float)((double)gamma[ch] * inv_std[l]);
            mu[l] = mean[ch];
        }
        for (int b = 0; b < n; b++) {
            const int64_t base = ((int64_t)b * cblocks + cb) * hw * block;
            float s_dy[16] = {0}, s_dy_xc[16] = {0}; /* float partial sums a plane, double total */
            for (int64_t i = 0; i < hw; i++) {
                const float *d = dy + base + i * block, *xv = x + base + i * block;
#pragma omp simd
                for (int l = 0; l < block; l++) {
                    s_dy[l] += d[l];
                    s_dy_xc[l] += d[l] * (xv[l] - mu[l]);
                }
                if (dx)
#pragma omp simd
                    for (int l = 0; l < block; l++) dx[base + i * block + l] = d[l] * scale[l];
            }
            for (int l = 0; l < block; l++) {
                sum_dy[l] += s_dy[l];
                sum_dy_xc[l] += s_dy_xc[l];
            }
        }
        for (int l = 0; l < lanes; l++) {
            if (dgamma) dgamma[cb * block + l] += (float)(sum_dy_xc[l] * inv_std[l]);
            if (dbeta) dbeta[cb * block + l] += (float)sum_dy[l];
        }
    }
}

/* ---- BatchNorm + ReLU / ReLU6 (ops_grad.h) ------------------------------------------------
 * One channel block per task, its lanes innermost; bodies compiled for AVX-512 / AVX2 and
 * picked at run time like the depthwise loops. */

typedef struct bn_act_args {
    const float *x, *dy, *gamma, *beta;
    int n, c, hw, block, batch_stats;
    float eps, momentum, upper;
    float *running_mean, *running_var, *save_mean, *save_rstd, *y, *dx, *dgamma, *dbeta;
} bn_act_args;

enum { BN_ROW = 256 }; /* values summed in float before the double total */

static inline __attribute__((always_inline)) void bn_act_fwd_block(const int block,
                                                                   const bn_act_args *a, int cb) {
    const int cblocks = (a->c + block - 1) / block, hw = a->hw;
    const int lanes = a->c - cb * block < block ? a->c - cb * block : block;
    const int64_t plane = (int64_t)hw * block, m = (int64_t)a->n * hw;
    float scale[16] = {0}, shift[16] = {0}; /* padding lanes: 0, so y = 0 there */
    double mean[16] = {0}, var[16] = {0};
    if (a->batch_stats) {
        /* sums of x - k, k the block's first value: no cancellation when |mean| >> std */
        float k[16];
        const float *first = a->x + (int64_t)cb * plane;
        for (int l = 0; l < block; l++) k[l] = first[l];
        double s1[16] = {0}, s2[16] = {0};
        for (int b = 0; b < a->n; b++) {
            const float *restrict xp = a->x + ((int64_t)b * cblocks + cb) * plane;
            for (int i0 = 0; i0 < hw; i0 += BN_ROW) {
                const int i1 = i0 + BN_ROW < hw ? i0 + BN_ROW : hw;
                float r1[16] = {0}, r2[16] = {0};
                for (int i = i0; i < i1; i++)
#pragma omp simd
                    for (int l = 0; l < block; l++) {
                        const float d = xp[(int64_t)i * block + l] - k[l];
                        r1[l] += d;
                        r2[l] += d * d;
                    }
                for (int l = 0; l < block; l++) s1[l] += r1[l], s2[l] += r2[l];
            }
        }
        for (int l = 0; l < lanes; l++) {
            const double d = s1[l] / (double)m;
            mean[l] = (double)k[l] + d;
            var[l] = s2[l] / (double)m - d * d;
            if (var[l] < 0) var[l] = 0;
        }
    } else {
        for (int l = 0; l < lanes; l++) {
            mean[l] = a->running_mean[cb * block + l];
            var[l] = a->running_var[cb * block + l];
        }
    }
    for (int l = 0; l < lanes; l++) {
        const int ch = cb * block + l;
        const double rstd = 1.0 / sqrt(var[l] + (double)a->eps);
        a->save_mean[ch] = (float)mean[l];
        a->save_rstd[ch] = (float)rstd;
        scale[l] = (float)((double)a->gamma[ch] * rstd);
        shift[l] = (float)((double)a->beta[ch] - mean[l] * (double)a->gamma[ch] * rstd);
        if (a->batch_stats && a->running_mean && a->running_var) {
            const double unbiased = m > 1 ? var[l] * (double)m / (double)(m - 1) : var[l];
            a->running_mean[ch] = (float)((1.0 - (double)a->momentum) * a->running_mean[ch] +
                                          (double)a->momentum * mean[l]);
            a->running_var[ch] = (float)((1.0 - (double)a->momentum) * a->running_var[ch] +
                                         (double)a->momentum * unbiased);
        }
    }
    const float upper = a->upper;
    for (int b = 0; b < a->n; b++) {
        const int64_t base = ((int64_t)b * cblocks + cb) * plane;
        const float *restrict xp = a->x + base;
        float *restrict yp = a->y + base;
        for (int64_t i = 0; i < hw; i++)
#pragma omp simd
            for (int l = 0; l < block; l++) {
                float z = xp[i * block + l] * scale[l] + shift[l];
                z = z > 0.0f ? z : 0.0f; /* written so that it becomes max and min */
                yp[i * block + l] = z < upper ? z : upper;
            }
    }
}

static inline __attribute__((always_inline)) void bn_act_bwd_block(const int block,
                                                                   const bn_act_args *a, int cb) {
    const int cblocks = (a->c + block - 1) / block, hw = a->hw;
    const int lanes = a->c - cb * block < block ? a->c - cb * block : block;
    const int64_t plane = (int64_t)hw * block, m = (int64_t)a->n * hw;
    float scale[16] = {0}, shift[16] = {0}, mu[16] = {0};
    for (int l = 0; l < lanes; l++) {
        const int ch = cb * block + l;
        scale[l] = (float)((double)a->gamma[ch] * a->save_rstd[ch]);
        shift[l] = (float)((double)a->beta[ch] -
                           (double)a->save_mean[ch] * (double)a->gamma[ch] * a->save_rstd[ch]);
        mu[l] = a->save_mean[ch];
    }
    const float upper = a->upper;
    double sg[16] = {0}, sgx[16] = {0}; /* sums of g and g (x - mean), g = dy where z passes */
    for (int b = 0; b < a->n; b++) {
        const int64_t base = ((int64_t)b * cblocks + cb) * plane;
        const float *restrict xp = a->x + base, *restrict dyp = a->dy + base;
        for (int i0 = 0; i0 < hw; i0 += BN_ROW) {
            const int i1 = i0 + BN_ROW < hw ? i0 + BN_ROW : hw;
            float r1[16] = {0}, r2[16] = {0};
            for (int64_t i = i0; i < i1; i++)
#pragma omp simd
                for (int l = 0; l < block; l++) {
                    const float xv = xp[i * block + l], d = dyp[i * block + l];
                    const float z = xv * scale[l] + shift[l];
                    const float g = ((z > 0.0f) & (z < upper)) ? d : 0.0f; /* a blend */
                    r1[l] += g;
                    r2[l] += g * (xv - mu[l]);
                }
            for (int l = 0; l < block; l++) sg[l] += r1[l], sgx[l] += r2[l];
        }
    }
    for (int l = 0; l < lanes; l++) {
        const int ch = cb * block + l;
        if (a->dgamma) a->dgamma[ch] += (float)(sgx[l] * a->save_rstd[ch]);
        if (a->dbeta) a->dbeta[ch] += (float)sg[l];
    }
    if (!a->dx) return;
    /* batch statistics: dx = scale (g - mean(g) - xhat mean(g xhat)); frozen: scale g */
    float c1[16] = {0}, c2[16] = {0};
    if (a->batch_stats)
        for (int l = 0; l < lanes; l++) {
            const double r = a->save_rstd[cb * block + l];
            c1[l] = (float)(sg[l] / (double)m);
            c2[l] = (float)(sgx[l] * r * r / (double)m);
        }
    for (int b = 0; b < a->n; b++) {
        const int64_t base = ((int64_t)b * cblocks + cb) * plane;
        const float *restrict xp = a->x + base, *restrict dyp = a->dy + base;
        float *restrict dxp = a->dx + base;
        for (int64_t i = 0; i < hw; i++)
#pragma omp simd
            for (int l = 0; l < block; l++) {
                const float xv = xp[i * block + l], d = dyp[i * block + l];
                const float z = xv * scale[l] + shift[l];
                const float g = ((z > 0.0f) & (z < upper)) ? d : 0.0f;
                dxp[i * block + l] = scale[l] * (g - c1[l] - (xv - mu[l]) * c2[l]);
            }
    }
}

static void bn_act_block(const bn_act_args *a, int cb, int backward) {
    if (backward) bn_act_bwd_block(a->block, a, cb);
    else bn_act_fwd_block(a->block, a, cb);
}
__attribute__((target("avx512f"))) static void bn_act_block_16_avx512(const bn_act_args *a,
                                                                      int cb, int backward) {
    if (backward) bn_act_bwd_block(16, a, cb);
    else bn_act_fwd_block(16, a, cb);
}
__attribute__((target("avx2,fma"))) static void bn_act_block_8_avx2(const bn_act_args *a, int cb,
                                                                   int backward) {
    if (backward) bn_act_bwd_block(8, a, cb);
    else bn_act_fwd_block(8, a, cb);
}

static void bn_act_run(const bn_act_args *a, int backward) {
    void (*run)(const bn_act_args *, int, int) = bn_act_block;
    if (a->block == 16 && __builtin_cpu_supports("avx512f")) run = bn_act_block_16_avx512;
    if (a->block == 8 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        run = bn_act_block_8_avx2;
    const int cblocks = (a->c + a->block - 1) / a->block;
#pragma omp parallel for schedule(dynamic)
    for (int cb = 0; cb < cblocks; cb++) run(a, cb, backward);
}

void hs_bn_act_forward(const float *x, hs_layout layout, int n, int c, int hw,
                       const float *gamma, const float *beta, float eps, float momentum,
                       int batch_stats, float *running_mean, float *running_var,
                       float *save_mean, float *save_rstd, float upper, float *y) {
    bn_act_args a = {x, NULL, gamma, beta, n, c, hw, layout_block(layout), batch_stats, eps,
                     momentum, upper, running_mean, running_var, save_mean, save_rstd, y,
                     NULL, NULL, NULL};
    bn_act_run(&a, 0);
}

void hs_bn_act_backward(const float *x, const float *dy, hs_layout layout, int n, int c, int hw,
                        const float *gamma, const float *beta, const float *save_mean,
                        const float *save_rstd, int batch_stats, float upper, float *dx,
                        float *dgamma, float *dbeta) {
    bn_act_args a = {x, dy, gamma, beta, n, c, hw, layout_block(layout), batch_stats, 0, 0,
                     upper, NULL, NULL, (float *)save_mean, (float *)save_rstd, NULL, dx,
                     dgamma, dbeta};
    bn_act_run(&a, 1);
}

void hs_global_avgpool_forward(const float *x, hs_layout layout, int n, int c, int hw,
                               float *y) {
    const int block = layout_block(layout), cblocks = (c + block - 1) / block;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++)
        for (int cb = 0; cb < cblocks; cb++) {
            const float *xp = x + ((int64_t)b * cblocks + cb) * hw * block;
            double sum[16] = {0};
            for (int64_t i = 0; i < hw; i++)
                for (int l = 0; l < block; l++) sum[l] += xp[i * block + l];
            for (int l = 0; l < block && cb * block + l < c; l++)
                y[(int64_t)b * c + cb * block + l] = (float)(sum[l] / hw);
        }
}

void hs_global_avgpool_backward(const float *dy, hs_layout layout, int n, int c, int hw,
                                float *dx) {
    const int block = layout_block(layout), cblocks = (c + block - 1) / block;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++)
        for (int cb = 0; cb < cblocks; cb++) {
            float g[16] = {0};
            for (int l = 0; l < block && cb * block + l < c; l++)
                g[l] = dy[(int64_t)b * c + cb * block + l] / (float)hw;
            float *dxp = dx + ((int64_t)b * cblocks + cb) * hw * block;
            for (int64_t i = 0; i < hw; i++)
#pragma omp simd
                for (int l = 0; l < block; l++) dxp[i * block + l] = g[l];
        }
}

/* ---- pooling ------------------------------------------------------------------------------- */

struct hs_pool_grad_plan {
    hs_pool_kind kind;
    int n, c, h, w, kernel, stride, pad, oh, ow;
    hs_layout layout;
    char impl[96];
    dnnl_primitive_t fwd, bwd;    /* both or neither */
    dnnl_memory_t src, dst, diff_dst, diff_src, ws, scratch_fwd, scratch_bwd;
    void *ws_buf, *scratch_buf;
};

static void pool_destroy_dnnl(hs_pool_grad_plan *p) {
    if (p->fwd) dnnl_primitive_destroy(p->fwd);
    if (p->bwd) dnnl_primitive_destroy(p->bwd);
    p->fwd = p->bwd = NULL;
    dnnl_memory_t *mems[] = {&p->src, &p->dst, &p->diff_dst, &p->diff_src, &p->ws,
                             &p->scratch_fwd, &p->scratch_bwd};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++) {
        if (*mems[i]) dnnl_memory_destroy(*mems[i]);
        *mems[i] = NULL;
    }
    free(p->ws_buf);
    free(p->scratch_buf);
    p->ws_buf = p->scratch_buf = NULL;
}

static int pool_create_dnnl(hs_pool_grad_plan *p) {
    if (!grad_dnnl_ready()) return 0;
    dnnl_dims_t src_dims = {p->n, p->c, p->h, p->w}, dst_dims = {p->n, p->c, p->oh, p->ow};
    dnnl_dims_t strides = {p->stride, p->stride}, kernel = {p->kernel, p->kernel};
    /* the right padding that makes oneDNN's size formula give the floor-mode output */
    dnnl_dims_t pad_l = {p->pad, p->pad};
    dnnl_dims_t pad_r = {(p->oh - 1) * p->stride + p->kernel - p->h - p->pad,
                         (p->ow - 1) * p->stride + p->kernel - p->w - p->pad};
    if (pad_r[0] < 0) pad_r[0] = 0;
    if (pad_r[1] < 0) pad_r[1] = 0;
    dnnl_alg_kind_t alg =
        p->kind == HS_POOL_MAX ? dnnl_pooling_max : dnnl_pooling_avg_include_padding;
    hs_md src_m = {0}, dst_m = {0};
    dnnl_primitive_desc_t fpd = NULL, bpd = NULL;
    dnnl_primitive_attr_t attr = user_scratch_attr();
    int ok = attr && plain_md(&src_m, 4, src_dims, act_tag(p->layout)) &&
             plain_md(&dst_m, 4, dst_dims, act_tag(p->layout));
    hs_md_ref src_md = hs_md_get(&src_m), dst_md = hs_md_get(&dst_m);
    ok = ok &&
         hs_pooling_forward_pd(&fpd, grad_engine, dnnl_forward_training, alg, src_md, dst_md,
                               strides, kernel, pad_l, pad_r, attr) == dnnl_success &&
         hs_pooling_backward_pd(&bpd, grad_engine, alg, src_md, dst_md, strides, kernel, pad_l,
                                pad_r, fpd, attr) == dnnl_success;
    if (ok) {
        hs_md_ref ws_md =
            dnnl_primitive_desc_query_md(fpd, dnnl_query_workspace_md, 0);
        size_t ws_bytes = ws_md ? dnnl_memory_desc_get_size(ws_md) : 0;
        size_t sp = scratch_size(fpd) > scratch_size(bpd) ? scratch_size(fpd) : scratch_size(bpd);
        p->scratch_buf = aligned_bytes(sp);
        ok = p->scratch_buf &&
             dnnl_memory_create(&p->src, src_md, grad_engine, DNNL_MEMORY_NONE) == dnnl_success &&
             dnnl_memory_create(&p->dst, dst_md, grad_engine, DNNL_MEMORY_NONE) == dnnl_success &&
             dnnl_memory_create(&p->diff_src, src_md, grad_engine, DNNL_MEMORY_NONE) ==
                 dnnl_success &&
             dnnl_memory_create(&p->diff_dst, dst_md, grad_engine, DNNL_MEMORY_NONE) ==
                 dnnl_success &&
             scratch_memory(fpd, p->scratch_buf, &p->scratch_fwd) &&
             scratch_memory(bpd, p->scratch_buf, &p->scratch_bwd);
        if (ok && ws_bytes) { /* max pooling: the argmax of every window, kept for backward */
            p->ws_buf = aligned_bytes(ws_bytes);
            ok = p->ws_buf &&
                 dnnl_memory_create(&p->ws, ws_md, grad_engine, p->ws_buf) == dnnl_success;
            if (ok) memset(p->ws_buf, 0, ws_bytes);
        }
        ok = ok && dnnl_primitive_create(&p->fwd, fpd) == dnnl_success &&
         dnnl_primitive_create(&p->bwd, bpd) == dnnl_success;
        if (ok) snprintf(p->impl, sizeof p->impl, "%s / %s", impl_of(fpd), impl_of(bpd));
    }
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    if (bpd) dnnl_primitive_desc_destroy(bpd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    hs_md_release(&src_m);
    hs_md_release(&dst_m);
    if (!ok) pool_destroy_dnnl(p);
    return ok;
}

hs_pool_grad_plan *hs_pool_grad_plan_create(hs_pool_kind kind, int n, int c, int h, int w,
                                            int kernel, int stride, int pad, hs_layout layout) {
    hs_pool_grad_plan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->kind = kind;
    p->layout = layout;
    p->n = n;
    p->c = c;
    p->h = h;
    p->w = w;
    p->kernel = kernel;
    p->stride = stride;
    p->pad = pad;
    p->oh = hs_conv_out_size(h, kernel, stride, pad, pad, 1);
    p->ow = hs_conv_out_size(w, kernel, stride, pad, pad, 1);
    snprintf(p->impl, sizeof p->impl, "reference");
    if (!pool_create_dnnl(p) && layout != HS_LAYOUT_NCHW) { /* no reference kernel for it */
        hs_pool_grad_plan_free(p);
        return NULL;
    }
    return p;
}

int hs_pool_grad_plan_forward(hs_pool_grad_plan *p, const float *x, float *y) {
    if (!p->fwd) {
        if (p->kind == HS_POOL_MAX)
            hs_maxpool2d_forward_ref(x, p->n, p->c, p->h, p->w, p->kernel, p->stride, p->pad, y);
        else
            hs_avgpool2d_forward_ref(x, p->n, p->c, p->h, p->w, p->kernel, p->stride, p->pad, y);
        return 0;
    }
    dnnl_memory_set_data_handle(p->src, (void *)x);
    dnnl_memory_set_data_handle(p->dst, y);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->src}, {DNNL_ARG_DST, p->dst}};
    int nargs = 2;
    if (p->ws) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, p->ws};
    if (p->scratch_fwd) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->scratch_fwd};
    return execute(p->fwd, nargs, args) ? 0 : -1;
}

int hs_pool_grad_plan_backward(hs_pool_grad_plan *p, const float *x, const float *dy,
                               float *dx) {
    if (!dx) return 0;
    if (!p->bwd) {
        if (p->kind == HS_POOL_MAX)
            hs_maxpool2d_backward_ref(x, p->n, p->c, p->h, p->w, p->kernel, p->stride, p->pad,
                                      dy, dx);
        else
            hs_avgpool2d_backward_ref(p->n, p->c, p->h, p->w, p->kernel, p->stride, p->pad, dy,
                                      dx);
        return 0;
    }
    dnnl_memory_set_data_handle(p->diff_dst, (void *)dy);
    dnnl_memory_set_data_handle(p->diff_src, dx);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_DIFF_DST, p->diff_dst}, {DNNL_ARG_DIFF_SRC, p->diff_src}};
    int nargs = 2;
    if (p->ws) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_WORKSPACE, p->ws};
    if (p->scratch_bwd) args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->scratch_bwd};
    return execute(p->bwd, nargs, args) ? 0 : -1;
}

int hs_pool_grad_plan_uses_dnnl(const hs_pool_grad_plan *p) { return p->fwd != NULL; }

const char *hs_pool_grad_plan_impl(const hs_pool_grad_plan *p) { return p->impl; }

void hs_pool_grad_plan_free(hs_pool_grad_plan *p) {
    if (!p) return;
    pool_destroy_dnnl(p);
    free(p);
}

void hs_adaptive_avgpool2d_backward(int n, int c, int h, int w, int out_h, int out_w,
                                    const float *dy, float *dx) {
    if (!dx) return;
    const int64_t planes = (int64_t)n * c;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++)
        hs_adaptive_avgpool2d_backward_ref(1, 1, h, w, out_h, out_w, dy + p * out_h * out_w,
                                           dx + p * h * w);
}

/* ---- ReLU and ReLU6 ---------------------------------------------------------------------------- */

/* ReLU6's oneDNN algorithm: clip_v2 passes the gradient strictly inside (alpha, beta), as
 * PyTorch's hardtanh_backward; clip and bounded_relu also pass it at x == 6 (checked by
 * tests/test_ops_grad_fast.c on inputs exactly 0 and 6). */
#define RELU6_ALG dnnl_eltwise_clip_v2

struct hs_act_grad_plan {
    hs_act_kind kind;
    int64_t count;
    char impl[64];
    dnnl_primitive_t bwd;
    dnnl_memory_t src, diff_dst, diff_src;
};

hs_act_grad_plan *hs_act_grad_plan_create(hs_act_kind kind, int64_t count) {
    hs_act_grad_plan *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->kind = kind;
    p->count = count;
    snprintf(p->impl, sizeof p->impl, "reference");
    if (!grad_dnnl_ready() || count <= 0) return p;
    dnnl_dims_t dims = {count};
    hs_md m = {0};
    dnnl_alg_kind_t alg = kind == HS_ACT_RELU ? dnnl_eltwise_relu : RELU6_ALG;
    float alpha = 0.0f, beta = kind == HS_ACT_RELU ? 0.0f : 6.0f;
    dnnl_primitive_desc_t fpd = NULL, bpd = NULL;
    int ok = plain_md(&m, 1, dims, dnnl_x);
    hs_md_ref md = hs_md_get(&m);
    ok = ok &&
         hs_eltwise_forward_pd(&fpd, grad_engine, dnnl_forward_training, alg, md, alpha, beta,
                               NULL) == dnnl_success &&
         hs_eltwise_backward_pd(&bpd, grad_engine, alg, md, md, alpha, beta, fpd, NULL) ==
             dnnl_success &&
         dnnl_memory_create(&p->src, md, grad_engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&p->diff_dst, md, grad_engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&p->diff_src, md, grad_engine, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_primitive_create(&p->bwd, bpd) == dnnl_success;
    if (ok) snprintf(p->impl, sizeof p->impl, "%s", impl_of(bpd));
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    if (bpd) dnnl_primitive_desc_destroy(bpd);
    hs_md_release(&m);
    if (!ok) {
        if (p->bwd) dnnl_primitive_destroy(p->bwd);
        dnnl_memory_t mems[] = {p->src, p->diff_dst, p->diff_src};
        for (size_t i = 0; i < 3; i++)
            if (mems[i]) dnnl_memory_destroy(mems[i]);
        p->bwd = NULL;
        p->src = p->diff_dst = p->diff_src = NULL;
    }
    return p;
}

int hs_act_grad_plan_run(hs_act_grad_plan *p, const float *x, const float *dy, float *dx) {
    if (!dx) return 0;
    if (!p->bwd) {
        if (p->kind == HS_ACT_RELU) hs_relu_backward_ref(x, dy, p->count, dx);
        else hs_relu6_backward_ref(x, dy, p->count, dx);
        return 0;
    }
    dnnl_memory_set_data_handle(p->src, (void *)x);
    dnnl_memory_set_data_handle(p->diff_dst, (void *)dy);
    dnnl_memory_set_data_handle(p->diff_src, dx);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, p->src},
                               {DNNL_ARG_DIFF_DST, p->diff_dst},
                               {DNNL_ARG_DIFF_SRC, p->diff_src}};
    return execute(p->bwd, 3, args) ? 0 : -1;
}

int hs_act_grad_plan_uses_dnnl(const hs_act_grad_plan *p) { return p->bwd != NULL; }

const char *hs_act_grad_plan_impl(const hs_act_grad_plan *p) { return p->impl; }

void hs_act_grad_plan_free(hs_act_grad_plan *p) {
    if (!p) return;
    if (p->bwd) dnnl_primitive_destroy(p->bwd);
    dnnl_memory_t mems[] = {p->src, p->diff_dst, p->diff_src};
    for (size_t i = 0; i < 3; i++)
        if (mems[i]) dnnl_memory_destroy(mems[i]);
    free(p);
}
