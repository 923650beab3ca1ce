/* --strategy finetune end to end on tiny generated images (three colour classes, 24 x 24
 * PNGs) with EfficientNet-Lite0's ImageNet weights at 32 px: which parameters train with
 * --unfreeze 1 and all, what each BatchNorm policy does to the running statistics, that the
 * probe stage reuses the feature cache, that accuracy rises, that a resumed fine-tune saves
 * the network a run never stopped saves, that predict/evaluate use the saved network, and
 * that bad flags exit 2 naming the flag. */
#include <cairo.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "check.h"
#include "dataset.h"
#include "fileutil.h"
#include "finetune.h"
#include "net.h"
#include "rng.h"
#include "safetensors.h"
#include "colour_images.h"
#include "test_util.h"

#define ROOT HS_TEST_TMP_DIR "/finetune"
#define DATA ROOT "/colours"
#define IMAGES_PER_CLASS 8

static const char *const class_names[] = {"blue", "green", "red"};
static void image_path(char *out, size_t size, int cls, int i) {
    snprintf(out, size, DATA "/%s/%02d.png", class_names[cls], i);
}

static void make_data(void) {
    test_make_colour_classes(ROOT, DATA, class_names, IMAGES_PER_CLASS, 11);
}

static void tiny_config(hs_train_config *c, const char *out) {
    hs_train_config_defaults(c);
    c->data = DATA;
    c->strategy = "finetune";
    c->img_size = 32;
    c->val_fraction = 0.25;
    c->batch_size = 6;
    c->epochs = 1;
    c->probe_epochs = 1;
    c->optimizer = "sgd";
    c->lr = 0.05f;
    c->finetune_lr = 0.02f;
    c->layer_decay = 0.8f; /* the rates these tiny runs were tuned with, not the default */
    c->seed = 4;
    c->threads = 2;
    c->out_dir = out;
    c->cache_dir = ROOT "/cache";
}

/* The network the run started from: pretrained Lite0 with the run's fresh head. */
static hs_net *start_network(const hs_train_config *c) {
    hs_net *net = NULL;
    hs_error err = {0};
    char weights[4096];
    CHECK(hs_net_create("efficientnet_lite0", c->seed, &net, &err) == HS_OK);
    CHECK(hs_net_replace_head(net, 3, HS_HEAD_LAST_LAYER, c->seed ^ 0x5eedu, &err) == HS_OK);
    CHECK(hs_find_weights(hs_backbone_find("efficientnet_lite0"), weights, sizeof weights,
                          &err) == HS_OK);
    CHECK(hs_net_load_weights(net, weights, &err) == HS_OK);
    return net;
}

typedef struct changes {
    int trainable_below, trainable_below_changed; /* tensors of layers < boundary */
    int trainable_above, trainable_above_changed;
    int zero_grad_biases;                         /* of them, _bnN biases (below) */
    int stats, stats_changed;                     /* running mean/var tensors */
    int missing;                                  /* tensors the saved file lacks */
} changes;

/* Compares the run's model.safetensors with the starting network, tensor by tensor. */
static changes compare(const hs_train_config *c, const char *dir, int boundary) {
    changes ch = {0};
    hs_net *net = start_network(c);
    hs_param_ref *refs = NULL;
    int count = 0;
    hs_error err = {0};
    hs_state_dict sd;
    hs_sd_init(&sd);
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(hs_safetensors_load(path, &sd, &err) == HS_OK);
    CHECK(hs_net_params(net, &refs, &count, &err) == HS_OK);
    for (int i = 0; i < count; i++) {
        const hs_sd_entry *e = hs_sd_find(&sd, refs[i].key);
        int64_t n = hs_param_numel(&refs[i]);
        if (!e || e->numel != n) {
            ch.missing++;
            continue;
        }
        int changed = memcmp(e->data, *refs[i].data, (size_t)n * sizeof(float)) != 0;
        if (refs[i].buffer) {
            ch.stats++;
            ch.stats_changed += changed;
        } else if (refs[i].layer < boundary) {
            ch.trainable_below++;
            ch.trainable_below_changed += changed;
        } else if (strstr(refs[i].key, "._bn2.bias")) {
            /* A block's last BatchNorm bias reaches the loss only through the residual
             * stream, which every reader takes through a 1x1 convolution into a BatchNorm
             * with batch statistics (--bn train), whose input gradient sums to zero per
             * channel: its gradient is zero up to rounding unless drop connect dropped a
             * sample of that block, so whether it moves is chance. */
            ch.zero_grad_biases++;
        } else {
            ch.trainable_above++;
            ch.trainable_above_changed += changed;
        }
    }
    free(refs);
    hs_sd_free(&sd);
    hs_net_free(net);
    return ch;
}

