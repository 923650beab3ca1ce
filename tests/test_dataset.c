/* Data sets: layouts (class folders, train/val, archives of both, CIFAR-10 binary), classes,
 * split, limits, skipped files, warnings, decoded pixels and every error case. The data is
 * written at run time under HS_TEST_TMP_DIR. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "dataset.h"
#include "dataset_internal.h"
#include "folder_walk.h"
#include "test_util.h"

#define ROOT HS_TEST_TMP_DIR "/dataset"
#define MTIME 1600000000

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void mkdirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    if (fread(b, 1, (size_t)len, f) != (size_t)len) exit(1);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void rm_rf(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
            rm_rf(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* A 4x3 PNG whose pixel (x, y) is (tag, 10 x, 20 y + 1): the tag says which file it is. */
#define PW 4
#define PH 3
static void write_png(const char *path, int tag) {
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!f || !png || !info || setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, PW, PH, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < PH; y++) {
        png_byte row[PW * 3];
        for (int x = 0; x < PW; x++) {
            row[3 * x] = (png_byte)tag;
            row[3 * x + 1] = (png_byte)(10 * x);
            row[3 * x + 2] = (png_byte)(20 * y + 1);
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static int png_tag_ok(const hs_image *img, int *tag) {
    if (img->width != PW || img->height != PH) return 0;
    *tag = img->pixels[0];
    for (int y = 0; y < PH; y++)
        for (int x = 0; x < PW; x++) {
            const uint8_t *p = img->pixels + 3 * (y * PW + x);
            if (p[0] != *tag || p[1] != 10 * x || p[2] != 20 * y + 1) return 0;
        }
    return 1;
}

static void copy_fixture(const char *name, const char *dst) {
    size_t n;
    char src[4096];
    snprintf(src, sizeof src, "%s/images/%s", HS_FIXTURES_DIR, name);
    uint8_t *b = read_all(src, &n);
    write_bytes(dst, b, n);
    free(b);
}
#define COPY_FIXTURE(name, dst) copy_fixture(name, dst)

/* Writes DIR (recursively, hidden entries included) into an archive under member prefix. */
static void archive_add(struct archive *a, const char *disk, const char *member) {
    DIR *d = opendir(disk);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char full[4096], mem[4096];
        snprintf(full, sizeof full, "%s/%s", disk, de->d_name);
        snprintf(mem, sizeof mem, "%s%s%s", member, member[0] ? "/" : "", de->d_name);
        struct stat sb;
        stat(full, &sb);
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, mem);
        archive_entry_set_mtime(e, MTIME, 0);
        if (S_ISDIR(sb.st_mode)) {
            archive_entry_set_filetype(e, AE_IFDIR);
            archive_entry_set_perm(e, 0755);
            archive_write_header(a, e);
            archive_entry_free(e);
            archive_add(a, full, mem);
        } else {
            size_t n;
            uint8_t *b = read_all(full, &n);
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 0644);
            archive_entry_set_size(e, (la_int64_t)n);
            if (archive_write_header(a, e) < ARCHIVE_WARN ||
                archive_write_data(a, b, n) != (la_ssize_t)n) {
                fprintf(stderr, "archive write failed: %s\n", archive_error_string(a));
                exit(1);
            }
            archive_entry_free(e);
            free(b);
        }
    }
    closedir(d);
}

/* gz: 0 tar, 1 tar.gz, 2 zip, 3 tar.bz2, 4 tar.xz, 5 tar.zst, 6 tar.lz4, 7 tar.Z */
static void make_archive(const char *out, int gz, const char *dir, const char *prefix) {
    struct archive *a = archive_write_new();
    if (gz == 1) archive_write_add_filter_gzip(a);
    if (gz == 3) archive_write_add_filter_bzip2(a);
    if (gz == 4) archive_write_add_filter_xz(a);
    if (gz == 5) archive_write_add_filter_zstd(a);
    if (gz == 6) archive_write_add_filter_lz4(a);
    if (gz == 7) archive_write_add_filter_compress(a);
    if (gz == 2) archive_write_set_format_zip(a);
    else archive_write_set_format_pax_restricted(a);
    if (archive_write_open_filename(a, out) != ARCHIVE_OK) {
        fprintf(stderr, "cannot write %s\n", out);
        exit(1);
    }
    archive_add(a, dir, prefix);
    archive_write_close(a);
    archive_write_free(a);
}

/* ---- The data ----------------------------------------------------------------------------- */

#define UNI "dog 2 \xc3\xbcn\xc3\xaf" /* "dog 2 ünï" */

/* cf: cat 10 + 1 nested (11), UNI 6 (4 png, 1 .PNG, 1 jpg), zebra 4, empty/, hidden things,
 * notes.txt at the root and in zebra. Tags: cat 0..10, dog 20..25, zebra 40..43. */
static void build_class_folders(const char *root) {
    char p[4096];
    mkdirs(root);
    for (int i = 0; i < 10; i++) {
        snprintf(p, sizeof p, "%s/cat", root);
        mkdirs(p);
        snprintf(p, sizeof p, "%s/cat/c%02d.png", root, i);
        write_png(p, i);
    }
    snprintf(p, sizeof p, "%s/cat/sub", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/cat/sub/nested.png", root);
    write_png(p, 10);
    snprintf(p, sizeof p, "%s/cat/.hidden.png", root);
    write_png(p, 99);
    snprintf(p, sizeof p, "%s/" UNI, root);
    mkdirs(p);
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/" UNI "/d%d.png", root, i);
        write_png(p, 20 + i);
    }
    snprintf(p, sizeof p, "%s/" UNI "/D4.PNG", root);
    write_png(p, 24);
    snprintf(p, sizeof p, "%s/" UNI "/d5.jpg", root);
    COPY_FIXTURE("rgb.jpg", p);
    snprintf(p, sizeof p, "%s/zebra", root);
    mkdirs(p);
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/zebra/z%d.png", root, i);
        write_png(p, 40 + i);
    }
    snprintf(p, sizeof p, "%s/zebra/notes.txt", root);
    write_text(p, "stripes");
    snprintf(p, sizeof p, "%s/empty", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/.ipynb_checkpoints", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/.ipynb_checkpoints/x.png", root);
    write_png(p, 98);
    snprintf(p, sizeof p, "%s/.git/objects", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/.DS_Store", root);
    write_text(p, "junk");
    snprintf(p, sizeof p, "%s/notes.txt", root);
    write_text(p, "about this data");
}

