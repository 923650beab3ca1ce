#include "auto_measure.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "feature_set.h"
#include "net_train.h"

/* A warm-up pass (a new size builds its plans and primitives once), then the fastest of the
 * others: other processes on a shared machine only ever slow a pass down. */
enum { PASSES = 3 };

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct measure {
    hs_net *net;
    const hs_auto_measure_options *o;
    hs_image *images;    /* the first n training images, decoded */
    int n;
    double decode_seconds;
    float *batch;        /* n x 3 x S x S at the largest size */
    double t0;
    long done, total;
} measure;

static void tick(measure *m, const char *what) {
    m->done++;
    if (m->o->progress) m->o->progress(m->o->progress_ctx, what, m->done, m->total,
                                       now_seconds() - m->t0);
}

/* Resizes the first count decoded images to size into m->batch, on every core. */
static hs_status prepare(measure *m, int count, int size, hs_error *err) {
    const hs_backbone_info *info = m->net->info;
    size_t floats = (size_t)3 * size * size;
    hs_status st = HS_OK;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < count; i++) {
        hs_error e = {0};
        if (hs_image_prepare_square(&m->images[i], size, info->preprocess.interpolation,
                                    info->preprocess.mean,
                                    info->preprocess.std, m->batch + i * floats, &e)) {
#pragma omp critical
            st = hs_fail(err, e.code, "%s", e.message);
        }
    }
    return st;
}

/* The feature pass at size: decode (timed once) + resize + the frozen part. */
static hs_status feature_rate(measure *m, int size, double *ips, hs_error *err) {
    int c = 0, h = 0, w = 0;
    hs_status st = hs_net_shape(m->net, 0, m->net->head_begin, 3, size, size, &c, &h, &w, err);
    float *out = st ? NULL : malloc((size_t)m->n * c * h * w * sizeof(float));
    if (!st && !out) st = hs_fail(err, HS_ERR_NOMEM, "out of memory measuring");
    double seconds = INFINITY;
    for (int pass = 0; pass < PASSES && !st; pass++) {
        double t = now_seconds();
        if (!(st = prepare(m, m->n, size, err)))
            st = hs_net_run(m->net, 0, m->net->head_begin, m->batch, m->n, 3, size, size, out,
                            err);
        if (pass > 0) seconds = fmin(seconds, now_seconds() - t);
    }
    free(out);
    *ips = m->n / (seconds + m->decode_seconds);
    return st;
}

/* One fine-tune training step at size on the first finetune_batch images: the frozen prefix
 * through the plan, the tape's training forward and backward over [boundary, count) (loss
 * gradient 1/n, BatchNorm frozen so that no statistic moves). */
static hs_status finetune_rate(measure *m, int size, double *ips, hs_error *err) {
    hs_net *net = m->net;
    int n = m->o->finetune_batch < m->n ? m->o->finetune_batch : m->n, boundary = m->o->boundary;
    int c = 3, h = size, w = size;
    hs_status st = boundary > 0 ? hs_net_shape(net, 0, boundary, 3, size, size, &c, &h, &w, err)
                                : HS_OK;
    if (st) return st;
    hs_tape tape;
    memset(&tape, 0, sizeof tape);
    float *prefix = boundary > 0 ? malloc((size_t)n * c * h * w * sizeof(float)) : NULL;
    if (boundary > 0 && !prefix) return hs_fail(err, HS_ERR_NOMEM, "out of memory measuring");
    st = hs_tape_init(&tape, net, boundary, net->count, n, c, h, w, 0, err);
    hs_rng rng;
    hs_rng_seed(&rng, 1);
    double seconds = INFINITY;
    if (!st) st = prepare(m, n, size, err);
    for (int pass = 0; pass < PASSES && !st; pass++) {
        double t = now_seconds();
        const float *input = m->batch;
        if (boundary > 0) {
            st = hs_net_run(net, 0, boundary, m->batch, n, 3, size, size, prefix, err);
            input = prefix;
        }
        if (!st) st = hs_tape_forward(&tape, input, n, 1, &rng, err);
        if (!st) {
            float *g = hs_tape_output_grad(&tape);
            for (size_t i = 0; i < (size_t)n * net->num_classes; i++) g[i] = 1.0f / n;
            st = hs_tape_backward(&tape, err);
        }
        if (pass > 0) seconds = fmin(seconds, now_seconds() - t);
    }
    hs_tape_free(&tape);
    free(prefix);
    hs_net_zero_grad(net);
    *ips = n / seconds;
    return st;
}

