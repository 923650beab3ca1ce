/* Stage 2 of --strategy finetune (finetune.h). */
#include "finetune.h"

#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch_loader.h"
#include "layers/layer.h"
#include "checkpoint.h"
#include "dist.h"
#include "dist_grads.h"
#include "error.h"
#include "head_train.h"
#include "image_store.h"
#include "loss.h"
#include "lr_schedule.h"
#include "net_train.h"
#include "optim.h"
#include "safetensors.h"

#define MAX_BLOCKS 256

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Any kind that lists tensors (conv, linear, the norms, layer scale). */
static int has_params(const hs_layer *l) { return hs_layer_ops_of(l->kind)->params != NULL; }

int hs_backbone_blocks(const hs_net *net, int *starts, int max) {
    int count = 0, last = 0;
    for (int i = 0; i < net->head_begin && i < net->count; i++) {
        const hs_layer *l = &net->layers[i];
        if (!has_params(l)) continue;
        if (count > 0 && l->block == last) continue;
        /* A block starts at its first parametrised layer; the parameterless layers before
         * it (activations, pools, residual adds) end the previous one. */
        if (count < max) starts[count] = i;
        count++;
        last = l->block;
    }
    return count < max ? count : max;
}

/* --unfreeze auto: the start of the block holding the first parametrised layer whose output
 * is at most 1/16 of the input's height (the shapes at the weights' input size). */
static hs_status coarse_boundary(const hs_net *net, const int *starts, int blocks,
                                 int *boundary, hs_error *err) {
    int size = net->info && net->info->preprocess.input_size > 0
                   ? net->info->preprocess.input_size
                   : 224;
    hs_act_shape *shapes = malloc((size_t)(net->head_begin + 1) * sizeof *shapes);
    if (!shapes) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    hs_act_shape in = {3, size, size};
    hs_status st = hs_net_range_shapes(net, 0, net->head_begin, in, shapes, err);
    *boundary = 0; /* a backbone that never gets that coarse trains whole */
    for (int i = 0; !st && i < net->head_begin; i++) {
        if (!has_params(&net->layers[i]) || shapes[i + 1].h * 16 > size) continue;
        for (int k = 0; k < blocks; k++)
            if (starts[k] <= i) *boundary = starts[k];
        break;
    }
    free(shapes);
    return st;
}

hs_status hs_unfreeze_boundary(const hs_net *net, const char *unfreeze, int *boundary,
                               hs_error *err) {
    int starts[MAX_BLOCKS];
    int blocks = hs_backbone_blocks(net, starts, MAX_BLOCKS);
    if (!unfreeze || !strcmp(unfreeze, "all")) {
        *boundary = 0;
        return HS_OK;
    }
    if (!strcmp(unfreeze, "auto")) return coarse_boundary(net, starts, blocks, boundary, err);
    char *end = NULL;
    long n = strtol(unfreeze, &end, 10);
    if (end == unfreeze || *end || n < 0 || n > 100000)
        return hs_fail(err, HS_ERR_ARGUMENT, "--unfreeze must be auto, all or a block count "
                       ">= 0, not '%s'", unfreeze);
    *boundary = n >= blocks ? 0 : n == 0 ? net->head_begin : starts[blocks - n];
    return HS_OK;
}

int hs_layer_depth(const hs_net *net, int layer) {
    int starts[MAX_BLOCKS];
    int blocks = hs_backbone_blocks(net, starts, MAX_BLOCKS);
    if (layer >= net->head_begin) return blocks;
    int depth = 0;
    for (int k = 0; k < blocks; k++)
        if (starts[k] <= layer) depth = k;
    return depth;
}

hs_status hs_save_network(const char *path, const hs_net *net, const char *backbone,
                          hs_error *err) {
    hs_state_dict sd;
    hs_sd_init(&sd);
    hs_status st = hs_net_state_dict(net, &sd, err);
    /* PyTorch's BatchNorm has a num_batches_tracked buffer: strict loading wants it. */
    for (int i = 0; !st && i < net->count; i++) {
        const hs_layer *l = &net->layers[i];
        if (l->kind != HS_LAYER_BATCHNORM) continue;
        char key[2 * HS_LAYER_NAME_SIZE + 24];
        snprintf(key, sizeof key, "%s.num_batches_tracked", l->name);
        float tracked = (float)l->bn_batches_tracked;
        st = hs_sd_add_copy(&sd, key, 0, NULL, &tracked, err);
    }
    char classes[16];
    snprintf(classes, sizeof classes, "%d", net->num_classes);
    hs_kv meta[] = {{"format", "pt"}, {"headstart", "finetuned-network"},
                    {"backbone", backbone}, {"num_classes", classes}};
    if (!st) st = hs_safetensors_save(path, &sd, meta, 4, err);
    hs_sd_free(&sd);
    return st;
}

/* ---- The stage ---------------------------------------------------------------------------- */

