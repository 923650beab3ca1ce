/* Moving weights between a network and a state dict, by PyTorch's parameter names.
 *
 * Loading is strict, as torchvision's load_state_dict is: every parameter of the backbone
 * must be in the file with the same shape, and the file may hold nothing the network does not
 * know (BatchNorm's num_batches_tracked aside). A replaced head is the one exception: its
 * parameters are taken when the file has them in the new head's shape (a headstart model), and
 * otherwise left as initialised (an ImageNet file, whose 1000-class head is discarded). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "net.h"

/* Up to this many names are listed in a mismatch message; the rest are counted. */
#define MAX_LISTED 6

typedef struct problem_list {
    char text[700];
    int count;
} problem_list;

static void note_problem(problem_list *p, const char *fmt, const char *key, const char *detail) {
    if (p->count++ >= MAX_LISTED) return;
    size_t used = strlen(p->text);
    snprintf(p->text + used, sizeof p->text - used, fmt, p->count > 1 ? ", " : "", key, detail);
}

static void format_shape(char *out, size_t size, int ndim, const int64_t *shape) {
    size_t used = (size_t)snprintf(out, size, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, i ? ", %lld" : "%lld",
                                 (long long)shape[i]);
    if (used < size) snprintf(out + used, size - used, "]");
}

static int same_shape(const hs_param_ref *ref, const hs_sd_entry *e) {
    if (ref->ndim != e->ndim) return 0;
    for (int i = 0; i < ref->ndim; i++)
        if (ref->shape[i] != e->shape[i]) return 0;
    return 1;
}

static int is_head_layer(const hs_net *net, int layer) {
    return net->head_begin >= 0 && layer >= net->head_begin;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int known_key(const hs_param_ref *refs, int count, const char *key) {
    for (int i = 0; i < count; i++)
        if (strcmp(refs[i].key, key) == 0) return 1;
    return 0;
}

static hs_status report(hs_error *err, const char *source, const char *what,
                        const problem_list *p) {
    if (p->count > MAX_LISTED)
        return hs_fail(err, HS_ERR_MISMATCH, "%s does not fit this network: %s %s and %d more",
                       source, what, p->text, p->count - MAX_LISTED);
    return hs_fail(err, HS_ERR_MISMATCH, "%s does not fit this network: %s %s", source, what,
                   p->text);
}

hs_status hs_net_load_state_dict(hs_net *net, const hs_state_dict *sd, const char *source,
                                 hs_error *err) {
    hs_param_ref *refs = NULL;
    int count = 0;
    hs_status st = hs_net_params(net, &refs, &count, err);
    if (st) return st;

    /* First check everything, so a failed load leaves the network as it was. */
    problem_list missing = {{0}, 0}, shapes = {{0}, 0}, unexpected = {{0}, 0};
    for (int i = 0; i < count; i++) {
        const hs_sd_entry *e = hs_sd_find(sd, refs[i].key);
        int head = is_head_layer(net, refs[i].layer);
        if (!e) {
            if (!head) note_problem(&missing, "%s%s%s", refs[i].key, "");
        } else if (!same_shape(&refs[i], e) && !head) {
            char want[96], got[96], detail[220];
            format_shape(want, sizeof want, refs[i].ndim, refs[i].shape);
            format_shape(got, sizeof got, e->ndim, e->shape);
            snprintf(detail, sizeof detail, " is %s in the file, %s here", got, want);
            note_problem(&shapes, "%s%s%s", refs[i].key, detail);
        }
    }
    for (size_t i = 0; i < sd->count; i++) {
        const char *key = sd->entries[i].name;
        if (!known_key(refs, count, key) && !ends_with(key, ".num_batches_tracked") &&
            strcmp(key, "num_batches_tracked") != 0)
            note_problem(&unexpected, "%s%s%s", key, "");
    }
    if (missing.count) st = report(err, source, "missing", &missing);
    else if (shapes.count) st = report(err, source, "shapes differ:", &shapes);
    else if (unexpected.count) st = report(err, source, "unexpected keys", &unexpected);
    if (st) {
        free(refs);
        return st;
    }

    for (int i = 0; i < count; i++) {
        const hs_sd_entry *e = hs_sd_find(sd, refs[i].key);
        if (!e || !same_shape(&refs[i], e)) continue; /* a replaced head keeps its init */
        if (!*refs[i].data) {
            free(refs);
            return hs_fail(err, HS_ERR_INTERNAL, "%s has no storage", refs[i].key);
        }
        memcpy(*refs[i].data, e->data, (size_t)hs_param_numel(&refs[i]) * sizeof(float));
    }
    free(refs);
    net->prepared = 0;
    return HS_OK;
}

hs_status hs_net_state_dict(const hs_net *net, hs_state_dict *out, hs_error *err) {
    hs_param_ref *refs = NULL;
    int count = 0;
    hs_status st = hs_net_params((hs_net *)net, &refs, &count, err);
    if (st) return st;
    for (int i = 0; i < count && !st; i++) {
        if (!*refs[i].data) {
            st = hs_fail(err, HS_ERR_INTERNAL, "%s has no values", refs[i].key);
            break;
        }
        st = hs_sd_add_copy(out, refs[i].key, refs[i].ndim, refs[i].shape, *refs[i].data, err);
    }
    free(refs);
    return st;
}
