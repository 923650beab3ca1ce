/* The training job end to end on tiny generated images (three colour classes, 24 x 24 PNGs)
 * with EfficientNet-Lite0's ImageNet weights at 32 px, which keeps every run well under a
 * second while going through the real code: data, features, head, optimizer, outputs,
 * resume, predict and evaluate. (A randomly initialised Lite0 is no use here: without trained
 * BatchNorm statistics its features hardly differ between images.) */
#include <cairo.h>
#include <cjson/cJSON.h>
#include <string.h>

#include "check.h"
#include "checkpoint.h"
#include "fileutil.h"
#include "head_train.h"
#include "rng.h"
#include "test_util.h"

#define ROOT HS_TEST_TMP_DIR "/train"
#define DATA ROOT "/colours"

static const char *const class_names[] = {"blue sky", "green", "red 1"};
static const double colours[][3] = {{0.1, 0.2, 0.9}, {0.1, 0.8, 0.2}, {0.9, 0.1, 0.1}};

/* A noisy image of one colour class. */
static void write_image(const char *path, int cls, hs_rng *rng) {
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 24, 24);
    cairo_t *cr = cairo_create(s);
    for (int y = 0; y < 24; y += 4)
        for (int x = 0; x < 24; x += 4) {
            double jitter = hs_rng_range(rng, -0.25f, 0.25f);
            cairo_set_source_rgb(cr, colours[cls][0] + jitter, colours[cls][1] + jitter,
                                 colours[cls][2] + jitter);
            cairo_rectangle(cr, x, y, 4, 4);
            cairo_fill(cr);
        }
    cairo_surface_write_to_png(s, path);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
}

static void make_data(void) {
    hs_rng rng;
    hs_rng_seed(&rng, 5);
    char path[512];
    CHECK(system("rm -rf " ROOT) == 0);
    for (int c = 0; c < 3; c++) {
        snprintf(path, sizeof path, DATA "/%s", class_names[c]);
        CHECK(hs_make_dirs(path, NULL) == HS_OK);
        for (int i = 0; i < 20; i++) {
            snprintf(path, sizeof path, DATA "/%s/%02d.png", class_names[c], i);
            write_image(path, c, &rng);
        }
    }
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
    c->lr = 0.02f;
    c->seed = 3;
    c->out_dir = out;
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

int main(void) {
    char path[4096];
    hs_error err = {0};
    if (hs_find_weights(hs_backbone_find("efficientnet_lite0"), path, sizeof path, &err)) {
        if (getenv("CI")) {
            fprintf(stderr, "CI must have the Lite0 weights: %s\n", err.message);
            return 1;
        }
        CHECK_SKIP("%s", err.message);
    }
    make_data();
    test_frozen_backbone();
    test_train_and_predict();
    test_resume();
    test_bad_options();
    return check_finish("test_train");
}
