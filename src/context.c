#include "context.h"

#include <string.h>

void hs_context_init(hs_context *ctx) {
    memset(ctx, 0, sizeof *ctx);
    ctx->backend = HS_BACKEND_CPU;
    ctx->world_size = 1;
}

void hs_context_dnnl_release(hs_context *ctx); /* conv_dnnl.c */

void hs_context_release(hs_context *ctx) {
    hs_context_dnnl_release(ctx);
    /* The world is hs_dist_finalize's to end, not this: it stays as it was. */
    int rank = ctx->rank, world = ctx->world_size, owner = ctx->dist_owner;
    void *comm = ctx->comm;
    hs_context_init(ctx);
    ctx->rank = rank;
    ctx->world_size = world;
    ctx->comm = comm;
    ctx->dist_owner = owner;
}

hs_context *hs_context_default(void) {
    static hs_context ctx;
    static int ready;
#pragma omp critical(hs_context_default)
    if (!ready) {
        hs_context_init(&ctx);
        ready = 1;
    }
    return &ctx;
}
