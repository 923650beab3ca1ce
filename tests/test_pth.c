/* Tests for the .pth reader: both layouts against values PyTorch wrote (expected.safetensors,
 * from tools/make_pth_fixtures.py), the refusal of pickles that ask for dangerous globals, the
 * unpickler's memory budget and memo bounds, robustness against truncated or corrupted files,
 * and the real EfficientNet-Lite0 file where the product finds it. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "headstart.h"
#include "pickle.h"
#include "pth.h"
#include "safetensors.h"

#define PTH_DIR HS_FIXTURES_DIR "/pth/"
#define PWNED "/tmp/hs_pwned"

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

/* A flipped byte of tensor data in a zip-layout file: every byte there is a valid float, so
 * only the entry's CRC-32 (in the zip directory) tells it from the real one. The bytes of
 * each file's first float32 tensor are found in the file and one is flipped. */
static const uint8_t *find_bytes(const uint8_t *hay, size_t n, const void *needle, size_t len) {
    for (size_t i = 0; len <= n && i <= n - len; i++)
        if (memcmp(hay + i, needle, len) == 0) return hay + i;
    return NULL;
}

static void test_zip_crc(void) {
    const char *files[] = {"tiny_zip.pth", "shared_zip.pth", "nested_zip.pth"};
    for (size_t f = 0; f < COUNT(files); f++) {
        char path[512];
        snprintf(path, sizeof path, "%s%s", PTH_DIR, files[f]);
        size_t size;
        uint8_t *buf = read_file(path, &size);
        CHECK(buf != NULL);
        if (!buf) continue;
        hs_state_dict sd;
        hs_error err = {0};
        hs_sd_init(&sd);
        CHECK_MSG(hs_pth_load_memory(buf, size, files[f], &sd, &err) == HS_OK, "%s", err.message);
        const uint8_t *at = NULL;
        for (size_t i = 0; !at && i < sd.count; i++) {
            const hs_sd_entry *e = &sd.entries[i];
            if (e->source_dtype == HS_DTYPE_F32 && e->numel >= 4)
                at = find_bytes(buf, size, e->data, (size_t)e->numel * sizeof(float));
        }
        hs_sd_free(&sd);
        CHECK_MSG(at != NULL, "%s: no float32 tensor's bytes found in the file", files[f]);
        if (at) {
            buf[at - buf + 1] ^= 0x10;
            hs_status st = hs_pth_load_memory(buf, size, files[f], &sd, &err);
            CHECK_MSG(st == HS_ERR_FORMAT && strstr(err.message, "CRC-32") &&
                      strstr(err.message, "/data/") && strstr(err.message, files[f]),
                      "%s: status %d: %s", files[f], st, err.message);
            CHECK(sd.count == 0);
            hs_sd_free(&sd);
        }
        free(buf);
    }
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t next_random(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Whether two state dicts have the same names, in the same order, with the same shapes. */
static int same_layout(const hs_state_dict *a, const hs_state_dict *b) {
    if (a->count != b->count) return 0;
    for (size_t i = 0; i < a->count; i++) {
        const hs_sd_entry *x = &a->entries[i], *y = &b->entries[i];
        if (strcmp(x->name, y->name) != 0 || x->ndim != y->ndim) return 0;
        for (int d = 0; d < x->ndim; d++)
            if (x->shape[d] != y->shape[d]) return 0;
    }
    return 1;
}

/* A damaged file loads or is refused as a bad file (FORMAT, UNSAFE when a global's name
 * changed, NOMEM when a size grew past the limits), with a message naming the file; what
 * loads is a consistent state dict. */
static int refused_as_bad_file(hs_status st, const hs_error *err, const char *file) {
    return (st == HS_ERR_FORMAT || st == HS_ERR_UNSAFE || st == HS_ERR_NOMEM) &&
           strstr(err->message, file) != NULL;
}

static int consistent(const hs_state_dict *sd) {
    for (size_t i = 0; i < sd->count; i++) {
        const hs_sd_entry *e = &sd->entries[i];
        int64_t n = 1;
        for (int d = 0; d < e->ndim; d++) n *= e->shape[d];
        if (n != e->numel || !e->data || hs_sd_find(sd, e->name) != e) return 0;
    }
    return 1;
}

/* Every proper prefix of every fixture is an error (never a crash: run under ASan), and
 * random byte flips give either a load or a refusal as a bad file, nothing else. Each attempt
 * gets an exactly sized copy so ASan sees any read past the end. Flips in tensor data keep the
 * layout (legacy; a zip entry's CRC-32 refuses them, see test_zip_crc), flips in opcodes and
 * lengths are refused, so both kinds must be seen in every file (in a zip, flips in fields no
 * reader checks, such as times, keep the layout); flips in a name or a size can still load,
 * with another layout. */
static void test_damage(void) {
    long truncations = 0, flips = 0, same = 0, changed = 0, refused = 0;
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
            hs_status st = hs_pth_load_memory(part, len, files[f], &sd, &err);
            if (st == HS_OK) all_failed = 0;
            else if (!refused_as_bad_file(st, &err, files[f])) all_failed = 0;
            hs_sd_free(&sd);
            free(part);
            truncations++;
        }
        CHECK_MSG(all_failed, "%s: a truncated copy loaded or failed oddly", files[f]);
        int is_evil = f >= COUNT(good);
        hs_state_dict original;
        hs_error err = {0};
        hs_sd_init(&original);
        hs_status st0 = hs_pth_load_memory(whole, size, files[f], &original, &err);
        CHECK_MSG(st0 == (is_evil ? HS_ERR_UNSAFE : HS_OK), "%s: %s", files[f], err.message);
        long file_same = 0, file_refused = 0, file_odd = 0;
        for (int round = 0; round < 3000; round++) {
            uint8_t *copy = malloc(size);
            memcpy(copy, whole, size);
            int n = 1 + (int)(next_random() % 4);
            for (int k = 0; k < n; k++) copy[next_random() % size] ^= (uint8_t)(1 + next_random() % 255);
            hs_state_dict sd;
            hs_sd_init(&sd);
            hs_status st = hs_pth_load_memory(copy, size, files[f], &sd, &err);
            if (st == HS_OK && consistent(&sd)) {
                if (!is_evil && same_layout(&sd, &original)) file_same++;
                else changed++;
            } else if (st != HS_OK && refused_as_bad_file(st, &err, files[f])) {
                file_refused++;
            } else {
                if (file_odd++ == 0)
                    fprintf(stderr, "%s: flip round %d: status %d: %s\n", files[f], round, st,
                            err.message);
            }
            hs_sd_free(&sd);
            free(copy);
            flips++;
        }
        CHECK_MSG(file_odd == 0, "%s: %ld flipped copies neither loaded nor were refused as "
                  "bad files", files[f], file_odd);
        CHECK_MSG(file_refused > 0, "%s: no flipped copy was refused", files[f]);
        CHECK_MSG(is_evil || file_same > 0, "%s: no flipped copy loaded with the same layout",
                  files[f]);
        same += file_same;
        refused += file_refused;
        hs_sd_free(&original);
        free(whole);
    }
    printf("test_pth: %ld truncations refused; %ld byte-flip variants: %ld loaded with the same "
           "names and shapes, %ld loaded changed, %ld refused\n",
           truncations, flips, same, changed, refused);
    CHECK(same + changed + refused == flips);
}

