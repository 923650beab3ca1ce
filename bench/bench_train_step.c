/* Training throughput of whole EfficientNet-Lite0: forward (BatchNorm in training mode,
 * drop connect and dropout on) + softmax cross-entropy + backward + AdamW update of every
 * parameter, fast backend vs reference backend.
 *
 *   bench_train_step [batch=32] [size=128] [threads=2] [steps=3] [reference_batch=2]
 *                    [precision=f32|bf16]
 *
 * precision bf16: the fast backend's mixed-precision step (hs_tape.bf16: convolutions in
 * bfloat16, float32 master weights; refused where oneDNN has no bf16 convolutions, as the
 * CLI's --precision bf16). The reference is float32 either way.
 *
 * The reference runs one step on reference_batch images and is extrapolated linearly to the
 * batch (its kernels are per-image loops). Prints images/s, ms per step split into forward
 * / backward / update, process CPU seconds per step (the machine may be shared: wall time
 * alone can mislead), peak RSS, and for the fast backend where a step's time goes per layer
 * kind (forward and backward ms, from the tape's per-layer timers) and which activations the
 * tape keeps blocked (with HS_BENCH_LAYERS set in the environment, every layer's too, with
 * the convolution's shape). Figures are the median step of `steps` (step 0, the warm-up that
 * makes the plans and touches the memory, is not counted). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "layers/layer.h"
#include "net.h"
#include "net_train.h"
#include "ops_grad.h"
#include "ops_ref.h"
#include "optim.h"

static double wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

typedef struct timing {
    double forward, backward, update, cpu; /* seconds per step */
} timing;

static int by_total(const void *a, const void *b) {
    const timing *x = a, *y = b;
    double tx = x->forward + x->backward + x->update, ty = y->forward + y->backward + y->update;
    return tx < ty ? -1 : tx > ty;
}

/* Per layer kind: ms of forward and backward in the median step, and how many layers. */
static void report_kinds(const hs_net *net, const hs_tape *t, const double *seconds,
                         int steps) {
    double fwd[HS_LAYER_KIND_COUNT] = {0}, bwd[HS_LAYER_KIND_COUNT] = {0}, all = 0;
    int count[HS_LAYER_KIND_COUNT] = {0}, span = t->last - t->first, blocked = 0, fused = 0;
    for (int k = 0; k < span; k++) {
        hs_layer_kind kind = net->layers[t->first + k].kind;
        fwd[kind] += seconds[k] / steps;
        bwd[kind] += seconds[span + k] / steps;
        all += (seconds[k] + seconds[span + k]) / steps;
        count[kind]++;
        blocked += t->layouts[k + 1] != HS_LAYOUT_NCHW;
        fused += t->fused[k];
    }
    printf("  per layer kind (ms a step, mean of the timed steps; %d of %d activations blocked, "
           "%s; %d BatchNorm + activation pairs fused, timed as BatchNorm):\n", blocked, span,
           hs_layout_block(hs_grad_plans_layout()) == 16 ? "nChw16c"
                                       : hs_layout_block(hs_grad_plans_layout()) == 8 ? "nChw8c"
                                                                                      : "NCHW",
           fused);
    if (getenv("HS_BENCH_LAYERS")) /* every layer, for choosing per-layer rules */
        for (int k = 0; k < span; k++) {
            const hs_layer *l = &net->layers[t->first + k];
            printf("    layer %3d %-14s %4dx%-4d k%d s%d g%-4d %4d px: forward %6.2f, backward "
                   "%6.2f ms\n", t->first + k, hs_layer_ops_of(l->kind)->kind_name,
                   l->kind == HS_LAYER_CONV ? l->conv.in_channels : 0,
                   l->kind == HS_LAYER_CONV ? l->conv.out_channels : 0,
                   l->kind == HS_LAYER_CONV ? l->conv.kernel_h : 0,
                   l->kind == HS_LAYER_CONV ? l->conv.stride_h : 0,
                   l->kind == HS_LAYER_CONV ? l->conv.groups : 0, t->shapes[k].h,
                   1e3 * seconds[k] / steps, 1e3 * seconds[span + k] / steps);
        }
    for (int kind = 0; kind < HS_LAYER_KIND_COUNT; kind++)
        if (count[kind])
            printf("    %-20s %3d layers: forward %7.1f, backward %7.1f  (%4.1f %%)\n",
                   hs_layer_ops_of(kind)->kind_name, count[kind], 1e3 * fwd[kind],
                   1e3 * bwd[kind], 100 * (fwd[kind] + bwd[kind]) / all);
}

