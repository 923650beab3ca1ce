/* The training job end to end on tiny generated images (three colour classes, 24 x 24 PNGs)
 * with EfficientNet-Lite0's ImageNet weights at 32 px, which keeps every run well under a
 * second while going through the real code: data, features, head, optimizer, outputs,
 * resume, predict and evaluate. (A randomly initialised Lite0 is no use here: without trained
 * BatchNorm statistics its features hardly differ between images.) */
#include <cairo.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "checkpoint.h"
#include "dataset.h"
#include "feature_set.h"
#include "fileutil.h"
#include "head_train.h"
#include "rng.h"
#include "colour_images.h"
#include "test_util.h"

#define ROOT HS_TEST_TMP_DIR "/train"
#define DATA ROOT "/colours"

static const char *const class_names[] = {"blue sky", "green", "red 1"};
static void make_data(void) {
    test_make_colour_classes(ROOT, DATA, class_names, 20, 5);
    /* Things that are not images must not disturb the run. */
    CHECK(system("echo notes > '" DATA "/green/notes.txt' && mkdir -p " DATA
                 "/.ipynb_checkpoints") == 0);
}

static void tiny_config(hs_train_config *c, const char *out, int epochs) {
    hs_train_config_defaults(c);
    c->data = DATA;
    c->weights = NULL; /* the pretrained file, found by hs_find_weights */
    c->img_size = 32;
    c->epochs = epochs;
    c->batch_size = 8;
    c->optimizer = "sgd";
    c->lr = 0.02f;
    c->seed = 3;
    c->out_dir = out;
    c->cache_dir = ROOT "/cache"; /* never the user's own cache */
}

/* metrics.csv without the seconds column, which differs between runs. */
static void read_metrics(const char *dir, char *out, size_t size) {
    char path[600], *text = NULL;
    size_t n = 0;
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    out[0] = '\0';
    if (hs_read_file(path, 1 << 20, &text, &n, NULL)) return;
    size_t used = 0;
    for (char *line = strtok(text, "\n"); line && used + 200 < size; line = strtok(NULL, "\n")) {
        char *last = strrchr(line, ',');
        if (last) *last = '\0';
        used += (size_t)snprintf(out + used, size - used, "%s\n", line);
    }
    free(text);
}

static void test_outputs(const char *dir, const hs_train_result *r) {
    char path[600], metrics[8192];
    read_metrics(dir, metrics, sizeof metrics);
    CHECK_MSG(strncmp(metrics, "epoch,train_loss,train_acc,val_loss,val_acc\n", 44) == 0, "%s",
              metrics);
    for (const char *f = "accuracy.png\0loss.png\0confusion.png\0"; *f; f += strlen(f) + 1) {
        snprintf(path, sizeof path, "%s/%s", dir, f);
        cairo_surface_t *s = cairo_image_surface_create_from_png(path);
        CHECK_MSG(cairo_surface_status(s) == CAIRO_STATUS_SUCCESS, "%s", path);
        cairo_surface_destroy(s);
    }
    snprintf(path, sizeof path, "%s/confusion.csv", dir);
    CHECK(hs_path_exists(path));
    char *text = NULL;
    size_t n = 0;
    snprintf(path, sizeof path, "%s/run.json", dir);
    CHECK(hs_read_file(path, 1 << 20, &text, &n, NULL) == HS_OK);
    cJSON *root = cJSON_Parse(text ? text : "");
    cJSON *classes = cJSON_GetObjectItem(root, "classes");
    CHECK(cJSON_GetArraySize(classes) == 3);
    CHECK(strcmp(cJSON_GetArrayItem(classes, 0)->valuestring, "blue sky") == 0);
    CHECK(strcmp(cJSON_GetObjectItem(root, "status")->valuestring, "completed") == 0);
    cJSON_Delete(root);
    free(text);

    /* The model holds only the new head: 3 outputs on Lite0's 1280 features. */
    hs_state_dict sd;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    test_load_fixture(path, &sd);
    CHECK(sd.count == 2);
    const hs_sd_entry *w = hs_sd_find(&sd, "_fc.weight");
    CHECK(w && w->ndim == 2 && w->shape[0] == 3 && w->shape[1] == 1280);
    hs_sd_free(&sd);
    CHECK(r->classes == 3 && r->train_images + r->val_images == 60);
}

