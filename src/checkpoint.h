/* A run folder's files: the head's weights (model.safetensors), the resumable checkpoint
 * (checkpoint.safetensors: head, optimizer state and the metrics so far), metrics.csv and the
 * run record (run.json). Every file is written atomically.
 *
 * Resuming is exact because nothing random is carried from one epoch to the next: each
 * epoch's shuffle and dropout masks come from (seed, epoch) alone, so the checkpoint needs
 * only the weights, the optimizer's buffers and step count, and the epochs done. */
#ifndef HS_CHECKPOINT_H
#define HS_CHECKPOINT_H

#include "head_train.h"

#define HS_RUN_FORMAT_VERSION 1
#define HS_MAX_EPOCHS 100000

/* Saves the parameters of layers [begin, count) of the network (the trained part). */
hs_status hs_save_head(const char *path, const hs_net *net, int begin, const char *backbone,
                       hs_error *err);
/* Loads them back: every parameter of layers [begin, count) must be in the file with its
 * shape, and the file must hold nothing else. */
hs_status hs_load_head(const char *path, hs_net *net, int begin, hs_error *err);

hs_status hs_checkpoint_save(const char *path, const hs_head_trainer *trainer,
                             const hs_epoch_metrics *history, int epochs_done,
                             const char *identity, hs_error *err);
/* Restores weights and optimizer state into a trainer built like the saved one; identity
 * (backbone, classes, options that shape the run) must match the saved one. history holds
 * room for HS_MAX_EPOCHS entries. */
hs_status hs_checkpoint_load(const char *path, hs_head_trainer *trainer,
                             hs_epoch_metrics *history, int *epochs_done,
                             const char *identity, hs_error *err);

/* The same for any trained range: the parameters and buffers of layers [begin, count) and
 * the state of opt (a fine-tune saves the whole network with begin 0). */
hs_status hs_checkpoint_save_net(const char *path, const hs_net *net, int begin,
                                 const hs_optimizer *opt, const hs_epoch_metrics *history,
                                 int epochs_done, const char *identity, hs_error *err);
hs_status hs_checkpoint_load_net(const char *path, hs_net *net, int begin, hs_optimizer *opt,
                                 hs_epoch_metrics *history, int *epochs_done,
                                 const char *identity, hs_error *err);

hs_status hs_write_metrics_csv(const char *path, const hs_epoch_metrics *history, int count,
                               hs_error *err);

#endif
