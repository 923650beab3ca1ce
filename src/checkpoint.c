#include "checkpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fileutil.h"
#include "json_bound.h"
#include "safetensors.h"

/* ---- Head weights ------------------------------------------------------------------------ */

static hs_status head_params(const hs_net *net, int begin, hs_param_ref **refs, int *count,
                             hs_error *err) {
    hs_param_ref *all = NULL;
    int n = 0, kept = 0;
    hs_status st = hs_net_params((hs_net *)net, &all, &n, err);
    if (st) return st;
    for (int i = 0; i < n; i++)
        if (all[i].layer >= begin) all[kept++] = all[i];
    *refs = all;
    *count = kept;
    return HS_OK;
}

static hs_status add_params(hs_state_dict *sd, const hs_param_ref *refs, int count,
                            hs_error *err) {
    for (int i = 0; i < count; i++) {
        hs_status st = hs_sd_add_copy(sd, refs[i].key, refs[i].ndim, refs[i].shape,
                                      *refs[i].data, err);
        if (st) return st;
    }
    return HS_OK;
}

hs_status hs_save_head(const char *path, const hs_net *net, int begin, const char *backbone,
                       hs_error *err) {
    hs_param_ref *refs = NULL;
    int count = 0;
    hs_status st = head_params(net, begin, &refs, &count, err);
    if (st) return st;
    hs_state_dict sd;
    hs_sd_init(&sd);
    st = add_params(&sd, refs, count, err);
    char classes[16];
    snprintf(classes, sizeof classes, "%d", net->num_classes);
    hs_kv meta[] = {{"format", "headstart-head"}, {"backbone", backbone},
                    {"num_classes", classes}};
    if (!st) st = hs_safetensors_save(path, &sd, meta, 3, err);
    hs_sd_free(&sd);
    free(refs);
    return st;
}

/* Copies every head parameter from sd; with prefix, keys are looked up as prefix + key. */
static hs_status take_params(const hs_state_dict *sd, const hs_param_ref *refs, int count,
                             const char *source, hs_error *err) {
    for (int i = 0; i < count; i++) {
        const hs_sd_entry *e = hs_sd_find(sd, refs[i].key);
        int64_t numel = hs_param_numel(&refs[i]);
        if (!e)
            return hs_fail(err, HS_ERR_MISMATCH, "%s has no %s", source, refs[i].key);
        int same = e->ndim == refs[i].ndim;
        for (int d = 0; same && d < e->ndim; d++) same = e->shape[d] == refs[i].shape[d];
        if (!same)
            return hs_fail(err, HS_ERR_MISMATCH, "%s: %s has another shape than this head's",
                           source, refs[i].key);
        memcpy(*refs[i].data, e->data, (size_t)numel * sizeof(float));
    }
    return HS_OK;
}

hs_status hs_load_head(const char *path, hs_net *net, int begin, hs_error *err) {
    hs_param_ref *refs = NULL;
    int count = 0;
    hs_status st = head_params(net, begin, &refs, &count, err);
    if (st) return st;
    hs_state_dict sd;
    hs_sd_init(&sd);
    st = hs_safetensors_load(path, &sd, err);
    if (!st && (int)sd.count != count)
        st = hs_fail(err, HS_ERR_MISMATCH, "%s holds %zu tensors, this head has %d", path,
                     sd.count, count);
    if (!st) st = take_params(&sd, refs, count, path, err);
    hs_sd_free(&sd);
    free(refs);
    net->prepared = 0;
    return st;
}

/* ---- Checkpoints ------------------------------------------------------------------------- */

/* Version 2: the identity holds the file lists' hashes and exact floats, and each epoch's
 * shuffle and dropout come from independent streams; a version-1 checkpoint cannot resume
 * the same run. */
#define CHECKPOINT_FORMAT "headstart-checkpoint-2"

/* cJSON writes a NaN or infinity as null, which the loader (rightly) refuses: such a value
 * is refused here instead, so that no checkpoint is written that cannot be read back. */
static hs_status check_history(const hs_epoch_metrics *history, int count, const char *path,
                               hs_error *err) {
    static const char *const names[] = {"train loss", "train accuracy", "validation loss",
                                        "validation accuracy", "seconds"};
    for (int i = 0; i < count; i++) {
        const hs_epoch_metrics *m = &history[i];
        double values[] = {m->train_loss, m->train_acc, m->val_loss, m->val_acc, m->seconds};
        if (m->epoch != i + 1)
            return hs_fail(err, HS_ERR_INTERNAL, "cannot save %s: row %d is of epoch %d", path,
                           i + 1, m->epoch);
        for (int k = 0; k < 5; k++)
            if (!isfinite(values[k]))
                return hs_fail(err, HS_ERR_DIVERGED,
                               "cannot save %s: the %s of epoch %d is %g, which a checkpoint "
                               "cannot hold", path, names[k], m->epoch, values[k]);
    }
    return HS_OK;
}