static void test_train_and_predict(void) {
    hs_train_config c;
    tiny_config(&c, ROOT "/run_a", 6);
    hs_train_result r;
    hs_error err = {0};
    CHECK_MSG(hs_train(&c, NULL, &r, &err) == HS_OK, "%s", err.message);
    printf("tiny run: val acc %.1f %%, train loss %.3f\n", r.last.val_acc, r.last.train_loss);
    test_outputs(ROOT "/run_a", &r);
    CHECK_MSG(r.last.val_acc >= 90.0, "val acc %.1f", r.last.val_acc);
    CHECK(r.epochs_run == 6);

    /* The same seed gives the same metrics. */
    tiny_config(&c, ROOT "/run_b", 6);
    hs_train_result r2;
    CHECK(hs_train(&c, NULL, &r2, &err) == HS_OK);
    char m1[8192], m2[8192];
    read_metrics(ROOT "/run_a", m1, sizeof m1);
    read_metrics(ROOT "/run_b", m2, sizeof m2);
    CHECK_MSG(strcmp(m1, m2) == 0, "\n%s\nvs\n%s", m1, m2);

    /* predict returns the trained classes. */
    hs_model *model = NULL;
    CHECK_MSG(hs_model_open(ROOT "/run_a", NULL, &model, &err) == HS_OK, "%s", err.message);
    if (model) {
        CHECK(hs_model_num_classes(model) == 3);
        const char *paths[] = {DATA "/red 1/03.png", DATA "/blue sky/07.png",
                               DATA "/green/notes.txt"};
        float probs[9];
        hs_error errors[3] = {{0}};
        CHECK(hs_model_predict_files(model, paths, 3, probs, errors, &err) == HS_OK);
        CHECK(errors[0].code == HS_OK && errors[1].code == HS_OK);
        CHECK(errors[2].code == HS_ERR_IMAGE);
        CHECK(probs[2] > probs[0] && probs[2] > probs[1]);   /* red 1 */
        CHECK(probs[3] > probs[4] && probs[3] > probs[5]);   /* blue sky */
        hs_eval_result ev;
        CHECK(hs_model_evaluate(model, DATA, NULL, &ev, &err) == HS_OK);
        CHECK(ev.images == 60 && ev.correct >= 54);
        hs_eval_result_free(&ev);
        hs_model_free(model);
    }
}

/* Stopping after 3 epochs and resuming to 6 gives the same metrics as 6 in one go. */
static void test_resume(void) {
    hs_train_config c;
    tiny_config(&c, ROOT "/run_resumed", 3);
    hs_train_result r;
    hs_error err = {0};
    CHECK(hs_train(&c, NULL, &r, &err) == HS_OK);
    /* Without --resume or --overwrite the folder is refused. */
    CHECK(hs_train(&c, NULL, &r, &err) == HS_ERR_EXISTS);
    CHECK(strstr(err.message, "--resume") != NULL);
    tiny_config(&c, ROOT "/run_resumed", 6);
    c.resume = 1;
    CHECK_MSG(hs_train(&c, NULL, &r, &err) == HS_OK, "%s", err.message);
    CHECK(r.epochs_run == 6);
    char m1[8192], m2[8192];
    read_metrics(ROOT "/run_a", m1, sizeof m1);
    read_metrics(ROOT "/run_resumed", m2, sizeof m2);
    CHECK_MSG(strcmp(m1, m2) == 0, "\n%s\nvs\n%s", m1, m2);
    /* A resume with other options is refused, naming the difference. */
    c.lr = 0.5f;
    CHECK(hs_train(&c, NULL, &r, &err) == HS_ERR_MISMATCH);
    CHECK(strstr(err.message, "lr=0.5") != NULL);
    /* --overwrite starts over. */
    tiny_config(&c, ROOT "/run_resumed", 1);
    c.overwrite = 1;
    CHECK(hs_train(&c, NULL, &r, &err) == HS_OK && r.epochs_run == 1);
}