/* tv: train a 5, b 4, c 3; val a, b, c 2 each; test/ with other classes (val wins). Tags: train
 * 100 + 10 class + i, val 150 + 10 class + i. */
static void build_side(const char *root, const char *side, const int *counts, int base,
                       const char *const *names, int n) {
    char p[4096];
    for (int c = 0; c < n; c++) {
        snprintf(p, sizeof p, "%s/%s/%s", root, side, names[c]);
        mkdirs(p);
        for (int i = 0; i < counts[c]; i++) {
            snprintf(p, sizeof p, "%s/%s/%s/%d.png", root, side, names[c], i);
            write_png(p, base + 10 * c + i);
        }
    }
}

static const char *const ABC[] = {"a", "b", "c"};

static void build_train_val(const char *root) {
    int tr[] = {5, 4, 3}, va[] = {2, 2, 2}, te[] = {1, 1};
    const char *const other[] = {"x", "y"};
    build_side(root, "train", tr, 100, ABC, 3);
    build_side(root, "val", va, 150, ABC, 3);
    build_side(root, "test", te, 200, other, 2);
}

/* CIFAR-10: 5 data batches of 20 records and a test batch of 10, labels (7 b + i) % 10 and
 * pixels R = (i + p), G = (31 b + 3 p), B = 20 label (mod 256) for plane position p. */
static uint8_t rec_label(int b, int i) { return (uint8_t)((7 * b + i) % 10); }
static uint8_t rec_r(int b, int i, int p) { (void)b; return (uint8_t)(i + p); }
static uint8_t rec_g(int b, int i, int p) { (void)i; return (uint8_t)(31 * b + 3 * p); }
static uint8_t rec_b(int b, int i, int p) { (void)p; return (uint8_t)(20 * rec_label(b, i)); }

static void write_batch(const char *path, int b, int n) {
    uint8_t *buf = malloc((size_t)n * HS_CIFAR_RECORD);
    for (int i = 0; i < n; i++) {
        uint8_t *r = buf + (size_t)i * HS_CIFAR_RECORD;
        r[0] = rec_label(b, i);
        for (int p = 0; p < 1024; p++) {
            r[1 + p] = rec_r(b, i, p);
            r[1025 + p] = rec_g(b, i, p);
            r[2049 + p] = rec_b(b, i, p);
        }
    }
    write_bytes(path, buf, (size_t)n * HS_CIFAR_RECORD);
    free(buf);
}

static void build_cifar(const char *dir, int meta) {
    char p[4096];
    mkdirs(dir);
    for (int b = 1; b <= 5; b++) {
        snprintf(p, sizeof p, "%s/data_batch_%d.bin", dir, b);
        write_batch(p, b, 20);
    }
    snprintf(p, sizeof p, "%s/test_batch.bin", dir);
    write_batch(p, 6, 10); /* b = 6 for the test batch */
    if (meta) {
        snprintf(p, sizeof p, "%s/batches.meta.txt", dir);
        write_text(p, "n0\nn1\nn2\nn3\nn4\nn5\nn6\nn7\nn8\nn 9\r\n\n");
    }
}

/* ---- Helpers for checks ------------------------------------------------------------------- */

static int count_label(const hs_dataset *d, int label) {
    int n = 0;
    for (int i = 0; i < d->count; i++) n += d->samples[i].label == label;
    return n;
}

static int has_sample(const hs_dataset *d, const char *name) {
    for (int i = 0; i < d->count; i++)
        if (strcmp(d->samples[i].name, name) == 0) return 1;
    return 0;
}

static int warning_mentions(const hs_dataset *d, const char *what) {
    for (int i = 0; i < d->warning_count; i++)
        if (strstr(d->warnings[i], what)) return 1;
    return 0;
}

/* Every sample decodes (in parallel threads); PNG tags match the label's tag range. */
static void check_decode_all(const char *what, const hs_dataset *d, const int *tag_base) {
    int bad = 0, wrong = 0;
#pragma omp parallel for reduction(+ : bad, wrong) schedule(dynamic)
    for (int i = 0; i < d->count; i++) {
        hs_image img;
        hs_error err;
        if (hs_dataset_load_image(d, i, &img, &err) != HS_OK) {
            bad++;
            continue;
        }
        int tag;
        const char *nm = d->samples[i].name;
        size_t l = strlen(nm);
        int is_png = l > 4 && (!strcmp(nm + l - 4, ".png") || !strcmp(nm + l - 4, ".PNG"));
        if (is_png) {
            if (!png_tag_ok(&img, &tag)) wrong++;
            else if (tag_base && (tag < tag_base[d->samples[i].label] ||
                                  tag >= tag_base[d->samples[i].label] + 20))
                wrong++;
        } else if (img.width != 17 || img.height != 11) {
            wrong++;
        }
        hs_image_free(&img);
    }
    CHECK_MSG(bad == 0 && wrong == 0, "%s: %d failed to decode, %d wrong pixels", what, bad,
              wrong);
}

static int same_names(const hs_dataset *a, const hs_dataset *b) {
    if (a->count != b->count) return 0;
    for (int i = 0; i < a->count; i++)
        if (strcmp(a->samples[i].name, b->samples[i].name) != 0) return 0;
    return 1;
}

