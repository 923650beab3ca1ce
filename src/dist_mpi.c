/* The MPI world (dist.h), built with -DHS_MPI=ON. Only the thread that called hs_dist_init
 * calls MPI (MPI_THREAD_FUNNELED): OpenMP and the batch loader's workers never do. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "error.h"

int hs_dist_compiled(void) { return 1; }

/* A launcher's environment: Open MPI's mpirun, PMIx (srun --mpi=pmix, prterun), PMI-1/2
 * (MPICH's hydra, srun --mpi=pmi2). Without one the process is alone and MPI stays out. */
static int launched(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                                       "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

static MPI_Comm comm_of(const hs_context *ctx) { return *(const MPI_Comm *)ctx->comm; }

static int active(const hs_context *ctx) { return ctx && ctx->comm && ctx->world_size > 1; }

static hs_status mpi_fail(hs_error *err, int rc, const char *what) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "code %d", rc);
    return hs_fail(err, HS_ERR_IO, "MPI %s failed: %s", what, text);
}

hs_status hs_dist_init(hs_context *ctx, int *argc, char ***argv, hs_error *err) {
    ctx->rank = 0;
    ctx->world_size = 1;
    ctx->comm = NULL;
    if (!launched()) return HS_OK;
    int provided = 0;
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "initialisation");
    MPI_Comm *comm = malloc(sizeof *comm);
    if (!comm) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    /* A communicator of our own, whose errors come back as codes instead of aborting. */
    if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, comm)) != MPI_SUCCESS) {
        free(comm);
        return mpi_fail(err, rc, "communicator");
    }
    MPI_Comm_set_errhandler(*comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(*comm, &ctx->rank);
    MPI_Comm_size(*comm, &ctx->world_size);
    ctx->comm = comm;
    ctx->dist_owner = 1;
    return HS_OK;
}

void hs_dist_finalize(hs_context *ctx) {
    if (!ctx->dist_owner) return;
    if (ctx->comm) {
        MPI_Comm_free((MPI_Comm *)ctx->comm);
        free(ctx->comm);
    }
    ctx->comm = NULL;
    ctx->dist_owner = 0;
    MPI_Finalize();
    ctx->rank = 0;
    ctx->world_size = 1;
}

void hs_dist_abort(const hs_context *ctx, int code) {
    if (active(ctx)) MPI_Abort(comm_of(ctx), code);
    _Exit(code);
}

hs_status hs_dist_barrier(const hs_context *ctx, hs_error *err) {
    if (!active(ctx)) return HS_OK;
    int rc = MPI_Barrier(comm_of(ctx));
    return rc == MPI_SUCCESS ? HS_OK : mpi_fail(err, rc, "barrier");
}

hs_status hs_dist_agree(const hs_context *ctx, hs_status status, hs_error *err) {
    if (!active(ctx)) return status;
    int world = ctx->world_size, mine = status ? ctx->rank : world, first = world;
    int rc = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm_of(ctx));
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "status all-reduce");
    if (first == world) return HS_OK;
    /* The lowest failing rank tells everyone its code and message. */
    struct {
        int code;
        char message[HS_ERROR_MESSAGE_SIZE];
    } what;
    memset(&what, 0, sizeof what);
    if (ctx->rank == first) {
        what.code = status;
        if (err) memcpy(what.message, err->message, sizeof what.message);
        what.message[sizeof what.message - 1] = '\0';
    }
    rc = MPI_Bcast(&what, (int)sizeof what, MPI_BYTE, first, comm_of(ctx));
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "status broadcast");
    /* Rank 0's own failures need no prefix: rank 0 is who reports. Nor does a failure all
     * ranks already agreed on (then every rank fails and rank 0 is the lowest). */
    if (first == 0) return hs_fail(err, (hs_status)what.code, "%s", what.message);
    return hs_fail(err, (hs_status)what.code, "rank %d: %s", first, what.message);
}

static hs_status sum(const hs_context *ctx, void *values, size_t n, size_t size,
                     MPI_Datatype type, hs_error *err) {
    if (!active(ctx)) return HS_OK;
    for (size_t done = 0; done < n; done += HS_DIST_BUCKET_FLOATS) {
        size_t count = n - done < HS_DIST_BUCKET_FLOATS ? n - done : HS_DIST_BUCKET_FLOATS;
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)values + done * size, (int)count, type,
                               MPI_SUM, comm_of(ctx));
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "all-reduce");
    }
    return HS_OK;
}

