#include "run_record.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "error.h"
#include "fileutil.h"
#include "finetune.h"
#include "json_bound.h"

static hs_status write_json(const char *dir, cJSON *root, hs_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/run.json", dir);
    char *text = cJSON_Print(root);
    if (!text) return hs_fail(err, HS_ERR_NOMEM, "out of memory writing %s", path);
    size_t length = strlen(text);
    text[length] = '\n'; /* replaces the terminator: write exactly length + 1 bytes */
    hs_status st = hs_write_file_atomic(path, text, length + 1, err);
    cJSON_free(text);
    return st;
}

static cJSON *float_array(const float *values, int count) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < count; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(values[i]));
    return a;
}

static cJSON *options_json(const hs_train_config *c, int img_size, int64_t train_images) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "backbone", c->backbone);
    cJSON_AddStringToObject(o, "weights", c->weights ? c->weights : "(pretrained, found)");
    cJSON_AddNumberToObject(o, "epochs", c->epochs);
    cJSON_AddNumberToObject(o, "batch_size", c->batch_size);
    cJSON_AddNumberToObject(o, "lr", c->lr);
    cJSON_AddNumberToObject(o, "momentum", c->momentum);
    cJSON_AddNumberToObject(o, "weight_decay", c->weight_decay);
    cJSON_AddStringToObject(o, "optimizer", c->optimizer);
    cJSON_AddNumberToObject(o, "img_size", img_size);
    cJSON_AddStringToObject(o, "train_layers", c->train_layers);
    cJSON_AddStringToObject(o, "strategy", c->strategy);
    cJSON_AddStringToObject(o, "class_weights", c->class_weights ? c->class_weights : "none");
    if (c->budget_seconds > 0) cJSON_AddNumberToObject(o, "budget_seconds", c->budget_seconds);
    cJSON_AddNumberToObject(o, "seed", (double)c->seed);
    cJSON_AddNumberToObject(o, "threads", c->threads);
    cJSON_AddNumberToObject(o, "val_fraction", c->val_fraction);
    cJSON_AddNumberToObject(o, "limit_train", c->limit_train);
    cJSON_AddNumberToObject(o, "limit_val", c->limit_val);
    cJSON_AddBoolToObject(o, "strict", c->strict);
    cJSON_AddBoolToObject(o, "bf16", c->bf16);
    cJSON_AddBoolToObject(o, "cache", !c->no_cache);
    cJSON_AddStringToObject(o, "feature_precision", c->feature_precision);
    cJSON_AddBoolToObject(o, "resume", c->resume);
    if (strcmp(c->strategy, "probe") != 0) {
        cJSON_AddNumberToObject(o, "probe_epochs", c->probe_epochs);
        cJSON_AddStringToObject(o, "unfreeze", c->unfreeze);
        cJSON_AddStringToObject(o, "bn", c->bn);
        /* the fine-tune step's convolutions (hs_tape.bf16 follows the network's precision) */
        cJSON_AddStringToObject(o, "finetune_precision", c->bf16 ? "bf16" : "f32");
        cJSON_AddNumberToObject(o, "finetune_lr", hs_finetune_base_lr(c, train_images));
        cJSON_AddNumberToObject(o, "layer_decay", c->layer_decay);
        cJSON_AddNumberToObject(o, "warmup_epochs", c->warmup_epochs);
        cJSON_AddStringToObject(o, "schedule", c->schedule);
        cJSON_AddNumberToObject(o, "mixup", c->mixup);
        cJSON_AddNumberToObject(o, "label_smoothing", c->label_smoothing);
        cJSON_AddNumberToObject(o, "crop_scale", c->crop_scale);
    }
    return o;
}

