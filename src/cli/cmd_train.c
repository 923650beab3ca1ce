/* headstart train DATA [flags]: the transfer-learning job. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "context.h"
#include "dist.h"
#include "ops.h"

static void print_help(void) {
    printf(
        "usage: headstart train DATA [options]\n"
        "\n"
        "Trains a new classifier head on a frozen, ImageNet-pretrained backbone (or fine-tunes\n"
        "it, --strategy finetune). DATA is a\n"
        "folder of class folders (root/<class>/<image>), a folder with train/ and val/ (or\n"
        "test/) inside (each a folder or a .tar/.tar.gz), a .tar or .tar.gz of either, or the\n"
        "CIFAR-10 binary folder (cifar-10-batches-bin). Classes are the sorted folder names.\n"
        "\n"
        "options (defaults in brackets):\n"
        "  --backbone NAME        [efficientnet_lite0] see 'headstart backbones'\n"
        "  --weights FILE|none    pretrained weights [found on this machine]; none: random\n"
        "  --epochs N             [10]; with --strategy auto: the most fine-tune epochs it\n"
        "                         may plan, and the epochs of a probe-only plan\n"
        "  --batch-size N         [32]\n"
        "  --lr X                 learning rate [0.001]\n"
        "  --momentum X           SGD momentum [0.9]\n"
        "  --weight-decay X       [0]\n"
        "  --optimizer adamw|sgd|lbfgs  [adamw]; lbfgs: the full-batch linear probe\n"
        "  --img-size N           images are resized to N x N [the backbone's input size]\n"
        "  --train-layers head|classifier  the last layer only [head], or the whole classifier\n"
        "                         block (VGG16: three linear layers; Lite: dropout and _fc)\n"
        "  --strategy probe|finetune|auto  probe: frozen backbone [probe]; finetune: the probe\n"
        "                         on cached features, then --epochs epochs training the\n"
        "                         backbone too on augmented images (random resized crop and\n"
        "                         flip); auto: measures the speeds, then picks the strategy,\n"
        "                         image size and epochs that fit --budget, and says why\n"
        "  --budget DURATION      the time --strategy auto may take (30m, 2h, 1d)\n"
        "  --class-weights none|balanced|FILE  per-class loss weights for imbalanced data\n"
        "                         [none]; balanced: n / (classes x count); FILE: one\n"
        "                         'class,weight' a line, every class named\n"
        "fine-tuning (--strategy finetune):\n"
        "  --probe-epochs N       stage 1 epochs on cached features, with --lr [5]\n"
        "  --unfreeze auto|all|N  train the blocks at 1/16 resolution and coarser [auto],\n"
        "                         every layer, or the top N backbone blocks\n"
        "  --bn frozen|train      BatchNorm: running statistics kept [frozen], or batch ones\n"
        "  --finetune-lr X        stage 2 base learning rate [--lr / 2, times\n"
        "                         sqrt(1250 / steps) beyond 1250 steps]\n"
        "  --layer-decay X        lr x X per block below the head, in (0, 1] [1: none]\n"
        "  --warmup-epochs N      linear warmup [1]\n"
        "  --schedule cosine|constant  [cosine], per step\n"
        "  --mixup A              mixup with Beta(A, A); 0: off [0]\n"
        "  --label-smoothing E    [0.1]\n"
        "  --crop-scale MIN       smallest area fraction of the random crop [0.25]\n"
        "  --val-fraction X       validation share of class folders without a split [0.2]\n"
        "  --limit-train N        train on a stratified, seeded subset of N images [all]\n"
        "  --limit-val N          validate on a stratified subset of N images [all]\n"
        "  --seed N               [0]\n"
        "  --threads N            [all cores]\n"
        "  --out DIR              [a new numbered folder under runs/]\n"
        "  --resume               continue the run in --out from its last checkpoint (from\n"
        "                         epoch 1 if it stopped before one); same options and DATA\n"
        "  --overwrite            replace the run in --out\n"
        "  --strict               stop on an unreadable image instead of skipping it\n"
        "  --cache-dir DIR        feature cache [$XDG_CACHE_HOME/headstart or ~/.cache/headstart]\n"
        "  --no-cache             compute the features in memory; read and write no cache\n"
        "  --feature-precision f16|f32  how cached features are stored [f16]\n"
        "  --precision auto|f32|bf16  the backbone's arithmetic and the fine-tune's\n"
        "                         convolutions [auto]: auto is bf16 where the CPU has native\n"
        "                         bfloat16 (AVX512_BF16 or AMX: about 2x faster, same\n"
        "                         accuracy on the CIFAR-10 demo and subset), else f32\n"
        "  --bf16                 the same as --precision bf16\n"
        "\n"
        "The frozen backbone runs once per image; its output (the features) is cached, so a\n"
        "rerun with another head, learning rate or epoch count skips that pass. The cache is\n"
        "recomputed, with the reason printed, when anything that changes the features changes.\n"
        "\n"
        "Writes metrics.csv, accuracy.png, loss.png, model.safetensors, checkpoint.safetensors,\n"
        "confusion.csv, confusion.png and run.json into the output folder. Ctrl-C stops after\n"
        "the current step; the last finished epoch stays resumable with --resume, and so does\n"
        "a run killed at any point: --resume rewrites every output from the checkpoint.\n"
        "\n"
        "Data-parallel over several processes (a build with MPI): mpirun -np N headstart train\n"
        "... (or srun). Each rank takes a share of the images and of every batch (--batch-size\n"
        "is the global batch); rank 0 writes the run folder and prints. Without --threads each\n"
        "rank uses its node's cores divided by the ranks there.\n");
}

static const char *const flags[] = {
    "--backbone", "--weights", "--epochs", "--batch-size", "--lr", "--momentum",
    "--weight-decay", "--optimizer", "--img-size", "--train-layers", "--strategy",
    "--val-fraction", "--limit-train", "--limit-val", "--seed", "--threads", "--out",
    "--resume", "--overwrite", "--strict", "--cache-dir", "--no-cache",
    "--feature-precision", "--precision", "--bf16", "--probe-epochs", "--unfreeze", "--bn", "--finetune-lr",
    "--layer-decay", "--warmup-epochs", "--schedule", "--mixup", "--label-smoothing",
    "--crop-scale", "--class-weights", "--budget", "--help"};

static int unknown_flag(const char *flag) {
    const char *best = NULL;
    size_t best_len = 0;
    /* The longest known flag sharing a prefix of at least 4 characters. */
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        size_t n = 0;
        while (flag[n] && flag[n] == flags[i][n]) n++;
        if (n >= 4 && n > best_len) {
            best = flags[i];
            best_len = n;
        }
    }
    if (best) return cli_usage_error("train", "unknown option '%s'; did you mean '%s'?", flag, best);
    return cli_usage_error("train", "unknown option '%s'", flag);
}

