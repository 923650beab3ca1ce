/* Tests the reference backward kernels (src/ops_ref_grad.c and the backward functions of
 * src/ops_ref.c) two independent ways:
 *
 * 1. Against central finite differences of the reference forward kernels, on random inputs.
 *    For a forward f and an upstream gradient dy the scalar L(v) = sum(dy * f(v)) is summed
 *    in double; for every element v_i of an input or parameter,
 *        fd_i = (L(v_i + h) - L(v_i - h)) / (h+ + h-)
 *    where h+ and h- are the steps as actually stored in float. Operations that are linear
 *    in the perturbed value (convolution, pooling, linear, frozen BatchNorm, drop connect,
 *    BatchNorm's gamma and beta) have no truncation error, only the float rounding of the
 *    forward's outputs: step 0.25, tolerance 1e-4 relative + 2e-5 absolute. Piecewise linear
 *    ones (ReLU6, max pooling) are tested on inputs at least 2 steps away from every kink or
 *    tie: step 2^-9, same tolerance. Training-mode BatchNorm's dx is smooth but not linear:
 *    step 2^-7 and tolerance 1e-3 relative + 1e-4 absolute (its truncation error is
 *    O(h^2) ~ 1e-5 here, the rest is the forward's float rounding divided by 2h); the
 *    softmax cross-entropy loss, a float, is checked at the same step and tolerance. The
 *    linear layer and cross-entropy kernels of ops_ref.c are included.
 *
 * 2. Against PyTorch's gradients in tests/fixtures/grads.safetensors (written by
 *    tools/make_grad_fixtures.py; computed by PyTorch in float64 from float32 inputs and
 *    rounded to float32 once, so they are the exact gradients to float precision). Tolerance
 *    |ours - torch| <= 1e-5 * |torch| + 1e-6, tighter than the 1e-4 asked for; operations
 *    without sums (ReLU, ReLU6, dropout, drop connect) must match bit for bit.
 *
 * Every kernel is also checked for its contract: dx overwritten (prefilled with NaN), the
 * parameter gradients accumulated onto what is there, and each output skipped when NULL. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ops_ref.h"
#include "rng.h"
#include "safetensors.h"
#include "test_util.h"

static hs_rng rng;

static float *nan_floats(int64_t count) {
    float *p = test_alloc_floats(count);
    for (int64_t i = 0; i < count; i++) p[i] = NAN;
    return p;
}

static double dot(const float *a, const float *b, int64_t count) {
    double sum = 0.0;
    for (int64_t i = 0; i < count; i++) sum += (double)a[i] * (double)b[i];
    return sum;
}

/* ---- the finite-difference harness --------------------------------------------------------- */

#define FD_STEP_LINEAR 0.25f
#define FD_STEP_KINK (1.0f / 512.0f)
#define FD_RTOL 1e-4
#define FD_ATOL 2e-5
#define FD_STEP_BN (1.0f / 128.0f)
#define FD_RTOL_BN 1e-3
#define FD_ATOL_BN 1e-4

typedef double (*loss_fn)(void *ctx);

static double fd_worst_rel = 0.0, fd_worst_ratio = 0.0; /* ratio: error / allowed error */
static char fd_worst_what[96] = "", fd_worst_ratio_what[96] = "";

/* Compares grad (count values) with central differences of loss() in each element of values
 * (which loss reads through ctx). */
static void check_fd(const char *what, loss_fn loss, void *ctx, float *values, int64_t count,
                     const float *grad, float step, double rtol, double atol) {
    int64_t bad = 0, worst = -1;
    double worst_excess = 0.0, worst_fd = 0.0;
    for (int64_t i = 0; i < count; i++) {
        const float orig = values[i];
        values[i] = orig + step;
        const double up = (double)values[i] - orig;
        const double l_up = loss(ctx);
        values[i] = orig - step;
        const double down = orig - (double)values[i];
        const double l_down = loss(ctx);
        values[i] = orig;
        const double fd = (l_up - l_down) / (up + down);
        const double diff = fabs(fd - (double)grad[i]);
        const double allowed = atol + rtol * fabs(fd);
        if (diff / allowed > fd_worst_ratio) {
            fd_worst_ratio = diff / allowed;
            snprintf(fd_worst_ratio_what, sizeof fd_worst_ratio_what, "%s", what);
        }
        if (fabs(fd) >= 1e-3 && diff / fabs(fd) > fd_worst_rel) {
            fd_worst_rel = diff / fabs(fd);
            snprintf(fd_worst_what, sizeof fd_worst_what, "%s", what);
        }
        if (!(diff <= allowed)) {
            if (worst < 0 || diff - allowed > worst_excess) {
                worst = i;
                worst_excess = diff - allowed;
                worst_fd = fd;
            }
            bad++;
        }
    }
    CHECK_MSG(bad == 0, "%s: %lld of %lld gradients differ from finite differences; worst at "
              "%lld: %.8g vs fd %.8g", what, (long long)bad, (long long)count, (long long)worst,
              worst >= 0 ? grad[worst] : 0.0, worst_fd);
}

/* ---- convolution ---------------------------------------------------------------------------- */

typedef struct conv_case {
    const char *name;
    int n, in_c, out_c, h, w, kh, kw, sh, sw, pt, pb, pl, pr, dh, dw, groups, bias;
} conv_case;