/* The metrics as a JSON array of rows, each double written with 17 digits so that it reads back
 * exactly (cJSON's own printer stops at 15 when the value is within its epsilon, so 0.1 + 0.2
 * would come back as 0.3). The values are finite (check_history). NULL when out of memory. */
static char *history_json(const hs_epoch_metrics *history, int count) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) return NULL;
    fputc('[', f);
    for (int i = 0; i < count; i++) {
        const hs_epoch_metrics *m = &history[i];
        fprintf(f, "%s[%d,%.17g,%.17g,%.17g,%.17g,%.17g]", i ? "," : "", m->epoch,
                m->train_loss, m->train_acc, m->val_loss, m->val_acc, m->seconds);
    }
    fputc(']', f);
    int bad = ferror(f);
    if (fclose(f) || bad) {
        free(text);
        return NULL;
    }
    return text;
}

hs_status hs_checkpoint_save(const char *path, const hs_head_trainer *t,
                             const hs_epoch_metrics *history, int epochs_done,
                             const char *identity, hs_error *err) {
    return hs_checkpoint_save_net(path, t->net, t->begin, &t->optimizer, history, epochs_done,
                                  identity, err);
}

hs_status hs_checkpoint_save_net(const char *path, const hs_net *net, int begin,
                                 const hs_optimizer *opt, const hs_epoch_metrics *history,
                                 int epochs_done, const char *identity, hs_error *err) {
    if (epochs_done < 0 || epochs_done > HS_MAX_EPOCHS)
        return hs_fail(err, HS_ERR_INTERNAL, "cannot save %s: %d epochs", path, epochs_done);
    hs_status st = check_history(history, epochs_done, path, err);
    if (st) return st;
    hs_param_ref *refs = NULL;
    int count = 0;
    st = head_params(net, begin, &refs, &count, err);
    if (st) return st;
    hs_state_dict sd;
    hs_sd_init(&sd);
    st = add_params(&sd, refs, count, err);
    /* The optimizer's buffers, under "optimizer.<key>.m" and ".v". */
    for (int i = 0; !st && i < opt->count; i++) {
        const hs_opt_param *p = &opt->params[i];
        char key[256];
        int64_t shape[1] = {p->count};
        snprintf(key, sizeof key, "optimizer.%s.m", p->key);
        st = hs_sd_add_copy(&sd, key, 1, shape, p->m, err);
        if (!st && p->v) {
            snprintf(key, sizeof key, "optimizer.%s.v", p->key);
            st = hs_sd_add_copy(&sd, key, 1, shape, p->v, err);
        }
    }
    /* BatchNorm's batch counts (PyTorch's num_batches_tracked) of the trained range, so a
     * resumed fine-tune saves the same network as one never stopped. */
    for (int i = begin; !st && i < net->count; i++) {
        const hs_layer *l = &net->layers[i];
        if (l->kind != HS_LAYER_BATCHNORM) continue;
        char key[256];
        float tracked = (float)l->bn_batches_tracked;
        snprintf(key, sizeof key, "%s.num_batches_tracked", l->name);
        st = hs_sd_add_copy(&sd, key, 0, NULL, &tracked, err);
    }
    char epochs[32], steps[32];
    snprintf(epochs, sizeof epochs, "%d", epochs_done);
    snprintf(steps, sizeof steps, "%lld", (long long)opt->steps);
    char *metrics = history_json(history, epochs_done);
    if (!st && !metrics) st = hs_fail(err, HS_ERR_NOMEM, "out of memory saving %s", path);
    hs_kv meta[] = {{"format", CHECKPOINT_FORMAT}, {"identity", identity},
                    {"epochs_done", epochs}, {"optimizer_steps", steps},
                    {"metrics", metrics ? metrics : "[]"}};
    if (!st) st = hs_safetensors_save(path, &sd, meta, 5, err);
    free(metrics);
    hs_sd_free(&sd);
    free(refs);
    return st;
}

