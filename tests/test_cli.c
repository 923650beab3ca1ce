/* The headstart command as a user runs it: output, messages and exit codes. */
#include <string.h>
#include <sys/wait.h>

#include "bench_forward.h"
#include "check.h"
#include "pth.h"
#include "test_util.h"

#define TMP HS_TEST_TMP_DIR "/cli"
#define WEIGHTS HS_SOURCE_DIR "/weights"

static char out_text[1 << 16], err_text[1 << 16];

static void read_file(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
}

/* Runs `headstart ARGS` (with an optional environment prefix) and returns its exit code;
 * stdout and stderr land in out_text and err_text. */
static int run(const char *env, const char *args) {
    char command[8192];
    snprintf(command, sizeof command, "cd " TMP " && %s '%s' %s > out.txt 2> err.txt",
             env ? env : "", HS_CLI_PATH, args);
    int status = system(command);
    read_file(TMP "/out.txt", out_text, sizeof out_text);
    read_file(TMP "/err.txt", err_text, sizeof err_text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_basics(void) {
    CHECK(run(NULL, "--version") == 0);
    CHECK(strstr(out_text, "headstart 0.") != NULL);
    CHECK(run(NULL, "") == 2);
    CHECK(run(NULL, "frobnicate") == 2);
    CHECK(strstr(err_text, "unknown command 'frobnicate'") != NULL);
    CHECK(run(NULL, "backbones") == 0);
    CHECK(strstr(out_text, "vgg16") && strstr(out_text, "efficientnet_lite0") &&
          strstr(out_text, "efficientnet_lite1") && strstr(out_text, "efficientnet_lite2"));
    CHECK(run(NULL, "classify --backbone efficientnet_lite x.jpg") == 2);
    CHECK_MSG(strstr(err_text, "did you mean 'efficientnet_lite0'") != NULL, "%s", err_text);
    CHECK(run(NULL, "classify --backbone vgg16 --format xml x.jpg") == 2);
    CHECK(strstr(err_text, "--format") != NULL);
}

/* VGG16's file is not on these machines: the error says where to get it. */
static void test_missing_weights(void) {
    char path[4096];
    hs_error err = {0};
    if (hs_find_weights(hs_backbone_find("vgg16"), path, sizeof path, &err) == HS_OK) {
        printf("note: vgg16 weights present at %s; missing-weights message not checked\n", path);
        return;
    }
    int code = run("HOME=" TMP " HEADSTART_WEIGHTS=" TMP, "classify --backbone vgg16 x.jpg");
    CHECK(code == HS_ERR_NOT_FOUND);
    CHECK_MSG(strstr(err_text, "vgg16-397923af.pth") && strstr(err_text, "--weights FILE"),
              "%s", err_text);
}

static void test_convert(void) {
    CHECK(run(NULL, "convert " HS_FIXTURES_DIR "/nets/vgg16_tiny_legacy.pth tiny.safetensors") == 0);
    hs_state_dict from_pth, from_st;
    hs_error err = {0};
    hs_sd_init(&from_pth);
    CHECK(hs_pth_load(HS_FIXTURES_DIR "/nets/vgg16_tiny_legacy.pth", &from_pth, &err) == HS_OK);
    test_load_fixture(TMP "/tiny.safetensors", &from_st);
    CHECK(from_pth.count == from_st.count && from_st.count == 32);
    for (size_t i = 0; i < from_pth.count && i < from_st.count; i++) {
        CHECK(strcmp(from_pth.entries[i].name, from_st.entries[i].name) == 0);
        CHECK(from_pth.entries[i].numel == from_st.entries[i].numel &&
              memcmp(from_pth.entries[i].data, from_st.entries[i].data,
                     (size_t)from_st.entries[i].numel * sizeof(float)) == 0);
    }
    hs_sd_free(&from_pth);
    hs_sd_free(&from_st);

    CHECK(run(NULL, "convert " HS_FIXTURES_DIR "/pth/evil_legacy.pth evil.safetensors") ==
          HS_ERR_UNSAFE);
    CHECK_MSG(strstr(err_text, "system") != NULL, "%s", err_text);
    CHECK(!test_file_exists(TMP "/evil.safetensors"));
    CHECK(run(NULL, "convert no-such.pth out.safetensors") == HS_ERR_IO);
    CHECK(strstr(err_text, "no-such.pth") != NULL);
    CHECK(run(NULL, "classify --backbone vgg16 --weights " HS_FIXTURES_DIR
                    "/nets/vgg16_tiny_zip.pth " HS_FIXTURES_DIR "/images/rgb.jpg") ==
          HS_ERR_MISMATCH);
    CHECK_MSG(strstr(err_text, "[64, 3, 3, 3] here") != NULL, "%s", err_text);
}

/* The 20 labelled ImageNet JPEGs from foolbox: most right, and the same top-1 as PyTorch. */
static int test_foolbox(void) {
    if (!test_file_exists(WEIGHTS "/foolbox/imagenet_00_243.jpg") ||
        !test_file_exists(WEIGHTS "/efficientnet-lite0-57934424.pth")) {
        printf("note: foolbox images or Lite0 weights absent (scripts/fetch-weights.sh)\n");
        return 0;
    }
    CHECK(run(NULL, "classify --backbone efficientnet_lite0 --format csv --top-k 1 " WEIGHTS
                    "/foolbox") == 0);
    CHECK(strncmp(out_text, "path,rank,class_index,class_name,probability\n", 45) == 0);
    FILE *f = fopen(HS_FIXTURES_DIR "/nets/foolbox_lite0_top1.csv", "r");
    char line[512];
    int rows = 0, correct = 0, agree = 0, torch_correct = 0;
    CHECK(f && fgets(line, sizeof line, f)); /* header */
    while (f && fgets(line, sizeof line, f)) {
        char file[128];
        int label, torch_top1;
        if (sscanf(line, "%127[^,],%d,%d", file, &label, &torch_top1) != 3) continue;
        rows++;
        torch_correct += label == torch_top1;
        char *at = strstr(out_text, file);
        int ours = -1;
        if (at) sscanf(strchr(at, ',') + 1, "1,%d", &ours);
        correct += ours == label;
        agree += ours == torch_top1;
    }
    if (f) fclose(f);
    printf("foolbox ImageNet images: %d of %d right (PyTorch: %d), top-1 agrees with PyTorch on "
           "%d\n", correct, rows, torch_correct, agree);
    CHECK(rows == 20);
    CHECK(correct >= 15);
    CHECK(agree >= 19);

    /* A folder with good images and bad files: the good ones classified, exit code 11. */
    CHECK(system("mkdir -p " TMP "/mixed && cp " WEIGHTS "/foolbox/imagenet_01_559.jpg " TMP
                 "/mixed/ && echo 'not an image' > " TMP "/mixed/notes.jpg") == 0);
    CHECK(run(NULL, "classify --backbone efficientnet_lite0 mixed") == 11);
    CHECK(strstr(out_text, "imagenet_01_559.jpg") != NULL);
    CHECK_MSG(strstr(err_text, "notes.jpg") != NULL, "%s", err_text);
    return 1;
}

/* headstart train as a user runs it, for the feature cache: where it lives, reuse, the
 * reason for a recomputation, --no-cache, and a bad flag value. */
static void test_train_cache(void) {
    /* Two classes of ten foolbox images each (the labels mean nothing; the run is the point). */
    CHECK(system("cd " TMP " && rm -rf pets cache home xdg run? && mkdir -p pets/a pets/b && "
                 "cp " WEIGHTS "/foolbox/imagenet_0*.jpg pets/a/ && "
                 "cp " WEIGHTS "/foolbox/imagenet_1*.jpg pets/b/") == 0);
    const char *common = "train pets --img-size 32 --epochs 2 --batch-size 4 --val-fraction 0.3";
    char args[1024];
    snprintf(args, sizeof args, "%s --cache-dir cache --out run1", common);
    CHECK_MSG(run(NULL, args) == 0, "%s", err_text);
    CHECK_MSG(strstr(err_text, "train features: computing them (no cached features"), "%s",
              err_text);
    CHECK(strstr(err_text, "epoch   2/2") && test_file_exists(TMP "/run1/model.safetensors"));

    snprintf(args, sizeof args, "%s --cache-dir cache --out run2", common);
    CHECK(run(NULL, args) == 0);
    CHECK_MSG(strstr(err_text, "train features: 14 read from the cache") &&
                  strstr(err_text, "val features: 6 read from the cache"), "%s", err_text);
    CHECK(strstr(out_text, "features read from the cache"));

    snprintf(args, sizeof args, "%s --cache-dir cache --out run3 --img-size 40", common);
    CHECK(run(NULL, args) == 0);
    CHECK_MSG(strstr(err_text, "computing them (changed since the cached features: image size)"),
              "%s", err_text);

    snprintf(args, sizeof args, "%s --no-cache --out run4", common);
    CHECK(run(NULL, args) == 0);
    CHECK_MSG(!strstr(err_text, "cache"), "%s", err_text);

    /* The default places: $XDG_CACHE_HOME/headstart, else ~/.cache/headstart. */
    snprintf(args, sizeof args, "%s --out run5", common);
    CHECK(run("HOME=" TMP "/home XDG_CACHE_HOME=", args) == 0);
    CHECK(test_file_exists(TMP "/home/.cache/headstart/features"));
    snprintf(args, sizeof args, "%s --out run6", common);
    CHECK(run("HOME=" TMP "/home XDG_CACHE_HOME=" TMP "/xdg", args) == 0);
    CHECK(test_file_exists(TMP "/xdg/headstart/features"));

    snprintf(args, sizeof args, "%s --feature-precision f8 --out run7", common);
    CHECK(run(NULL, args) == 2);
    CHECK_MSG(strstr(err_text, "--feature-precision must be f16 or f32"), "%s", err_text);
    CHECK(!test_file_exists(TMP "/run7"));
}

/* headstart bench: a csv header and one row of positive figures; bad flags exit 2 naming
 * the flag. */
static void test_bench(void) {
    const char *base = "bench --backbone efficientnet_lite0 --batch-size 2 --img-size 64";
    char args[512];
    snprintf(args, sizeof args, "%s --format csv --runs 1", base);
    CHECK_MSG(run(NULL, args) == 0, "%s", err_text);
    const char *header = "backbone,img_size,batch,threads,precision,images_per_s,gflops\n";
    CHECK_MSG(strncmp(out_text, header, strlen(header)) == 0, "%s", out_text);
    const char *row = out_text + strlen(header);
    char name[64] = "", precision[16] = "";
    int img = 0, batch = 0, threads = 0, used = 0;
    double ips = 0, gflops = 0;
    int fields = sscanf(row, "%63[^,],%d,%d,%d,%15[^,],%lf,%lf\n%n", name, &img, &batch, &threads,
                        precision, &ips, &gflops, &used);
    CHECK_MSG(fields == 7, "row: %s", row);
    CHECK(strcmp(name, "efficientnet_lite0") == 0 && img == 64 && batch == 2);
    CHECK(threads >= 1 && strcmp(precision, "f32") == 0);
    CHECK_MSG(ips > 0 && gflops > 0, "%g images/s, %g GFLOP/s", ips, gflops);
    CHECK_MSG(used > 0 && row[used] == '\0', "one row only: %s", row);

    snprintf(args, sizeof args, "%s --runs 1 --verbose", base);
    CHECK_MSG(run(NULL, args) == 0, "%s", err_text);
    CHECK_MSG(strstr(out_text, "images/s") && strstr(out_text, "conv 1x1") &&
              strstr(out_text, "conv 3x3 depthwise"), "%s", out_text);

    static const char *bad[][2] = {{"--batch-size 0", "--batch-size"},
                                   {"--batch-size two", "--batch-size"},
                                   {"--threads -1", "--threads"},
                                   {"--img-size 8", "--img-size"},
                                   {"--precision fp8", "--precision"},
                                   {"--format xml", "--format"},
                                   {"--runs", "--runs"},
                                   {"--frobnicate 1", "--frobnicate"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(args, sizeof args, "%s %s", base, bad[i][0]);
        CHECK_MSG(run(NULL, args) == 2 && strstr(err_text, bad[i][1]), "%s: %s", bad[i][0],
                  err_text);
    }
    CHECK(run(NULL, "bench --batch-size 2") == 2 && strstr(err_text, "--backbone"));
    CHECK(run(NULL, "bench --backbone efficientnet_lite") == 2 &&
          strstr(err_text, "efficientnet_lite0"));
    /* bf16 runs where oneDNN has bf16 convolutions (AVX-512 and up); elsewhere a clear
     * refusal instead of a float32 run labelled bf16 */
    snprintf(args, sizeof args, "%s --runs 1 --precision bf16 --format csv", base);
    int code = run(NULL, args);
    if (strncmp(hs_dnnl_isa_name(), "avx512_core", 11) == 0)
        CHECK_MSG(code == 0 && strstr(out_text, ",bf16,"), "%s", err_text);
    else
        CHECK_MSG(code == 2 && strstr(err_text, "bf16") && strstr(err_text, "--precision f32"),
                  "%d %s", code, err_text);
}

int main(void) {
    test_make_dir(TMP);
    test_basics();
    test_missing_weights();
    test_convert();
    test_bench();
    if (!test_foolbox() && getenv("CI")) {
        fprintf(stderr, "CI must check real weights: run scripts/fetch-weights.sh\n");
        return 1;
    }
    if (test_file_exists(WEIGHTS "/efficientnet-lite0-57934424.pth")) test_train_cache();
    return check_finish("test_cli");
}