/* The 11 configurations of tools/make_ops_fixtures.py (and make_grad_fixtures.py). */
static const conv_case conv_cases[] = {
    {"conv_k3_p1", 2, 3, 4, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {"conv_k3_s2", 2, 3, 4, 9, 8, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 1, 0},
    {"conv_k5_s2_same", 2, 3, 4, 12, 11, 5, 5, 2, 2, 1, 2, 2, 2, 1, 1, 1, 1},
    {"conv_k1", 2, 6, 5, 5, 7, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1},
    {"conv_dw_k3", 2, 4, 4, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4, 1},
    {"conv_dw_k5_s2_same", 2, 4, 4, 10, 9, 5, 5, 2, 2, 1, 2, 2, 2, 1, 1, 4, 1},
    {"conv_dw_mult2", 2, 3, 6, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1},
    {"conv_groups2", 2, 4, 6, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1},
    {"conv_dil2", 2, 3, 4, 10, 9, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, 1},
    {"conv_k3x1", 2, 3, 4, 7, 6, 3, 1, 2, 1, 1, 1, 0, 0, 1, 1, 1, 1},
    {"conv_asym", 2, 2, 3, 6, 7, 2, 3, 1, 2, 0, 1, 2, 0, 1, 2, 1, 1},
};

static hs_conv2d_shape shape_of(const conv_case *c) {
    hs_conv2d_shape s = {c->in_c, c->out_c, c->kh, c->kw, c->sh, c->sw, c->pt, c->pb,
                         c->pl, c->pr, c->dh, c->dw, c->groups};
    return s;
}

typedef struct conv_ctx {
    const float *x, *weight, *bias, *dy;
    int n, h, w;
    hs_conv2d_shape s;
    float *y;
    int64_t y_count;
} conv_ctx;

static double conv_loss(void *p) {
    conv_ctx *c = p;
    hs_conv2d_forward_ref(c->x, c->n, c->h, c->w, c->weight, c->bias, &c->s, c->y);
    return dot(c->dy, c->y, c->y_count);
}

static void fd_conv(const conv_case *cc) {
    hs_conv2d_shape s = shape_of(cc);
    int oh = hs_conv_out_size(cc->h, cc->kh, cc->sh, cc->pt, cc->pb, cc->dh);
    int ow = hs_conv_out_size(cc->w, cc->kw, cc->sw, cc->pl, cc->pr, cc->dw);
    int64_t x_count = (int64_t)cc->n * cc->in_c * cc->h * cc->w;
    int64_t w_count = (int64_t)cc->out_c * (cc->in_c / cc->groups) * cc->kh * cc->kw;
    int64_t y_count = (int64_t)cc->n * cc->out_c * oh * ow;
    float *x = test_random_floats(&rng, x_count, -1, 1), *weight = test_random_floats(&rng, w_count, -1, 1);
    float *bias = test_random_floats(&rng, cc->out_c, -1, 1), *dy = test_random_floats(&rng, y_count, -1, 1);
    float *dx = nan_floats(x_count), *dw = test_alloc_floats(w_count), *db = test_alloc_floats(cc->out_c);
    hs_conv2d_backward_ref(x, cc->n, cc->h, cc->w, weight, &s, dy, dx, dw, db);

    conv_ctx ctx = {x, weight, cc->bias ? bias : NULL, dy, cc->n, cc->h, cc->w, s,
                    test_alloc_floats(y_count), y_count};
    char what[96];
    snprintf(what, sizeof what, "%s fd dx", cc->name);
    check_fd(what, conv_loss, &ctx, x, x_count, dx, FD_STEP_LINEAR, FD_RTOL, FD_ATOL);
    snprintf(what, sizeof what, "%s fd dweight", cc->name);
    check_fd(what, conv_loss, &ctx, weight, w_count, dw, FD_STEP_LINEAR, FD_RTOL, FD_ATOL);
    ctx.bias = bias;
    snprintf(what, sizeof what, "%s fd dbias", cc->name);
    check_fd(what, conv_loss, &ctx, bias, cc->out_c, db, FD_STEP_LINEAR, FD_RTOL, FD_ATOL);

    /* contract: parameter gradients accumulate (a second call adds the same again, onto
     * random starting values), NULL skips each output */
    float *dw2 = test_random_floats(&rng, w_count, -1, 1), *db2 = test_random_floats(&rng, cc->out_c, -1, 1);
    float *dw_expect = test_alloc_floats(w_count), *db_expect = test_alloc_floats(cc->out_c);
    for (int64_t i = 0; i < w_count; i++) dw_expect[i] = dw2[i] + dw[i];
    for (int i = 0; i < cc->out_c; i++) db_expect[i] = db2[i] + db[i];
    hs_conv2d_backward_ref(x, cc->n, cc->h, cc->w, weight, &s, dy, NULL, dw2, NULL);
    snprintf(what, sizeof what, "%s dweight accumulates", cc->name);
    CHECK_CLOSE(what, dw2, dw_expect, w_count, 1e-6f, 1e-7f);
    hs_conv2d_backward_ref(x, cc->n, cc->h, cc->w, weight, &s, dy, NULL, NULL, db2);
    snprintf(what, sizeof what, "%s dbias accumulates", cc->name);
    CHECK_CLOSE(what, db2, db_expect, cc->out_c, 1e-6f, 1e-7f);
    float *dx2 = nan_floats(x_count);
    hs_conv2d_backward_ref(x, cc->n, cc->h, cc->w, weight, &s, dy, dx2, NULL, NULL);
    snprintf(what, sizeof what, "%s dx alone", cc->name);
    CHECK_CLOSE(what, dx2, dx, x_count, 0.0f, 0.0f);

    free(x);
    free(weight);
    free(bias);
    free(dy);
    free(dx);
    free(dw);
    free(db);
    free(ctx.y);
    free(dw2);
    free(db2);
    free(dw_expect);
    free(db_expect);
    free(dx2);
}

/* A kernel larger than the tap lists' stack arrays, to cover the slow path. */
static void fd_conv_large_kernel(void) {
    conv_case big = {"conv_k65_dil1", 1, 2, 2, 70, 3, 65, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1};
    fd_conv(&big);
}

/* ---- BatchNorm ------------------------------------------------------------------------------- */

typedef struct bn_ctx {
    const float *x, *gamma, *beta, *dy, *mean, *var;
    int n, c, hw;
    float eps;
    int frozen;
    float *y, *save_mean, *save_rstd;
} bn_ctx;

static double bn_loss(void *p) {
    bn_ctx *b = p;
    if (b->frozen)
        hs_batchnorm_forward_ref(b->x, b->n, b->c, b->hw, b->gamma, b->beta, b->mean, b->var,
                                 b->eps, b->y);
    else
        hs_batchnorm_train_forward_ref(b->x, b->n, b->c, b->hw, b->gamma, b->beta, b->eps, 0.1f,
                                       NULL, NULL, b->save_mean, b->save_rstd, b->y);
    return dot(b->dy, b->y, (int64_t)b->n * b->c * b->hw);
}

static void fd_batchnorm(int frozen) {
    const int n = 3, c = 4, hw = 10;
    const int64_t count = (int64_t)n * c * hw;
    const float eps = 1e-3f;
    float *x = test_random_floats(&rng, count, -2, 3), *dy = test_random_floats(&rng, count, -1, 1);
    float *gamma = test_random_floats(&rng, c, 0.5f, 1.5f), *beta = test_random_floats(&rng, c, -0.5f, 0.5f);
    float *mean = test_random_floats(&rng, c, -0.5f, 0.5f), *var = test_random_floats(&rng, c, 0.2f, 2.0f);
    float *save_mean = test_alloc_floats(c), *save_rstd = test_alloc_floats(c), *y = test_alloc_floats(count);
    float *dx = nan_floats(count), *dgamma = test_alloc_floats(c), *dbeta = test_alloc_floats(c);
    const char *mode = frozen ? "bn frozen" : "bn train";
    if (frozen) {
        hs_batchnorm_frozen_backward_ref(x, dy, n, c, hw, gamma, mean, var, eps, dx, dgamma,
                                         dbeta);
    } else {
        hs_batchnorm_train_forward_ref(x, n, c, hw, gamma, beta, eps, 0.1f, NULL, NULL,
                                       save_mean, save_rstd, y);
        hs_batchnorm_train_backward_ref(x, dy, n, c, hw, gamma, save_mean, save_rstd, dx,
                                        dgamma, dbeta);
    }
    bn_ctx ctx = {x, gamma, beta, dy, mean, var, n, c, hw, eps, frozen, y, save_mean, save_rstd};
    char what[96];
    snprintf(what, sizeof what, "%s fd dx", mode);
    if (frozen)
        check_fd(what, bn_loss, &ctx, x, count, dx, FD_STEP_LINEAR, FD_RTOL, FD_ATOL);
    else
        check_fd(what, bn_loss, &ctx, x, count, dx, FD_STEP_BN, FD_RTOL_BN, FD_ATOL_BN);
    snprintf(what, sizeof what, "%s fd dgamma", mode);
    check_fd(what, bn_loss, &ctx, gamma, c, dgamma, FD_STEP_LINEAR, FD_RTOL, FD_ATOL);
    snprintf(what, sizeof what, "%s fd dbeta", mode);
    check_fd(what, bn_loss, &ctx, beta, c, dbeta, FD_STEP_LINEAR, FD_RTOL, FD_ATOL);

    /* in training mode the gradients of a normalised channel sum to zero over the channel
     * (shifting a whole channel changes nothing) */
    if (!frozen) {
        for (int ch = 0; ch < c; ch++) {
            double sum = 0.0, scale = 0.0;
            for (int b = 0; b < n; b++)
                for (int i = 0; i < hw; i++) {
                    sum += dx[((int64_t)b * c + ch) * hw + i];
                    scale += fabs(dx[((int64_t)b * c + ch) * hw + i]);
                }
            CHECK_MSG(fabs(sum) <= 1e-6 * scale + 1e-7, "bn train channel %d: dx sums to %g",
                      ch, sum);
        }
    }

    /* accumulation and NULL skips */
    float *dg2 = test_random_floats(&rng, c, -1, 1), *db2 = test_random_floats(&rng, c, -1, 1);
    float *dg_expect = test_alloc_floats(c), *db_expect = test_alloc_floats(c), *dx2 = nan_floats(count);
    for (int i = 0; i < c; i++) {
        dg_expect[i] = dg2[i] + dgamma[i];
        db_expect[i] = db2[i] + dbeta[i];
    }
    if (frozen) {
        hs_batchnorm_frozen_backward_ref(x, dy, n, c, hw, gamma, mean, var, eps, NULL, dg2, NULL);
        hs_batchnorm_frozen_backward_ref(x, dy, n, c, hw, gamma, mean, var, eps, NULL, NULL, db2);
        hs_batchnorm_frozen_backward_ref(x, dy, n, c, hw, gamma, mean, var, eps, dx2, NULL, NULL);
    } else {
        hs_batchnorm_train_backward_ref(x, dy, n, c, hw, gamma, save_mean, save_rstd, NULL, dg2,
                                        NULL);
        hs_batchnorm_train_backward_ref(x, dy, n, c, hw, gamma, save_mean, save_rstd, NULL, NULL,
                                        db2);
        hs_batchnorm_train_backward_ref(x, dy, n, c, hw, gamma, save_mean, save_rstd, dx2, NULL,
                                        NULL);
    }
    snprintf(what, sizeof what, "%s dgamma accumulates", mode);
    CHECK_CLOSE(what, dg2, dg_expect, c, 1e-6f, 1e-7f);
    snprintf(what, sizeof what, "%s dbeta accumulates", mode);
    CHECK_CLOSE(what, db2, db_expect, c, 1e-6f, 1e-7f);
    snprintf(what, sizeof what, "%s dx alone", mode);
    CHECK_CLOSE(what, dx2, dx, count, 0.0f, 0.0f);

    free(x);
    free(dy);
    free(gamma);
    free(beta);
    free(mean);
    free(var);
    free(save_mean);
    free(save_rstd);
    free(y);
    free(dx);
    free(dgamma);
    free(dbeta);
    free(dg2);
    free(db2);
    free(dg_expect);
    free(db_expect);
    free(dx2);
}

/* The running statistics against a direct computation, for a known input: channel values
 * 1, 2, 3, 4 (mean 2.5, biased variance 1.25, unbiased 5/3). */
static void check_running_stats(void) {
    const float x[8] = {1, 2, 3, 4, 10, 10, 10, 10}; /* n 1, c 2, hw 4 */
    const float gamma[2] = {1, 1}, beta[2] = {0, 0};
    float rm[2] = {0.5f, 1.0f}, rv[2] = {2.0f, 3.0f}, sm[2], sr[2], y[8];
    hs_batchnorm_train_forward_ref(x, 1, 2, 4, gamma, beta, 1e-5f, 0.1f, rm, rv, sm, sr, y);
    CHECK(fabsf(sm[0] - 2.5f) < 1e-7f && fabsf(sm[1] - 10.0f) < 1e-6f);
    CHECK(fabsf(sr[0] - (float)(1.0 / sqrt(1.25 + 1e-5))) < 1e-6f);
    CHECK(fabsf(rm[0] - (0.9f * 0.5f + 0.1f * 2.5f)) < 1e-6f);
    CHECK(fabsf(rv[0] - (float)(0.9 * 2.0 + 0.1 * 5.0 / 3.0)) < 1e-6f);
    CHECK(fabsf(rm[1] - (0.9f * 1.0f + 0.1f * 10.0f)) < 1e-6f);
    CHECK(fabsf(rv[1] - 0.9f * 3.0f) < 1e-6f);
    CHECK(fabsf(y[0] + 1.5f * sr[0]) < 1e-6f && y[4] == 0.0f);
    /* NULL running statistics: only the batch statistics are written */
    hs_batchnorm_train_forward_ref(x, 1, 2, 4, gamma, beta, 1e-5f, 0.1f, NULL, NULL, sm, sr, y);
    CHECK(fabsf(sm[0] - 2.5f) < 1e-7f);
}

/* ---- element-wise ----------------------------------------------------------------------------- */

typedef struct eltwise_ctx {
    const float *dy;
    int64_t count;
    float *y;
    const uint8_t *keep;
    int n;
    float p;
    int kind; /* 0 relu6, 1 drop connect */
    const float *x;
} eltwise_ctx;

static double eltwise_loss(void *v) {
    eltwise_ctx *e = v;
    if (e->kind == 0) hs_relu6_forward_ref(e->x, e->count, e->y);
    else hs_drop_connect_forward_ref(e->x, e->keep, e->n, e->count / e->n, e->p, e->y);
    return dot(e->dy, e->y, e->count);
}

static void fd_relu6(void) {
    const int64_t count = 400;
    float *x = test_alloc_floats(count), *dy = test_random_floats(&rng, count, -1, 1), *y = test_alloc_floats(count);
    /* values in (-2, 8), none within 2 steps of the kinks at 0 and 6 */
    for (int64_t i = 0; i < count; i++) {
        float v;
        do v = hs_rng_range(&rng, -2.0f, 8.0f);
        while (fabsf(v) < 2 * FD_STEP_KINK || fabsf(v - 6.0f) < 2 * FD_STEP_KINK);
        x[i] = v;
    }
    float *dx = nan_floats(count);
    hs_relu6_backward_ref(x, dy, count, dx);
    eltwise_ctx ctx = {dy, count, y, NULL, 0, 0.0f, 0, x};
    check_fd("relu6 fd dx", eltwise_loss, &ctx, x, count, dx, FD_STEP_KINK, FD_RTOL, FD_ATOL);
    /* the kinks themselves pass nothing: hardtanh's strict bounds */
    const float edge[6] = {0.0f, 6.0f, -0.0f, 1e-30f, 5.9999995f, 6.0000005f};
    const float ones[6] = {1, 1, 1, 1, 1, 1};
    const float expect[6] = {0, 0, 0, 1, 1, 0};
    float got[6];
    hs_relu6_backward_ref(edge, ones, 6, got);
    CHECK_CLOSE("relu6 at the bounds", got, expect, 6, 0.0f, 0.0f);
    free(x);
    free(dy);
    free(y);
    free(dx);
}

static void fd_drop_connect(void) {
    const int n = 4;
    const int64_t per = 30, count = n * per;
    const uint8_t keep[4] = {1, 0, 1, 1};
    const float p = 0.2f;
    float *x = test_random_floats(&rng, count, -2, 2), *dy = test_random_floats(&rng, count, -1, 1);
    float *y = test_alloc_floats(count), *dx = nan_floats(count);
    hs_drop_connect_backward_ref(dy, keep, n, per, p, dx);
    eltwise_ctx ctx = {dy, count, y, keep, n, p, 1, x};
    check_fd("drop connect fd dx", eltwise_loss, &ctx, x, count, dx, FD_STEP_LINEAR, FD_RTOL,
             FD_ATOL);
    /* a dropped sample is all zeros forward and backward; a kept one is scaled by 1/(1-p) */
    hs_drop_connect_forward_ref(x, keep, n, per, p, y);
    int ok = 1;
    for (int64_t i = 0; i < per; i++) {
        ok &= y[per + i] == 0.0f && dx[per + i] == 0.0f;
        ok &= y[i] == x[i] / (1.0f - p) && dx[i] == dy[i] / (1.0f - p);
    }
    CHECK(ok);
    /* p = 1 drops everything without 0 * inf NaNs */
    const uint8_t all[4] = {1, 1, 1, 1};
    hs_drop_connect_forward_ref(x, all, n, per, 1.0f, y);
    hs_drop_connect_backward_ref(dy, all, n, per, 1.0f, dx);
    int zero = 1;
    for (int64_t i = 0; i < count; i++) zero &= y[i] == 0.0f && dx[i] == 0.0f;
    CHECK(zero);
    free(x);
    free(dy);
    free(y);
    free(dx);
}

/* ---- pooling ------------------------------------------------------------------------------------ */

typedef struct pool_ctx {
    const float *x, *dy;
    int n, c, h, w, k, stride, pad, out_h, out_w;
    int kind; /* 0 max, 1 avg, 2 adaptive */
    float *y;
    int64_t y_count;
} pool_ctx;

static double pool_loss(void *v) {
    pool_ctx *p = v;
    if (p->kind == 0)
        hs_maxpool2d_forward_ref(p->x, p->n, p->c, p->h, p->w, p->k, p->stride, p->pad, p->y);
    else if (p->kind == 1)
        hs_avgpool2d_forward_ref(p->x, p->n, p->c, p->h, p->w, p->k, p->stride, p->pad, p->y);
    else
        hs_adaptive_avgpool2d_forward_ref(p->x, p->n, p->c, p->h, p->w, p->out_h, p->out_w, p->y);
    return dot(p->dy, p->y, p->y_count);
}

/* kind 0/1: k, stride, pad; kind 2: out_h, out_w in k, stride. */
static void fd_pool(int kind, int n, int c, int h, int w, int a, int b, int pad) {
    pool_ctx ctx = {NULL, NULL, n, c, h, w, a, b, pad, a, b, kind, NULL, 0};
    int oh = kind == 2 ? a : hs_conv_out_size(h, a, b, pad, pad, 1);
    int ow = kind == 2 ? b : hs_conv_out_size(w, a, b, pad, pad, 1);
    int64_t x_count = (int64_t)n * c * h * w, y_count = (int64_t)n * c * oh * ow;
    float *x = test_alloc_floats(x_count);
    /* distinct values 0.01 apart (a shuffled ramp): no ties, no argmax changes within a step */
    for (int64_t i = 0; i < x_count; i++) x[i] = (float)i * 0.01f - 1.0f;
    for (int64_t i = x_count - 1; i > 0; i--) {
        int64_t j = (int64_t)hs_rng_below(&rng, (uint64_t)i + 1);
        float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
    float *dy = test_random_floats(&rng, y_count, -1, 1), *dx = nan_floats(x_count);
    if (kind == 0) hs_maxpool2d_backward_ref(x, n, c, h, w, a, b, pad, dy, dx);
    if (kind == 1) hs_avgpool2d_backward_ref(n, c, h, w, a, b, pad, dy, dx);
    if (kind == 2) hs_adaptive_avgpool2d_backward_ref(n, c, h, w, a, b, dy, dx);
    ctx.x = x;
    ctx.dy = dy;
    ctx.y = test_alloc_floats(y_count);
    ctx.y_count = y_count;
    char what[96];
    static const char *names[] = {"maxpool", "avgpool", "adaptive avgpool"};
    snprintf(what, sizeof what, "%s %dx%d (%d,%d,%d) fd dx", names[kind], h, w, a, b, pad);
    check_fd(what, pool_loss, &ctx, x, x_count, dx, kind == 0 ? FD_STEP_KINK : FD_STEP_LINEAR,
             FD_RTOL, FD_ATOL);
    /* the gradient is conserved: every output's gradient lands on the input once (max pool:
     * on its argmax; average pools: spread over the window, padding excluded only for
     * adaptive pooling, whose bins never reach padding) */
    if (kind != 1) {
        double in_sum = 0.0, out_sum = 0.0;
        for (int64_t i = 0; i < x_count; i++) in_sum += dx[i];
        for (int64_t i = 0; i < y_count; i++) out_sum += dy[i];
        CHECK_MSG(fabs(in_sum - out_sum) < 1e-4, "%s: gradient sum %g vs %g", what, in_sum,
                  out_sum);
    }
    free(x);
    free(dy);
    free(dx);
    free(ctx.y);
}

/* Max pooling's tie rule: the first maximum in scan order takes the whole gradient. */
static void check_maxpool_ties(void) {
    /* one 2x4 plane, 2x2 windows stride 2: window 0 all equal, window 1 ties at positions 1
     * and 2 of its scan */
    const float x[8] = {5, 5, 1, 7, 5, 5, 7, 0};
    const float dy[2] = {1.5f, -2.0f};
    float dx[8];
    hs_maxpool2d_backward_ref(x, 1, 1, 2, 4, 2, 2, 0, dy, dx);
    const float expect[8] = {1.5f, 0, 0, -2.0f, 0, 0, 0, 0};
    CHECK_CLOSE("maxpool ties go to the first maximum", dx, expect, 8, 0.0f, 0.0f);
    /* overlapping windows (k3 s1 pad 1) that pick one pixel add their gradients */
    const float x3[9] = {0, 0, 0, 0, 9, 0, 0, 0, 0};
    float dy3[9], dx3[9];
    for (int i = 0; i < 9; i++) dy3[i] = (float)(i + 1);
    hs_maxpool2d_backward_ref(x3, 1, 1, 3, 3, 3, 1, 1, dy3, dx3);
    const float expect3[9] = {0, 0, 0, 0, 45, 0, 0, 0, 0};
    CHECK_CLOSE("maxpool overlapping windows sum", dx3, expect3, 9, 0.0f, 0.0f);
}

/* ---- linear and softmax cross-entropy (kernels of ops_ref.c, checked here too) ---------- */

typedef struct linear_ctx {
    const float *x, *weight, *bias, *dy;
    int n, in, out;
    float *y;
} linear_ctx;

static double linear_loss(void *v) {
    linear_ctx *l = v;
    hs_linear_forward_ref(l->x, l->n, l->in, l->weight, l->bias, l->out, l->y);
    return dot(l->dy, l->y, (int64_t)l->n * l->out);
}

static void fd_linear(void) {
    const int n = 3, in = 7, out = 4;
    float *x = test_random_floats(&rng, n * in, -1, 1), *weight = test_random_floats(&rng, out * in, -1, 1);
    float *bias = test_random_floats(&rng, out, -1, 1), *dy = test_random_floats(&rng, n * out, -1, 1);
    float *dx = nan_floats(n * in), *dw = test_alloc_floats(out * in), *db = test_alloc_floats(out);
    hs_linear_backward_ref(x, n, in, weight, out, dy, dx, dw, db);
    linear_ctx ctx = {x, weight, bias, dy, n, in, out, test_alloc_floats(n * out)};
    check_fd("linear fd dx", linear_loss, &ctx, x, n * in, dx, FD_STEP_LINEAR, FD_RTOL, FD_ATOL);
    check_fd("linear fd dweight", linear_loss, &ctx, weight, out * in, dw, FD_STEP_LINEAR,
             FD_RTOL, FD_ATOL);
    check_fd("linear fd dbias", linear_loss, &ctx, bias, out, db, FD_STEP_LINEAR, FD_RTOL,
             FD_ATOL);
    free(x);
    free(weight);
    free(bias);
    free(dy);
    free(dx);
    free(dw);
    free(db);
    free(ctx.y);
}

typedef struct xent_ctx {
    const float *logits;
    int n, classes;
    const int *labels;
} xent_ctx;

static double xent_loss(void *v) {
    xent_ctx *x = v;
    return hs_softmax_cross_entropy_ref(x->logits, x->n, x->classes, x->labels, NULL);
}

static void fd_cross_entropy(void) {
    const int n = 4, classes = 6;
    const int labels[4] = {0, 5, 2, 2};
    float *logits = test_random_floats(&rng, n * classes, -3, 3), *grad = nan_floats(n * classes);
    hs_softmax_cross_entropy_ref(logits, n, classes, labels, grad);
    xent_ctx ctx = {logits, n, classes, labels};
    /* the loss is a float: its rounding (~3e-8) over 2h = 2^-6 gives ~2e-6 of noise */
    check_fd("cross-entropy fd dlogits", xent_loss, &ctx, logits, n * classes, grad,
             FD_STEP_BN, FD_RTOL_BN, FD_ATOL_BN);
    free(logits);
    free(grad);
}

/* ---- the finite-difference suite ------------------------------------------------------------ */

static void finite_difference_tests(void) {
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) fd_conv(&conv_cases[i]);
    fd_conv_large_kernel();
    fd_batchnorm(0);
    fd_batchnorm(1);
    check_running_stats();
    fd_relu6();
    fd_drop_connect();
    fd_pool(0, 2, 2, 8, 8, 2, 2, 0);
    fd_pool(0, 2, 2, 9, 9, 3, 2, 1);
    fd_pool(0, 1, 2, 7, 6, 3, 1, 1);
    fd_pool(1, 2, 2, 8, 8, 2, 2, 0);
    fd_pool(1, 2, 2, 7, 6, 3, 1, 1);
    fd_pool(1, 1, 2, 9, 9, 3, 2, 1);
    fd_pool(2, 2, 2, 9, 13, 7, 7, 0);
    fd_pool(2, 2, 2, 2, 3, 7, 7, 0);
    fd_pool(2, 1, 3, 5, 6, 1, 1, 0);
    check_maxpool_ties();
    fd_linear();
    fd_cross_entropy();
}

/* ---- against PyTorch (tests/fixtures/grads.safetensors) ----------------------------------- */

#define TORCH_RTOL 1e-5f
#define TORCH_ATOL 1e-6f
/* PyTorch's dropout multiplies by the rounded reciprocal 1/(1-p); hs_dropout_*_ref divide by
 * (1-p): the two differ by at most one rounding, 1.2e-7 relative. */
#define DROPOUT_RTOL 1.2e-7f

static hs_state_dict fixture;
static double torch_worst_rel = 0.0, torch_worst_abs = 0.0;
static char torch_worst_what[128] = "", torch_worst_abs_what[160] = "";

static void track(const char *what, const float *a, const float *b, int64_t count) {
    for (int64_t i = 0; i < count; i++) {
        double diff = fabs((double)a[i] - (double)b[i]);
        if (diff > torch_worst_abs) {
            torch_worst_abs = diff;
            snprintf(torch_worst_abs_what, sizeof torch_worst_abs_what, "%s (at %.4g)", what,
                     (double)b[i]);
        }
        if (fabs((double)b[i]) >= 1e-3 && diff / fabs((double)b[i]) > torch_worst_rel) {
            torch_worst_rel = diff / fabs((double)b[i]);
            snprintf(torch_worst_what, sizeof torch_worst_what, "%s", what);
        }
    }
}

static void close_to_torch(const char *case_name, const char *what, const float *ours,
                           const float *torch_values, int64_t count, float rtol, float atol) {
    char label[128];
    snprintf(label, sizeof label, "%s %s vs torch", case_name, what);
    track(label, ours, torch_values, count);
    CHECK_CLOSE(label, ours, torch_values, count, rtol, atol);
}

static const hs_sd_entry *get(const char *case_name, const char *name) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", case_name, name);
    const hs_sd_entry *e = hs_sd_find(&fixture, key);
    if (!e) {
        fprintf(stderr, "fixture tensor '%s' is missing; rerun tools/make_grad_fixtures.py\n",
                key);
        exit(1);
    }
    return e;
}