static void test_bad_options(void) {
    hs_train_config c;
    hs_train_result r;
    hs_error err = {0};
    tiny_config(&c, ROOT "/never", 1);
    c.lr = 0;
    CHECK(hs_train(&c, NULL, &r, &err) == HS_ERR_ARGUMENT);
    CHECK(strstr(err.message, "--lr") != NULL);
    c.lr = 0.01f;
    c.epochs = 0;
    CHECK(hs_train(&c, NULL, &r, &err) == HS_ERR_ARGUMENT);
    CHECK(strstr(err.message, "--epochs") != NULL);
    tiny_config(&c, ROOT "/never", 1);
    c.data = ROOT "/no-such-data";
    CHECK(hs_train(&c, NULL, &r, &err) == HS_ERR_IO);
    CHECK(strstr(err.message, "no-such-data") != NULL);
    CHECK(!hs_path_exists(ROOT "/never")); /* nothing created for a run that never started */
    tiny_config(&c, ROOT "/diverged", 3);
    c.lr = 1e38f; /* the logits overflow to inf, the loss to NaN */
    CHECK(hs_train(&c, NULL, &r, &err) == HS_ERR_DIVERGED);
    CHECK_MSG(strstr(err.message, "lower --lr") != NULL, "%s", err.message);
}

/* Training changes the head and nothing else: the frozen backbone stays bit-identical. */
static void test_frozen_backbone(void) {
    hs_net *net = NULL;
    hs_error err = {0};
    CHECK(hs_net_create("efficientnet_lite0", 9, &net, &err) == HS_OK);
    CHECK(hs_net_replace_head(net, 3, HS_HEAD_LAST_LAYER, 1, &err) == HS_OK);
    CHECK(hs_net_num_classes(net) == 3);
    hs_state_dict before, after;
    hs_sd_init(&before);
    hs_sd_init(&after);
    CHECK(hs_net_state_dict(net, &before, &err) == HS_OK);
    hs_head_trainer t;
    CHECK(hs_head_trainer_init(&t, net, net->head_begin, 4, HS_OPTIMIZER_ADAMW, 0.01f, 0.9f,
                               0.01f, &err) == HS_OK);
    float *x = test_deterministic_input(4 * 1280);
    int labels[4] = {0, 1, 2, 1};
    hs_batch_result r;
    for (int step = 0; step < 5; step++) CHECK(hs_head_train_step(&t, x, labels, 4, &r, &err) == 0);
    CHECK(hs_net_state_dict(net, &after, &err) == HS_OK);
    int changed_backbone = 0, changed_head = 0;
    for (size_t i = 0; i < before.count; i++) {
        int same = memcmp(before.entries[i].data, after.entries[i].data,
                          (size_t)before.entries[i].numel * sizeof(float)) == 0;
        if (strncmp(before.entries[i].name, "_fc.", 4) == 0) changed_head += !same;
        else changed_backbone += !same;
    }
    CHECK(changed_backbone == 0);
    CHECK(changed_head == 2);
    free(x);
    hs_head_trainer_free(&t);
    hs_sd_free(&before);
    hs_sd_free(&after);
    hs_net_free(net);
}

/* The classic loop, written with the library's pieces: every epoch runs the frozen backbone
 * on every training and validation image again, batch by batch in the training order, and
 * trains the head from those fresh features. Its per-epoch metrics and final head are what
 * hs_train must produce from features computed once. */
typedef struct classic_run {
    double train_loss[8], train_acc[8], val_loss[8], val_acc[8];
    float *head_weight; /* classes x features */
    int weight_count;
} classic_run;