static int parse(int argc, char **argv, hs_train_config *c) {
    c->bf16 = -1; /* --precision auto unless told */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_help();
            exit(0);
        }
        if (a[0] != '-') {
            if (c->data) return cli_usage_error("train", "two DATA given: %s and %s", c->data, a);
            c->data = a;
            continue;
        }
        if (strcmp(a, "--resume") == 0) { c->resume = 1; continue; }
        if (strcmp(a, "--overwrite") == 0) { c->overwrite = 1; continue; }
        if (strcmp(a, "--strict") == 0) { c->strict = 1; continue; }
        if (strcmp(a, "--no-cache") == 0) { c->no_cache = 1; continue; }
        if (strcmp(a, "--bf16") == 0) { c->bf16 = 1; continue; }
        int known = 0;
        for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) known |= !strcmp(a, flags[k]);
        if (!known) return unknown_flag(a);
        if (i + 1 >= argc) return cli_usage_error("train", "%s needs a value", a);
        const char *v = argv[++i];
        int code = 0, seed = 0;
        if (!strcmp(a, "--backbone")) c->backbone = v;
        else if (!strcmp(a, "--weights")) c->weights = v;
        else if (!strcmp(a, "--optimizer")) c->optimizer = v;
        else if (!strcmp(a, "--train-layers")) c->train_layers = v;
        else if (!strcmp(a, "--strategy")) c->strategy = v;
        else if (!strcmp(a, "--out")) c->out_dir = v;
        else if (!strcmp(a, "--unfreeze")) c->unfreeze = v;
        else if (!strcmp(a, "--bn")) c->bn = v;
        else if (!strcmp(a, "--schedule")) c->schedule = v;
        else if (!strcmp(a, "--class-weights")) c->class_weights = v;
        else if (!strcmp(a, "--budget")) {
            long long seconds = 0;
            if (cli_parse_duration(v, &seconds) || seconds < 1)
                code = cli_usage_error("train", "--budget needs a duration such as 30m or 2h, "
                                                "not '%s'", v);
            c->budget_seconds = (double)seconds;
        }
        else if (!strcmp(a, "--probe-epochs"))
            code = cli_parse_int("train", a, v, &c->probe_epochs);
        else if (!strcmp(a, "--warmup-epochs"))
            code = cli_parse_int("train", a, v, &c->warmup_epochs);
        else if (!strcmp(a, "--finetune-lr"))
            code = cli_parse_float("train", a, v, &c->finetune_lr);
        else if (!strcmp(a, "--layer-decay"))
            code = cli_parse_float("train", a, v, &c->layer_decay);
        else if (!strcmp(a, "--mixup")) code = cli_parse_float("train", a, v, &c->mixup);
        else if (!strcmp(a, "--label-smoothing"))
            code = cli_parse_float("train", a, v, &c->label_smoothing);
        else if (!strcmp(a, "--crop-scale"))
            code = cli_parse_float("train", a, v, &c->crop_scale);
        else if (!strcmp(a, "--epochs")) code = cli_parse_int("train", a, v, &c->epochs);
        else if (!strcmp(a, "--batch-size")) code = cli_parse_int("train", a, v, &c->batch_size);
        else if (!strcmp(a, "--cache-dir")) c->cache_dir = v;
        else if (!strcmp(a, "--feature-precision")) c->feature_precision = v;
        else if (!strcmp(a, "--precision")) {
            if (!strcmp(v, "auto")) c->bf16 = -1;
            else if (!strcmp(v, "bf16")) c->bf16 = 1;
            else if (!strcmp(v, "f32")) c->bf16 = 0;
            else code = cli_usage_error("train", "--precision must be auto, f32 or bf16, not '%s'", v);
        }
        else if (!strcmp(a, "--img-size")) code = cli_parse_int("train", a, v, &c->img_size);
        else if (!strcmp(a, "--limit-train")) code = cli_parse_int("train", a, v, &c->limit_train);
        else if (!strcmp(a, "--limit-val")) code = cli_parse_int("train", a, v, &c->limit_val);
        else if (!strcmp(a, "--threads")) code = cli_parse_int("train", a, v, &c->threads);
        else if (!strcmp(a, "--lr")) code = cli_parse_float("train", a, v, &c->lr);
        else if (!strcmp(a, "--momentum")) code = cli_parse_float("train", a, v, &c->momentum);
        else if (!strcmp(a, "--weight-decay"))
            code = cli_parse_float("train", a, v, &c->weight_decay);
        else if (!strcmp(a, "--val-fraction")) {
            float f = 0;
            code = cli_parse_float("train", a, v, &f);
            c->val_fraction = f;
        } else if (!strcmp(a, "--seed")) {
            code = cli_parse_int("train", a, v, &seed);
            if (!code && seed < 0) code = cli_usage_error("train", "--seed must be >= 0");
            c->seed = (uint64_t)seed;
        }
        if (code) return code;
    }
    if (!c->data) return cli_usage_error("train", "no DATA given");
    /* auto: bf16 where oneDNN runs it natively (measured: README "Speed") */
    if (c->bf16 < 0) c->bf16 = hs_dnnl_bf16_support() == 2;
    return 0;
}

