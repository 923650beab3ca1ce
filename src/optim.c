#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

const char *hs_optimizer_name(hs_optimizer_kind kind) {
    return kind == HS_OPTIMIZER_ADAMW ? "adamw" : "sgd";
}

hs_status hs_optimizer_init(hs_optimizer *opt, hs_optimizer_kind kind, float lr, float momentum,
                            float weight_decay, hs_error *err) {
    memset(opt, 0, sizeof *opt);
    if (!(lr > 0.0f)) return hs_fail(err, HS_ERR_ARGUMENT, "the learning rate must be > 0");
    opt->kind = kind;
    opt->lr = lr;
    opt->momentum = momentum;
    opt->weight_decay = weight_decay;
    return HS_OK;
}

hs_status hs_optimizer_add(hs_optimizer *opt, const char *key, float *value, float *grad,
                           int64_t count, hs_error *err) {
    hs_opt_param *grown = realloc(opt->params, (size_t)(opt->count + 1) * sizeof *grown);
    if (!grown) return hs_fail(err, HS_ERR_NOMEM, "out of memory for the optimizer");
    opt->params = grown;
    hs_opt_param *p = &opt->params[opt->count];
    memset(p, 0, sizeof *p);
    p->key = strdup(key);
    p->value = value;
    p->grad = grad;
    p->count = count;
    p->m = calloc((size_t)count, sizeof(float));
    if (opt->kind == HS_OPTIMIZER_ADAMW) p->v = calloc((size_t)count, sizeof(float));
    if (!p->key || !p->m || (opt->kind == HS_OPTIMIZER_ADAMW && !p->v)) {
        free(p->key);
        free(p->m);
        free(p->v);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory for the optimizer state of %s", key);
    }
    opt->count++;
    return HS_OK;
}

void hs_optimizer_zero_grad(hs_optimizer *opt) {
    for (int i = 0; i < opt->count; i++)
        memset(opt->params[i].grad, 0, (size_t)opt->params[i].count * sizeof(float));
}

static void sgd_update(const hs_optimizer *opt, hs_opt_param *p) {
    float lr = opt->lr, mu = opt->momentum, wd = opt->weight_decay;
    for (int64_t i = 0; i < p->count; i++) {
        float d = p->grad[i] + wd * p->value[i];
        if (mu != 0.0f) {
            p->m[i] = mu * p->m[i] + d; /* the first step gives buf = d, as PyTorch */
            d = p->m[i];
        }
        p->value[i] -= lr * d;
    }
}

static void adamw_update(const hs_optimizer *opt, hs_opt_param *p) {
    const float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
    float lr = opt->lr, wd = opt->weight_decay;
    double correction1 = 1.0 - pow(beta1, (double)opt->steps);
    double correction2 = 1.0 - pow(beta2, (double)opt->steps);
    float step_size = (float)(lr / correction1);
    float root2 = (float)sqrt(correction2);
    for (int64_t i = 0; i < p->count; i++) {
        float g = p->grad[i];
        p->value[i] *= 1.0f - lr * wd;
        p->m[i] = beta1 * p->m[i] + (1.0f - beta1) * g;
        p->v[i] = beta2 * p->v[i] + (1.0f - beta2) * g * g;
        p->value[i] -= step_size * p->m[i] / (sqrtf(p->v[i]) / root2 + eps);
    }
}

void hs_optimizer_step(hs_optimizer *opt) {
    opt->steps++;
    for (int i = 0; i < opt->count; i++) {
        if (opt->kind == HS_OPTIMIZER_ADAMW) adamw_update(opt, &opt->params[i]);
        else sgd_update(opt, &opt->params[i]);
    }
}

void hs_optimizer_free(hs_optimizer *opt) {
    for (int i = 0; i < opt->count; i++) {
        free(opt->params[i].key);
        free(opt->params[i].m);
        free(opt->params[i].v);
    }
    free(opt->params);
    memset(opt, 0, sizeof *opt);
}