typedef struct finetune {
    hs_finetune_job *job;
    const hs_train_config *c;
    hs_net *net;
    int boundary, classes, size;
    int prefix_c, prefix_h, prefix_w; /* the tape's input: the frozen prefix's output */
    hs_image_store train_store, val_store;
    hs_batch_loader *train_loader, *val_loader;
    hs_loader_options train_opt, val_opt;
    hs_tape tape;
    hs_optimizer opt;
    hs_lr_schedule schedule;
    int64_t total_steps;
    float base_lr;       /* hs_finetune_base_lr for this run: the schedule's 1.0 */
    int batches_per_epoch;
    float *prefix_out;                /* batch x prefix output */
    float *logits, *dlogits;
    int *train_order, *val_order;
    int train_count, val_count;
    /* This rank's slice of every global batch: [slice_first, slice_first + slice_size) of
     * its batch_size (the whole batch for one process), and its part of the epoch's order. */
    const hs_context *ctx;
    int slice_first, slice_size;
    int *local_order;
    hs_grad_sync sync;     /* the gradient sum over the ranks, started during backward */
    double allreduce_wait; /* this epoch's seconds waiting for the gradient sums */
    long allreduce_steps, allreduce_early; /* steps, and buckets started during backward */
    hs_finetune_parts parts; /* this epoch's (or the timed steps') seconds by part */
} finetune;

