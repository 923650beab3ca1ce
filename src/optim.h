/* Optimizers over a list of parameter tensors, with PyTorch's exact update rules so a run
 * matches the classic code step for step:
 *   SGD:   d = g + wd * p;  buf = momentum * buf + d;  p -= lr * buf        (torch.optim.SGD)
 *   AdamW: p -= lr * wd * p;  m, v moving averages of g, g^2 (betas 0.9, 0.999);
 *          p -= lr * m_hat / (sqrt(v_hat) + 1e-8)                           (torch.optim.AdamW)
 * The optimizer owns its state buffers, never the parameters. */
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
} hs_opt_param;

typedef struct hs_optimizer {
    hs_optimizer_kind kind;
    float lr, momentum, weight_decay;
    int64_t steps;
    hs_opt_param *params;
    int count;
} hs_optimizer;

hs_status hs_optimizer_init(hs_optimizer *opt, hs_optimizer_kind kind, float lr, float momentum,
                            float weight_decay, hs_error *err);
/* Registers a parameter and its gradient buffer; allocates the state (zeros). */
hs_status hs_optimizer_add(hs_optimizer *opt, const char *key, float *value, float *grad,
                           int64_t count, hs_error *err);
void hs_optimizer_zero_grad(hs_optimizer *opt);
void hs_optimizer_step(hs_optimizer *opt);
void hs_optimizer_free(hs_optimizer *opt);

const char *hs_optimizer_name(hs_optimizer_kind kind);

#endif
