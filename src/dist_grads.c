/* The gradient all-reduce of a training tape (dist_grads.h). */
#include "dist_grads.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

/* The tape's hook: layers [layer, last) have their final gradients. */
static void grads_ready(void *ctx, int layer) {
    hs_grad_sync *s = ctx;
    hs_dist_reducer_ready(&s->reducer, s->ready_from[layer - s->first]);
}

hs_status hs_grad_sync_init(hs_grad_sync *s, const hs_context *ctx, hs_tape *tape,
                            const hs_optimizer *opt, hs_error *err) {
    memset(s, 0, sizeof *s);
    s->first = tape->first;
    if (opt->count == 0) return hs_dist_reducer_init(&s->reducer, ctx, NULL, 0, err);
    float *lo = opt->params[0].grad, *hi = lo + opt->params[0].count;
    for (int i = 1; i < opt->count; i++) {
        const hs_opt_param *p = &opt->params[i];
        if (p->grad < lo) lo = p->grad;
        if (p->grad + p->count > hi) hi = p->grad + p->count;
    }
    size_t span = (size_t)(hi - lo);
    hs_status st = hs_dist_reducer_init(&s->reducer, ctx, lo, span, err);
    if (st) return st;
    int layers = tape->last - tape->first;
    if (!(s->ready_from = malloc(((size_t)layers + 1) * sizeof *s->ready_from)))
        return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    for (int k = 0; k <= layers; k++) s->ready_from[k] = span;
    /* Each layer's lowest gradient in the span, then the minimum over the layers above it:
     * once layer k ran backward, [ready_from[k], span) is final. */
    hs_param_ref *refs = NULL;
    int count = 0;
    if ((st = hs_net_params(tape->net, &refs, &count, err))) return st;
    for (int i = 0; i < count; i++) {
        const hs_param_ref *r = &refs[i];
        if (r->buffer || r->layer < tape->first || r->layer >= tape->last || !*r->grad)
            continue;
        if (*r->grad < lo || *r->grad >= hi) continue; /* not trained: not in the span */
        size_t at = (size_t)(*r->grad - lo), k = (size_t)(r->layer - tape->first);
        if (at < s->ready_from[k]) s->ready_from[k] = at;
    }
    free(refs);
    for (int k = layers - 1; k >= 0; k--)
        if (s->ready_from[k + 1] < s->ready_from[k]) s->ready_from[k] = s->ready_from[k + 1];
    tape->grads_ready = grads_ready;
    tape->grads_ready_ctx = s;
    return HS_OK;
}

void hs_grad_sync_free(hs_grad_sync *s) {
    hs_dist_reducer_free(&s->reducer);
    free(s->ready_from);
    memset(s, 0, sizeof *s);
}
