/* Where pretrained weights are looked for, in order: $HEADSTART_WEIGHTS (a folder), ./weights,
 * the source tree's weights/ (where scripts/fetch-weights.sh puts them), headstart's cache
 * ($XDG_CACHE_HOME/headstart/weights or ~/.cache/headstart/weights) and torch's hub cache
 * ($TORCH_HOME/hub/checkpoints or ~/.cache/torch/hub/checkpoints), the folder PyTorch itself
 * downloads torchvision's files into. Nothing is downloaded: headstart works offline. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "error.h"
#include "headstart.h"

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

hs_status hs_find_weights(const hs_backbone_info *info, char *out, size_t out_size,
                          hs_error *err) {
    const char *file = info->weights_file;
    const char *home = getenv("HOME");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *torch_home = getenv("TORCH_HOME");
    if (try_folder(getenv("HEADSTART_WEIGHTS"), "", file, out, out_size) ||
        try_folder("weights", "", file, out, out_size) ||
        try_folder(HS_SOURCE_DIR, "/weights", file, out, out_size) ||
        try_folder(xdg, "/headstart/weights", file, out, out_size) ||
        try_folder(home, "/.cache/headstart/weights", file, out, out_size) ||
        try_folder(torch_home, "/hub/checkpoints", file, out, out_size) ||
        try_folder(home, "/.cache/torch/hub/checkpoints", file, out, out_size))
        return HS_OK;
    return hs_fail(err, HS_ERR_NOT_FOUND,
                   "pretrained weights for %s (%s) are not on this machine: %s", info->name,
                   file, info->weights_hint);
}
