/* headstart bench: forward throughput of the frozen backbone (see bench_forward.h). */
#include "bench_forward.h"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnnl_compat.h"
#include "error.h"
#include "gemm.h"
#include "layers/layer.h"
#include "net.h"
#include "ops.h"

void hs_bench_options_init(hs_bench_options *o) {
    memset(o, 0, sizeof *o);
    o->batch = 32;
    o->img_size = 224;
    o->warmup = 1;
    o->min_runs = 3;
    o->min_seconds = 1.0;
}

const char *hs_dnnl_isa_name(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
#if DNNL_VERSION_MAJOR < 3
    case dnnl_cpu_isa_avx512_mic: case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic";
#else
    case dnnl_cpu_isa_avx2_vnni_2: return "avx2_vnni_2";
    case dnnl_cpu_isa_avx512_core_fp16: return "avx512_core_fp16";
    case dnnl_cpu_isa_avx512_core_amx_fp16: return "avx512_core_amx_fp16";
#endif
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "unknown";
    }
}

static const char *layout_name(hs_layout layout) {
    switch (layout) {
    case HS_LAYOUT_NHWC: return "nhwc";
    case HS_LAYOUT_NCHW16C: return "nChw16c";
    case HS_LAYOUT_NCHW8C: return "nChw8c";
    default: return "nchw";
    }
}

/* What a layer is called in the kernel table; NULL for layers without a product. */
static const char *layer_label(const hs_layer *l, char *buf, size_t size) {
    if (l->kind == HS_LAYER_LINEAR) return "linear";
    if (l->kind != HS_LAYER_CONV) return NULL;
    const hs_conv2d_shape *s = &l->conv;
    if (s->groups > 1 && s->groups == s->in_channels && s->groups == s->out_channels)
        snprintf(buf, size, "conv %dx%d depthwise", s->kernel_h, s->kernel_w);
    else
        snprintf(buf, size, "conv %dx%d", s->kernel_h, s->kernel_w);
    return buf;
}

/* Calls visit(ctx, layer, GFLOP per image) for each conv and linear layer of the backbone. */
static hs_status each_product(const hs_net *net, int img_size,
                              void (*visit)(void *, const hs_layer *, double), void *ctx,
                              hs_error *err) {
    int span = net->feature_end;
    hs_act_shape *shapes = malloc(((size_t)span + 1) * sizeof *shapes);
    if (!shapes) return hs_fail(err, HS_ERR_NOMEM, "out of memory for the network's shapes");
    hs_status st = hs_net_range_shapes(net, 0, span, (hs_act_shape){3, img_size, img_size},
                                       shapes, err);
    for (int i = 0; i < span && !st; i++) {
        const hs_layer *l = &net->layers[i];
        hs_act_shape o = shapes[i + 1];
        double macs = 0;
        if (l->kind == HS_LAYER_CONV) {
            const hs_conv2d_shape *s = &l->conv;
            macs = (double)o.c * o.h * o.w * (s->in_channels / s->groups) * s->kernel_h *
                   s->kernel_w;
        } else if (l->kind == HS_LAYER_LINEAR) {
            macs = (double)l->in_features * l->out_features;
        }
        if (macs > 0) visit(ctx, l, 2.0 * macs / 1e9);
    }
    free(shapes);
    return st;
}

static void add_gflop(void *ctx, const hs_layer *l, double gflop) { *(double *)ctx += gflop; }

hs_status hs_bench_count_gflop(const hs_net *net, int img_size, double *gflop, hs_error *err) {
    *gflop = 0;
    return each_product(net, img_size, add_gflop, gflop, err);
}

typedef struct kernel_table {
    hs_bench_result *r;
    int batch;
} kernel_table;