/* Reads the "__metadata__" object of a safetensors header. */
static hs_status read_metadata(const char *path, cJSON **out, hs_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return hs_fail(err, HS_ERR_IO, "cannot open %s", path);
    unsigned char len_bytes[8];
    uint64_t len = 0;
    if (fread(len_bytes, 1, 8, f) == 8)
        for (int i = 7; i >= 0; i--) len = (len << 8) | len_bytes[i];
    char *header = len > 0 && len <= HS_ST_MAX_HEADER ? malloc(len + 1) : NULL;
    int ok = header && fread(header, 1, len, f) == len;
    fclose(f);
    if (!ok) {
        free(header);
        return hs_fail(err, HS_ERR_FORMAT, "%s: unreadable safetensors header", path);
    }
    header[len] = '\0';
    /* The bound the safetensors reader applies: cJSON must not spend 40 times the header. */
    if (hs_json_value_bound(header, len) > HS_ST_MAX_JSON_VALUES) {
        free(header);
        return hs_fail(err, HS_ERR_NOMEM, "%s: the header holds more JSON values than %d "
                       "tensors can need", path, HS_SD_MAX_TENSORS);
    }
    cJSON *root = cJSON_ParseWithLength(header, len);
    free(header);
    cJSON *meta = cJSON_DetachItemFromObject(root, "__metadata__");
    cJSON_Delete(root);
    if (!cJSON_IsObject(meta)) {
        cJSON_Delete(meta);
        return hs_fail(err, HS_ERR_FORMAT, "%s has no metadata: not a headstart checkpoint",
                       path);
    }
    *out = meta;
    return HS_OK;
}

