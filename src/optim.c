#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Below this many floats a tensor is updated by the calling thread alone: a parallel region
 * costs a few microseconds, about what 32 K AdamW updates take on one core. */
#define HS_OPTIM_PARALLEL_MIN 32768

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
    opt->beta1 = 0.9;
    opt->beta2 = 0.999;
    opt->eps = 1e-8;
    return HS_OK;
}

hs_status hs_optimizer_set_nesterov(hs_optimizer *opt, int nesterov, hs_error *err) {
    if (nesterov && !(opt->kind == HS_OPTIMIZER_SGD && opt->momentum > 0.0f))
        return hs_fail(err, HS_ERR_ARGUMENT, "Nesterov momentum needs --optimizer sgd and a "
                                             "momentum > 0");
    opt->nesterov = nesterov != 0;
    return HS_OK;
}

hs_status hs_optimizer_add_scaled(hs_optimizer *opt, const char *key, float *value,
                                  float *grad, int64_t count, float lr_scale,
                                  int use_weight_decay, hs_error *err) {
    if (count < 1)
        return hs_fail(err, HS_ERR_INTERNAL, "optimizer: %s has %lld values", key,
                       (long long)count);
    if (!(lr_scale > 0.0f) || !isfinite(lr_scale)) /* a layer decay of 0 gives 0 */
        return hs_fail(err, HS_ERR_ARGUMENT,
                       "the learning-rate scale of %s must be > 0 and finite, not %g", key,
                       lr_scale);
    hs_opt_param *grown = realloc(opt->params, (size_t)(opt->count + 1) * sizeof *grown);
    if (!grown) return hs_fail(err, HS_ERR_NOMEM, "out of memory for the optimizer");
    opt->params = grown;
    hs_opt_param *p = &opt->params[opt->count];
    memset(p, 0, sizeof *p);
    p->key = strdup(key);
    p->value = value;
    p->grad = grad;
    p->count = count;
    p->lr_scale = lr_scale;
    p->use_weight_decay = use_weight_decay != 0;
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

hs_status hs_optimizer_add(hs_optimizer *opt, const char *key, float *value, float *grad,
                           int64_t count, hs_error *err) {
    return hs_optimizer_add_scaled(opt, key, value, grad, count, 1.0f, 1, err);
}

int hs_param_uses_weight_decay(const char *key, int ndim) {
    size_t len = strlen(key), suffix = strlen(".bias");
    int bias = len >= suffix && strcmp(key + len - suffix, ".bias") == 0;
    return ndim > 1 && !bias;
}

/* Chunks of a large tensor for the threads (the kernels are elementwise, so how a tensor is
 * split never changes a bit of the result). */
#define HS_OPTIM_CHUNK 16384

static int64_t chunk_length(int64_t n, int64_t chunk) {
    int64_t begin = chunk * HS_OPTIM_CHUNK;
    return n - begin < HS_OPTIM_CHUNK ? n - begin : HS_OPTIM_CHUNK;
}

void hs_optimizer_zero_grad(hs_optimizer *opt) {
    for (int i = 0; i < opt->count; i++) {
        float *grad = opt->params[i].grad;
        int64_t n = opt->params[i].count, chunks = (n + HS_OPTIM_CHUNK - 1) / HS_OPTIM_CHUNK;
#pragma omp parallel for schedule(static) if (n >= HS_OPTIM_PARALLEL_MIN)
        for (int64_t c = 0; c < chunks; c++)
            memset(grad + c * HS_OPTIM_CHUNK, 0, (size_t)chunk_length(n, c) * sizeof(float));
    }
}

/* ---- Gradient clipping ------------------------------------------------------------------- */

static double sum_of_squares(const float *restrict x, int64_t n) {
    double sum = 0.0;
#pragma omp parallel for simd reduction(+ : sum) schedule(static) if (n >= HS_OPTIM_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) sum += (double)x[i] * x[i];
    return sum;
}

static void scale_floats(float *restrict x, int64_t n, float factor) {
#pragma omp parallel for simd schedule(static) if (n >= HS_OPTIM_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) x[i] *= factor;
}

double hs_optimizer_clip_grad_norm(hs_optimizer *opt, double max_norm) {
    double sum = 0.0;
    for (int i = 0; i < opt->count; i++)
        sum += sum_of_squares(opt->params[i].grad, opt->params[i].count);
    double norm = sqrt(sum); /* summed in double; torch's float32 norm agrees to an ulp */
    if (!isfinite(norm)) return norm;
    /* torch computes the factor on a float32 tensor as (1 / (norm + 1e-6)) * max_norm
     * (Tensor.__rtruediv__ is reciprocal() * other); the same float operations here. */
    float denominator = (float)norm + 1e-6f;
    float factor = (1.0f / denominator) * (float)max_norm;
    if (factor < 1.0f)
        for (int i = 0; i < opt->count; i++)
            scale_floats(opt->params[i].grad, opt->params[i].count, factor);
    return norm;
}

/* ---- Updates ----------------------------------------------------------------------------- */
/* Every scalar is computed once per tensor in double and rounded to float, as torch turns its
 * Python-float arguments into float32 scalars. The loops are one pass over p, g and the state
 * and repeat the roundings of torch's CPU kernels (checked op by op against torch 1.13 with its
 * AVX2 kernels, what it runs on any x86-64 CPU of the last ten years):
 *   add_(b, alpha=s)        fma(s, b, a)          (Vectorized fmadd)
 *   addcmul_(b, c, value=s) fma(s * b, c, a)
 *   addcdiv_(b, c, value=s) a + (s * b) / c
 *   mul_(s), div(s), add_(s) one rounding each.
 * So fmaf() where torch fuses, and no contraction anywhere else (fp-contract=off below): the
 * compiler must not fuse a product that torch rounds on its own. With GCC on x86-64 each kernel
 * is also built with AVX and FMA (8 floats a vector, fmaf one instruction), picked at load time
 * by the CPU's features; elsewhere fmaf() is libm's, slower but rounded the same, so every
 * machine computes the same bits (measured with the fixtures of tests/test_optim.c, GCC with
 * and without the clones and clang: SGD bit-exact to torch, AdamW within one ulp).
 * sqrtf vectorises only without errno: CMakeLists.txt builds this file with -fno-math-errno. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(HS_OPTIM_NO_CLONES)
#define HS_KERNEL_CLONES __attribute__((target_clones("fma", "default")))
#else
#define HS_KERNEL_CLONES
#endif

typedef struct sgd_scalars {
    float neg_lr, wd, mu;
    int nesterov;
} sgd_scalars;

typedef struct adamw_scalars {
    float keep;        /* 1 - lr * wd, the decoupled weight decay */
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float neg_step;    /* -lr / (1 - beta1^t) */
    float root2;       /* sqrt(1 - beta2^t) */
    float eps;
} adamw_scalars;

