/* Strong scaling of a data-parallel run (dist.h) on this machine, for a user to predict it
 * on more: the same work on 1 rank or on N, each figure the whole job's.
 *
 *   bench_mpi [--threads T] [--features N] [--feature-size S] [--batch B] [--size S]
 *             [--steps K] [--bytes-only]
 *   mpirun -np 2 --bind-to none bench_mpi --threads 1 ...      (bench/run_mpi.sh runs both)
 *
 * - features: EfficientNet-Lite0's frozen backbone (inference plan, random weights, random
 *   input: the pass `train` caches) over N images at S px, each rank a contiguous share in
 *   batches of 32, as src/feature_shards.c shards them: images/s of the job.
 * - fine-tune step: Lite0 with a 10-class head, every layer trained, BatchNorm on batch
 *   statistics, dropout and drop connect on, AdamW, a global batch of B at S px split over
 *   the ranks: forward, loss, backward with the gradient all-reduce overlapped
 *   (hs_grad_sync), optimizer step; then the same without the MPI_Testall calls between
 *   layers (does the library progress a started all-reduce by itself?); then with the
 *   blocking all-reduce (HS_DIST_OVERLAP=0's path). Per step: ms, images/s, ms waiting for the all-reduce
 *   after backward (overlapped) and the blocking all-reduce's ms with its share of the step.
 * - bytes: for every backbone, its parameters with a 10-class head (all trained) x 4 bytes,
 *   and what a ring all-reduce sends from each rank per step, 2 (N - 1) / N of that.
 *
 * Rank 0 prints; the steps are timed between barriers, the first one untimed (plans made). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "context.h"
#include "dist.h"
#include "dist_grads.h"
#include "net.h"
#include "net_train.h"
#include "ops_ref.h"
#include "optim.h"

static double wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct options {
    int threads, features, feature_size, batch, size, steps, bytes_only;
} options;

static int root(const hs_context *ctx) { return hs_dist_is_root(ctx); }

static void fill(float *x, size_t n, unsigned salt) {
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(((i + salt) * 2654435761u) % 1000) / 500.0f - 1.0f;
}

static int fail(const char *what, const hs_error *err) {
    fprintf(stderr, "bench_mpi: %s: %s\n", what, err->message);
    return 1;
}

static hs_status make_lite0(const hs_context *ctx, hs_net **net, hs_error *err) {
    hs_status st = hs_net_create("efficientnet_lite0", 1, net, err);
    if (!st) st = hs_net_replace_head(*net, 10, HS_HEAD_LAST_LAYER, 2, err);
    if (!st) (*net)->ctx = (hs_context *)ctx;
    return st;
}

/* The feature pass: this rank's share of o->features images, batches of 32. */
static int bench_features(hs_context *ctx, const options *o) {
    hs_error err = {0};
    hs_net *net = NULL;
    if (make_lite0(ctx, &net, &err)) return fail("Lite0", &err);
    int S = o->feature_size, batch = 32, c = 0, h = 0, w = 0;
    if (hs_net_shape(net, 0, net->head_begin, 3, S, S, &c, &h, &w, &err))
        return fail("shape", &err);
    int64_t lo = 0, hi = 0;
    hs_dist_share(o->features, hs_dist_rank(ctx), hs_dist_world(ctx), &lo, &hi);
    size_t in = (size_t)batch * 3 * S * S, out = (size_t)batch * c * h * w;
    float *x = malloc(in * sizeof(float)), *y = malloc(out * sizeof(float));
    if (!x || !y) return 1;
    fill(x, in, 7);
    /* One untimed batch: the plan is made and the pages touched. */
    if (hs_net_run(net, 0, net->head_begin, x, batch, 3, S, S, y, &err)) return fail("run", &err);
    hs_dist_barrier(ctx, &err);
    double t0 = wall();
    int rc = 0;
    for (int64_t i = lo; i < hi && !rc; i += batch) {
        int n = hi - i < batch ? (int)(hi - i) : batch;
        rc = hs_net_run(net, 0, net->head_begin, x, n, 3, S, S, y, &err) != HS_OK;
    }
    hs_dist_barrier(ctx, &err);
    double t = wall() - t0;
    if (rc) return fail("run", &err);
    if (root(ctx)) {
        printf("features   Lite0 %d px, %d images: %.2f s, %.1f images/s\n", S, o->features,
               t, o->features / t);
        printf("RESULT features world=%d threads=%d images_per_s=%.2f\n", hs_dist_world(ctx),
               o->threads, o->features / t);
    }
    free(x);
    free(y);
    hs_net_free(net);
    return 0;
}

typedef struct step_timing {
    double step, wait; /* seconds per step: the whole step, waiting for the gradient sums */
    double early;      /* buckets started during backward, per step */
    int buckets;
} step_timing;

