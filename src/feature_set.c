#include "feature_set.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "augment.h"
#include "error.h"
#include "half.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

hs_status hs_image_prepare_square(const hs_image *img, int size, hs_interpolation interpolation,
                                  const float mean[3], const float std[3], float *out,
                                  hs_error *err) {
    if (img->width == size && img->height == size) {
        hs_image_to_tensor(img, mean, std, out);
        return HS_OK;
    }
    hs_image resized = {0};
    hs_status st = hs_image_resize_with(img, size, size, interpolation, &resized, err);
    if (st) return st;
    hs_image_to_tensor(&resized, mean, std, out);
    hs_image_free(&resized);
    return HS_OK;
}

void hs_feature_set_free(hs_feature_set *fs) {
    if (!fs) return;
    free(fs->owned);
    if (fs->map) munmap(fs->map, fs->map_bytes);
    free(fs->labels);
    free(fs->sample_index);
    for (int i = 0; i < fs->failed_count; i++) free(fs->failed[i]);
    free(fs->failed);
    memset(fs, 0, sizeof *fs);
}

void hs_feature_range(const hs_feature_set *fs, int first, int n, float *out) {
    size_t offset = (size_t)first * fs->dim, count = (size_t)n * fs->dim;
    if (fs->values) memcpy(out, fs->values + offset, count * sizeof(float));
    else hs_half_to_floats(fs->half + offset, count, out);
}

void hs_feature_rows(const hs_feature_set *fs, const int *rows, int n, float *out) {
    for (int i = 0; i < n; i++) hs_feature_range(fs, rows[i], 1, out + (size_t)i * fs->dim);
}

static hs_status note_failure(hs_feature_set *fs, const hs_error *why, hs_error *err) {
    char **grown = realloc(fs->failed, (size_t)(fs->failed_count + 1) * sizeof *grown);
    if (!grown) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    fs->failed = grown;
    if (!(fs->failed[fs->failed_count] = strdup(why->message)))
        return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    fs->failed_count++;
    return HS_OK;
}

/* Decodes and prepares images [start, start + n) into batch on every core; with `mirrored`,
 * each decoded image is then flipped and prepared again into it (one decode for both). */
static void prepare_batch(const hs_dataset *ds, int start, int n, const hs_feature_options *o,
                          float *batch, float *mirrored, hs_error *errors) {
    size_t image_floats = (size_t)3 * o->img_size * o->img_size;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; i++) {
        hs_image img = {0};
        errors[i].code = hs_dataset_load_image(ds, start + i, &img, &errors[i]);
        if (!errors[i].code)
            errors[i].code = hs_image_prepare_square(&img, o->img_size, o->interpolation,
                                                     o->mean, o->std,
                                                     batch + (size_t)i * image_floats, &errors[i]);
        if (!errors[i].code && mirrored) {
            hs_image_flip_horizontal(&img);
            errors[i].code = hs_image_prepare_square(&img, o->img_size, o->interpolation,
                                                     o->mean, o->std,
                                                     mirrored + (size_t)i * image_floats,
                                                     &errors[i]);
        }
        hs_image_free(&img);
    }
}

hs_status hs_extract_features(hs_net *net, int boundary, const hs_dataset *ds,
                              const hs_feature_options *o, hs_feature_set *out, hs_error *err) {
    return hs_extract_features_mirrored(net, boundary, ds, o, out, NULL, err);
}