static int run(hs_net *net, hs_backend backend, int batch, int size, int steps, int bf16,
               timing *out) {
    hs_context ctx;
    hs_context_init(&ctx);
    ctx.backend = backend;
    net->ctx = &ctx;
    hs_error err = {0};
    hs_tape t;
    hs_optimizer opt;
    if (hs_tape_init(&t, net, 0, net->count, batch, 3, size, size, 0, &err) ||
        hs_optimizer_init(&opt, HS_OPTIMIZER_ADAMW, 1e-4f, 0.0f, 0.05f, &err)) {
        fprintf(stderr, "bench_train_step: %s\n", err.message);
        return 1;
    }
    hs_param_ref *refs = NULL;
    int count = 0;
    if (hs_net_params(net, &refs, &count, &err)) {
        fprintf(stderr, "bench_train_step: %s\n", err.message);
        return 1;
    }
    for (int i = 0; i < count; i++)
        if (!refs[i].buffer &&
            hs_optimizer_add_scaled(&opt, refs[i].key, *refs[i].data, *refs[i].grad,
                                    hs_param_numel(&refs[i]), 1.0f,
                                    hs_param_uses_weight_decay(refs[i].key, refs[i].ndim),
                                    &err)) {
            fprintf(stderr, "bench_train_step: %s\n", err.message);
            return 1;
        }
    free(refs);
    t.bf16 = bf16 && backend == HS_BACKEND_CPU;
    size_t in_count = (size_t)batch * 3 * size * size;
    float *x = malloc(in_count * sizeof(float));
    int *labels = malloc((size_t)batch * sizeof(int));
    for (size_t i = 0; i < in_count; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1;
    for (int i = 0; i < batch; i++) labels[i] = (i * 131 + 7) % 1000;
    hs_rng rng;
    hs_rng_seed(&rng, 1);
    memset(out, 0, sizeof *out);
    int rc = 0, span = t.last - t.first;
    /* step 0 is the warm-up (plans made, pages touched) and is not timed when steps > 1 */
    int first_timed = steps > 1 ? 1 : 0, timed = steps > 1 ? steps : 1;
    timing *each = calloc((size_t)timed, sizeof *each);
    double *seconds = calloc(2 * (size_t)span, sizeof *seconds);
    for (int s = 0; s <= (steps > 1 ? steps : 0); s++) {
        t.seconds = s >= first_timed && backend == HS_BACKEND_CPU ? seconds : NULL;
        double c0 = cpu(), t0 = wall();
        rc |= hs_tape_forward(&t, x, batch, 1, &rng, &err) != HS_OK;
        hs_softmax_cross_entropy_ref(hs_tape_output(&t), batch, 1000, labels,
                                     hs_tape_output_grad(&t));
        double t1 = wall();
        hs_net_zero_grad(net);
        rc |= hs_tape_backward(&t, &err) != HS_OK;
        double t2 = wall();
        hs_optimizer_step(&opt);
        double t3 = wall(), c1 = cpu();
        if (rc) {
            fprintf(stderr, "bench_train_step: %s\n", err.message);
            break;
        }
        if (s >= first_timed) each[s - first_timed] = (timing){t1 - t0, t2 - t1, t3 - t2, c1 - c0};
    }
    /* the median step: other helpers share this machine's cores, and a step they slow
     * down should not move the figure */
    qsort(each, (size_t)timed, sizeof *each, by_total);
    *out = each[timed / 2];
    if (!rc && backend == HS_BACKEND_CPU) report_kinds(net, &t, seconds, timed);
    free(each);
    free(seconds);
    free(x);
    free(labels);
    hs_optimizer_free(&opt);
    hs_tape_free(&t);
    hs_net_release_train_plans(net);
    hs_context_release(&ctx);
    net->ctx = NULL;
    return rc;
}

static void report(const char *what, const timing *tm, int measured_batch, int batch) {
    double k = (double)batch / measured_batch;
    double step = (tm->forward + tm->backward) * k + tm->update;
    printf("%-10s batch %d%s: %.2f images/s, %.0f ms/step (forward %.0f, backward %.0f, "
           "update %.0f), CPU %.2f s/step\n",
           what, batch, measured_batch != batch ? " (extrapolated)" : "", batch / step,
           1e3 * step, 1e3 * tm->forward * k, 1e3 * tm->backward * k, 1e3 * tm->update,
           (tm->cpu - tm->update) * k + tm->update);
}

int main(int argc, char **argv) {
    int batch = argc > 1 ? atoi(argv[1]) : 32;
    int size = argc > 2 ? atoi(argv[2]) : 128;
    int threads = argc > 3 ? atoi(argv[3]) : 2;
    int steps = argc > 4 ? atoi(argv[4]) : 3;
    int ref_batch = argc > 5 ? atoi(argv[5]) : 2;
    const char *precision = argc > 6 ? argv[6] : "f32";
    int bf16 = strcmp(precision, "bf16") == 0;
    if (batch < 1 || size < 32 || threads < 1 || steps < 0 || ref_batch < 0 ||
        (!bf16 && strcmp(precision, "f32") != 0)) {
        fprintf(stderr, "usage: bench_train_step [batch] [size] [threads] [steps] "
                        "[reference_batch] [f32|bf16]\n");
        return 2;
    }
    if (bf16 && hs_dnnl_bf16_support() == 0) {
        fprintf(stderr, "bench_train_step: bf16 needs a CPU with AVX-512 (oneDNN has no "
                        "bfloat16 convolutions below it)\n");
        return 2;
    }
    omp_set_num_threads(threads);
    hs_net net = {0};
    hs_error err = {0};
    net.info = hs_backbone_find("efficientnet_lite0");
    net.head_begin = -1;
    if (hs_build_efficientnet_lite(&net, 0, &err) ||
        hs_net_init_params(&net, 0, net.count, 1, &err)) {
        fprintf(stderr, "bench_train_step: %s\n", err.message);
        return 1;
    }
    printf("Lite0 training step, %d x 3 x %d x %d, %d threads, all layers trainable, "
           "BatchNorm train, AdamW, %s\n", batch, size, size, threads,
           bf16 ? "bf16 convolutions (float32 master weights)" : "float32");
    timing fast, ref;
    if (steps > 0) {
        if (run(&net, HS_BACKEND_CPU, batch, size, steps, bf16, &fast)) return 1;
        report(bf16 ? "fast bf16" : "fast", &fast, batch, batch);
        printf("peak RSS after fast: %ld MiB\n", peak_rss_mib());
    }
    if (ref_batch > 0) {
        if (run(&net, HS_BACKEND_REFERENCE, ref_batch, size, 1, 0, &ref)) return 1;
        report("reference", &ref, ref_batch, batch);
        if (steps > 0)
            printf("fast / reference: %.1fx\n",
                   (ref.forward + ref.backward) * batch / ref_batch /
                       (fast.forward + fast.backward));
    }
    printf("peak RSS: %ld MiB\n", peak_rss_mib());
    hs_net_release(&net);
    return 0;
}
