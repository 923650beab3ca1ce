#include "auto_measure.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "feature_set.h"
#include "dist.h"
#include "finetune.h"

/* A warm-up pass (a new size builds its plans and primitives once), then the fastest of the
 * others: other processes on a shared machine only ever slow a pass down. */
enum { PASSES = 3 };
enum { WARMUP_STEPS = 1 }; /* fine-tune steps before the timed ones (plans, pages) */

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
    long done, total;    /* images through the backbone so far, of all the measurement's */
    long step_images;    /* one size's fine-tune steps: (warm-up + timed) x batch */
} measure;

/* Progress counts images, as the callback's contract says: each size's feature passes, then
 * each size's fine-tune steps (warm-up included). A step left untimed still counts. */
static void tick(measure *m, long images) {
    m->done += images;
    const char *what = "measuring speeds";
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

/* A number from a /proc or /sys file: the value after `key` (NULL: the file's first token),
 * times `unit`; -1 when absent or unreadable ("max" too). */
static double read_number(const char *path, const char *key, double unit) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    double value = -1;
    while (fgets(line, sizeof line, f)) {
        const char *p = line;
        if (key) {
            if (strncmp(line, key, strlen(key)) != 0) continue;
            p = line + strlen(key);
        }
        char *end = NULL;
        double v = strtod(p, &end);
        if (end != p) value = v * unit;
        break;
    }
    fclose(f);
    return value;
}