/* --unfreeze 1 --bn frozen: the top block (_conv_head, _bn1) and the head train, nothing
 * below changes, no running statistic moves. First run on a fresh cache: it computes the
 * features; the second run (--unfreeze all --bn train) reads them back. */
static void test_unfreeze_and_bn(void) {
    hs_train_config c;
    hs_train_result r;
    hs_error err = {0};
    tiny_config(&c, ROOT "/top1");
    c.unfreeze = "1";
    c.bn = "frozen";
    CHECK_MSG(hs_train(&c, NULL, &r, &err) == HS_OK, "%s", err.message);
    CHECK(r.cached_sides == 0);
    CHECK(r.probe_epochs_run == 1);
    CHECK_MSG(strcmp(r.finetune_first_layer, "_conv_head") == 0, "%s", r.finetune_first_layer);
    changes ch = compare(&c, ROOT "/top1", r.unfreeze_boundary);
    CHECK(ch.missing == 0);
    CHECK(ch.trainable_below > 100 && ch.trainable_below_changed == 0);
    /* _conv_head.weight, _bn1.weight and .bias, _fc.weight and .bias */
    CHECK_MSG(ch.trainable_above == 5 && ch.trainable_above_changed == 5, "%d of %d",
              ch.trainable_above_changed, ch.trainable_above);
    /* 49 BatchNorms, mean and variance each; frozen: bit-identical */
    CHECK(ch.stats == 98 && ch.stats_changed == 0);

    tiny_config(&c, ROOT "/all");
    c.unfreeze = "all";
    c.bn = "train";
    c.epochs = 3;
    CHECK_MSG(hs_train(&c, NULL, &r, &err) == HS_OK, "%s", err.message);
    CHECK(r.cached_sides == 2); /* the probe stage reused the first run's features */
    CHECK(r.unfreeze_boundary == 0);
    ch = compare(&c, ROOT "/all", 0);
    CHECK(ch.missing == 0 && ch.trainable_below == 0);
    CHECK_MSG(ch.trainable_above > 100 && ch.trainable_above_changed == ch.trainable_above,
              "%d of %d", ch.trainable_above_changed, ch.trainable_above);
    CHECK_MSG(ch.stats == 98 && ch.stats_changed == ch.stats, "%d of %d", ch.stats_changed,
              ch.stats);
    /* Separable classes: well above chance (33 %) after three epochs. */
    CHECK_MSG(r.best.val_acc > 60.0, "best val acc %.2f", r.best.val_acc);
    CHECK(test_file_exists(ROOT "/all/best.safetensors"));
    CHECK(test_file_exists(ROOT "/all/metrics.csv"));

    /* predict and evaluate use the whole saved network. */
    hs_model *m = NULL;
    CHECK_MSG(hs_model_open(ROOT "/all", NULL, &m, &err) == HS_OK, "%s", err.message);
    if (!m) return;
    enum { N = 3 * IMAGES_PER_CLASS };
    char names[N][512];
    const char *paths[N];
    for (int k = 0; k < N; k++) {
        image_path(names[k], sizeof names[k], k / IMAGES_PER_CLASS, k % IMAGES_PER_CLASS);
        paths[k] = names[k];
    }
    float probs[N * 3];
    hs_error errors[N];
    CHECK(hs_model_predict_files(m, paths, N, probs, errors, &err) == HS_OK);
    int correct = 0;
    for (int k = 0; k < N; k++) {
        float *p = probs + 3 * k, sum = p[0] + p[1] + p[2];
        CHECK(fabsf(sum - 1.0f) < 1e-4f);
        int best = p[1] > p[0] ? 1 : 0;
        best = p[2] > p[best] ? 2 : best;
        correct += best == k / IMAGES_PER_CLASS;
    }
    hs_eval_result ev;
    CHECK_MSG(hs_model_evaluate(m, DATA, NULL, &ev, &err) == HS_OK, "%s", err.message);
    CHECK(ev.images == N);
    CHECK_MSG(ev.correct == correct, "evaluate %d, predict %d", ev.correct, correct);
    CHECK(correct > N / 2);
    hs_eval_result_free(&ev);
    hs_model_free(m);
}

