/* headstart features and headstart backbones, run as a user runs them: the rows against
 * hs_net_features on the same prepared images, both output formats read back by readers
 * of our own (a small .npy parser; the safetensors header through cJSON), row order, the
 * cache reused on a second run, config.json's preprocessing and its precedence, errors. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "feature_set.h"
#include "hash.h"
#include "image.h"
#include "test_util.h"

#define TMP HS_TEST_TMP_DIR "/features"
#define IMAGES HS_FIXTURES_DIR "/images"
#define SIZE 64 /* --img-size of the runs: small, so the backbone passes are quick */

static char out_text[1 << 16], err_text[1 << 16];

static size_t read_whole(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
    return n;
}

/* Runs `headstart ARGS` in TMP; stdout and stderr land in out_text and err_text. */
static int run(const char *args) {
    char command[8192];
    snprintf(command, sizeof command, "cd " TMP " && '%s' %s > out.txt 2> err.txt",
             HS_CLI_PATH, args);
    int status = system(command);
    read_whole(TMP "/out.txt", out_text, sizeof out_text);
    read_whole(TMP "/err.txt", err_text, sizeof err_text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void copy_file(const char *from, const char *to) {
    char command[2048];
    snprintf(command, sizeof command, "cp '%s' '%s'", from, to);
    CHECK_MSG(system(command) == 0, "%s", command);
}

/* ---- readers ------------------------------------------------------------------------------ */

typedef struct matrix {
    long rows;
    int cols;
    float *data;
} matrix;

/* NumPy format 1.0 as numpy.save writes float32 C-order 2-D arrays; anything else fails. */
static int read_npy(const char *path, matrix *m) {
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char head[10];
    char dict[65536];
    int ok = fread(head, 1, 10, f) == 10 && memcmp(head, "\x93NUMPY\x01\x00", 8) == 0;
    size_t len = ok ? (size_t)head[8] | (size_t)head[9] << 8 : 0;
    ok = ok && (10 + len) % 64 == 0 && len < sizeof dict && fread(dict, 1, len, f) == len;
    if (ok) {
        dict[len] = '\0';
        ok = dict[len - 1] == '\n' && strstr(dict, "'descr': '<f4'") &&
             strstr(dict, "'fortran_order': False") &&
             sscanf(strstr(dict, "'shape': ("), "'shape': (%ld, %d)", &m->rows, &m->cols) == 2;
    }
    if (ok) {
        size_t n = (size_t)m->rows * (size_t)m->cols;
        m->data = test_alloc_floats((int64_t)n);
        ok = fread(m->data, sizeof(float), n, f) == n && fgetc(f) == EOF;
    }
    fclose(f);
    return ok;
}

/* The "features" tensor and the metadata object (the caller deletes it). */
static cJSON *read_safetensors(const char *path, matrix *m) {
    memset(m, 0, sizeof *m);
    hs_state_dict sd;
    hs_error err = {0};
    hs_sd_init(&sd);
    if (hs_safetensors_load(path, &sd, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return NULL;
    }
    const hs_sd_entry *e = hs_sd_find(&sd, "features");
    if (!e || e->ndim != 2 || sd.count != 1) {
        hs_sd_free(&sd);
        return NULL;
    }
    m->rows = e->shape[0];
    m->cols = (int)e->shape[1];
    m->data = test_alloc_floats(e->numel);
    memcpy(m->data, e->data, (size_t)e->numel * sizeof(float));
    hs_sd_free(&sd);

    static char file[1 << 20];
    size_t n = read_whole(path, file, sizeof file);
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--) len = len << 8 | (unsigned char)file[i];
    if (n < 8 || len > n - 8) return NULL;
    cJSON *root = cJSON_ParseWithLength(file + 8, len);
    cJSON *meta = cJSON_DetachItemFromObjectCaseSensitive(root, "__metadata__");
    cJSON_Delete(root);
    return meta;
}

static const char *meta_string(const cJSON *meta, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* The lines of a text file (one path a line). */
static int read_lines(const char *path, char lines[][256], int max) {
    static char text[1 << 16];
    read_whole(path, text, sizeof text);
    int n = 0;
    for (char *p = text, *nl; *p && n < max; p = nl + 1, n++) {
        if (!(nl = strchr(p, '\n'))) return -1; /* every line ends with '\n' */
        snprintf(lines[n], 256, "%.*s", (int)(nl - p), p);
    }
    return n;
}

/* ---- the expected rows ---------------------------------------------------------------------- */

/* Each image prepared as train prepares it, through hs_net_features one at a time. */
static float *expected_rows(hs_net *net, const char *const *paths, int n, int size,
                            hs_interpolation interp, const float mean[3], const float std[3],
                            int *dim) {
    *dim = hs_net_feature_dim(net);
    float *rows = test_alloc_floats((int64_t)n * *dim);
    float *x = test_alloc_floats(3L * size * size);
    for (int i = 0; i < n; i++) {
        hs_image img = {0};
        hs_error err = {0};
        char path[1024];
        snprintf(path, sizeof path, "%s%s", paths[i][0] == '/' ? "" : TMP "/", paths[i]);
        CHECK_MSG(hs_image_load(path, &img, &err) == HS_OK, "%s", err.message);
        CHECK(hs_image_prepare_square(&img, size, interp, mean, std, x, &err) == HS_OK);
        CHECK_MSG(hs_net_features(net, x, 1, size, size, rows + (size_t)i * *dim, &err) == HS_OK,
                  "%s", err.message);
        hs_image_free(&img);
    }
    free(x);
    return rows;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

/* The inputs of most runs: a loose image, a folder (walked sorted, nested), another image. */
#define ARGS IMAGES "/pp_wide.png photos " IMAGES "/rgba.png"
static const char *const expected_paths[] = {IMAGES "/pp_wide.png", "photos/a.jpg",
                                             "photos/b.png", "photos/sub/c.png",
                                             IMAGES "/rgba.png"};
#define EXPECTED 5

static void make_photos(void) {
    CHECK(system("rm -rf '" TMP "'") == 0); /* a fresh cache: the first run must compute */
    test_make_dir(TMP);
    test_make_dir(TMP "/photos");
    test_make_dir(TMP "/photos/sub");
    copy_file(IMAGES "/rgb.png", TMP "/photos/b.png");
    copy_file(IMAGES "/rgb.jpg", TMP "/photos/a.jpg");
    copy_file(IMAGES "/gray.png", TMP "/photos/sub/c.png");
}

/* The --weights of the row checks and its identity. Random Lite0 weights (PyTorch's default
 * init, BatchNorm at identity) shrink activations to ~1e-8 by the last layer, where any
 * tolerance would pass anything: the rows are checked on the pretrained file when it is
 * here, else on random weights with a purely relative tolerance (said on stdout). */
static char weights_arg[4200] = "none", weights_sha[65] = "random-seed-0";
static float row_atol = 1e-6f;

static hs_net *open_lite0(void) {
    hs_net *net = NULL;
    hs_error err = {0};
    CHECK(hs_net_create("efficientnet_lite0", 0, &net, &err) == HS_OK); /* --weights none */
    if (!net) return NULL;
    char path[4096];
    if (hs_find_weights(hs_backbone_find("efficientnet_lite0"), path, sizeof path, &err) ==
        HS_OK) {
        snprintf(weights_arg, sizeof weights_arg, "'%s'", path);
        CHECK(hs_sha256_file(path, weights_sha, &err) == HS_OK);
        CHECK_MSG(hs_net_load_weights(net, path, &err) == HS_OK, "%s", err.message);
    } else {
        printf("note: efficientnet_lite0 weights not found (%s); rows are compared on random "
               "weights, relative tolerance only\n", err.message);
        row_atol = 0;
    }
    return net;
}

/* Rows that carry information: otherwise equality proves nothing. */
static void check_informative(const float *rows, int n, int dim) {
    double spread = 0;
    for (int j = 0; j < dim; j++) {
        float lo = rows[j], hi = rows[j];
        for (int i = 1; i < n; i++) {
            float v = rows[(size_t)i * dim + j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        spread += hi - lo;
    }
    printf("mean spread of a feature across the %d images: %.3g\n", n, spread / dim);
    CHECK(spread > 0);
}

/* .npy: the rows are hs_net_features' of the same prepared images, in the order given. */
static void test_npy_rows(hs_net *net, const float *want, int dim) {
    char args[8192];
    snprintf(args, sizeof args, "features --backbone efficientnet_lite0 --weights %s "
             "--img-size 64 --no-cache --batch-size 2 --out f.npy " ARGS, weights_arg);
    int code = run(args);
    CHECK_MSG(code == 0, "exit %d: %s", code, err_text);
    matrix m;
    CHECK(read_npy(TMP "/f.npy", &m));
    CHECK(m.rows == EXPECTED && m.cols == dim);
    /* Batches of 2 here and 1 in the reference: oneDNN's kernels may order sums differently
     * by batch, so rows agree to float rounding (1e-6 relative, 1e-6 absolute), not bits. */
    if (m.rows == EXPECTED && m.cols == dim)
        CHECK_CLOSE("npy rows", m.data, want, (long)EXPECTED * dim, 1e-6f, row_atol);
    char lines[16][256];
    CHECK(read_lines(TMP "/f.txt", lines, 16) == EXPECTED);
    for (int i = 0; i < EXPECTED; i++)
        CHECK_MSG(strcmp(lines[i], expected_paths[i]) == 0, "%s vs %s", lines[i],
                  expected_paths[i]);
    free(m.data);
    (void)net;
}

/* .safetensors through the cache: a first run computes and writes one entry per part, a
 * second reads all of them back (the entry count stays, the note says so) with the same
 * bytes; the metadata names the paths in row order and the weights. */
static void test_safetensors_cache(const float *want, int dim) {
    char args[8192];
    snprintf(args, sizeof args, "features --backbone efficientnet_lite0 --weights %s "
             "--img-size 64 --cache-dir cache --out f.safetensors " ARGS, weights_arg);
    int code = run(args);
    CHECK_MSG(code == 0, "exit %d: %s", code, err_text);
    CHECK_MSG(strstr(err_text, "(0 of 3 parts from the cache)"), "%s", err_text);
    int entries = count_entries(TMP "/cache/features");
    CHECK_MSG(entries == 3, "%d cache entries", entries);
    matrix first, second;
    cJSON *meta = read_safetensors(TMP "/f.safetensors", &first);
    CHECK(meta != NULL);
    CHECK(first.rows == EXPECTED && first.cols == dim);
    if (first.rows == EXPECTED && first.cols == dim)
        CHECK_CLOSE("safetensors rows", first.data, want, (long)EXPECTED * dim, 1e-6f, row_atol);
    CHECK(strcmp(meta_string(meta, "backbone"), "efficientnet_lite0") == 0);
    CHECK(strcmp(meta_string(meta, "img_size"), "64") == 0);
    CHECK(strcmp(meta_string(meta, "weights_sha256"), weights_sha) == 0);
    cJSON *paths = cJSON_Parse(meta_string(meta, "paths"));
    CHECK(cJSON_GetArraySize(paths) == EXPECTED);
    for (int i = 0; i < EXPECTED && i < cJSON_GetArraySize(paths); i++)
        CHECK(strcmp(cJSON_GetArrayItem(paths, i)->valuestring, expected_paths[i]) == 0);
    cJSON_Delete(paths);
    cJSON_Delete(meta);

    code = run(args);
    CHECK_MSG(code == 0, "exit %d: %s", code, err_text);
    CHECK_MSG(strstr(err_text, "(3 of 3 parts from the cache)") &&
                  strstr(err_text, "read from the cache"), "%s", err_text);
    CHECK(count_entries(TMP "/cache/features") == entries);
    meta = read_safetensors(TMP "/f.safetensors", &second);
    CHECK(second.rows == first.rows && second.cols == first.cols && first.data && second.data &&
          memcmp(first.data, second.data, (size_t)first.rows * first.cols * 4) == 0);
    cJSON_Delete(meta);
    free(first.data);
    free(second.data);
}

/* Unreadable images are named and left out (exit 11, as classify); none readable: exit 9
 * and no file; a wrong extension or a name the format cannot hold: exit 2 before any work. */
static void test_errors(void) {
    int code = run("features --weights none --img-size 64 --no-cache --out bad.csv " ARGS);
    CHECK_MSG(code == 2 && strstr(err_text, ".safetensors or .npy"), "%d %s", code, err_text);
    CHECK(!test_file_exists(TMP "/bad.csv"));

    code = run("features --weights none --img-size 64 --no-cache --out part.npy " IMAGES
               "/rgb.png " IMAGES "/truncated.jpg missing.jpg");
    CHECK_MSG(code == 11, "exit %d: %s", code, err_text);
    CHECK_MSG(strstr(err_text, "skipped: " IMAGES "/truncated.jpg") &&
                  strstr(err_text, "skipped: missing.jpg") &&
                  strstr(err_text, "2 of 3 images could not be read"), "%s", err_text);
    matrix m;
    CHECK(read_npy(TMP "/part.npy", &m) && m.rows == 1);
    free(m.data);

    code = run("features --weights none --img-size 64 --no-cache --out none.npy " IMAGES
               "/truncated.jpg");
    CHECK_MSG(code == 9, "exit %d: %s", code, err_text);
    CHECK(!test_file_exists(TMP "/none.npy") && !test_file_exists(TMP "/none.txt"));

    test_make_dir(TMP "/odd");
    copy_file(IMAGES "/rgb.png", TMP "/odd/new\nline.png");
    code = run("features --weights none --img-size 64 --no-cache --out odd.npy odd");
    CHECK_MSG(code == 2 && strstr(err_text, "line break"), "%d %s", code, err_text);
    CHECK(!test_file_exists(TMP "/odd.npy"));
    /* safetensors keeps such a name: JSON escapes the newline. */
    code = run("features --weights none --img-size 64 --no-cache --out odd.safetensors odd");
    CHECK_MSG(code == 0, "exit %d: %s", code, err_text);
    matrix o;
    cJSON *meta = read_safetensors(TMP "/odd.safetensors", &o);
    cJSON *paths = cJSON_Parse(meta_string(meta, "paths"));
    CHECK(cJSON_GetArraySize(paths) == 1 &&
          strcmp(cJSON_GetArrayItem(paths, 0)->valuestring, "odd/new\nline.png") == 0);
    CHECK(strcmp(meta_string(meta, "weights_sha256"), "random-seed-0") == 0); /* none */
    cJSON_Delete(paths);
    cJSON_Delete(meta);
    free(o.data);

    code = run("features --backbone efficientnet_lite --weights none --out x.npy a.png");
    CHECK_MSG(code == 2 && strstr(err_text, "did you mean 'efficientnet_lite0'"), "%s",
              err_text);
    code = run("features --weights none --img-size 20 --out x.npy a.png");
    CHECK_MSG(code == 2 && strstr(err_text, "--img-size must be 32..1024"), "%s", err_text);
}

/* An archive of class folders (a DATA form a walk does not open): every image, rows named
 * archive:member in the loader's order; with train/ and val/ inside, train's then val's. */
static void test_archive(void) {
    test_make_dir(TMP "/tree");
    test_make_dir(TMP "/tree/cat");
    test_make_dir(TMP "/tree/dog");
    copy_file(IMAGES "/rgb.png", TMP "/tree/cat/1.png");
    copy_file(IMAGES "/gray.png", TMP "/tree/dog/2.png");
    CHECK(system("cd " TMP "/tree && tar -cf ../classes.tar cat dog") == 0);
    int code = run("features --weights none --img-size 64 --no-cache --out tar.npy classes.tar");
    CHECK_MSG(code == 0, "exit %d: %s", code, err_text);
    char lines[8][256];
    CHECK(read_lines(TMP "/tar.txt", lines, 8) == 2);
    CHECK_MSG(strcmp(lines[0], "classes.tar:cat/1.png") == 0, "%s", lines[0]);
    CHECK_MSG(strcmp(lines[1], "classes.tar:dog/2.png") == 0, "%s", lines[1]);

    test_make_dir(TMP "/split");
    CHECK(system("cd " TMP "/split && mkdir -p train/cat train/dog val/cat val/dog && "
                 "cp ../tree/cat/1.png train/cat/a.png && cp ../tree/dog/2.png train/dog/b.png && "
                 "cp ../tree/cat/1.png val/cat/c.png && cp ../tree/dog/2.png val/dog/d.png && "
                 "tar -cf ../split.tar val train") == 0);
    code = run("features --weights none --img-size 64 --no-cache --out split.npy split.tar");
    CHECK_MSG(code == 0, "exit %d: %s", code, err_text);
    int n = read_lines(TMP "/split.txt", lines, 8);
    CHECK(n == 4);
    const char *want[] = {"split.tar:train/cat/a.png", "split.tar:train/dog/b.png",
                          "split.tar:val/cat/c.png", "split.tar:val/dog/d.png"};
    for (int i = 0; i < 4 && i < n; i++)
        CHECK_MSG(strcmp(lines[i], want[i]) == 0, "%s vs %s", lines[i], want[i]);
}

/* CIFAR-10's binary folder (no images for a walk to find): the data batches' records
 * (sorted by label, as the loader gives them), then the test batch's. */
static void test_cifar(void) {
    test_make_dir(TMP "/cifar");
    const int labels[2][2] = {{3, 1}, {7, -1}};
    const char *files[2] = {TMP "/cifar/data_batch_1.bin", TMP "/cifar/test_batch.bin"};
    for (int b = 0; b < 2; b++) {
        FILE *f = fopen(files[b], "wb");
        CHECK(f != NULL);
        if (!f) return;
        for (int r = 0; r < 2 && labels[b][r] >= 0; r++) {
            fputc(labels[b][r], f);
            for (int i = 0; i < 3072; i++) fputc((i * 31 + r * 17 + b * 5) & 0xff, f);
        }
        fclose(f);
    }
    int code = run("features --weights none --img-size 64 --no-cache --out cifar.npy cifar");
    CHECK_MSG(code == 0, "exit %d: %s", code, err_text);
    char lines[8][256];
    CHECK(read_lines(TMP "/cifar.txt", lines, 8) == 3);
    CHECK_MSG(strcmp(lines[0], "cifar/data_batch_1.bin#1") == 0 &&
                  strcmp(lines[1], "cifar/data_batch_1.bin#0") == 0 &&
                  strcmp(lines[2], "cifar/test_batch.bin#0") == 0, "%s %s %s", lines[0],
              lines[1], lines[2]);
}

/* A timm hub folder: model.safetensors with config.json beside it. Its input size,
 * interpolation and mean/std are used (and recorded); --img-size beats it; the rows are
 * those of the file's weights resized bicubic with the config's statistics. */
static void test_hub_config(hs_net *net) {
    test_make_dir(TMP "/hub");
    hs_error err = {0};
    CHECK(hs_net_save_weights(net, TMP "/hub/model.safetensors", &err) == HS_OK);
    FILE *f = fopen(TMP "/hub/config.json", "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "{\"architecture\": \"efficientnet_lite0\", \"num_classes\": 1000,\n"
               " \"pretrained_cfg\": {\"input_size\": [3, 72, 72], \"crop_pct\": 0.9,\n"
               "  \"interpolation\": \"bicubic\", \"mean\": [0.5, 0.4, 0.3],\n"
               "  \"std\": [0.2, 0.25, 0.3]}}\n");
    fclose(f);
    int code = run("features --weights hub/model.safetensors --no-cache --out hub.safetensors "
                   IMAGES "/rgb.png");
    CHECK_MSG(code == 0, "exit %d: %s", code, err_text);
    CHECK_MSG(strstr(err_text, "hub/config.json") && strstr(err_text, "bicubic"), "%s",
              err_text);
    matrix m;
    cJSON *meta = read_safetensors(TMP "/hub.safetensors", &m);
    CHECK(strcmp(meta_string(meta, "img_size"), "72") == 0);
    char sha[65];
    CHECK(hs_sha256_file(TMP "/hub/model.safetensors", sha, &err) == HS_OK);
    CHECK(strcmp(meta_string(meta, "weights_sha256"), sha) == 0);
    const float mean[3] = {0.5f, 0.4f, 0.3f}, std[3] = {0.2f, 0.25f, 0.3f};
    const char *path = IMAGES "/rgb.png";
    int dim = 0;
    float *want = expected_rows(net, &path, 1, 72, HS_INTERP_BICUBIC, mean, std, &dim);
    CHECK(m.rows == 1 && m.cols == dim);
    if (m.rows == 1 && m.cols == dim) CHECK_CLOSE("hub rows", m.data, want, dim, 1e-6f, row_atol);
    free(want);
    free(m.data);
    cJSON_Delete(meta);

    code = run("features --weights hub/model.safetensors --img-size 64 --no-cache "
               "--out hub64.safetensors " IMAGES "/rgb.png");
    CHECK_MSG(code == 0, "exit %d: %s", code, err_text);
    meta = read_safetensors(TMP "/hub64.safetensors", &m);
    CHECK(strcmp(meta_string(meta, "img_size"), "64") == 0);
    free(m.data);
    cJSON_Delete(meta);
}

/* headstart backbones: csv and json carry every backbone with its figures; the parameter
 * count and GFLOP of VGG16 are torchvision's published ones (138,357,544 parameters; 15.47
 * G multiply-adds for the whole net, of which the classifier is 0.12 G: the backbone's
 * 2 x 15.35 G), so the counts are checked against something outside this code. */
static void test_backbones(void) {
    int code = run("backbones --format csv");
    CHECK_MSG(code == 0, "exit %d: %s", code, err_text);
    CHECK(strncmp(out_text, "backbone,input_size,resize_size,feature_dim,", 44) == 0);
    int lines = 0;
    for (const char *p = out_text; (p = strchr(p, '\n')); p++) lines++;
    CHECK_MSG(lines == hs_backbone_count() + 1, "%d lines", lines);
    const char *vgg = strstr(out_text, "\nvgg16,");
    CHECK(vgg != NULL);
    if (vgg) {
        int in = 0, resize = 0, dim = 0, present = -1;
        double mean[3], std[3], gflop = 0;
        long long params = 0, backbone_params = 0;
        CHECK(sscanf(vgg + 1, "vgg16,%d,%d,%d,%lf,%lf,%lf,%lf,%lf,%lf,%lf,%lld,%lld,%d", &in,
                     &resize, &dim, &mean[0], &mean[1], &mean[2], &std[0], &std[1], &std[2],
                     &gflop, &params, &backbone_params, &present) == 13);
        CHECK(in == 224 && resize == 256 && dim == 25088);
        CHECK(fabs(mean[0] - 0.485) < 1e-6 && fabs(std[2] - 0.225) < 1e-6);
        CHECK(params == 138357544LL);
        CHECK_MSG(fabs(gflop - 2 * 15.35) < 0.02 * 30.7, "%f", gflop);
        CHECK(backbone_params > 0 && backbone_params < params);
        CHECK(present == 0 || present == 1);
    }

    code = run("backbones --format json");
    CHECK_MSG(code == 0, "exit %d: %s", code, err_text);
    cJSON *list = cJSON_Parse(out_text);
    CHECK(cJSON_IsArray(list) && cJSON_GetArraySize(list) == hs_backbone_count());
    for (int i = 0; i < cJSON_GetArraySize(list); i++) {
        const cJSON *o = cJSON_GetArrayItem(list, i);
        const hs_backbone_info *b = hs_backbone_at(i);
        const cJSON *name = cJSON_GetObjectItem(o, "name");
        CHECK(cJSON_IsString(name) && strcmp(name->valuestring, b->name) == 0);
        CHECK(cJSON_GetObjectItem(o, "input_size")->valueint == b->preprocess.input_size);
        CHECK(cJSON_GetObjectItem(o, "feature_dim")->valueint == b->feature_dim);
        CHECK(cJSON_GetObjectItem(o, "gflop")->valuedouble > 0);
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(o, "mean")) == 3);
        const cJSON *w = cJSON_GetObjectItem(o, "weights");
        char path[4096];
        hs_error err = {0};
        int present = hs_find_weights(b, path, sizeof path, &err) == HS_OK;
        CHECK(cJSON_IsBool(cJSON_GetObjectItem(w, "present")) &&
              cJSON_IsTrue(cJSON_GetObjectItem(w, "present")) == present);
        /* The same file, found from another working directory: compare the names. */
        const cJSON *found = cJSON_GetObjectItem(w, "path");
        if (present)
            CHECK(cJSON_IsString(found) && strlen(found->valuestring) >= strlen(b->weights_file) &&
                  strcmp(found->valuestring + strlen(found->valuestring) -
                             strlen(b->weights_file), b->weights_file) == 0);
    }
    cJSON_Delete(list);
    CHECK(run("backbones --format xml") == 2);
}

int main(void) {
    make_photos();
    hs_net *net = open_lite0();
    if (!net) return check_finish("test_features");
    const hs_preprocess *pp = &hs_net_backbone(net)->preprocess;
    int dim = 0;
    float *want = expected_rows(net, expected_paths, EXPECTED, SIZE, pp->interpolation, pp->mean,
                                pp->std, &dim);
    check_informative(want, EXPECTED, dim);
    test_npy_rows(net, want, dim);
    test_safetensors_cache(want, dim);
    free(want);
    test_errors();
    test_archive();
    test_cifar();
    test_hub_config(net);
    test_backbones();
    hs_net_free(net);
    return check_finish("test_features");
}
