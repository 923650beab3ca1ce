/* The features of a data set computed by several ranks (dist.h): each rank runs the frozen
 * backbone on its contiguous share of the images, then rank 0 assembles the result.
 *
 * With a cache, rank 0 writes the entry one process would write (same key; the rows in data
 * set order, so the same bytes when the backbone gives each image the same numbers), taking
 * its own shard and then each other rank's, in rank order, as the pieces arrive: no rank
 * ever holds more than its own shard and one piece of another. Every rank then reads the
 * entry back (so the cache folder must be one every rank sees: a shared file system).
 * Without a cache, or when the entry cannot be written, every rank receives every row into
 * memory instead, as a single process keeps them.
 *
 * Collective: every rank calls it with the same arguments. */
#ifndef HS_FEATURE_SHARDS_H
#define HS_FEATURE_SHARDS_H

#include "context.h"
#include "feature_cache.h"
#include "feature_set.h"

typedef struct hs_shared_cache {
    const char *dir;               /* the cache's features/ folder; NULL: no cache */
    const char *key, *source;      /* the entry's key and source (feature_cache.h) */
    hs_cache_precision precision;
} hs_shared_cache;

/* o: the options of hs_extract_features (its shard fields are set here). On success out
 * holds every image's features on every rank, mapped from the cache or in memory; when the
 * cache was given but could not be used, *cache_failed = 1 and cause says why (rank 0).
 * Every rank returns the same status. */
hs_status hs_extract_features_shared(const hs_context *ctx, hs_net *net, int boundary,
                                     const hs_dataset *ds, const hs_feature_options *o,
                                     const hs_shared_cache *cache, int dim,
                                     hs_feature_set *out, int *cache_failed, char *cause,
                                     size_t cause_size, hs_error *err);

#endif