typedef struct stopper {
    volatile int stop;
    int epoch;
} stopper;

static void stop_at(void *ctx, const char *stage, int epoch, int step) {
    stopper *s = ctx;
    if (!strcmp(stage, "train step") && epoch == s->epoch && step == 1) s->stop = 1;
}

static char *read_all(const char *path) {
    char *text = NULL;
    size_t size = 0;
    hs_error err = {0};
    CHECK(hs_read_file(path, 256u << 20, &text, &size, &err) == HS_OK);
    return text;
}

/* metrics.csv without the seconds column. */
static void strip_seconds(char *text) {
    char *out = text;
    for (char *line = text; *line;) {
        size_t len = strcspn(line, "\n");
        char *comma = NULL;
        for (char *p = line; p < line + len; p++)
            if (*p == ',') comma = p;
        size_t keep = comma ? (size_t)(comma - line) : len;
        memmove(out, line, keep);
        out += keep;
        *out++ = '\n';
        line += len + (line[len] == '\n');
    }
    *out = '\0';
}

/* A fine-tune stopped in epoch 2 and resumed saves the same network, bit for bit, and the
 * same metrics as one never stopped. */
static void test_resume(void) {
    hs_train_config c;
    hs_train_result r;
    hs_error err = {0};
    tiny_config(&c, ROOT "/whole");
    c.unfreeze = "2";
    c.bn = "train";
    c.epochs = 2;
    c.mixup = 0.4f;
    CHECK_MSG(hs_train(&c, NULL, &r, &err) == HS_OK, "%s", err.message);

    stopper s = {0, 2};
    hs_train_callbacks cb = {&s, NULL, NULL, NULL, &s.stop, stop_at};
    c.out_dir = ROOT "/stopped";
    CHECK(hs_train(&c, &cb, &r, &err) == HS_ERR_INTERRUPTED);
    CHECK(r.epochs_run == 1);
    c.resume = 1;
    CHECK_MSG(hs_train(&c, NULL, &r, &err) == HS_OK, "%s", err.message);
    CHECK(r.epochs_run == 2);
    CHECK(r.probe_epochs_run == 0); /* the network came from the checkpoint */

    const char *files[] = {"model.safetensors", "best.safetensors"};
    for (int i = 0; i < 2; i++) {
        char a[600], b[600];
        snprintf(a, sizeof a, ROOT "/whole/%s", files[i]);
        snprintf(b, sizeof b, ROOT "/stopped/%s", files[i]);
        hs_state_dict x, y;
        hs_sd_init(&x);
        hs_sd_init(&y);
        CHECK(hs_safetensors_load(a, &x, &err) == HS_OK);
        CHECK(hs_safetensors_load(b, &y, &err) == HS_OK);
        CHECK(x.count == y.count && x.count > 100);
        int differ = 0;
        for (size_t k = 0; k < x.count; k++) {
            const hs_sd_entry *e = hs_sd_find(&y, x.entries[k].name);
            differ += !e || e->numel != x.entries[k].numel ||
                      memcmp(e->data, x.entries[k].data, (size_t)e->numel * sizeof(float));
        }
        CHECK_MSG(differ == 0, "%s: %d tensors differ", files[i], differ);
        hs_sd_free(&x);
        hs_sd_free(&y);
    }
    char *m1 = read_all(ROOT "/whole/metrics.csv"), *m2 = read_all(ROOT "/stopped/metrics.csv");
    if (m1 && m2) {
        strip_seconds(m1);
        strip_seconds(m2);
        CHECK_MSG(strcmp(m1, m2) == 0, "\n%s---\n%s", m1, m2);
    }
    free(m1);
    free(m2);

    /* Another epoch count is another schedule: the checkpoint refuses it. */
    c.epochs = 3;
    CHECK(hs_train(&c, NULL, &r, &err) == HS_ERR_MISMATCH);
    CHECK_MSG(strstr(err.message, "epochs=") != NULL, "%s", err.message);
}

