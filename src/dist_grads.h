/* The gradient all-reduce of a training tape (net_train.h) over the ranks (dist.h): the
 * optimizer's gradients are one span of the network's gradient arena (the trained layers lie
 * together there, in layer order), summed by an hs_dist_reducer whose buckets start from the
 * tape's grads_ready hook while backward runs on below them.
 *
 *     hs_grad_sync_init(&s, ctx, &tape, &opt, err);   // installs the hook on the tape
 *     each step: hs_net_zero_grad(net); hs_grad_sync_begin(&s);
 *                forward, loss, hs_tape_backward(&tape, err);
 *                hs_grad_sync_finish(&s, err);        // every rank, even one that failed
 *                hs_dist_agree(...); the optimizer step
 *
 * Anything in the span that the optimizer does not hold is zeroed with the arena every step,
 * so its sum stays zero. */
#ifndef HS_DIST_GRADS_H
#define HS_DIST_GRADS_H

#include <stddef.h>

#include "dist.h"
#include "net_train.h"
#include "optim.h"

typedef struct hs_grad_sync {
    hs_dist_reducer reducer;
    int first;           /* the tape's first layer */
    size_t *ready_from;  /* [k]: the span is final from here once layer first + k ran
                          * backward */
} hs_grad_sync;

hs_status hs_grad_sync_init(hs_grad_sync *s, const hs_context *ctx, hs_tape *tape,
                            const hs_optimizer *opt, hs_error *err);
void hs_grad_sync_free(hs_grad_sync *s);
static inline void hs_grad_sync_begin(hs_grad_sync *s) { hs_dist_reducer_begin(&s->reducer); }
static inline hs_status hs_grad_sync_finish(hs_grad_sync *s, hs_error *err) {
    return hs_dist_reducer_finish(&s->reducer, err);
}

#endif