hs_status hs_run_record_write_start(const char *dir, const hs_train_config *c,
                                    const hs_dataset *train, const hs_dataset *val,
                                    const hs_net *net, const hs_preprocess *prep,
                                    const char *weights_path,
                                    const char *weights_sha, const float *class_weights,
                                    hs_error *err) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    cJSON_AddStringToObject(root, "format", "headstart-run");
    cJSON_AddNumberToObject(root, "format_version", HS_RUN_FORMAT_VERSION);
    cJSON_AddStringToObject(root, "headstart_version", HEADSTART_VERSION);
    cJSON_AddStringToObject(root, "status", "running");
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    cJSON_AddStringToObject(root, "started", when);

    cJSON_AddItemToObject(root, "classes",
                          cJSON_CreateStringArray((const char *const *)train->class_names,
                                                  train->class_count));
    cJSON *data = cJSON_AddObjectToObject(root, "data");
    cJSON_AddStringToObject(data, "path", c->data);
    cJSON_AddNumberToObject(data, "train_images", train->count);
    cJSON_AddNumberToObject(data, "val_images", val->count);
    cJSON_AddNumberToObject(data, "skipped_non_image_files",
                            train->skipped_files + val->skipped_files);

    cJSON *backbone = cJSON_AddObjectToObject(root, "backbone");
    cJSON_AddStringToObject(backbone, "name", net->info->name);
    cJSON_AddStringToObject(backbone, "weights", weights_path);
    cJSON_AddStringToObject(backbone, "weights_sha256", weights_sha);
    cJSON_AddStringToObject(backbone, "first_trained_layer", net->layers[net->head_begin].name);
    cJSON_AddNumberToObject(backbone, "seed", (double)c->seed);

    /* What the run resolved (pretrained_cfg.h: the weights file's version, a config.json
     * beside it, --img-size): predict and evaluate prepare images with exactly this. */
    const int img_size = prep->input_size;
    cJSON *pp = cJSON_AddObjectToObject(root, "preprocessing");
    cJSON_AddNumberToObject(pp, "img_size", img_size);
    cJSON_AddStringToObject(pp, "interpolation", hs_interpolation_name(prep->interpolation));
    cJSON_AddStringToObject(pp, "resize", "whole image to img_size x img_size, antialiased "
                                          "(PIL's filter), no crop");
    cJSON_AddItemToObject(pp, "mean", float_array(prep->mean, 3));
    cJSON_AddItemToObject(pp, "std", float_array(prep->std, 3));

    cJSON_AddItemToObject(root, "options", options_json(c, img_size, train->count));
    if (class_weights) { /* the resolved weight of each class, by name */
        cJSON *w = cJSON_AddObjectToObject(root, "class_weights");
        for (int k = 0; w && k < train->class_count; k++)
            cJSON_AddNumberToObject(w, train->class_names[k], class_weights[k]);
    }
    /* How many ranks trained it (dist.h): --batch-size is the global batch they split. */
    const hs_context *ctx = net->ctx ? net->ctx : hs_context_default();
    cJSON *parallel = cJSON_AddObjectToObject(root, "parallel");
    cJSON_AddNumberToObject(parallel, "world_size", ctx->world_size);
    cJSON_AddNumberToObject(parallel, "global_batch", c->batch_size);
    hs_status st = write_json(dir, root, err);
    cJSON_Delete(root);
    return st;
}

static cJSON *metrics_json(const hs_epoch_metrics *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "epoch", m->epoch);
    cJSON_AddNumberToObject(o, "train_loss", m->train_loss);
    cJSON_AddNumberToObject(o, "train_acc", m->train_acc);
    cJSON_AddNumberToObject(o, "val_loss", m->val_loss);
    cJSON_AddNumberToObject(o, "val_acc", m->val_acc);
    cJSON_AddNumberToObject(o, "seconds", m->seconds);
    return o;
}

static cJSON *failed_json(const hs_feature_set *a, const hs_feature_set *b) {
    cJSON *list = cJSON_CreateArray();
    for (int i = 0; list && i < a->failed_count; i++)
        cJSON_AddItemToArray(list, cJSON_CreateString(a->failed[i]));
    for (int i = 0; list && i < b->failed_count; i++)
        cJSON_AddItemToArray(list, cJSON_CreateString(b->failed[i]));
    return list;
}

static cJSON *load_json(const char *dir, hs_error *err) {
    char path[4200], *text = NULL;
    size_t size = 0;
    snprintf(path, sizeof path, "%s/run.json", dir);
    if (hs_read_file(path, 64u << 20, &text, &size, err)) return NULL;
    /* A run record is its class names and a few hundred other values; cJSON spends about 80
     * bytes a value, so more is refused before parsing (a 64 MB file could cost 2.5 GB). */
    if (hs_json_value_bound(text, size) > HS_MAX_CLASSES + 4096u) {
        free(text);
        hs_fail(err, HS_ERR_FORMAT, "%s holds more JSON values than a run record of %d classes "
                "can", path, HS_MAX_CLASSES);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(text, size);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        hs_fail(err, HS_ERR_FORMAT, "%s is not valid JSON", path);
        return NULL;
    }
    return root;
}

