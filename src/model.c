/* A trained model opened from its run folder: predict and evaluate. The class map, the
 * preprocessing and the head come from the run folder, never re-derived from data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment.h"
#include "checkpoint.h"
#include "error.h"
#include "feature_set.h"
#include "fileutil.h"
#include "hash.h"
#include "ops_ref.h"
#include "run_record.h"

struct hs_model {
    hs_run_record record;
    hs_net *net;
    int begin; /* the first trained layer */
    hs_tta tta;
};

void hs_model_set_tta(hs_model *m, hs_tta tta) { m->tta = tta; }

hs_status hs_model_set_img_size(hs_model *m, int size, hs_error *err) {
    if (size < 32 || size > 1024)
        return hs_fail(err, HS_ERR_ARGUMENT, "--img-size must be 32..1024, not %d", size);
    int c = 0, h = 0, w = 0, c0 = 0, h0 = 0, w0 = 0, trained = m->record.img_size;
    hs_status st = hs_net_shape(m->net, 0, m->begin, 3, size, size, &c, &h, &w, err);
    if (!st) st = hs_net_shape(m->net, 0, m->begin, 3, trained, trained, &c0, &h0, &w0, err);
    if (st) return st;
    /* A head sized for one feature map (VGG's flattened 7 x 7 without its adaptive pool, say)
     * cannot take another. */
    if ((int64_t)c * h * w != (int64_t)c0 * h0 * w0)
        return hs_fail(err, HS_ERR_ARGUMENT, "at %d px the backbone gives %d x %d x %d features, "
                       "the head was trained on %d x %d x %d (at %d px)", size, c, h, w, c0, h0,
                       w0, trained);
    m->record.img_size = size;
    return HS_OK;
}

static hs_status load_backbone(hs_model *m, const char *weights, hs_error *err) {
    const hs_backbone_info *info = hs_backbone_find(m->record.backbone);
    char path[4096];
    if (strcmp(m->record.weights_path, "none") == 0 && !weights)
        return HS_OK; /* random backbone, recreated from the run's seed */
    if (weights) {
        snprintf(path, sizeof path, "%s", weights);
    } else if (hs_path_exists(m->record.weights_path) && !hs_is_dir(m->record.weights_path)) {
        snprintf(path, sizeof path, "%s", m->record.weights_path);
    } else {
        hs_status st = hs_find_weights(info, path, sizeof path, err);
        if (st) return st;
    }
    char sha[65];
    hs_status st = hs_sha256_file(path, sha, err);
    if (st) return st;
    if (strcmp(sha, m->record.weights_sha256) != 0)
        return hs_fail(err, HS_ERR_MISMATCH,
                       "%s is not the backbone file this model was trained on (sha256 %.12s..., "
                       "the run used %.12s...)",
                       path, sha, m->record.weights_sha256);
    return hs_net_load_weights(m->net, path, err);
}

hs_status hs_model_open(const char *run_dir, const char *weights, hs_model **out,
                        hs_error *err) {
    *out = NULL;
    hs_model *m = calloc(1, sizeof *m);
    if (!m) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    hs_status st = hs_run_record_load(run_dir, &m->record, err);
    if (!st && !hs_backbone_find(m->record.backbone))
        st = hs_fail(err, HS_ERR_FORMAT, "%s was trained on backbone '%s', unknown here",
                     run_dir, m->record.backbone);
    if (!st) st = hs_net_create(m->record.backbone, m->record.seed, &m->net, err);
    if (!st) m->net->bf16 = m->record.bf16;
    hs_head_kind kind = strcmp(m->record.train_layers, "classifier") == 0 ? HS_HEAD_CLASSIFIER
                                                                          : HS_HEAD_LAST_LAYER;
    if (!st)
        st = hs_net_replace_head(m->net, m->record.class_count, kind, 0, err);
    int finetuned = !st && strcmp(m->record.strategy, "finetune") == 0;
    /* A fine-tuned run's model.safetensors is the whole network: no backbone file needed. */
    if (!st && !finetuned) st = load_backbone(m, weights, err);
    if (!st) {
        char path[4200];
        m->begin = m->net->head_begin;
        snprintf(path, sizeof path, "%s/model.safetensors", run_dir);
        st = finetuned ? hs_net_load_weights(m->net, path, err)
                       : hs_load_head(path, m->net, m->begin, err);
    }
    if (st) {
        hs_model_free(m);
        return st;
    }
    *out = m;
    return HS_OK;
}

void hs_model_free(hs_model *m) {
    if (!m) return;
    hs_net_free(m->net);
    hs_run_record_free(&m->record);
    free(m);
}

int hs_model_num_classes(const hs_model *m) { return m->record.class_count; }

const char *hs_model_class_name(const hs_model *m, int index) {
    if (index < 0 || index >= m->record.class_count) return "";
    return m->record.classes[index];
}

/* Softmax of the network over n prepared images, into probs (n x classes). With a second
 * batch (the mirror images), the mean of both softmaxes. */