static hs_status network_features(hs_net *net, int begin, const hs_dataset *ds, const int *rows,
                                  int n, int size, float *out, hs_error *err) {
    const hs_preprocess *p = &net->info->preprocess;
    size_t image_floats = (size_t)3 * size * size;
    float *batch = malloc((size_t)n * image_floats * sizeof(float));
    hs_status st = batch ? HS_OK : HS_ERR_NOMEM;
    for (int i = 0; i < n && !st; i++) {
        hs_image img = {0};
        st = hs_dataset_load_image(ds, rows[i], &img, err);
        if (!st) st = hs_image_prepare_square(&img, size, p->interpolation, p->mean, p->std,
                                              batch + (size_t)i * image_floats, err);
        hs_image_free(&img);
    }
    if (!st) st = hs_net_run(net, 0, begin, batch, n, 3, size, size, out, err);
    free(batch);
    return st;
}

static void classic_loop(const hs_train_config *c, classic_run *out) {
    hs_error err = {0};
    hs_dataset train, val;
    hs_dataset_options dopt = {c->val_fraction, c->seed, c->limit_train, c->limit_val};
    CHECK(hs_dataset_open(c->data, &dopt, &train, &val, &err) == HS_OK);
    hs_net *net = NULL;
    char weights[4096];
    CHECK(hs_find_weights(hs_backbone_find(c->backbone), weights, sizeof weights, &err) == 0);
    CHECK(hs_net_create(c->backbone, c->seed, &net, &err) == HS_OK);
    CHECK(hs_net_replace_head(net, train.class_count, HS_HEAD_LAST_LAYER, c->seed ^ 0x5eedu,
                              &err) == HS_OK);
    CHECK(hs_net_load_weights(net, weights, &err) == HS_OK);
    int begin = net->head_begin, dim = net->layers[begin].in_features;
    hs_head_trainer t;
    CHECK(hs_head_trainer_init(&t, net, begin, c->batch_size, HS_OPTIMIZER_SGD, c->lr,
                               c->momentum, c->weight_decay, &err) == HS_OK);
    int *order = malloc((size_t)train.count * sizeof *order);
    int *labels = malloc((size_t)(train.count + val.count) * sizeof *labels);
    float *x = malloc((size_t)(train.count + val.count) * dim * sizeof(float));
    for (int epoch = 1; epoch <= c->epochs; epoch++) {
        hs_head_trainer_begin_epoch(&t, c->seed, epoch, train.count, order);
        double loss = 0, correct = 0;
        for (int start = 0; start < train.count; start += c->batch_size) {
            int m = train.count - start < c->batch_size ? train.count - start : c->batch_size;
            CHECK(network_features(net, begin, &train, order + start, m, c->img_size, x, &err) ==
                  HS_OK);
            for (int b = 0; b < m; b++) labels[b] = train.samples[order[start + b]].label;
            hs_batch_result r;
            CHECK(hs_head_train_step(&t, x, labels, m, &r, &err) == HS_OK);
            loss += r.loss_sum;
            correct += r.correct;
        }
        out->train_loss[epoch - 1] = loss / train.count;
        out->train_acc[epoch - 1] = 100.0 * correct / train.count;
        for (int i = 0; i < val.count; i++) {
            order[i] = i;
            labels[i] = val.samples[i].label;
        }
        CHECK(network_features(net, begin, &val, order, val.count, c->img_size, x, &err) ==
              HS_OK);
        hs_batch_result r;
        CHECK(hs_head_evaluate(net, begin, x, labels, val.count, 256, &r, NULL, NULL, &err) ==
              HS_OK);
        out->val_loss[epoch - 1] = r.loss_sum / val.count;
        out->val_acc[epoch - 1] = 100.0 * r.correct / val.count;
    }
    out->weight_count = train.class_count * dim;
    out->head_weight = malloc((size_t)out->weight_count * sizeof(float));
    memcpy(out->head_weight, net->layers[begin].weight, (size_t)out->weight_count * sizeof(float));
    free(order);
    free(labels);
    free(x);
    hs_head_trainer_free(&t);
    hs_net_free(net);
    hs_dataset_free(&train);
    hs_dataset_free(&val);
}