double hs_memory_available(void) {
    double avail = read_number("/proc/meminfo", "MemAvailable:", 1024.0);
    /* A cgroup limit below it (a container, a batch job's allocation). */
    const char *limits[2][2] = {{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
                                {"/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                 "/sys/fs/cgroup/memory/memory.usage_in_bytes"}};
    for (int i = 0; i < 2; i++) {
        double limit = read_number(limits[i][0], NULL, 1), used = read_number(limits[i][1], NULL, 1);
        /* v1 reports "no limit" as a huge number */
        if (limit > 0 && used >= 0 && limit < 1e18) {
            double left = limit > used ? limit - used : 0;
            if (avail < 0 || left < avail) avail = left;
            break;
        }
    }
    return avail > 0 ? avail : 0;
}

/* The resident set now and its peak since the last reset (VmRSS, VmHWM), in bytes; the reset
 * (writing 5 to clear_refs, Linux 4.0 on) makes the peak the current size. Without it the
 * peak is the process's, which only overstates the growth. */
static double rss_now(void) { return read_number("/proc/self/status", "VmRSS:", 1024.0); }
static double rss_peak(void) { return read_number("/proc/self/status", "VmHWM:", 1024.0); }
static void rss_reset_peak(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return;
    fputs("5", f);
    fclose(f);
}

/* What the run holds during its fine-tune beyond what the timed steps allocate: the decoded
 * images of both sides (the training side's short side capped at 2 S, each side in memory
 * only when within its budget, finetune.h) from the measured images' sizes, and the probe
 * stage's features (train + val rows, float16 in the cache or float32 in memory). */
static double held_bytes(const measure *m, const hs_auto_measure_options *o, int train_images,
                         int size) {
    double native = 0, capped = 0;
    for (int i = 0; i < m->n; i++) {
        double w = m->images[i].width, h = m->images[i].height, shorter = w < h ? w : h;
        native += w * h * 3;
        if (shorter > 2 * size) {
            double longer = (w < h ? h : w) * (2.0 * size) / shorter;
            capped += (2.0 * size) * floor(longer) * 3;
        } else {
            capped += w * h * 3;
        }
    }
    double train = m->n ? capped / m->n * train_images : 0;
    double val = m->n ? native / m->n * o->val_images : 0;
    double held = (train <= (double)HS_FINETUNE_STORE_BUDGET ? train : 0) +
                  (val <= (double)HS_FINETUNE_STORE_BUDGET ? val : 0);
    int c = 0, h = 0, w = 0;
    hs_error ignored = {0}; /* a size the net cannot take fails when it is timed */
    if (!hs_net_shape(m->net, 0, m->net->head_begin, 3, size, size, &c, &h, &w, &ignored)) {
        const hs_train_config *cfg = o->config;
        int half = !cfg->no_cache && cfg->feature_precision &&
                   !strcmp(cfg->feature_precision, "f16");
        held += (double)(train_images + o->val_images) * c * h * w * (half ? 2 : 4);
    }
    return held;
}

/* Timed fine-tune steps per size (after WARMUP_STEPS). */
static int measured_steps(const hs_auto_measure_options *o) { return o->steps > 0 ? o->steps : 3; }

/* The fine-tune at sizes[k]: its steps on the first --batch-size training images (finetune.h),
 * the resident set's growth over the measurement's start, plus what the run holds besides.
 * A size whose memory, extrapolated from the largest timed one below it (the growth scales
 * with the pixels at most), would not fit is left untimed: finetune_ips 0. */
static hs_status finetune_rate(measure *m, const hs_dataset *train, int k, hs_auto_input *in,
                               double rss_start, hs_error *err) {
    const hs_auto_measure_options *o = m->o;
    int size = in->sizes[k];
    double held = held_bytes(m, o, train->count, size);
    double limit = in->memory_available_bytes * HS_AUTO_MEMORY_MARGIN, predicted = 0;
    for (int j = k - 1; j >= 0 && limit > 0; j--) {
        if (!(in->finetune_ips[j] > 0)) continue;
        double grown = in->finetune_bytes[j] - held_bytes(m, o, train->count, in->sizes[j]);
        predicted = grown * ((double)size * size) / ((double)in->sizes[j] * in->sizes[j]) + held;
        break;
    }
    /* Every rank times the same sizes (the steps' collectives must match): rank 0's call. */
    int skip = predicted > limit && limit > 0;
    hs_status st = hs_dist_broadcast(o->ctx, &skip, sizeof skip, 0, err);
    if (st) return st;
    if (skip) {
        in->finetune_ips[k] = 0;
        in->finetune_bytes[k] = predicted;
        return HS_OK;
    }
    hs_dataset first = *train;
    int B = o->config->batch_size;
    first.count = train->count < B ? train->count : B;
    hs_train_callbacks quiet = {0};
    quiet.stop = o->stop;
    hs_finetune_job job = {0};
    job.ctx = o->ctx;
    job.config = o->config;
    job.cb = &quiet;
    job.train = &first;
    job.net = m->net;
    job.img_size = size;
    job.preprocess = o->preprocess;
    job.boundary = o->boundary;
    job.class_weights = o->class_weights;
    hs_finetune_parts parts;
    rss_reset_peak();
    st = hs_finetune_time_steps(&job, WARMUP_STEPS, measured_steps(o), &parts, err);
    if (st) return st;
    double peak = rss_peak();
    in->finetune_ips[k] = parts.seconds > 0 ? (double)parts.steps * B / parts.seconds : 0;
    in->finetune_cpu_ms[k] = parts.images > 0 ? 1e3 * parts.cpu_seconds / parts.images : 0;
    in->finetune_bytes[k] = (rss_start >= 0 && peak > rss_start ? peak - rss_start : 0) + held;
    return HS_OK;
}

hs_status hs_auto_measure(hs_net *net, const hs_dataset *train,
                          const hs_auto_measure_options *o, hs_auto_input *in, hs_error *err) {
    double rss_start = rss_now();
    in->memory_available_bytes = hs_memory_available();
    measure m = {net, o, NULL, 0, 0, NULL, now_seconds(), 0, 0, 0};
    int largest = in->sizes[in->size_count - 1];
    m.n = o->feature_batch < train->count ? o->feature_batch : train->count;
    int batch = o->config->batch_size < train->count ? o->config->batch_size : train->count;
    m.step_images = (long)(WARMUP_STEPS + measured_steps(o)) * batch;
    m.images = calloc((size_t)(m.n > 0 ? m.n : 1), sizeof *m.images);
    m.batch = malloc((size_t)(m.n > 0 ? m.n : 1) * 3 * largest * largest * sizeof(float));
    hs_status st = HS_OK;
    if (!m.images || !m.batch) st = hs_fail(err, HS_ERR_NOMEM, "out of memory measuring");
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
    m.total = (long)in->size_count * (PASSES * (long)m.n + m.step_images);
    /* The fine-tune decodes both sides once more, into memory, at the same rate. */
    in->finetune_setup_seconds =
        m.n > 0 ? m.decode_seconds / m.n * ((double)train->count + o->val_images) : 0;
    for (int k = 0; !st && k < in->size_count; k++) {
        if (o->stop && *o->stop) st = hs_fail(err, HS_ERR_INTERRUPTED, "interrupted measuring");
        if (!st) st = feature_rate(&m, in->sizes[k], &in->feature_ips[k], err);
        if (!st) tick(&m, PASSES * (long)m.n);
    }
    for (int k = 0; !st && k < in->size_count; k++) {
        if (o->stop && *o->stop) st = hs_fail(err, HS_ERR_INTERRUPTED, "interrupted measuring");
        if (!st) st = finetune_rate(&m, train, k, in, rss_start, err);
        if (!st) tick(&m, m.step_images);
    }
    net->prepared = 0;
    for (int i = 0; m.images && i < good; i++) hs_image_free(&m.images[i]);
    free(m.images);
    free(m.batch);
    return st;
}
