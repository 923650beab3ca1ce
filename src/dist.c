/* What the MPI and single-process worlds share (dist.h). */
#include "dist.h"

void hs_dist_share(int64_t n, int rank, int world, int64_t *lo, int64_t *hi) {
    if (world < 1) world = 1;
    /* rank * n / world rounds down, so shard sizes differ by at most one and tile [0, n). */
    *lo = n * rank / world;
    *hi = n * (rank + 1) / world;
}