hs_status hs_dist_sum_floats(const hs_context *ctx, float *values, size_t n, hs_error *err) {
    return sum(ctx, values, n, sizeof(float), MPI_FLOAT, err);
}

hs_status hs_dist_sum_doubles(const hs_context *ctx, double *values, size_t n,
                              hs_error *err) {
    return sum(ctx, values, n, sizeof(double), MPI_DOUBLE, err);
}

hs_status hs_dist_broadcast(const hs_context *ctx, void *data, size_t bytes, int root,
                            hs_error *err) {
    if (!active(ctx)) return HS_OK;
    for (size_t done = 0; done < bytes; done += HS_DIST_CHUNK_BYTES) {
        size_t count = bytes - done < HS_DIST_CHUNK_BYTES ? bytes - done : HS_DIST_CHUNK_BYTES;
        int rc = MPI_Bcast((char *)data + done, (int)count, MPI_BYTE, root, comm_of(ctx));
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "broadcast");
    }
    return HS_OK;
}

hs_status hs_dist_same(const hs_context *ctx, uint64_t value, int *same, hs_error *err) {
    *same = 1;
    if (!active(ctx)) return HS_OK;
    uint64_t low = 0, high = 0;
    int rc = MPI_Allreduce(&value, &low, 1, MPI_UINT64_T, MPI_MIN, comm_of(ctx));
    if (rc == MPI_SUCCESS)
        rc = MPI_Allreduce(&value, &high, 1, MPI_UINT64_T, MPI_MAX, comm_of(ctx));
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "all-reduce");
    *same = low == high;
    return HS_OK;
}

enum { TAG_SIZE = 7101, TAG_PIECE = 7102 };

hs_status hs_dist_gather(const hs_context *ctx, const void *data, size_t bytes,
                         hs_dist_receive_fn receive, void *receive_ctx, hs_error *err) {
    if (!active(ctx)) return receive(receive_ctx, 0, data, bytes, 0, err);
    MPI_Comm comm = comm_of(ctx);
    int rc;
    if (ctx->rank != 0) {
        uint64_t size = bytes;
        if ((rc = MPI_Send(&size, 1, MPI_UINT64_T, 0, TAG_SIZE, comm)) != MPI_SUCCESS)
            return mpi_fail(err, rc, "send");
        for (size_t done = 0; done < bytes; done += HS_DIST_CHUNK_BYTES) {
            size_t n = bytes - done < HS_DIST_CHUNK_BYTES ? bytes - done : HS_DIST_CHUNK_BYTES;
            if ((rc = MPI_Send((const char *)data + done, (int)n, MPI_BYTE, 0, TAG_PIECE,
                               comm)) != MPI_SUCCESS)
                return mpi_fail(err, rc, "send");
        }
        return HS_OK;
    }
    hs_status st = receive(receive_ctx, 0, data, bytes, 0, err);
    char *piece = malloc(HS_DIST_CHUNK_BYTES);
    if (!piece) {
        /* Without a buffer the other ranks' blocks cannot be drained: nothing can wait. */
        fprintf(stderr, "headstart: error: out of memory gathering features\n");
        hs_dist_abort(ctx, HS_ERR_NOMEM);
    }
    for (int r = 1; r < ctx->world_size; r++) {
        uint64_t size = 0;
        if ((rc = MPI_Recv(&size, 1, MPI_UINT64_T, r, TAG_SIZE, comm, MPI_STATUS_IGNORE)) !=
            MPI_SUCCESS) {
            st = mpi_fail(err, rc, "receive");
            break;
        }
        for (uint64_t done = 0; done < size; done += HS_DIST_CHUNK_BYTES) {
            size_t n = size - done < HS_DIST_CHUNK_BYTES ? (size_t)(size - done)
                                                         : HS_DIST_CHUNK_BYTES;
            if ((rc = MPI_Recv(piece, (int)n, MPI_BYTE, r, TAG_PIECE, comm,
                               MPI_STATUS_IGNORE)) != MPI_SUCCESS) {
                free(piece);
                return mpi_fail(err, rc, "receive");
            }
            /* After a failure the rest is received and dropped, so no sender blocks. */
            if (!st) st = receive(receive_ctx, r, piece, n, (size_t)done, err);
        }
    }
    free(piece);
    return st;
}

