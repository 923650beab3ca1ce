#include "probe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "error.h"
#include "gemm.h"
#include "lbfgs.h"
#include "loss.h"
#include "ops_ref.h"
#include "rng.h"

typedef struct probe_problem {
    const float *x;
    const int *labels;
    int n, dim, classes;
    double lambda;
    float *logits; /* n x classes scratch */
    const float *class_weights; /* NULL: the plain mean */
    double weight_sum;          /* of the n rows' classes (n without weights) */
    const hs_context *ctx; /* the ranks sharing the rows; NULL: one process */
    hs_status status;      /* a failed all-reduce (the objective returns NaN then) */
    hs_error *err;
} probe_problem;

/* Mean cross-entropy (with class weights: the weighted mean, loss.h) plus lambda/2 |W|^2 over params = [W (classes x dim), b (classes)]. */
static double objective(void *ctx, const float *params, float *grad) {
    probe_problem *p = ctx;
    int d = p->dim, c = p->classes;
    /* This rank's rows [lo, hi) of the n. */
    int64_t lo = 0, hi = p->n;
    hs_dist_share(p->n, hs_dist_rank(p->ctx), hs_dist_world(p->ctx), &lo, &hi);
    int n = (int)(hi - lo);
    const float *x = p->x + (size_t)lo * d;
    const int *labels = p->labels + lo;
    const float *w = params, *b = params + (size_t)c * d;
    float *gw = grad, *gb = grad + (size_t)c * d;
    double loss = 0;
    memset(gb, 0, (size_t)c * sizeof(float));
    if (n > 0) {
        for (int i = 0; i < n; i++)
            memcpy(p->logits + (size_t)i * c, b, (size_t)c * sizeof(float));
        hs_sgemm('N', 'T', n, c, d, 1.0f, x, d, w, d, 1.0f, p->logits, c);
        /* logits become (softmax - onehot) / n: the gradient with respect to the logits */
        if (p->class_weights)
            /* normalised by all ranks' rows' weight sum: the shares add up to the mean */
            loss = hs_weighted_smoothed_cross_entropy(p->logits, labels, n, c, 0.0f,
                                                      p->class_weights, p->weight_sum,
                                                      p->logits);
        else
            loss = hs_softmax_cross_entropy_ref(p->logits, n, c, labels, p->logits);
        if (!p->class_weights && n != p->n) { /* this rank's share of the mean over all p->n rows */
            float share = (float)n / (float)p->n;
            for (size_t i = 0; i < (size_t)n * c; i++) p->logits[i] *= share;
            loss *= (double)n / p->n;
        }
        hs_sgemm('T', 'N', c, d, n, 1.0f, p->logits, c, x, d, 0.0f, gw, d);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < c; k++) gb[k] += p->logits[(size_t)i * c + k];
    } else {
        memset(gw, 0, (size_t)c * d * sizeof(float));
    }
    if (hs_dist_world(p->ctx) > 1 && !p->status) {
        /* One sum for the gradient, one for the loss: every rank then holds the same
         * objective and L-BFGS takes the same steps everywhere. */
        p->status = hs_dist_sum_floats(p->ctx, grad, (size_t)c * d + c, p->err);
        if (!p->status) p->status = hs_dist_sum_doubles(p->ctx, &loss, 1, p->err);
    }
    if (p->status) return NAN; /* L-BFGS stops on a non-finite value */
    double norm = 0;
    for (size_t i = 0; i < (size_t)c * d; i++) {
        norm += (double)w[i] * w[i];
        gw[i] += (float)(p->lambda * w[i]);
    }
    return loss + 0.5 * p->lambda * norm;
}

/* max_iterations: the strength search needs the ranking of strengths, not the last digit. */
static hs_status fit(probe_problem *p, float *params, int max_iterations, int *iterations,
                     hs_error *err) {
    hs_lbfgs_options o = {10, max_iterations, 1e-5};
    hs_lbfgs_result r;
    hs_status st = hs_lbfgs_minimize(objective, p, params,
                                     (int64_t)p->classes * p->dim + p->classes, &o, &r, err);
    if (iterations) *iterations = r.iterations;
    return p->status ? p->status : st; /* a failed all-reduce, not the NaN it caused */
}

/* The (class-weighted, when w is not NULL) count of rows whose argmax is their label. */
static double count_correct(const float *x, const int *labels, int n, int dim, int classes,
                            const float *params, const float *w) {
    double correct = 0;
    const float *b = params + (size_t)classes * dim;
    for (int i = 0; i < n; i++) {
        int best = 0;
        double best_score = -INFINITY;
        for (int k = 0; k < classes; k++) {
            double score = b[k];
            for (int j = 0; j < dim; j++)
                score += (double)params[(size_t)k * dim + j] * x[(size_t)i * dim + j];
            if (score > best_score) {
                best_score = score;
                best = k;
            }
        }
        if (best == labels[i]) correct += w ? w[labels[i]] : 1.0;
    }
    return correct;
}

