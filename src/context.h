/* Run settings, owned by the caller and passed down instead of process globals (ggml's
 * context, llm.c's MultiGpuConfig): thread count, memory limit, backend, bf16, and the
 * rank and world size of a data-parallel run (dist.h). The oneDNN engine and stream live here
 * too (conv_dnnl.c), made on first use. */
#ifndef HS_CONTEXT_H
#define HS_CONTEXT_H

#include <stddef.h>

typedef enum hs_backend {
    HS_BACKEND_CPU = 0,      /* oneDNN / OpenBLAS fast paths (training included) */
    HS_BACKEND_REFERENCE = 1 /* training passes on the reference kernels (plain loops,
                              * double accumulation): slow, for tests */
} hs_backend;

typedef struct hs_context {
    int threads;          /* 0: OpenMP's default (every core) */
    size_t memory_limit;  /* bytes of activations a run may take; 0: no limit */
    hs_backend backend;
    int bf16;             /* convolutions in bfloat16 where the plan can */
    /* The data-parallel world (dist.h): this process's rank of world_size, and the MPI
     * communicator (an MPI_Comm *) when hs_dist_init joined one; NULL: a single process. */
    int rank, world_size;
    void *comm;
    int dist_owner;       /* hs_dist_init started MPI here: hs_dist_finalize ends it */

    /* oneDNN's engine and stream (dnnl_engine_t / dnnl_stream_t), made on first use by
     * conv_dnnl.c; dnnl_state 0 not tried, 1 ready, -1 failed. */
    void *dnnl_engine, *dnnl_stream;
    int dnnl_state;
} hs_context;

/* Defaults: every core, no limit, CPU, float32, rank 0 of 1. */
void hs_context_init(hs_context *ctx);
/* Frees what the context made (oneDNN engine and stream). */
void hs_context_release(hs_context *ctx);
/* The context of callers that pass none (the public API's networks); lives for the process. */
hs_context *hs_context_default(void);

#endif
