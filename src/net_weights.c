/* Moving weights between a network and a state dict, by PyTorch's parameter names.
 *
 * Loading is strict, as torchvision's load_state_dict is: every parameter of the backbone
 * must be in the file with the same shape, and the file may hold nothing the network does not
 * know (BatchNorm's num_batches_tracked aside). A replaced head is the one exception: its
 * parameters are taken when the file has them in the new head's shape (a headstart model), and
 * otherwise left as initialised (an ImageNet file, whose 1000-class head is discarded).
 *
 * Two namings are read: torchvision's (hs_param_ref.key) and timm's (timm_key, from the
 * layer's timm_name, with the last component rewritten through timm_suffix_alias). The file's
 * naming is decided once, by its first parameter, and then every tensor is taken by that
 * naming: a file never mixes the two. A mismatch names the net, the naming, the first keys
 * that differ with the shapes expected and found, and, when the file holds exactly another
 * known backbone's tensors, which one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbones.h"
#include "error.h"
#include "net.h"

/* Up to this many names are listed in a mismatch message; the rest are counted. */
#define MAX_LISTED 6

/* timm names some tensors with another last component than torchvision. The key a layer
 * gives (net.c: timm_name + "." + suffix) is rewritten through this table when a file is
 * read in timm's naming. Keyed by torchvision's suffix; add a row when a net needs one. */
static const struct {
    const char *torchvision, *timm;
} timm_suffix_alias[] = {
    {"layer_scale", "gamma"}, /* ConvNeXt's layer scale: CNBlock.layer_scale = Block.gamma */
};

/* The two namings a file may use. */
typedef enum naming { NAMING_TORCHVISION = 0, NAMING_TIMM = 1 } naming;

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

/* The shape without its trailing 1-sized dimensions: the number of dimensions left. */
static int trimmed_ndim(int ndim, const int64_t *shape) {
    while (ndim > 0 && shape[ndim - 1] == 1) ndim--;
    return ndim;
}

/* Equal shapes, or shapes that differ only by trailing 1-sized dimensions (timm stores
 * ConvNeXt's layer scale as [C], torchvision as [C, 1, 1]): the same values in the same
 * order either way. */