static const char *meta_string(const cJSON *meta, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(meta, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static hs_status parse_history(const char *text, hs_epoch_metrics *history, int expected,
                               const char *path, hs_error *err) {
    /* The history of `expected` epochs is one array of rows of 6 numbers: 7 values a row. */
    size_t len = text ? strlen(text) : 0;
    if (text && hs_json_value_bound(text, len) > 1 + 7 * (size_t)expected)
        return hs_fail(err, HS_ERR_FORMAT, "%s: damaged metrics history (more values than %d "
                       "epochs have)", path, expected);
    cJSON *rows = cJSON_ParseWithLength(text ? text : "", len);
    int ok = cJSON_IsArray(rows) && cJSON_GetArraySize(rows) == expected;
    /* Walked as lists: cJSON_GetArrayItem(i) walks from the start, O(epochs^2) in all. */
    cJSON *row = ok ? rows->child : NULL;
    for (int i = 0; ok && i < expected; i++, row = row->next) {
        double v[6];
        ok = cJSON_IsArray(row) && cJSON_GetArraySize(row) == 6;
        cJSON *x = ok ? row->child : NULL;
        for (int k = 0; ok && k < 6; k++, x = x->next) {
            ok = cJSON_IsNumber(x);
            if (ok) v[k] = x->valuedouble;
        }
        /* Rows are epochs 1, 2, ... in order; the values are finite (see check_history). */
        ok = ok && v[0] == i + 1;
        for (int k = 1; ok && k < 6; k++) ok = isfinite(v[k]);
        if (ok)
            history[i] = (hs_epoch_metrics){i + 1, v[1], v[2], v[3], v[4], v[5]};
    }
    cJSON_Delete(rows);
    return ok ? HS_OK : hs_fail(err, HS_ERR_FORMAT, "%s: damaged metrics history", path);
}

/* A decimal integer in [0, max], the whole string; -1 otherwise. */
static long long parse_count(const char *text, long long max) {
    if (!text || *text < '0' || *text > '9') return -1;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    return errno || *end || v > max ? -1 : v;
}

/* Names the identity lines ("name=value") that differ between saved and now, as
 * "lr=0.02 then, lr=0.5 now; ...", into out. */
static void identity_difference(const char *saved, const char *now, char *out, size_t size) {
    size_t used = 0;
    out[0] = '\0';
    for (const char *a = saved; *a && used < size;) {
        size_t la = strcspn(a, "\n"), key = strcspn(a, "=");
        if (key > la) key = la;
        /* The line of the same name now. */
        const char *b = now;
        size_t lb = 0;
        for (; *b; b += lb + (b[lb] == '\n')) {
            lb = strcspn(b, "\n");
            if (lb > key && strncmp(a, b, key + 1) == 0) break;
        }
        if (!*b || la != lb || strncmp(a, b, la) != 0) {
            int n = snprintf(out + used, size - used, "%s%.*s then, %.*s now", used ? "; " : "",
                             (int)la, a, (int)lb, *b ? b : "(none)");
            used += n > 0 ? (size_t)n : 0;
        }
        a += la + (a[la] == '\n');
    }
    if (!out[0]) snprintf(out, size, "saved %s; now %s", saved, now);
}

hs_status hs_checkpoint_load(const char *path, hs_head_trainer *t, hs_epoch_metrics *history,
                             int *epochs_done, const char *identity, hs_error *err) {
    return hs_checkpoint_load_net(path, t->net, t->begin, &t->optimizer, history, epochs_done,
                                  identity, err);
}

hs_status hs_checkpoint_load_net(const char *path, hs_net *net, int begin, hs_optimizer *opt,
                                 hs_epoch_metrics *history, int *epochs_done,
                                 const char *identity, hs_error *err) {
    cJSON *meta = NULL;
    hs_status st = read_metadata(path, &meta, err);
    if (st) return st;
    const char *format = meta_string(meta, "format");
    const char *saved_identity = meta_string(meta, "identity");
    const char *epochs = meta_string(meta, "epochs_done");
    const char *steps = meta_string(meta, "optimizer_steps");
    int done = (int)parse_count(epochs, HS_MAX_EPOCHS);
    long long step_count = parse_count(steps, INT64_MAX);
    if (!format || strcmp(format, CHECKPOINT_FORMAT) != 0 || !epochs || !steps)
        st = hs_fail(err, HS_ERR_FORMAT, "%s is not a headstart checkpoint of this version "
                     "(%s)", path, CHECKPOINT_FORMAT);
    else if (!saved_identity || strcmp(saved_identity, identity) != 0) {
        char difference[HS_ERROR_MESSAGE_SIZE];
        identity_difference(saved_identity ? saved_identity : "", identity, difference,
                            sizeof difference);
        st = hs_fail(err, HS_ERR_MISMATCH, "%s was made by another configuration or other "
                     "data: %s", path, difference);
    }
    if (!st && (done < 0 || step_count < 0))
        st = hs_fail(err, HS_ERR_FORMAT, "%s: invalid epoch or step count", path);
    if (!st) st = parse_history(meta_string(meta, "metrics"), history, done, path, err);

    hs_state_dict sd;
    hs_sd_init(&sd);
    if (!st) st = hs_safetensors_load(path, &sd, err);
    hs_param_ref *refs = NULL;
    int count = 0;
    if (!st) st = head_params(net, begin, &refs, &count, err);
    if (!st) st = take_params(&sd, refs, count, path, err);
    for (int i = 0; !st && i < opt->count; i++) {
        hs_opt_param *p = &opt->params[i];
        char key[256];
        snprintf(key, sizeof key, "optimizer.%s.m", p->key);
        const hs_sd_entry *m = hs_sd_find(&sd, key);
        snprintf(key, sizeof key, "optimizer.%s.v", p->key);
        const hs_sd_entry *v = hs_sd_find(&sd, key);
        if (!m || m->numel != p->count || (p->v && (!v || v->numel != p->count))) {
            st = hs_fail(err, HS_ERR_FORMAT, "%s: optimizer state of %s is missing", path,
                         p->key);
            break;
        }
        memcpy(p->m, m->data, (size_t)p->count * sizeof(float));
        if (p->v) memcpy(p->v, v->data, (size_t)p->count * sizeof(float));
    }
    for (int i = begin; !st && i < net->count; i++) {
        hs_layer *l = &net->layers[i];
        if (l->kind != HS_LAYER_BATCHNORM) continue;
        char key[256];
        snprintf(key, sizeof key, "%s.num_batches_tracked", l->name);
        const hs_sd_entry *e = hs_sd_find(&sd, key);
        /* Absent in head checkpoints written before it was saved: 0, as before. */
        if (e && (e->numel != 1 || !(e->data[0] >= 0.0f && e->data[0] < 9e15f)))
            st = hs_fail(err, HS_ERR_FORMAT, "%s: invalid %s", path, key);
        else l->bn_batches_tracked = e ? (int64_t)e->data[0] : 0;
    }
    if (!st) {
        opt->steps = step_count;
        *epochs_done = done;
        net->prepared = 0;
    }
    free(refs);
    hs_sd_free(&sd);
    cJSON_Delete(meta);
    return st;
}

hs_status hs_write_metrics_csv(const char *path, const hs_epoch_metrics *history, int count,
                               hs_error *err) {
    /* Streamed into memory: a row is as long as its numbers need (%.6f of 1e300 is 300 digits). */
    char *text = NULL;
    size_t used = 0;
    FILE *f = open_memstream(&text, &used);
    if (!f) return hs_fail(err, HS_ERR_NOMEM, "out of memory writing %s", path);
    fprintf(f, "epoch,train_loss,train_acc,val_loss,val_acc,seconds\n");
    for (int i = 0; i < count; i++) {
        const hs_epoch_metrics *m = &history[i];
        fprintf(f, "%d,%.6f,%.4f,%.6f,%.4f,%.3f\n", m->epoch, m->train_loss, m->train_acc,
                m->val_loss, m->val_acc, m->seconds);
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
