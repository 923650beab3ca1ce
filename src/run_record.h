/* run.json: what a run was (classes, backbone and weights identity, preprocessing, every
 * resolved option) and how it went (metrics, timings, skipped images). predict and evaluate
 * need nothing but this file, model.safetensors and the backbone weights it names. */
#ifndef HS_RUN_RECORD_H
#define HS_RUN_RECORD_H

#include "auto_plan.h"
#include "dataset.h"
#include "feature_set.h"
#include "headstart.h"
#include "net.h"

typedef struct hs_run_record {
    char backbone[64];
    char weights_path[4096];  /* as used for training; "none" for random weights */
    char weights_sha256[80];
    int img_size;
    hs_interpolation interpolation; /* of the square resize; bilinear when absent */
    float mean[3], std[3];
    char train_layers[16];    /* "head" or "classifier" */
    char strategy[16];        /* "probe" (model.safetensors: the head) or "finetune" (the
                               * whole network); "probe" when absent */
    uint64_t seed;            /* seeds the random backbone of --weights none */
    int bf16;                 /* the backbone ran in bfloat16: predict the same way */
    char **classes;           /* owned */
    int class_count;
} hs_run_record;

hs_status hs_run_record_write_start(const char *dir, const hs_train_config *config,
                                    const hs_dataset *train, const hs_dataset *val,
                                    const hs_net *net, const hs_preprocess *pp,
                                    const char *weights_path,
                                    const char *weights_sha, const float *class_weights,
                                    hs_error *err);
hs_status hs_run_record_write_end(const char *dir, const hs_train_result *result,
                                  const hs_feature_set *train, const hs_feature_set *val,
                                  hs_status status, const char *message, hs_error *err);

/* --strategy auto: run.json's "auto": the measured rates, the budget, the choice and why, and
 * each stage's estimate against what it took (called after hs_run_record_write_end). */
hs_status hs_run_record_write_auto(const char *dir, const hs_auto_input *in,
                                   const hs_auto_plan *plan, const hs_train_result *result,
                                   hs_error *err);

hs_status hs_run_record_load(const char *dir, hs_run_record *out, hs_error *err);
void hs_run_record_free(hs_run_record *record);

/* confusion.csv: a header row of predicted class names, then one row per true class. */
hs_status hs_write_confusion_csv(const char *dir, const int *matrix, int classes,
                                 const char *const *names, hs_error *err);

#endif