static void expect_error(const char *what, hs_status got, hs_status want, const hs_error *err,
                         const char *mention) {
    CHECK_MSG(got == want, "%s: status %d, want %d (%s)", what, got, want,
              got ? err->message : "ok");
    if (got && mention)
        CHECK_MSG(strstr(err->message, mention) != NULL, "%s: message '%s' lacks '%s'", what,
                  err->message, mention);
}

/* ---- Tests -------------------------------------------------------------------------------- */

static const int CF_TAGS[] = {0, 20, 40};

static void check_class_folder_set(const char *what, const hs_dataset *tr, const hs_dataset *va,
                                   int expect_names_prefix) {
    CHECK_MSG(tr->class_count == 3 && va->class_count == 3, "%s: %d classes", what,
              tr->class_count);
    if (tr->class_count != 3) return;
    CHECK(strcmp(tr->class_names[0], "cat") == 0);
    CHECK(strcmp(tr->class_names[1], UNI) == 0);
    CHECK(strcmp(tr->class_names[2], "zebra") == 0);
    CHECK(strcmp(va->class_names[1], UNI) == 0);
    /* split 0.25: cat 11 -> 3 val, dog 6 -> 2, zebra 4 -> 1 */
    CHECK_MSG(tr->count == 15 && va->count == 6, "%s: %d train %d val", what, tr->count,
              va->count);
    CHECK(count_label(va, 0) == 3 && count_label(va, 1) == 2 && count_label(va, 2) == 1);
    CHECK(count_label(tr, 0) == 8 && count_label(tr, 1) == 4 && count_label(tr, 2) == 3);
    CHECK_MSG(tr->skipped_files == 2 && va->skipped_files == 0, "%s: skipped %d/%d", what,
              tr->skipped_files, va->skipped_files);
    CHECK_MSG(tr->warning_count == 1 && warning_mentions(tr, "'empty'"), "%s: warnings %d",
              what, tr->warning_count);
    /* sorted by class then name on each side */
    int sorted = 1;
    for (int i = 1; i < tr->count; i++)
        if (tr->samples[i - 1].label > tr->samples[i].label ||
            (tr->samples[i - 1].label == tr->samples[i].label &&
             strcmp(tr->samples[i - 1].name, tr->samples[i].name) >= 0))
            sorted = 0;
    CHECK_MSG(sorted, "%s: train samples not in class/name order", what);
    /* no hidden file anywhere */
    int hidden = 0;
    for (int s = 0; s < 2; s++) {
        const hs_dataset *d = s ? va : tr;
        for (int i = 0; i < d->count; i++)
            if (strstr(d->samples[i].name, "/.") || strstr(d->samples[i].name, "hidden"))
                hidden = 1;
    }
    CHECK_MSG(!hidden, "%s: a hidden file became a sample", what);
    (void)expect_names_prefix;
    check_decode_all(what, tr, CF_TAGS);
    check_decode_all(what, va, CF_TAGS);
}

static void test_class_folders(void) {
    const char *root = ROOT "/cf";
    hs_dataset_options o = {0.25, 1, 0, 0};
    hs_dataset tr, va;
    hs_error err = {0};
    hs_status st = hs_dataset_open(root, &o, &tr, &va, &err);
    CHECK_MSG(st == HS_OK, "class folders: %s", err.message);
    if (st) return;
    check_class_folder_set("class folders", &tr, &va, 0);
    CHECK(tr.samples[0].kind == HS_SAMPLE_FILE);
    /* size and mtime of a file */
    struct stat sb;
    stat(tr.samples[0].name, &sb);
    CHECK(tr.samples[0].size == (int64_t)sb.st_size && tr.samples[0].mtime == (int64_t)sb.st_mtime);
    CHECK(has_sample(&tr, ROOT "/cf/cat/sub/nested.png") || has_sample(&va, ROOT "/cf/cat/sub/nested.png"));

    /* same seed: same split; another seed: another split */
    hs_dataset tr2, va2;
    CHECK(hs_dataset_open(root, &o, &tr2, &va2, &err) == HS_OK);
    CHECK(same_names(&tr, &tr2) && same_names(&va, &va2));
    hs_dataset_free(&tr2);
    hs_dataset_free(&va2);
    o.seed = 2;
    CHECK(hs_dataset_open(root, &o, &tr2, &va2, &err) == HS_OK);
    CHECK(va2.count == 6 && !same_names(&va, &va2));
    hs_dataset_free(&va2); /* either order */
    hs_dataset_free(&tr2);

    /* limits: 6 of 15 train -> 2 a class; 3 of 6 val -> 1 a class */
    o.seed = 1;
    o.limit_train = 6;
    o.limit_val = 3;
    CHECK(hs_dataset_open(root, &o, &tr2, &va2, &err) == HS_OK);
    CHECK(tr2.count == 6 && count_label(&tr2, 0) == 2 && count_label(&tr2, 1) == 2 &&
          count_label(&tr2, 2) == 2);
    CHECK(va2.count == 3 && count_label(&va2, 0) == 1 && count_label(&va2, 1) == 1);
    int subset = 1; /* a subset of the unlimited split */
    for (int i = 0; i < tr2.count; i++) subset &= has_sample(&tr, tr2.samples[i].name);
    for (int i = 0; i < va2.count; i++) subset &= has_sample(&va, va2.samples[i].name);
    CHECK_MSG(subset, "limited sets are subsets of the split");
    hs_dataset_free(&tr2);
    hs_dataset_free(&va2);

    /* eval: every image, no split */
    hs_dataset ev;
    CHECK(hs_dataset_open_eval(root, &ev, &err) == HS_OK);
    CHECK(ev.count == 21 && ev.class_count == 3 && ev.skipped_files == 2);
    hs_dataset_free(&ev);
    hs_dataset_free(&va); /* val first: the storage is shared */
    hs_dataset_free(&tr);
    hs_dataset_free(&tr); /* a second free is harmless */
}

