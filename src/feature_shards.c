/* Features over several ranks (feature_shards.h). */
#include "feature_shards.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "error.h"

/* ---- a shard's small part: labels, sample indexes, skipped images ------------------------
 * Packed as int32 count, int32 failed count, count labels, count indexes (int32 each), then
 * each skipped image's text with its NUL. */

static hs_status pack(const hs_feature_set *f, char **out, size_t *bytes, hs_error *err) {
    size_t size = 2 * sizeof(int32_t) + (size_t)f->count * 2 * sizeof(int32_t);
    for (int i = 0; i < f->failed_count; i++) size += strlen(f->failed[i]) + 1;
    char *p = malloc(size);
    if (!p) return hs_fail(err, HS_ERR_NOMEM, "out of memory packing a feature shard");
    int32_t head[2] = {f->count, f->failed_count};
    char *at = p;
    memcpy(at, head, sizeof head);
    at += sizeof head;
    for (int i = 0; i < f->count; i++, at += sizeof(int32_t)) {
        int32_t v = f->labels[i];
        memcpy(at, &v, sizeof v);
    }
    for (int i = 0; i < f->count; i++, at += sizeof(int32_t)) {
        int32_t v = f->sample_index[i];
        memcpy(at, &v, sizeof v);
    }
    for (int i = 0; i < f->failed_count; i++) {
        size_t n = strlen(f->failed[i]) + 1;
        memcpy(at, f->failed[i], n);
        at += n;
    }
    *out = p;
    *bytes = size;
    return HS_OK;
}

/* Appends a packed shard to set (labels, indexes, skipped images; no rows). The blob comes
 * from another rank of this job, but every size is still checked before it is used. */
static hs_status unpack_append(hs_feature_set *set, const char *blob, size_t bytes,
                               hs_error *err) {
    int32_t head[2];
    if (bytes < sizeof head) return hs_fail(err, HS_ERR_INTERNAL, "a feature shard is truncated");
    memcpy(head, blob, sizeof head);
    int32_t count = head[0], failed = head[1];
    if (count < 0 || failed < 0 || count > INT32_MAX - set->count ||
        failed > INT32_MAX - set->failed_count ||
        (size_t)count * 2 * sizeof(int32_t) > bytes - sizeof head)
        return hs_fail(err, HS_ERR_INTERNAL, "a feature shard has a bad size");
    int total = set->count + count;
    int *labels = realloc(set->labels, (size_t)(total ? total : 1) * sizeof(int));
    if (labels) set->labels = labels;
    int *index = labels ? realloc(set->sample_index, (size_t)(total ? total : 1) * sizeof(int))
                        : NULL;
    if (index) set->sample_index = index;
    char **names = index ? realloc(set->failed, (size_t)(set->failed_count + failed + 1) *
                                                    sizeof(char *))
                         : NULL;
    if (names) set->failed = names;
    if (!names) return hs_fail(err, HS_ERR_NOMEM, "out of memory assembling features");
    const char *at = blob + sizeof head;
    for (int i = 0; i < count; i++, at += sizeof(int32_t)) {
        int32_t v;
        memcpy(&v, at, sizeof v);
        set->labels[set->count + i] = v;
    }
    for (int i = 0; i < count; i++, at += sizeof(int32_t)) {
        int32_t v;
        memcpy(&v, at, sizeof v);
        set->sample_index[set->count + i] = v;
    }
    set->count = total;
    const char *end = blob + bytes;
    for (int i = 0; i < failed; i++) {
        const char *nul = memchr(at, '\0', (size_t)(end - at));
        if (!nul) return hs_fail(err, HS_ERR_INTERNAL, "a feature shard is truncated");
        if (!(set->failed[set->failed_count] = strdup(at)))
            return hs_fail(err, HS_ERR_NOMEM, "out of memory assembling features");
        set->failed_count++;
        at = nul + 1;
    }
    return HS_OK;
}

/* The root's collection of every rank's packed shard, back to back. */
typedef struct blobs {
    char *data;
    size_t size, capacity;
    size_t *start; /* world + 1: rank r's blob is data[start[r], start[r + 1]) */
    int world;
} blobs;

static hs_status blobs_receive(void *ctx, int rank, const void *data, size_t bytes,
                               size_t offset, hs_error *err) {
    blobs *b = ctx;
    if (offset == 0) b->start[rank] = b->size;
    if (bytes > b->capacity - b->size) {
        size_t capacity = b->capacity ? b->capacity : 4096;
        while (capacity - b->size < bytes) capacity *= 2;
        char *grown = realloc(b->data, capacity);
        if (!grown) return hs_fail(err, HS_ERR_NOMEM, "out of memory gathering features");
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->size, data, bytes);
    b->size += bytes;
    for (int r = rank + 1; r <= b->world; r++) b->start[r] = b->size;
    return HS_OK;
}

/* ---- the rows ------------------------------------------------------------------------------ */

/* Where the root puts the rows as they arrive: appended to the cache writer (rows split
 * between two pieces are carried over), or copied into every row's place in memory. */