static void replace(cJSON *root, const char *key, cJSON *value) {
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    cJSON_AddItemToObject(root, key, value);
}

hs_status hs_run_record_write_end(const char *dir, const hs_train_result *r,
                                  const hs_feature_set *train, const hs_feature_set *val,
                                  hs_status status, const char *message, hs_error *err) {
    cJSON *root = load_json(dir, err);
    if (!root) return err->code;
    const char *word = status == HS_OK ? "completed"
                       : status == HS_ERR_INTERRUPTED ? "interrupted"
                                                      : "failed";
    replace(root, "status", cJSON_CreateString(word));
    if (message) replace(root, "error", cJSON_CreateString(message));
    cJSON *metrics = cJSON_CreateObject();
    cJSON_AddNumberToObject(metrics, "epochs_run", r->epochs_run);
    if (r->epochs_run > 0) {
        cJSON_AddItemToObject(metrics, "final", metrics_json(&r->last));
        cJSON_AddItemToObject(metrics, "best", metrics_json(&r->best));
    }
    replace(root, "metrics", metrics);
    if (r->finetune_first_layer[0]) {
        /* model.safetensors holds the whole network; stage 1's probe is reported here (its
         * epochs are not in metrics.csv, which covers the fine-tune epochs). */
        cJSON *ft = cJSON_CreateObject();
        cJSON_AddNumberToObject(ft, "first_trained_layer_index", r->unfreeze_boundary);
        cJSON_AddStringToObject(ft, "first_trained_layer", r->finetune_first_layer);
        cJSON_AddNumberToObject(ft, "images_per_second", r->finetune_images_per_second);
        cJSON_AddNumberToObject(ft, "probe_epochs_run", r->probe_epochs_run);
        if (r->probe_epochs_run > 0) cJSON_AddItemToObject(ft, "probe", metrics_json(&r->probe));
        replace(root, "finetune", ft);
    }
    cJSON *timings = cJSON_CreateObject();
    cJSON_AddNumberToObject(timings, "feature_seconds", r->feature_seconds);
    cJSON_AddNumberToObject(timings, "feature_images_per_second", r->feature_images_per_second);
    cJSON_AddNumberToObject(timings, "train_seconds", r->train_seconds);
    cJSON_AddNumberToObject(timings, "total_seconds", r->total_seconds);
    /* 0, 1 or 2: how many of the train and validation feature sets came from the cache. */
    cJSON_AddNumberToObject(timings, "feature_sets_from_cache", r->cached_sides);
    replace(root, "timings", timings);
    replace(root, "skipped_images", failed_json(train, val));
    hs_status st = write_json(dir, root, err);
    cJSON_Delete(root);
    return st;
}