static const float *data(const char *case_name, const char *name) {
    return get(case_name, name)->data;
}

static float *copy_of(const char *case_name, const char *name) {
    const hs_sd_entry *e = get(case_name, name);
    float *p = test_alloc_floats(e->numel);
    memcpy(p, e->data, (size_t)e->numel * sizeof(float));
    return p;
}

static void torch_conv(const char *case_name) {
    const hs_sd_entry *pe = get(case_name, "params");
    CHECK(pe->numel == 15);
    if (pe->numel != 15) return;
    const float *v = pe->data;
    hs_conv2d_shape s = {(int)v[0], (int)v[1], (int)v[2], (int)v[3], (int)v[4], (int)v[5],
                         (int)v[6], (int)v[7], (int)v[8], (int)v[9], (int)v[10], (int)v[11],
                         (int)v[12]};
    const int has_bias = (int)v[13];
    const hs_sd_entry *x = get(case_name, "x"), *dy = get(case_name, "dy");
    const hs_sd_entry *w = get(case_name, "w");
    int n = (int)x->shape[0], h = (int)x->shape[2], wd = (int)x->shape[3];
    int oh = hs_conv_out_size(h, s.kernel_h, s.stride_h, s.pad_top, s.pad_bottom, s.dilation_h);
    int ow = hs_conv_out_size(wd, s.kernel_w, s.stride_w, s.pad_left, s.pad_right, s.dilation_w);
    CHECK_MSG(x->shape[1] == s.in_channels && dy->shape[1] == s.out_channels &&
              dy->shape[2] == oh && dy->shape[3] == ow, "%s: fixture shapes", case_name);
    if (dy->shape[2] != oh || dy->shape[3] != ow) return;
    float *dx = nan_floats(x->numel), *dw = test_alloc_floats(w->numel);
    float *db = test_alloc_floats(s.out_channels);
    hs_conv2d_backward_ref(x->data, n, h, wd, w->data, &s, dy->data, dx, dw,
                           has_bias ? db : NULL);
    close_to_torch(case_name, "dx", dx, data(case_name, "dx"), x->numel, TORCH_RTOL, TORCH_ATOL);
    close_to_torch(case_name, "dweight", dw, data(case_name, "dw"), w->numel, TORCH_RTOL,
                   TORCH_ATOL);
    if (has_bias)
        close_to_torch(case_name, "dbias", db, data(case_name, "db"), s.out_channels,
                       TORCH_RTOL, TORCH_ATOL);
    free(dx);
    free(dw);
    free(db);
}

