/* The L-BFGS minimiser on a problem with a known answer, and the logistic-regression probe on
 * data with a known structure. */
#include <string.h>

#include "check.h"
#include "lbfgs.h"
#include "probe.h"
#include "rng.h"

/* f(x) = sum_i a_i (x_i - t_i)^2 / 2: an ill-conditioned quadratic with minimum at t. */
typedef struct quadratic {
    const float *a, *t;
    int n;
} quadratic;

static double quadratic_value(void *ctx, const float *x, float *grad) {
    const quadratic *q = ctx;
    double f = 0;
    for (int i = 0; i < q->n; i++) {
        double d = x[i] - q->t[i];
        f += 0.5 * q->a[i] * d * d;
        grad[i] = (float)(q->a[i] * d);
    }
    return f;
}

static void test_quadratic(void) {
    enum { N = 50 };
    float a[N], t[N], x[N] = {0};
    for (int i = 0; i < N; i++) {
        a[i] = 1.0f + (float)i * 2.0f; /* condition number 99 */
        t[i] = (float)(i % 7) - 3.0f;
    }
    quadratic q = {a, t, N};
    hs_lbfgs_options o = {8, 200, 1e-6};
    hs_lbfgs_result r;
    hs_error err = {0};
    CHECK(hs_lbfgs_minimize(quadratic_value, &q, x, N, &o, &r, &err) == HS_OK);
    CHECK_CLOSE("L-BFGS minimum", x, t, N, 0, 1e-4f);
    CHECK_MSG(r.iterations < 100, "%d iterations", r.iterations);
}

/* Three Gaussian clusters in 8 dimensions: the probe separates them. */
static void test_probe(void) {
    enum { n = 300, dim = 8, classes = 3 };
    static float x[n * dim];
    int labels[n];
    hs_rng rng;
    hs_rng_seed(&rng, 11);
    for (int i = 0; i < n; i++) {
        labels[i] = i % classes;
        for (int j = 0; j < dim; j++)
            x[i * dim + j] = hs_rng_normal(&rng) * 0.7f + (j == labels[i] ? 2.0f : 0.0f);
    }
    float weight[classes * dim], bias[classes];
    hs_probe_result r;
    hs_error err = {0};
    CHECK(hs_probe_fit(x, labels, n, dim, classes, 1, weight, bias, &r, &err) == HS_OK);
    int correct = 0;
    for (int i = 0; i < n; i++) {
        int best = 0;
        float best_score = -1e30f;
        for (int k = 0; k < classes; k++) {
            float s = bias[k];
            for (int j = 0; j < dim; j++) s += weight[k * dim + j] * x[i * dim + j];
            if (s > best_score) {
                best_score = s;
                best = k;
            }
        }
        correct += best == labels[i];
    }
    printf("probe: lambda %g, held-out %.1f %%, train %.1f %%\n", r.lambda, r.holdout_accuracy,
           100.0 * correct / n);
    CHECK(correct >= n * 9 / 10);
    CHECK(r.holdout_accuracy >= 85.0);
    CHECK(r.lambda > 0);
    /* The same seed gives the same weights. */
    float weight2[classes * dim], bias2[classes];
    CHECK(hs_probe_fit(x, labels, n, dim, classes, 1, weight2, bias2, &r, &err) == HS_OK);
    CHECK(memcmp(weight, weight2, sizeof weight) == 0);

    /* Features are standardised inside: scaling and shifting one of them changes neither the
     * chosen strength nor any prediction. */
    static float moved[n * dim];
    for (int i = 0; i < n * dim; i++) moved[i] = i % dim == 2 ? x[i] * 1000.0f + 50.0f : x[i];
    hs_probe_result r2;
    CHECK(hs_probe_fit(moved, labels, n, dim, classes, 1, weight2, bias2, &r2, &err) == HS_OK);
    CHECK(r2.lambda == r.lambda);
    int same = 0;
    for (int i = 0; i < n; i++) {
        int a = 0, b = 0;
        float best_a = -1e30f, best_b = -1e30f;
        for (int k = 0; k < classes; k++) {
            float sa = bias[k], sb = bias2[k];
            for (int j = 0; j < dim; j++) {
                sa += weight[k * dim + j] * x[i * dim + j];
                sb += weight2[k * dim + j] * moved[i * dim + j];
            }
            if (sa > best_a) {
                best_a = sa;
                a = k;
            }
            if (sb > best_b) {
                best_b = sb;
                b = k;
            }
        }
        same += a == b;
    }
    CHECK_MSG(same == n, "%d of %d predictions agree after rescaling a feature", same, n);
}

int main(void) {
    test_quadratic();
    test_probe();
    return check_finish("test_probe");
}