static int same_shape(const hs_param_ref *ref, const hs_sd_entry *e) {
    int a = trimmed_ndim(ref->ndim, ref->shape), b = trimmed_ndim(e->ndim, e->shape);
    if (a != b) return 0;
    for (int i = 0; i < a; i++)
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

/* Rewrites every ref's timm_key through timm_suffix_alias. */
static void apply_timm_aliases(hs_param_ref *refs, int count) {
    for (int i = 0; i < count; i++) {
        char *key = refs[i].timm_key;
        char *dot = strrchr(key, '.');
        if (!dot) continue;
        for (size_t a = 0; a < sizeof timm_suffix_alias / sizeof timm_suffix_alias[0]; a++) {
            if (strcmp(dot + 1, timm_suffix_alias[a].torchvision) != 0) continue;
            size_t room = sizeof refs[i].timm_key - (size_t)(dot + 1 - key);
            snprintf(dot + 1, room, "%s", timm_suffix_alias[a].timm);
            break;
        }
    }
}

static const char *key_of(const hs_param_ref *ref, naming n) {
    return n == NAMING_TIMM ? ref->timm_key : ref->key;
}

/* The naming of the file: torchvision's unless the first parameter is absent under its
 * torchvision key and present under its timm key. (The first backbone tensor, the stem
 * convolution, exists in every net; a replaced head is never first.) */
static naming file_naming(const hs_param_ref *refs, int count, const hs_state_dict *sd) {
    if (count == 0 || hs_sd_find(sd, refs[0].key)) return NAMING_TORCHVISION;
    if (strcmp(refs[0].key, refs[0].timm_key) != 0 && hs_sd_find(sd, refs[0].timm_key))
        return NAMING_TIMM;
    return NAMING_TORCHVISION;
}

static int is_batch_counter(const char *key) {
    return ends_with(key, ".num_batches_tracked") || strcmp(key, "num_batches_tracked") == 0;
}

/* Whether the file's tensor names and shapes are exactly those of refs (of one naming),
 * ignoring layers at or after skip_from (a head that may differ). */
static int fits_exactly(const hs_param_ref *refs, int count, naming n, int skip_from,
                        const hs_state_dict *sd) {
    size_t used = 0;
    for (int i = 0; i < count; i++) {
        const hs_sd_entry *e = hs_sd_find(sd, key_of(&refs[i], n));
        if (e) used++;
        if (refs[i].layer >= skip_from) continue;
        if (!e || !same_shape(&refs[i], e)) return 0;
    }
    size_t counters = 0;
    for (size_t i = 0; i < sd->count; i++) counters += is_batch_counter(sd->entries[i].name);
    return used + counters == sd->count;
}

/* A backbone other than this one whose backbone tensors the file holds exactly, in either
 * naming: how a ResNet-50 file given for ResNet-18 says what it is. Only the layer lists
 * are built (no weights are allocated), and only when a load has already failed. */
static const char *which_backbone(const hs_net *net, const hs_state_dict *sd) {
    for (int b = 0; b < hs_backbone_count(); b++) {
        const hs_backbone_info *info = hs_backbone_at(b);
        if (info == net->info) continue;
        hs_net other;
        memset(&other, 0, sizeof other);
        hs_param_ref *refs = NULL;
        int count = 0, fits = 0;
        if (hs_build_backbone(&other, info, NULL) == HS_OK &&
            hs_net_params(&other, &refs, &count, NULL) == HS_OK) {
            apply_timm_aliases(refs, count);
            fits = fits_exactly(refs, count, NAMING_TORCHVISION, other.feature_end, sd) ||
                   fits_exactly(refs, count, NAMING_TIMM, other.feature_end, sd);
        }
        free(refs);
        hs_net_release(&other);
        if (fits) return info->name;
    }
    return NULL;
}

static hs_status report(hs_error *err, const hs_net *net, const hs_state_dict *sd,
                        const char *source, naming n, const char *what,
                        const problem_list *p) {
    char more[32] = "", hint[160] = "";
    if (p->count > MAX_LISTED) snprintf(more, sizeof more, " and %d more", p->count - MAX_LISTED);
    const char *other = which_backbone(net, sd);
    if (other)
        snprintf(hint, sizeof hint, ", it holds the weights of %s (--backbone %s)", other,
                 other);
    /* The guess first: the list of keys after it may be cut at the message's end. */
    return hs_fail(err, HS_ERR_MISMATCH, "%s does not fit %s (%s names)%s: %s %s%s", source,
                   net->info ? net->info->name : "this network",
                   n == NAMING_TIMM ? "timm" : "torchvision", hint, what, p->text, more);
}

hs_status hs_net_load_state_dict(hs_net *net, const hs_state_dict *sd, const char *source,
                                 hs_error *err) {
    hs_param_ref *refs = NULL;
    int count = 0;
    hs_status st = hs_net_params(net, &refs, &count, err);
    if (st) return st;
    apply_timm_aliases(refs, count);
    naming n = file_naming(refs, count, sd);

    /* First check everything, so a failed load leaves the network as it was. The state dict
     * finds names through a hash table, so every check here is O(tensors). */
    problem_list missing = {{0}, 0}, shapes = {{0}, 0}, unexpected = {{0}, 0};
    size_t known = 0; /* file tensors that some parameter takes */
    for (int i = 0; i < count; i++) {
        const char *key = key_of(&refs[i], n);
        const hs_sd_entry *e = hs_sd_find(sd, key);
        int head = is_head_layer(net, refs[i].layer);
        char want[96], got[96], detail[220];
        format_shape(want, sizeof want, refs[i].ndim, refs[i].shape);
        if (e) known++;
        if (!e) {
            snprintf(detail, sizeof detail, " %s", want);
            if (!head) note_problem(&missing, "%s%s%s", key, detail);
        } else if (!same_shape(&refs[i], e) && !head) {
            format_shape(got, sizeof got, e->ndim, e->shape);
            snprintf(detail, sizeof detail, " is %s in the file, %s here", got, want);
            note_problem(&shapes, "%s%s%s", key, detail);
        }
    }
    size_t counters = 0;
    for (size_t i = 0; i < sd->count; i++) counters += is_batch_counter(sd->entries[i].name);
    if (known + counters < sd->count) {
        /* Only then find which: a set of this net's keys makes that O(tensors) too. */
        hs_state_dict names;
        hs_sd_init(&names);
        int64_t one = 1;
        for (int i = 0; i < count && !st; i++)
            if (!hs_sd_find(&names, key_of(&refs[i], n)))
                st = hs_sd_add_copy(&names, key_of(&refs[i], n), 1, &one, (const float[]){0},
                                    err);
        for (size_t i = 0; i < sd->count && !st; i++) {
            const hs_sd_entry *e = &sd->entries[i];
            if (hs_sd_find(&names, e->name) || is_batch_counter(e->name)) continue;
            char got[96];
            format_shape(got, sizeof got, e->ndim, e->shape);
            char detail[100];
            snprintf(detail, sizeof detail, " %s", got);
            note_problem(&unexpected, "%s%s%s", e->name, detail);
        }
        hs_sd_free(&names);
    }
    if (st) {
    } else if (missing.count) {
        st = report(err, net, sd, source, n, "missing", &missing);
    } else if (shapes.count) {
        st = report(err, net, sd, source, n, "shapes differ:", &shapes);
    } else if (unexpected.count) {
        st = report(err, net, sd, source, n, "unexpected keys", &unexpected);
    }
    if (st) {
        free(refs);
        return st;
    }

    for (int i = 0; i < count; i++) {
        const hs_sd_entry *e = hs_sd_find(sd, key_of(&refs[i], n));
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