/* ---- The overlapped gradient all-reduce (dist.h) ------------------------------------------ */

static double seconds(void) { return MPI_Wtime(); }

/* Bucket j, top first: [lo, hi) of base. */
static void bucket_span(const hs_dist_reducer *r, int j, size_t *lo, size_t *hi) {
    size_t top = r->count - (size_t)j * HS_DIST_BUCKET_FLOATS;
    *hi = top;
    *lo = top > HS_DIST_BUCKET_FLOATS ? top - HS_DIST_BUCKET_FLOATS : 0;
}

static int overlap_wanted(void) {
    const char *v = getenv("HS_DIST_OVERLAP");
    return !(v && strcmp(v, "0") == 0);
}

hs_status hs_dist_reducer_init(hs_dist_reducer *r, const hs_context *ctx, float *base,
                               size_t count, hs_error *err) {
    memset(r, 0, sizeof *r);
    r->ctx = ctx;
    r->base = base;
    r->count = count;
    r->overlap = overlap_wanted();
    r->progress = 1;
    if (!active(ctx) || count == 0) return HS_OK;
    r->buckets = (int)((count + HS_DIST_BUCKET_FLOATS - 1) / HS_DIST_BUCKET_FLOATS);
    MPI_Request *req = malloc((size_t)r->buckets * sizeof *req);
    if (!req) return hs_fail(err, HS_ERR_NOMEM, "out of memory");
    for (int j = 0; j < r->buckets; j++) req[j] = MPI_REQUEST_NULL;
    r->requests = req;
    return HS_OK;
}

void hs_dist_reducer_free(hs_dist_reducer *r) {
    free(r->requests);
    memset(r, 0, sizeof *r);
}

void hs_dist_reducer_begin(hs_dist_reducer *r) {
    r->started = 0;
    r->early = 0;
    r->wait_seconds = 0;
    r->failure.code = HS_OK;
    r->failure.message[0] = '\0';
}

static void note_failure(hs_dist_reducer *r, int rc, const char *what) {
    if (r->failure.code == HS_OK) mpi_fail(&r->failure, rc, what);
}

/* Starts buckets while the next one lies wholly at or above from. */
static void start_buckets(hs_dist_reducer *r, size_t from) {
    MPI_Request *req = r->requests;
    while (r->started < r->buckets) {
        size_t lo, hi;
        bucket_span(r, r->started, &lo, &hi);
        if (lo < from) break;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, r->base + lo, (int)(hi - lo), MPI_FLOAT, MPI_SUM,
                                comm_of(r->ctx), &req[r->started]);
        if (rc != MPI_SUCCESS) {
            note_failure(r, rc, "gradient all-reduce");
            req[r->started] = MPI_REQUEST_NULL;
        }
        r->started++;
    }
}

void hs_dist_reducer_ready(hs_dist_reducer *r, size_t from) {
    if (!r->requests || !r->overlap) return;
    double t0 = seconds();
    start_buckets(r, from);
    if (r->started > 0 && r->progress) {
        int done = 0;
        int rc = MPI_Testall(r->started, r->requests, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) note_failure(r, rc, "gradient all-reduce");
    }
    r->wait_seconds += seconds() - t0;
}

hs_status hs_dist_reducer_finish(hs_dist_reducer *r, hs_error *err) {
    if (!r->requests) return HS_OK;
    double t0 = seconds();
    r->early = r->overlap ? r->started : 0;
    if (r->overlap) {
        start_buckets(r, 0);
        int rc = MPI_Waitall(r->buckets, r->requests, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) note_failure(r, rc, "gradient all-reduce");
    } else {
        /* The same buckets, in the same order, each a blocking sum. */
        for (int j = 0; j < r->buckets; j++) {
            size_t lo, hi;
            bucket_span(r, j, &lo, &hi);
            int rc = MPI_Allreduce(MPI_IN_PLACE, r->base + lo, (int)(hi - lo), MPI_FLOAT,
                                   MPI_SUM, comm_of(r->ctx));
            if (rc != MPI_SUCCESS) note_failure(r, rc, "gradient all-reduce");
        }
    }
    r->started = r->buckets;
    r->wait_seconds += seconds() - t0;
    if (r->failure.code != HS_OK)
        return hs_fail(err, r->failure.code, "%s", r->failure.message);
    return HS_OK;
}