static void torch_bn_train(const char *case_name) {
    const hs_sd_entry *x = get(case_name, "x");
    int n = (int)x->shape[0], c = (int)x->shape[1], hw = (int)(x->shape[2] * x->shape[3]);
    const float *gamma = data(case_name, "gamma");
    float eps = data(case_name, "eps")[0], momentum = data(case_name, "momentum")[0];
    float *rm = copy_of(case_name, "running_mean_in"), *rv = copy_of(case_name, "running_var_in");
    float *save_mean = test_alloc_floats(c), *save_rstd = test_alloc_floats(c);
    float *y = nan_floats(x->numel);
    hs_batchnorm_train_forward_ref(x->data, n, c, hw, gamma, data(case_name, "beta"), eps,
                                   momentum, rm, rv, save_mean, save_rstd, y);
    close_to_torch(case_name, "y", y, data(case_name, "y"), x->numel, TORCH_RTOL, TORCH_ATOL);
    close_to_torch(case_name, "save_mean", save_mean, data(case_name, "save_mean"), c,
                   TORCH_RTOL, TORCH_ATOL);
    close_to_torch(case_name, "save_rstd", save_rstd, data(case_name, "save_rstd"), c,
                   TORCH_RTOL, TORCH_ATOL);
    close_to_torch(case_name, "running_mean", rm, data(case_name, "running_mean_out"), c,
                   TORCH_RTOL, TORCH_ATOL);
    close_to_torch(case_name, "running_var", rv, data(case_name, "running_var_out"), c,
                   TORCH_RTOL, TORCH_ATOL);
    float *dx = nan_floats(x->numel), *dgamma = test_alloc_floats(c), *dbeta = test_alloc_floats(c);
    hs_batchnorm_train_backward_ref(x->data, data(case_name, "dy"), n, c, hw, gamma, save_mean,
                                    save_rstd, dx, dgamma, dbeta);
    close_to_torch(case_name, "dx", dx, data(case_name, "dx"), x->numel, TORCH_RTOL, TORCH_ATOL);
    close_to_torch(case_name, "dgamma", dgamma, data(case_name, "dgamma"), c, TORCH_RTOL,
                   TORCH_ATOL);
    close_to_torch(case_name, "dbeta", dbeta, data(case_name, "dbeta"), c, TORCH_RTOL,
                   TORCH_ATOL);
    free(rm);
    free(rv);
    free(save_mean);
    free(save_rstd);
    free(y);
    free(dx);
    free(dgamma);
    free(dbeta);
}

