/* Where pretrained weights are looked for, in order: $HEADSTART_WEIGHTS (a folder), ./weights,
 * the source tree's weights/ (where scripts/fetch-weights.sh puts them), headstart's cache
 * ($XDG_CACHE_HOME/headstart/weights or ~/.cache/headstart/weights) and torch's hub cache
 * ($TORCH_HOME/hub/checkpoints or ~/.cache/torch/hub/checkpoints), the folder PyTorch itself
 * downloads torchvision's files into. The backbone's default file is looked for in all of
 * them first, then its other known files (weight_versions.h). Nothing is downloaded:
 * headstart works offline.
 *
 * Last, the Hugging Face hub cache, where timm puts what it downloads ($HF_HUB_CACHE, else
 * $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub):
 *
 *   models--timm--<timm name>[.<tag>]/snapshots/<revision>/model.safetensors
 *
 * The timm name is the backbone's own (resnet50, convnext_tiny, efficientnet_b0) unless
 * timm_names below says otherwise; of several tags or revisions the first in byte order is
 * taken (pass --weights to choose another). The config.json beside such a file brings its
 * preprocessing (pretrained_cfg.h). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "headstart.h"
#include "weight_versions.h"

#ifndef HS_SOURCE_DIR
#define HS_SOURCE_DIR "."
#endif

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int try_folder(const char *folder, const char *subfolder, const char *file, char *out,
                      size_t out_size) {
    if (!folder || !folder[0]) return 0;
    int n = snprintf(out, out_size, "%s%s/%s", folder, subfolder, file);
    return n > 0 && (size_t)n < out_size && is_file(out);
}

/* Backbones whose timm name is not their own. */
static const struct {
    const char *name, *timm;
} timm_names[] = {
    {"mobilenet_v2", "mobilenetv2_100"},
    {"mobilenet_v3_small", "mobilenetv3_small_100"},
    {"mobilenet_v3_large", "mobilenetv3_large_100"},
};

static const char *timm_name(const char *name) {
    for (size_t i = 0; i < sizeof timm_names / sizeof timm_names[0]; i++)
        if (strcmp(timm_names[i].name, name) == 0) return timm_names[i].timm;
    return name;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir (hidden ones left out) that are prefix itself or prefix + "." + tag
 * (prefix NULL: every name), sorted; *count of them. The caller frees each and the list. */
static char **sorted_names(const char *dir, const char *prefix, int *count) {
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **names = NULL;
    int n = 0, capacity = 0;
    size_t plen = prefix ? strlen(prefix) : 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (prefix && (strncmp(e->d_name, prefix, plen) != 0 ||
                       (e->d_name[plen] != '\0' && e->d_name[plen] != '.')))
            continue;
        if (n == capacity) {
            capacity = capacity ? capacity * 2 : 8;
            char **grown = realloc(names, (size_t)capacity * sizeof *grown);
            if (!grown) break; /* out of memory: search what was listed */
            names = grown;
        }
        if (!(names[n] = strdup(e->d_name))) break;
        n++;
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, by_name);
    *count = n;
    return names;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* hub/models--timm--<name>[.tag]/snapshots/<rev>/model.safetensors, the first found. */
static int try_hub(const char *hub, const char *name, char *out, size_t out_size) {
    if (!hub || !hub[0]) return 0;
    char prefix[160];
    snprintf(prefix, sizeof prefix, "models--timm--%s", timm_name(name));
    int n = 0, found = 0;
    char **models = sorted_names(hub, prefix, &n);
    for (int i = 0; i < n && !found; i++) {
        char snapshots[4096];
        if (snprintf(snapshots, sizeof snapshots, "%s/%s/snapshots", hub, models[i]) >=
            (int)sizeof snapshots)
            continue;
        int m = 0;
        char **revs = sorted_names(snapshots, NULL, &m);
        for (int k = 0; k < m && !found; k++) {
            char folder[4096 + 256];
            snprintf(folder, sizeof folder, "%s/%s", snapshots, revs[k]);
            found = try_folder(folder, "", "model.safetensors", out, out_size);
        }
        free_names(revs, m);
    }
    free_names(models, n);
    return found;
}

static int try_hub_caches(const char *name, char *out, size_t out_size) {
    const char *home = getenv("HOME"), *xdg = getenv("XDG_CACHE_HOME"), *hf = getenv("HF_HOME");
    char path[4096];
    if (try_hub(getenv("HF_HUB_CACHE"), name, out, out_size)) return 1;
    if (hf && hf[0] && snprintf(path, sizeof path, "%s/hub", hf) < (int)sizeof path &&
        try_hub(path, name, out, out_size))
        return 1;
    if (xdg && xdg[0] && snprintf(path, sizeof path, "%s/huggingface/hub", xdg) < (int)sizeof path &&
        try_hub(path, name, out, out_size))
        return 1;
    return home && home[0] &&
           snprintf(path, sizeof path, "%s/.cache/huggingface/hub", home) < (int)sizeof path &&
           try_hub(path, name, out, out_size);
}

static int try_folders(const char *file, char *out, size_t out_size) {
    const char *home = getenv("HOME");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *torch_home = getenv("TORCH_HOME");
    return try_folder(getenv("HEADSTART_WEIGHTS"), "", file, out, out_size) ||
           try_folder("weights", "", file, out, out_size) ||
           try_folder(HS_SOURCE_DIR, "/weights", file, out, out_size) ||
           try_folder(xdg, "/headstart/weights", file, out, out_size) ||
           try_folder(home, "/.cache/headstart/weights", file, out, out_size) ||
           try_folder(torch_home, "/hub/checkpoints", file, out, out_size) ||
           try_folder(home, "/.cache/torch/hub/checkpoints", file, out, out_size);
}

hs_status hs_find_weights(const hs_backbone_info *info, char *out, size_t out_size,
                          hs_error *err) {
    const char *file = info->weights_file;
    /* The default file first, then the other known files of the net in table order
     * (ResNet-50's V2, EfficientNet's torchvision 0.13 names): each is prepared as its own
     * row says once found (hs_preprocess_resolve). */
    if (try_folders(file, out, out_size)) return HS_OK;
    for (int i = 0; i < hs_weights_version_count(); i++) {
        const hs_weights_version *v = hs_weights_version_at(i);
        if (strcmp(v->backbone, info->name) == 0 && strcmp(v->file, file) != 0 &&
            try_folders(v->file, out, out_size))
            return HS_OK;
    }
    if (try_hub_caches(info->name, out, out_size)) return HS_OK;
    return hs_fail(err, HS_ERR_NOT_FOUND,
                   "pretrained weights for %s (%s) are not on this machine: %s", info->name,
                   file, info->weights_hint);
}
