/* What a timm loader has to do for ConvNeXt, for test_convnext and test_convnext_full: each
 * tensor is found under its layer's timm_key, except layer scale, which timm calls `gamma`
 * and keeps as [C] where torchvision has `layer_scale` [C, 1, 1] (the same values). Builds
 * a state dict under the network's own (torchvision) keys. */
#ifndef HS_TEST_CONVNEXT_TIMM_H
#define HS_TEST_CONVNEXT_TIMM_H

#include <string.h>

#include "check.h"
#include "net.h"

/* Fills mapped (initialised by the caller) from timm; returns the tensors mapped. */
static inline int test_convnext_from_timm(hs_net *net, const hs_state_dict *timm,
                                          hs_state_dict *mapped) {
    static const char suffix[] = ".layer_scale";
    hs_param_ref *refs = NULL;
    int count = 0, found = 0;
    hs_error err = {0};
    CHECK(hs_net_params(net, &refs, &count, &err) == HS_OK);
    for (int i = 0; i < count; i++) {
        char key[2 * HS_LAYER_NAME_SIZE + 8];
        size_t len = strlen(refs[i].timm_key);
        snprintf(key, sizeof key, "%s", refs[i].timm_key);
        if (len > strlen(suffix) && strcmp(key + len - strlen(suffix), suffix) == 0)
            snprintf(key + len - strlen(suffix), sizeof key - (len - strlen(suffix)), ".gamma");
        const hs_sd_entry *e = hs_sd_find(timm, key);
        CHECK_MSG(e != NULL, "timm has no %s (for %s)", key, refs[i].key);
        if (!e) continue;
        int64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) numel *= e->shape[d];
        CHECK_MSG(numel == hs_param_numel(&refs[i]), "%s: %lld values, %lld here", key,
                  (long long)numel, (long long)hs_param_numel(&refs[i]));
        if (numel != hs_param_numel(&refs[i])) continue;
        CHECK(hs_sd_add_copy(mapped, refs[i].key, refs[i].ndim, refs[i].shape, e->data,
                             &err) == HS_OK);
        found++;
    }
    CHECK(found == count && (size_t)count == timm->count); /* every timm tensor used once */
    free(refs);
    return found;
}

#endif
