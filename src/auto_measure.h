/* What --strategy auto measures before it plans (auto_plan.h): on the first images of the
 * training set, the frozen feature pass (decode, resize, backbone) at each candidate image
 * size, and the fine-tune's training steps as the run will take them (finetune.h's
 * hs_finetune_time_steps: --batch-size, the BatchNorm policy, the loader's threads cropping
 * and resizing the next batches on the same cores, loss, backward, optimizer update), in
 * images per second; and the fine-tune's memory at each size: the growth of the resident set
 * while its steps run, plus what the run holds that the measurement does not (the decoded
 * images of both sides, the probe's features). A size whose memory, extrapolated from the
 * size below it, would not fit what is available is not timed at all.
 * The network is left as it was (its parameters, BatchNorm statistics, freeze flags and
 * BatchNorm modes). */
#ifndef HS_AUTO_MEASURE_H
#define HS_AUTO_MEASURE_H

#include "auto_plan.h"
#include "context.h"
#include "dataset.h"
#include "net.h"

typedef struct hs_auto_measure_options {
    int boundary;        /* the fine-tune's first trained layer (--unfreeze) */
    int feature_batch;   /* images per timed feature batch (at most the training set) */
    /* The run's options (batch size, BatchNorm policy, optimizer, augmentation, threads,
     * feature precision) and what the fine-tune stage gets besides (train.c's). */
    const hs_train_config *config;
    const hs_context *ctx;
    const hs_preprocess *preprocess;
    const float *class_weights;
    int steps;           /* timed training steps per size, after one warm-up step */
    int val_images;      /* the run's validation images (their decoded size counts) */
    /* progress of the measurement, may be NULL */
    void (*progress)(void *ctx, const char *phase, long done, long total, double seconds);
    void *progress_ctx;
    volatile int *stop;  /* non-zero: stop with HS_ERR_INTERRUPTED */
} hs_auto_measure_options;

/* Fills in->feature_ips, in->finetune_ips, in->finetune_bytes and in->memory_available_bytes
 * for in->sizes[0 .. in->size_count) (finetune_ips 0 where a size was not timed). */
hs_status hs_auto_measure(hs_net *net, const hs_dataset *train,
                          const hs_auto_measure_options *o, hs_auto_input *in, hs_error *err);

/* Bytes this process may still take: /proc/meminfo's MemAvailable, or less when the cgroup
 * (v2 memory.max less memory.current, v1 memory.limit_in_bytes less usage) limits it;
 * 0 when none of them can be read. */
double hs_memory_available(void);

#endif