static int run_steps(hs_context *ctx, hs_net *net, hs_tape *t, hs_optimizer *opt,
                     hs_grad_sync *sync, const options *o, int overlap, int progress,
                     step_timing *out) {
    hs_error err = {0};
    int64_t lo = 0, hi = 0;
    hs_dist_share(o->batch, hs_dist_rank(ctx), hs_dist_world(ctx), &lo, &hi);
    int n = (int)(hi - lo);
    size_t in = (size_t)n * 3 * o->size * o->size;
    float *x = malloc(in * sizeof(float));
    int *labels = malloc((size_t)n * sizeof(int)), *samples = malloc((size_t)n * sizeof(int));
    if (!x || !labels || !samples) return 1;
    fill(x, in, (unsigned)lo);
    for (int i = 0; i < n; i++) {
        labels[i] = (int)((lo + i) * 7 % 10);
        samples[i] = (int)(lo + i);
    }
    sync->reducer.overlap = overlap;
    sync->reducer.progress = progress;
    hs_rng key;
    memset(out, 0, sizeof *out);
    int rc = 0;
    for (int s = 0; s <= o->steps && !rc; s++) {
        hs_rng_seed_stream(&key, 1, 0xbe7c, (uint64_t)s);
        hs_dist_barrier(ctx, &err);
        double t0 = wall();
        hs_net_zero_grad(net);
        hs_grad_sync_begin(sync);
        rc |= hs_tape_forward_samples(t, x, n, 1, &key, samples, &err) != HS_OK;
        /* The mean over the global batch: this rank's share of it. */
        float *dl = hs_tape_output_grad(t);
        hs_softmax_cross_entropy_ref(hs_tape_output(t), n, 10, labels, dl);
        for (size_t i = 0; i < (size_t)n * 10; i++) dl[i] *= (float)n / (float)o->batch;
        rc |= hs_tape_backward(t, &err) != HS_OK;
        rc |= hs_grad_sync_finish(sync, &err) != HS_OK;
        hs_optimizer_step(opt);
        double t1 = wall();
        if (s > 0) { /* step 0: plans made, pages touched */
            out->step += t1 - t0;
            out->wait += sync->reducer.wait_seconds;
            out->early += sync->reducer.early;
        }
    }
    if (rc) return fail("step", &err);
    out->step /= o->steps;
    out->wait /= o->steps;
    out->early /= o->steps;
    out->buckets = sync->reducer.buckets;
    /* The slowest rank sets the pace: every figure is rank 0's after the barrier, which
     * waited for it. */
    free(x);
    free(labels);
    free(samples);
    return 0;
}

static int bench_step(hs_context *ctx, const options *o) {
    hs_error err = {0};
    hs_net *net = NULL;
    if (make_lite0(ctx, &net, &err)) return fail("Lite0", &err);
    hs_net_set_bn_mode(net, 0, net->count, HS_BN_TRAIN);
    int64_t lo = 0, hi = 0;
    hs_dist_share(o->batch, hs_dist_rank(ctx), hs_dist_world(ctx), &lo, &hi);
    hs_tape t;
    hs_optimizer opt;
    hs_grad_sync sync;
    if (hs_tape_init(&t, net, 0, net->count, (int)(hi - lo), 3, o->size, o->size, 0, &err) ||
        hs_optimizer_init(&opt, HS_OPTIMIZER_ADAMW, 1e-4f, 0.0f, 0.05f, &err))
        return fail("tape", &err);
    hs_param_ref *refs = NULL;
    int count = 0;
    if (hs_net_params(net, &refs, &count, &err)) return fail("params", &err);
    int64_t params = 0;
    for (int i = 0; i < count; i++) {
        if (refs[i].buffer) continue;
        params += hs_param_numel(&refs[i]);
        if (hs_optimizer_add_scaled(&opt, refs[i].key, *refs[i].data, *refs[i].grad,
                                    hs_param_numel(&refs[i]), 1.0f,
                                    hs_param_uses_weight_decay(refs[i].key, refs[i].ndim), &err))
            return fail("optimizer", &err);
    }
    free(refs);
    if (hs_grad_sync_init(&sync, ctx, &t, &opt, &err)) return fail("all-reduce", &err);
    step_timing ov, np, bl;
    if (run_steps(ctx, net, &t, &opt, &sync, o, 1, 1, &ov) ||
        run_steps(ctx, net, &t, &opt, &sync, o, 1, 0, &np) ||
        run_steps(ctx, net, &t, &opt, &sync, o, 0, 1, &bl))
        return 1;
    if (root(ctx)) {
        printf("fine-tune  Lite0 %d px, global batch %d, %lld parameters (%.1f MB of "
               "gradients), %d buckets of %zu floats\n", o->size, o->batch, (long long)params,
               params * 4e-6, ov.buckets, (size_t)HS_DIST_BUCKET_FLOATS);
        printf("  overlapped: %.1f ms/step, %.1f images/s; waiting for the sums after "
               "backward %.1f ms (%.1f %% of the step), %.1f buckets started during backward\n",
               1e3 * ov.step, o->batch / ov.step, 1e3 * ov.wait, 100 * ov.wait / ov.step,
               ov.early);
        printf("  overlapped, no MPI_Testall between layers: %.1f ms/step, waiting %.1f ms "
               "(%.1f %%)\n", 1e3 * np.step, 1e3 * np.wait, 100 * np.wait / np.step);
        printf("  blocking:   %.1f ms/step, %.1f images/s; the all-reduce %.1f ms (%.1f %% of "
               "the step)\n", 1e3 * bl.step, o->batch / bl.step, 1e3 * bl.wait,
               100 * bl.wait / bl.step);
        /* Machine-readable, for run_mpi.sh's table. */
        printf("RESULT step world=%d threads=%d images_per_s=%.2f step_ms=%.1f wait_ms=%.2f "
               "untested_wait_ms=%.2f untested_step_ms=%.1f blocking_images_per_s=%.2f "
               "allreduce_ms=%.2f allreduce_share=%.1f\n",
               hs_dist_world(ctx), o->threads, o->batch / ov.step, 1e3 * ov.step,
               1e3 * ov.wait, 1e3 * np.wait, 1e3 * np.step, o->batch / bl.step, 1e3 * bl.wait,
               100 * bl.wait / bl.step);
    }
    hs_grad_sync_free(&sync);
    hs_optimizer_free(&opt);
    hs_tape_free(&t);
    hs_net_release_train_plans(net);
    hs_net_free(net);
    return 0;
}

