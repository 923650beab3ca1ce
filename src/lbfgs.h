/* L-BFGS: minimises a smooth function of n variables from its value and gradient, keeping the
 * last `memory` steps to approximate the inverse Hessian (Nocedal & Wright, algorithm 7.4),
 * with a backtracking line search on the Armijo condition. */
#ifndef HS_LBFGS_H
#define HS_LBFGS_H

#include <stdint.h>

#include "headstart.h"

/* Returns f(x) and writes its gradient into grad. */
typedef double (*hs_objective_fn)(void *ctx, const float *x, float *grad);

typedef struct hs_lbfgs_options {
    int memory;              /* stored correction pairs, e.g. 10 */
    int max_iterations;
    double gradient_tolerance; /* stop when |grad|_inf <= this */
} hs_lbfgs_options;

typedef struct hs_lbfgs_result {
    int iterations;
    int evaluations;
    double value;
} hs_lbfgs_result;

/* x holds the start and receives the minimiser. */
hs_status hs_lbfgs_minimize(hs_objective_fn f, void *ctx, float *x, int64_t n,
                            const hs_lbfgs_options *options, hs_lbfgs_result *result,
                            hs_error *err);

#endif