static void torch_bn_frozen(void) {
    const char *cs = "bn_frozen";
    const hs_sd_entry *x = get(cs, "x");
    int n = (int)x->shape[0], c = (int)x->shape[1], hw = (int)(x->shape[2] * x->shape[3]);
    float *dx = nan_floats(x->numel), *dgamma = test_alloc_floats(c), *dbeta = test_alloc_floats(c);
    hs_batchnorm_frozen_backward_ref(x->data, data(cs, "dy"), n, c, hw, data(cs, "gamma"),
                                     data(cs, "mean"), data(cs, "var"), data(cs, "eps")[0], dx,
                                     dgamma, dbeta);
    close_to_torch(cs, "dx", dx, data(cs, "dx"), x->numel, TORCH_RTOL, TORCH_ATOL);
    close_to_torch(cs, "dgamma", dgamma, data(cs, "dgamma"), c, TORCH_RTOL, TORCH_ATOL);
    close_to_torch(cs, "dbeta", dbeta, data(cs, "dbeta"), c, TORCH_RTOL, TORCH_ATOL);
    free(dx);
    free(dgamma);
    free(dbeta);
}

static void torch_activations(void) {
    const hs_sd_entry *x = get("relu", "x");
    float *dx = nan_floats(x->numel);
    hs_relu_backward_ref(x->data, data("relu", "dy"), x->numel, dx);
    close_to_torch("relu", "dx", dx, data("relu", "dx"), x->numel, 0.0f, 0.0f);
    hs_relu6_backward_ref(data("relu6", "x"), data("relu6", "dy"), x->numel, dx);
    close_to_torch("relu6", "dx", dx, data("relu6", "dx"), x->numel, 0.0f, 0.0f);
    /* the fixture really holds values at both kinks */
    int zeros = 0, sixes = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        zeros += data("relu6", "x")[i] == 0.0f;
        sixes += data("relu6", "x")[i] == 6.0f;
    }
    CHECK(zeros > 0 && sixes > 0);
    free(dx);
}

