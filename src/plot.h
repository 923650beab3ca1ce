/* Charts as PNG files, drawn with cairo: training curves and the confusion matrix. Files are
 * written atomically (a temporary file, then rename). */
#ifndef HS_PLOT_H
#define HS_PLOT_H

#include "headstart.h"

typedef struct hs_series {
    const char *label;     /* legend text, e.g. "train" */
    const double *values;  /* values[i] is the value at epoch i + 1 */
    int count;
} hs_series;

/* A line chart of one or more series against the epoch (1..count), with axes, ticks, a
 * title, a legend and markers (so a single epoch still shows). */
hs_status hs_plot_lines(const char *path, const char *title, const char *y_label,
                        const hs_series *series, int series_count, hs_error *err);

/* A confusion matrix as a heat map: rows true class, columns predicted, counts written in
 * the cells, class names on both axes (shortened when long). matrix is classes x classes. */
hs_status hs_plot_confusion(const char *path, const char *title, const int *matrix,
                            int classes, const char *const *class_names, hs_error *err);

#endif
