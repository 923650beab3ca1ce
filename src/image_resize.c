/* Resize, crop and normalise, bit-exact with PIL / torchvision.
 *
 * hs_image_resize_with reproduces Pillow's ImagingResample with its BILINEAR (triangle,
 * support 1) and BICUBIC (Keys' cubic with a = -0.5, support 2) filters: coefficients
 * computed in double, support scaled by the downscale factor (the antialiasing), normalised
 * and turned into fixed point with PRECISION_BITS = 22, a horizontal pass then a vertical
 * pass, each rounding and clipping to uint8 (bicubic's negative lobes can leave 0..255).
 * The passes run only where the size changes, as in Pillow. Same arithmetic, same integers:
 * the result equals PIL's pixel for pixel. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "image.h"

#define PRECISION_BITS (32 - 8 - 2)

typedef struct coeffs {
    int ksize;
    int *bounds; /* per output pixel: first input index, count */
    int32_t *k;  /* per output pixel: ksize fixed-point weights */
} coeffs;

static double triangle(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

/* Pillow's bicubic_filter, term for term (the same doubles). */
static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

typedef struct filter {
    double (*fn)(double);
    double support;
} filter;

static filter filter_of(hs_interpolation interpolation) {
    filter f = {triangle, 1.0};
    if (interpolation == HS_INTERP_BICUBIC) f = (filter){bicubic, 2.0};
    return f;
}

const char *hs_interpolation_name(hs_interpolation interpolation) {
    return interpolation == HS_INTERP_BICUBIC ? "bicubic" : "bilinear";
}

int hs_interpolation_parse(const char *name, hs_interpolation *out) {
    if (!name) return 0;
    if (strcmp(name, "bilinear") == 0) *out = HS_INTERP_BILINEAR;
    else if (strcmp(name, "bicubic") == 0) *out = HS_INTERP_BICUBIC;
    else return 0;
    return 1;
}

static void coeffs_free(coeffs *c) {
    free(c->bounds);
    free(c->k);
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc, for the box [0, in_size). */
static int coeffs_make(int in_size, int out_size, filter f, coeffs *c) {
    memset(c, 0, sizeof *c);
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f.support * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *kk = malloc((size_t)out_size * (size_t)ksize * sizeof *kk);
    c->bounds = malloc((size_t)out_size * 2 * sizeof *c->bounds);
    c->k = malloc((size_t)out_size * (size_t)ksize * sizeof *c->k);
    if (!kk || !c->bounds || !c->k) {
        free(kk);
        coeffs_free(c);
        return 0;
    }
    c->ksize = ksize;
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0;
        double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = &kk[(size_t)xx * ksize];
        int x;
        for (x = 0; x < xmax; x++) {
            double w = f.fn((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        c->bounds[xx * 2 + 0] = xmin;
        c->bounds[xx * 2 + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * (size_t)ksize; i++) {
        if (kk[i] < 0) c->k[i] = (int32_t)(-0.5 + kk[i] * (1 << PRECISION_BITS));
        else c->k[i] = (int32_t)(0.5 + kk[i] * (1 << PRECISION_BITS));
    }
    free(kk);
    return 1;
}

/* The taps of one axis, out_size * ksize, computed in double so that no size overflows. */
static double axis_taps(int in_size, int out_size, filter f) {
    double scale = (double)in_size / out_size;
    double ksize = ceil(f.support * (scale < 1.0 ? 1.0 : scale)) * 2 + 1;
    return ksize * out_size;
}

static inline uint8_t clip8(int32_t in) {
    if (in >= (1 << PRECISION_BITS << 8)) return 255;
    if (in <= 0) return 0;
    return (uint8_t)(in >> PRECISION_BITS);
}

/* Horizontal pass over rows [y0, y0 + rows) of src (width sw) into dst (width dw). */
static void resample_h(const uint8_t *src, int sw, int y0, int rows, uint8_t *dst, int dw,
                       const coeffs *c) {
#pragma omp parallel for schedule(static) if ((long)rows * dw > 65536)
    for (int y = 0; y < rows; y++) {
        const uint8_t *in = src + (size_t)(y + y0) * sw * 3u;
        uint8_t *out = dst + (size_t)y * dw * 3u;
        for (int xx = 0; xx < dw; xx++) {
            int xmin = c->bounds[xx * 2], xmax = c->bounds[xx * 2 + 1];
            const int32_t *k = &c->k[(size_t)xx * c->ksize];
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < xmax; x++) {
                const uint8_t *p = in + (size_t)(x + xmin) * 3u;
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            out[xx * 3 + 0] = clip8(s0);
            out[xx * 3 + 1] = clip8(s1);
            out[xx * 3 + 2] = clip8(s2);
        }
    }
}

/* Vertical pass: src (width w) into dst (w x dh); bounds minus shift index src's rows.
 * Row-wise accumulation (same sums in the same order as Pillow, cache-friendly). */
static int resample_v(const uint8_t *src, int w, uint8_t *dst, int dh, const coeffs *c,
                      int shift) {
    const size_t n = (size_t)w * 3u;
    int failed = 0;
#pragma omp parallel if ((long)dh * w > 65536) reduction(| : failed)
    {
        int32_t *acc = malloc(n * sizeof *acc);
        if (!acc) failed = 1;
#pragma omp for schedule(static)
        for (int yy = 0; yy < dh; yy++) {
            if (!acc) continue;
            int ymin = c->bounds[yy * 2] - shift, ymax = c->bounds[yy * 2 + 1];
            const int32_t *k = &c->k[(size_t)yy * c->ksize];
            for (size_t i = 0; i < n; i++) acc[i] = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) {
                const uint8_t *row = src + (size_t)(y + ymin) * n;
                const int32_t ky = k[y];
                for (size_t i = 0; i < n; i++) acc[i] += row[i] * ky;
            }
            uint8_t *out = dst + (size_t)yy * n;
            for (size_t i = 0; i < n; i++) out[i] = clip8(acc[i]);
        }
        free(acc);
    }
    return !failed;
}

hs_status hs_image_resize(const hs_image *src, int width, int height, hs_image *dst,
                          hs_error *err) {
    return hs_image_resize_with(src, width, height, HS_INTERP_BILINEAR, dst, err);
}

hs_status hs_image_resize_with(const hs_image *src, int width, int height,
                               hs_interpolation interpolation, hs_image *dst, hs_error *err) {
    memset(dst, 0, sizeof *dst);
    const filter f = filter_of(interpolation);
    if (!src || !src->pixels || src->width <= 0 || src->height <= 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "resize: empty source image");
    if (width <= 0 || height <= 0 || (long long)width * height > HS_IMAGE_MAX_PIXELS)
        return hs_fail(err, HS_ERR_ARGUMENT, "resize: invalid target size %d x %d", width,
                       height);
    const int sw = src->width, sh = src->height;
    double taps_h = width != sw ? axis_taps(sw, width, f) : 0;
    double taps_v = height != sh ? axis_taps(sh, height, f) : 0;
    if (taps_h > (double)HS_RESIZE_MAX_TAPS || taps_v > (double)HS_RESIZE_MAX_TAPS)
        return hs_fail(err, HS_ERR_IMAGE,
                       "resize: %d x %d to %d x %d needs %.0f filter taps, more than the %lld "
                       "a resize may have", sw, sh, width, height,
                       taps_h > taps_v ? taps_h : taps_v, (long long)HS_RESIZE_MAX_TAPS);
    size_t out_bytes = (size_t)width * (size_t)height * 3u;
    uint8_t *out = malloc(out_bytes);
    if (!out) return hs_fail(err, HS_ERR_NOMEM, "resize: out of memory");
    if (width == sw && height == sh) {
        memcpy(out, src->pixels, out_bytes);
        dst->width = width;
        dst->height = height;
        dst->pixels = out;
        return HS_OK;
    }
    coeffs ch, cv;
    int okh = coeffs_make(sw, width, f, &ch);
    int okv = okh && coeffs_make(sh, height, f, &cv);
    if (!okh || !okv) {
        if (okh) coeffs_free(&ch);
        free(out);
        return hs_fail(err, HS_ERR_NOMEM, "resize: out of memory");
    }
    const int need_h = width != sw, need_v = height != sh;
    hs_status st = HS_OK;
    if (need_h) {
        /* Only the source rows the vertical pass reads, as Pillow does. */
        int first = cv.bounds[0];
        int last = cv.bounds[height * 2 - 2] + cv.bounds[height * 2 - 1];
        if (!need_v) {
            first = 0;
            last = sh;
        }
        int rows = last - first;
        if (!need_v) {
            resample_h(src->pixels, sw, 0, sh, out, width, &ch);
        } else {
            uint8_t *tmp = malloc((size_t)width * (size_t)rows * 3u);
            if (!tmp) {
                st = hs_fail(err, HS_ERR_NOMEM, "resize: out of memory");
            } else {
                resample_h(src->pixels, sw, first, rows, tmp, width, &ch);
                if (!resample_v(tmp, width, out, height, &cv, first))
                    st = hs_fail(err, HS_ERR_NOMEM, "resize: out of memory");
                free(tmp);
            }
        }
    } else if (!resample_v(src->pixels, sw, out, height, &cv, 0)) {
        st = hs_fail(err, HS_ERR_NOMEM, "resize: out of memory");
    }
    coeffs_free(&ch);
    coeffs_free(&cv);
    if (st != HS_OK) {
        free(out);
        return st;
    }
    dst->width = width;
    dst->height = height;
    dst->pixels = out;
    return HS_OK;
}

void hs_image_to_tensor(const hs_image *img, const float mean[3], const float std[3],
                        float *out) {
    const size_t plane = (size_t)img->width * (size_t)img->height;
    for (int ch = 0; ch < 3; ch++) {
        float *o = out + ch * plane;
        const float m = mean[ch], s = std[ch];
        for (size_t i = 0; i < plane; i++) {
            /* the float32 operations of ToTensor (x / 255) then Normalize ((x - m) / s) */
            volatile float v = (float)img->pixels[i * 3 + ch] / 255.0f;
            o[i] = (v - m) / s;
        }
    }
}

/* Python's int(round(x / 2.0)) for x >= 0: halves round to even. */
static int half_round_even(int x) {
    int q = x / 2;
    if ((x & 1) && (q & 1)) q++;
    return q;
}

hs_status hs_image_preprocess(const hs_image *img, const hs_preprocess *pp, float *out,
                              hs_error *err) {
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "preprocess: empty image");
    if (!pp || pp->resize_size <= 0 || pp->input_size <= 0)
        return hs_fail(err, HS_ERR_ARGUMENT, "preprocess: invalid sizes");
    const int w = img->width, h = img->height, size = pp->resize_size;
    /* torchvision Resize(int): the shorter side becomes size, the longer int(size*long/short),
     * computed in double and checked before it becomes an int */
    double longer = (double)size * (double)(w <= h ? h : w) / (double)(w <= h ? w : h);
    if (longer * size > (double)HS_IMAGE_MAX_PIXELS)
        return hs_fail(err, HS_ERR_IMAGE,
                       "preprocess: %d x %d pixels would become %.0f x %d, over the limit of "
                       "%lld pixels (aspect ratio too extreme)", w, h, longer, size,
                       (long long)HS_IMAGE_MAX_PIXELS);
    int nw = w <= h ? size : (int)longer, nh = w <= h ? (int)longer : size;
    hs_image resized = {0, 0, NULL};
    const hs_image *r = img;
    if (nw != w || nh != h) {
        hs_status st = hs_image_resize_with(img, nw, nh, pp->interpolation, &resized, err);
        if (st != HS_OK) return hs_fail_context(err, st, "preprocess");
        r = &resized;
    }
    /* torchvision CenterCrop: pad with black when the crop is larger, then
     * top = int(round((h - th) / 2.0)). */
    const int S = pp->input_size;
    int pad_left = S > nw ? (S - nw) / 2 : 0, pad_top = S > nh ? (S - nh) / 2 : 0;
    int pw = nw + (S > nw ? S - nw : 0), ph = nh + (S > nh ? S - nh : 0);
    int left = half_round_even(pw - S), top = half_round_even(ph - S);
    const size_t plane = (size_t)S * S;
    for (int ch = 0; ch < 3; ch++) {
        const float m = pp->mean[ch], s = pp->std[ch];
        for (int y = 0; y < S; y++) {
            int sy = y + top - pad_top;
            for (int x = 0; x < S; x++) {
                int sx = x + left - pad_left;
                uint8_t px = 0;
                if (sy >= 0 && sy < nh && sx >= 0 && sx < nw)
                    px = r->pixels[((size_t)sy * nw + sx) * 3u + ch];
                volatile float v = (float)px / 255.0f;
                out[ch * plane + (size_t)y * S + x] = (v - m) / s;
            }
        }
    }
    hs_image_free(&resized);
    return HS_OK;
}

hs_status hs_image_file_to_tensor(const char *path, const hs_preprocess *pp, float *out,
                                  hs_error *err) {
    hs_image img;
    hs_status st = hs_image_load(path, &img, err);
    if (st != HS_OK) return st;
    st = hs_image_preprocess(&img, pp, out, err);
    hs_image_free(&img);
    if (st != HS_OK) return hs_fail_context(err, st, "%s", path);
    return HS_OK;
}
