#include "batch_loader.h"

#include <limits.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "rng.h"

void hs_loader_defaults(hs_loader_options *o) {
    memset(o, 0, sizeof *o);
    o->image_size = 224;
    o->batch_size = 64;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(o->mean, mean, sizeof mean);
    memcpy(o->std, std, sizeof std);
    o->augment = 1;
    hs_augment_defaults(&o->crop);
    o->threads = 2;
    o->depth = 3;
}

static hs_status check_options(const hs_loader_options *o, hs_error *err) {
    if (o->image_size <= 0 || o->image_size > 4096)
        return hs_fail(err, HS_ERR_ARGUMENT, "loader: image size %d (need 1..4096)",
                       o->image_size);
    if (o->batch_size <= 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "loader: batch size %d (need >= 1)", o->batch_size);
    if (o->threads < 1 || o->threads > 256)
        return hs_fail(err, HS_ERR_ARGUMENT, "loader: %d threads (need 1..256)", o->threads);
    if (o->depth < 2 || o->depth > 16)
        return hs_fail(err, HS_ERR_ARGUMENT, "loader: depth %d (need 2..16)", o->depth);
    if (!(o->mixup_alpha >= 0.0f) || !(o->label_smoothing >= 0.0f && o->label_smoothing < 1.0f))
        return hs_fail(err, HS_ERR_ARGUMENT,
                       "loader: mixup alpha %g (need >= 0), label smoothing %g (need [0, 1))",
                       o->mixup_alpha, o->label_smoothing);
    for (int c = 0; c < 3; c++)
        if (!(o->std[c] > 0.0f)) return hs_fail(err, HS_ERR_ARGUMENT, "loader: std must be > 0");
    return o->augment ? hs_augment_check(&o->crop, err) : HS_OK;
}

static size_t image_floats(const hs_loader_options *o) {
    return (size_t)3 * o->image_size * o->image_size;
}

/* hs_image_prepare_square (the probe's resize, the same floats) with the table normalisation. */
static hs_status prepare_square(const hs_image *img, int size, const float mean[3],
                                const float std[3], float *out, hs_error *err) {
    if (img->width == size && img->height == size) {
        hs_image_to_tensor_fast(img, mean, std, out);
        return HS_OK;
    }
    hs_image resized = {0};
    hs_status st = hs_image_resize(img, size, size, &resized, err);
    if (st) return st;
    hs_image_to_tensor_fast(&resized, mean, std, out);
    hs_image_free(&resized);
    return HS_OK;
}

hs_status hs_loader_prepare_image(const hs_image_store *store, const hs_loader_options *o,
                                  int epoch, int sample, float *out, hs_error *err) {
    hs_image scratch = {0};
    const hs_image *img = NULL;
    hs_status st = hs_image_store_get(store, sample, &scratch, &img, err);
    if (!st) {
        if (o->augment) {
            hs_rng rng;
            hs_rng_seed(&rng, hs_augment_sample_seed(o->seed, epoch, sample));
            st = hs_augment_image(img, o->image_size, &o->crop, &rng, o->mean, o->std, out, NULL,
                                  NULL, err);
        } else {
            st = prepare_square(img, o->image_size, o->mean, o->std, out, err);
        }
        if (st) hs_fail_context(err, st, "%s", store->ds->samples[sample].name);
    }
    hs_image_free(&scratch);
    return st;
}

/* The batch-level part once every image is in: targets, then mixup of images and targets. */
static void finish_batch(const hs_loader_options *o, int classes, hs_batch *b) {
    const float eps = o->augment ? o->label_smoothing : 0.0f;
    hs_smooth_targets(b->labels, b->n, classes, eps, b->targets);
    b->mixup_lambda = 1.0f;
    if (o->augment && o->mixup_alpha > 0.0f) {
        hs_rng rng;
        hs_rng_seed(&rng, hs_augment_batch_seed(o->seed, b->epoch, b->index));
        b->mixup_lambda = (float)hs_rng_beta(&rng, o->mixup_alpha, o->mixup_alpha);
        hs_mixup_batch(b->images, image_floats(o), b->targets, b->n, classes, b->mixup_lambda);
    }
}

static int batch_count(int count, int batch_size) {
    return (int)(((long)count + batch_size - 1) / batch_size);
}