/* ---- The unpickler's memory --------------------------------------------------------------- */

static hs_status unpickle_bytes(const char *bytes, size_t len, size_t budget, hs_error *err) {
    hs_unpickler u;
    hs_unpickler_init(&u, "crafted.pkl", budget);
    pk_value *v = NULL;
    size_t pos = 0;
    hs_status st = hs_unpickle(&u, (const uint8_t *)bytes, len, &pos, 0, &v, err);
    hs_unpickler_free(&u);
    return st;
}

/* Memo indices: picklers number their stores 0, 1, 2 ...; an index above the stores so far
 * is refused before any table is sized from it. */
static void test_memo_bounds(void) {
    hs_error err = {0};
    static const char huge[] = "\x80\x02}r\xff\xff\xff\x7f."; /* LONG_BINPUT 0x7fffffff */
    hs_status st = unpickle_bytes(huge, sizeof huge - 1, (size_t)64 << 20, &err);
    CHECK_MSG(st == HS_ERR_FORMAT && strstr(err.message, "memo index 2147483647"), "%d: %s", st,
              err.message);
    /* BINPUT 5 as the first store, in a pickle long enough that "index < size" allowed it. */
    char skipped[300];
    memset(skipped, 'N', sizeof skipped);
    memcpy(skipped, "\x80\x02}q\x05.", 7);
    st = unpickle_bytes(skipped, sizeof skipped, (size_t)64 << 20, &err);
    CHECK_MSG(st == HS_ERR_FORMAT && strstr(err.message, "memo index 5"), "%d: %s", st,
              err.message);
    /* What picklers write: BINPUT 0, BINPUT 1, then BINGETs, and MEMOIZE (protocol 4). */
    static const char real[] = "\x80\x02}q\x00]q\x01h\x00h\x01\x86\x86.";
    CHECK(unpickle_bytes(real, sizeof real - 1, (size_t)64 << 20, &err) == HS_OK);
    static const char memoize[] = "\x80\x04}\x94]\x94h\x01q\x01h\x00\x87.";
    CHECK_MSG(unpickle_bytes(memoize, sizeof memoize - 1, (size_t)64 << 20, &err) == HS_OK, "%s",
              err.message);
}

/* The stack is charged to the budget: one value DUP'd 20,000 times needs 160 KB of stack
 * and no new value. */
