/* The cache policy every caller of the feature cache follows when an entry is missing
 * (feature_cache.h, hs_cache_fill): stream the features into a new entry while computing them,
 * then read the entry back, so a first run and a rerun use the same numbers from the same
 * place. A cache that cannot be written or read back never stops the job: the features are
 * computed in memory and the cause is handed back. */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "feature_cache.h"

/* The cache writer as the extraction's sink, remembering its own failure so that a cache
 * that cannot be written is told apart from the job's errors (--strict, Ctrl-C). */
typedef struct cache_sink {
    hs_cache_writer *writer;
    int failed;
    hs_error error;
} cache_sink;

static hs_status cache_sink_append(void *ctx, const float *rows, int n, hs_error *err) {
    cache_sink *c = ctx;
    if (hs_cache_writer_append(c->writer, rows, n, &c->error) == HS_OK) return HS_OK;
    c->failed = 1;
    return hs_fail(err, c->error.code, "%s", c->error.message);
}

static hs_status in_memory(const hs_cache_fill_job *job, hs_feature_options *o,
                           const char *cause, hs_feature_set *out, char *fallback,
                           size_t fallback_size, hs_error *err) {
    snprintf(fallback, fallback_size, "%s", cause);
    hs_feature_set_free(out);
    o->sink = NULL;
    o->sink_ctx = NULL;
    return hs_extract_features(job->net, job->boundary, job->dataset, o, out, err);
}

hs_status hs_cache_fill(const hs_cache_fill_job *job, hs_feature_set *out, char *fallback,
                        size_t fallback_size, hs_error *err) {
    if (fallback_size) fallback[0] = '\0';
    hs_feature_options o = *job->options;
    o.sink = NULL;
    o.sink_ctx = NULL;
    cache_sink sink = {0};
    if (hs_cache_writer_open(job->dir, job->key, job->source, job->dim, job->precision,
                             &sink.writer, &sink.error))
        return in_memory(job, &o, sink.error.message, out, fallback, fallback_size, err);
    o.sink = cache_sink_append;
    o.sink_ctx = &sink;
    hs_status st = hs_extract_features(job->net, job->boundary, job->dataset, &o, out, err);
    if (st) {
        hs_cache_writer_abort(sink.writer);
        return sink.failed
                   ? in_memory(job, &o, sink.error.message, out, fallback, fallback_size, err)
                   : st;
    }
    if (hs_cache_writer_commit(sink.writer, out, &sink.error))
        return in_memory(job, &o, sink.error.message, out, fallback, fallback_size, err);
    hs_feature_set_free(out);
    int hit = 0;
    char why[600];
    if ((st = hs_cache_lookup(job->dir, job->key, job->source, job->dataset, job->dim, out,
                              &hit, why, sizeof why, err)))
        return st;
    if (!hit) {
        char cause[700];
        snprintf(cause, sizeof cause, "the feature cache just written cannot be read: %s", why);
        return in_memory(job, &o, cause, out, fallback, fallback_size, err);
    }
    return HS_OK;
}