static void torch_pool(const char *case_name, int is_max) {
    const hs_sd_entry *x = get(case_name, "x"), *dy = get(case_name, "dy");
    const float *p = data(case_name, "params");
    int k = (int)p[0], stride = (int)p[1], pad = (int)p[2];
    int n = (int)x->shape[0], c = (int)x->shape[1], h = (int)x->shape[2], w = (int)x->shape[3];
    CHECK(dy->shape[2] == hs_conv_out_size(h, k, stride, pad, pad, 1) &&
          dy->shape[3] == hs_conv_out_size(w, k, stride, pad, pad, 1));
    float *dx = nan_floats(x->numel);
    if (is_max) {
        hs_maxpool2d_backward_ref(x->data, n, c, h, w, k, stride, pad, dy->data, dx);
        /* each dx is a double sum of at most a few floats: exact, so the same bits */
        close_to_torch(case_name, "dx", dx, data(case_name, "dx"), x->numel, 0.0f, 0.0f);
    } else {
        hs_avgpool2d_backward_ref(n, c, h, w, k, stride, pad, dy->data, dx);
        close_to_torch(case_name, "dx", dx, data(case_name, "dx"), x->numel, TORCH_RTOL,
                       TORCH_ATOL);
    }
    free(dx);
}

static void torch_adaptive(const char *case_name) {
    const hs_sd_entry *x = get(case_name, "x"), *dy = get(case_name, "dy");
    const float *p = data(case_name, "params");
    int oh = (int)p[0], ow = (int)p[1];
    CHECK(dy->shape[2] == oh && dy->shape[3] == ow);
    float *dx = nan_floats(x->numel);
    hs_adaptive_avgpool2d_backward_ref((int)x->shape[0], (int)x->shape[1], (int)x->shape[2],
                                       (int)x->shape[3], oh, ow, dy->data, dx);
    close_to_torch(case_name, "dx", dx, data(case_name, "dx"), x->numel, TORCH_RTOL,
                   TORCH_ATOL);
    free(dx);
}

