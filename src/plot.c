/* Charts as PNG files, drawn with cairo's image surface and its toy text API. The look
 * follows matplotlib's defaults: a white figure, a framed plot area, light grid lines, the
 * tab10 colour cycle and a "best" legend placement; the confusion matrix uses the Blues
 * colour map. The PNG is streamed into an hs_atomic_file (a new temporary file, fsync,
 * rename), so a failed write never leaves a partial file. */
#include "plot.h"

#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fileutil.h"

#define FONT_FAMILY "sans-serif"
#define MAX_LABEL_BYTES 256   /* text kept from one caller string before measuring */
#define MAX_EPOCHS 10000000   /* a sanity limit on series length */
#define MAX_CLASSES 4096      /* the heat map is drawn from a classes x classes image */

/* matplotlib's tab10 cycle. */
static const double TAB10[10][3] = {
    {0x1f / 255.0, 0x77 / 255.0, 0xb4 / 255.0}, {0xff / 255.0, 0x7f / 255.0, 0x0e / 255.0},
    {0x2c / 255.0, 0xa0 / 255.0, 0x2c / 255.0}, {0xd6 / 255.0, 0x27 / 255.0, 0x28 / 255.0},
    {0x94 / 255.0, 0x67 / 255.0, 0xbd / 255.0}, {0x8c / 255.0, 0x56 / 255.0, 0x4b / 255.0},
    {0xe3 / 255.0, 0x77 / 255.0, 0xc2 / 255.0}, {0x7f / 255.0, 0x7f / 255.0, 0x7f / 255.0},
    {0xbc / 255.0, 0xbd / 255.0, 0x22 / 255.0}, {0x17 / 255.0, 0xbe / 255.0, 0xcf / 255.0},
};

/* ---- Text ------------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not valid: overlong
 * forms, surrogates and code points past U+10FFFF are rejected, as cairo rejects them. */
static int utf8_char_length(const unsigned char *s) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0; /* also stops at the terminator */
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000)) return 0;
    if (cp >= 0xd800 && cp <= 0xdfff) return 0;
    if (cp > 0x10ffff) return 0;
    return n;
}

/* Copies src into out as valid UTF-8 without control characters: invalid bytes become
 * '?', controls a space. Stops at a character boundary when out is full. */
static void text_clean(const char *src, char *out, size_t out_size) {
    size_t used = 0;
    const unsigned char *s = (const unsigned char *)(src ? src : "");
    while (*s) {
        int n = utf8_char_length(s);
        if (n == 0) {
            if (used + 1 >= out_size) break;
            out[used++] = '?';
            s++;
            continue;
        }
        if (used + (size_t)n >= out_size) break;
        if (n == 1) {
            out[used++] = (*s < 0x20 || *s == 0x7f) ? ' ' : (char)*s;
        } else {
            memcpy(out + used, s, (size_t)n);
            used += (size_t)n;
        }
        s += n;
    }
    out[used] = '\0';
}

