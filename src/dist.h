/* Data-parallel runs over several processes (ranks): the few collective operations training
 * needs, on MPI when the build has it (-DHS_MPI=ON) and as a single process otherwise, so the
 * rest of the code calls dist_* and never asks which.
 *
 * The world lives in the context (context.h: rank, world_size, comm), not in globals: a
 * context that hs_dist_init never saw is rank 0 of 1, and every call below is then a local
 * no-op (or a copy), which is what the single-process build compiles too.
 *
 * Every collective must be entered by every rank in the same order. A rank that fails
 * between two collectives must still reach the next one, or the others wait for it forever:
 * the rule the callers follow is to pass each local status through hs_dist_agree before the
 * next collective step, so that all ranks learn of any failure at once and stop together. A
 * rank that dies (killed, out of memory) never reaches it: mpirun's default policy then ends
 * the whole job. */
#ifndef HS_DIST_H
#define HS_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"
#include "headstart.h"

/* Floats per bucket of a gradient all-reduce: 4 MiB, large enough that the per-call latency
 * is small against the bytes sent, small enough not to need a second arena-sized buffer. */
#define HS_DIST_BUCKET_FLOATS ((size_t)1 << 20)
/* The largest piece a gather moves at once (MPI counts are ints). */
#define HS_DIST_CHUNK_BYTES ((size_t)64 << 20)

/* 1 when this build talks MPI. */
int hs_dist_compiled(void);

/* Joins the MPI world when the process was started by a launcher (mpirun, srun: their
 * environment says so), filling ctx->rank, world_size and comm; a process started alone stays
 * rank 0 of 1 without touching MPI. Call once, before threads start. */
hs_status hs_dist_init(hs_context *ctx, int *argc, char ***argv, hs_error *err);
/* Leaves the MPI world (after the last collective). */
void hs_dist_finalize(hs_context *ctx);
/* Ends every rank of the job at once with exit code `code` (for a rank that cannot reach the
 * next collective; normal failures go through hs_dist_agree). */
void hs_dist_abort(const hs_context *ctx, int code);

static inline int hs_dist_rank(const hs_context *ctx) { return ctx ? ctx->rank : 0; }
static inline int hs_dist_world(const hs_context *ctx) { return ctx ? ctx->world_size : 1; }
static inline int hs_dist_is_root(const hs_context *ctx) { return hs_dist_rank(ctx) == 0; }

/* The first [lo, hi) of n items that rank `rank` of `world` takes: contiguous, in rank order,
 * sizes differing by at most one. */
void hs_dist_share(int64_t n, int rank, int world, int64_t *lo, int64_t *hi);

hs_status hs_dist_barrier(const hs_context *ctx, hs_error *err);

/* Every rank passes its own status (and err, filled when status != HS_OK). All return the
 * same: HS_OK when every rank succeeded; else the code of the lowest failing rank, with its
 * message in err (prefixed with "rank R: " when R is not 0), on every rank. Agreeing again
 * on an agreed failure keeps its message as it is. */
hs_status hs_dist_agree(const hs_context *ctx, hs_status status, hs_error *err);

/* In-place sums over all ranks, in buckets of HS_DIST_BUCKET_FLOATS; every rank gets the
 * same sums. */
hs_status hs_dist_sum_floats(const hs_context *ctx, float *values, size_t n, hs_error *err);
hs_status hs_dist_sum_doubles(const hs_context *ctx, double *values, size_t n, hs_error *err);

/* The gradient all-reduce of a training step, overlapped with backward (llm.c's
 * multi_gpu_async_reduce_gradient, PyTorch DDP's buckets): the flat gradients base[0, count)
 * are cut into buckets of HS_DIST_BUCKET_FLOATS from the top end, because backward finishes
 * the last layers (the highest offsets of the arena) first. As backward reports that
 * everything from some offset up is final (hs_dist_reducer_ready), each bucket lying wholly
 * there is summed by an MPI_Iallreduce while backward goes on below it; finish starts what
 * is left and waits for all. Every rank must post the same buckets in the same order, so a
 * rank whose step failed still calls finish (its sums are then discarded by the step's
 * hs_dist_agree).
 *
 * HS_DIST_OVERLAP=0 in the environment sums the same buckets with a blocking MPI_Allreduce
 * each at finish instead (the reference the tests compare the overlap with, and the bench's
 * all-reduce time). Every rank must see the same value (on other nodes: mpirun -x), since a
 * blocking collective never matches a nonblocking one. With one rank every call is a
 * no-op. */
typedef struct hs_dist_reducer {
    const hs_context *ctx;
    float *base;
    size_t count;
    int overlap;           /* 1: buckets start during backward; 0: all blocking at finish */
    int progress;          /* 1: MPI_Testall between layers (bench_mpi measures without) */
    int buckets, started;  /* started buckets this step, top first */
    int early;             /* of them, started before finish (during backward) */
    void *requests;        /* MPI_Request per bucket (MPI builds) */
    hs_error failure;      /* the first MPI failure of this step, reported by finish */
    /* Seconds this step spent in MPI while backward could not run: the waits at finish and
     * the progress tests between layers (overlap), or the blocking sums. */
    double wait_seconds;
} hs_dist_reducer;

hs_status hs_dist_reducer_init(hs_dist_reducer *r, const hs_context *ctx, float *base,
                               size_t count, hs_error *err);
void hs_dist_reducer_free(hs_dist_reducer *r);
/* A new step: no bucket started. */
void hs_dist_reducer_begin(hs_dist_reducer *r);
/* base[from, count) will not change again this step: starts every bucket inside it that has
 * not started, and lets the ones in flight progress (MPI_Testall: Open MPI moves a
 * nonblocking collective on only inside MPI calls). */
void hs_dist_reducer_ready(hs_dist_reducer *r, size_t from);
/* Starts the buckets not yet started and waits for every one: base then holds the sums. */
hs_status hs_dist_reducer_finish(hs_dist_reducer *r, hs_error *err);

/* Copies `bytes` bytes at data from rank root to every rank. */
hs_status hs_dist_broadcast(const hs_context *ctx, void *data, size_t bytes, int root,
                            hs_error *err);

/* 1 on every rank when every rank passed the same value (a check that the ranks' copies of
 * the model have not drifted apart), else 0. */
hs_status hs_dist_same(const hs_context *ctx, uint64_t value, int *same, hs_error *err);

/* Receives one piece of rank `rank`'s block (offset bytes into it) on the root. Returning
 * non-zero stops the gather on the root only: it still drains the other ranks' blocks so
 * that none of them waits, and hs_dist_gather returns that status on the root. */
typedef hs_status (*hs_dist_receive_fn)(void *ctx, int rank, const void *data, size_t bytes,
                                        size_t offset, hs_error *err);

/* Gathers every rank's block (of any size, 0 included) onto rank 0, handing it to receive in
 * rank order, in pieces of at most HS_DIST_CHUNK_BYTES, so that the root never holds more
 * than one piece of another rank's block (rank 0's own block is handed over as is). Other
 * ranks return once their block is sent. Collective: every rank calls it. */
hs_status hs_dist_gather(const hs_context *ctx, const void *data, size_t bytes,
                         hs_dist_receive_fn receive, void *receive_ctx, hs_error *err);

#endif