static void check_train_val(const char *what, const hs_dataset *tr, const hs_dataset *va) {
    CHECK_MSG(tr->class_count == 3 && va->class_count == 3 && tr->count == 12 && va->count == 6,
              "%s: %d/%d classes, %d/%d images", what, tr->class_count, va->class_count,
              tr->count, va->count);
    if (tr->class_count != 3) return;
    CHECK(!strcmp(tr->class_names[0], "a") && !strcmp(va->class_names[2], "c"));
    CHECK(count_label(tr, 0) == 5 && count_label(tr, 1) == 4 && count_label(tr, 2) == 3);
    int tags_tr[] = {100, 110, 120}, tags_va[] = {150, 160, 170};
    check_decode_all(what, tr, tags_tr);
    check_decode_all(what, va, tags_va);
}

static void test_train_val(void) {
    hs_dataset_options o = {0.2, 7, 0, 0};
    hs_dataset tr, va, ev;
    hs_error err = {0};
    hs_status st = hs_dataset_open(ROOT "/tv", &o, &tr, &va, &err);
    CHECK_MSG(st == HS_OK, "train/val: %s", err.message);
    if (!st) check_train_val("train/val", &tr, &va);
    hs_dataset_free(&tr);
    hs_dataset_free(&va);
    st = hs_dataset_open_eval(ROOT "/tv", &ev, &err);
    CHECK(st == HS_OK && ev.count == 6 && ev.class_count == 3);
    hs_dataset_free(&ev);

    /* a class missing on one side */
    st = hs_dataset_open(ROOT "/tv_missing", &o, &tr, &va, &err);
    expect_error("missing class", st, HS_ERR_FORMAT, &err, "'b'");
    hs_dataset_free(&tr);
    hs_dataset_free(&va);

    /* train.tar.gz + test.tar.gz beside each other (the shared CIFAR copy's form) */
    st = hs_dataset_open(ROOT "/tvarch", &o, &tr, &va, &err);
    CHECK_MSG(st == HS_OK, "side archives: %s", err.message);
    if (!st) {
        check_train_val("side archives", &tr, &va);
        CHECK(tr.samples[0].kind == HS_SAMPLE_ENCODED && tr.samples[0].mtime == MTIME);
        CHECK_MSG(!strcmp(tr.samples[0].name, ROOT "/tvarch/train.tar.gz:train/a/0.png"), "%s",
                  tr.samples[0].name);
        CHECK(tr.samples[0].size == (int64_t)tr.samples[0].byte_count);
    }
    hs_dataset_free(&tr);
    hs_dataset_free(&va);
    st = hs_dataset_open_eval(ROOT "/tvarch", &ev, &err);
    CHECK(st == HS_OK && ev.count == 6);
    hs_dataset_free(&ev);
}

static void test_archives(void) {
    hs_dataset_options o = {0.25, 1, 0, 0};
    hs_dataset tr, va, tr2, va2;
    hs_error err = {0};
    const char *cf_archives[] = {ROOT "/cf_top.tar", ROOT "/cf.tar.gz", ROOT "/cf_dot.tgz",
                                 ROOT "/cf.zip"};
    hs_dataset ftr, fva;
    CHECK(hs_dataset_open(ROOT "/cf", &o, &ftr, &fva, &err) == HS_OK);
    for (int k = 0; k < 4; k++) {
        hs_status st = hs_dataset_open(cf_archives[k], &o, &tr, &va, &err);
        CHECK_MSG(st == HS_OK, "%s: %s", cf_archives[k], err.message);
        if (!st) {
            check_class_folder_set(cf_archives[k], &tr, &va, 1);
            CHECK(tr.samples[0].kind == HS_SAMPLE_ENCODED);
            /* the same split as the folder: same member paths below the root */
            int same = tr.count == ftr.count;
            for (int i = 0; same && i < tr.count; i++) {
                const char *a = strstr(tr.samples[i].name, "cat/");
                const char *b = strstr(ftr.samples[i].name, "cat/");
                if (!a) a = strstr(tr.samples[i].name, tr.class_names[tr.samples[i].label]);
                if (!b) b = strstr(ftr.samples[i].name, ftr.class_names[ftr.samples[i].label]);
                same = a && b && !strcmp(a, b);
            }
            CHECK_MSG(same, "%s: split differs from the folder's", cf_archives[k]);
        }
        hs_dataset_free(&va);
        hs_dataset_free(&tr);
    }
    hs_dataset_free(&ftr);
    hs_dataset_free(&fva);

    const char *tv_archives[] = {ROOT "/tv.tar.gz", ROOT "/tv_top.tar"};
    for (int k = 0; k < 2; k++) {
        hs_status st = hs_dataset_open(tv_archives[k], &o, &tr, &va, &err);
        CHECK_MSG(st == HS_OK, "%s: %s", tv_archives[k], err.message);
        if (!st) check_train_val(tv_archives[k], &tr, &va);
        hs_dataset_free(&tr);
        hs_dataset_free(&va);
        hs_dataset ev;
        st = hs_dataset_open_eval(tv_archives[k], &ev, &err);
        CHECK(st == HS_OK && ev.count == 6 && ev.class_count == 3);
        hs_dataset_free(&ev);
    }

    /* the in-memory reader gives the same as the file */
    size_t n;
    uint8_t *bytes = read_all(ROOT "/cf.tar.gz", &n);
    hs_status st = hs_dataset_open_archive_memory(bytes, n, "mem.tar.gz", &o, 0, &tr2, &va2, &err);
    CHECK_MSG(st == HS_OK && tr2.count == 15 && va2.count == 6, "memory archive: %s",
              st ? err.message : "counts");
    hs_dataset_free(&tr2);
    hs_dataset_free(&va2);
    /* truncated: an error, never a partial data set */
    st = hs_dataset_open_archive_memory(bytes, n / 2, "half.tar.gz", &o, 0, &tr2, &va2, &err);
    expect_error("truncated archive (memory)", st, HS_ERR_FORMAT, &err, "half.tar.gz");
    CHECK(tr2.count == 0 && va2.count == 0);
    hs_dataset_free(&tr2);
    hs_dataset_free(&va2);
    write_bytes(ROOT "/half.tar.gz", bytes, n / 2);
    st = hs_dataset_open(ROOT "/half.tar.gz", &o, &tr2, &va2, &err);
    expect_error("truncated archive", st, HS_ERR_FORMAT, &err, ROOT "/half.tar.gz");
    hs_dataset_free(&tr2);
    hs_dataset_free(&va2);
    free(bytes);
    /* cut inside a member of an uncompressed tar */
    bytes = read_all(ROOT "/cf_top.tar", &n);
    write_bytes(ROOT "/cut.tar", bytes, 20000);
    free(bytes);
    st = hs_dataset_open(ROOT "/cut.tar", &o, &tr2, &va2, &err);
    expect_error("cut tar", st, HS_ERR_FORMAT, &err, ROOT "/cut.tar");
    hs_dataset_free(&tr2);
    hs_dataset_free(&va2);

    /* size limits */
    int64_t keep = hs_dataset_member_limit;
    hs_dataset_member_limit = 100;
    st = hs_dataset_open(ROOT "/cf.tar.gz", &o, &tr2, &va2, &err);
    expect_error("member limit", st, HS_ERR_NOMEM, &err, "member");
    hs_dataset_free(&tr2);
    hs_dataset_free(&va2);
    hs_dataset_member_limit = keep;
    keep = hs_dataset_total_limit;
    hs_dataset_total_limit = 1000;
    st = hs_dataset_open(ROOT "/cf.tar.gz", &o, &tr2, &va2, &err);
    expect_error("total limit", st, HS_ERR_NOMEM, &err, ROOT "/cf.tar.gz");
    hs_dataset_free(&tr2);
    hs_dataset_free(&va2);
    hs_dataset_total_limit = keep;
}