typedef struct rows_sink {
    hs_cache_writer *writer;
    float *full;            /* in memory: count x dim */
    const int *rank_row;    /* in memory: rank r's first row */
    size_t row_bytes;
    float *carry;           /* one row */
    size_t carry_bytes;
    int failed;             /* the writer failed: the cache cannot be used */
    hs_error error;
} rows_sink;

static hs_status append(rows_sink *s, const void *rows, size_t n, hs_error *err) {
    if (hs_cache_writer_append(s->writer, rows, (int)n, &s->error) == HS_OK) return HS_OK;
    s->failed = 1;
    return hs_fail(err, s->error.code, "%s", s->error.message);
}

static hs_status rows_receive(void *ctx, int rank, const void *data, size_t bytes,
                              size_t offset, hs_error *err) {
    rows_sink *s = ctx;
    if (!s->writer) {
        memcpy((char *)s->full + (size_t)s->rank_row[rank] * s->row_bytes + offset, data, bytes);
        return HS_OK;
    }
    const char *p = data;
    if (s->carry_bytes) {
        size_t take = s->row_bytes - s->carry_bytes < bytes ? s->row_bytes - s->carry_bytes
                                                            : bytes;
        memcpy((char *)s->carry + s->carry_bytes, p, take);
        s->carry_bytes += take;
        p += take;
        bytes -= take;
        if (s->carry_bytes < s->row_bytes) return HS_OK;
        s->carry_bytes = 0;
        hs_status st = append(s, s->carry, 1, err);
        if (st) return st;
    }
    /* Pieces are whole floats (HS_DIST_CHUNK_BYTES and rows are multiples of 4): p stays
     * float-aligned. */
    size_t whole = bytes / s->row_bytes;
    for (size_t done = 0; done < whole; done += 65536) {
        size_t n = whole - done < 65536 ? whole - done : 65536;
        hs_status st = append(s, p + done * s->row_bytes, n, err);
        if (st) return st;
    }
    size_t rest = bytes - whole * s->row_bytes;
    memcpy(s->carry, p + whole * s->row_bytes, rest);
    s->carry_bytes = rest;
    return HS_OK;
}

/* ---- the whole -------------------------------------------------------------------------- */

/* Writes the entry on the root from every rank's rows. *written: 1 when it is in place. A
 * cache that cannot be written is not an error (the caller computes in memory); a failed
 * transfer is. */
static hs_status write_entry(const hs_context *ctx, const hs_shared_cache *cache,
                             const hs_feature_set *shard, const hs_feature_set *meta, int dim,
                             int *written, char *cause, size_t cause_size, hs_error *err) {
    int root = hs_dist_is_root(ctx), opened = 0;
    rows_sink sink = {0};
    sink.row_bytes = (size_t)dim * sizeof(float);
    if (root) {
        sink.carry = malloc(sink.row_bytes);
        if (!sink.carry) sink.error = (hs_error){HS_ERR_NOMEM, "out of memory"};
        else opened = hs_cache_writer_open(cache->dir, cache->key, cache->source, dim,
                                           cache->precision, &sink.writer, &sink.error) == HS_OK;
        if (!opened) snprintf(cause, cause_size, "%s", sink.error.message);
    }
    hs_status st = hs_dist_broadcast(ctx, &opened, sizeof opened, 0, err);
    if (!st && opened) {
        st = hs_dist_gather(ctx, shard->owned, (size_t)shard->count * sink.row_bytes,
                            rows_receive, &sink, err);
        if (root) {
            if (st || sink.carry_bytes) {
                hs_cache_writer_abort(sink.writer);
                if (sink.failed) snprintf(cause, cause_size, "%s", sink.error.message);
                if (sink.failed) st = HS_OK; /* the cache's failure, not the job's */
            } else if (hs_cache_writer_commit(sink.writer, meta, &sink.error)) {
                snprintf(cause, cause_size, "%s", sink.error.message);
            } else {
                *written = 1;
            }
        }
    }
    free(sink.carry);
    if ((st = hs_dist_agree(ctx, st, err))) return st;
    return hs_dist_broadcast(ctx, written, sizeof *written, 0, err);
}