hs_status hs_run_record_write_auto(const char *dir, const hs_auto_input *in,
                                   const hs_auto_plan *plan, const hs_train_result *r,
                                   hs_error *err) {
    cJSON *root = load_json(dir, err);
    if (!root) return err->code;
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "budget_seconds", in->budget_seconds);
    cJSON_AddNumberToObject(a, "spent_before_plan_seconds", in->spent_seconds);
    cJSON_AddNumberToObject(a, "usable_seconds", plan->usable_seconds);
    cJSON_AddNumberToObject(a, "finetune_epoch_overhead_seconds", in->epoch_overhead_seconds);
    cJSON_AddNumberToObject(a, "finetune_setup_seconds", in->finetune_setup_seconds);
    cJSON_AddNumberToObject(a, "head_epoch_seconds", in->head_epoch_seconds);
    cJSON_AddNumberToObject(a, "memory_available_bytes", in->memory_available_bytes);
    cJSON *rates = cJSON_AddArrayToObject(a, "measured");
    for (int k = 0; rates && k < in->size_count; k++) {
        cJSON *one = cJSON_CreateObject();
        cJSON_AddNumberToObject(one, "img_size", in->sizes[k]);
        cJSON_AddNumberToObject(one, "feature_images_per_second", in->feature_ips[k]);
        cJSON_AddNumberToObject(one, "finetune_images_per_second", in->finetune_ips[k]);
        cJSON_AddNumberToObject(one, "finetune_peak_bytes", in->finetune_bytes[k]);
        cJSON_AddNumberToObject(one, "finetune_cpu_ms_per_image", in->finetune_cpu_ms[k]);
        cJSON_AddItemToArray(rates, one);
    }
    cJSON *choice = cJSON_AddObjectToObject(a, "choice");
    cJSON_AddStringToObject(choice, "strategy", plan->finetune ? "finetune" : "probe");
    cJSON_AddNumberToObject(choice, "img_size", plan->img_size);
    cJSON_AddNumberToObject(choice, "probe_epochs", plan->probe_epochs);
    cJSON_AddNumberToObject(choice, "finetune_epochs", plan->epochs);
    cJSON_AddStringToObject(a, "why", plan->why);
    /* Estimates cover what follows the plan; actual: the same stages as the run timed them. */
    cJSON *est = cJSON_AddObjectToObject(a, "estimate");
    cJSON_AddNumberToObject(est, "feature_seconds", plan->feature_seconds);
    cJSON_AddNumberToObject(est, "finetune_seconds", plan->finetune_seconds);
    if (plan->epochs > 0)
        cJSON_AddNumberToObject(est, "finetune_epoch_seconds", plan->finetune_seconds / plan->epochs);
    cJSON_AddNumberToObject(est, "after_plan_seconds", plan->estimate_seconds);
    cJSON *act = cJSON_AddObjectToObject(a, "actual");
    cJSON_AddNumberToObject(act, "feature_seconds", r->feature_seconds);
    cJSON_AddNumberToObject(act, plan->finetune ? "finetune_seconds" : "head_seconds",
                            r->train_seconds);
    cJSON_AddNumberToObject(act, "after_plan_seconds", r->total_seconds - in->spent_seconds);
    cJSON_AddNumberToObject(act, "total_seconds", r->total_seconds);
    replace(root, "auto", a);
    hs_status st = write_json(dir, root, err);
    cJSON_Delete(root);
    return st;
}

/* ---- Reading it back ------------------------------------------------------------------- */

/* A string field into out; 0 when it is absent or would not fit (never a shortened path). */
static int copy_string(const cJSON *obj, const char *key, char *out, size_t size) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(item) || strlen(item->valuestring) >= size) return 0;
    snprintf(out, size, "%s", item->valuestring);
    return 1;
}

static int copy_floats(const cJSON *obj, const char *key, float *out, int count) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != count) return 0;
    for (int i = 0; i < count; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(x)) return 0;
        out[i] = (float)x->valuedouble;
    }
    return 1;
}