static void check_record(const char *what, const hs_dataset *d) {
    int bad = 0;
    for (int s = 0; s < d->count; s++) {
        const char *nm = d->samples[s].name;
        const char *hash = strrchr(nm, '#');
        int b = strstr(nm, "test_batch") ? 6 : 0;
        const char *db = strstr(nm, "data_batch_");
        if (db) b = db[11] - '0';
        if (!hash || !b) {
            bad++;
            continue;
        }
        int i = atoi(hash + 1);
        if (d->samples[s].label != rec_label(b, i)) bad++;
        hs_image img;
        hs_error err;
        if (hs_dataset_load_image(d, s, &img, &err) != HS_OK) {
            bad++;
            continue;
        }
        if (img.width != 32 || img.height != 32) bad++;
        for (int p = 0; p < 1024 && img.width == 32; p++) {
            const uint8_t *px = img.pixels + 3 * p;
            if (px[0] != rec_r(b, i, p) || px[1] != rec_g(b, i, p) || px[2] != rec_b(b, i, p)) {
                bad++;
                break;
            }
        }
        hs_image_free(&img);
    }
    CHECK_MSG(bad == 0, "%s: %d records wrong", what, bad);
}

static void test_cifar(void) {
    hs_dataset_options o = {0.2, 3, 0, 0};
    hs_dataset tr, va, ev;
    hs_error err = {0};
    const char *dirs[] = {ROOT "/cifar", ROOT "/cifar/cifar-10-batches-bin", ROOT "/cifar_flat",
                          ROOT "/cifar.tar.gz"};
    for (int k = 0; k < 4; k++) {
        hs_status st = hs_dataset_open(dirs[k], &o, &tr, &va, &err);
        CHECK_MSG(st == HS_OK, "%s: %s", dirs[k], err.message);
        if (!st) {
            CHECK(tr.class_count == 10 && va.class_count == 10);
            CHECK(tr.count == 100 && va.count == 10);
            if (k == 2) /* no batches.meta.txt: the standard names */
                CHECK(!strcmp(tr.class_names[0], "airplane") && !strcmp(tr.class_names[9], "truck"));
            else
                CHECK_MSG(!strcmp(tr.class_names[0], "n0") && !strcmp(tr.class_names[9], "n 9"),
                          "%s: class 9 '%s'", dirs[k], tr.class_names[9]);
            CHECK(tr.samples[0].kind == HS_SAMPLE_RAW_RGB && tr.samples[0].raw_width == 32);
            CHECK(tr.samples[0].size == 20 * HS_CIFAR_RECORD);
            CHECK(count_label(&tr, 3) == 10 && count_label(&va, 3) == 1);
            check_record(dirs[k], &tr);
            check_record(dirs[k], &va);
        }
        hs_dataset_free(&tr);
        hs_dataset_free(&va);
    }
    /* limits: 50 of 100 -> 5 a class; 23 -> 3 for the first three classes, then 2 */
    o.limit_train = 50;
    o.limit_val = 4;
    CHECK(hs_dataset_open(ROOT "/cifar", &o, &tr, &va, &err) == HS_OK);
    int ok = tr.count == 50 && va.count == 4;
    for (int c = 0; c < 10; c++) ok &= count_label(&tr, c) == 5;
    for (int c = 0; c < 4; c++) ok &= count_label(&va, c) == 1;
    CHECK_MSG(ok, "cifar limits 50/4: %d/%d", tr.count, va.count);
    check_record("cifar limited", &tr);
    hs_dataset_free(&tr);
    hs_dataset_free(&va);
    o.limit_train = 23;
    CHECK(hs_dataset_open(ROOT "/cifar", &o, &tr, &va, &err) == HS_OK);
    ok = tr.count == 23;
    for (int c = 0; c < 10; c++) ok &= count_label(&tr, c) == (c < 3 ? 3 : 2);
    CHECK_MSG(ok, "cifar limit 23");
    hs_dataset_free(&tr);
    hs_dataset_free(&va);

    CHECK(hs_dataset_open_eval(ROOT "/cifar", &ev, &err) == HS_OK && ev.count == 10);
    check_record("cifar eval", &ev);
    hs_dataset_free(&ev);

    /* broken batches */
    o.limit_train = o.limit_val = 0;
    hs_status st = hs_dataset_open(ROOT "/cifar_badsize", &o, &tr, &va, &err);
    expect_error("cifar size", st, HS_ERR_FORMAT, &err, "data_batch_2.bin");
    hs_dataset_free(&tr);
    hs_dataset_free(&va);
    st = hs_dataset_open(ROOT "/cifar_badlabel", &o, &tr, &va, &err);
    expect_error("cifar label", st, HS_ERR_FORMAT, &err, "test_batch.bin");
    hs_dataset_free(&tr);
    hs_dataset_free(&va);

    /* the parser alone */
    uint8_t rec[HS_CIFAR_RECORD] = {9};
    uint8_t px[HS_CIFAR_PIXELS], lb[1];
    rec[1] = 1; rec[1025] = 2; rec[2049] = 3; rec[1024] = 4;
    CHECK(hs_cifar_parse_batch(rec, sizeof rec, 10, "r", px, lb, &err) == HS_OK);
    CHECK(lb[0] == 9 && px[0] == 1 && px[1] == 2 && px[2] == 3 && px[3 * 1023] == 4);
    CHECK(hs_cifar_parse_batch(rec, sizeof rec, 9, "r", px, lb, &err) == HS_ERR_FORMAT);
    CHECK(hs_cifar_parse_batch(rec, sizeof rec - 1, 10, "r", px, lb, &err) == HS_ERR_FORMAT);
    CHECK(hs_cifar_parse_batch(rec, 0, 10, "r", px, lb, &err) == HS_ERR_FORMAT);
}

