#include "auto_plan.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static double feature_cost(const hs_auto_input *in, int k) {
    return (in->train_images + in->val_images) / in->feature_ips[k];
}

static double epoch_cost(const hs_auto_input *in, int k) {
    return in->train_images / in->finetune_ips[k] + in->val_images / in->feature_ips[k] +
           in->epoch_overhead_seconds;
}

/* The feature pass at size k and `epochs` head epochs on its cached features. */
static double probe_cost(const hs_auto_input *in, int k, int epochs) {
    return feature_cost(in, k) + epochs * in->head_epoch_seconds;
}

static int cap(const hs_auto_input *in) {
    return in->max_finetune_epochs > 0 && in->max_finetune_epochs < HS_AUTO_MAX_FT_EPOCHS
               ? in->max_finetune_epochs
               : HS_AUTO_MAX_FT_EPOCHS;
}

/* Whether the fine-tune at size k fits the memory available (always, when unknown). */
static int fits_memory(const hs_auto_input *in, int k) {
    return !(in->memory_available_bytes > 0) ||
           in->finetune_bytes[k] <= in->memory_available_bytes * HS_AUTO_MEMORY_MARGIN;
}

/* Fine-tune epochs that fit at size k after its feature pass (0 when none, not measured or
 * over the memory). */
static int epochs_at(const hs_auto_input *in, int k, double usable) {
    if (!(in->finetune_ips[k] > 0) || !fits_memory(in, k)) return 0;
    double left = usable - probe_cost(in, k, in->probe_epochs) - in->finetune_setup_seconds;
    if (left <= 0) return 0;
    double e = floor(left / epoch_cost(in, k));
    return e > cap(in) ? cap(in) : (int)e;
}

static void append(char *out, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void append(char *out, size_t size, const char *fmt, ...) {
    size_t used = strlen(out);
    if (used + 1 >= size) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + used, size - used, fmt, ap);
    va_end(ap);
}

