#include "lbfgs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

static double dot(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double max_abs(const float *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

/* The two-loop recursion: direction = -H * grad from the stored pairs (s_i, y_i). */
static void direction(const float *grad, float *d, int64_t n, float **s, float **y,
                      const double *rho, int count, int newest, int memory, double *alpha) {
    for (int64_t i = 0; i < n; i++) d[i] = -grad[i];
    for (int k = 0; k < count; k++) {
        int j = (newest - k + memory) % memory;
        alpha[j] = rho[j] * dot(s[j], d, n);
        for (int64_t i = 0; i < n; i++) d[i] -= (float)(alpha[j] * y[j][i]);
    }
    if (count > 0) { /* scale by s'y / y'y of the newest pair */
        double gamma = dot(s[newest], y[newest], n) / dot(y[newest], y[newest], n);
        for (int64_t i = 0; i < n; i++) d[i] *= (float)gamma;
    }
    for (int k = count - 1; k >= 0; k--) {
        int j = (newest - k + memory) % memory;
        double beta = rho[j] * dot(y[j], d, n);
        for (int64_t i = 0; i < n; i++) d[i] += (float)((alpha[j] - beta) * s[j][i]);
    }
}

hs_status hs_lbfgs_minimize(hs_objective_fn f, void *ctx, float *x, int64_t n,
                            const hs_lbfgs_options *o, hs_lbfgs_result *result,
                            hs_error *err) {
    int memory = o->memory;
    memset(result, 0, sizeof *result);
    float *g = malloc((size_t)n * sizeof(float)), *d = malloc((size_t)n * sizeof(float));
    float *x_new = malloc((size_t)n * sizeof(float)), *g_new = malloc((size_t)n * sizeof(float));
    float **s = calloc((size_t)memory, sizeof *s), **y = calloc((size_t)memory, sizeof *y);
    double *rho = calloc((size_t)memory, sizeof *rho), *alpha = calloc((size_t)memory, sizeof *alpha);
    hs_status st = HS_OK;
    int ok = g && d && x_new && g_new && s && y && rho && alpha;
    for (int k = 0; ok && k < memory; k++)
        ok = (s[k] = malloc((size_t)n * sizeof(float))) && (y[k] = malloc((size_t)n * sizeof(float)));
    if (!ok) {
        st = hs_fail(err, HS_ERR_NOMEM, "out of memory for L-BFGS over %lld variables",
                     (long long)n);
        goto done;
    }
    double value = f(ctx, x, g);
    result->evaluations = 1;
    int count = 0, newest = memory - 1;
    for (int it = 0; it < o->max_iterations; it++) {
        if (!isfinite(value)) {
            st = hs_fail(err, HS_ERR_DIVERGED, "L-BFGS reached a non-finite loss");
            break;
        }
        if (max_abs(g, n) <= o->gradient_tolerance) break;
        direction(g, d, n, s, y, rho, count, newest, memory, alpha);
        double slope = dot(g, d, n);
        if (slope >= 0) { /* not a descent direction: restart from steepest descent */
            count = 0;
            for (int64_t i = 0; i < n; i++) d[i] = -g[i];
            slope = dot(g, d, n);
        }
        /* The first step has no curvature yet: keep it short. */
        double step = count == 0 ? fmin(1.0, 1.0 / sqrt(-slope)) : 1.0, value_new = 0;
        int accepted = 0;
        for (int tries = 0; tries < 40; tries++) {
            for (int64_t i = 0; i < n; i++) x_new[i] = x[i] + (float)(step * d[i]);
            value_new = f(ctx, x_new, g_new);
            result->evaluations++;
            if (isfinite(value_new) && value_new <= value + 1e-4 * step * slope) {
                accepted = 1;
                break;
            }
            step *= 0.5;
        }
        if (!accepted) break; /* no progress possible at float precision */
        newest = (newest + 1) % memory;
        for (int64_t i = 0; i < n; i++) {
            s[newest][i] = x_new[i] - x[i];
            y[newest][i] = g_new[i] - g[i];
        }
        double sy = dot(s[newest], y[newest], n);
        if (sy > 1e-12) {
            rho[newest] = 1.0 / sy;
            if (count < memory) count++;
        } else {
            newest = (newest - 1 + memory) % memory; /* skip a pair without curvature */
        }
        memcpy(x, x_new, (size_t)n * sizeof(float));
        memcpy(g, g_new, (size_t)n * sizeof(float));
        double improvement = value - value_new;
        value = value_new;
        result->iterations = it + 1;
        if (improvement <= 1e-10 * fmax(1.0, fabs(value))) break;
    }
    result->value = value;
done:
    for (int k = 0; s && y && k < memory; k++) {
        free(s[k]);
        free(y[k]);
    }
    free(s);
    free(y);
    free(rho);
    free(alpha);
    free(g);
    free(d);
    free(x_new);
    free(g_new);
    return st;
}