static void test_errors(void) {
    hs_dataset_options o = {0.2, 1, 0, 0};
    hs_dataset tr, va, ev;
    hs_error err = {0};
    hs_status st;
#define OPEN_EXPECT(path, code, mention)                                                      \
    do {                                                                                      \
        st = hs_dataset_open(path, &o, &tr, &va, &err);                                       \
        expect_error(path, st, code, &err, mention);                                          \
        CHECK(tr.count == 0 && va.count == 0 && tr.class_names == NULL);                      \
        hs_dataset_free(&tr);                                                                 \
        hs_dataset_free(&va);                                                                 \
    } while (0)
    OPEN_EXPECT(ROOT "/does-not-exist", HS_ERR_IO, ROOT "/does-not-exist");
    OPEN_EXPECT(ROOT "/cf/notes.txt", HS_ERR_FORMAT, ROOT "/cf/notes.txt");
    OPEN_EXPECT(ROOT "/cf/cat/c00.png", HS_ERR_FORMAT, ROOT "/cf/cat/c00.png");
    OPEN_EXPECT(ROOT "/zero.tar", HS_ERR_FORMAT, ROOT "/zero.tar");
    OPEN_EXPECT(ROOT "/flat", HS_ERR_FORMAT, "<class>/<image>");
    OPEN_EXPECT(ROOT "/flat", HS_ERR_FORMAT, ROOT "/flat");
    OPEN_EXPECT(ROOT "/emptydir", HS_ERR_FORMAT, ROOT "/emptydir");
    OPEN_EXPECT(ROOT "/one", HS_ERR_ARGUMENT, ROOT "/one");
    OPEN_EXPECT(ROOT "/one.tar", HS_ERR_ARGUMENT, ROOT "/one.tar");
    o.val_fraction = 0;
    OPEN_EXPECT(ROOT "/cf", HS_ERR_ARGUMENT, ROOT "/cf");
    o.val_fraction = 1;
    OPEN_EXPECT(ROOT "/cf", HS_ERR_ARGUMENT, ROOT "/cf");
    o.val_fraction = 0.2;
    o.limit_train = -1;
    OPEN_EXPECT(ROOT "/cf", HS_ERR_ARGUMENT, NULL);
    o.limit_train = 0;
    st = hs_dataset_open_eval(ROOT "/does-not-exist", &ev, &err);
    expect_error("eval missing", st, HS_ERR_IO, &err, ROOT "/does-not-exist");
    hs_dataset_free(&ev);
    /* a class with one image: train only, and the split still works */
    st = hs_dataset_open(ROOT "/single", &o, &tr, &va, &err);
    CHECK_MSG(st == HS_OK && tr.count == 4 && va.count == 1, "single-image class: %s",
              st ? err.message : "counts");
    hs_dataset_free(&tr);
    hs_dataset_free(&va);
    /* NULL options are the defaults */
    st = hs_dataset_open(ROOT "/cf", NULL, &tr, &va, &err);
    CHECK(st == HS_OK && tr.count + va.count == 21);
    hs_dataset_free(&tr);
    hs_dataset_free(&va);
    CHECK(hs_dataset_load_image(&tr, 0, &(hs_image){0}, &err) == HS_ERR_ARGUMENT);
}