static void note(const finetune *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const finetune *f, const char *fmt, ...) {
    const hs_train_callbacks *cb = f->job->cb;
    if (!cb || !cb->note) return;
    char text[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    cb->note(cb->ctx, text);
}

static int stopped(const finetune *f) {
    const hs_train_callbacks *cb = f->job->cb;
    return cb && cb->stop && *cb->stop;
}

static void stage(const finetune *f, const char *name, int epoch, int step) {
    const hs_train_callbacks *cb = f->job->cb;
    if (cb && cb->stage) cb->stage(cb->ctx, name, epoch, step);
}

static void progress(const finetune *f, const char *phase, long done, long total, double t) {
    const hs_train_callbacks *cb = f->job->cb;
    if (cb && cb->progress) cb->progress(cb->ctx, phase, done, total, t);
}

/* The optimizer over every trainable tensor of layers [boundary, count): lr scale by depth,
 * no weight decay for norms and biases. */
static hs_status build_optimizer(finetune *f, float lr, hs_error *err) {
    const hs_train_config *c = f->c;
    hs_optimizer_kind kind = !strcmp(c->optimizer, "sgd") ? HS_OPTIMIZER_SGD : HS_OPTIMIZER_ADAMW;
    hs_status st = hs_optimizer_init(&f->opt, kind, lr, c->momentum, c->weight_decay, err);
    if (st) return st;
    hs_param_ref *refs = NULL;
    int count = 0;
    if ((st = hs_net_params(f->net, &refs, &count, err))) return st;
    int starts[MAX_BLOCKS];
    int depths = hs_backbone_blocks(f->net, starts, MAX_BLOCKS);
    for (int i = 0; !st && i < count; i++) {
        const hs_param_ref *r = &refs[i];
        if (r->buffer || r->layer < f->boundary) continue;
        float scale = hs_layer_decay_scale(c->layer_decay, hs_layer_depth(f->net, r->layer),
                                           depths);
        st = hs_optimizer_add_scaled(&f->opt, r->key, *r->data, *r->grad, hs_param_numel(r),
                                     scale, hs_param_uses_weight_decay(r->key, r->ndim), err);
    }
    free(refs);
    return st;
}

/* One side's images decoded into memory (short side capped at max_short_side, 0: native),
 * the unreadable ones noted, or refused under --strict. */
static hs_status open_store(finetune *f, const hs_dataset *set, const char *phase,
                            int max_short_side, hs_image_store *store, hs_error *err) {
    hs_image_store_options so = {0};
    so.memory_budget = HS_FINETUNE_STORE_BUDGET;
    so.max_short_side = max_short_side;
    so.progress = f->job->cb ? f->job->cb->progress : NULL;
    so.progress_ctx = f->job->cb ? f->job->cb->ctx : NULL;
    so.phase = phase;
    so.stop = f->job->cb ? f->job->cb->stop : NULL;
    hs_status st = hs_image_store_open(set, &so, store, err);
    if (st) return st;
    for (int i = 0; i < store->failed_count; i++) note(f, "skipped %s", store->failed[i]);
    if (f->c->strict && store->failed_count)
        return hs_fail(err, HS_ERR_IMAGE, "--strict: %s", store->failed[0]);
    return HS_OK;
}

/* The training side: its image store (decoded once, short side capped at 2 S), the loader of
 * augmented batches (this rank's slice of each global batch) and the first epoch's order. */
static hs_status open_train(finetune *f, hs_error *err) {
    const hs_train_config *c = f->c;
    const hs_backbone_info *info = f->net->info;
    int threads = c->threads > 0 ? c->threads : omp_get_max_threads();
    hs_status st = open_store(f, f->job->train, "decoding train images", 2 * f->size,
                              &f->train_store, err);
    if (st) return st;

    hs_loader_options *o = &f->train_opt;
    hs_loader_defaults(o);
    o->image_size = f->size;
    int64_t lo = 0, hi = 0;
    hs_dist_share(c->batch_size, hs_dist_rank(f->ctx), hs_dist_world(f->ctx), &lo, &hi);
    f->slice_first = (int)lo;
    f->slice_size = (int)(hi - lo); /* >= 1: train.c refuses fewer images than ranks */
    o->batch_size = f->slice_size;
    const hs_preprocess *pp = f->job->preprocess ? f->job->preprocess : &info->preprocess;
    memcpy(o->mean, pp->mean, sizeof o->mean);
    memcpy(o->std, pp->std, sizeof o->std);
    o->augment = 1;
    o->crop.scale[0] = c->crop_scale;
    o->mixup_alpha = c->mixup;
    o->label_smoothing = c->label_smoothing;
    o->seed = c->seed;
    o->threads = threads;
    if ((st = hs_batch_loader_create(&f->train_store, &f->train_opt, &f->train_loader, err)))
        return st;
    f->train_order = malloc((size_t)(f->train_store.count ? f->train_store.count : 1) *
                            sizeof(int));
    f->local_order = malloc((size_t)(f->train_store.count ? f->train_store.count : 1) *
                            sizeof(int));
    if (!f->train_order || !f->local_order) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    f->train_count = hs_loader_epoch_order(&f->train_store, c->seed, 1, f->train_order);
    if (f->train_count == 0)
        return hs_fail(err, HS_ERR_IMAGE, "no readable image in the train set");
    f->batches_per_epoch = (f->train_count + c->batch_size - 1) / c->batch_size;
    return HS_OK;
}

/* The validation side: its images at native size, batches of --batch-size as the probe
 * prepares them (no augmentation), every usable image in order. */
static hs_status open_val(finetune *f, hs_error *err) {
    const hs_train_config *c = f->c;
    hs_status st = open_store(f, f->job->val, "decoding val images", 0, &f->val_store, err);
    if (st) return st;
    f->val_opt = f->train_opt;
    f->val_opt.batch_size = c->batch_size;
    f->val_opt.augment = 0;
    f->val_opt.mixup_alpha = 0;
    f->val_opt.label_smoothing = 0;
    if ((st = hs_batch_loader_create(&f->val_store, &f->val_opt, &f->val_loader, err)))
        return st;
    f->val_order = malloc((size_t)(f->val_store.count ? f->val_store.count : 1) * sizeof(int));
    if (!f->val_order) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    f->val_count = 0;
    for (int i = 0; i < f->val_store.count; i++)
        if (hs_image_store_usable(&f->val_store, i)) f->val_order[f->val_count++] = i;
    if (f->val_count == 0) return hs_fail(err, HS_ERR_IMAGE, "no readable image in the val set");
    return HS_OK;
}

static hs_status open_stage(finetune *f, hs_error *err) {
    const hs_train_config *c = f->c;
    hs_net *net = f->net;
    f->classes = net->num_classes;
    hs_net_freeze_below(net, f->boundary);
    hs_net_set_bn_mode(net, 0, f->boundary, HS_BN_FROZEN);
    hs_net_set_bn_mode(net, f->boundary, net->count,
                       !strcmp(c->bn, "train") ? HS_BN_TRAIN : HS_BN_FROZEN);
    hs_status st = hs_net_shape(net, 0, f->boundary, 3, f->size, f->size, &f->prefix_c,
                                &f->prefix_h, &f->prefix_w, err);
    if (st) return st;
    int B = c->batch_size;
    if ((st = hs_tape_init(&f->tape, net, f->boundary, net->count, B, f->prefix_c,
                           f->prefix_h, f->prefix_w, 0, err)))
        return st;
    size_t prefix_floats = (size_t)f->prefix_c * f->prefix_h * f->prefix_w;
    if (f->boundary > 0 && !(f->prefix_out = malloc((size_t)B * prefix_floats * sizeof(float))))
        return hs_fail(err, HS_ERR_NOMEM, "out of memory for a batch");
    f->logits = malloc((size_t)B * f->classes * sizeof(float));
    f->dlogits = malloc((size_t)B * f->classes * sizeof(float));
    if (!f->logits || !f->dlogits) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    f->base_lr = hs_finetune_base_lr(c, f->job->train->count);
    if ((st = build_optimizer(f, f->base_lr, err)) ||
        (st = hs_grad_sync_init(&f->sync, f->ctx, &f->tape, &f->opt, err)))
        return st;
    f->schedule = hs_lr_schedule_constant();
    hs_lr_shape_parse(c->schedule, &f->schedule.shape, err);
    f->schedule.warmup_steps = (int64_t)c->warmup_epochs * f->batches_per_epoch;
    f->schedule.start_factor = 0.01;
    f->schedule.floor = 0.0;
    f->total_steps = (int64_t)c->epochs * f->batches_per_epoch;
    if (f->schedule.warmup_steps >= f->total_steps) f->schedule.warmup_steps = f->total_steps - 1;
    return hs_lr_schedule_check(&f->schedule, f->total_steps, err);
}

static int argmax(const float *row, int n) {
    int best = 0;
    for (int k = 1; k < n; k++)
        if (row[k] > row[best]) best = k;
    return best;
}

/* Forward, loss and backward of this rank's n images of a global batch whose (weighted)
 * count is `denominator`, the gradient scaled to its share of the global mean. */
static hs_status local_pass(finetune *f, const hs_batch *b, int global_n, double denominator,
                            hs_rng *rng, double *loss_sum, long *correct, hs_error *err) {
    hs_net *net = f->net;
    const float *input = b->images;
    hs_status st;
    double t0 = now_seconds();
    if (f->boundary > 0) {
        /* The frozen prefix in eval mode, through the plan (its weights never change). */
        if ((st = hs_net_run(net, 0, f->boundary, b->images, b->n, 3, f->size, f->size,
                             f->prefix_out, err)))
            return st;
        input = f->prefix_out;
    }
    /* Each image's dropout and drop connect masks come from (seed, epoch, the image), as in
     * one process, whichever rank holds it. */
    if ((st = hs_tape_forward_samples(&f->tape, input, b->n, 1, rng, b->samples, err)))
        return st;
    const float *logits = hs_tape_output(&f->tape);
    float *dlogits = hs_tape_output_grad(&f->tape);
    const float *w = f->job->class_weights;
    float loss;
    if (w) {
        /* Weighted by class: this rank's part of the global batch's weighted mean, over its
         * weight sum (loss.h). */
        loss = hs_weighted_soft_cross_entropy(logits, b->targets, b->n, f->classes, w,
                                              denominator, dlogits);
    } else {
        loss = hs_soft_cross_entropy(logits, b->targets, b->n, f->classes, dlogits);
    }
    if (!isfinite(loss))
        return hs_fail(err, HS_ERR_DIVERGED, "the training loss is %g; lower --finetune-lr",
                       loss);
    for (int i = 0; i < b->n; i++)
        *correct += argmax(logits + (size_t)i * f->classes, f->classes) == b->labels[i];
    /* Each batch's (weighted) mean times its size; the ranks' parts of the weighted mean add
     * up to it. */
    *loss_sum += (double)loss * (w ? global_n : b->n);
    if (!w && b->n != denominator) {
        float share = (float)b->n / (float)denominator;
        for (size_t i = 0; i < (size_t)b->n * f->classes; i++) dlogits[i] *= share;
    }
    double t1 = now_seconds();
    f->parts.forward += t1 - t0;
    st = hs_tape_backward(&f->tape, err);
    f->parts.backward += now_seconds() - t1;
    return st;
}

/* One optimizer step on a global batch, of which this rank holds b (NULL: none of it, or
 * its part was dropped). Every rank takes the same step. */
static hs_status train_step(finetune *f, const hs_batch *b, hs_rng *rng, double *loss_sum,
                            long *correct, hs_error *err) {
    const float *w = f->job->class_weights;
    /* The global batch's image count and, with class weights, its weight sum (each image by
     * its own label: mixup's pairs leave that sum unchanged, loss.h). */
    double global[2] = {b ? b->n : 0, b ? hs_class_weight_sum(b->labels, b->n, w) : 0};
    double t0 = now_seconds();
    hs_status st = hs_dist_sum_doubles(f->ctx, global, w ? 2 : 1, err);
    if (st || global[0] < 1) return st; /* every part dropped: no step, as one process */
    hs_net_zero_grad(f->net);
    hs_grad_sync_begin(&f->sync);
    double t1 = now_seconds();
    if (b && b->n > 0)
        st = local_pass(f, b, (int)global[0], w ? global[1] : (double)(int)global[0], rng,
                        loss_sum, correct, err);
    double t2 = now_seconds();
    /* Every rank posts every bucket, failed or not (the collectives must match); then a
     * failure anywhere (a loss that is not finite) stops every rank before the update. */
    hs_error sum_err = {0};
    hs_status summed = hs_grad_sync_finish(&f->sync, &sum_err);
    f->allreduce_wait += f->sync.reducer.wait_seconds;
    f->allreduce_steps++;
    f->allreduce_early += f->sync.reducer.early;
    if (!st && summed) {
        st = summed;
        *err = sum_err;
    }
    if ((st = hs_dist_agree(f->ctx, st, err))) return st;
    f->opt.lr = (float)(f->base_lr *
                        hs_lr_factor(&f->schedule, f->opt.steps, f->total_steps));
    hs_optimizer_step(&f->opt);
    f->parts.update += (t1 - t0) + (now_seconds() - t2);
    f->parts.steps++;
    f->parts.images += b ? b->n : 0;
    return HS_OK;
}

/* This rank's part of the epoch's order: its slice of every global batch, each at most
 * slice_size long (the last batch's slices are what is left of it, rank by rank), so that
 * the loader's batch k (of slice_size) is exactly its slice of global batch k. Returns the
 * count. */
static int local_order(const finetune *f, const int *order, int count, int *out) {
    int B = f->c->batch_size, n = 0;
    for (int start = 0; start < count; start += B) {
        int m = count - start < B ? count - start : B;
        int a = f->slice_first < m ? f->slice_first : m;
        int b = f->slice_first + f->slice_size < m ? f->slice_first + f->slice_size : m;
        for (int i = a; i < b; i++) out[n++] = order[start + i];
    }
    return n;
}

/* Whether this rank holds any image of the global batch at `start`. */
static int holds_slice(const finetune *f, int start, int count) {
    int m = count - start < f->c->batch_size ? count - start : f->c->batch_size;
    return f->slice_first < m;
}

/* Sums a rank's loss, correct and seen counts and confusion increments (classes x classes,
 * or NULL) over the ranks, as doubles (exact for counts below 2^53). */
static hs_status sum_counts(finetune *f, double *loss_sum, long *correct, long *seen,
                            int *confusion, hs_error *err) {
    if (hs_dist_world(f->ctx) <= 1) return HS_OK;
    size_t cells = confusion ? (size_t)f->classes * f->classes : 0;
    double *v = malloc((3 + cells) * sizeof(double));
    hs_status st = v ? HS_OK : hs_fail(err, HS_ERR_NOMEM, "out of memory");
    if ((st = hs_dist_agree(f->ctx, st, err))) return st;
    v[0] = *loss_sum;
    v[1] = (double)*correct;
    v[2] = (double)*seen;
    for (size_t i = 0; i < cells; i++) v[3 + i] = confusion[i];
    if (!(st = hs_dist_sum_doubles(f->ctx, v, 3 + cells, err))) {
        *loss_sum = v[0];
        *correct = (long)v[1];
        *seen = (long)v[2];
        for (size_t i = 0; i < cells; i++) confusion[i] = (int)v[3 + i];
    }
    free(v);
    return st;
}

/* --bn train: each rank's running statistics moved with its own batches; their mean over
 * the ranks becomes everyone's, so that validation and the checkpoint see one model. */
static hs_status average_running_stats(finetune *f, hs_error *err) {
    int world = hs_dist_world(f->ctx);
    if (world <= 1 || strcmp(f->c->bn, "train") != 0) return HS_OK;
    hs_param_ref *refs = NULL;
    int count = 0;
    hs_status st = hs_net_params(f->net, &refs, &count, err);
    if ((st = hs_dist_agree(f->ctx, st, err))) return st;
    for (int i = 0; !st && i < count; i++) {
        const hs_param_ref *r = &refs[i];
        if (!r->buffer || r->layer < f->boundary) continue;
        int64_t n = hs_param_numel(r);
        if (!(st = hs_dist_sum_floats(f->ctx, *r->data, (size_t)n, err)))
            for (int64_t k = 0; k < n; k++) (*r->data)[k] /= (float)world;
    }
    free(refs);
    return st;
}

static hs_status train_epoch(finetune *f, int epoch, hs_epoch_metrics *m, hs_error *err) {
    const hs_train_config *c = f->c;
    f->train_count = hs_loader_epoch_order(&f->train_store, c->seed, epoch, f->train_order);
    int mine = local_order(f, f->train_order, f->train_count, f->local_order);
    hs_status st = hs_batch_loader_start(f->train_loader, epoch, f->local_order, mine, 0, err);
    if ((st = hs_dist_agree(f->ctx, st, err))) return st;
    hs_rng rng;
    hs_rng_seed_stream(&rng, c->seed, 0xf17e, (uint64_t)epoch);
    double loss_sum = 0, t0 = now_seconds(), c0 = cpu_seconds();
    long correct = 0, seen = 0;
    f->allreduce_wait = 0;
    f->allreduce_steps = f->allreduce_early = 0;
    memset(&f->parts, 0, sizeof f->parts);
    /* One step per global batch, on every rank, whether or not it holds a part of it. */
    for (int start = 0, step = 1; start < f->train_count; start += c->batch_size, step++) {
        if (stopped(f)) st = hs_fail(err, HS_ERR_INTERRUPTED, "interrupted in epoch %d", epoch);
        hs_batch *b = NULL;
        hs_error batch_err = {0};
        double w0 = now_seconds();
        if (!st && holds_slice(f, start, f->train_count) &&
            hs_batch_loader_next(f->train_loader, &b, &batch_err)) {
            if (c->strict) st = hs_fail(err, batch_err.code, "%s", batch_err.message);
            else note(f, "skipped a batch: %s", batch_err.message);
            b = NULL;
        }
        f->parts.wait += now_seconds() - w0;
        if ((st = hs_dist_agree(f->ctx, st, err))) {
            if (b) hs_batch_loader_release(f->train_loader, b);
            return st;
        }
        stage(f, "train step", epoch, step);
        st = train_step(f, b, &rng, &loss_sum, &correct, err);
        seen += b ? b->n : 0;
        if (b) hs_batch_loader_release(f->train_loader, b);
        if (st) {
            if (st == HS_ERR_DIVERGED) hs_fail_context(err, st, "epoch %d, step %d", epoch, step);
            return st;
        }
        char phase[48];
        snprintf(phase, sizeof phase, "fine-tune epoch %d", epoch);
        progress(f, phase, seen, mine, now_seconds() - t0);
    }
    if ((st = sum_counts(f, &loss_sum, &correct, &seen, NULL, err))) return st;
    if ((st = average_running_stats(f, err))) return st;
    double seconds = now_seconds() - t0;
    const hs_dist_reducer *r = &f->sync.reducer;
    if (r->buckets > 0 && f->allreduce_steps > 0)
        note(f, "epoch %d: gradient all-reduce in %d buckets a step, %.1f started during "
             "backward (%s); %.2f s of the epoch's %.2f s waiting for it (%.1f %%)", epoch,
             r->buckets, (double)f->allreduce_early / f->allreduce_steps,
             r->overlap ? "overlapped" : "HS_DIST_OVERLAP=0: blocking", f->allreduce_wait,
             seconds, 100.0 * f->allreduce_wait / (seconds > 0 ? seconds : 1));
    f->job->images_per_second = seen / (seconds > 0 ? seconds : 1);
    f->parts.seconds = seconds;
    f->parts.cpu_seconds = cpu_seconds() - c0;
    f->job->parts = f->parts;
    m->train_loss = seen ? loss_sum / seen : 0;
    m->train_acc = seen ? 100.0 * correct / seen : 0;
    /* The plan refolds the updated weights before validation runs through it. */
    f->net->prepared = 0;
    return HS_OK;
}

/* Validation through the inference plan over the whole network. */
static hs_status validate_epoch(finetune *f, int epoch, hs_epoch_metrics *m, hs_error *err) {
    int *confusion = f->job->confusion;
    memset(confusion, 0, (size_t)f->classes * f->classes * sizeof(int));
    /* Each rank validates its contiguous share of the images; the counts are summed. */
    int64_t lo = 0, hi = 0;
    hs_dist_share(f->val_count, hs_dist_rank(f->ctx), hs_dist_world(f->ctx), &lo, &hi);
    hs_status st = hs_batch_loader_start(f->val_loader, epoch, f->val_order + lo,
                                         (int)(hi - lo), 0, err);
    if ((st = hs_dist_agree(f->ctx, st, err))) return st;
    double loss_sum = 0;
    long correct = 0, seen = 0;
    for (;;) {
        hs_batch *b = NULL;
        hs_error batch_err = {0};
        if (hs_batch_loader_next(f->val_loader, &b, &batch_err)) {
            note(f, "skipped a validation batch: %s", batch_err.message);
            continue;
        }
        if (!b) break;
        st = hs_net_run(f->net, 0, f->net->count, b->images, b->n, 3, f->size, f->size,
                        f->logits, err);
        if (!st) {
            loss_sum += (double)hs_soft_cross_entropy(f->logits, b->targets, b->n, f->classes,
                                                      NULL) * b->n;
            for (int i = 0; i < b->n; i++) {
                int p = argmax(f->logits + (size_t)i * f->classes, f->classes);
                correct += p == b->labels[i];
                confusion[b->labels[i] * f->classes + p]++;
            }
            seen += b->n;
        }
        hs_batch_loader_release(f->val_loader, b);
        if (st) break;
    }
    if ((st = hs_dist_agree(f->ctx, st, err)) ||
        (st = sum_counts(f, &loss_sum, &correct, &seen, confusion, err)))
        return st;
    m->val_loss = seen ? loss_sum / seen : 0;
    m->val_acc = seen ? 100.0 * correct / seen : 0;
    if (!isfinite(m->val_loss))
        return hs_fail(err, HS_ERR_DIVERGED, "the validation loss after epoch %d is not finite",
                       epoch);
    return HS_OK;
}

static double best_val(const hs_epoch_metrics *h, int n, int skip_last) {
    double best = -1;
    for (int i = 0; i < n - skip_last; i++)
        if (h[i].val_acc > best) best = h[i].val_acc;
    return best;
}

/* Where an epoch's time went, in the log: what --strategy auto's estimate is checked against
 * (its step rate against the training part, its writes against the last). */
static void note_epoch_parts(const finetune *f, int epoch, double validation, double writes) {
    const hs_finetune_parts *p = &f->parts;
    double other = p->seconds - p->wait - p->forward - p->backward - p->update;
    note(f, "epoch %d: training %.1f s (%.1f images/s, %.2f CPU ms an image: waiting for images "
         "%.1f s, forward %.1f, backward %.1f, update %.1f, other %.1f), validation %.1f s, "
         "checkpoint and outputs %.1f s", epoch, p->seconds,
         p->images / (p->seconds > 0 ? p->seconds : 1),
         1e3 * p->cpu_seconds / (p->images > 0 ? p->images : 1), p->wait, p->forward,
         p->backward, p->update, other, validation, writes);
}

static hs_status run_epochs(finetune *f, hs_error *err) {
    hs_finetune_job *job = f->job;
    const hs_train_config *c = f->c;
    char path[4200], best_path[4200];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", job->dir);
    snprintf(best_path, sizeof best_path, "%s/best.safetensors", job->dir);
    hs_status st = HS_OK;
    int root = hs_dist_is_root(f->ctx);
    if (job->resume) {
        /* Every rank restores the checkpoint rank 0 wrote, whatever the rank count was. */
        st = hs_checkpoint_load_net(path, f->net, 0, &f->opt, job->history, job->epochs_done,
                                    job->identity, err);
        if ((st = hs_dist_agree(f->ctx, st, err))) return st;
        note(f, "resuming the fine-tune in %s after epoch %d", job->dir, *job->epochs_done);
        if (root) st = job->write_outputs(job->outputs_ctx, err);
        if ((st = hs_dist_agree(f->ctx, st, err))) return st;
    }
    int trained = 0;
    for (int epoch = *job->epochs_done + 1; epoch <= c->epochs; epoch++) {
        double start = now_seconds();
        hs_epoch_metrics m = {epoch, 0, 0, 0, 0, 0};
        if ((st = train_epoch(f, epoch, &m, err))) return st;
        stage(f, "validation", epoch, 0);
        double v0 = now_seconds();
        if ((st = validate_epoch(f, epoch, &m, err))) return st;
        double validation = now_seconds() - v0;
        m.seconds = now_seconds() - start;
        job->history[*job->epochs_done] = m;
        if ((st = hs_check_ranks_agree(f->ctx, &f->opt, epoch, err))) return st;
        /* best.safetensors first: a checkpoint never names a best epoch whose file is
         * missing. Rank 0 alone writes; the others wait to hear that it could. */
        if (root && m.val_acc > best_val(job->history, *job->epochs_done, 0))
            st = hs_save_network(best_path, f->net, c->backbone, err);
        if (root && !st)
            st = hs_checkpoint_save_net(path, f->net, 0, &f->opt, job->history,
                                        *job->epochs_done + 1, job->identity, err);
        if ((st = hs_dist_agree(f->ctx, st, err))) return st;
        (*job->epochs_done)++;
        stage(f, "checkpoint written", epoch, 0);
        if (root) st = job->write_outputs(job->outputs_ctx, err);
        if ((st = hs_dist_agree(f->ctx, st, err))) return st;
        stage(f, "outputs written", epoch, 0);
        note_epoch_parts(f, epoch, validation, now_seconds() - start - m.seconds);
        if (job->cb && job->cb->epoch_done) job->cb->epoch_done(job->cb->ctx, &m, c->epochs);
        trained = 1;
    }
    if (!trained && *job->epochs_done > 0) {
        hs_epoch_metrics m = {*job->epochs_done, 0, 0, 0, 0, 0};
        st = validate_epoch(f, m.epoch, &m, err);
    }
    return st;
}

/* Frees what open_train, open_val and open_stage made. */
static void close_stage(finetune *f) {
    hs_batch_loader_free(f->train_loader);
    hs_batch_loader_free(f->val_loader);
    hs_image_store_free(&f->train_store);
    hs_image_store_free(&f->val_store);
    hs_tape_free(&f->tape);
    hs_optimizer_free(&f->opt);
    hs_grad_sync_free(&f->sync);
    free(f->prefix_out);
    free(f->logits);
    free(f->dlogits);
    free(f->train_order);
    free(f->val_order);
    free(f->local_order);
}

static void begin(finetune *f, hs_finetune_job *job) {
    memset(f, 0, sizeof *f);
    f->job = job;
    f->c = job->config;
    f->net = job->net;
    f->boundary = job->boundary;
    f->size = job->img_size;
    f->ctx = job->ctx;
}

float hs_finetune_base_lr(const hs_train_config *c, int64_t train_images) {
    if (c->finetune_lr > 0) return c->finetune_lr;
    const double steps = (double)c->epochs * (double)((train_images + c->batch_size - 1) /
                                                      (c->batch_size > 0 ? c->batch_size : 1));
    const double scale = steps > HS_FINETUNE_LR_STEPS ? sqrt(HS_FINETUNE_LR_STEPS / steps) : 1.0;
    return (float)(c->lr / 2 * scale);
}

hs_status hs_finetune_run(hs_finetune_job *job, hs_error *err) {
    finetune f;
    begin(&f, job);
    hs_status st = open_train(&f, err);
    if (!st) st = open_val(&f, err);
    if (!st) st = open_stage(&f, err);
    if (!(st = hs_dist_agree(f.ctx, st, err))) {
        note(&f, "fine-tuning layers %d..%d of %d (from %s, --unfreeze %s) on %d images, "
             "BatchNorm %s", f.boundary, f.net->count - 1, f.net->count,
             f.net->layers[f.boundary].name, f.c->unfreeze, f.train_count, f.c->bn);
        st = run_epochs(&f, err);
    }
    job->train_images = f.train_count;
    job->val_images = f.val_count;
    close_stage(&f);
    /* Back to inference: the trained layers' BatchNorms are left in the policy's mode, which
     * only the training forward reads. */
    f.net->prepared = 0;
    return st;
}

/* ---- Timing the stage for --strategy auto --------------------------------------------------- */

/* What a few training steps change in the network: the trainable parameters and BatchNorm's
 * running statistics (both arenas), its batch counts, the freeze flags and BatchNorm modes. */
typedef struct net_snapshot {
    float *params, *buffers;
    int64_t *tracked;
    int *frozen;
    hs_bn_mode *modes;
} net_snapshot;

static void snapshot_free(net_snapshot *s) {
    free(s->params);
    free(s->buffers);
    free(s->tracked);
    free(s->frozen);
    free(s->modes);
}

static hs_status snapshot_take(const hs_net *net, net_snapshot *s, hs_error *err) {
    memset(s, 0, sizeof *s);
    size_t layers = (size_t)(net->count > 0 ? net->count : 1);
    s->params = malloc((size_t)(net->param_floats ? net->param_floats : 1) * sizeof(float));
    s->buffers = malloc((size_t)(net->buffer_floats ? net->buffer_floats : 1) * sizeof(float));
    s->tracked = malloc(layers * sizeof *s->tracked);
    s->frozen = malloc(layers * sizeof *s->frozen);
    s->modes = malloc(layers * sizeof *s->modes);
    if (!s->params || !s->buffers || !s->tracked || !s->frozen || !s->modes) {
        snapshot_free(s);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory for a copy of the network");
    }
    if (net->param_floats) memcpy(s->params, net->params, (size_t)net->param_floats * sizeof(float));
    if (net->buffer_floats)
        memcpy(s->buffers, net->buffers, (size_t)net->buffer_floats * sizeof(float));
    for (int i = 0; i < net->count; i++) {
        s->tracked[i] = net->layers[i].bn_batches_tracked;
        s->frozen[i] = net->layers[i].frozen;
        s->modes[i] = net->layers[i].bn_mode;
    }
    return HS_OK;
}

static void snapshot_restore(hs_net *net, const net_snapshot *s) {
    if (net->param_floats) memcpy(net->params, s->params, (size_t)net->param_floats * sizeof(float));
    if (net->buffer_floats)
        memcpy(net->buffers, s->buffers, (size_t)net->buffer_floats * sizeof(float));
    for (int i = 0; i < net->count; i++) {
        net->layers[i].bn_batches_tracked = s->tracked[i];
        net->layers[i].frozen = s->frozen[i];
        net->layers[i].bn_mode = s->modes[i];
    }
    hs_net_zero_grad(net);
    net->prepared = 0;
}

/* warmup + steps global batches, each of --batch-size images cycled from the training set:
 * the loader is never short of work while the steps are timed (its ring holds depth - 1
 * batches ahead), as in an epoch of the run. */
static hs_status timed_steps(finetune *f, int warmup, int steps, hs_finetune_parts *out,
                             hs_error *err) {
    const int B = f->c->batch_size, total = warmup + steps + f->train_opt.depth;
    int *cycled = malloc((size_t)total * B * sizeof *cycled);
    int *mine = malloc((size_t)total * B * sizeof *mine);
    hs_status st = cycled && mine ? HS_OK : hs_fail(err, HS_ERR_NOMEM, "out of memory");
    for (long i = 0; !st && i < (long)total * B; i++) cycled[i] = f->train_order[i % f->train_count];
    int count = st ? 0 : local_order(f, cycled, total * B, mine);
    if (!st) st = hs_batch_loader_start(f->train_loader, 1, mine, count, 0, err);
    if ((st = hs_dist_agree(f->ctx, st, err))) {
        free(cycled);
        free(mine);
        return st;
    }
    hs_rng rng;
    hs_rng_seed_stream(&rng, f->c->seed, 0xf17e, 1);
    double loss_sum = 0, t0 = now_seconds(), c0 = cpu_seconds();
    long correct = 0;
    for (int step = 0; !st && step < warmup + steps; step++) {
        if (step == warmup) {
            memset(&f->parts, 0, sizeof f->parts);
            t0 = now_seconds();
            c0 = cpu_seconds();
        }
        if (stopped(f)) st = hs_fail(err, HS_ERR_INTERRUPTED, "interrupted measuring");
        hs_batch *b = NULL;
        double w0 = now_seconds();
        if (!st) st = hs_batch_loader_next(f->train_loader, &b, err);
        f->parts.wait += now_seconds() - w0;
        if ((st = hs_dist_agree(f->ctx, st, err))) break;
        st = train_step(f, b, &rng, &loss_sum, &correct, err);
        hs_batch_loader_release(f->train_loader, b);
    }
    f->parts.seconds = now_seconds() - t0;
    f->parts.cpu_seconds = cpu_seconds() - c0;
    *out = f->parts;
    free(cycled);
    free(mine);
    return st;
}

hs_status hs_finetune_time_steps(hs_finetune_job *job, int warmup, int steps,
                                 hs_finetune_parts *out, hs_error *err) {
    memset(out, 0, sizeof *out);
    if (warmup < 0 || steps < 1)
        return hs_fail(err, HS_ERR_INTERNAL, "timing %d + %d steps", warmup, steps);
    finetune f;
    begin(&f, job);
    net_snapshot snap;
    hs_status st = snapshot_take(f.net, &snap, err);
    if ((st = hs_dist_agree(f.ctx, st, err))) return st;
    if (!(st = open_train(&f, err))) st = open_stage(&f, err);
    if (!(st = hs_dist_agree(f.ctx, st, err))) st = timed_steps(&f, warmup, steps, out, err);
    close_stage(&f);
    snapshot_restore(f.net, &snap);
    snapshot_free(&snap);
    return st;
}