hs_status hs_auto_plan_make(const hs_auto_input *in, int probe_only_epochs, hs_auto_plan *out,
                            hs_error *err) {
    memset(out, 0, sizeof *out);
    if (in->size_count < 1 || in->size_count > HS_AUTO_MAX_SIZES || in->train_images < 1 ||
        in->val_images < 0 || !(in->budget_seconds > 0) || !(in->head_epoch_seconds >= 0) ||
        !(in->epoch_overhead_seconds >= 0) || !(in->finetune_setup_seconds >= 0) ||
        in->probe_epochs < 0 || probe_only_epochs < 1 ||
        in->max_finetune_epochs < 0)
        return hs_fail(err, HS_ERR_INTERNAL, "auto plan: %d sizes, %d/%d images, budget %g",
                       in->size_count, in->train_images, in->val_images, in->budget_seconds);
    for (int k = 0; k < in->size_count; k++)
        if (!(in->feature_ips[k] > 0) || !(in->finetune_ips[k] >= 0) ||
            !(in->finetune_bytes[k] >= 0))
            return hs_fail(err, HS_ERR_INTERNAL, "auto plan: no rate measured at %d px",
                           in->sizes[k]);
    double usable = (in->budget_seconds - in->spent_seconds) * HS_AUTO_MARGIN;
    out->usable_seconds = usable > 0 ? usable : 0;

    /* The fine-tune candidate. */
    int ft = -1, ft_epochs = 0;
    int good = cap(in) < HS_AUTO_GOOD_FT_EPOCHS ? cap(in) : HS_AUTO_GOOD_FT_EPOCHS;
    for (int k = in->size_count - 1; k >= 0 && ft < 0; k--)
        if (epochs_at(in, k, usable) >= good && epochs_at(in, k, usable) >= HS_AUTO_MIN_FT_EPOCHS)
            ft = k;
    if (ft < 0)
        for (int k = 0; k < in->size_count; k++) {
            int e = epochs_at(in, k, usable);
            if (e >= HS_AUTO_MIN_FT_EPOCHS && e > ft_epochs) {
                ft = k;
                ft_epochs = e;
            }
        }
    if (ft >= 0) ft_epochs = epochs_at(in, ft, usable);
    /* The probe candidate: the largest size whose feature pass fits. */
    int probe = -1;
    for (int k = in->size_count - 1; k >= 0 && probe < 0; k--)
        if (probe_cost(in, k, probe_only_epochs) <= usable) probe = k;

    char *why = out->why;
    size_t size = sizeof out->why;
    snprintf(why, size, "Measured on %d + %d images: feature pass", in->train_images,
             in->val_images);
    for (int k = 0; k < in->size_count; k++)
        append(why, size, "%s %.1f images/s at %d px", k ? "," : "", in->feature_ips[k],
               in->sizes[k]);
    if (in->trained_from[0])
        append(why, size, "; fine-tune step (training from %s up)", in->trained_from);
    else
        append(why, size, "; fine-tune step");
    for (int k = 0; k < in->size_count; k++) {
        if (in->finetune_ips[k] > 0)
            append(why, size, "%s %.1f images/s at %d px", k ? "," : "", in->finetune_ips[k],
                   in->sizes[k]);
        else
            append(why, size, "%s not timed at %d px", k ? "," : "", in->sizes[k]);
    }
    append(why, size, ". Of the %.0f s budget, %.0f s are spent and %.0f s usable (%.0f %% "
           "margin). ", in->budget_seconds, in->spent_seconds, out->usable_seconds,
           100 * (1 - HS_AUTO_MARGIN));
    /* The sizes memory rules out, largest first, in one sentence. */
    int over = 0;
    for (int k = in->size_count - 1; k >= 0; k--) {
        if (fits_memory(in, k)) continue;
        append(why, size, "%s%.1f GB at %d px", over ? " and " : "Memory: the fine-tune would "
               "need about ", in->finetune_bytes[k] / 1e9, in->sizes[k]);
        over++;
    }
    if (over)
        append(why, size, ", over %.0f %% of the %.1f GB available, so not at %s. ",
               100 * HS_AUTO_MEMORY_MARGIN, in->memory_available_bytes / 1e9,
               over > 1 ? "those sizes" : "that size");
    if (ft >= 0) {
        out->finetune = 1;
        out->img_size = in->sizes[ft];
        out->probe_epochs = in->probe_epochs;
        out->epochs = ft_epochs;
        out->feature_seconds = probe_cost(in, ft, in->probe_epochs);
        out->finetune_seconds = in->finetune_setup_seconds + ft_epochs * epoch_cost(in, ft);
        append(why, size, "At %d px the probe stage (features and %d head epochs) takes about "
               "%.0f s, decoding the images for the fine-tune %.0f s and each fine-tune epoch "
               "%.0f s (%.1f s of it checkpoint and plots), so %d epochs fit: probe then "
               "fine-tune, %d px, %d probe + %d fine-tune epochs, estimated %.0f s.",
               out->img_size, in->probe_epochs, out->feature_seconds, in->finetune_setup_seconds,
               epoch_cost(in, ft), in->epoch_overhead_seconds, ft_epochs, out->img_size,
               out->probe_epochs, ft_epochs, out->feature_seconds + out->finetune_seconds);
        if (in->memory_available_bytes > 0)
            append(why, size, " Its memory: about %.1f GB of the %.1f GB available.",
                   in->finetune_bytes[ft] / 1e9, in->memory_available_bytes / 1e9);
    } else if (probe >= 0) {
        out->img_size = in->sizes[probe];
        out->probe_epochs = probe_only_epochs;
        out->feature_seconds = probe_cost(in, probe, probe_only_epochs);
        const int k0 = 0; /* the smallest size: its fine-tune epochs are the cheapest */
        append(why, size, "Fewer than %d fine-tune epochs fit at any size (one takes %.0f s "
               "at %d px), so the probe alone: %d px, the largest size whose feature pass "
               "and %d head epochs on cached features (about %.0f s) fit, estimated %.0f s.",
               HS_AUTO_MIN_FT_EPOCHS, in->finetune_ips[k0] > 0 ? epoch_cost(in, k0) : INFINITY,
               in->sizes[k0], out->img_size, probe_only_epochs, out->feature_seconds,
               out->feature_seconds);
    } else {
        return hs_fail(err, HS_ERR_ARGUMENT, "--budget %.0f s is too short: with %.0f s spent, "
                       "even the probe at %d px takes about %.0f s (pass a budget of at "
                       "least %.0f s, or --limit-train)", in->budget_seconds,
                       in->spent_seconds, in->sizes[0], probe_cost(in, 0, probe_only_epochs),
                       ceil(in->spent_seconds +
                            probe_cost(in, 0, probe_only_epochs) / HS_AUTO_MARGIN));
    }
    out->estimate_seconds = out->feature_seconds + out->finetune_seconds;
    return HS_OK;
}