static void test_real_cifar(void) {
    const char *dir = HS_SOURCE_DIR "/../shared/data/cifar10-jpeg";
    if (!test_file_exists(HS_SOURCE_DIR "/../shared/data/cifar10-jpeg/test.tar.gz")) {
        printf("SKIP (part of test_dataset): the real CIFAR-10 archives (../shared/data/"
               "cifar10-jpeg, outside the repository) are not on this machine\n");
        return;
    }
    static const char *const names[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                           "dog",      "frog",       "horse", "ship", "truck"};
    hs_dataset_options o = {0.2, 42, 100, 50};
    hs_dataset tr, va;
    hs_error err = {0};
    double t0 = now_s();
    hs_status st = hs_dataset_open(dir, &o, &tr, &va, &err);
    double t1 = now_s();
    CHECK_MSG(st == HS_OK, "real CIFAR: %s", err.message);
    printf("real CIFAR-10 (train.tar.gz + test.tar.gz, limits 100/50): opened in %.2f s\n",
           t1 - t0);
    if (!st) {
        int ok = tr.class_count == 10 && va.class_count == 10 && tr.count == 100 && va.count == 50;
        for (int c = 0; ok && c < 10; c++)
            ok &= !strcmp(tr.class_names[c], names[c]) && count_label(&tr, c) == 10 &&
                  count_label(&va, c) == 5;
        CHECK_MSG(ok, "real CIFAR: %d classes, %d/%d images", tr.class_count, tr.count,
                  va.count);
        CHECK(t1 - t0 < 20);
        int bad = 0;
#pragma omp parallel for reduction(+ : bad)
        for (int i = 0; i < tr.count; i++) {
            hs_image img;
            hs_error e;
            if (hs_dataset_load_image(&tr, i, &img, &e) != HS_OK) { bad++; continue; }
            if (img.width != 32 || img.height != 32) bad++;
            hs_image_free(&img);
        }
        CHECK(bad == 0);
    }
    hs_dataset_free(&tr);
    hs_dataset_free(&va);
    hs_dataset ev;
    t0 = now_s();
    st = hs_dataset_open_eval(dir, &ev, &err);
    printf("real CIFAR-10 eval (test.tar.gz): %d images in %.2f s\n", ev.count, now_s() - t0);
    CHECK(st == HS_OK && ev.count == 10000 && ev.class_count == 10);
    hs_dataset_free(&ev);
}

static void build_all(void) {
    char p[4096];
    rm_rf(ROOT);
    test_make_dir(ROOT);
    build_class_folders(ROOT "/cf");
    build_train_val(ROOT "/tv");
    int tr2[] = {2, 2}, va1[] = {2};
    build_side(ROOT "/tv_missing", "train", tr2, 100, ABC, 2);
    build_side(ROOT "/tv_missing", "val", va1, 150, ABC, 1);
    /* side archives, each with its own top-level folder */
    mkdirs(ROOT "/tvarch");
    make_archive(ROOT "/tvarch/train.tar.gz", 1, ROOT "/tv/train", "train");
    make_archive(ROOT "/tvarch/test.tar.gz", 1, ROOT "/tv/val", "test");
    make_archive(ROOT "/cf_top.tar", 0, ROOT "/cf", "mydata");
    make_archive(ROOT "/cf.tar.gz", 1, ROOT "/cf", "");
    make_archive(ROOT "/cf_dot.tgz", 1, ROOT "/cf", "./");
    make_archive(ROOT "/cf.zip", 2, ROOT "/cf", "");
    make_archive(ROOT "/tv.tar.gz", 1, ROOT "/tv", "");
    make_archive(ROOT "/tv_top.tar", 0, ROOT "/tv", "data");
    build_cifar(ROOT "/cifar/cifar-10-batches-bin", 1);
    build_cifar(ROOT "/cifar_flat", 0);
    make_archive(ROOT "/cifar.tar.gz", 1, ROOT "/cifar", "");
    build_cifar(ROOT "/cifar_badsize", 0);
    FILE *f = fopen(ROOT "/cifar_badsize/data_batch_2.bin", "ab");
    fputs("xyz", f);
    fclose(f);
    build_cifar(ROOT "/cifar_badlabel", 0);
    f = fopen(ROOT "/cifar_badlabel/test_batch.bin", "r+b");
    fseek(f, 3 * HS_CIFAR_RECORD, SEEK_SET);
    fputc(12, f);
    fclose(f);
    mkdirs(ROOT "/flat");
    write_png(ROOT "/flat/1.png", 1);
    write_png(ROOT "/flat/2.png", 2);
    mkdirs(ROOT "/emptydir");
    mkdirs(ROOT "/one/cat");
    write_png(ROOT "/one/cat/1.png", 1);
    write_png(ROOT "/one/cat/2.png", 2);
    make_archive(ROOT "/one.tar", 0, ROOT "/one", "");
    write_bytes(ROOT "/zero.tar", "", 0);
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, ROOT "/single/%s", i < 4 ? "many" : "lonely");
        mkdirs(p);
        snprintf(p, sizeof p, ROOT "/single/%s/%d.png", i < 4 ? "many" : "lonely", i);
        write_png(p, i);
    }
}

/* ---- Links and the folder walker (issue 8 item 6) ---------------------------------------- */

static void link_or_die(const char *target, const char *path) {
    if (symlink(target, path) != 0) {
        fprintf(stderr, "cannot link %s -> %s\n", path, target);
        exit(1);
    }
}

/* A tree with loops ("-> ." twice at the top, "-> .." and "-> ." below), a second name for a
 * folder, a link to a file of another class, a broken link and a folder linked from outside:
 * before the one walker, classify hung on the two "-> ." links and the data set walker took
 * cat/self/... as more images of cat. */
static void build_links(void) {
    mkdirs(ROOT "/links/cat/sub");
    mkdirs(ROOT "/links/dog");
    mkdirs(ROOT "/outside/fish");
    write_png(ROOT "/links/cat/1.png", 1);
    write_png(ROOT "/links/cat/2.png", 2);
    write_png(ROOT "/links/cat/sub/3.png", 3);
    write_png(ROOT "/links/dog/4.png", 4);
    write_png(ROOT "/outside/fish/5.png", 5);
    write_png(ROOT "/outside/fish/6.png", 6);
    link_or_die(".", ROOT "/links/loop1");
    link_or_die(".", ROOT "/links/loop2");
    link_or_die("..", ROOT "/links/cat/up");
    link_or_die(".", ROOT "/links/cat/sub/self");
    link_or_die("..", ROOT "/links/cat/sub/up");
    link_or_die("../cat/1.png", ROOT "/links/dog/again.png");
    link_or_die("nowhere.png", ROOT "/links/dog/broken.png");
    link_or_die("../outside/fish", ROOT "/links/fish");
    link_or_die("cat", ROOT "/links/kitty");
    char p[4096] = ROOT "/deep";
    for (int i = 0; i < HS_WALK_MAX_DEPTH + 1; i++) strcat(p, "/d");
    mkdirs(p);
    strcat(p, "/7.png");
    write_png(p, 7);
}

