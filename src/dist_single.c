/* The single-process world (dist.h), built when the build has no MPI (-DHS_MPI=OFF): rank 0
 * of 1, so every collective is a no-op or a local call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "error.h"

int hs_dist_compiled(void) { return 0; }

hs_status hs_dist_init(hs_context *ctx, int *argc, char ***argv, hs_error *err) {
    (void)argc;
    (void)argv;
    ctx->rank = 0;
    ctx->world_size = 1;
    ctx->comm = NULL;
    /* Started by a launcher with more than one rank, this build would run the whole job in
     * every process, each writing the same run folder: refuse instead. */
    const char *size = getenv("OMPI_COMM_WORLD_SIZE");
    if (!size) size = getenv("PMI_SIZE");
    if (size && strcmp(size, "1") != 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "started as one of %s ranks, but this headstart "
                       "was built without MPI (cmake -DHS_MPI=ON)", size);
    return HS_OK;
}

void hs_dist_finalize(hs_context *ctx) { (void)ctx; }

void hs_dist_abort(const hs_context *ctx, int code) {
    (void)ctx;
    _Exit(code);
}

hs_status hs_dist_barrier(const hs_context *ctx, hs_error *err) {
    (void)ctx;
    (void)err;
    return HS_OK;
}

hs_status hs_dist_agree(const hs_context *ctx, hs_status status, hs_error *err) {
    (void)ctx;
    (void)err;
    return status;
}

hs_status hs_dist_sum_floats(const hs_context *ctx, float *values, size_t n, hs_error *err) {
    (void)ctx;
    (void)values;
    (void)n;
    (void)err;
    return HS_OK;
}

hs_status hs_dist_sum_doubles(const hs_context *ctx, double *values, size_t n,
                              hs_error *err) {
    (void)ctx;
    (void)values;
    (void)n;
    (void)err;
    return HS_OK;
}

hs_status hs_dist_broadcast(const hs_context *ctx, void *data, size_t bytes, int root,
                            hs_error *err) {
    (void)ctx;
    (void)data;
    (void)bytes;
    (void)err;
    return root == 0 ? HS_OK : hs_fail(err, HS_ERR_INTERNAL, "broadcast from rank %d of 1", root);
}

hs_status hs_dist_same(const hs_context *ctx, uint64_t value, int *same, hs_error *err) {
    (void)ctx;
    (void)value;
    (void)err;
    *same = 1;
    return HS_OK;
}

hs_status hs_dist_gather(const hs_context *ctx, const void *data, size_t bytes,
                         hs_dist_receive_fn receive, void *receive_ctx, hs_error *err) {
    (void)ctx;
    return receive(receive_ctx, 0, data, bytes, 0, err);
}

hs_status hs_dist_reducer_init(hs_dist_reducer *r, const hs_context *ctx, float *base,
                               size_t count, hs_error *err) {
    (void)err;
    memset(r, 0, sizeof *r);
    r->ctx = ctx;
    r->base = base;
    r->count = count;
    return HS_OK;
}

void hs_dist_reducer_free(hs_dist_reducer *r) { memset(r, 0, sizeof *r); }

void hs_dist_reducer_begin(hs_dist_reducer *r) { r->wait_seconds = 0; }

void hs_dist_reducer_ready(hs_dist_reducer *r, size_t from) {
    (void)r;
    (void)from;
}

hs_status hs_dist_reducer_finish(hs_dist_reducer *r, hs_error *err) {
    (void)r;
    (void)err;
    return HS_OK;
}