static void test_stack_budget(void) {
    size_t len = 3 + 20000 + 1;
    char *dups = malloc(len);
    memcpy(dups, "\x80\x02N", 3);
    memset(dups + 3, '2', 20000);
    dups[len - 1] = '.';
    hs_error err = {0};
    hs_status st = unpickle_bytes(dups, len, 64 * 1024, &err);
    CHECK_MSG(st == HS_ERR_NOMEM && strstr(err.message, "crafted.pkl"), "%d: %s", st,
              err.message);
    st = unpickle_bytes(dups, len, 1024 * 1024, &err);
    CHECK_MSG(st == HS_OK, "%d: %s", st, err.message);
    free(dups);
}

/* The legacy stream is five pickles then the storages: the extent is exactly the pickles. */
static void test_legacy_extent(void) {
    static const char *const files[] = {"tiny_legacy.pth", "dtypes_legacy.pth",
                                        "shared_legacy.pth"};
    for (size_t f = 0; f < COUNT(files); f++) {
        char path[512];
        snprintf(path, sizeof path, "%s%s", PTH_DIR, files[f]);
        size_t size, pos = 0, extent = 0;
        uint8_t *data = read_file(path, &size);
        CHECK(data != NULL);
        if (!data) continue;
        hs_unpickler u;
        hs_unpickler_init(&u, files[f], (size_t)64 << 20);
        hs_error err = {0};
        for (int i = 0; i < 5; i++) {
            pk_value *v = NULL;
            extent = hs_pickle_extent(data, size, extent);
            CHECK_MSG(hs_unpickle(&u, data, size, &pos, i == 3, &v, &err) == HS_OK, "%s: %s",
                      files[f], err.message);
            CHECK_MSG(pos == extent, "%s: pickle %d ends at %zu, extent %zu", files[f], i, pos,
                      extent);
        }
        CHECK_MSG(extent < size && data[extent - 1] == '.', "%s: extent %zu of %zu", files[f],
                  extent, size);
        hs_unpickler_free(&u);
        free(data);
    }
}

static long peak_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* A 100 MB legacy file that is a hole after a few bytes (4 KB on disk): its pickle stores a
 * memo entry at index 99,999,000. The unpickler's memory follows the pickle, not the file:
 * the load fails at once and the peak RSS barely moves. Runs first, while the peak is low. */
static void test_sparse_legacy(void) {
    static const unsigned char head[] = {
        0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.',
        0x80, 0x02, 'M', 0xe9, 0x03, '.',             /* protocol 1001 */
        0x80, 0x02, '}', '.',                         /* sys_info */
        0x80, 0x02, '}', 'r', 0x18, 0xdd, 0xf5, 0x05, /* LONG_BINPUT 99,999,000 */
        '.'};
    const char *path = HS_TEST_TMP_DIR "/sparse_legacy.pth";
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK(write(fd, head, sizeof head) == (ssize_t)sizeof head);
    CHECK(ftruncate(fd, 100 * 1000 * 1000) == 0);
    close(fd);
    long before = peak_rss_kb();
    hs_state_dict sd;
    hs_error err = {0};
    hs_sd_init(&sd);
    hs_status st = hs_pth_load(path, &sd, &err);
    long grew = peak_rss_kb() - before;
    printf("test_pth: sparse 100 MB legacy file: status %d (%s), peak RSS +%ld KB\n", st,
           err.message, grew);
    CHECK_MSG(st == HS_ERR_FORMAT && strstr(err.message, "memo index 99999000"), "%d: %s", st,
              err.message);
    CHECK_MSG(grew < 32 * 1024, "peak RSS grew by %ld KB", grew);
    hs_sd_free(&sd);
    unlink(path);
}

/* The real EfficientNet-Lite0 checkpoint (legacy layout), found as the product finds it:
 * weights/, then the rest of the search path. CI has it (scripts/fetch-weights.sh). */
static void test_real_file(void) {
    char path[4096];
    hs_error err = {0};
    if (hs_find_weights(hs_backbone_find("efficientnet_lite0"), path, sizeof path, &err)) {
        CHECK_MSG(!getenv("CI"), "CI must have the Lite0 weights: %s", err.message);
        printf("SKIP (part of test_pth): the real Lite0 file: %s\n", err.message);
        return;
    }
    hs_state_dict sd;
    hs_sd_init(&sd);
    CHECK_MSG(hs_pth_load(path, &sd, &err) == HS_OK, "%s", err.message);
    printf("test_pth: %s: %zu tensors\n", path, sd.count);
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
    test_sparse_legacy(); /* first: it measures the peak RSS */
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
    test_zip_crc();
    test_memo_bounds();
    test_stack_budget();
    test_legacy_extent();
    test_damage();
    test_real_file();
    CHECK_MSG(access(PWNED, F_OK) != 0, "%s exists: something ran", PWNED);
    return check_finish("test_pth");
}
