/* Optimizers over a list of parameter tensors, with PyTorch's exact update rules (torch 1.13,
 * single-tensor path) so a run matches the classic code step for step:
 *   SGD:   d = g + wd * p;  buf = momentum * buf + d;  d = nesterov ? d + momentum * buf : buf;
 *          p -= lr * d                                                      (torch.optim.SGD)
 *   AdamW: p *= 1 - lr * wd;  m, v moving averages of g, g^2 (betas, default 0.9, 0.999);
 *          p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)  (torch.optim.AdamW)
 * (dampening is always 0, torch's default.)
 *
 * Parameter groups: every parameter carries its own learning-rate scale (its lr is
 * opt->lr * lr_scale; per-depth decay passes hs_layer_decay_scale) and a weight-decay switch
 * (off for norms and biases). This equals torch's param_groups with lr = base * scale and
 * weight_decay = wd or 0. The caller may change opt->lr between steps (a schedule, see
 * lr_schedule.h); the scales stay.
 *
 * The optimizer owns its state buffers, never the parameters. State per parameter: m (SGD's
 * momentum buffer; allocated for every optimizer because checkpoints store it), v (AdamW
 * only), and the step count: exactly what checkpoint.c saves and restores. */
#ifndef HS_OPTIM_H
#define HS_OPTIM_H

#include <stdint.h>

#include "headstart.h"

typedef enum hs_optimizer_kind { HS_OPTIMIZER_SGD = 0, HS_OPTIMIZER_ADAMW } hs_optimizer_kind;

typedef struct hs_opt_param {
    char *key;        /* the parameter's state-dict key (owned copy), for checkpoints */
    float *value;     /* count floats, owned by the network */
    float *grad;      /* count floats, owned by the trainer */
    int64_t count;
    float *m, *v;     /* optimizer state (SGD uses m as the momentum buffer) */
    float lr_scale;   /* this parameter's lr is opt->lr * lr_scale */
    int use_weight_decay; /* 1: weight decay applies; 0: none (norms, biases) */
} hs_opt_param;

typedef struct hs_optimizer {
    hs_optimizer_kind kind;
    float lr, momentum, weight_decay;
    int64_t steps;
    hs_opt_param *params;
    int count;
    int nesterov;            /* SGD only; set with hs_optimizer_set_nesterov */
    /* AdamW; init sets torch's defaults 0.9, 0.999, 1e-8. Doubles, as torch's Python floats:
     * (float)(1 - 0.999) is 0.001f, whereas 1.0f - 0.999f is 1.3e-5 away from it. */
    double beta1, beta2, eps;
} hs_optimizer;

hs_status hs_optimizer_init(hs_optimizer *opt, hs_optimizer_kind kind, float lr, float momentum,
                            float weight_decay, hs_error *err);
/* Registers a parameter and its gradient buffer; allocates the state (zeros). Same as
 * hs_optimizer_add_scaled with lr_scale 1 and weight decay on. */
hs_status hs_optimizer_add(hs_optimizer *opt, const char *key, float *value, float *grad,
                           int64_t count, hs_error *err);
/* As hs_optimizer_add, with this parameter's lr scale (> 0) and weight-decay switch. */
hs_status hs_optimizer_add_scaled(hs_optimizer *opt, const char *key, float *value,
                                  float *grad, int64_t count, float lr_scale,
                                  int use_weight_decay, hs_error *err);
/* timm's rule for the switch (param_groups_weight_decay): no weight decay for tensors of one
 * dimension or less (biases, norm scales and shifts) nor for keys ending in ".bias". */
int hs_param_uses_weight_decay(const char *key, int ndim);
/* Nesterov momentum for SGD; as torch, it needs momentum > 0 (and no dampening). */
hs_status hs_optimizer_set_nesterov(hs_optimizer *opt, int nesterov, hs_error *err);

void hs_optimizer_zero_grad(hs_optimizer *opt);
/* Clips the gradients of every registered parameter to a global L2 norm of max_norm,
 * as torch.nn.utils.clip_grad_norm_: scale = min(1, max_norm / (norm + 1e-6)). Returns the
 * norm before clipping. A non-finite norm leaves the gradients as they are (torch would fill
 * them with NaN or zeros), so the caller can report the divergence. */
double hs_optimizer_clip_grad_norm(hs_optimizer *opt, double max_norm);
void hs_optimizer_step(hs_optimizer *opt);
void hs_optimizer_free(hs_optimizer *opt);

const char *hs_optimizer_name(hs_optimizer_kind kind);

/* Per-depth learning-rate decay (BEiT, timm's layer_decay): a parameter at depth d of D
 * (d = D: the head, d = 0: the stem; blocks in between) gets the scale decay^(D - d). A depth
 * outside [0, D] is clamped. */
float hs_layer_decay_scale(double decay, int depth, int depth_count);

#endif