static void on_epoch(void *ctx, const hs_epoch_metrics *m, int epochs) {
    (void)ctx;
    fprintf(stderr,
            "epoch %3d/%-3d  train loss %.4f  acc %6.2f %%   val loss %.4f  acc %6.2f %%   "
            "%.1f s\n",
            m->epoch, epochs, m->train_loss, m->train_acc, m->val_loss, m->val_acc, m->seconds);
}

/* Under a launcher without --threads or OMP_NUM_THREADS: the node's cores shared by the
 * ranks on it (Open MPI and Slurm say how many), not every core for every rank. */
static int threads_per_rank(const hs_context *ctx) {
    if (hs_dist_world(ctx) <= 1 || getenv("OMP_NUM_THREADS")) return 0;
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (!local) local = getenv("SLURM_NTASKS_PER_NODE");
    if (!local) local = getenv("MPI_LOCALNRANKS");
    int ranks = local ? atoi(local) : 0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (ranks < 1 || cores < 1) return 0;
    return cores / ranks > 1 ? (int)(cores / ranks) : 1;
}

/* Every rank parses the same command line and finds the same usage errors: the ranks but
 * rank 0 do it with stdout and stderr sent to /dev/null, so that the user reads them once. */
static int parse_options(const hs_context *ctx, int argc, char **argv, hs_train_config *c) {
    int quiet = !hs_dist_is_root(ctx), saved_out = -1, saved_err = -1;
    if (quiet) {
        int null = open("/dev/null", O_WRONLY);
        fflush(stdout);
        fflush(stderr);
        if (null >= 0) {
            saved_out = dup(1);
            saved_err = dup(2);
            dup2(null, 1);
            dup2(null, 2);
            close(null);
        }
    }
    int code = parse(argc, argv, c);
    if (!code && !hs_backbone_find(c->backbone)) cli_backbone(c->backbone, &code);
    if (quiet) {
        fflush(stdout);
        fflush(stderr);
        if (saved_out >= 0) {
            dup2(saved_out, 1);
            close(saved_out);
        }
        if (saved_err >= 0) {
            dup2(saved_err, 2);
            close(saved_err);
        }
    }
    return code;
}