static void test_links(void) {
    char **paths = NULL;
    int n = 0;
    hs_walk_stats stats = {0};
    hs_error err = {0};
    double t0 = now_s();
    hs_status st = hs_walk_images(ROOT "/links", &paths, &n, &stats, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    static const char *const want[] = {"cat/1.png", "cat/2.png", "cat/sub/3.png", "dog/4.png",
                                       "fish/5.png", "fish/6.png"};
    CHECK_MSG(n == 6, "%d images walked", n);
    for (int i = 0; i < n && i < 6; i++) {
        char full[512];
        snprintf(full, sizeof full, ROOT "/links/%s", want[i]);
        CHECK_MSG(strcmp(paths[i], full) == 0, "image %d: %s, not %s", i, paths[i], full);
    }
    /* loop1, loop2, cat/up, cat/sub/self, cat/sub/up, dog/again.png, kitty */
    CHECK_MSG(stats.repeats == 7, "%ld repeats", stats.repeats);
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
    CHECK_MSG(now_s() - t0 < 1.0, "the walk took %.2f s", now_s() - t0);

    /* the data set reads the same tree the same way: three classes, each image once */
    hs_dataset ev;
    st = hs_dataset_open_eval(ROOT "/links", &ev, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    if (!st) {
        CHECK_MSG(ev.class_count == 3 && ev.count == 6, "%d classes, %d images", ev.class_count,
                  ev.count);
        CHECK(ev.class_count == 3 && !strcmp(ev.class_names[0], "cat") &&
              !strcmp(ev.class_names[1], "dog") && !strcmp(ev.class_names[2], "fish"));
        CHECK(count_label(&ev, 0) == 3 && count_label(&ev, 1) == 1 && count_label(&ev, 2) == 2);
        hs_dataset_free(&ev);
    }
    /* nesting deeper than the walker goes is an error that names the folder, not a silent cut */
    n = 0;
    paths = NULL;
    st = hs_walk_images(ROOT "/deep", &paths, &n, NULL, &err);
    CHECK_MSG(st == HS_ERR_FORMAT && strstr(err.message, "nested more than 64 levels"), "%d %s",
              st, err.message);
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
    CHECK(hs_walk_images(ROOT "/links/cat/1.png", &paths, &n, NULL, &err) == HS_ERR_IO);
}

/* ---- Decompression filters (issue 8 item 11) ---------------------------------------------- */

/* bzip2, xz and zstd tars read in process; lz4, compress (.Z) and lrzip are refused, and no
 * program is ever started for them: a fake lrzip, lz4 and compress first on PATH would leave a
 * mark (with archive_read_support_filter_all, libarchive ran "lrzip -d -q" from PATH). */
static void test_filters(void) {
    mkdirs(ROOT "/filters/bin");
    make_archive(ROOT "/filters/cf.tar.bz2", 3, ROOT "/cf", "");
    make_archive(ROOT "/filters/cf.tar.xz", 4, ROOT "/cf", "");
    make_archive(ROOT "/filters/cf.tar.zst", 5, ROOT "/cf", "");
    make_archive(ROOT "/filters/cf.tar.lz4", 6, ROOT "/cf", "");
    make_archive(ROOT "/filters/cf.tar.Z", 7, ROOT "/cf", "");
    static const uint8_t lrzip[24] = {'L', 'R', 'Z', 'I', 0, 6};
    write_bytes(ROOT "/filters/cf.tar.lrz", lrzip, sizeof lrzip);
    static const char *const programs[] = {"lrzip", "lz4", "compress", "grzip", "lzop"};
    for (int i = 0; i < 5; i++) {
        char p[512];
        snprintf(p, sizeof p, ROOT "/filters/bin/%s", programs[i]);
        write_text(p, "#!/bin/sh\ntouch " ROOT "/filters/ran\ncat >/dev/null\n");
        chmod(p, 0755);
    }
    const char *old_path = getenv("PATH");
    char *saved = strdup(old_path ? old_path : "/usr/bin:/bin");
    char path[8192];
    snprintf(path, sizeof path, ROOT "/filters/bin:%s", saved);
    setenv("PATH", path, 1);
    unlink(ROOT "/filters/ran");

    hs_error err = {0};
    hs_dataset ev;
    static const char *const inside[] = {"cf.tar.bz2", "cf.tar.xz", "cf.tar.zst"};
    for (int i = 0; i < 3; i++) {
        char p[512];
        snprintf(p, sizeof p, ROOT "/filters/%s", inside[i]);
        hs_status st = hs_dataset_open_eval(p, &ev, &err);
        CHECK_MSG(st == HS_OK, "%s: %s", inside[i], err.message);
        if (st) continue;
        CHECK_MSG(ev.count == 21 && ev.class_count == 3, "%s: %d images", inside[i], ev.count);
        hs_dataset_free(&ev);
    }
    static const char *const refused[] = {"cf.tar.lz4", "cf.tar.Z", "cf.tar.lrz"};
    for (int i = 0; i < 3; i++) {
        char p[512];
        snprintf(p, sizeof p, ROOT "/filters/%s", refused[i]);
        hs_status st = hs_dataset_open_eval(p, &ev, &err);
        CHECK_MSG(st == HS_ERR_FORMAT && strstr(err.message, refused[i]) &&
                      strstr(err.message, ".tar.zst"), "%s: %d %s", refused[i], st,
                  err.message);
        if (!st) hs_dataset_free(&ev);
    }
    CHECK_MSG(!test_file_exists(ROOT "/filters/ran"), "an external decompressor was started");
    setenv("PATH", saved, 1);
    free(saved);
}

int main(void) {
    build_all();
    build_links();
    test_links();
    test_filters();
    test_class_folders();
    test_train_val();
    test_archives();
    test_cifar();
    test_errors();
    test_real_cifar();
    return check_finish("test_dataset");
}
