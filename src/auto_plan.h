/* --strategy auto --budget DURATION: from measured throughput, a budget and the data's size,
 * which strategy (the probe alone, or the probe then a fine-tune), image size and epochs to
 * run. A pure function of its input (no clock, no I/O), so it is tested with given rates.
 *
 * The cost model, per candidate image size s:
 *   features(s)   = (train + val) / feature_ips(s)      the frozen pass the probe needs (and
 *                                                       the fine-tune's probe stage)
 *   head epochs   = head_epoch_seconds each             on cached features (their outputs)
 *   ft_epoch(s)   = train / finetune_ips(s)             one fine-tune epoch's steps
 *                 + val / feature_ips(s)                its validation (inference, the rate of
 *                                                       the feature pass)
 *                 + epoch_overhead_seconds              its checkpoint, best model, plots
 *   ft_setup      = finetune_setup_seconds once         decoding both sides into memory
 * and the usable time is (budget - spent) x HS_AUTO_MARGIN, leaving room for what the model
 * leaves out (decoding the images once, checkpoints, plots).
 *
 * Memory: a fine-tune size whose estimated peak (finetune_bytes, measured) exceeds
 * HS_AUTO_MEMORY_MARGIN of the memory available is not a candidate, and the paragraph says
 * so; the probe's memory is not checked (its features are a few KB an image).
 *
 * The choice: fine-tune when some size gives at least HS_AUTO_MIN_FT_EPOCHS epochs: the
 * largest size that gives HS_AUTO_GOOD_FT_EPOCHS (or the cap, when lower; epochs capped at
 * max_finetune_epochs), else the size that gives the most epochs. Otherwise the probe, at the largest size whose
 * feature pass fits. The plan's estimate never exceeds the usable time; when not even the
 * cheapest probe fits, there is no plan (an HS_ERR_ARGUMENT that says what would fit). */
#ifndef HS_AUTO_PLAN_H
#define HS_AUTO_PLAN_H

#include "headstart.h"

#define HS_AUTO_MAX_SIZES 8
#define HS_AUTO_MARGIN 0.9
#define HS_AUTO_MIN_FT_EPOCHS 2
#define HS_AUTO_GOOD_FT_EPOCHS 5
#define HS_AUTO_MAX_FT_EPOCHS 30
#define HS_AUTO_MEMORY_MARGIN 0.9

typedef struct hs_auto_input {
    double budget_seconds;      /* the whole run's */
    double spent_seconds;       /* already gone (opening the data, measuring) */
    int train_images, val_images;
    int probe_epochs;           /* head epochs on cached features before a fine-tune */
    int max_finetune_epochs;    /* the most fine-tune epochs to plan (0: HS_AUTO_MAX_FT_EPOCHS) */
    double head_epoch_seconds;  /* one head epoch on cached features, with its outputs */
    double epoch_overhead_seconds; /* a fine-tune epoch's checkpoint, best model and plots */
    double finetune_setup_seconds; /* once per fine-tune: decoding both sides' images */
    int size_count;             /* candidate image sizes, ascending */
    int sizes[HS_AUTO_MAX_SIZES];
    double feature_ips[HS_AUTO_MAX_SIZES];  /* measured: frozen feature pass, images/s */
    double finetune_ips[HS_AUTO_MAX_SIZES]; /* measured: fine-tune training step, images/s
                                             * (0: no fine-tune at that size) */
    double memory_available_bytes;          /* what the run may still take (0: unknown, no
                                             * memory check) */
    double finetune_bytes[HS_AUTO_MAX_SIZES]; /* the fine-tune's estimated peak at each size
                                               * (measured, or extrapolated where not timed) */
    double finetune_cpu_ms[HS_AUTO_MAX_SIZES]; /* for the record: the timed steps' process CPU
                                                * ms an image (0: not timed); not planned on */
    char trained_from[64];      /* the fine-tune's first trained layer, for the paragraph
                                 * ("": not said) */
} hs_auto_input;

typedef struct hs_auto_plan {
    int finetune;               /* 0: the probe alone */
    int img_size;
    int probe_epochs;           /* head epochs on cached features */
    int epochs;                 /* fine-tune epochs (0 for the probe) */
    double feature_seconds, finetune_seconds; /* estimated per stage */
    double estimate_seconds;    /* their sum, <= usable_seconds */
    double usable_seconds;
    char why[1200];             /* one paragraph: rates, estimates, the choice */
} hs_auto_plan;

/* probe_only_epochs: the head epochs of a probe-only plan. */
hs_status hs_auto_plan_make(const hs_auto_input *in, int probe_only_epochs, hs_auto_plan *out,
                            hs_error *err);

#endif
