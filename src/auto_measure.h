/* What --strategy auto measures before it plans (auto_plan.h): on the first images of the
 * training set, the frozen feature pass (decode, resize, backbone) and the fine-tune's
 * training step (forward, loss gradient, backward from the unfreeze boundary) at each
 * candidate image size, in images per second. The network is left as it was (its
 * parameters, BatchNorm statistics, freeze flags and BatchNorm modes). */
#ifndef HS_AUTO_MEASURE_H
#define HS_AUTO_MEASURE_H

#include "auto_plan.h"
#include "dataset.h"
#include "net.h"

typedef struct hs_auto_measure_options {
    int boundary;        /* the fine-tune's first trained layer (--unfreeze) */
    int feature_batch;   /* images per timed feature batch (at most the training set) */
    int finetune_batch;  /* images per timed training step */
    /* progress of the measurement, may be NULL */
    void (*progress)(void *ctx, const char *phase, long done, long total, double seconds);
    void *progress_ctx;
    volatile int *stop;  /* non-zero: stop with HS_ERR_INTERRUPTED */
} hs_auto_measure_options;

/* Fills in->feature_ips and in->finetune_ips for in->sizes[0 .. in->size_count). */
hs_status hs_auto_measure(hs_net *net, const hs_dataset *train,
                          const hs_auto_measure_options *o, hs_auto_input *in, hs_error *err);

#endif