/* Every rank receives every row (and the small parts) from the root. */
static hs_status share_in_memory(const hs_context *ctx, hs_feature_set *shard,
                                 hs_feature_set *full, const blobs *b, int dim,
                                 hs_error *err) {
    int root = hs_dist_is_root(ctx), world = hs_dist_world(ctx);
    size_t row_bytes = (size_t)dim * sizeof(float);
    int *rank_row = calloc((size_t)world + 1, sizeof(int));
    rows_sink sink = {0};
    char *packed = NULL;
    uint64_t packed_bytes = 0;
    hs_status st = rank_row ? HS_OK : hs_fail(err, HS_ERR_NOMEM, "out of memory");
    if (!st && root) {
        /* Each rank's first row: the counts of the ranks before it. */
        for (int r = 0; r < world; r++) {
            int32_t count = 0;
            memcpy(&count, b->data + b->start[r], sizeof count);
            rank_row[r + 1] = rank_row[r] + count;
        }
        full->values = full->owned = malloc((size_t)(full->count ? full->count : 1) * row_bytes);
        if (!full->owned)
            st = hs_fail(err, HS_ERR_NOMEM, "out of memory for %d feature vectors of %d floats",
                         full->count, dim);
    }
    if ((st = hs_dist_agree(ctx, st, err))) goto done;
    sink.full = full->owned;
    sink.rank_row = rank_row;
    sink.row_bytes = row_bytes;
    st = hs_dist_gather(ctx, shard->owned, (size_t)shard->count * row_bytes, rows_receive,
                        &sink, err);
    hs_feature_set_free(shard); /* sent: only the whole is kept from here on */
    if ((st = hs_dist_agree(ctx, st, err))) goto done;

    /* The small parts, then the rows, from the root to the others. */
    if (root) {
        size_t n = 0;
        st = pack(full, &packed, &n, err);
        packed_bytes = n;
    }
    if ((st = hs_dist_agree(ctx, st, err))) goto done;
    if ((st = hs_dist_broadcast(ctx, &packed_bytes, sizeof packed_bytes, 0, err))) goto done;
    if (!root && !(packed = malloc(packed_bytes ? (size_t)packed_bytes : 1)))
        st = hs_fail(err, HS_ERR_NOMEM, "out of memory receiving features");
    if (!(st = hs_dist_agree(ctx, st, err)))
        st = hs_dist_broadcast(ctx, packed, (size_t)packed_bytes, 0, err);
    if (!st && !root) st = unpack_append(full, packed, (size_t)packed_bytes, err);
    if (!st && !root) {
        full->values = full->owned = malloc((size_t)(full->count ? full->count : 1) * row_bytes);
        if (!full->owned)
            st = hs_fail(err, HS_ERR_NOMEM, "out of memory for %d feature vectors of %d floats",
                         full->count, dim);
    }
    if (!(st = hs_dist_agree(ctx, st, err)))
        st = hs_dist_broadcast(ctx, full->owned, (size_t)full->count * row_bytes, 0, err);
done:
    free(packed);
    free(rank_row);
    return st;
}

hs_status hs_extract_features_shared(const hs_context *ctx, hs_net *net, int boundary,
                                     const hs_dataset *ds, const hs_feature_options *options,
                                     const hs_shared_cache *cache, int dim,
                                     hs_feature_set *out, int *cache_failed, char *cause,
                                     size_t cause_size, hs_error *err) {
    memset(out, 0, sizeof *out);
    *cache_failed = 0;
    cause[0] = '\0';
    int root = hs_dist_is_root(ctx), world = hs_dist_world(ctx);
    int64_t lo = 0, hi = 0;
    hs_dist_share(ds->count, hs_dist_rank(ctx), world, &lo, &hi);
    hs_feature_options o = *options;
    o.sink = NULL; /* the shard stays in memory until it is sent */
    o.sink_ctx = NULL;
    o.sharded = 1;
    o.shard_first = (int)lo;
    o.shard_count = (int)(hi - lo);
    hs_feature_set shard = {0}, full = {0};
    char *packed = NULL;
    size_t packed_bytes = 0;
    blobs b = {0};
    b.world = world;
    hs_status st = hs_extract_features(net, boundary, ds, &o, &shard, err);
    if (!st) st = pack(&shard, &packed, &packed_bytes, err);
    if (!st && root && !(b.start = calloc((size_t)world + 1, sizeof *b.start)))
        st = hs_fail(err, HS_ERR_NOMEM, "out of memory");
    /* A shard that failed anywhere (--strict, Ctrl-C, out of memory) fails every rank. */
    if ((st = hs_dist_agree(ctx, st, err))) goto done;
    st = hs_dist_gather(ctx, packed, packed_bytes, blobs_receive, &b, err);
    full.dim = dim;
    for (int r = 0; !st && root && r < world; r++)
        st = unpack_append(&full, b.data + b.start[r], b.start[r + 1] - b.start[r], err);
    if ((st = hs_dist_agree(ctx, st, err))) goto done;

    if (cache && cache->dir) {
        int written = 0;
        if ((st = write_entry(ctx, cache, &shard, &full, dim, &written, cause, cause_size,
                              err)))
            goto done;
        if (written) {
            hs_feature_set_free(&shard);
            int hit = 0;
            char why[600];
            st = hs_cache_lookup(cache->dir, cache->key, cache->source, ds, dim, out, &hit, why,
                                 sizeof why, err);
            if (!st && !hit)
                st = hs_fail(err, HS_ERR_IO, "cannot read the feature cache entry rank 0 just "
                             "wrote in %s (%s): every rank needs the same cache folder on a "
                             "shared file system (--cache-dir), or pass --no-cache",
                             cache->dir, why);
            st = hs_dist_agree(ctx, st, err);
            goto done;
        }
        *cache_failed = 1;
    }
    if (!(st = share_in_memory(ctx, &shard, &full, &b, dim, err))) {
        *out = full;
        memset(&full, 0, sizeof full);
    }
done:
    hs_feature_set_free(&shard);
    hs_feature_set_free(&full);
    free(packed);
    free(b.data);
    free(b.start);
    return st;
}