/* Bytes a step moves, per backbone (rank 0 alone, nothing timed). */
static int bench_bytes(void) {
    printf("bytes per step (parameters with a 10-class head, all trained, float32; a ring "
           "all-reduce sends 2 (N - 1) / N of them from each rank):\n");
    printf("| backbone | parameters | gradient MB | sent per rank, N = 2 | N = 4 | N = 8 | "
           "N -> inf |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    for (int b = 0; b < hs_backbone_count(); b++) {
        const hs_backbone_info *info = hs_backbone_at(b);
        hs_net *net = NULL;
        hs_error err = {0};
        if (hs_net_create(info->name, 1, &net, &err) ||
            hs_net_replace_head(net, 10, HS_HEAD_LAST_LAYER, 2, &err)) {
            fprintf(stderr, "bench_mpi: %s: %s\n", info->name, err.message);
            hs_net_free(net);
            continue;
        }
        double mb = (double)net->param_floats * 4e-6;
        printf("| %s | %lld | %.1f | %.1f MB | %.1f MB | %.1f MB | %.1f MB |\n", info->name,
               (long long)net->param_floats, mb, mb, mb * 1.5, mb * 1.75, mb * 2);
        hs_net_free(net);
    }
    return 0;
}

static int parse(int argc, char **argv, options *o) {
    *o = (options){2, 512, 224, 32, 128, 5, 0};
    for (int i = 1; i < argc; i++) {
        int *v = NULL;
        if (!strcmp(argv[i], "--threads")) v = &o->threads;
        else if (!strcmp(argv[i], "--features")) v = &o->features;
        else if (!strcmp(argv[i], "--feature-size")) v = &o->feature_size;
        else if (!strcmp(argv[i], "--batch")) v = &o->batch;
        else if (!strcmp(argv[i], "--size")) v = &o->size;
        else if (!strcmp(argv[i], "--steps")) v = &o->steps;
        else if (!strcmp(argv[i], "--bytes-only")) {
            o->bytes_only = 1;
            continue;
        }
        if (!v || i + 1 >= argc || (*v = atoi(argv[++i])) < 1) {
            fprintf(stderr, "usage: bench_mpi [--threads T] [--features N] [--feature-size S] "
                            "[--batch B] [--size S] [--steps K] [--bytes-only]\n");
            return 2;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    hs_context ctx;
    hs_context_init(&ctx);
    hs_error err = {0};
    if (hs_dist_init(&ctx, &argc, &argv, &err)) return fail("MPI", &err);
    options o;
    int rc = parse(argc, argv, &o);
    if (!rc && !o.bytes_only && hs_dist_world(&ctx) > o.batch) rc = 2;
    if (!rc) {
        omp_set_num_threads(o.threads);
        ctx.threads = o.threads;
        if (root(&ctx))
            printf("bench_mpi: %d rank%s x %d thread%s\n", hs_dist_world(&ctx),
                   hs_dist_world(&ctx) > 1 ? "s" : "", o.threads, o.threads > 1 ? "s" : "");
        if (o.bytes_only) rc = root(&ctx) ? bench_bytes() : 0;
        else rc = bench_features(&ctx, &o) || bench_step(&ctx, &o);
    }
    hs_context_release(&ctx);
    hs_dist_finalize(&ctx);
    return rc;
}
