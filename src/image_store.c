#include "image_store.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"

/* Samples decoded between two progress calls and stop checks. */
#define STORE_CHUNK 2048

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

hs_status hs_image_limit_short_side(hs_image *img, int max_short_side, hs_error *err) {
    const int w = img->width, h = img->height, shorter = w < h ? w : h;
    if (max_short_side <= 0 || shorter <= max_short_side) return HS_OK;
    int nw, nh;
    if (w <= h) {
        nw = max_short_side;
        nh = (int)((double)max_short_side * h / w);
    } else {
        nh = max_short_side;
        nw = (int)((double)max_short_side * w / h);
    }
    hs_image small = {0};
    hs_status st = hs_image_resize(img, nw, nh, &small, err);
    if (st) return st;
    hs_image_free(img);
    *img = small;
    return HS_OK;
}

static hs_status load_sized(const hs_dataset *ds, int i, int max_short_side, hs_image *out,
                            hs_error *err) {
    hs_status st = hs_dataset_load_image(ds, i, out, err);
    if (!st) st = hs_image_limit_short_side(out, max_short_side, err);
    if (st) {
        hs_image_free(out);
        /* name the sample in the message when the decoder did not */
        const char *name = ds->samples[i].name;
        if (!strstr(err->message, name)) hs_fail_context(err, st, "%s", name);
    }
    return st;
}

static void drop_images(hs_image_store *s) {
    for (int i = 0; s->images && i < s->count; i++) hs_image_free(&s->images[i]);
    free(s->images);
    free(s->failure);
    s->images = NULL;
    s->failure = NULL;
    for (int i = 0; i < s->failed_count; i++) free(s->failed[i]);
    free(s->failed);
    s->failed = NULL;
    s->failed_count = 0;
    s->bytes = 0;
}

hs_status hs_image_store_open(const hs_dataset *ds, const hs_image_store_options *o,
                              hs_image_store *out, hs_error *err) {
    memset(out, 0, sizeof *out);
    if (!ds || !o || o->max_short_side < 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "image store: invalid arguments");
    out->ds = ds;
    out->count = ds->count;
    out->max_short_side = o->max_short_side;
    const int n = ds->count;
    const size_t fixed = (size_t)n * (sizeof(hs_image) + sizeof(int));
    if (o->memory_budget == 0 || fixed > o->memory_budget) { /* on demand */
        out->bytes_seen = o->memory_budget ? fixed : 0;
        return HS_OK;
    }
    out->images = calloc((size_t)(n ? n : 1), sizeof *out->images);
    out->failure = malloc((size_t)(n ? n : 1) * sizeof *out->failure);
    hs_error *errors = calloc(STORE_CHUNK, sizeof *errors);
    if (!out->images || !out->failure || !errors) {
        free(errors);
        drop_images(out);
        return hs_fail(err, HS_ERR_NOMEM, "image store: out of memory for %d samples", n);
    }
    size_t used = fixed;
    int over = 0;
    hs_status st = HS_OK;
    double start_time = now_seconds();
    for (int start = 0; start < n && !over && !st; start += STORE_CHUNK) {
        if (o->stop && *o->stop) {
            st = hs_fail(err, HS_ERR_INTERRUPTED, "interrupted while decoding images");
            break;
        }
        const int m = n - start < STORE_CHUNK ? n - start : STORE_CHUNK;
#pragma omp parallel for schedule(dynamic, 4)
        for (int k = 0; k < m; k++) {
            int stop_now;
#pragma omp atomic read
            stop_now = over;
            if (stop_now) continue;
            hs_image *img = &out->images[start + k];
            errors[k].code = load_sized(ds, start + k, o->max_short_side, img, &errors[k]);
            if (errors[k].code) continue;
            size_t b = (size_t)img->width * img->height * 3u, total;
#pragma omp atomic capture
            total = used += b;
            if (total > o->memory_budget) {
#pragma omp atomic write
                over = 1;
            }
        }
        /* failures in sample order, whatever order the threads met them */
        for (int k = 0; k < m && !over && !st; k++) {
            out->failure[start + k] = -1;
            if (!errors[k].code) continue;
            char **grown = realloc(out->failed, (size_t)(out->failed_count + 1) * sizeof *grown);
            if (!grown || !(grown[out->failed_count] = strdup(errors[k].message))) {
                if (grown) out->failed = grown;
                st = hs_fail(err, HS_ERR_NOMEM, "image store: out of memory");
                break;
            }
            out->failed = grown;
            out->failure[start + k] = out->failed_count++;
        }
        if (o->progress && !over && !st)
            o->progress(o->progress_ctx, o->phase, start + m, n, now_seconds() - start_time);
    }
    free(errors);
    if (st) {
        drop_images(out);
        return st;
    }
    if (over) {
        /* does not fit: keep nothing, decode on demand */
        drop_images(out);
        out->bytes_seen = used;
        return HS_OK;
    }
    out->in_memory = 1;
    out->bytes = used;
    return HS_OK;
}

hs_status hs_image_store_get(const hs_image_store *s, int i, hs_image *scratch,
                             const hs_image **img, hs_error *err) {
    *img = NULL;
    if (i < 0 || i >= s->count)
        return hs_fail(err, HS_ERR_ARGUMENT, "sample %d is not in the data set", i);
    if (!s->in_memory) {
        hs_status st = load_sized(s->ds, i, s->max_short_side, scratch, err);
        if (!st) *img = scratch;
        return st;
    }
    if (s->failure[i] >= 0) return hs_fail(err, HS_ERR_IMAGE, "%s", s->failed[s->failure[i]]);
    *img = &s->images[i];
    return HS_OK;
}

int hs_image_store_usable(const hs_image_store *s, int i) {
    if (i < 0 || i >= s->count) return 0;
    return !s->in_memory || s->failure[i] < 0;
}

void hs_image_store_free(hs_image_store *s) {
    if (!s) return;
    drop_images(s);
    memset(s, 0, sizeof *s);
}