/* Adds one layer to the table of (layer label, kernel) rows. */
static void add_kernel(void *ctx, const hs_layer *l, double gflop) {
    kernel_table *t = ctx;
    hs_bench_result *r = t->r;
    char label_buf[32], kernel[64];
    const char *label = layer_label(l, label_buf, sizeof label_buf);
    if (!label) return;
    if (l->kind == HS_LAYER_LINEAR && l->plan) /* bf16: a oneDNN 1x1 plan (net_run.c) */
        snprintf(kernel, sizeof kernel, "%s", hs_conv_plan_impl(l->plan));
    else if (l->kind == HS_LAYER_LINEAR)
        snprintf(kernel, sizeof kernel, "%s %s", r->gemm, t->batch == 1 ? "gemv" : "sgemm");
    else if (l->plan) /* oneDNN's kernel and the activation layout it writes */
        snprintf(kernel, sizeof kernel, "%s %s", hs_conv_plan_impl(l->plan),
                 layout_name(hs_conv_plan_dst_layout(l->plan)));
    else /* no plan after a run: oneDNN could not make one and the direct path ran */
        snprintf(kernel, sizeof kernel, "im2col+sgemm");
    /* the im2col fallback runs depthwise convolutions as direct loops (ops_fast.c) */
    if (strstr(label, "depthwise") && strcmp(kernel, "im2col+sgemm") == 0)
        snprintf(kernel, sizeof kernel, "direct loops");
    for (int k = 0; k < r->kernel_count; k++) {
        hs_bench_kernel *e = &r->kernels[k];
        if (strcmp(e->layer, label) == 0 && strcmp(e->kernel, kernel) == 0) {
            e->layers++;
            e->gflop += gflop;
            return;
        }
    }
    if (r->kernel_count == HS_BENCH_MAX_KERNELS) return; /* the table is a summary */
    hs_bench_kernel *e = &r->kernels[r->kernel_count++];
    snprintf(e->layer, sizeof e->layer, "%s", label);
    snprintf(e->kernel, sizeof e->kernel, "%s", kernel);
    e->layers = 1;
    e->gflop = gflop;
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

hs_status hs_bench_forward(hs_net *net, const hs_bench_options *o, hs_bench_result *r,
                           hs_error *err) {
    memset(r, 0, sizeof *r);
    if (o->batch < 1 || o->batch > 4096)
        return hs_fail(err, HS_ERR_ARGUMENT, "batch size must be 1..4096, not %d", o->batch);
    if (o->img_size < 32 || o->img_size > 2048)
        return hs_fail(err, HS_ERR_ARGUMENT, "image size must be 32..2048 px, not %d",
                       o->img_size);
    if (o->threads < 0 || o->threads > 1024)
        return hs_fail(err, HS_ERR_ARGUMENT, "threads must be 0..1024, not %d", o->threads);
    snprintf(r->isa, sizeof r->isa, "%s", hs_dnnl_isa_name());
    hs_dnnl_version(r->dnnl_version, sizeof r->dnnl_version);
    snprintf(r->gemm, sizeof r->gemm, "%s", hs_gemm_backend_name(HS_GEMM_DEFAULT));
    if (o->bf16 && hs_dnnl_bf16_support() == 0)
        return hs_fail(err, HS_ERR_ARGUMENT,
                       "bf16: oneDNN runs at %s on this CPU and has no bfloat16 convolutions "
                       "there (they need AVX-512: native with AVX512_BF16 or AMX); float32 "
                       "would run instead, so use --precision f32", r->isa);
    hs_status st = hs_bench_count_gflop(net, o->img_size, &r->gflop_per_image, err);
    if (st) return st;
    if (o->threads > 0) omp_set_num_threads(o->threads);
    r->threads = omp_get_max_threads();

    int dim = hs_net_feature_dim(net);
    size_t in_count = (size_t)o->batch * 3 * o->img_size * o->img_size;
    int runs_cap = o->min_runs > 1000 ? o->min_runs : 1000;
    float *x = malloc(in_count * sizeof(float));
    float *features = malloc((size_t)o->batch * dim * sizeof(float));
    double *times = malloc((size_t)runs_cap * sizeof(double));
    if (!x || !features || !times) {
        st = hs_fail(err, HS_ERR_NOMEM, "out of memory for a batch of %d images of %d px",
                     o->batch, o->img_size);
        goto done;
    }
    /* random pixels in [-1, 1), as normalised images are */
    for (size_t i = 0; i < in_count; i++)
        x[i] = (float)((i * 2654435761u) % 2000u) / 1000.0f - 1.0f;
    int saved_bf16 = net->bf16;
    net->bf16 = o->bf16;
    for (int i = 0; i < o->warmup && !st; i++)
        st = hs_net_features(net, x, o->batch, o->img_size, o->img_size, features, err);
    double total = 0;
    while (!st && r->runs < runs_cap && (r->runs < o->min_runs || total < o->min_seconds)) {
        double t0 = omp_get_wtime();
        st = hs_net_features(net, x, o->batch, o->img_size, o->img_size, features, err);
        double t = omp_get_wtime() - t0;
        times[r->runs++] = t;
        total += t;
    }
    net->bf16 = saved_bf16;
    if (st) goto done;
    if (r->runs == 0) { /* min_runs 0 and min_seconds 0: one run is still a measurement */
        st = hs_fail(err, HS_ERR_ARGUMENT, "no timed runs asked for");
        goto done;
    }
    qsort(times, (size_t)r->runs, sizeof *times, compare_double);
    r->best_s = times[0];
    r->median_s = r->runs % 2 ? times[r->runs / 2]
                              : 0.5 * (times[r->runs / 2 - 1] + times[r->runs / 2]);
    r->images_per_s = o->batch / r->median_s;
    r->gflops = r->gflop_per_image * r->images_per_s;
    kernel_table table = {r, o->batch};
    st = each_product(net, o->img_size, add_kernel, &table, err);
done:
    free(x);
    free(features);
    free(times);
    return st;
}