static hs_status check_order(const hs_image_store *store, const int *order, int count,
                             hs_error *err) {
    if (count < 0 || (count > 0 && !order))
        return hs_fail(err, HS_ERR_ARGUMENT, "loader: invalid order of %d samples", count);
    for (int i = 0; i < count; i++)
        if (order[i] < 0 || order[i] >= store->count)
            return hs_fail(err, HS_ERR_ARGUMENT,
                           "loader: order[%d] = %d is not a sample (data set of %d)", i, order[i],
                           store->count);
    return HS_OK;
}

/* Header of batch k: its index, size, samples and labels. */
static void batch_begin(const hs_image_store *store, const hs_loader_options *o, int epoch,
                        const int *order, int count, int k, hs_batch *b) {
    b->epoch = epoch;
    b->index = k;
    long first = (long)k * o->batch_size;
    b->n = count - first < o->batch_size ? (int)(count - first) : o->batch_size;
    for (int i = 0; i < b->n; i++) {
        b->samples[i] = order[first + i];
        b->labels[i] = store->ds->samples[order[first + i]].label;
    }
    b->mixup_lambda = 1.0f;
}

hs_status hs_batch_alloc(const hs_loader_options *o, int classes, hs_batch *b, hs_error *err) {
    memset(b, 0, sizeof *b);
    const size_t n = (size_t)o->batch_size;
    b->images = malloc(n * image_floats(o) * sizeof(float));
    b->targets = malloc(n * (size_t)(classes > 0 ? classes : 1) * sizeof(float));
    b->labels = malloc(n * sizeof(int));
    b->samples = malloc(n * sizeof(int));
    if (!b->images || !b->targets || !b->labels || !b->samples) {
        hs_batch_free(b);
        return hs_fail(err, HS_ERR_NOMEM, "loader: out of memory for a batch of %d images of %d px",
                       o->batch_size, o->image_size);
    }
    return HS_OK;
}

void hs_batch_free(hs_batch *b) {
    if (!b) return;
    free(b->images);
    free(b->targets);
    free(b->labels);
    free(b->samples);
    memset(b, 0, sizeof *b);
}

hs_status hs_loader_fill_batch(const hs_image_store *store, const hs_loader_options *o,
                               int epoch, const int *order, int count, int k, hs_batch *b,
                               hs_error *err) {
    hs_status st = check_options(o, err);
    if (!st) st = check_order(store, order, count, err);
    if (st) return st;
    if (k < 0 || k >= batch_count(count, o->batch_size))
        return hs_fail(err, HS_ERR_ARGUMENT, "loader: batch %d of an epoch of %d", k,
                       batch_count(count, o->batch_size));
    batch_begin(store, o, epoch, order, count, k, b);
    for (int i = 0; i < b->n; i++) {
        st = hs_loader_prepare_image(store, o, epoch, b->samples[i],
                                     b->images + (size_t)i * image_floats(o), err);
        if (st) return st;
    }
    finish_batch(o, store->ds->class_count, b);
    return HS_OK;
}