static hs_status softmax_of(hs_model *m, const float *batch, const float *mirrored, int n,
                            float *logits, float *probs, hs_error *err) {
    int size = m->record.img_size, classes = m->record.class_count;
    hs_status st = hs_net_forward(m->net, batch, n, size, size, probs, err);
    if (st) return st;
    hs_softmax_forward_ref(probs, n, classes, probs);
    if (!mirrored) return HS_OK;
    if ((st = hs_net_forward(m->net, mirrored, n, size, size, logits, err))) return st;
    hs_softmax_forward_ref(logits, n, classes, logits);
    for (size_t i = 0; i < (size_t)n * classes; i++) probs[i] = 0.5f * (probs[i] + logits[i]);
    return HS_OK;
}

hs_status hs_model_predict_files(hs_model *m, const char *const *paths, int n, float *probs,
                                 hs_error *errors, hs_error *err) {
    int size = m->record.img_size, classes = m->record.class_count;
    int flip = m->tta == HS_TTA_FLIP;
    size_t image_floats = (size_t)3 * size * size;
    float *batch = malloc((size_t)n * image_floats * sizeof(float));
    float *mirrored = flip ? malloc((size_t)n * image_floats * sizeof(float)) : NULL;
    float *logits = malloc((size_t)n * classes * sizeof(float));
    float *out = malloc((size_t)n * classes * sizeof(float));
    int *rows = malloc((size_t)n * sizeof(int));
    hs_status st = HS_OK;
    if (!batch || (flip && !mirrored) || !logits || !out || !rows) {
        st = hs_fail(err, HS_ERR_NOMEM, "out of memory for %d images", n);
        goto done;
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; i++) {
        hs_image img = {0};
        errors[i].code = hs_image_load(paths[i], &img, &errors[i]);
        if (!errors[i].code)
            errors[i].code = hs_image_prepare_square(&img, size, m->record.interpolation,
                                                     m->record.mean, m->record.std,
                                                     batch + (size_t)i * image_floats, &errors[i]);
        if (!errors[i].code && flip) {
            hs_image_flip_horizontal(&img);
            errors[i].code = hs_image_prepare_square(&img, size, m->record.interpolation,
                                                     m->record.mean, m->record.std,
                                                     mirrored + (size_t)i * image_floats,
                                                     &errors[i]);
        }
        hs_image_free(&img);
    }
    int good = 0;
    for (int i = 0; i < n; i++) {
        if (errors[i].code) continue;
        if (good != i) {
            memmove(batch + (size_t)good * image_floats, batch + (size_t)i * image_floats,
                    image_floats * sizeof(float));
            if (flip)
                memmove(mirrored + (size_t)good * image_floats,
                        mirrored + (size_t)i * image_floats, image_floats * sizeof(float));
        }
        rows[good++] = i;
    }
    memset(probs, 0, (size_t)n * classes * sizeof(float));
    if (good == 0) goto done;
    if ((st = softmax_of(m, batch, mirrored, good, logits, out, err))) goto done;
    for (int g = 0; g < good; g++)
        memcpy(probs + (size_t)rows[g] * classes, out + (size_t)g * classes,
               (size_t)classes * sizeof(float));
done:
    free(batch);
    free(mirrored);
    free(logits);
    free(out);
    free(rows);
    return st;
}

/* Maps DATA's class indices onto the model's; every class must exist on both sides. */
static hs_status match_classes(const hs_model *m, const hs_dataset *ds, int *map,
                               hs_error *err) {
    char missing[600] = "", unknown[600] = "";
    for (int i = 0; i < ds->class_count; i++) {
        map[i] = -1;
        for (int k = 0; k < m->record.class_count; k++)
            if (strcmp(ds->class_names[i], m->record.classes[k]) == 0) map[i] = k;
        if (map[i] < 0 && strlen(unknown) + strlen(ds->class_names[i]) + 4 < sizeof unknown)
            snprintf(unknown + strlen(unknown), sizeof unknown - strlen(unknown), "%s'%s'",
                     unknown[0] ? ", " : "", ds->class_names[i]);
    }
    for (int k = 0; k < m->record.class_count; k++) {
        int found = 0;
        for (int i = 0; i < ds->class_count; i++) found |= map[i] == k;
        if (!found && strlen(missing) + strlen(m->record.classes[k]) + 4 < sizeof missing)
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s'%s'",
                     missing[0] ? ", " : "", m->record.classes[k]);
    }
    if (unknown[0])
        return hs_fail(err, HS_ERR_MISMATCH, "the data has classes the model does not know: %s",
                       unknown);
    if (missing[0])
        return hs_fail(err, HS_ERR_MISMATCH, "the data lacks classes of the model: %s",
                       missing);
    return HS_OK;
}

/* --tta flip: the head over both feature sets (the images and their mirrors, row for row),
 * the mean of the two softmaxes, its loss (-log of the label's mean probability), argmax and
 * confusion. */
