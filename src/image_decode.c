/* Image decoding: JPEG (libjpeg-turbo) and PNG (libpng) into 8-bit RGB, chosen by content.
 *
 * The result is what PIL gives for ImageOps.exif_transpose(Image.open(p)).convert("RGB"):
 *  - JPEG grayscale, YCbCr/RGB, and CMYK/YCCK. PIL always reads 4-component JPEGs as
 *    Adobe-inverted CMYK ("CMYK;I") and converts with R = nk - nk * C / 255 (nk = 255 - K,
 *    C, K the un-inverted inks, PIL's MULDIV255 rounding); we do the same.
 *  - PNG gray (1/2/4/8 bit, scaled), gray+alpha, palette (tRNS ignored), RGB, RGBA and
 *    interlaced; alpha is dropped, never composited. 16-bit RGB, RGBA and gray+alpha keep
 *    the high byte (PIL's ";16B" raw modes). 16-bit gray is PIL's mode "I", whose
 *    convert("RGB") CLIPS each value to 0..255 (so most 16-bit gray pictures come out nearly
 *    white). We match PIL on purpose: a model trained with torchvision saw the same pixels.
 *  - EXIF orientation from the first APP1 "Exif" segment of a JPEG (and a PNG eXIf chunk
 *    placed before the image data) is applied.
 * Decompression bombs are refused from the header, before any pixel buffer exists. A JPEG
 * that ends early is an error (PIL: "image file is truncated"); libjpeg's other warnings are
 * ignored as PIL ignores them. The library never prints: libjpeg and libpng messages are
 * silenced and their errors come back as HS_ERR_IMAGE. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include "error.h"
#include "exif.h"
#include "image.h"

#define HS_IMAGE_MAX_FILE_BYTES (1024LL * 1024 * 1024)
/* A progressive JPEG with thousands of tiny scans costs time without pixels (libjpeg-turbo's
 * own fuzzers stop at 500 scans too). */
#define HS_JPEG_MAX_SCANS 1000

void hs_image_free(hs_image *img) {
    if (!img) return;
    free(img->pixels);
    img->pixels = NULL;
    img->width = img->height = 0;
}

static hs_status check_dims(const char *name, long long w, long long h, hs_error *err) {
    if (w <= 0 || h <= 0)
        return hs_fail(err, HS_ERR_IMAGE, "%s: image has no pixels (%lld x %lld)", name, w, h);
    if (w > HS_IMAGE_MAX_PIXELS || h > HS_IMAGE_MAX_PIXELS || w * h > HS_IMAGE_MAX_PIXELS)
        return hs_fail(err, HS_ERR_IMAGE, "%s: %lld x %lld pixels is over the limit of %lld",
                       name, w, h, (long long)HS_IMAGE_MAX_PIXELS);
    /* both sides are at most 89,478,485 here: the products cannot overflow */
    long long longer = w > h ? w : h, shorter = w > h ? h : w;
    if (longer > shorter * HS_IMAGE_MAX_ASPECT)
        return hs_fail(err, HS_ERR_IMAGE,
                       "%s: %lld x %lld pixels, an aspect ratio over the limit of %d:1 (no "
                       "resize to the network's input serves it)",
                       name, w, h, HS_IMAGE_MAX_ASPECT);
    return HS_OK;
}

/* ---- JPEG ------------------------------------------------------------------------------ */

typedef struct jpeg_ctx {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    int created;
    int truncated;
    char message[JMSG_LENGTH_MAX];
    uint8_t *pixels; /* RGB output */
    uint8_t *row;    /* one decoded scanline */
    hs_status status;
} jpeg_ctx;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_ctx *c = (jpeg_ctx *)cinfo->client_data;
    (*cinfo->err->format_message)(cinfo, c->message);
    longjmp(c->jump, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level) {
    jpeg_ctx *c = (jpeg_ctx *)cinfo->client_data;
    /* level -1: a warning. A premature end is an error for us; others are ignored. */
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) c->truncated = 1;
}

static void jpeg_on_output(j_common_ptr cinfo) { (void)cinfo; }

static void jpeg_on_progress(j_common_ptr cinfo) {
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    jpeg_ctx *c = (jpeg_ctx *)cinfo->client_data;
    if (d->input_scan_number > HS_JPEG_MAX_SCANS) {
        snprintf(c->message, sizeof c->message, "more than %d scans", HS_JPEG_MAX_SCANS);
        longjmp(c->jump, 1);
    }
    if (c->truncated) {
        snprintf(c->message, sizeof c->message, "premature end of data");
        longjmp(c->jump, 1);
    }
}

