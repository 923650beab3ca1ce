/* hs_train: the transfer-learning job from data to a run folder.
 *
 * files -> decoded images -> frozen backbone, once per image -> features
 *       -> head forward/backward -> optimizer -> metrics, checkpoints, plots, model
 *
 * The backbone is frozen and inputs are not randomly augmented, so its output is a fixed
 * function of each image: it runs once, and every epoch trains the head from the stored
 * features. That is the same model the classic loop trains by running the whole network in
 * every epoch (dropout in the head still draws new masks each step). */
#include <cblas.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auto_measure.h"
#include "auto_plan.h"
#include "checkpoint.h"
#include "class_weights.h"
#include "dist.h"
#include "error.h"
#include "feature_cache.h"
#include "feature_set.h"
#include "feature_shards.h"
#include "fileutil.h"
#include "finetune.h"
#include "lr_schedule.h"
#include "hash.h"
#include "plot.h"
#include "pretrained_cfg.h"
#include "ops.h"
#include "probe.h"
#include "run_record.h"

/* The longest output folder path: its files' paths (it plus at most 32 bytes) must fit. */
#define HS_RUN_DIR_MAX 4000

void hs_train_config_defaults(hs_train_config *c) {
    memset(c, 0, sizeof *c);
    c->backbone = "efficientnet_lite0";
    c->epochs = 10;
    c->batch_size = 32;
    /* AdamW at 1e-3 trained the best head of the settings tried on CIFAR-10 features (README);
     * the classic recipe is --optimizer sgd --lr 0.001 --momentum 0.9. */
    c->lr = 0.001f;
    c->momentum = 0.9f;
    c->weight_decay = 0.0f;
    c->optimizer = "adamw";
    c->train_layers = "head";
    c->strategy = "probe";
    c->class_weights = "none";
    c->val_fraction = 0.2;
    c->feature_precision = "f16";
    /* --strategy finetune (not yet tuned on the full CIFAR-10: see the README). BatchNorm
     * frozen by default, by measurement: on the CIFAR-10 5,000-image subset at 96 px, 3
     * fine-tune epochs reached 77.5 % frozen against 54.8 % with batch statistics. */
    c->probe_epochs = 5;
    /* The blocks at 1/16 resolution and coarser (finetune.h), by measurement: on CIFAR-10 as
     * accurate as the whole backbone at 1.5-2.7x the images/s (README "Fine-tuning"). */
    c->unfreeze = "auto";
    c->bn = "frozen";
    c->finetune_lr = 0.0f;
    c->layer_decay = 1.0f; /* no decay: measured (README "Fine-tuning") */
    c->warmup_epochs = 1;
    c->schedule = "cosine";
    c->mixup = 0.0f;
    c->label_smoothing = 0.1f;
    c->crop_scale = 0.25f;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void note(const hs_train_callbacks *cb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(const hs_train_callbacks *cb, const char *fmt, ...) {
    if (!cb || !cb->note) return;
    char text[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    cb->note(cb->ctx, text);
}

/* The options of --strategy finetune. */
static hs_status validate_finetune(const hs_train_config *c, hs_error *err) {
    if (strcmp(c->optimizer, "lbfgs") == 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "--strategy finetune trains with sgd or adamw, "
                       "not --optimizer lbfgs");
    if (c->probe_epochs < 0 || c->probe_epochs > HS_MAX_EPOCHS)
        return hs_fail(err, HS_ERR_ARGUMENT, "--probe-epochs must be 0..%d, not %d",
                       HS_MAX_EPOCHS, c->probe_epochs);
    const char *u = c->unfreeze ? c->unfreeze : "";
    if (strcmp(u, "all") != 0 && strcmp(u, "auto") != 0 &&
        (!*u || strspn(u, "0123456789") != strlen(u) || strlen(u) > 6))
        return hs_fail(err, HS_ERR_ARGUMENT, "--unfreeze must be auto, all or a block count, "
                       "not '%s'", u);
    if (!c->bn || (strcmp(c->bn, "train") != 0 && strcmp(c->bn, "frozen") != 0))
        return hs_fail(err, HS_ERR_ARGUMENT, "--bn must be train or frozen, not '%s'",
                       c->bn ? c->bn : "");
    if (!(c->finetune_lr >= 0.0f) || !isfinite(c->finetune_lr))
        return hs_fail(err, HS_ERR_ARGUMENT, "--finetune-lr must be > 0, not %g", c->finetune_lr);
    if (!(c->layer_decay > 0.0f && c->layer_decay <= 1.0f))
        return hs_fail(err, HS_ERR_ARGUMENT, "--layer-decay must be in (0, 1], not %g",
                       c->layer_decay);
    if (c->warmup_epochs < 0 || c->warmup_epochs > HS_MAX_EPOCHS)
        return hs_fail(err, HS_ERR_ARGUMENT, "--warmup-epochs must be >= 0, not %d",
                       c->warmup_epochs);
    hs_lr_shape shape;
    if (!c->schedule || hs_lr_shape_parse(c->schedule, &shape, err))
        return hs_fail(err, HS_ERR_ARGUMENT, "--schedule must be cosine or constant, not '%s'",
                       c->schedule ? c->schedule : "");
    if (!(c->mixup >= 0.0f && c->mixup <= 10.0f))
        return hs_fail(err, HS_ERR_ARGUMENT, "--mixup must be in [0, 10], not %g", c->mixup);
    if (!(c->label_smoothing >= 0.0f && c->label_smoothing < 1.0f))
        return hs_fail(err, HS_ERR_ARGUMENT, "--label-smoothing must be in [0, 1), not %g",
                       c->label_smoothing);
    if (!(c->crop_scale > 0.0f && c->crop_scale <= 1.0f))
        return hs_fail(err, HS_ERR_ARGUMENT, "--crop-scale must be in (0, 1], not %g",
                       c->crop_scale);
    return HS_OK;
}

/* Checks every option before any work, naming the flag. */
static hs_status validate(const hs_train_config *c, hs_error *err) {
    if (!c->data) return hs_fail(err, HS_ERR_ARGUMENT, "no DATA given");
    if (!hs_backbone_find(c->backbone))
        return hs_fail(err, HS_ERR_ARGUMENT, "--backbone: unknown backbone '%s'", c->backbone);
    if (c->epochs < 1 || c->epochs > HS_MAX_EPOCHS)
        return hs_fail(err, HS_ERR_ARGUMENT, "--epochs must be 1..%d, not %d", HS_MAX_EPOCHS,
                       c->epochs);
    if (c->batch_size < 1 || c->batch_size > 65536)
        return hs_fail(err, HS_ERR_ARGUMENT, "--batch-size must be 1..65536, not %d",
                       c->batch_size);
    if (!(c->lr > 0.0f) || !isfinite(c->lr))
        return hs_fail(err, HS_ERR_ARGUMENT, "--lr must be > 0, not %g", c->lr);
    if (!(c->momentum >= 0.0f && c->momentum < 1.0f))
        return hs_fail(err, HS_ERR_ARGUMENT, "--momentum must be in [0, 1), not %g",
                       c->momentum);
    if (!(c->weight_decay >= 0.0f) || !isfinite(c->weight_decay))
        return hs_fail(err, HS_ERR_ARGUMENT, "--weight-decay must be >= 0, not %g",
                       c->weight_decay);
    if (strcmp(c->optimizer, "sgd") != 0 && strcmp(c->optimizer, "adamw") != 0 &&
        strcmp(c->optimizer, "lbfgs") != 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "--optimizer must be sgd, adamw or lbfgs, not '%s'",
                       c->optimizer);
    if (strcmp(c->optimizer, "lbfgs") == 0 && strcmp(c->train_layers, "head") != 0)
        return hs_fail(err, HS_ERR_ARGUMENT,
                       "--optimizer lbfgs fits one linear layer: use --train-layers head");
    if (strcmp(c->train_layers, "head") != 0 && strcmp(c->train_layers, "classifier") != 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "--train-layers must be head or classifier, not '%s'",
                       c->train_layers);
    /* never a float32 run recorded as bf16 (bench refuses it the same way) */
    if (c->bf16 > 0 && hs_dnnl_bf16_support() == 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "--precision bf16 needs a CPU with AVX-512 (oneDNN "
                       "has no bfloat16 convolutions below it); use --precision f32 or auto");
    if (strcmp(c->strategy, "finetune") == 0 || strcmp(c->strategy, "auto") == 0) {
        hs_status st = validate_finetune(c, err);
        if (st) return st;
    } else if (strcmp(c->strategy, "probe") != 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "--strategy must be probe, finetune or auto, not "
                       "'%s'", c->strategy);
    if (strcmp(c->strategy, "auto") == 0 &&
        (!(c->budget_seconds >= 60) || !(c->budget_seconds <= 366.0 * 86400)))
        return hs_fail(err, HS_ERR_ARGUMENT, "--strategy auto needs --budget DURATION of at "
                       "least 1m (e.g. 30m, 2h), not %g s", c->budget_seconds);
    if (strcmp(c->strategy, "auto") == 0 && c->resume)
        return hs_fail(err, HS_ERR_ARGUMENT, "--resume of a --strategy auto run: pass the "
                       "options it chose instead (its log and run.json's \"auto\" say them, "
                       "e.g. --strategy finetune --img-size 128 --epochs 6)");
    if (strcmp(c->strategy, "auto") != 0 && c->budget_seconds != 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "--budget is for --strategy auto");
    if (!c->class_weights || !*c->class_weights)
        return hs_fail(err, HS_ERR_ARGUMENT, "--class-weights must be none, balanced or a FILE");
    if (c->img_size != 0 && (c->img_size < 32 || c->img_size > 1024))
        return hs_fail(err, HS_ERR_ARGUMENT, "--img-size must be 32..1024, not %d", c->img_size);
    if (!(c->val_fraction > 0.0 && c->val_fraction < 1.0))
        return hs_fail(err, HS_ERR_ARGUMENT, "--val-fraction must be in (0, 1), not %g",
                       c->val_fraction);
    if (c->threads < 0 || c->limit_train < 0 || c->limit_val < 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "--threads and --limit-* must not be negative");
    if (!c->feature_precision || (strcmp(c->feature_precision, "f16") != 0 &&
                                  strcmp(c->feature_precision, "f32") != 0))
        return hs_fail(err, HS_ERR_ARGUMENT, "--feature-precision must be f16 or f32, not '%s'",
                       c->feature_precision ? c->feature_precision : "");
    if (c->resume && c->overwrite)
        return hs_fail(err, HS_ERR_ARGUMENT, "--resume and --overwrite exclude each other");
    /* The folder's files are its path plus at most 32 bytes: refuse a path they would not fit
     * rather than write a shortened one. */
    if (c->out_dir && strlen(c->out_dir) >= HS_RUN_DIR_MAX)
        return hs_fail(err, HS_ERR_ARGUMENT, "--out: the path is longer than %d bytes",
                       HS_RUN_DIR_MAX - 1);
    if (!hs_path_exists(c->data))
        return hs_fail(err, HS_ERR_IO, "DATA %s does not exist", c->data);
    return HS_OK;
}

/* The files a run writes; --overwrite removes exactly these, nothing else of the user's. */
static const char *const run_files[] = {
    "run.json", "metrics.csv", "model.safetensors", "checkpoint.safetensors", "accuracy.png",
    "loss.png", "confusion.csv", "confusion.png", "best.safetensors"};

static void run_path(char *out, size_t size, const char *dir, const char *file) {
    snprintf(out, size, "%s/%s", dir, file);
}

/* Picks the output folder: the given one (refusing to clobber a run) or runs/NNN. A folder
 * holding a run (run.json or a checkpoint) is only reused with --resume or --overwrite. A run
 * stopped before its first epoch ended has run.json but no checkpoint: --resume then starts
 * it from epoch 1 (*fresh = 1) instead of refusing, as nothing of it can be lost. */
static hs_status prepare_out_dir(const hs_train_config *c, char *dir, size_t size, int *fresh,
                                 hs_error *err) {
    *fresh = 1;
    char path[4200];
    if (!c->out_dir) {
        if (c->resume)
            return hs_fail(err, HS_ERR_ARGUMENT, "--resume needs --out DIR naming the run");
        hs_status st = hs_make_dirs("runs", err);
        if (st) return st;
        for (int i = 1; i < 100000; i++) {
            snprintf(dir, size, "runs/%03d", i);
            if (hs_path_exists(dir)) continue;
            if (mkdir(dir, 0755) == 0) return HS_OK;
            if (errno != EEXIST)
                return hs_fail(err, HS_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
        }
        return hs_fail(err, HS_ERR_IO, "runs/ is full; pass --out DIR");
    }
    snprintf(dir, size, "%s", c->out_dir);
    run_path(path, sizeof path, dir, "checkpoint.safetensors");
    int has_checkpoint = hs_path_exists(path);
    run_path(path, sizeof path, dir, "run.json");
    int has_run = has_checkpoint || hs_path_exists(path);
    if (c->resume && !has_run)
        return hs_fail(err, HS_ERR_ARGUMENT,
                       "--resume: %s holds no run to resume (neither run.json nor a checkpoint)",
                       dir);
    *fresh = !(c->resume && has_checkpoint);
    if (has_run && !c->resume && !c->overwrite)
        return hs_fail(err, HS_ERR_EXISTS,
                       "%s already holds a run; pass --resume to continue it or --overwrite "
                       "to replace it",
                       dir);
    if (c->overwrite)
        for (size_t i = 0; i < sizeof run_files / sizeof run_files[0]; i++) {
            run_path(path, sizeof path, dir, run_files[i]);
            unlink(path);
        }
    hs_status st = hs_make_dirs(dir, err);
    if (!st) hs_remove_stale_temps(dir); /* a killed writer's leftovers; live ones are locked */
    return st;
}

/* The shortest text of a float that reads back as the same float (at most 9 digits), so that
 * the identity tells apart any two values the run would tell apart. */
static void float_text(char *out, size_t size, double value, int max_digits) {
    for (int digits = 1; digits <= max_digits; digits++) {
        snprintf(out, size, "%.*g", digits, value);
        if (max_digits <= 9 ? strtof(out, NULL) == (float)value : strtod(out, NULL) == value)
            return;
    }
}

/* SHA-256 of the data set's classes and of its file list (each sample's path below DATA,
 * size, modification time and label, as the feature cache's key has them), as hex. */
static hs_status dataset_digests(const hs_dataset *ds, const char *data, char classes[65],
                                 char files[65], hs_error *err) {
    hs_sha256 *hc = hs_sha256_new(), *hf = hs_sha256_new();
    if (!hc || !hf) {
        unsigned char ignored[32];
        if (hc) hs_sha256_finish(hc, ignored);
        if (hf) hs_sha256_finish(hf, ignored);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory hashing the file list");
    }
    for (int i = 0; i < ds->class_count; i++)
        hs_sha256_update(hc, ds->class_names[i], strlen(ds->class_names[i]) + 1);
    size_t prefix = strlen(data);
    for (int i = 0; i < ds->count; i++) {
        const hs_sample *x = &ds->samples[i];
        /* Below DATA, so that "data" and "./data" name the same files. */
        const char *name = strncmp(x->name, data, prefix) == 0 ? x->name + prefix : x->name;
        char line[96];
        int n = snprintf(line, sizeof line, "\t%lld\t%lld\t%d\n", (long long)x->size,
                         (long long)x->mtime, x->label);
        hs_sha256_update(hf, name, strlen(name));
        hs_sha256_update(hf, line, (size_t)n);
    }
    unsigned char digest[32];
    int bad = hs_sha256_finish(hc, digest);
    hs_sha256_hex(digest, classes);
    bad |= hs_sha256_finish(hf, digest);
    hs_sha256_hex(digest, files);
    return bad ? hs_fail(err, HS_ERR_NOMEM, "out of memory hashing the file list") : HS_OK;
}

/* What must be the same for a checkpoint to be resumed: everything that shapes the run but
 * the number of epochs, one "name=value" a line (hs_checkpoint_load names the lines that
 * differ). Floats are written exactly; classes and files by their hash. *out is malloc'd. */
static hs_status run_identity(const hs_train_config *c, const char *weights_sha, int img_size,
                              const hs_dataset *train, const hs_dataset *val,
                              const float *weights, char **out, hs_error *err) {
    *out = NULL;
    /* The weights themselves, by hash: a FILE may move, but other values are another run. */
    char class_weights[120];
    if (!weights) {
        snprintf(class_weights, sizeof class_weights, "none");
    } else {
        hs_sha256 *h = hs_sha256_new();
        unsigned char digest[32];
        char hex[65];
        if (!h) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
        hs_sha256_update(h, weights, (size_t)train->class_count * sizeof(float));
        if (hs_sha256_finish(h, digest)) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
        hs_sha256_hex(digest, hex);
        snprintf(class_weights, sizeof class_weights, "%s %.16s",
                 strcmp(c->class_weights, "balanced") == 0 ? "balanced" : "file", hex);
    }
    char lr[32], mom[32], wd[32], fraction[40];
    float_text(lr, sizeof lr, c->lr, 9);
    float_text(mom, sizeof mom, c->momentum, 9);
    float_text(wd, sizeof wd, c->weight_decay, 9);
    float_text(fraction, sizeof fraction, c->val_fraction, 17);
    char classes[65], train_files[65], val_files[65], ignored[65];
    hs_status st = dataset_digests(train, c->data, classes, train_files, err);
    if (!st) st = dataset_digests(val, c->data, ignored, val_files, err);
    if (st) return st;
    size_t size = 0;
    FILE *f = open_memstream(out, &size);
    if (!f) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    fprintf(f, "class weights=%s\n", class_weights);
    fprintf(f,
            "backbone=%s\nweights=%s\nimg=%d\nlayers=%s\nopt=%s\nlr=%s\nmom=%s\nwd=%s\n"
            "batch=%d\nseed=%llu\nval=%s\nlimits=%d/%d\nfeatures=%s\nbf16=%d\n"
            "classes=%d %s\ntrain files=%d %s\nval files=%d %s",
            c->backbone, weights_sha, img_size, c->train_layers, c->optimizer, lr, mom, wd,
            c->batch_size, (unsigned long long)c->seed, fraction, c->limit_train, c->limit_val,
            c->no_cache ? "f32" : c->feature_precision, c->bf16, train->class_count, classes,
            train->count, train_files, val->count, val_files);
    if (strcmp(c->strategy, "finetune") == 0) {
        /* The schedule spans every epoch, so a fine-tune resumes only to the same count. */
        char ftlr[32], decay[32], mixup[32], smoothing[32], crop[32];
        float_text(ftlr, sizeof ftlr, c->finetune_lr, 9);
        float_text(decay, sizeof decay, c->layer_decay, 9);
        float_text(mixup, sizeof mixup, c->mixup, 9);
        float_text(smoothing, sizeof smoothing, c->label_smoothing, 9);
        float_text(crop, sizeof crop, c->crop_scale, 9);
        fprintf(f, "\nstrategy=finetune\nepochs=%d\nprobe epochs=%d\nunfreeze=%s\nbn=%s\n"
                "finetune lr=%s\nlayer decay=%s\nwarmup=%d\nschedule=%s\nmixup=%s\n"
                "smoothing=%s\ncrop=%s",
                c->epochs, c->probe_epochs, c->unfreeze, c->bn, ftlr, decay, c->warmup_epochs,
                c->schedule, mixup, smoothing, crop);
    }
    int bad = ferror(f);
    if (fclose(f) || bad) {
        free(*out);
        *out = NULL;
        return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    }
    return HS_OK;
}

typedef struct train_state {
    const hs_train_config *config;
    const hs_train_callbacks *cb;
    hs_context *ctx;       /* the ranks of a data-parallel run (dist.h); rank 0 of 1 alone */
    char dir[4096];
    hs_dataset train, val;
    hs_net *net;
    int begin;             /* first trained layer: the frozen boundary */
    int img_size;
    hs_preprocess pp;      /* resolved (pretrained_cfg.h); pp.input_size is img_size */
    char weights_path[4096];
    char weights_sha[65];
    char cache_dir[4096];  /* empty: no cache */
    char data_path[4096];  /* DATA, absolute: names the cache entries' source */
    hs_feature_set train_features, val_features;
    hs_head_trainer trainer;
    hs_epoch_metrics *history;
    int epochs_done;
    int fresh;             /* no checkpoint to resume from: the run starts at epoch 1 */
    int *confusion;
    int finetune_train_images, finetune_val_images; /* images stage 2 used */
    float *class_weights;  /* --class-weights, per class; NULL: none */
    hs_train_config planned; /* --strategy auto: the options it chose (config points here) */
    hs_auto_input auto_in;
    hs_auto_plan auto_plan;
    int has_plan;
} train_state;

static void stage(const train_state *s, const char *name, int epoch, int step) {
    if (s->cb && s->cb->stage) s->cb->stage(s->cb->ctx, name, epoch, step);
}

static hs_status open_network(train_state *s, hs_error *err) {
    const hs_train_config *c = s->config;
    const hs_backbone_info *info = hs_backbone_find(c->backbone);
    hs_status st = HS_OK;
    if (c->weights && strcmp(c->weights, "none") == 0) {
        snprintf(s->weights_path, sizeof s->weights_path, "none");
        snprintf(s->weights_sha, sizeof s->weights_sha, "random-seed-%llu",
                 (unsigned long long)c->seed);
        note(s->cb, "%s runs with random weights (--weights none)", info->name);
    } else {
        if (c->weights) snprintf(s->weights_path, sizeof s->weights_path, "%s", c->weights);
        else if ((st = hs_find_weights(info, s->weights_path, sizeof s->weights_path, err)))
            return st;
        if ((st = hs_sha256_file(s->weights_path, s->weights_sha, err))) return st;
    }
    if ((st = hs_net_create(c->backbone, c->seed, &s->net, err))) return st;
    hs_head_kind kind = strcmp(c->train_layers, "classifier") == 0 ? HS_HEAD_CLASSIFIER
                                                                   : HS_HEAD_LAST_LAYER;
    if ((st = hs_net_replace_head(s->net, s->train.class_count, kind, c->seed ^ 0x5eedu, err)))
        return st;
    if (strcmp(s->weights_path, "none") != 0 &&
        (st = hs_net_load_weights(s->net, s->weights_path, err)))
        return st;
    s->net->bf16 = c->bf16;
    s->net->ctx = s->ctx; /* run.json reads the world size from it */
    s->begin = s->net->head_begin;
    /* The preprocessing of the file used (its version, a config.json beside it); training
     * resizes whole images without a crop, so --img-size only sets the input size. */
    int random = strcmp(s->weights_path, "none") == 0;
    char why[1024];
    if ((st = hs_preprocess_resolve(info, random ? NULL : s->weights_path,
                                    random ? NULL : s->weights_sha, 0, &s->pp, why, sizeof why,
                                    err)))
        return st;
    if (why[0]) note(s->cb, "%s", why);
    if (c->img_size) s->pp.input_size = c->img_size;
    s->img_size = s->pp.input_size;
    return HS_OK;
}

/* --class-weights from the training side's labels (or the file), said in the log. */
static hs_status resolve_class_weights(train_state *s, hs_error *err) {
    const hs_dataset *d = &s->train;
    int *labels = malloc((size_t)(d->count ? d->count : 1) * sizeof *labels);
    if (!labels) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < d->count; i++) labels[i] = d->samples[i].label;
    hs_status st = hs_class_weights_resolve(s->config->class_weights, d->class_names,
                                            d->class_count, labels, d->count, &s->class_weights,
                                            err);
    free(labels);
    if (st || !s->class_weights) return st;
    char text[1000];
    size_t used = 0;
    for (int k = 0; k < d->class_count && used + 40 < sizeof text; k++)
        used += (size_t)snprintf(text + used, sizeof text - used, "%s%.24s %.3g",
                                 k ? ", " : "", d->class_names[k], s->class_weights[k]);
    note(s->cb, "class weights (%s): %s%s", s->config->class_weights, text,
         used + 40 >= sizeof text ? ", ..." : "");
    return HS_OK;
}

/* --strategy auto: measures the feature pass and the fine-tune step at each candidate size
 * on the first training images, plans (auto_plan.h), says what it chose and why, and points
 * s->config at the options of that plan. Over several ranks every rank measures (their
 * collective steps stay in step) and rank 0's rates make everyone's plan. */
static hs_status plan_auto(train_state *s, double t0, hs_train_result *result, hs_error *err) {
    const hs_train_config *c = s->config;
    hs_auto_input *in = &s->auto_in;
    memset(in, 0, sizeof *in);
    int full = s->net->info->preprocess.input_size;
    if (c->img_size) {
        in->sizes[in->size_count++] = c->img_size; /* the user fixed it */
    } else {
        static const int candidates[] = {96, 128, 160, 224};
        for (size_t k = 0; k < sizeof candidates / sizeof candidates[0]; k++)
            if (candidates[k] < full) in->sizes[in->size_count++] = candidates[k];
        in->sizes[in->size_count++] = full;
    }
    int boundary = 0;
    hs_status st = hs_unfreeze_boundary(s->net, c->unfreeze, &boundary, err);
    /* The fine-tune is timed as it will run: this run's options, class weights and
     * preprocessing, 3 steps of --batch-size after a warm-up one. */
    hs_auto_measure_options o = {0};
    o.boundary = boundary;
    o.feature_batch = 32;
    o.config = c;
    o.ctx = s->ctx;
    o.preprocess = &s->pp;
    o.class_weights = s->class_weights;
    o.steps = 3;
    o.val_images = s->val.count;
    o.progress = s->cb ? s->cb->progress : NULL;
    o.progress_ctx = s->cb ? s->cb->ctx : NULL;
    o.stop = s->cb ? s->cb->stop : NULL;
    if (!st)
        snprintf(in->trained_from, sizeof in->trained_from, "%s", s->net->layers[boundary].name);
    if (!st) st = hs_auto_measure(s->net, &s->train, &o, in, err);
    if ((st = hs_dist_agree(s->ctx, st, err)) ||
        (st = hs_dist_broadcast(s->ctx, in, sizeof *in, 0, err)))
        return st;
    /* A fine-tune epoch also writes the network twice (best.safetensors, and the checkpoint
     * with AdamW's two moments: three times its size): timed by writing it once here. A
     * head epoch on cached features is taken as its plots plus 50,000 images a second (the
     * README's head timings are several times that). */
    if (hs_dist_is_root(s->ctx)) {
        char path[4200];
        run_path(path, sizeof path, s->dir, ".auto-measure.safetensors");
        double w0 = now_seconds();
        st = hs_save_network(path, s->net, c->backbone, err);
        unlink(path);
        in->epoch_overhead_seconds = 4 * (now_seconds() - w0) + 0.3;
    }
    if ((st = hs_dist_agree(s->ctx, st, err)) ||
        (st = hs_dist_broadcast(s->ctx, &in->epoch_overhead_seconds, sizeof(double), 0, err)))
        return st;
    in->head_epoch_seconds = 0.3 + s->train.count / 50000.0;
    in->budget_seconds = c->budget_seconds;
    in->spent_seconds = now_seconds() - t0;
    in->train_images = s->train.count;
    in->val_images = s->val.count;
    in->probe_epochs = c->probe_epochs;
    in->max_finetune_epochs = c->epochs; /* --epochs bounds the plan */
    hs_auto_plan *p = &s->auto_plan;
    if ((st = hs_auto_plan_make(in, c->epochs, p, err))) return st;
    s->has_plan = 1;
    s->planned = *c;
    s->planned.strategy = p->finetune ? "finetune" : "probe";
    s->planned.img_size = p->img_size;
    s->planned.epochs = p->finetune ? p->epochs : p->probe_epochs;
    s->planned.probe_epochs = p->finetune ? p->probe_epochs : c->probe_epochs;
    s->config = &s->planned;
    s->img_size = p->img_size;
    snprintf(result->auto_choice, sizeof result->auto_choice, "%s", s->planned.strategy);
    result->auto_img_size = p->img_size;
    result->auto_probe_epochs = p->probe_epochs;
    result->auto_epochs = p->epochs;
    result->auto_estimate_seconds = p->estimate_seconds;
    note(s->cb, "auto: %s", p->why);
    if (p->finetune)
        note(s->cb, "auto: the same run by hand (and to resume it): --strategy finetune "
             "--img-size %d --probe-epochs %d --epochs %d", p->img_size, p->probe_epochs,
             p->epochs);
    else
        note(s->cb, "auto: the same run by hand (and to resume it): --strategy probe "
             "--img-size %d --epochs %d", p->img_size, p->probe_epochs);
    return HS_OK;
}

/* Computes the features of ds, streaming them into a new cache entry when there is a cache
 * (then reading them back from it, so a first run and a rerun train on the same numbers). */
static hs_status compute(train_state *s, const hs_dataset *ds, const char *phase,
                         const char *key, const char *source, int dim, hs_feature_set *out,
                         hs_error *err) {
    hs_cache_precision precision =
        strcmp(s->config->feature_precision, "f16") == 0 ? HS_CACHE_F16 : HS_CACHE_F32;
    hs_feature_options o = {0};
    o.img_size = s->img_size;
    o.interpolation = s->pp.interpolation;
    memcpy(o.mean, s->pp.mean, sizeof o.mean);
    memcpy(o.std, s->pp.std, sizeof o.std);
    o.batch_size = s->config->batch_size < 32 ? 32 : s->config->batch_size;
    o.strict = s->config->strict;
    o.progress = s->cb ? s->cb->progress : NULL;
    o.progress_ctx = s->cb ? s->cb->ctx : NULL;
    o.phase = phase;
    o.stop = s->cb ? s->cb->stop : NULL;
    if (hs_dist_world(s->ctx) > 1) {
        /* Each rank its share of the images; rank 0 writes the entry (feature_shards.h). */
        hs_shared_cache cache = {key ? s->cache_dir : NULL, key, source, precision};
        int cache_failed = 0;
        char cause[700];
        hs_status st = hs_extract_features_shared(s->ctx, s->net, s->begin, ds, &o, &cache,
                                                  dim, out, &cache_failed, cause,
                                                  sizeof cause, err);
        if (!st && cache_failed) note(s->cb, "%s: %s; computed them in memory", phase, cause);
        return st;
    }
    if (!key) return hs_extract_features(s->net, s->begin, ds, &o, out, err);
    /* Cache policy: a cache that cannot be written or read back (full disk, permissions, a
     * folder gone) never stops the run; the features are computed in memory, the cause
     * noted. */
    hs_cache_fill_job job = {s->net, s->begin, ds, &o, s->cache_dir, key, source, dim,
                             precision};
    char fallback[700];
    hs_status st = hs_cache_fill(&job, out, fallback, sizeof fallback, err);
    if (!st && fallback[0]) note(s->cb, "%s: %s; computing them in memory", phase, fallback);
    return st;
}

/* The features of one side of the data: from the cache when it holds them, else computed. */
static hs_status extract(train_state *s, const hs_dataset *ds, const char *side,
                         hs_feature_set *out, int *cached, hs_error *err) {
    char phase[64], source[4200];
    snprintf(phase, sizeof phase, "%s features", side);
    snprintf(source, sizeof source, "%s (%s)", s->data_path, side);
    char *key = NULL;
    /* The row width the network gives: a cache entry of another width is refused. */
    int c = 0, h = 0, w = 0;
    hs_status st = hs_net_shape(s->net, 0, s->begin, 3, s->img_size, s->img_size, &c, &h, &w,
                                err);
    if (st) return st;
    if (s->cache_dir[0]) {
        hs_cache_key_input in = {
            s->config->backbone, s->weights_sha, s->begin, s->net->layers[s->begin].name,
            s->img_size, s->pp.mean, s->pp.std,
            strcmp(s->config->feature_precision, "f16") == 0 ? HS_CACHE_F16 : HS_CACHE_F32,
            s->config->bf16, ds, source, s->pp.interpolation};
        int hit = 0, root = hs_dist_is_root(s->ctx);
        char why[600] = "";
        st = hs_cache_key_make(&in, &key, err);
        /* Rank 0 looks first (a lookup removes a damaged entry and sweeps leftovers); the
         * others read the entry only once it has found it. */
        if (!st && root)
            st = hs_cache_lookup(s->cache_dir, key, source, ds, c * h * w, out, &hit, why,
                                 sizeof why, err);
        if (!(st = hs_dist_agree(s->ctx, st, err)))
            st = hs_dist_broadcast(s->ctx, &hit, sizeof hit, 0, err);
        if (!st && hit) {
            if (!root) {
                int mine = 0;
                char why_here[600];
                st = hs_cache_lookup(s->cache_dir, key, source, ds, c * h * w, out, &mine,
                                     why_here, sizeof why_here, err);
                if (!st && !mine)
                    st = hs_fail(err, HS_ERR_IO, "cannot read the feature cache entry rank 0 "
                                 "read in %s (%s): every rank needs the same cache folder on a "
                                 "shared file system (--cache-dir), or pass --no-cache",
                                 s->cache_dir, why_here);
            }
            st = hs_dist_agree(s->ctx, st, err);
        }
        if (!st && hit) {
            *cached = 1;
            note(s->cb, "%s: %d read from the cache (%s)", phase, out->count, why);
        } else if (!st) {
            note(s->cb, "%s: computing them (%s)", phase, why);
        }
        if (st || hit) goto done;
    }
    st = compute(s, ds, phase, key, source, c * h * w, out, err);
done:
    free(key);
    for (int i = 0; !st && i < out->failed_count; i++) note(s->cb, "skipped %s", out->failed[i]);
    if (!st && out->count == 0)
        st = hs_fail(err, HS_ERR_IMAGE, "no readable image in the %s set", side);
    return st;
}

/* Sums a rank's loss, correct count and confusion increments (classes x classes, or NULL)
 * over the ranks, as doubles: exact for the counts (below 2^53). */
static hs_status sum_over_ranks(train_state *s, double *loss_sum, long *correct,
                                int *confusion, hs_error *err) {
    if (hs_dist_world(s->ctx) <= 1) return HS_OK;
    size_t cells = confusion ? (size_t)s->net->num_classes * s->net->num_classes : 0;
    double *v = malloc((2 + cells) * sizeof(double));
    hs_status st = v ? HS_OK : hs_fail(err, HS_ERR_NOMEM, "out of memory");
    if ((st = hs_dist_agree(s->ctx, st, err))) return st;
    v[0] = *loss_sum;
    v[1] = (double)*correct;
    for (size_t i = 0; i < cells; i++) v[2 + i] = confusion[i];
    if (!(st = hs_dist_sum_doubles(s->ctx, v, 2 + cells, err))) {
        *loss_sum = v[0];
        *correct = (long)v[1];
        for (size_t i = 0; i < cells; i++) confusion[i] = (int)v[2 + i];
    }
    free(v);
    return st;
}

/* Inference-mode loss and accuracy over a feature set, a chunk of rows at a time (the rows
 * may be half precision); confusion, when not NULL, is incremented. Each rank evaluates its
 * contiguous share of the rows and the sums are reduced: every rank gets the totals. */
static hs_status evaluate_features(train_state *s, const hs_feature_set *f,
                                   hs_batch_result *result, int *confusion, hs_error *err) {
    enum { CHUNK = 256 };
    int classes = s->net->num_classes;
    int64_t lo = 0, hi = 0;
    hs_dist_share(f->count, hs_dist_rank(s->ctx), hs_dist_world(s->ctx), &lo, &hi);
    float *x = malloc((size_t)CHUNK * f->dim * sizeof(float));
    /* This rank's increments, kept apart so that only they are summed. */
    int *mine = confusion ? calloc((size_t)classes * classes, sizeof(int)) : NULL;
    hs_status st = x && (mine || !confusion) ? HS_OK
                                             : hs_fail(err, HS_ERR_NOMEM, "out of memory evaluating");
    double loss_sum = 0;
    long correct = 0;
    for (int first = (int)lo; first < hi && !st; first += CHUNK) {
        int n = hi - first < CHUNK ? (int)(hi - first) : CHUNK;
        hs_feature_range(f, first, n, x);
        hs_batch_result part;
        st = hs_head_evaluate(s->net, s->begin, x, f->labels + first, n, CHUNK, &part, mine,
                              NULL, err);
        loss_sum += part.loss_sum;
        correct += part.correct;
    }
    if (!(st = hs_dist_agree(s->ctx, st, err))) st = sum_over_ranks(s, &loss_sum, &correct, mine, err);
    for (int i = 0; !st && confusion && i < classes * classes; i++) confusion[i] += mine[i];
    result->loss_sum = loss_sum;
    result->correct = (int)correct;
    free(x);
    free(mine);
    return st;
}

/* Progress through a head-training epoch, reported only once it has taken a couple of
 * seconds: a Lite0 head's epoch takes a fraction of one and needs no line of its own, VGG16's
 * 120 M-parameter classifier about five minutes. */
static void epoch_progress(const train_state *s, int epoch, long done, long total,
                           double started, int *reporting) {
    if (!s->cb || !s->cb->progress || hs_dist_rank(s->ctx) != 0) return;
    double seconds = now_seconds() - started;
    if (!*reporting && seconds < 2.0) return;
    *reporting = 1;
    char phase[32];
    snprintf(phase, sizeof phase, "epoch %d", epoch);
    s->cb->progress(s->cb->ctx, phase, done, total, seconds);
}

/* One pass over the training features in a seeded random order. */
static hs_status train_epoch(train_state *s, int epoch, double *loss, double *acc,
                             hs_error *err) {
    const hs_feature_set *f = &s->train_features;
    int n = f->count, batch = s->config->batch_size, dim = f->dim;
    int *order = malloc((size_t)n * sizeof *order);
    float *x = malloc((size_t)batch * dim * sizeof(float));
    int *labels = malloc((size_t)batch * sizeof *labels);
    hs_status st = HS_OK;
    if (!order || !x || !labels) st = hs_fail(err, HS_ERR_NOMEM, "out of memory for an epoch");
    if ((st = hs_dist_agree(s->ctx, st, err))) goto done;
    hs_head_trainer_begin_epoch(&s->trainer, s->config->seed, epoch, n, order);
    double loss_sum = 0, started = now_seconds();
    long correct = 0;
    int rank = hs_dist_rank(s->ctx), world = hs_dist_world(s->ctx), reporting = 0;
    for (int start = 0; start < n; start += batch) {
        /* Ctrl-C reaches the ranks at slightly different steps: they stop together. */
        if (s->cb && s->cb->stop && *s->cb->stop)
            st = hs_fail(err, HS_ERR_INTERRUPTED, "interrupted in epoch %d", epoch);
        if ((st = hs_dist_agree(s->ctx, st, err))) break;
        stage(s, "train step", epoch, start / batch + 1);
        int m = n - start < batch ? n - start : batch;
        /* This rank's slice [a, b) of the global batch order[start .. start + m). */
        int64_t a = 0, b = 0;
        hs_dist_share(m, rank, world, &a, &b);
        int mine = (int)(b - a);
        hs_feature_rows(f, order + start + a, mine, x);
        for (int k = 0; k < mine; k++) labels[k] = f->labels[order[start + a + k]];
        hs_batch_result r;
        if ((st = hs_head_train_step_dist(&s->trainer, s->ctx, x, labels, order + start + a,
                                           mine, m, &r, err))) {
            if (st == HS_ERR_DIVERGED)
                hs_fail_context(err, st, "epoch %d, step %d", epoch, start / batch + 1);
            break;
        }
        loss_sum += r.loss_sum;
        correct += r.correct;
        epoch_progress(s, epoch, start + m, n, started, &reporting);
    }
    if (!st) st = sum_over_ranks(s, &loss_sum, &correct, NULL, err);
    *loss = loss_sum / n;
    *acc = 100.0 * (double)correct / n;
    if (!st && !isfinite(*loss))
        st = hs_fail(err, HS_ERR_DIVERGED, "the training loss of epoch %d is %g; lower --lr "
                     "(now %g)", epoch, *loss, s->config->lr);
done:
    free(order);
    free(x);
    free(labels);
    return st;
}

/* Validation loss and accuracy after epoch (and the confusion matrix). A loss that is not
 * finite stops the run like a training one: a checkpoint cannot hold it. */
static hs_status validate_epoch(train_state *s, int epoch, double *loss, double *acc,
                                hs_error *err) {
    const hs_feature_set *f = &s->val_features;
    int classes = s->net->num_classes;
    memset(s->confusion, 0, (size_t)classes * classes * sizeof(int));
    hs_batch_result r;
    hs_status st = evaluate_features(s, f, &r, s->confusion, err);
    if (st) return st;
    *loss = r.loss_sum / f->count;
    *acc = 100.0 * r.correct / f->count;
    if (!isfinite(*loss))
        return hs_fail(err, HS_ERR_DIVERGED, "the validation loss after epoch %d is %s; lower "
                       "--lr (now %g)", epoch, isnan(*loss) ? "NaN" : "infinite",
                       s->config->lr);
    return HS_OK;
}

static hs_status write_plots(train_state *s, hs_error *err) {
    int n = s->epochs_done;
    double *v = malloc((size_t)(n ? n : 1) * 4 * sizeof(double));
    if (!v) return hs_fail(err, HS_ERR_NOMEM, "out of memory plotting");
    for (int i = 0; i < n; i++) {
        v[i] = s->history[i].train_acc;
        v[n + i] = s->history[i].val_acc;
        v[2 * n + i] = s->history[i].train_loss;
        v[3 * n + i] = s->history[i].val_loss;
    }
    hs_series acc[] = {{"train", v, n}, {"validation", v + n, n}};
    hs_series loss[] = {{"train", v + 2 * n, n}, {"validation", v + 3 * n, n}};
    char path[4200];
    run_path(path, sizeof path, s->dir, "accuracy.png");
    hs_status st = hs_plot_lines(path, "Accuracy", "accuracy (%)", acc, 2, err);
    run_path(path, sizeof path, s->dir, "loss.png");
    if (!st) st = hs_plot_lines(path, "Loss", "cross-entropy loss", loss, 2, err);
    free(v);
    return st;
}

static hs_status write_confusion(train_state *s, hs_error *err) {
    int classes = s->net->num_classes;
    char path[4200];
    run_path(path, sizeof path, s->dir, "confusion.png");
    hs_status st = hs_plot_confusion(path, "Validation confusion matrix", s->confusion, classes,
                                     (const char *const *)s->train.class_names, err);
    if (st) return st;
    return hs_write_confusion_csv(s->dir, s->confusion, classes,
                                  (const char *const *)s->train.class_names, err);
}

/* metrics.csv and the plots: derived from the history alone, which the checkpoint holds, so
 * that --resume can always write them again. */
static hs_status write_epoch_outputs(train_state *s, hs_error *err) {
    char path[4200];
    run_path(path, sizeof path, s->dir, "metrics.csv");
    hs_status st = hs_write_metrics_csv(path, s->history, s->epochs_done, err);
    if (!st) st = write_plots(s, err);
    return st;
}

/* Each epoch writes its checkpoint first, then the outputs derived from it: a kill at any
 * point leaves a checkpoint from which --resume rewrites every output. */
static hs_status run_epochs(train_state *s, hs_error *err) {
    const hs_train_config *c = s->config;
    char path[4200], *identity = NULL;
    int root = hs_dist_is_root(s->ctx);
    hs_status st = run_identity(c, s->weights_sha, s->img_size, &s->train, &s->val,
                               s->class_weights, &identity,
                                err);
    if ((st = hs_dist_agree(s->ctx, st, err))) goto done;
    run_path(path, sizeof path, s->dir, "checkpoint.safetensors");
    if (c->resume && !s->fresh) {
        /* Every rank reads the checkpoint rank 0 wrote, whatever the rank count then. */
        st = hs_checkpoint_load(path, &s->trainer, s->history, &s->epochs_done, identity, err);
        if ((st = hs_dist_agree(s->ctx, st, err))) goto done;
        note(s->cb, "resuming %s after epoch %d", s->dir, s->epochs_done);
        /* The outputs of the last epoch may not have been written when the run stopped. */
        if (root) st = write_epoch_outputs(s, err);
        if ((st = hs_dist_agree(s->ctx, st, err))) goto done;
    } else if (c->resume) {
        note(s->cb, "%s holds no checkpoint (the run stopped before its first epoch ended): "
             "starting it from epoch 1", s->dir);
    }
    int trained = 0;
    for (int epoch = s->epochs_done + 1; epoch <= c->epochs; epoch++) {
        double start = now_seconds();
        hs_epoch_metrics m = {epoch, 0, 0, 0, 0, 0};
        if ((st = train_epoch(s, epoch, &m.train_loss, &m.train_acc, err))) goto done;
        stage(s, "validation", epoch, 0);
        if ((st = validate_epoch(s, epoch, &m.val_loss, &m.val_acc, err))) goto done;
        m.seconds = now_seconds() - start;
        s->history[s->epochs_done] = m;
        /* Rank 0 alone writes; the others wait to hear that it could. */
        if ((st = hs_check_ranks_agree(s->ctx, &s->trainer.optimizer, epoch, err))) goto done;
        if (root)
            st = hs_checkpoint_save(path, &s->trainer, s->history, s->epochs_done + 1, identity,
                                    err);
        if ((st = hs_dist_agree(s->ctx, st, err))) goto done;
        s->epochs_done++;
        stage(s, "checkpoint written", epoch, 0);
        if (root) st = write_epoch_outputs(s, err);
        if ((st = hs_dist_agree(s->ctx, st, err))) goto done;
        stage(s, "outputs written", epoch, 0);
        if (s->cb && s->cb->epoch_done) s->cb->epoch_done(s->cb->ctx, &m, c->epochs);
        trained = 1;
    }
    /* A resumed run that had already finished: the confusion matrix of its final head. */
    if (!trained && s->epochs_done > 0) {
        double loss, acc;
        st = validate_epoch(s, s->epochs_done, &loss, &acc, err);
    }
    if (!st && s->epochs_done > 0 && root) st = write_confusion(s, err);
    st = hs_dist_agree(s->ctx, st, err);
done:
    free(identity);
    return st;
}

/* Both sides' features: from the cache when it holds them, else computed (and cached). */
static hs_status extract_features(train_state *s, hs_train_result *result, hs_error *err) {
    const hs_train_config *c = s->config;
    hs_status st = HS_OK;
    if (!realpath(c->data, s->data_path)) snprintf(s->data_path, sizeof s->data_path, "%s", c->data);
    /* Rank 0 resolves the cache folder and every rank uses that one: the ranks must agree
     * on whether there is a cache (they take part in writing it), and a rank that cannot
     * read rank 0's entry says so (extract). */
    if (!c->no_cache && hs_dist_is_root(s->ctx)) {
        hs_error cache_err = {0};
        if (hs_cache_dir_resolve(c->cache_dir, s->cache_dir, sizeof s->cache_dir, &cache_err)) {
            if (c->cache_dir)
                st = hs_fail(err, cache_err.code, "--cache-dir: %s", cache_err.message);
            else
                note(s->cb, "no feature cache: %s", cache_err.message);
            s->cache_dir[0] = '\0';
        }
    }
    if ((st = hs_dist_agree(s->ctx, st, err)) ||
        (st = hs_dist_broadcast(s->ctx, s->cache_dir, sizeof s->cache_dir, 0, err)))
        return st;
    double f0 = now_seconds();
    int train_cached = 0, val_cached = 0;
    if ((st = extract(s, &s->train, "train", &s->train_features, &train_cached, err))) return st;
    if ((st = extract(s, &s->val, "val", &s->val_features, &val_cached, err))) return st;
    result->cached_sides = train_cached + val_cached;
    result->feature_seconds = now_seconds() - f0;
    result->feature_images_per_second =
        (s->train.count + s->val.count) / (result->feature_seconds > 0 ? result->feature_seconds : 1);

    return HS_OK;
}

static hs_status write_outputs_cb(void *ctx, hs_error *err) {
    return write_epoch_outputs(ctx, err);
}

/* --strategy finetune: stage 1, the head probe on cached features exactly as --strategy
 * probe trains it (no checkpoint: it is cheap to repeat); stage 2, finetune.c. A resumed
 * fine-tune restores the whole network from its checkpoint and skips stage 1. */
static hs_status run_finetune(train_state *s, hs_train_result *result, hs_error *err) {
    const hs_train_config *c = s->config;
    int boundary = 0;
    char *identity = NULL;
    hs_status st = hs_unfreeze_boundary(s->net, c->unfreeze, &boundary, err);
    if (!st) st = run_identity(c, s->weights_sha, s->img_size, &s->train, &s->val,
                               s->class_weights, &identity,
                               err);
    if ((st = hs_dist_agree(s->ctx, st, err))) goto done;
    int resume = c->resume && !s->fresh;
    if (!resume && c->probe_epochs > 0) {
        if ((st = extract_features(s, result, err))) goto done;
        hs_optimizer_kind kind = strcmp(c->optimizer, "adamw") == 0 ? HS_OPTIMIZER_ADAMW
                                                                    : HS_OPTIMIZER_SGD;
        st = hs_head_trainer_init(&s->trainer, s->net, s->begin, c->batch_size, kind, c->lr,
                                  c->momentum, c->weight_decay, err);
        s->trainer.class_weights = s->class_weights;
        if ((st = hs_dist_agree(s->ctx, st, err))) goto done;
        for (int epoch = 1; epoch <= c->probe_epochs; epoch++) {
            double start = now_seconds();
            hs_epoch_metrics m = {epoch, 0, 0, 0, 0, 0};
            if ((st = train_epoch(s, epoch, &m.train_loss, &m.train_acc, err))) goto done;
            if ((st = validate_epoch(s, epoch, &m.val_loss, &m.val_acc, err))) goto done;
            m.seconds = now_seconds() - start;
            result->probe = m;
            result->probe_epochs_run = epoch;
            note(s->cb, "probe epoch %d/%d on cached features: train acc %.2f %%, val loss "
                 "%.4f, val acc %.2f %%", epoch, c->probe_epochs, m.train_acc, m.val_loss,
                 m.val_acc);
        }
        hs_head_trainer_free(&s->trainer);
        memset(&s->trainer, 0, sizeof s->trainer);
    }
    hs_finetune_job job = {0};
    job.ctx = s->ctx;
    job.config = c;
    job.cb = s->cb;
    job.dir = s->dir;
    job.train = &s->train;
    job.val = &s->val;
    job.net = s->net;
    job.img_size = s->img_size;
    job.preprocess = &s->pp;
    job.boundary = boundary;
    job.identity = identity;
    job.resume = resume;
    job.history = s->history;
    job.epochs_done = &s->epochs_done;
    job.confusion = s->confusion;
    job.class_weights = s->class_weights;
    job.write_outputs = write_outputs_cb;
    job.outputs_ctx = s;
    result->unfreeze_boundary = boundary;
    snprintf(result->finetune_first_layer, sizeof result->finetune_first_layer, "%s",
             s->net->layers[boundary].name);
    double e0 = now_seconds();
    st = hs_finetune_run(&job, err);
    result->train_seconds = now_seconds() - e0;
    result->finetune_images_per_second = job.images_per_second;
    s->finetune_train_images = job.train_images;
    s->finetune_val_images = job.val_images;
    if (!st) {
        if (hs_dist_is_root(s->ctx)) {
            if (s->epochs_done > 0) st = write_confusion(s, err);
            char path[4200];
            run_path(path, sizeof path, s->dir, "model.safetensors");
            if (!st) st = hs_save_network(path, s->net, c->backbone, err);
        }
        st = hs_dist_agree(s->ctx, st, err);
    }
done:
    free(identity);
    return st;
}

/* --optimizer lbfgs: the linear probe, fitted once on all training features; reported as
 * one epoch. */
static hs_status run_probe(train_state *s, hs_error *err) {
    hs_layer *fc = &s->net->layers[s->begin];
    if (fc->kind != HS_LAYER_LINEAR || s->begin + 1 != s->net->count)
        return hs_fail(err, HS_ERR_INTERNAL, "the probe needs a single linear head");
    double start = now_seconds();
    hs_probe_result probe;
    const hs_feature_set *f = &s->train_features;
    /* The solver is full-batch: it needs every row as float32 at once. */
    float *rows = NULL;
    hs_status st = HS_OK;
    if (!f->values) {
        if (!(rows = malloc((size_t)f->count * f->dim * sizeof(float))))
            st = hs_fail(err, HS_ERR_NOMEM, "out of memory for %d x %d features", f->count,
                         f->dim);
        else
            hs_feature_range(f, 0, f->count, rows);
    }
    /* Over several ranks each evaluates the objective on its share of the rows. */
    if (!(st = hs_dist_agree(s->ctx, st, err)))
        st = hs_probe_fit_dist(s->ctx, rows ? rows : f->values, f->labels, f->count, f->dim,
                               s->net->num_classes, s->config->seed, s->class_weights,
                               fc->weight, fc->bias,
                               &probe, err);
    free(rows);
    if ((st = hs_dist_agree(s->ctx, st, err))) return st;
    note(s->cb, "L-BFGS probe: L2 strength %g chosen on held-out training data (%.2f %%), %d "
         "iterations", probe.lambda, probe.holdout_accuracy, probe.iterations);
    hs_epoch_metrics m = {1, 0, 0, 0, 0, 0};
    hs_batch_result r;
    if ((st = evaluate_features(s, f, &r, NULL, err))) return st;
    m.train_loss = r.loss_sum / f->count;
    m.train_acc = 100.0 * r.correct / f->count;
    if ((st = validate_epoch(s, 1, &m.val_loss, &m.val_acc, err))) return st;
    m.seconds = now_seconds() - start;
    s->history[s->epochs_done++] = m;
    if (hs_dist_is_root(s->ctx)) st = write_epoch_outputs(s, err);
    if ((st = hs_dist_agree(s->ctx, st, err))) return st;
    if (s->cb && s->cb->epoch_done) s->cb->epoch_done(s->cb->ctx, &m, 1);
    if (hs_dist_is_root(s->ctx)) st = write_confusion(s, err);
    return hs_dist_agree(s->ctx, st, err);
}

static void fill_result(const train_state *s, hs_train_result *r) {
    snprintf(r->out_dir, sizeof r->out_dir, "%s", s->dir);
    r->epochs_run = s->epochs_done;
    r->classes = s->train.class_count;
    r->train_images = s->train_features.count;
    r->val_images = s->val_features.count;
    r->skipped_images = s->train_features.failed_count + s->val_features.failed_count;
    if (s->finetune_train_images) {
        r->train_images = s->finetune_train_images;
        r->val_images = s->finetune_val_images;
    }
    if (s->epochs_done > 0) {
        r->last = s->history[s->epochs_done - 1];
        r->best = s->history[0];
        for (int i = 1; i < s->epochs_done; i++)
            if (s->history[i].val_acc > r->best.val_acc) r->best = s->history[i];
    }
}

static void set_threads(int threads) {
    if (threads > 0) {
        omp_set_num_threads(threads);
        openblas_set_num_threads(threads);
    }
}

/* Over several ranks (dist.h) every rank runs every step below on the same data, each on
 * its share of the images, and rank 0 alone writes the run folder. Each local failure is
 * agreed on before the next collective step, so all ranks stop together with rank 0
 * reporting the first failing rank's message. */
hs_status hs_train(const hs_train_config *c, const hs_train_callbacks *cb,
                   hs_train_result *result, hs_error *err) {
    double t0 = now_seconds();
    memset(result, 0, sizeof *result);
    train_state s;
    memset(&s, 0, sizeof s);
    s.config = c;
    s.cb = cb;
    s.ctx = hs_context_default();
    int root = hs_dist_is_root(s.ctx), world = hs_dist_world(s.ctx);
    hs_status st = validate(c, err);
    if (!st && world > c->batch_size)
        st = hs_fail(err, HS_ERR_ARGUMENT, "--batch-size %d is below the %d ranks: a batch is "
                     "split over the ranks (pass at least %d)", c->batch_size, world, world);
    if ((st = hs_dist_agree(s.ctx, st, err))) return st;
    set_threads(c->threads);
    hs_dataset_options dopt = {c->val_fraction, c->seed, c->limit_train, c->limit_val};
    /* The data is opened before the output folder exists: bad DATA creates nothing. */
    st = hs_dataset_open(c->data, &dopt, &s.train, &s.val, err);
    if ((st = hs_dist_agree(s.ctx, st, err))) goto done;
    for (int i = 0; i < s.train.warning_count; i++) note(cb, "%s", s.train.warnings[i]);
    if (s.train.skipped_files + s.val.skipped_files)
        note(cb, "skipped %d files that are not .jpg, .jpeg or .png",
             s.train.skipped_files + s.val.skipped_files);
    /* Before the folder: a bad --class-weights FILE creates nothing. */
    if (!st) st = resolve_class_weights(&s, err);
    if ((st = hs_dist_agree(s.ctx, st, err))) goto done;
    /* Rank 0 picks (or makes) the folder; every rank learns its name and whether a
     * checkpoint is there to resume. */
    if (root) st = prepare_out_dir(c, s.dir, sizeof s.dir, &s.fresh, err);
    if (!(st = hs_dist_agree(s.ctx, st, err)) &&
        !(st = hs_dist_broadcast(s.ctx, s.dir, sizeof s.dir, 0, err)))
        st = hs_dist_broadcast(s.ctx, &s.fresh, sizeof s.fresh, 0, err);
    if (st) goto done;
    note(cb, "writing the run to %s", s.dir);
    if (world > 1)
        note(cb, "data-parallel over %d ranks: each takes a share of the images and of every "
             "batch of %d", world, c->batch_size);
    st = open_network(&s, err);
    if (!st) {
        s.history = calloc(HS_MAX_EPOCHS, sizeof *s.history);
        s.confusion = calloc((size_t)s.train.class_count * s.train.class_count, sizeof(int));
        if (!s.history || !s.confusion) st = hs_fail(err, HS_ERR_NOMEM, "out of memory");
    }
    if (!st && strcmp(c->strategy, "auto") == 0) {
        /* From here on the run is the plan's: s.config and c are its options. */
        if (!(st = plan_auto(&s, t0, result, err))) c = s.config;
    }
    if (!st && root)
        st = hs_run_record_write_start(s.dir, c, &s.train, &s.val, s.net, &s.pp,
                                       s.weights_path, s.weights_sha, s.class_weights, err);
    if ((st = hs_dist_agree(s.ctx, st, err))) goto done;

    if (strcmp(c->strategy, "finetune") == 0) {
        st = run_finetune(&s, result, err);
        goto done;
    }
    if ((st = extract_features(&s, result, err))) goto done;

    double e0 = now_seconds();
    if (strcmp(c->optimizer, "lbfgs") == 0) {
        st = run_probe(&s, err);
    } else {
        hs_optimizer_kind kind = strcmp(c->optimizer, "adamw") == 0 ? HS_OPTIMIZER_ADAMW
                                                                    : HS_OPTIMIZER_SGD;
        st = hs_head_trainer_init(&s.trainer, s.net, s.begin, c->batch_size, kind, c->lr,
                                  c->momentum, c->weight_decay, err);
        s.trainer.class_weights = s.class_weights;
        if (!(st = hs_dist_agree(s.ctx, st, err))) st = run_epochs(&s, err);
    }
    result->train_seconds = now_seconds() - e0;
    if (!st) {
        char path[4200];
        run_path(path, sizeof path, s.dir, "model.safetensors");
        if (root) st = hs_save_head(path, s.net, s.begin, c->backbone, err);
        st = hs_dist_agree(s.ctx, st, err);
    }
done:
    fill_result(&s, result);
    result->total_seconds = now_seconds() - t0;
    if (s.dir[0] && s.net && root) {
        hs_error ignored = {0};
        hs_run_record_write_end(s.dir, result, &s.train_features, &s.val_features, st,
                                st ? err->message : NULL, &ignored);
        if (s.has_plan) hs_run_record_write_auto(s.dir, &s.auto_in, &s.auto_plan, result,
                                                 &ignored);
    }
    hs_head_trainer_free(&s.trainer);
    hs_feature_set_free(&s.train_features);
    hs_feature_set_free(&s.val_features);
    hs_net_free(s.net);
    hs_dataset_free(&s.train);
    hs_dataset_free(&s.val);
    free(s.history);
    free(s.confusion);
    free(s.class_weights);
    return st;
}