/* Bad flags: exit 2 before any work, naming the flag. */
static void test_bad_flags(void) {
    const char *cases[][2] = {{"--bn maybe", "--bn"},
                              {"--unfreeze some", "--unfreeze"},
                              {"--layer-decay 0", "--layer-decay"},
                              {"--layer-decay 1.5", "--layer-decay"},
                              {"--schedule step", "--schedule"},
                              {"--mixup -1", "--mixup"},
                              {"--label-smoothing 1", "--label-smoothing"},
                              {"--crop-scale 0", "--crop-scale"},
                              {"--warmup-epochs -1", "--warmup-epochs"},
                              {"--probe-epochs -2", "--probe-epochs"},
                              {"--finetune-lr -1", "--finetune-lr"},
                              {"--optimizer lbfgs", "lbfgs"},
                              {"--unfreez 2", "--unfreeze"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd,
                 "'%s' train '%s' --strategy finetune --out '%s' %s 2> '%s'", HS_CLI_PATH,
                 DATA, ROOT "/never", cases[i][0], ROOT "/stderr.txt");
        int status = system(cmd);
        CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 2, "%s: status %d", cases[i][0],
                  status);
        char *text = read_all(ROOT "/stderr.txt");
        CHECK_MSG(text && strstr(text, cases[i][1]), "%s: %s", cases[i][0], text ? text : "");
        free(text);
    }
    CHECK(!hs_path_exists(ROOT "/never"));
}

/* The block structure --unfreeze counts in. */
static void test_blocks(void) {
    hs_train_config c;
    tiny_config(&c, ROOT "/unused");
    hs_net *net = start_network(&c);
    int starts[64];
    int n = hs_backbone_blocks(net, starts, 64);
    CHECK_MSG(n == 18, "%d blocks", n); /* stem, 16 MBConv blocks, head convolution */
    CHECK(!strcmp(net->layers[starts[0]].name, "_conv_stem"));
    CHECK(!strcmp(net->layers[starts[1]].name, "_blocks.0._depthwise_conv"));
    CHECK(!strcmp(net->layers[starts[17]].name, "_conv_head"));
    int b = -1;
    hs_error err = {0};
    CHECK(hs_unfreeze_boundary(net, "all", &b, &err) == HS_OK && b == 0);
    CHECK(hs_unfreeze_boundary(net, "2", &b, &err) == HS_OK && b == starts[16]);
    CHECK(hs_unfreeze_boundary(net, "0", &b, &err) == HS_OK && b == net->head_begin);
    CHECK(hs_unfreeze_boundary(net, "99", &b, &err) == HS_OK && b == 0);
    CHECK(hs_unfreeze_boundary(net, "x", &b, &err) == HS_ERR_ARGUMENT);
    /* auto: from the first block at 14 x 14 of 224 (block 5 strides from 28 to 14) */
    CHECK(hs_unfreeze_boundary(net, "auto", &b, &err) == HS_OK && b == starts[6]);
    CHECK_MSG(!strcmp(net->layers[b].name, "_blocks.5._expand_conv"), "%s", net->layers[b].name);
    CHECK(hs_layer_depth(net, 0) == 0);
    CHECK(hs_layer_depth(net, net->head_begin) == 18);
    CHECK(hs_layer_depth(net, starts[5] + 1) == 5);
    hs_net_free(net);
}

/* --strategy auto's timing of the stage (hs_finetune_time_steps): the steps it says it took
 * (of --batch-size images, the warm-up left out), their parts within the whole, and the
 * network exactly as it was afterwards, although the steps train every layer with AdamW and
 * BatchNorm in training mode, which moves the parameters, the running statistics and their
 * batch counts (test_unfreeze_and_bn shows the same options moving them in a run). */