static uint8_t muldiv255(int a, int b) {
    int tmp = a * b + 128;
    return (uint8_t)(((tmp >> 8) + tmp) >> 8);
}

/* Runs the decoder; on failure returns nonzero with c->message set (the caller frees). */
static int jpeg_run(jpeg_ctx *c, const uint8_t *data, size_t size, const char *name,
                    int *orientation, hs_error *err) {
    struct jpeg_decompress_struct *ci = &c->cinfo;
    ci->err = jpeg_std_error(&c->jerr);
    c->jerr.error_exit = jpeg_on_error;
    c->jerr.emit_message = jpeg_on_message;
    c->jerr.output_message = jpeg_on_output;
    if (setjmp(c->jump)) return 1;
    jpeg_create_decompress(ci);
    c->created = 1;
    ci->client_data = c;
    c->progress.progress_monitor = jpeg_on_progress;
    ci->progress = &c->progress;
    jpeg_mem_src(ci, data, (unsigned long)size);
    jpeg_save_markers(ci, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(ci, TRUE);
    if (c->truncated) {
        snprintf(c->message, sizeof c->message, "premature end of data");
        return 1;
    }
    if (check_dims(name, ci->image_width, ci->image_height, err) != HS_OK) {
        c->status = err ? err->code : HS_ERR_IMAGE;
        return 2;
    }
    for (jpeg_saved_marker_ptr m = ci->marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 &&
            memcmp(m->data, "Exif\0\0", 6) == 0) {
            *orientation = hs_exif_orientation_app1(m->data, m->data_length);
            break; /* PIL uses the first Exif segment */
        }
    }
    int comps = ci->num_components;
    if (comps == 1) ci->out_color_space = JCS_GRAYSCALE;
    else if (comps == 3) ci->out_color_space = JCS_RGB;
    else if (comps == 4) ci->out_color_space = JCS_CMYK;
    else {
        snprintf(c->message, sizeof c->message, "unsupported JPEG with %d components", comps);
        return 1;
    }
    ci->dct_method = JDCT_ISLOW; /* PIL's default */
    ci->do_fancy_upsampling = TRUE;
    jpeg_start_decompress(ci);
    const size_t w = ci->output_width, h = ci->output_height;
    const int oc = ci->output_components;
    if (w != ci->image_width || h != ci->image_height || (oc != 1 && oc != 3 && oc != 4)) {
        snprintf(c->message, sizeof c->message, "unexpected decoder output");
        return 1;
    }
    c->pixels = malloc(w * h * 3u);
    c->row = malloc(w * (size_t)oc);
    if (!c->pixels || !c->row) {
        c->status = hs_fail(err, HS_ERR_NOMEM, "%s: out of memory for %zu x %zu pixels", name,
                            w, h);
        return 2;
    }
    while (ci->output_scanline < h) {
        size_t y = ci->output_scanline;
        JSAMPROW rows[1] = {c->row};
        if (jpeg_read_scanlines(ci, rows, 1) != 1 || c->truncated) {
            snprintf(c->message, sizeof c->message, "premature end of data");
            return 1;
        }
        uint8_t *o = c->pixels + y * w * 3u;
        const uint8_t *r = c->row;
        if (oc == 3) {
            memcpy(o, r, w * 3u);
        } else if (oc == 1) {
            for (size_t x = 0; x < w; x++) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = r[x];
        } else { /* Adobe-inverted CMYK, as PIL's "CMYK;I" then cmyk2rgb */
            for (size_t x = 0; x < w; x++, r += 4) {
                int nk = r[3]; /* 255 - K where K = 255 - raw */
                for (int k = 0; k < 3; k++) {
                    int ink = 255 - r[k];
                    int v = nk - muldiv255(ink, nk);
                    o[3 * x + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            }
        }
    }
    if (c->truncated) {
        snprintf(c->message, sizeof c->message, "premature end of data");
        return 1;
    }
    /* jpeg_finish_decompress is skipped on purpose: trailing garbage is not our concern. */
    return 0;
}

static hs_status decode_jpeg(const uint8_t *data, size_t size, const char *name, hs_image *out,
                             hs_error *err) {
    jpeg_ctx *c = calloc(1, sizeof *c);
    if (!c) return hs_fail(err, HS_ERR_NOMEM, "%s: out of memory", name);
    int orientation = 0;
    int rc = jpeg_run(c, data, size, name, &orientation, err);
    hs_status st = HS_OK;
    if (rc == 0) {
        out->width = (int)c->cinfo.output_width;
        out->height = (int)c->cinfo.output_height;
        out->pixels = c->pixels;
        c->pixels = NULL;
    } else if (rc == 1) {
        st = hs_fail(err, HS_ERR_IMAGE, "%s: corrupt JPEG: %s", name, c->message);
    } else {
        st = c->status;
    }
    if (c->created) jpeg_destroy_decompress(&c->cinfo);
    free(c->pixels);
    free(c->row);
    free(c);
    if (st == HS_OK) {
        st = hs_image_apply_orientation(out, orientation, err);
        if (st != HS_OK) hs_image_free(out);
    }
    return st;
}

/* ---- PNG ------------------------------------------------------------------------------- */

typedef struct png_ctx {
    const uint8_t *data;
    size_t size, pos;
    const char *name;
    char message[256];
    png_structp png;
    png_infop info;
    uint8_t *pixels;
    uint8_t *buf; /* decoded rows: one row, or the whole image when interlaced */
    png_bytep *rows;
    int width, height;
    int orientation;
    hs_status status;
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->message, sizeof c->message, "%s", msg ? msg : "error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_on_read(png_structp png, png_bytep out, png_size_t n) {
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->size - c->pos) png_error(png, "file is truncated");
    memcpy(out, c->data + c->pos, n);
    c->pos += n;
}

/* Converts one transformed row (8 or 16 bit, 1..4 channels) to RGB. */
static void png_row_to_rgb(const uint8_t *r, int channels, int depth16, int w, uint8_t *o) {
    for (int x = 0; x < w; x++, o += 3) {
        if (channels <= 2) { /* gray, gray + alpha */
            int v;
            if (depth16) {
                unsigned hi = r[(size_t)x * channels * 2], lo = r[(size_t)x * channels * 2 + 1];
                /* 16-bit gray: clip as PIL's mode I; gray+alpha: high byte as LA;16B */
                v = channels == 1 ? (int)((hi << 8 | lo) > 255 ? 255 : (hi << 8 | lo)) : (int)hi;
            } else {
                v = r[(size_t)x * channels];
            }
            o[0] = o[1] = o[2] = (uint8_t)v;
        } else {
            size_t step = (size_t)channels * (depth16 ? 2 : 1);
            const uint8_t *p = r + (size_t)x * step;
            int b = depth16 ? 2 : 1; /* big-endian: the high byte comes first */
            o[0] = p[0];
            o[1] = p[b];
            o[2] = p[2 * b];
        }
    }
}

static int png_run(png_ctx *c, hs_error *err) {
    png_structp png = c->png;
    png_infop info = c->info;
    if (setjmp(png_jmpbuf(png))) return 1;
    png_set_read_fn(png, c, png_on_read);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (check_dims(c->name, w, h, err) != HS_OK) {
        c->status = err ? err->code : HS_ERR_IMAGE;
        return 2;
    }
#ifdef PNG_eXIf_SUPPORTED
    {
        png_bytep exif = NULL;
        png_uint_32 n = 0;
        if (png_get_eXIf_1(png, info, &n, &exif) && n && exif)
            c->orientation = hs_exif_orientation(exif, n);
    }
#endif
    int color = png_get_color_type(png, info);
    int depth = png_get_bit_depth(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    /* 16-bit gray is kept at 16 bits (clipped below); everything else keeps the high byte. */
    if (depth == 16 && color != PNG_COLOR_TYPE_GRAY && color != PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_strip_16(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    int odepth = png_get_bit_depth(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (channels < 1 || channels > 4 || (odepth != 8 && odepth != 16) ||
        rowbytes < (size_t)w * channels * (odepth / 8)) {
        snprintf(c->message, sizeof c->message, "unsupported PNG layout");
        return 1;
    }
    c->width = (int)w;
    c->height = (int)h;
    c->pixels = malloc((size_t)w * h * 3u);
    size_t nrows = passes > 1 ? h : 1;
    c->buf = malloc(rowbytes * nrows);
    c->rows = malloc(sizeof *c->rows * nrows);
    if (!c->pixels || !c->buf || !c->rows) {
        c->status = hs_fail(err, HS_ERR_NOMEM, "%s: out of memory for %u x %u pixels",
                            c->name, (unsigned)w, (unsigned)h);
        return 2;
    }
    for (size_t i = 0; i < nrows; i++) c->rows[i] = c->buf + i * rowbytes;
    if (passes > 1) {
        png_read_image(png, c->rows);
        for (size_t y = 0; y < h; y++)
            png_row_to_rgb(c->rows[y], channels, odepth == 16, (int)w, c->pixels + y * w * 3u);
    } else {
        for (size_t y = 0; y < h; y++) {
            png_read_row(png, c->rows[0], NULL);
            png_row_to_rgb(c->rows[0], channels, odepth == 16, (int)w, c->pixels + y * w * 3u);
        }
    }
    /* png_read_end is skipped: chunks after the image data do not change the pixels. */
    return 0;
}

static hs_status decode_png(const uint8_t *data, size_t size, const char *name, hs_image *out,
                            hs_error *err) {
    png_ctx *c = calloc(1, sizeof *c);
    if (!c) return hs_fail(err, HS_ERR_NOMEM, "%s: out of memory", name);
    c->data = data;
    c->size = size;
    c->name = name;
    hs_status st = HS_OK;
    c->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_on_error, png_on_warning);
    c->info = c->png ? png_create_info_struct(c->png) : NULL;
    if (!c->png || !c->info) {
        st = hs_fail(err, HS_ERR_NOMEM, "%s: out of memory", name);
    } else {
        int rc = png_run(c, err);
        if (rc == 0) {
            out->width = c->width;
            out->height = c->height;
            out->pixels = c->pixels;
            c->pixels = NULL;
        } else if (rc == 1) {
            st = hs_fail(err, HS_ERR_IMAGE, "%s: corrupt PNG: %s", name, c->message);
        } else {
            st = c->status;
        }
    }
    if (c->png) png_destroy_read_struct(&c->png, c->info ? &c->info : NULL, NULL);
    int orientation = c->orientation;
    free(c->pixels);
    free(c->buf);
    free(c->rows);
    free(c);
    if (st == HS_OK) {
        st = hs_image_apply_orientation(out, orientation, err);
        if (st != HS_OK) hs_image_free(out);
    }
    return st;
}

/* ---- Entry points ---------------------------------------------------------------------- */

hs_status hs_image_decode_memory(const uint8_t *data, size_t size, const char *name,
                                 hs_image *out, hs_error *err) {
    if (!name) name = "<memory>";
    memset(out, 0, sizeof *out);
    if (!data || size == 0) return hs_fail(err, HS_ERR_IMAGE, "%s: empty file", name);
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        return decode_jpeg(data, size, name, out, err);
    if (size >= 8 && memcmp(data, png_magic, 8) == 0) return decode_png(data, size, name, out, err);
    return hs_fail(err, HS_ERR_IMAGE, "%s: not a JPEG or PNG image", name);
}

hs_status hs_image_load(const char *path, hs_image *out, hs_error *err) {
    memset(out, 0, sizeof *out);
    /* O_NONBLOCK: opening a FIFO (or a device) named like an image must not wait for a
     * writer; it is refused below as not a regular file. Reads of a regular file ignore it. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return hs_fail(err, HS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat stt;
    if (fstat(fd, &stt) != 0 || !S_ISREG(stt.st_mode)) {
        close(fd);
        return hs_fail(err, HS_ERR_IO, "%s: not a regular file", path);
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return hs_fail(err, HS_ERR_NOMEM, "%s: cannot open: %s", path, strerror(errno));
    }
    if ((long long)stt.st_size > HS_IMAGE_MAX_FILE_BYTES) {
        fclose(f);
        return hs_fail(err, HS_ERR_IMAGE, "%s: %lld bytes is over the image file limit of %lld",
                       path, (long long)stt.st_size, HS_IMAGE_MAX_FILE_BYTES);
    }
    size_t size = (size_t)stt.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return hs_fail(err, HS_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, size);
    }
    size_t got = size ? fread(buf, 1, size, f) : 0;
    int rerr = ferror(f);
    fclose(f);
    if (got != size || rerr) {
        free(buf);
        return hs_fail(err, HS_ERR_IO, "%s: read error", path);
    }
    hs_status st = hs_image_decode_memory(buf, size, path, out, err);
    free(buf);
    return st;
}