static void font(cairo_t *cr, double size, int bold) {
    cairo_select_font_face(cr, FONT_FAMILY, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static double text_width(cairo_t *cr, const char *s) {
    cairo_text_extents_t te;
    cairo_text_extents(cr, s, &te);
    return te.x_advance;
}

/* Cleans src into out and shortens it with "…" (at a character boundary) until it is at
 * most max_width wide in the current font. */
static void text_fit(cairo_t *cr, const char *src, double max_width, char *out, size_t out_size) {
    char clean[MAX_LABEL_BYTES];
    text_clean(src, clean, sizeof clean);
    size_t len = strlen(clean);
    if (len < out_size && text_width(cr, clean) <= max_width) {
        memcpy(out, clean, len + 1);
        return;
    }
    static const char ellipsis[] = "\xe2\x80\xa6"; /* U+2026 */
    while (len > 0) {
        /* step back to the previous character boundary */
        len--;
        while (len > 0 && ((unsigned char)clean[len] & 0xc0) == 0x80) len--;
        /* drop trailing spaces before the ellipsis */
        size_t keep = len;
        while (keep > 0 && clean[keep - 1] == ' ') keep--;
        if (keep + sizeof ellipsis > out_size) continue;
        memcpy(out, clean, keep);
        memcpy(out + keep, ellipsis, sizeof ellipsis);
        if (text_width(cr, out) <= max_width) return;
    }
    snprintf(out, out_size, "%s", out_size >= sizeof ellipsis ? ellipsis : "");
}

/* Draws s with its anchor at (x, y): halign 0 left, 0.5 centre, 1 right; valign 0 puts the
 * top of the font box at y, 0.5 centres the ink on y, 1 puts the bottom of the font box at y. */
static void text_draw(cairo_t *cr, const char *s, double x, double y, double halign,
                      double valign) {
    cairo_text_extents_t te;
    cairo_font_extents_t fe;
    cairo_text_extents(cr, s, &te);
    cairo_font_extents(cr, &fe);
    double baseline;
    if (valign <= 0.0)
        baseline = y + fe.ascent;
    else if (valign >= 1.0)
        baseline = y - fe.descent;
    else
        baseline = y - (te.y_bearing + te.height * 0.5);
    cairo_move_to(cr, x - te.x_advance * halign, baseline);
    cairo_show_text(cr, s);
}

/* The same, rotated by angle (radians, counter-clockwise on screen) around the anchor. */
static void text_draw_rotated(cairo_t *cr, const char *s, double x, double y, double angle,
                              double halign, double valign) {
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, -angle);
    text_draw(cr, s, 0, 0, halign, valign);
    cairo_restore(cr);
}

static double font_height(cairo_t *cr) {
    cairo_font_extents_t fe;
    cairo_font_extents(cr, &fe);
    return fe.ascent + fe.descent;
}

/* ---- Writing --------------------------------------------------------------------------- */

/* The PNG encoder's output goes straight into the atomic file; errno tells why it failed. */
typedef struct png_sink {
    FILE *file;
    int error;
} png_sink;

static cairo_status_t png_write(void *closure, const unsigned char *data, unsigned int length) {
    png_sink *sink = closure;
    if (fwrite(data, 1, length, sink->file) != length) {
        sink->error = errno ? errno : EIO;
        return CAIRO_STATUS_WRITE_ERROR;
    }
    return CAIRO_STATUS_SUCCESS;
}

/* Checks the drawing, encodes the surface as PNG and writes it atomically over path. */
static hs_status finish_png(cairo_t *cr, cairo_surface_t *surface, const char *path,
                            hs_error *err) {
    cairo_status_t cs = cairo_status(cr);
    if (cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_status(surface);
    if (cs != CAIRO_STATUS_SUCCESS) {
        return hs_fail(err, cs == CAIRO_STATUS_NO_MEMORY ? HS_ERR_NOMEM : HS_ERR_INTERNAL,
                       "drawing %s: %s", path, cairo_status_to_string(cs));
    }
    cairo_surface_flush(surface);
    hs_atomic_file out;
    hs_status st = hs_atomic_begin(&out, path, err);
    if (st) return st;
    png_sink sink = {out.file, 0};
    cs = cairo_surface_write_to_png_stream(surface, png_write, &sink);
    if (cs != CAIRO_STATUS_SUCCESS || sink.error) {
        hs_atomic_abort(&out);
        if (sink.error)
            return hs_fail(err, HS_ERR_IO, "cannot write %s: %s", path, strerror(sink.error));
        return hs_fail(err, cs == CAIRO_STATUS_NO_MEMORY ? HS_ERR_NOMEM : HS_ERR_INTERNAL,
                       "encoding %s: %s", path, cairo_status_to_string(cs));
    }
    return hs_atomic_commit(&out, err);
}

static hs_status new_canvas(int width, int height, const char *path, cairo_surface_t **surface,
                            cairo_t **cr, hs_error *err) {
    *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    if (cairo_surface_status(*surface) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(*surface);
        *surface = NULL;
        return hs_fail(err, HS_ERR_NOMEM, "out of memory for a %dx%d image for %s", width,
                       height, path);
    }
    *cr = cairo_create(*surface);
    if (cairo_status(*cr) != CAIRO_STATUS_SUCCESS) {
        cairo_destroy(*cr);
        cairo_surface_destroy(*surface);
        *cr = NULL;
        *surface = NULL;
        return hs_fail(err, HS_ERR_NOMEM, "out of memory drawing %s", path);
    }
    cairo_set_source_rgb(*cr, 1, 1, 1);
    cairo_paint(*cr);
    return HS_OK;
}

static void free_canvas(cairo_t *cr, cairo_surface_t *surface) {
    if (cr) cairo_destroy(cr);
    if (surface) cairo_surface_destroy(surface);
}

/* A scratch context for measuring text before the image size is known. */
static cairo_t *measure_context(cairo_surface_t **surface) {
    *surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 1);
    return cairo_create(*surface);
}

/* ---- Line chart ------------------------------------------------------------------------ */

#define LINES_WIDTH 900
#define LINES_HEIGHT 600

/* Formats a tick value; step decides how many decimals. */
static void format_tick(double v, double step, char *out, size_t out_size) {
    if (fabs(v) < step * 1e-6) v = 0.0;
    double a = fabs(v);
    if ((a >= 1e7 || (step < 1e-5 && a != 0.0)) || !isfinite(v)) {
        snprintf(out, out_size, "%.3g", v);
        return;
    }
    int decimals = (int)ceil(-log10(step) - 1e-9);
    if (decimals < 0) decimals = 0;
    if (decimals > 8) decimals = 8;
    snprintf(out, out_size, "%.*f", decimals, v);
}

/* The smallest step of 1, 2 or 5 times a power of ten that splits range into at most
 * max_ticks intervals. */
static double nice_step(double range, double max_ticks) {
    double raw = range / max_ticks;
    if (!(raw > 0) || !isfinite(raw)) return 1.0;
    double mag = pow(10.0, floor(log10(raw)));
    static const double mult[] = {1, 2, 5, 10};
    for (int i = 0; i < 4; i++)
        if (mag * mult[i] >= raw * (1 - 1e-9)) return mag * mult[i];
    return mag * 10;
}

typedef struct lines_layout {
    double left, top, right, bottom; /* plot area in pixels */
    double xlo, xhi, ylo, yhi;       /* data range shown */
} lines_layout;

static double map_x(const lines_layout *l, double x) {
    return l->left + (x - l->xlo) / (l->xhi - l->xlo) * (l->right - l->left);
}

static double map_y(const lines_layout *l, double y) {
    return l->bottom - (y - l->ylo) / (l->yhi - l->ylo) * (l->bottom - l->top);
}

static int value_ok(const hs_series *s, int i) { return isfinite(s->values[i]); }

static double clamp_value(double v) { return v > 1e300 ? 1e300 : v < -1e300 ? -1e300 : v; }

/* How much of the data a legend box at (x, y, w, h) would hide: points sampled along each
 * series' lines every few pixels, and its markers, that fall inside the box. */
static double legend_overlap(const lines_layout *l, const hs_series *series, int series_count,
                             double x, double y, double w, double h) {
    double hits = 0;
    const double pad = 4;
    for (int s = 0; s < series_count; s++) {
        const hs_series *se = &series[s];
        for (int i = 0; i < se->count; i++) {
            if (!value_ok(se, i)) continue;
            double px = map_x(l, i + 1), py = map_y(l, clamp_value(se->values[i]));
            if (px >= x - pad && px <= x + w + pad && py >= y - pad && py <= y + h + pad)
                hits += 3;
            if (i + 1 >= se->count || !value_ok(se, i + 1)) continue;
            double qx = map_x(l, i + 2), qy = map_y(l, clamp_value(se->values[i + 1]));
            double length = hypot(qx - px, qy - py);
            int steps = (int)fmin(200.0, ceil(length / 3.0));
            for (int k = 1; k < steps; k++) {
                double t = (double)k / steps;
                double sx = px + (qx - px) * t, sy = py + (qy - py) * t;
                if (sx >= x && sx <= x + w && sy >= y && sy <= y + h) hits += 1;
            }
        }
    }
    return hits;
}

hs_status hs_plot_lines(const char *path, const char *title, const char *y_label,
                        const hs_series *series, int series_count, hs_error *err) {
    if (!path || !*path) return hs_fail(err, HS_ERR_ARGUMENT, "plot: no output path");
    if (!series || series_count <= 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "plotting %s: no series to plot", path);
    int n = 0;
    for (int s = 0; s < series_count; s++) {
        if (series[s].count < 0 || series[s].count > MAX_EPOCHS ||
            (series[s].count > 0 && !series[s].values))
            return hs_fail(err, HS_ERR_ARGUMENT, "plotting %s: series %d has %d values%s", path,
                           s + 1, series[s].count, series[s].values ? "" : " and no data");
        if (series[s].count > n) n = series[s].count;
    }
    if (n == 0) return hs_fail(err, HS_ERR_ARGUMENT, "plotting %s: the series are empty", path);

    /* y range: the finite values, with a 5% margin; a flat line gets a range around it. */
    double lo = INFINITY, hi = -INFINITY;
    for (int s = 0; s < series_count; s++)
        for (int i = 0; i < series[s].count; i++) {
            if (!value_ok(&series[s], i)) continue;
            double v = clamp_value(series[s].values[i]);
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
    if (lo > hi) {
        lo = 0;
        hi = 1;
    } else if (hi - lo <= 1e-9 * fmax(fabs(lo), fabs(hi))) {
        double mid = 0.5 * (lo + hi);
        double d = mid != 0.0 ? fabs(mid) * 0.05 : 1.0;
        lo = mid - d;
        hi = mid + d;
    } else {
        double m = (hi - lo) * 0.05;
        lo -= m;
        hi += m;
    }

    lines_layout l;
    l.ylo = lo;
    l.yhi = hi;
    if (n == 1) {
        l.xlo = 0.5;
        l.xhi = 1.5;
    } else {
        l.xlo = 1 - 0.05 * (n - 1);
        l.xhi = n + 0.05 * (n - 1);
    }
    double ystep = nice_step(hi - lo, 8);
    double first_k = ceil(lo / ystep - 1e-9), last_k = floor(hi / ystep + 1e-9);
    if (last_k - first_k > 50) last_k = first_k + 50;

    cairo_surface_t *surface;
    cairo_t *cr;
    hs_status st = new_canvas(LINES_WIDTH, LINES_HEIGHT, path, &surface, &cr, err);
    if (st) return st;
    const double title_size = 17, label_size = 14, tick_size = 12, legend_size = 13;

    /* the left margin fits the widest y tick label and the rotated y label */
    char buf[MAX_LABEL_BYTES];
    font(cr, tick_size, 0);
    double tick_w = 0;
    for (double k = first_k; k <= last_k; k++) {
        format_tick(k * ystep, ystep, buf, sizeof buf);
        tick_w = fmax(tick_w, text_width(cr, buf));
    }
    double tick_h = font_height(cr);
    font(cr, label_size, 0);
    double label_h = font_height(cr);
    int have_ylabel = y_label && *y_label;
    l.left = 14 + (have_ylabel ? label_h + 10 : 0) + tick_w + 8 + 4;
    l.right = LINES_WIDTH - 28;
    int have_title = title && *title;
    l.top = have_title ? 52 : 24;
    l.bottom = LINES_HEIGHT - (14 + label_h + 8 + tick_h + 8);

    /* x ticks: integers 1..n, thinned so the labels keep apart */
    font(cr, tick_size, 0);
    snprintf(buf, sizeof buf, "%d", n);
    double xlabel_w = text_width(cr, buf);
    double px_per_epoch = (l.right - l.left) / (l.xhi - l.xlo);
    long xstep = 1;
    for (int i = 0; i < 30; i++) {
        static const long mult[] = {1, 2, 5};
        long candidate = mult[i % 3];
        for (int k = 0; k < i / 3; k++) candidate *= 10;
        xstep = candidate;
        if (xstep * px_per_epoch >= xlabel_w + 16 && (double)(n - 1) / xstep <= 12) break;
    }

    /* grid */
    cairo_set_line_width(cr, 1.0);
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    for (double k = first_k; k <= last_k; k++) {
        double y = round(map_y(&l, k * ystep)) + 0.5;
        cairo_move_to(cr, l.left, y);
        cairo_line_to(cr, l.right, y);
    }
    for (long e = xstep == 1 ? 1 : xstep; e <= n; e += xstep) {
        double x = round(map_x(&l, (double)e)) + 0.5;
        cairo_move_to(cr, x, l.top);
        cairo_line_to(cr, x, l.bottom);
    }
    cairo_stroke(cr);

    /* ticks and their labels */
    cairo_set_source_rgb(cr, 0, 0, 0);
    font(cr, tick_size, 0);
    for (double k = first_k; k <= last_k; k++) {
        double y = round(map_y(&l, k * ystep)) + 0.5;
        cairo_move_to(cr, l.left - 5, y);
        cairo_line_to(cr, l.left, y);
        format_tick(k * ystep, ystep, buf, sizeof buf);
        text_draw(cr, buf, l.left - 8, y, 1.0, 0.5);
    }
    for (long e = xstep == 1 ? 1 : xstep; e <= n; e += xstep) {
        double x = round(map_x(&l, (double)e)) + 0.5;
        cairo_move_to(cr, x, l.bottom);
        cairo_line_to(cr, x, l.bottom + 5);
        snprintf(buf, sizeof buf, "%ld", e);
        text_draw(cr, buf, x, l.bottom + 8, 0.5, 0.0);
    }
    cairo_stroke(cr);

    /* axis labels and title */
    font(cr, label_size, 0);
    text_draw(cr, "epoch", 0.5 * (l.left + l.right), LINES_HEIGHT - 12, 0.5, 1.0);
    if (have_ylabel) {
        text_fit(cr, y_label, l.bottom - l.top, buf, sizeof buf);
        text_draw_rotated(cr, buf, 14, 0.5 * (l.top + l.bottom), M_PI / 2, 0.5, 0.0);
    }
    if (have_title) {
        font(cr, title_size, 1);
        text_fit(cr, title, LINES_WIDTH - 40, buf, sizeof buf);
        double cx = 0.5 * (l.left + l.right), w = text_width(cr, buf);
        if (cx + w / 2 > LINES_WIDTH - 20) cx = LINES_WIDTH - 20 - w / 2;
        if (cx - w / 2 < 20) cx = 20 + w / 2;
        text_draw(cr, buf, cx, l.top - 14, 0.5, 1.0);
    }

    /* the series, clipped to the plot area */
    double marker_r = fmin(4.0, fmax(1.5, px_per_epoch * 0.3));
    int dense = px_per_epoch < 4;
    cairo_save(cr);
    cairo_rectangle(cr, l.left, l.top, l.right - l.left, l.bottom - l.top);
    cairo_clip(cr);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    for (int s = 0; s < series_count; s++) {
        const hs_series *se = &series[s];
        const double *c = TAB10[s % 10];
        cairo_set_source_rgb(cr, c[0], c[1], c[2]);
        cairo_set_line_width(cr, 2.0);
        int pen_down = 0;
        for (int i = 0; i < se->count; i++) {
            if (!value_ok(se, i)) {
                pen_down = 0;
                continue;
            }
            double x = map_x(&l, i + 1), y = map_y(&l, clamp_value(se->values[i]));
            if (pen_down)
                cairo_line_to(cr, x, y);
            else
                cairo_move_to(cr, x, y);
            pen_down = 1;
        }
        cairo_stroke(cr);
        for (int i = 0; i < se->count; i++) {
            if (!value_ok(se, i)) continue;
            int isolated = (i == 0 || !value_ok(se, i - 1)) &&
                           (i + 1 >= se->count || !value_ok(se, i + 1));
            if (dense && !isolated) continue;
            double x = map_x(&l, i + 1), y = map_y(&l, clamp_value(se->values[i]));
            cairo_new_sub_path(cr);
            cairo_arc(cr, x, y, isolated ? fmax(marker_r, 3.0) : marker_r, 0, 2 * M_PI);
        }
        cairo_fill(cr);
    }
    cairo_restore(cr);

    /* frame */
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, round(l.left) + 0.5, round(l.top) + 0.5, round(l.right - l.left),
                    round(l.bottom - l.top));
    cairo_stroke(cr);

    /* legend: the place among matplotlib's candidates that hides the least data */
    font(cr, legend_size, 0);
    double row_h = font_height(cr) * 1.35, handle_w = 30, pad = 9;
    int rows = series_count;
    int max_rows = (int)((l.bottom - l.top - 2 * pad - 20) / row_h);
    if (rows > max_rows) rows = max_rows > 0 ? max_rows : 0;
    if (rows > 0) {
        double text_w = 0;
        char (*labels)[96] = malloc((size_t)rows * sizeof *labels);
        if (!labels) {
            free_canvas(cr, surface);
            return hs_fail(err, HS_ERR_NOMEM, "out of memory plotting %s", path);
        }
        for (int s = 0; s < rows; s++) {
            char fallback[32];
            snprintf(fallback, sizeof fallback, "series %d", s + 1);
            const char *label = series[s].label && *series[s].label ? series[s].label : fallback;
            text_fit(cr, label, (l.right - l.left) * 0.4, labels[s], sizeof labels[s]);
            text_w = fmax(text_w, text_width(cr, labels[s]));
        }
        double w = pad + handle_w + 8 + text_w + pad, h = 2 * pad + rows * row_h - 4;
        double inset = 10;
        double xl = l.left + inset, xr = l.right - inset - w, xc = 0.5 * (l.left + l.right - w);
        double yt = l.top + inset, yb = l.bottom - inset - h, yc = 0.5 * (l.top + l.bottom - h);
        const double candidates[][2] = {{xr, yt}, {xl, yt}, {xl, yb}, {xr, yb}, {xr, yc},
                                        {xl, yc}, {xc, yb}, {xc, yt}, {xc, yc}};
        double best = INFINITY, bx = xr, by = yt;
        for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
            double score = legend_overlap(&l, series, series_count, candidates[i][0],
                                          candidates[i][1], w, h);
            if (score < best) {
                best = score;
                bx = candidates[i][0];
                by = candidates[i][1];
            }
        }
        /* a rounded box, white and slightly see-through like matplotlib's */
        double r = 4, x0 = round(bx) + 0.5, y0 = round(by) + 0.5;
        cairo_new_sub_path(cr);
        cairo_arc(cr, x0 + w - r, y0 + r, r, -M_PI / 2, 0);
        cairo_arc(cr, x0 + w - r, y0 + h - r, r, 0, M_PI / 2);
        cairo_arc(cr, x0 + r, y0 + h - r, r, M_PI / 2, M_PI);
        cairo_arc(cr, x0 + r, y0 + r, r, M_PI, 3 * M_PI / 2);
        cairo_close_path(cr);
        cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
        cairo_fill_preserve(cr);
        cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
        cairo_set_line_width(cr, 1.0);
        cairo_stroke(cr);
        for (int s = 0; s < rows; s++) {
            const double *c = TAB10[s % 10];
            double cy = y0 + pad + (s + 0.5) * row_h - 2;
            cairo_set_source_rgb(cr, c[0], c[1], c[2]);
            cairo_set_line_width(cr, 2.0);
            cairo_move_to(cr, x0 + pad, cy);
            cairo_line_to(cr, x0 + pad + handle_w, cy);
            cairo_stroke(cr);
            cairo_arc(cr, x0 + pad + handle_w / 2, cy, 3.5, 0, 2 * M_PI);
            cairo_fill(cr);
            cairo_set_source_rgb(cr, 0, 0, 0);
            text_draw(cr, labels[s], x0 + pad + handle_w + 8, cy, 0.0, 0.5);
        }
        free(labels);
    }

    st = finish_png(cr, surface, path, err);
    free_canvas(cr, surface);
    return st;
}

