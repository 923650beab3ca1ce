#include "lr_schedule.h"

#include <math.h>
#include <string.h>

#include "error.h"

hs_lr_schedule hs_lr_schedule_constant(void) {
    return (hs_lr_schedule){HS_LR_CONSTANT, 0, 1.0, 0.0};
}

hs_status hs_lr_schedule_check(const hs_lr_schedule *s, int64_t total_steps, hs_error *err) {
    if (s->shape != HS_LR_CONSTANT && s->shape != HS_LR_COSINE)
        return hs_fail(err, HS_ERR_ARGUMENT, "unknown learning-rate schedule %d", s->shape);
    if (total_steps < 1)
        return hs_fail(err, HS_ERR_ARGUMENT, "a schedule needs at least one step, not %lld",
                       (long long)total_steps);
    if (s->warmup_steps < 0 || s->warmup_steps > total_steps)
        return hs_fail(err, HS_ERR_ARGUMENT,
                       "the warmup (%lld steps) must be between 0 and the run's %lld steps",
                       (long long)s->warmup_steps, (long long)total_steps);
    if (!(s->start_factor > 0.0 && s->start_factor <= 1.0))
        return hs_fail(err, HS_ERR_ARGUMENT, "the warmup start factor must be in (0, 1], not %g",
                       s->start_factor);
    if (!(s->floor >= 0.0 && s->floor <= 1.0))
        return hs_fail(err, HS_ERR_ARGUMENT, "the schedule's floor must be in [0, 1], not %g",
                       s->floor);
    return HS_OK;
}

double hs_lr_factor(const hs_lr_schedule *s, int64_t step, int64_t total_steps) {
    if (step < 0) step = 0;
    int64_t warmup = s->warmup_steps;
    if (step < warmup) /* LinearLR: start + (end - start) * t / total_iters */
        return s->start_factor + (1.0 - s->start_factor) * (double)step / (double)warmup;
    if (s->shape == HS_LR_CONSTANT) return 1.0;
    int64_t span = total_steps - warmup; /* CosineAnnealingLR's T_max */
    if (span <= 0 || step >= total_steps) return s->floor;
    double t = (double)(step - warmup) / (double)span;
    return s->floor + (1.0 - s->floor) * (1.0 + cos(M_PI * t)) / 2.0;
}

hs_status hs_lr_shape_parse(const char *text, hs_lr_shape *shape, hs_error *err) {
    if (strcmp(text, "constant") == 0) *shape = HS_LR_CONSTANT;
    else if (strcmp(text, "cosine") == 0) *shape = HS_LR_COSINE;
    else
        return hs_fail(err, HS_ERR_ARGUMENT, "the schedule must be constant or cosine, not '%s'",
                       text);
    return HS_OK;
}

const char *hs_lr_shape_name(hs_lr_shape shape) {
    return shape == HS_LR_COSINE ? "cosine" : "constant";
}