hs_status hs_extract_features_mirrored(hs_net *net, int boundary, const hs_dataset *ds,
                                       const hs_feature_options *o, hs_feature_set *out,
                                       hs_feature_set *mirrors, hs_error *err) {
    memset(out, 0, sizeof *out);
    if (mirrors) memset(mirrors, 0, sizeof *mirrors);
    if (mirrors && o->sink)
        return hs_fail(err, HS_ERR_INTERNAL, "mirror features go to memory, not to a sink");
    int c = 0, h = 0, w = 0, size = o->img_size, batch_size = o->batch_size;
    hs_status st = hs_net_shape(net, 0, boundary, 3, size, size, &c, &h, &w, err);
    if (st) return st;
    out->dim = c * h * w;
    size_t image_floats = (size_t)3 * size * size;
    int first = 0, total = ds->count;
    if (o->sharded) {
        if (o->shard_first < 0 || o->shard_count < 0 || o->shard_first > ds->count ||
            o->shard_count > ds->count - o->shard_first)
            return hs_fail(err, HS_ERR_INTERNAL, "shard %d+%d of %d images", o->shard_first,
                           o->shard_count, ds->count);
        first = o->shard_first;
        total = o->shard_count;
    }
    /* Without a sink the rows stay in memory; with one, only a batch of them at a time. */
    size_t rows_kept = o->sink ? 0 : (size_t)(total ? total : 1);
    if (rows_kept) out->values = out->owned = malloc(rows_kept * out->dim * sizeof(float));
    out->labels = malloc((size_t)(total ? total : 1) * sizeof(int));
    out->sample_index = malloc((size_t)(total ? total : 1) * sizeof(int));
    float *batch = malloc((size_t)batch_size * image_floats * sizeof(float));
    float *mirrored = NULL;
    if (mirrors) {
        mirrors->dim = out->dim;
        mirrors->values = mirrors->owned = malloc(rows_kept * out->dim * sizeof(float));
        mirrored = malloc((size_t)batch_size * image_floats * sizeof(float));
    }
    float *features = malloc((size_t)batch_size * out->dim * sizeof(float));
    hs_error *errors = calloc((size_t)batch_size, sizeof *errors);
    if ((rows_kept && !out->owned) || !out->labels || !out->sample_index || !batch || !features ||
        !errors || (mirrors && (!mirrors->owned || !mirrored))) {
        st = hs_fail(err, HS_ERR_NOMEM,
                     "out of memory for %d feature vectors of %d floats (%.1f GB) and a batch "
                     "of %d; lower --batch-size or use a subset",
                     total, out->dim, (double)rows_kept * out->dim * 4 / 1e9, batch_size);
        goto done;
    }
    double start_time = now_seconds();
    for (int start = 0; start < total && !st; start += batch_size) {
        if (o->stop && *o->stop) {
            st = hs_fail(err, HS_ERR_INTERRUPTED, "interrupted while computing features");
            break;
        }
        int n = total - start < batch_size ? total - start : batch_size;
        prepare_batch(ds, first + start, n, o, batch, mirrored, errors);
        /* Compact the good images to the front of the batch, keeping their order. */
        int good = 0;
        for (int i = 0; i < n && !st; i++) {
            if (errors[i].code) {
                if (o->strict) {
                    st = hs_fail(err, errors[i].code, "%s (--strict)", errors[i].message);
                    break;
                }
                st = note_failure(out, &errors[i], err);
                continue;
            }
            if (good != i) {
                memmove(batch + (size_t)good * image_floats, batch + (size_t)i * image_floats,
                        image_floats * sizeof(float));
                if (mirrored)
                    memmove(mirrored + (size_t)good * image_floats,
                            mirrored + (size_t)i * image_floats, image_floats * sizeof(float));
            }
            out->labels[out->count + good] = ds->samples[first + start + i].label;
            out->sample_index[out->count + good] = first + start + i;
            good++;
        }
        if (st || good == 0) continue;
        float *rows = o->sink ? features : out->owned + (size_t)out->count * out->dim;
        st = hs_net_run(net, 0, boundary, batch, good, 3, size, size, rows, err);
        if (!st && mirrored)
            st = hs_net_run(net, 0, boundary, mirrored, good, 3, size, size,
                            mirrors->owned + (size_t)out->count * out->dim, err);
        if (!st && o->sink) st = o->sink(o->sink_ctx, rows, good, err);
        out->count += good;
        if (o->progress)
            o->progress(o->progress_ctx, o->phase, start + n, total, now_seconds() - start_time);
    }
done:
    if (mirrors && !st) {
        /* the same images, row for row */
        mirrors->count = out->count;
        mirrors->labels = malloc((size_t)(out->count ? out->count : 1) * sizeof(int));
        mirrors->sample_index = malloc((size_t)(out->count ? out->count : 1) * sizeof(int));
        if (!mirrors->labels || !mirrors->sample_index) {
            st = hs_fail(err, HS_ERR_NOMEM, "out of memory");
        } else if (out->count) {
            memcpy(mirrors->labels, out->labels, (size_t)out->count * sizeof(int));
            memcpy(mirrors->sample_index, out->sample_index, (size_t)out->count * sizeof(int));
        }
    }
    free(batch);
    free(mirrored);
    free(features);
    free(errors);
    return st;
}