static void torch_linear(void) {
    const hs_sd_entry *x = get("linear", "x"), *w = get("linear", "w");
    int n = (int)x->shape[0], in = (int)x->shape[1], out = (int)w->shape[0];
    float *dx = nan_floats(x->numel), *dw = test_alloc_floats(w->numel), *db = test_alloc_floats(out);
    hs_linear_backward_ref(x->data, n, in, w->data, out, data("linear", "dy"), dx, dw, db);
    close_to_torch("linear", "dx", dx, data("linear", "dx"), x->numel, TORCH_RTOL, TORCH_ATOL);
    close_to_torch("linear", "dweight", dw, data("linear", "dw"), w->numel, TORCH_RTOL,
                   TORCH_ATOL);
    close_to_torch("linear", "dbias", db, data("linear", "db"), out, TORCH_RTOL, TORCH_ATOL);
    free(dx);
    free(dw);
    free(db);
}

static uint8_t *mask_of(const char *case_name, const char *name, int64_t *count) {
    const hs_sd_entry *e = get(case_name, name);
    uint8_t *m = malloc((size_t)e->numel);
    if (!m) exit(1);
    for (int64_t i = 0; i < e->numel; i++) m[i] = e->data[i] != 0.0f;
    *count = e->numel;
    return m;
}

