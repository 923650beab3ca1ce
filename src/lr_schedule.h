/* Learning-rate schedules, evaluated per optimizer step as a pure function of (step, total
 * steps, settings), so a resumed run gets the same rate from its step count alone and no
 * scheduler state is saved.
 *
 * The schedule gives a factor of the base learning rate; the optimizer's lr for step t
 * (0-based: the rate used by the (t+1)-th update) is base * hs_lr_factor(...), and each
 * parameter multiplies it by its own lr_scale (timm's convention for layer decay).
 *
 *   constant: 1, after an optional linear warmup.
 *   cosine:   a linear warmup over W steps from start_factor to 1, then a cosine decay to
 *             floor over the remaining total - W steps.
 * Warmup matches torch.optim.lr_scheduler.LinearLR(start_factor, end_factor=1,
 * total_iters=W); cosine matches SequentialLR([LinearLR(...), CosineAnnealingLR(T_max =
 * total - W, eta_min = floor * base)], milestones=[W]) stepped once per optimizer step
 * (tests/test_optim.c checks both against torch 1.13). One difference: torch's eta_min is one
 * absolute rate shared by every param group, here the floor is a fraction of each parameter's
 * own rate (identical for floor 0 or a single group). Past the total steps torch's cosine
 * climbs back up; here it stays at the floor. */
#ifndef HS_LR_SCHEDULE_H
#define HS_LR_SCHEDULE_H

#include <stdint.h>

#include "headstart.h"

typedef enum hs_lr_shape { HS_LR_CONSTANT = 0, HS_LR_COSINE } hs_lr_shape;

typedef struct hs_lr_schedule {
    hs_lr_shape shape;
    int64_t warmup_steps;  /* W >= 0; 0: no warmup */
    double start_factor;   /* the warmup's first factor, in (0, 1] (torch LinearLR's) */
    double floor;          /* cosine: the last factor, in [0, 1] */
} hs_lr_schedule;

/* The settings with no warmup and no decay: the factor is always 1. */
hs_lr_schedule hs_lr_schedule_constant(void);

/* Checks the settings for a run of total_steps optimizer steps. */
hs_status hs_lr_schedule_check(const hs_lr_schedule *s, int64_t total_steps, hs_error *err);

/* The factor of the base rate for step (0-based) of total_steps. */
double hs_lr_factor(const hs_lr_schedule *s, int64_t step, int64_t total_steps);

/* Parses "constant" or "cosine" (for command-line options). */
hs_status hs_lr_shape_parse(const char *text, hs_lr_shape *shape, hs_error *err);
const char *hs_lr_shape_name(hs_lr_shape shape);

#endif