static hs_status evaluate_flip(hs_model *m, const hs_feature_set *fs, const hs_feature_set *fm,
                               hs_batch_result *r, int *confusion, hs_error *err) {
    enum { CHUNK = 256 };
    int classes = m->record.class_count, dim = fs->dim;
    int size = m->record.img_size, c = 0, h = 0, w = 0;
    hs_status st = hs_net_shape(m->net, 0, m->begin, 3, size, size, &c, &h, &w, err);
    if (st) return st;
    float *a = malloc((size_t)CHUNK * classes * sizeof(float));
    float *b = malloc((size_t)CHUNK * classes * sizeof(float));
    if (!a || !b) st = hs_fail(err, HS_ERR_NOMEM, "out of memory evaluating");
    if (!st && (fm->count != fs->count || fm->dim != dim))
        st = hs_fail(err, HS_ERR_INTERNAL, "mirror features: %d rows of %d, not %d of %d",
                     fm->count, fm->dim, fs->count, dim);
    for (int first = 0; !st && first < fs->count; first += CHUNK) {
        int n = fs->count - first < CHUNK ? fs->count - first : CHUNK;
        if ((st = hs_net_run(m->net, m->begin, m->net->count, fs->values + (size_t)first * dim,
                             n, c, h, w, a, err)) ||
            (st = hs_net_run(m->net, m->begin, m->net->count, fm->values + (size_t)first * dim,
                             n, c, h, w, b, err)))
            break;
        hs_softmax_forward_ref(a, n, classes, a);
        hs_softmax_forward_ref(b, n, classes, b);
        for (int i = 0; i < n; i++) {
            const float *pa = a + (size_t)i * classes, *pb = b + (size_t)i * classes;
            int truth = fs->labels[first + i], guess = 0;
            double best = -1;
            for (int k = 0; k < classes; k++) {
                double p = 0.5 * ((double)pa[k] + pb[k]);
                if (p > best) {
                    best = p;
                    guess = k;
                }
            }
            double p_truth = 0.5 * ((double)pa[truth] + pb[truth]);
            r->loss_sum += -log(p_truth > 1e-300 ? p_truth : 1e-300);
            r->correct += guess == truth;
            confusion[truth * classes + guess]++;
        }
    }
    free(a);
    free(b);
    return st;
}

hs_status hs_model_evaluate(hs_model *m, const char *data, const hs_train_callbacks *cb,
                            hs_eval_result *out, hs_error *err) {
    memset(out, 0, sizeof *out);
    hs_dataset ds;
    hs_status st = hs_dataset_open_eval(data, &ds, err);
    int classes = m->record.class_count;
    int *map = NULL;
    hs_feature_set fs = {0}, fm = {0};
    if (!st) {
        map = malloc((size_t)ds.class_count * sizeof *map);
        out->confusion = calloc((size_t)classes * classes, sizeof(int));
        if (!map || !out->confusion) st = hs_fail(err, HS_ERR_NOMEM, "out of memory");
    }
    if (!st) st = match_classes(m, &ds, map, err);
    hs_feature_options o = {0};
    if (!st) {
        o.img_size = m->record.img_size;
        o.interpolation = m->record.interpolation;
        memcpy(o.mean, m->record.mean, sizeof o.mean);
        memcpy(o.std, m->record.std, sizeof o.std);
        o.batch_size = 32;
        o.progress = cb ? cb->progress : NULL;
        o.progress_ctx = cb ? cb->ctx : NULL;
        o.phase = "evaluate";
        o.stop = cb ? cb->stop : NULL;
        /* --tta flip: each decoded image's mirror through the backbone too, in the same pass
         * (for a head-only run that is the frozen backbone, for a fine-tuned one the whole
         * network up to its head). */
        st = hs_extract_features_mirrored(m->net, m->begin, &ds, &o, &fs,
                                          m->tta == HS_TTA_FLIP ? &fm : NULL, err);
    }
    if (!st) {
        for (int i = 0; i < fs.count; i++) fs.labels[i] = map[fs.labels[i]];
        for (int i = 0; cb && cb->note && i < fs.failed_count; i++)
            cb->note(cb->ctx, fs.failed[i]);
        hs_batch_result r = {0};
        if (fs.count > 0 && m->tta == HS_TTA_FLIP)
            st = evaluate_flip(m, &fs, &fm, &r, out->confusion, err);
        else if (fs.count > 0)
            st = hs_head_evaluate(m->net, m->begin, fs.values, fs.labels, fs.count, 256, &r,
                                  out->confusion, NULL, err);
        out->images = fs.count;
        out->correct = r.correct;
        out->loss = fs.count ? r.loss_sum / fs.count : 0;
        out->classes = classes;
        out->skipped = fs.failed_count;
    }
    hs_feature_set_free(&fs);
    hs_feature_set_free(&fm);
    free(map);
    hs_dataset_free(&ds);
    return st;
}

void hs_eval_result_free(hs_eval_result *r) {
    free(r->confusion);
    memset(r, 0, sizeof *r);
}