static void test_time_steps(void) {
    hs_train_config c;
    tiny_config(&c, ROOT "/never");
    c.optimizer = "adamw";
    c.bn = "train";
    hs_dataset train, val;
    hs_dataset_options dopt = {c.val_fraction, c.seed, 0, 0};
    hs_error err = {0};
    CHECK(hs_dataset_open(DATA, &dopt, &train, &val, &err) == HS_OK);
    hs_net *net = start_network(&c);
    size_t pbytes = (size_t)net->param_floats * sizeof(float);
    size_t bbytes = (size_t)net->buffer_floats * sizeof(float);
    float *params = malloc(pbytes), *buffers = malloc(bbytes);
    memcpy(params, net->params, pbytes);
    memcpy(buffers, net->buffers, bbytes);
    int64_t tracked = 0;
    int bn_layer = -1;
    for (int i = 0; i < net->count && bn_layer < 0; i++)
        if (net->layers[i].kind == HS_LAYER_BATCHNORM) bn_layer = i;
    tracked = net->layers[bn_layer].bn_batches_tracked;
    hs_train_callbacks quiet = {0};
    hs_finetune_job job = {0};
    job.config = &c;
    job.cb = &quiet;
    job.train = &train;
    job.net = net;
    job.img_size = 32;
    job.boundary = 0;
    hs_finetune_parts p;
    CHECK_MSG(hs_finetune_time_steps(&job, 1, 2, &p, &err) == HS_OK, "%s", err.message);
    CHECK_MSG(p.steps == 2 && p.images == 2 * c.batch_size, "%ld steps, %ld images", p.steps,
              p.images);
    double parts = p.wait + p.forward + p.backward + p.update;
    CHECK_MSG(p.seconds > 0 && p.forward > 0 && p.backward > 0 && p.update > 0 &&
                  parts <= p.seconds * (1 + 1e-9),
              "%g s: wait %g, forward %g, backward %g, update %g", p.seconds, p.wait,
              p.forward, p.backward, p.update);
    CHECK(memcmp(params, net->params, pbytes) == 0);
    CHECK(memcmp(buffers, net->buffers, bbytes) == 0);
    CHECK(net->layers[bn_layer].bn_batches_tracked == tracked);
    for (int i = 0; i < net->count; i++) CHECK(!net->layers[i].frozen);
    free(params);
    free(buffers);
    hs_net_free(net);
    hs_dataset_free(&train);
    hs_dataset_free(&val);
}

/* The default stage-2 rate: --lr / 2 up to HS_FINETUNE_LR_STEPS steps, then scaled by
 * sqrt(HS_FINETUNE_LR_STEPS / steps); an explicit --finetune-lr is kept whatever the steps. */
static void test_default_rate(void) {
    hs_train_config c;
    hs_train_config_defaults(&c);
    c.lr = 1e-3f;
    c.batch_size = 32;
    c.epochs = 3; /* the subset: 5,000 images, 157 batches an epoch, 471 steps */
    CHECK_MSG(fabsf(hs_finetune_base_lr(&c, 5000) - 5e-4f) < 1e-9f, "%g",
              hs_finetune_base_lr(&c, 5000));
    c.epochs = 8; /* 1,256 steps: just over the line */
    CHECK(hs_finetune_base_lr(&c, 5000) < 5e-4f && hs_finetune_base_lr(&c, 5000) > 4.98e-4f);
    c.epochs = 5; /* the full copy: 1,563 batches, 7,815 steps */
    double expect = 5e-4 * sqrt(1250.0 / 7815.0);
    CHECK_MSG(fabs(hs_finetune_base_lr(&c, 50000) - expect) < 1e-9, "%g against %g",
              hs_finetune_base_lr(&c, 50000), expect);
    CHECK(fabs(expect - 2.0e-4) < 1e-6);
    c.finetune_lr = 7e-4f;
    CHECK(hs_finetune_base_lr(&c, 50000) == 7e-4f && hs_finetune_base_lr(&c, 10) == 7e-4f);
}

int main(void) {
    test_default_rate();
    test_require_lite0_weights();
    make_data();
    test_time_steps();
    test_blocks();
    test_bad_flags();
    test_unfreeze_and_bn();
    test_resume();
    return check_finish("test_finetune");
}