static void torch_dropout(void) {
    const hs_sd_entry *x = get("dropout", "x");
    int64_t count;
    uint8_t *mask = mask_of("dropout", "mask", &count);
    CHECK(count == x->numel);
    float p = data("dropout", "p")[0];
    float *out = nan_floats(x->numel);
    hs_dropout_forward_ref(x->data, mask, x->numel, p, out);
    close_to_torch("dropout", "y", out, data("dropout", "y"), x->numel, DROPOUT_RTOL, 0.0f);
    hs_dropout_backward_ref(data("dropout", "dy"), mask, x->numel, p, out);
    close_to_torch("dropout", "dx", out, data("dropout", "dx"), x->numel, DROPOUT_RTOL, 0.0f);
    free(mask);
    free(out);
}

static void torch_drop_connect(void) {
    const hs_sd_entry *x = get("drop_connect", "x");
    int64_t n;
    uint8_t *keep = mask_of("drop_connect", "keep", &n);
    CHECK(n == x->shape[0]);
    int64_t per = x->numel / n;
    float p = data("drop_connect", "p")[0];
    float *out = nan_floats(x->numel);
    hs_drop_connect_forward_ref(x->data, keep, (int)n, per, p, out);
    close_to_torch("drop_connect", "y", out, data("drop_connect", "y"), x->numel, 0.0f, 0.0f);
    hs_drop_connect_backward_ref(data("drop_connect", "dy"), keep, (int)n, per, p, out);
    close_to_torch("drop_connect", "dx", out, data("drop_connect", "dx"), x->numel, 0.0f, 0.0f);
    free(keep);
    free(out);
}

static void torch_cross_entropy(void) {
    const hs_sd_entry *logits = get("xent", "logits");
    int n = (int)logits->shape[0], classes = (int)logits->shape[1];
    int labels[16];
    CHECK(n <= 16);
    if (n > 16) return;
    for (int i = 0; i < n; i++) labels[i] = (int)data("xent", "labels")[i];
    float *grad = nan_floats(logits->numel);
    float loss = hs_softmax_cross_entropy_ref(logits->data, n, classes, labels, grad);
    close_to_torch("xent", "loss", &loss, data("xent", "loss"), 1, TORCH_RTOL, TORCH_ATOL);
    close_to_torch("xent", "dlogits", grad, data("xent", "dlogits"), logits->numel, TORCH_RTOL,
                   TORCH_ATOL);
    free(grad);
}

static void pytorch_tests(void) {
    test_load_fixture(HS_FIXTURES_DIR "/grads.safetensors", &fixture);
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
        torch_conv(conv_cases[i].name);
    torch_bn_train("bn_train_m0.1");
    torch_bn_train("bn_train_m0.01");
    torch_bn_frozen();
    torch_activations();
    torch_pool("maxpool_k2_s2_ties", 1);
    torch_pool("maxpool_k3_s2_p1_ties", 1);
    torch_pool("maxpool_k3_s1_p1", 1);
    torch_pool("avgpool_k2_s2", 0);
    torch_pool("avgpool_k3_s1_p1", 0);
    torch_pool("avgpool_k3_s2_p1", 0);
    torch_adaptive("adaptive_14x14_7x7");
    torch_adaptive("adaptive_9x13_7x7");
    torch_adaptive("adaptive_2x3_7x7");
    torch_adaptive("adaptive_10x7_4x3");
    torch_adaptive("adaptive_5x6_1x1");
    torch_linear();
    torch_dropout();
    torch_drop_connect();
    torch_cross_entropy();
    hs_sd_free(&fixture);
}

int main(void) {
    hs_rng_seed(&rng, 20261202);
    finite_difference_tests();
    pytorch_tests();
    printf("test_ops_grad: worst error vs PyTorch: relative %.3g (in %s, over |torch| >= 1e-3), "
           "absolute %.3g (in %s); tolerance rtol %g atol %g\n",
           torch_worst_rel, torch_worst_what[0] ? torch_worst_what : "-", torch_worst_abs,
           torch_worst_abs_what[0] ? torch_worst_abs_what : "-",
           (double)TORCH_RTOL, (double)TORCH_ATOL);
    printf("test_ops_grad: worst relative error vs finite differences %.3g (in %s, over "
           "|fd| >= 1e-3); closest to its tolerance: %.2f of it (in %s)\n",
           fd_worst_rel, fd_worst_what[0] ? fd_worst_what : "-", fd_worst_ratio,
           fd_worst_ratio_what[0] ? fd_worst_ratio_what : "-");
    return check_finish("test_ops_grad");
}