HS_KERNEL_CLONES
static void sgd_kernel(float *restrict p, const float *restrict g, float *restrict buf,
                       int64_t n, sgd_scalars s) {
    if (s.mu == 0.0f) {
        for (int64_t i = 0; i < n; i++) p[i] = fmaf(s.neg_lr, fmaf(s.wd, p[i], g[i]), p[i]);
    } else if (!s.nesterov) {
        /* torch clones d into the buffer on the first step; 0 * mu + d is the same value. */
        for (int64_t i = 0; i < n; i++) {
            float b = buf[i] * s.mu + fmaf(s.wd, p[i], g[i]);
            buf[i] = b;
            p[i] = fmaf(s.neg_lr, b, p[i]);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            float d = fmaf(s.wd, p[i], g[i]);
            float b = buf[i] * s.mu + d;
            buf[i] = b;
            p[i] = fmaf(s.neg_lr, fmaf(s.mu, b, d), p[i]);
        }
    }
}

HS_KERNEL_CLONES
static void adamw_kernel(float *restrict p, const float *restrict g, float *restrict m,
                         float *restrict v, int64_t n, adamw_scalars s) {
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = fmaf(s.one_minus_beta1, gi, m[i] * s.beta1);
        float vi = fmaf(s.one_minus_beta2 * gi, gi, v[i] * s.beta2);
        m[i] = mi;
        v[i] = vi;
        float denominator = sqrtf(vi) / s.root2 + s.eps;
        p[i] = p[i] * s.keep + (s.neg_step * mi) / denominator;
    }
}

static void sgd_tensor(hs_opt_param *p, sgd_scalars s) {
    int64_t n = p->count, chunks = (n + HS_OPTIM_CHUNK - 1) / HS_OPTIM_CHUNK;
#pragma omp parallel for schedule(static) if (n >= HS_OPTIM_PARALLEL_MIN)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t begin = c * HS_OPTIM_CHUNK;
        sgd_kernel(p->value + begin, p->grad + begin, p->m + begin, chunk_length(n, c), s);
    }
}

static void adamw_tensor(hs_opt_param *p, adamw_scalars s) {
    int64_t n = p->count, chunks = (n + HS_OPTIM_CHUNK - 1) / HS_OPTIM_CHUNK;
#pragma omp parallel for schedule(static) if (n >= HS_OPTIM_PARALLEL_MIN)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t begin = c * HS_OPTIM_CHUNK;
        adamw_kernel(p->value + begin, p->grad + begin, p->m + begin, p->v + begin,
                     chunk_length(n, c), s);
    }
}

static void sgd_update(const hs_optimizer *opt, hs_opt_param *p) {
    double lr = (double)opt->lr * p->lr_scale;
    sgd_scalars s = {(float)-lr, p->use_weight_decay ? opt->weight_decay : 0.0f, opt->momentum,
                     opt->nesterov};
    sgd_tensor(p, s);
}

static void adamw_update(const hs_optimizer *opt, hs_opt_param *p) {
    double lr = (double)opt->lr * p->lr_scale;
    double wd = p->use_weight_decay ? opt->weight_decay : 0.0;
    double beta1 = opt->beta1, beta2 = opt->beta2;
    double correction1 = 1.0 - pow(beta1, (double)opt->steps);
    double correction2 = 1.0 - pow(beta2, (double)opt->steps);
    adamw_scalars s = {
        .keep = (float)(1.0 - lr * wd),
        .beta1 = (float)beta1,
        .one_minus_beta1 = (float)(1.0 - beta1),
        .beta2 = (float)beta2,
        .one_minus_beta2 = (float)(1.0 - beta2),
        .neg_step = (float)(-(lr / correction1)),
        .root2 = (float)sqrt(correction2),
        .eps = (float)opt->eps,
    };
    adamw_tensor(p, s);
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

float hs_layer_decay_scale(double decay, int depth, int depth_count) {
    if (depth_count < 0) depth_count = 0;
    if (depth < 0) depth = 0;
    if (depth > depth_count) depth = depth_count;
    return (float)pow(decay, (double)(depth_count - depth));
}