hs_status hs_auto_measure(hs_net *net, const hs_dataset *train,
                          const hs_auto_measure_options *o, hs_auto_input *in, hs_error *err) {
    measure m = {net, o, NULL, 0, 0, NULL, now_seconds(), 0, 2 * (long)in->size_count};
    int largest = in->sizes[in->size_count - 1];
    m.n = o->feature_batch < train->count ? o->feature_batch : train->count;
    int *frozen = malloc((size_t)net->count * sizeof *frozen);
    hs_bn_mode *modes = malloc((size_t)net->count * sizeof *modes);
    m.images = calloc((size_t)(m.n > 0 ? m.n : 1), sizeof *m.images);
    m.batch = malloc((size_t)(m.n > 0 ? m.n : 1) * 3 * largest * largest * sizeof(float));
    hs_status st = HS_OK;
    if (!frozen || !modes || !m.images || !m.batch)
        st = hs_fail(err, HS_ERR_NOMEM, "out of memory measuring");
    for (int i = 0; !st && i < net->count; i++) {
        frozen[i] = net->layers[i].frozen;
        modes[i] = net->layers[i].bn_mode;
    }
    /* Decoding on every core, as the feature pass does; an image that fails is left out
     * (the run skips it too). */
    double t = now_seconds();
    char *ok = calloc((size_t)(m.n > 0 ? m.n : 1), 1);
    if (!st && !ok) st = hs_fail(err, HS_ERR_NOMEM, "out of memory measuring");
    if (!st) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int i = 0; i < m.n; i++) {
            hs_error e = {0};
            ok[i] = hs_dataset_load_image(train, i, &m.images[i], &e) == HS_OK;
        }
    }
    m.decode_seconds = now_seconds() - t;
    int good = 0;
    for (int i = 0; ok && i < m.n; i++)
        if (ok[i]) m.images[good++] = m.images[i];
    free(ok);
    if (!st && good == 0) st = hs_fail(err, HS_ERR_IMAGE, "no readable training image");
    m.n = good;
    for (int k = 0; !st && k < in->size_count; k++) {
        if (o->stop && *o->stop) st = hs_fail(err, HS_ERR_INTERRUPTED, "interrupted measuring");
        if (!st) st = feature_rate(&m, in->sizes[k], &in->feature_ips[k], err);
        tick(&m, "measuring speeds");
    }
    if (!st) {
        hs_net_freeze_below(net, o->boundary);
        hs_net_set_bn_mode(net, 0, net->count, HS_BN_FROZEN);
    }
    for (int k = 0; !st && k < in->size_count; k++) {
        if (o->stop && *o->stop) st = hs_fail(err, HS_ERR_INTERRUPTED, "interrupted measuring");
        if (!st) st = finetune_rate(&m, in->sizes[k], &in->finetune_ips[k], err);
        tick(&m, "measuring speeds");
    }
    for (int i = 0; frozen && modes && i < net->count; i++) {
        net->layers[i].frozen = frozen[i];
        net->layers[i].bn_mode = modes[i];
    }
    net->prepared = 0;
    for (int i = 0; m.images && i < good; i++) hs_image_free(&m.images[i]);
    free(m.images);
    free(m.batch);
    free(frozen);
    free(modes);
    return st;
}
