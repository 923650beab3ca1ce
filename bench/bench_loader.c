/* Images per second the fine-tuning batch loader sustains.
 * Usage: bench_loader [--data PATH] [--sizes 128,224] [--threads 2] [--batch 64]
 *                     [--batches 40] [--depth 3] [--mixup 0.2] [--on-demand] [--consumer-ms M]
 * Opens PATH (default ../shared/data/cifar10-jpeg/train.tar.gz) with hs_dataset_open, decodes
 * it into an hs_image_store (unless --on-demand), then for each size times --batches training
 * batches (random resized crop, flip, normalise; mixup with --mixup) on --threads workers
 * with a consumer that does nothing else, so the figure is the loader's ceiling. Prints the
 * decode time and one line per size: img/s, ms/batch and images per CPU-second (the
 * machine-load-independent figure). --consumer-ms M makes the consumer sleep M ms per batch
 * (a stand-in for the training step) and reports how long it waited for each batch: about 0
 * when the loader keeps ahead. Not a test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch_loader.h"
#include "dataset.h"
#include "image_store.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds of the whole process: on a shared machine, img per CPU-second is the figure that
 * does not depend on what else runs. */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_ms(double ms) {
    struct timespec ts = {(time_t)(ms / 1e3), (long)(fmod(ms, 1e3) * 1e6)};
    nanosleep(&ts, NULL);
}

static int run_size(const hs_image_store *store, const hs_loader_options *o, int batches,
                    const int *order, int count, double consumer_ms) {
    hs_error err = {0};
    hs_batch_loader *l = NULL;
    if (hs_batch_loader_create(store, o, &l, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    int use = batches * o->batch_size < count ? batches * o->batch_size : count;
    /* one warm-up batch (page faults of the buffers), then the timed ones */
    if (hs_batch_loader_start(l, 0, order, use, 0, &err)) goto fail;
    double t0 = 0, c0 = 0, waited = 0;
    long images = 0;
    for (int k = 0;; k++) {
        hs_batch *b = NULL;
        double w0 = now_s();
        if (hs_batch_loader_next(l, &b, &err)) goto fail;
        if (!b) break;
        if (k > 0) waited += now_s() - w0;
        if (k == 0) {
            t0 = now_s();
            c0 = cpu_s();
        }
        else images += b->n;
        if (consumer_ms > 0) sleep_ms(consumer_ms);
        hs_batch_loader_release(l, b);
    }
    double dt = now_s() - t0, dc = cpu_s() - c0;
    printf("S=%d threads=%d batch=%d: %.0f img/s, %.1f ms/batch, %.0f img per CPU-second "
           "(%ld images)\n",
           o->image_size, o->threads, o->batch_size, images / dt, 1e3 * dt * o->batch_size / images,
           images / dc, images);
    if (consumer_ms > 0)
        printf("  consumer busy %.0f ms per batch: waited %.2f ms per batch for the loader\n",
               consumer_ms, 1e3 * waited * o->batch_size / images);
    hs_batch_loader_free(l);
    return 0;
fail:
    fprintf(stderr, "%s\n", err.message);
    hs_batch_loader_free(l);
    return 1;
}

int main(int argc, char **argv) {
    const char *data = "../shared/data/cifar10-jpeg/train.tar.gz", *sizes = "128,224";
    int threads = 2, batch = 64, batches = 40, depth = 3, on_demand = 0;
    float mixup = 0.0f;
    double consumer_ms = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) sizes = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) batches = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--depth") && i + 1 < argc) depth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mixup") && i + 1 < argc) mixup = (float)atof(argv[++i]);
        else if (!strcmp(argv[i], "--on-demand")) on_demand = 1;
        else if (!strcmp(argv[i], "--consumer-ms") && i + 1 < argc) consumer_ms = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_loader [--data PATH] [--sizes 128,224] [--threads N] "
                            "[--batch B] [--batches K] [--depth D] [--mixup A] [--on-demand] "
                            "[--consumer-ms M]\n");
            return 2;
        }
    }
    hs_error err = {0};
    hs_dataset train, val;
    hs_dataset_options dopt = {0.02, 1, 0, 0};
    double t = now_s();
    if (hs_dataset_open(data, &dopt, &train, &val, &err)) {
        fprintf(stderr, "%s\n", err.message);
        hs_dataset_free(&train);
        hs_dataset_free(&val);
        return 1;
    }
    printf("opened %s: %d train images (%.1f s)\n", data, train.count, now_s() - t);
    hs_image_store store;
    hs_image_store_options so = {on_demand ? 0 : (size_t)2 << 30, 0, NULL, NULL, "decode", NULL};
    t = now_s();
    if (hs_image_store_open(&train, &so, &store, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    printf("image store: %s, %.1f MB, %d failed (%.1f s)\n",
           store.in_memory ? "in memory" : "decode on demand", store.bytes / 1e6,
           store.failed_count, now_s() - t);
    int *order = malloc((size_t)(train.count ? train.count : 1) * sizeof *order);
    int count = hs_loader_epoch_order(&store, 1, 0, order);
    int rc = 0;
    for (const char *p = sizes; *p && !rc;) {
        hs_loader_options o;
        hs_loader_defaults(&o);
        o.image_size = atoi(p);
        o.batch_size = batch;
        o.threads = threads;
        o.depth = depth;
        o.mixup_alpha = mixup;
        rc = run_size(&store, &o, batches + 1, order, count, consumer_ms);
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    free(order);
    hs_image_store_free(&store);
    hs_dataset_free(&train);
    hs_dataset_free(&val);
    return rc;
}