hs_status hs_probe_fit(const float *x, const int *labels, int n, int dim, int classes,
                       uint64_t seed, float *weight, float *bias, hs_probe_result *result,
                       hs_error *err) {
    return hs_probe_fit_dist(NULL, x, labels, n, dim, classes, seed, NULL, weight, bias, result,
                             err);
}

hs_status hs_probe_fit_dist(const hs_context *ctx, const float *x, const int *labels, int n,
                            int dim, int classes, uint64_t seed, const float *class_weights,
                            float *weight, float *bias, hs_probe_result *result,
                            hs_error *err) {
    memset(result, 0, sizeof *result);
    size_t count = (size_t)classes * dim + classes;
    int held = n / 5, fit_n = n - held;
    float *params = calloc(count, sizeof(float));
    float *shuffled = malloc((size_t)n * dim * sizeof(float));
    int *shuffled_labels = malloc((size_t)n * sizeof(int)), *order = malloc((size_t)n * sizeof(int));
    float *logits = malloc((size_t)n * classes * sizeof(float));
    float *mean = malloc((size_t)dim * sizeof(float)), *scale = malloc((size_t)dim * sizeof(float));
    hs_status st = HS_OK;
    if (!params || !shuffled || !shuffled_labels || !order || !logits || !mean || !scale) {
        st = hs_fail(err, HS_ERR_NOMEM, "out of memory for the L-BFGS probe");
        goto done;
    }
    /* A seeded shuffle, then the last fifth is the held-out part. */
    hs_rng rng;
    hs_rng_seed(&rng, seed ^ 0x9b0beull);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)hs_rng_below(&rng, (uint64_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < n; i++) {
        memcpy(shuffled + (size_t)i * dim, x + (size_t)order[i] * dim, (size_t)dim * sizeof(float));
        shuffled_labels[i] = labels[order[i]];
    }
    /* Standardise every feature (mean 0, deviation 1 over the training data): the problem is
     * then well conditioned, so L-BFGS needs a fraction of the iterations, and one L2 grid
     * suits features of any scale. The fitted weights are folded back at the end. */
    for (int j = 0; j < dim; j++) {
        double sum = 0, sum2 = 0;
        for (int i = 0; i < n; i++) sum += shuffled[(size_t)i * dim + j];
        mean[j] = (float)(sum / n);
        for (int i = 0; i < n; i++) {
            double d = shuffled[(size_t)i * dim + j] - mean[j];
            sum2 += d * d;
        }
        double deviation = sqrt(sum2 / n);
        scale[j] = deviation > 1e-6 ? (float)(1.0 / deviation) : 1.0f;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < dim; j++) {
            float *v = &shuffled[(size_t)i * dim + j];
            *v = (*v - mean[j]) * scale[j];
        }
    /* Strengths from strong to weak; each fit starts from the previous one's solution. */
    static const double grid[] = {1e-1, 1e-2, 1e-3, 1e-4, 1e-5};
    double best_correct = -1;
    probe_problem p = {shuffled, shuffled_labels, fit_n, dim, classes, 0, logits, class_weights,
                       hs_class_weight_sum(shuffled_labels, fit_n, class_weights), ctx, HS_OK,
                       err};
    for (size_t g = 0; held > 0 && g < sizeof grid / sizeof grid[0]; g++) {
        p.lambda = grid[g];
        if ((st = fit(&p, params, 150, NULL, err))) goto done;
        /* With class weights the strength is chosen by the weighted accuracy: the
         * objective's own measure (balanced weights: the mean per-class recall). */
        double correct = count_correct(shuffled + (size_t)fit_n * dim, shuffled_labels + fit_n,
                                       held, dim, classes, params, class_weights);
        double total = hs_class_weight_sum(shuffled_labels + fit_n, held, class_weights);
        if (correct > best_correct) {
            best_correct = correct;
            result->lambda = grid[g];
            result->holdout_accuracy = total > 0 ? 100.0 * correct / total : 0;
        }
    }
    if (held == 0) result->lambda = 1e-4;
    /* The final fit on all the training data (in its shuffled order: the loss is a mean, so
     * order does not matter) with the chosen strength. */
    memset(params, 0, count * sizeof(float));
    p = (probe_problem){shuffled, shuffled_labels, n, dim, classes, result->lambda, logits,
                        class_weights, hs_class_weight_sum(shuffled_labels, n, class_weights),
                        ctx, HS_OK, err};
    if ((st = fit(&p, params, 500, &result->iterations, err))) goto done;
    /* w . ((x - mean) * scale) + b = (w * scale) . x + (b - sum(w * scale * mean)) */
    for (int k = 0; k < classes; k++) {
        double shift = 0;
        for (int j = 0; j < dim; j++) {
            float w = params[(size_t)k * dim + j] * scale[j];
            weight[(size_t)k * dim + j] = w;
            shift += (double)w * mean[j];
        }
        bias[k] = (float)(params[(size_t)classes * dim + k] - shift);
    }
done:
    free(params);
    free(shuffled);
    free(shuffled_labels);
    free(order);
    free(logits);
    free(mean);
    free(scale);
    return st;
}
