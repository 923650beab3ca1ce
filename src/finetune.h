/* --strategy finetune, stage 2: training layers [boundary, count) of the whole network on
 * augmented images (train.c runs stage 1, the head probe on cached features, before it).
 *
 * images (image store) -> loader threads: random resized crop, flip, mixup, smoothing
 *   -> frozen prefix [0, boundary) through the inference plan (eval mode)
 *   -> tape over [boundary, count): training forward, soft cross-entropy, backward
 *   -> optimizer (per-depth lr scales, no weight decay on norms and biases), lr per step
 *   -> validation through the inference plan over the whole net, checkpoint, outputs.
 *
 * Exact resume: the loader's batches depend on (seed, epoch, sample) alone, the dropout and
 * drop-connect masks on (seed, epoch), the learning rate on the step count; the checkpoint
 * holds the whole network (parameters and BatchNorm buffers), the optimizer's state and the
 * metrics, so a resumed run repeats what a run never stopped computes. */
#ifndef HS_FINETUNE_H
#define HS_FINETUNE_H

#include "dataset.h"
#include "context.h"
#include "headstart.h"
#include "net.h"

/* The blocks of a network's backbone (layers [0, head_begin)), in order, as its builder
 * declared them (hs_net_begin_block): for EfficientNet-Lite the stem, each "_blocks.N", the
 * head convolution; for VGG each convolution and each classifier layer below the head.
 * Blocks without parameters are not counted. starts[k] is block k's first parametrised
 * layer. Returns the count (at most max). */
int hs_backbone_blocks(const hs_net *net, int *starts, int max);

/* The first trained layer for --unfreeze: "all" -> 0, "N" -> the start of the top N blocks
 * (N of at least the block count: 0), "auto" -> the start of the first block that computes
 * at 1/16 of the input's resolution or coarser (Lite0: _blocks.5, ResNet: layer3.0, VGG16:
 * features.24; 0 for a backbone that never gets that coarse). Measured (README): on
 * CIFAR-10 it trains about as well as "all" at 1.5-2.7x the images/s, the high-resolution blocks
 * being most of the backward's cost and the least specific to ImageNet. Refuses anything
 * else, naming the flag. */
hs_status hs_unfreeze_boundary(const hs_net *net, const char *unfreeze, int *boundary,
                               hs_error *err);

/* The depth (0 .. block count) of layer `layer` for per-depth lr decay: its block's index,
 * or the block count for the head. */
int hs_layer_depth(const hs_net *net, int layer);

/* The most bytes each side's decoded images may take in memory (image_store.h); beyond it
 * they are decoded on demand. */
#define HS_FINETUNE_STORE_BUDGET ((size_t)4 << 30)

/* Where training steps' time goes (wall seconds): waiting for the loader's next batch, the
 * forward (frozen prefix, training forward, loss), the backward, the update (gradient sums,
 * optimizer step, zeroing); seconds is the whole, the rest of it bookkeeping. */
typedef struct hs_finetune_parts {
    double seconds, wait, forward, backward, update;
    double cpu_seconds; /* the process's CPU time over the same span (all its threads): what
                         * a loaded machine leaves comparable */
    long steps, images;
} hs_finetune_parts;

/* What stage 2 needs from the job (train.c owns all of it).
 *
 * Over several ranks (ctx, dist.h) each rank takes its slice of every global batch of
 * --batch-size (the same shuffled order on every rank), the gradients are summed over the
 * ranks (scaled to the mean over the global batch) before every step, and validation is
 * sharded and its counts summed. BatchNorm in training mode (--bn train) normalises with
 * each rank's own batch statistics; the running statistics are averaged over the ranks at
 * the end of every epoch. Dropout and drop-connect masks, and mixup's pairs, are drawn per
 * rank: a run over N ranks equals one process up to the float sums only where neither is in
 * play (e.g. --unfreeze 0 without mixup). Rank 0 alone writes the folder. */
typedef struct hs_finetune_job {
    const hs_context *ctx;       /* the ranks; NULL: one process */
    const hs_train_config *config;
    const hs_train_callbacks *cb;
    const char *dir;             /* the run folder */
    const hs_dataset *train, *val;
    hs_net *net;                 /* its head trained by stage 1 (or restored by resume) */
    int img_size;
    const hs_preprocess *preprocess; /* mean and std of the run (NULL: the backbone's) */
    int boundary;                /* first trained layer */
    const char *identity;        /* the checkpoint's identity lines */
    int resume;                  /* 1: restore the checkpoint in dir first */
    hs_epoch_metrics *history;   /* room for HS_MAX_EPOCHS */
    int *epochs_done;
    int *confusion;              /* classes x classes, the last validation's */
    const float *class_weights;  /* --class-weights (classes values), or NULL */
    /* metrics.csv and plots from the history (train.c's), called after each checkpoint */
    hs_status (*write_outputs)(void *ctx, hs_error *err);
    void *outputs_ctx;
    /* out */
    double images_per_second;    /* training images per second of the last epoch */
    hs_finetune_parts parts;     /* the last epoch's training, by part */
    int train_images, val_images;
} hs_finetune_job;

hs_status hs_finetune_run(hs_finetune_job *job, hs_error *err);
/* Stage 2's base learning rate for a fine-tune of train_images images: --finetune-lr, or when
 * not given --lr / 2 up to HS_FINETUNE_LR_STEPS optimizer steps (--epochs x batches of
 * --batch-size), scaled by sqrt(HS_FINETUNE_LR_STEPS / steps) beyond: the rate measured best
 * on the CIFAR-10 5,000-image subset (471 steps) moved the pretrained net too far on the full
 * set (7,815 steps), where lr / 5 did better at every epoch (README "Fine-tuning"). */
#define HS_FINETUNE_LR_STEPS 1250
float hs_finetune_base_lr(const hs_train_config *c, int64_t train_images);


/* --strategy auto's measurement of stage 2 (auto_measure.c): the stage as hs_finetune_run
 * sets it up on job->train (a few images; job->val, dir, outputs and resume are not used),
 * then warmup + steps training steps of --batch-size, with the loader's threads preparing the
 * next batches (images cycled, so it is never short of work) and the optimizer's updates;
 * out holds the last `steps`. The network is left as it was: parameters, BatchNorm
 * statistics and counts, freeze flags and BatchNorm modes. */
hs_status hs_finetune_time_steps(hs_finetune_job *job, int warmup, int steps,
                                 hs_finetune_parts *out, hs_error *err);

/* Saves the whole network (parameters, BatchNorm buffers and num_batches_tracked) under
 * PyTorch's keys: what torch's load_state_dict(strict=True) takes. */
hs_status hs_save_network(const char *path, const hs_net *net, const char *backbone,
                          hs_error *err);

#endif