hs_status hs_run_record_load(const char *dir, hs_run_record *out, hs_error *err) {
    memset(out, 0, sizeof *out);
    if (!hs_is_dir(dir)) return hs_fail(err, HS_ERR_IO, "%s is not a run folder", dir);
    cJSON *root = load_json(dir, err);
    if (!root) return err->code;
    hs_status st = HS_OK;
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "format_version");
    const cJSON *backbone = cJSON_GetObjectItemCaseSensitive(root, "backbone");
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "preprocessing");
    const cJSON *options = cJSON_GetObjectItemCaseSensitive(root, "options");
    const cJSON *classes = cJSON_GetObjectItemCaseSensitive(root, "classes");
    const cJSON *size = pp ? cJSON_GetObjectItemCaseSensitive(pp, "img_size") : NULL;
    const cJSON *seed = backbone ? cJSON_GetObjectItemCaseSensitive(backbone, "seed") : NULL;
    if (!cJSON_IsNumber(version) || version->valueint != HS_RUN_FORMAT_VERSION) {
        st = hs_fail(err, HS_ERR_FORMAT, "%s/run.json is of format version %d; this headstart "
                     "reads version %d", dir, cJSON_IsNumber(version) ? version->valueint : -1,
                     HS_RUN_FORMAT_VERSION);
    } else if (!copy_string(backbone, "name", out->backbone, sizeof out->backbone) ||
               !copy_string(backbone, "weights", out->weights_path, sizeof out->weights_path) ||
               !copy_string(backbone, "weights_sha256", out->weights_sha256,
                            sizeof out->weights_sha256) ||
               !copy_string(options, "train_layers", out->train_layers,
                            sizeof out->train_layers) ||
               !cJSON_IsNumber(size) || !copy_floats(pp, "mean", out->mean, 3) ||
               !copy_floats(pp, "std", out->std, 3) || !cJSON_IsArray(classes) ||
               !cJSON_IsNumber(seed)) {
        st = hs_fail(err, HS_ERR_FORMAT, "%s/run.json lacks fields a run record has", dir);
    } else if (size->valueint < 1 || size->valueint > 4096) {
        st = hs_fail(err, HS_ERR_FORMAT, "%s/run.json: invalid img_size", dir);
    } else if (!(seed->valuedouble >= 0.0 && seed->valuedouble < 18446744073709551616.0)) {
        /* converting a double outside uint64's range is undefined behaviour */
        st = hs_fail(err, HS_ERR_FORMAT, "%s/run.json: invalid backbone seed", dir);
    }
    const cJSON *interp = pp ? cJSON_GetObjectItemCaseSensitive(pp, "interpolation") : NULL;
    if (!st && interp &&
        !(cJSON_IsString(interp) && hs_interpolation_parse(interp->valuestring,
                                                           &out->interpolation)))
        st = hs_fail(err, HS_ERR_FORMAT, "%s/run.json: interpolation must be \"bilinear\" or "
                     "\"bicubic\"", dir);
    if (!st) {
        out->img_size = size->valueint;
        /* Absent in runs written before the flag existed: float32. */
        const cJSON *bf16 = cJSON_GetObjectItemCaseSensitive(options, "bf16");
        out->bf16 = cJSON_IsTrue(bf16);
        if (!copy_string(options, "strategy", out->strategy, sizeof out->strategy))
            snprintf(out->strategy, sizeof out->strategy, "probe");
        if (strcmp(out->strategy, "probe") != 0 && strcmp(out->strategy, "finetune") != 0)
            st = hs_fail(err, HS_ERR_FORMAT, "%s/run.json: unknown strategy '%s'", dir,
                         out->strategy);
    }
    if (!st) {
        out->seed = (uint64_t)seed->valuedouble;
        /* Checked before the names are copied: the count sizes the head hs_model_open builds. */
        int n = cJSON_GetArraySize(classes);
        if (n > HS_MAX_CLASSES)
            st = hs_fail(err, HS_ERR_FORMAT, "%s/run.json names %d classes, over the limit of %d",
                         dir, n, HS_MAX_CLASSES);
        if (!st && !(out->classes = calloc((size_t)(n ? n : 1), sizeof *out->classes)))
            st = hs_fail(err, HS_ERR_NOMEM, "out of memory");
        /* Walked as a list: cJSON_GetArrayItem(i) walks from the start each time. */
        const cJSON *name = classes->child;
        for (int i = 0; !st && i < n; i++, name = name->next) {
            if (!cJSON_IsString(name) || strlen(name->valuestring) > HS_CLASS_NAME_MAX)
                st = hs_fail(err, HS_ERR_FORMAT, "%s/run.json: class %d is not a name of at "
                             "most %d bytes", dir, i, HS_CLASS_NAME_MAX);
            else if (!(out->classes[i] = strdup(name->valuestring)))
                st = hs_fail(err, HS_ERR_NOMEM, "out of memory");
            else out->class_count++;
        }
        if (!st && out->class_count < 2)
            st = hs_fail(err, HS_ERR_FORMAT, "%s/run.json names fewer than 2 classes", dir);
    }
    cJSON_Delete(root);
    if (st) hs_run_record_free(out);
    return st;
}

void hs_run_record_free(hs_run_record *r) {
    for (int i = 0; i < r->class_count; i++) free(r->classes[i]);
    free(r->classes);
    r->classes = NULL;
    r->class_count = 0;
}

/* Writes a CSV field, quoted when it needs it. */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

hs_status hs_write_confusion_csv(const char *dir, const int *m, int classes,
                                 const char *const *names, hs_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/confusion.csv", dir);
    /* Streamed into memory, so the text is as long as the names make it. */
    char *text = NULL;
    size_t used = 0;
    FILE *f = open_memstream(&text, &used);
    if (!f) return hs_fail(err, HS_ERR_NOMEM, "out of memory writing %s", path);
    fputs("true\\predicted", f);
    for (int j = 0; j < classes; j++) {
        fputc(',', f);
        csv_field(f, names[j]);
    }
    fputc('\n', f);
    for (int i = 0; i < classes; i++) {
        csv_field(f, names[i]);
        for (int j = 0; j < classes; j++) fprintf(f, ",%d", m[i * classes + j]);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) || bad) {
        free(text);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory writing %s", path);
    }
    hs_status st = hs_write_file_atomic(path, text, used, err);
    free(text);
    return st;
}