int hs_loader_epoch_order(const hs_image_store *store, uint64_t seed, int epoch, int *order) {
    int n = 0;
    for (int i = 0; i < store->count; i++)
        if (hs_image_store_usable(store, i)) order[n++] = i;
    hs_rng rng;
    /* batch index -1: a stream no batch's mixup uses */
    hs_rng_seed(&rng, hs_augment_batch_seed(seed, epoch, -1));
    for (int i = n - 1; i > 0; i--) {
        int j = (int)hs_rng_below(&rng, (uint64_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    return n;
}

/* ---- The threaded loader ------------------------------------------------------------------ */

typedef enum slot_state { SLOT_FREE = 0, SLOT_FILLING, SLOT_READY, SLOT_HELD } slot_state;

typedef struct slot {
    hs_batch batch;
    slot_state state;
    int k;           /* the batch it holds or fills; -1 for none */
    int started;     /* image tasks handed out */
    int done;        /* image tasks finished */
    int error_pos;   /* the first failed image's position, INT_MAX for none */
    hs_error error;
} slot;

struct hs_batch_loader {
    const hs_image_store *store;
    hs_loader_options o;
    int classes;
    pthread_mutex_t mutex;
    pthread_cond_t work;  /* a task may be available, or shutdown */
    pthread_cond_t ready; /* a batch finished, or the workers went idle */
    pthread_t *threads;
    int thread_count;
    int shutdown;
    slot *slots;
    /* the epoch */
    int epoch;
    int *order;
    int count;
    int batches;
    long next_task;   /* image tasks: t -> batch t / B, position t % B */
    long total_tasks;
    int next_batch;   /* the consumer's next batch */
    int busy;         /* workers inside a task */
};

/* Whether the next task can start: its batch's slot is free or already filling it. */
static int task_available(const hs_batch_loader *l) {
    if (l->next_task >= l->total_tasks) return 0;
    int k = (int)(l->next_task / l->o.batch_size);
    const slot *s = &l->slots[k % l->o.depth];
    return s->state == SLOT_FREE || (s->state == SLOT_FILLING && s->k == k);
}

static void *worker_main(void *arg) {
    hs_batch_loader *l = arg;
    /* The workers are the parallelism: no OpenMP team inside a task (the resize). */
    omp_set_num_threads(1);
    pthread_mutex_lock(&l->mutex);
    for (;;) {
        while (!l->shutdown && !task_available(l)) pthread_cond_wait(&l->work, &l->mutex);
        if (l->shutdown) break;
        long t = l->next_task++;
        int k = (int)(t / l->o.batch_size), pos = (int)(t % l->o.batch_size);
        slot *s = &l->slots[k % l->o.depth];
        if (s->state == SLOT_FREE) {
            s->state = SLOT_FILLING;
            s->k = k;
            s->started = s->done = 0;
            s->error_pos = INT_MAX;
            batch_begin(l->store, &l->o, l->epoch, l->order, l->count, k, &s->batch);
        }
        s->started++;
        /* the last image of a batch: move on to the next batch's tasks */
        if (pos == s->batch.n - 1 && l->next_task < (long)(k + 1) * l->o.batch_size)
            l->next_task = (long)(k + 1) * l->o.batch_size;
        int sample = s->batch.samples[pos], epoch = l->epoch;
        l->busy++;
        pthread_mutex_unlock(&l->mutex);

        hs_error e = {0};
        hs_status st = hs_loader_prepare_image(l->store, &l->o, epoch, sample,
                                               s->batch.images + (size_t)pos * image_floats(&l->o),
                                               &e);
        pthread_mutex_lock(&l->mutex);
        if (st && pos < s->error_pos) {
            s->error_pos = pos;
            s->error = e;
            s->error.code = st;
        }
        int last = ++s->done == s->batch.n;
        if (last) {
            pthread_mutex_unlock(&l->mutex);
            if (s->error_pos == INT_MAX) finish_batch(&l->o, l->classes, &s->batch);
            pthread_mutex_lock(&l->mutex);
            s->state = SLOT_READY;
        }
        l->busy--;
        if (last || l->busy == 0) pthread_cond_broadcast(&l->ready);
    }
    pthread_mutex_unlock(&l->mutex);
    return NULL;
}

static void stop_workers(hs_batch_loader *l) {
    pthread_mutex_lock(&l->mutex);
    l->shutdown = 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mutex);
    for (int i = 0; i < l->thread_count; i++) pthread_join(l->threads[i], NULL);
    l->thread_count = 0;
}

void hs_batch_loader_free(hs_batch_loader *l) {
    if (!l) return;
    stop_workers(l);
    for (int i = 0; l->slots && i < l->o.depth; i++) hs_batch_free(&l->slots[i].batch);
    free(l->slots);
    free(l->threads);
    free(l->order);
    pthread_mutex_destroy(&l->mutex);
    pthread_cond_destroy(&l->work);
    pthread_cond_destroy(&l->ready);
    free(l);
}

hs_status hs_batch_loader_create(const hs_image_store *store, const hs_loader_options *o,
                                 hs_batch_loader **out, hs_error *err) {
    *out = NULL;
    if (!store || !store->ds) return hs_fail(err, HS_ERR_ARGUMENT, "loader: no image store");
    hs_status st = check_options(o, err);
    if (st) return st;
    hs_batch_loader *l = calloc(1, sizeof *l);
    if (!l) return hs_fail(err, HS_ERR_NOMEM, "loader: out of memory");
    l->store = store;
    l->o = *o;
    l->classes = store->ds->class_count;
    pthread_mutex_init(&l->mutex, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->ready, NULL);
    l->slots = calloc((size_t)o->depth, sizeof *l->slots);
    l->threads = calloc((size_t)o->threads, sizeof *l->threads);
    if (!l->slots || !l->threads) {
        hs_batch_loader_free(l);
        return hs_fail(err, HS_ERR_NOMEM, "loader: out of memory");
    }
    for (int i = 0; i < o->depth; i++) {
        l->slots[i].k = -1;
        if ((st = hs_batch_alloc(o, l->classes, &l->slots[i].batch, err))) {
            hs_batch_loader_free(l);
            return st;
        }
    }
    for (int i = 0; i < o->threads; i++) {
        if (pthread_create(&l->threads[i], NULL, worker_main, l)) {
            hs_batch_loader_free(l);
            return hs_fail(err, HS_ERR_NOMEM, "loader: cannot start worker thread %d", i + 1);
        }
        l->thread_count++;
    }
    *out = l;
    return HS_OK;
}

hs_status hs_batch_loader_start(hs_batch_loader *l, int epoch, const int *order, int count,
                                int first_batch, hs_error *err) {
    hs_status st = check_order(l->store, order, count, err);
    if (st) return st;
    const int batches = batch_count(count, l->o.batch_size);
    if (first_batch < 0 || first_batch > batches)
        return hs_fail(err, HS_ERR_ARGUMENT, "loader: first batch %d of an epoch of %d",
                       first_batch, batches);
    int *copy = malloc((size_t)(count ? count : 1) * sizeof *copy);
    if (!copy) return hs_fail(err, HS_ERR_NOMEM, "loader: out of memory for the order");
    if (count) memcpy(copy, order, (size_t)count * sizeof *copy);
    pthread_mutex_lock(&l->mutex);
    for (int i = 0; i < l->o.depth; i++)
        if (l->slots[i].state == SLOT_HELD) {
            pthread_mutex_unlock(&l->mutex);
            free(copy);
            return hs_fail(err, HS_ERR_ARGUMENT,
                           "loader: batch %d is still held; release it before a new epoch",
                           l->slots[i].k);
        }
    /* drop what is left of the previous epoch: no new tasks, wait for those running */
    l->next_task = l->total_tasks;
    while (l->busy > 0) pthread_cond_wait(&l->ready, &l->mutex);
    for (int i = 0; i < l->o.depth; i++) {
        l->slots[i].state = SLOT_FREE;
        l->slots[i].k = -1;
    }
    free(l->order);
    l->order = copy;
    l->epoch = epoch;
    l->count = count;
    l->batches = batches;
    l->next_task = (long)first_batch * l->o.batch_size;
    l->total_tasks = (long)batches * l->o.batch_size;
    l->next_batch = first_batch;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mutex);
    return HS_OK;
}

hs_status hs_batch_loader_next(hs_batch_loader *l, hs_batch **batch, hs_error *err) {
    *batch = NULL;
    pthread_mutex_lock(&l->mutex);
    if (l->next_batch >= l->batches) {
        pthread_mutex_unlock(&l->mutex);
        return HS_OK;
    }
    int k = l->next_batch;
    slot *s = &l->slots[k % l->o.depth];
    if (s->state == SLOT_HELD) {
        pthread_mutex_unlock(&l->mutex);
        return hs_fail(err, HS_ERR_ARGUMENT,
                       "loader: all %d batch buffers are held; release one before the next",
                       l->o.depth);
    }
    while (!(s->k == k && s->state == SLOT_READY)) pthread_cond_wait(&l->ready, &l->mutex);
    l->next_batch++;
    if (s->error_pos != INT_MAX) {
        hs_status code = s->error.code;
        hs_fail(err, code, "batch %d of epoch %d: %s", k, l->epoch, s->error.message);
        s->state = SLOT_FREE;
        pthread_cond_broadcast(&l->work);
        pthread_mutex_unlock(&l->mutex);
        return code;
    }
    s->state = SLOT_HELD;
    *batch = &s->batch;
    pthread_mutex_unlock(&l->mutex);
    return HS_OK;
}

void hs_batch_loader_release(hs_batch_loader *l, hs_batch *batch) {
    if (!l || !batch) return;
    pthread_mutex_lock(&l->mutex);
    for (int i = 0; i < l->o.depth; i++)
        if (&l->slots[i].batch == batch && l->slots[i].state == SLOT_HELD) {
            l->slots[i].state = SLOT_FREE;
            pthread_cond_broadcast(&l->work);
        }
    pthread_mutex_unlock(&l->mutex);
}