static int train_on_rank(hs_context *ctx, int argc, char **argv) {
    hs_train_config config;
    hs_train_config_defaults(&config);
    int root = hs_dist_is_root(ctx);
    int code = parse_options(ctx, argc, argv, &config);
    if (code) return code;
    if (!config.threads) config.threads = threads_per_rank(ctx);
    cli_progress_state progress;
    cli_progress_init(&progress);
    /* Rank 0 speaks for the job; the other ranks run silently. */
    hs_train_callbacks cb = {&progress, root ? cli_progress : NULL, root ? on_epoch : NULL,
                             root ? cli_note : NULL, cli_install_stop_handler(), NULL};
    hs_train_result result;
    hs_error err = {0};
    hs_status st = hs_train(&config, &cb, &result, &err);
    /* Every rank returns the same status; only rank 0 prints about it. */
    if (!root) return st ? (st == HS_ERR_INTERRUPTED ? HS_EXIT_INTERRUPTED : (int)st) : 0;
    if (st == HS_ERR_INTERRUPTED) {
        fprintf(stderr, "headstart: %s; %d epoch%s saved in %s\n", cli_term(err.message),
                result.epochs_run, result.epochs_run == 1 ? "" : "s", cli_term(result.out_dir));
        if (result.out_dir[0])
            fprintf(stderr, "to continue: headstart train %s --out %s --resume (with the same "
                    "options)\n", cli_term(config.data), cli_term(result.out_dir));
        return HS_EXIT_INTERRUPTED;
    }
    if (st) {
        int exit_code = cli_report(&err);
        if (st == HS_ERR_DIVERGED && result.epochs_run > 0)
            fprintf(stderr, "headstart: the checkpoint of epoch %d in %s still loads\n",
                    result.epochs_run, cli_term(result.out_dir));
        return exit_code;
    }
    printf("trained %s on %d images (%d classes), validated on %d\n", config.backbone,
           result.train_images, result.classes, result.val_images);
    printf("validation accuracy %.2f %% (best %.2f %% at epoch %d), loss %.4f\n",
           result.last.val_acc, result.best.val_acc, result.best.epoch, result.last.val_loss);
    if (result.cached_sides == 2)
        printf("features read from the cache in %.1f s, training %.1f s, total %.1f s\n",
               result.feature_seconds, result.train_seconds, result.total_seconds);
    else
        printf("features %.1f s (%.1f images/s), training %.1f s, total %.1f s\n",
               result.feature_seconds, result.feature_images_per_second, result.train_seconds,
               result.total_seconds);
    if (result.probe_epochs_run > 0)
        printf("stage 1 probe (%d epochs on cached features): validation accuracy %.2f %%\n",
               result.probe_epochs_run, result.probe.val_acc);
    if (result.finetune_first_layer[0])
        printf("fine-tuned from layer %d (%s): %.1f images/s\n", result.unfreeze_boundary,
               cli_term(result.finetune_first_layer), result.finetune_images_per_second);
    if (result.auto_choice[0])
        printf("auto: chose %s at %d px (%d probe + %d fine-tune epochs), estimated %.0f s "
               "after planning, budget %.0f s; the whole run took %.1f s\n",
               result.auto_choice, result.auto_img_size, result.auto_probe_epochs,
               result.auto_epochs, result.auto_estimate_seconds, config.budget_seconds,
               result.total_seconds);
    if (result.skipped_images)
        printf("%d unreadable images were skipped (listed in run.json)\n", result.skipped_images);
    printf("run written to %s\n", cli_term(result.out_dir));
    return 0;
}

int cmd_train(int argc, char **argv) {
    hs_context *ctx = hs_context_default();
    hs_error err = {0};
    /* One process alone never touches MPI; under mpirun or srun every rank joins here. */
    if (hs_dist_init(ctx, &argc, &argv, &err)) return cli_report(&err);
    int code = train_on_rank(ctx, argc, argv);
    fflush(stdout);
    fflush(stderr);
    /* No rank leaves before rank 0 has printed: a launcher ends the job as soon as one rank
     * exits non-zero, which could cut rank 0's message short. */
    hs_dist_barrier(ctx, &err);
    hs_dist_finalize(ctx);
    return code;
}