/* ---- Confusion matrix ------------------------------------------------------------------ */

/* matplotlib's Blues, from white to dark blue. */
static void blues(double t, double rgb[3]) {
    static const unsigned stops[] = {0xffffff, 0xdeebf7, 0xc6dbef, 0x9ecae1, 0x6baed6,
                                     0x4292c6, 0x2171b5, 0x08519c, 0x08306b};
    const int last = (int)(sizeof stops / sizeof stops[0]) - 1;
    if (!(t > 0)) t = 0;
    if (t > 1) t = 1;
    double pos = t * last;
    int i = (int)floor(pos);
    if (i >= last) i = last - 1;
    double f = pos - i;
    for (int c = 0; c < 3; c++) {
        int shift = 16 - 8 * c;
        double a = ((stops[i] >> shift) & 0xff) / 255.0;
        double b = ((stops[i + 1] >> shift) & 0xff) / 255.0;
        rgb[c] = a + (b - a) * f;
    }
}

static const char *class_name(const char *const *names, int i, char *fallback, size_t size) {
    if (names && names[i] && *names[i]) return names[i];
    snprintf(fallback, size, "%d", i);
    return fallback;
}

hs_status hs_plot_confusion(const char *path, const char *title, const int *matrix,
                            int classes, const char *const *class_names, hs_error *err) {
    if (!path || !*path) return hs_fail(err, HS_ERR_ARGUMENT, "plot: no output path");
    if (!matrix || classes <= 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "plotting %s: no confusion matrix", path);
    if (classes > MAX_CLASSES)
        return hs_fail(err, HS_ERR_ARGUMENT, "plotting %s: %d classes, at most %d can be drawn",
                       path, classes, MAX_CLASSES);
    for (long i = 0; i < (long)classes * classes; i++)
        if (matrix[i] < 0)
            return hs_fail(err, HS_ERR_ARGUMENT, "plotting %s: negative count %d at row %ld",
                           path, matrix[i], i / classes);

    /* cell size: large for a few classes, 60 px for a normal number, the grid capped at
     * 2400 px for many */
    double cell = 60;
    if (classes * cell < 360) cell = fmin(120, 360.0 / classes);
    if (classes * cell > 2400) cell = 2400.0 / classes;
    double grid = cell * classes;
    int show_counts = classes <= 40;
    double name_size = fmin(13, fmax(6, cell * 0.8));
    int stride = (int)ceil((name_size + 2) / cell);
    if (stride < 1) stride = 1;
    const double title_size = 17, axis_size = 14, bar_tick_size = 11;

    /* measure the names (shortened to 170 px) to lay out the margins */
    cairo_surface_t *ms;
    cairo_t *mc = measure_context(&ms);
    char (*names)[MAX_LABEL_BYTES] = malloc((size_t)classes * sizeof *names);
    if (!names || cairo_status(mc) != CAIRO_STATUS_SUCCESS) {
        free(names);
        free_canvas(mc, ms);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory plotting %s", path);
    }
    font(mc, name_size, 0);
    double name_w = 0, name_h = font_height(mc);
    for (int i = 0; i < classes; i++) {
        char fallback[32];
        names[i][0] = '\0';
        if (i % stride) continue;
        text_fit(mc, class_name(class_names, i, fallback, sizeof fallback), 170, names[i],
                 sizeof names[i]);
        name_w = fmax(name_w, text_width(mc, names[i]));
    }
    font(mc, axis_size, 0);
    double axis_h = font_height(mc);
    font(mc, bar_tick_size, 0);
    double bar_tick_w = text_width(mc, "0.0");
    free_canvas(mc, ms);

    /* x labels: horizontal when they fit under their cell, else 45 degrees, or vertical when
     * there are many */
    double angle, down, left_reach;
    if (stride == 1 && name_w <= cell - 6) {
        angle = 0;
        down = name_h;
        left_reach = name_w / 2;
    } else if (classes <= 20) {
        angle = M_PI / 4;
        down = (name_w + name_h) * M_SQRT1_2;
        left_reach = name_w * M_SQRT1_2;
    } else {
        angle = M_PI / 2;
        down = name_w;
        left_reach = 0;
    }
    double margin = 16;
    double left = margin + axis_h + 10 + name_w + 8;
    if (left < margin + left_reach - cell / 2) left = margin + left_reach - cell / 2;
    double top = (title && *title) ? 56 : 20;
    double bar_gap = 24, bar_w = 18;
    double right = bar_gap + bar_w + 6 + bar_tick_w + 10 + axis_h + margin;
    double bottom = 8 + down + 10 + axis_h + margin;
    double width = left + grid + right, height = top + grid + bottom;
    /* centre the drawing on a canvas of at least 500 x 500 */
    double ox = width < 500 ? floor((500 - width) / 2) : 0;
    double oy = height < 500 ? floor((500 - height) / 2) : 0;
    int W = (int)ceil(fmax(500, width)), H = (int)ceil(fmax(500, height));
    double gx = round(ox + left), gy = round(oy + top);

    cairo_surface_t *surface;
    cairo_t *cr;
    hs_status st = new_canvas(W, H, path, &surface, &cr, err);
    if (st) {
        free(names);
        return st;
    }

    /* the heat map: one pixel a cell in a small image, scaled up without smoothing */
    cairo_surface_t *cells = cairo_image_surface_create(CAIRO_FORMAT_RGB24, classes, classes);
    if (cairo_surface_status(cells) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(cells);
        free(names);
        free_canvas(cr, surface);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory plotting %s", path);
    }
    cairo_surface_flush(cells);
    unsigned char *pixels = cairo_image_surface_get_data(cells);
    int pitch = cairo_image_surface_get_stride(cells);
    for (int r = 0; r < classes; r++) {
        double sum = 0;
        for (int c = 0; c < classes; c++) sum += matrix[(long)r * classes + c];
        uint32_t *row = (uint32_t *)(void *)(pixels + (size_t)r * (size_t)pitch);
        for (int c = 0; c < classes; c++) {
            double rgb[3];
            blues(sum > 0 ? matrix[(long)r * classes + c] / sum : 0, rgb);
            row[c] = (uint32_t)lround(rgb[0] * 255) << 16 | (uint32_t)lround(rgb[1] * 255) << 8 |
                     (uint32_t)lround(rgb[2] * 255);
        }
    }
    cairo_surface_mark_dirty(cells);
    cairo_save(cr);
    cairo_rectangle(cr, gx, gy, grid, grid);
    cairo_clip(cr);
    cairo_translate(cr, gx, gy);
    cairo_scale(cr, cell, cell);
    cairo_set_source_surface(cr, cells, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_paint(cr);
    cairo_restore(cr);
    cairo_surface_destroy(cells);

    /* the counts, white on dark cells and black on light ones, shrunk to fit the cell */
    if (show_counts) {
        char buf[32];
        for (int r = 0; r < classes; r++) {
            double sum = 0;
            for (int c = 0; c < classes; c++) sum += matrix[(long)r * classes + c];
            for (int c = 0; c < classes; c++) {
                int v = matrix[(long)r * classes + c];
                snprintf(buf, sizeof buf, "%d", v);
                double size = fmin(15, cell * 0.3);
                font(cr, size, 0);
                double w = text_width(cr, buf);
                if (w > cell - 6) {
                    size *= (cell - 6) / w;
                    if (size < 5) continue;
                    font(cr, size, 0);
                }
                double rgb[3];
                blues(sum > 0 ? v / sum : 0, rgb);
                double luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
                if (luminance < 0.5)
                    cairo_set_source_rgb(cr, 1, 1, 1);
                else
                    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
                text_draw(cr, buf, gx + (c + 0.5) * cell, gy + (r + 0.5) * cell, 0.5, 0.5);
            }
        }
    }

    /* frame and ticks */
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, gx - 0.5, gy - 0.5, grid + 1, grid + 1);
    cairo_stroke(cr);
    font(cr, name_size, 0);
    for (int i = 0; i < classes; i += stride) {
        double center = (i + 0.5) * cell;
        double x = round(gx + center) + 0.5, y = round(gy + center) + 0.5;
        cairo_move_to(cr, x, gy + grid);
        cairo_line_to(cr, x, gy + grid + 4);
        cairo_move_to(cr, gx - 4, y);
        cairo_line_to(cr, gx, y);
        cairo_stroke(cr);
        text_draw(cr, names[i], gx - 7, gy + center, 1.0, 0.5);
        if (angle == 0)
            text_draw(cr, names[i], gx + center, gy + grid + 7, 0.5, 0.0);
        else if (angle < M_PI / 3)
            text_draw_rotated(cr, names[i], gx + center + name_h * 0.35, gy + grid + 7, angle,
                              1.0, 0.0);
        else
            text_draw_rotated(cr, names[i], gx + center, gy + grid + 7, angle, 1.0, 0.5);
    }
    free(names);

    /* axis titles and the title */
    font(cr, axis_size, 0);
    text_draw(cr, "predicted", gx + grid / 2, gy + grid + 8 + down + 10, 0.5, 0.0);
    text_draw_rotated(cr, "true", gx - 8 - name_w - 10 - axis_h, gy + grid / 2, M_PI / 2, 0.5,
                      0.0);
    if (title && *title) {
        char buf[MAX_LABEL_BYTES];
        font(cr, title_size, 1);
        text_fit(cr, title, W - 40, buf, sizeof buf);
        double cx = gx + grid / 2;
        double w = text_width(cr, buf);
        if (cx - w / 2 < 20) cx = 20 + w / 2;
        if (cx + w / 2 > W - 20) cx = W - 20 - w / 2;
        text_draw(cr, buf, cx, gy - 16, 0.5, 1.0);
    }

    /* colour bar: the fraction of the true class */
    double bx = gx + grid + bar_gap;
    cairo_pattern_t *gradient = cairo_pattern_create_linear(0, gy + grid, 0, gy);
    for (int k = 0; k <= 16; k++) {
        double rgb[3];
        blues(k / 16.0, rgb);
        cairo_pattern_add_color_stop_rgb(gradient, k / 16.0, rgb[0], rgb[1], rgb[2]);
    }
    cairo_rectangle(cr, bx, gy, bar_w, grid);
    cairo_set_source(cr, gradient);
    cairo_fill(cr);
    cairo_pattern_destroy(gradient);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, bx - 0.5, gy - 0.5, bar_w + 1, grid + 1);
    cairo_stroke(cr);
    font(cr, bar_tick_size, 0);
    double bar_step = grid >= 200 ? 0.2 : 0.5;
    for (int k = 0; k * bar_step <= 1.0 + 1e-9; k++) {
        double t = k * bar_step;
        double y = round(gy + grid - t * grid) + 0.5;
        cairo_move_to(cr, bx + bar_w, y);
        cairo_line_to(cr, bx + bar_w + 4, y);
        cairo_stroke(cr);
        char buf[16];
        snprintf(buf, sizeof buf, "%.1f", t);
        text_draw(cr, buf, bx + bar_w + 6, y, 0.0, 0.5);
    }
    font(cr, axis_size * 0.9, 0);
    text_draw_rotated(cr, "fraction of true class", bx + bar_w + 6 + bar_tick_w + 10,
                      gy + grid / 2, M_PI / 2, 0.5, 0.0);

    st = finish_png(cr, surface, path, err);
    free_canvas(cr, surface);
    return st;
}