/* Largest |a - b| between the run's trained head weight and the classic loop's. */
static double head_difference(const char *run_dir, const classic_run *classic) {
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", run_dir);
    hs_state_dict sd;
    test_load_fixture(path, &sd);
    double worst = INFINITY;
    for (size_t i = 0; i < sd.count; i++) {
        const hs_sd_entry *tensor = &sd.entries[i];
        if (tensor->numel != classic->weight_count || tensor->ndim != 2) continue;
        worst = 0;
        for (int k = 0; k < classic->weight_count; k++) {
            double d = fabs((double)tensor->data[k] - classic->head_weight[k]);
            if (d > worst) worst = d;
        }
    }
    hs_sd_free(&sd);
    return worst;
}

/* Features computed once (cached, float32 or half) train the same model as the classic loop
 * that runs the network every epoch; a rerun reads the cache and repeats the run exactly. */
static void test_cache_equivalence(void) {
    hs_train_config c;
    tiny_config(&c, ROOT "/classic", 4);
    classic_run classic = {0};
    classic_loop(&c, &classic);

    tiny_config(&c, ROOT "/cached_f32", 4);
    c.feature_precision = "f32";
    hs_train_result r;
    hs_error err = {0};
    CHECK_MSG(hs_train(&c, NULL, &r, &err) == HS_OK, "%s", err.message);
    CHECK(r.cached_sides == 0);
    char csv[8192], expect[8192];
    size_t used = (size_t)snprintf(expect, sizeof expect,
                                   "epoch,train_loss,train_acc,val_loss,val_acc\n");
    for (int e = 0; e < 4; e++)
        used += (size_t)snprintf(expect + used, sizeof expect - used, "%d,%.6f,%.4f,%.6f,%.4f\n",
                                 e + 1, classic.train_loss[e], classic.train_acc[e],
                                 classic.val_loss[e], classic.val_acc[e]);
    read_metrics(ROOT "/cached_f32", csv, sizeof csv);
    CHECK_MSG(strcmp(csv, expect) == 0, "cached run:\n%s\nclassic loop:\n%s", csv, expect);
    double f32_diff = head_difference(ROOT "/cached_f32", &classic);
    CHECK_MSG(f32_diff <= 1e-5, "f32 cache: head differs from the classic loop's by %g", f32_diff);

    /* The rerun reads both sides from the cache and repeats every number. */
    tiny_config(&c, ROOT "/cached_f32_again", 4);
    c.feature_precision = "f32";
    CHECK(hs_train(&c, NULL, &r, &err) == HS_OK);
    CHECK(r.cached_sides == 2);
    char again[8192];
    read_metrics(ROOT "/cached_f32_again", again, sizeof again);
    CHECK(strcmp(csv, again) == 0);

    /* Half precision: the same model within the rounding of the stored features. */
    tiny_config(&c, ROOT "/cached_f16", 4);
    CHECK(hs_train(&c, NULL, &r, &err) == HS_OK);
    double f16_diff = head_difference(ROOT "/cached_f16", &classic);
    printf("head vs classic loop: f32 cache %.2g, f16 cache %.2g\n", f32_diff, f16_diff);
    CHECK_MSG(f16_diff <= 2e-3, "f16 cache: head differs by %g", f16_diff);
    CHECK_MSG(fabs(r.last.val_acc - classic.val_acc[3]) <= 100.0 / 12 + 1e-9,
              "f16 val acc %.2f vs %.2f", r.last.val_acc, classic.val_acc[3]);
    free(classic.head_weight);
}

int main(void) {
    test_require_lite0_weights();
    make_data();
    test_frozen_backbone();
    test_train_and_predict();
    test_resume();
    test_cache_equivalence();
    test_bad_options();
    return check_finish("test_train");
}
