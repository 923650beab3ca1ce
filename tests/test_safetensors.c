/* safetensors reading and writing: round trip, every dtype, malformed headers, truncations,
 * many tensors, failed saves. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "safetensors.h"

static char tmp_dir[512];

static void make_tmp_dir(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "%s/safetensors_%ld", HS_TEST_TMP_DIR, (long)getpid());
    mkdir(HS_TEST_TMP_DIR, 0777);
    mkdir(tmp_dir, 0777);
}

/* Counts files in tmp_dir whose name contains ".tmp.". */
static int count_temp_files(void) {
    DIR *d = opendir(tmp_dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static uint8_t *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n ? (size_t)n : 1);
    *size = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

/* A file in memory: 8-byte length, header, then data. */
static uint8_t *build(const char *header, const void *data, size_t data_size, size_t *size) {
    size_t h = strlen(header);
    *size = 8 + h + data_size;
    uint8_t *buf = malloc(*size);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    if (data_size) memcpy(buf + 8 + h, data, data_size);
    return buf;
}

static hs_status load_built(const char *header, const void *data, size_t data_size,
                            hs_state_dict *sd, hs_error *err) {
    size_t size;
    uint8_t *buf = build(header, data, data_size, &size);
    hs_status st = hs_safetensors_load_memory(buf, size, "built.safetensors", sd, err);
    free(buf);
    return st;
}

static void test_round_trip(void) {
    hs_state_dict sd;
    hs_sd_init(&sd);
    hs_error err = {0};
    int64_t s_a[2] = {3, 4}, s_b[1] = {5}, s_empty[2] = {0, 7}, s_4d[4] = {2, 1, 3, 2};
    float a[12], b[5], d4[12], scalar = -0.0f;
    for (int i = 0; i < 12; i++) a[i] = (float)i * 0.37f - 1.5f;
    b[0] = INFINITY;
    b[1] = -INFINITY;
    b[2] = NAN;
    b[3] = 1e-42f; /* subnormal */
    b[4] = 3.4e38f;
    for (int i = 0; i < 12; i++) d4[i] = (float)(i * i);
    CHECK(hs_sd_add_copy(&sd, "layer.weight", 2, s_a, a, &err) == HS_OK);
    CHECK(hs_sd_add_copy(&sd, "layer.bias", 1, s_b, b, &err) == HS_OK);
    CHECK(hs_sd_add_copy(&sd, "empty", 2, s_empty, a, &err) == HS_OK);
    CHECK(hs_sd_add_copy(&sd, "scalar", 0, NULL, &scalar, &err) == HS_OK);
    CHECK(hs_sd_add_copy(&sd, "z.four_d \"quoted\" \xc3\xa9", 4, s_4d, d4, &err) == HS_OK);
    hs_kv meta[2] = {{"format", "pt"}, {"headstart.classes", "cat,dog"}};
    char path[600];
    snprintf(path, sizeof path, "%s/round.safetensors", tmp_dir);
    CHECK_MSG(hs_safetensors_save(path, &sd, meta, 2, &err) == HS_OK, "%s", err.message);
    CHECK(count_temp_files() == 0);

    hs_state_dict back;
    CHECK_MSG(hs_safetensors_load(path, &back, &err) == HS_OK, "%s", err.message);
    CHECK(back.count == sd.count);
    for (size_t i = 0; i < sd.count && i < back.count; i++) {
        const hs_sd_entry *x = &sd.entries[i], *y = &back.entries[i];
        CHECK_MSG(strcmp(x->name, y->name) == 0, "order: %s vs %s", x->name, y->name);
        CHECK(x->ndim == y->ndim && x->numel == y->numel);
        for (int d = 0; d < x->ndim; d++) CHECK(x->shape[d] == y->shape[d]);
        CHECK(y->source_dtype == HS_DTYPE_F32);
        CHECK(x->numel == 0 || memcmp(x->data, y->data, (size_t)x->numel * 4) == 0);
    }
    hs_sd_free(&back);

    /* the layout: header length a multiple of 8, metadata present, sizes add up */
    size_t size;
    uint8_t *raw = read_file(path, &size);
    CHECK(raw != NULL && size > 8);
    if (raw) {
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | raw[i];
        CHECK(hlen % 8 == 0);
        CHECK(size == 8 + hlen + (12 + 5 + 0 + 1 + 12) * 4);
        char *header = calloc(1, hlen + 1);
        memcpy(header, raw + 8, hlen);
        CHECK(strstr(header, "\"__metadata__\":{\"format\":\"pt\",\"headstart.classes\":"
                             "\"cat,dog\"}") != NULL);
        CHECK(strstr(header, "\"dtype\":\"F32\"") != NULL);
        CHECK(header[0] == '{');
        free(header);
        /* every truncation is an error, never a crash; each byte flipped never crashes */
        for (size_t n = 0; n < size; n++) {
            hs_state_dict t;
            hs_status st = hs_safetensors_load_memory(raw, n, "cut", &t, &err);
            CHECK_MSG(st == HS_ERR_FORMAT, "truncated at %zu: status %d", n, st);
            CHECK(t.count == 0);
            hs_sd_free(&t);
        }
        for (size_t n = 0; n < 8 + hlen; n++) {
            uint8_t saved = raw[n];
            for (int v = 0; v < 256; v += 51) {
                raw[n] = (uint8_t)v;
                hs_state_dict t;
                if (hs_safetensors_load_memory(raw, size, "flip", &t, &err) == HS_OK)
                    hs_sd_free(&t);
            }
            raw[n] = saved;
        }
    }
    free(raw);

    /* saving over an existing file replaces it */
    hs_state_dict small;
    hs_sd_init(&small);
    CHECK(hs_sd_add_copy(&small, "only", 1, s_b, a, &err) == HS_OK);
    CHECK(hs_safetensors_save(path, &small, NULL, 0, &err) == HS_OK);
    CHECK(hs_safetensors_load(path, &back, &err) == HS_OK);
    CHECK(back.count == 1 && strcmp(back.entries[0].name, "only") == 0);
    hs_sd_free(&back);
    raw = read_file(path, &size);
    CHECK(raw && strstr((char *)raw + 8, "__metadata__") == NULL);
    free(raw);
    hs_sd_free(&small);
    hs_sd_free(&sd);
    remove(path);
}

static void test_dtypes(void) {
    /* one entry of each dtype, little-endian data written by hand */
    uint8_t data[256];
    size_t off = 0;
    float f32[2] = {1.5f, -2.25f};
    memcpy(data + off, f32, 8); /* F32 [0, 8) */
    off += 8;
    const uint8_t f16[4] = {0x00, 0x3c, 0x00, 0xc0}; /* 1.0, -2.0 */
    memcpy(data + off, f16, 4); /* F16 [8, 12) */
    off += 4;
    const uint8_t bf16[4] = {0x80, 0x3f, 0x49, 0x40}; /* 1.0, 3.140625 */
    memcpy(data + off, bf16, 4); /* BF16 [12, 16) */
    off += 4;
    double f64 = -0.125;
    memcpy(data + off, &f64, 8); /* F64 [16, 24) */
    off += 8;
    const uint8_t i64[16] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* -2 */
                             0x00, 0x10, 0, 0, 0, 0, 0, 0};                  /* 4096 */
    memcpy(data + off, i64, 16); /* I64 [24, 40) */
    off += 16;
    const uint8_t i32[4] = {0x9c, 0xff, 0xff, 0xff}; /* -100 */
    memcpy(data + off, i32, 4);                      /* I32 [40, 44) */
    off += 4;
    const uint8_t i16[2] = {0x00, 0x80}; /* -32768 */
    memcpy(data + off, i16, 2);          /* I16 [44, 46) */
    off += 2;
    data[off++] = 0x80; /* I8 -128 [46, 47) */
    data[off++] = 0xff; /* U8 255 [47, 48) */
    data[off++] = 1;    /* BOOL [48, 50) */
    data[off++] = 0;
    const char *header =
        "{\"__metadata__\":{\"a\":\"b\"},"
        "\"f32\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"f16\":{\"dtype\":\"F16\",\"shape\":[2,1],\"data_offsets\":[8,12]},"
        "\"bf16\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[12,16]},"
        "\"f64\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[16,24]},"
        "\"i64\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[24,40]},"
        "\"i32\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[40,44]},"
        "\"i16\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[44,46]},"
        "\"i8\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[46,47]},"
        "\"u8\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[47,48]},"
        "\"bool\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[48,50]},"
        "\"none\":{\"dtype\":\"F16\",\"shape\":[0,4],\"data_offsets\":[50,50]}}";
    hs_state_dict sd;
    hs_error err = {0};
    CHECK_MSG(load_built(header, data, off, &sd, &err) == HS_OK, "%s", err.message);
    struct {
        const char *name;
        hs_dtype dtype;
        int n;
        float v[2];
    } want[] = {{"f32", HS_DTYPE_F32, 2, {1.5f, -2.25f}},
                {"f16", HS_DTYPE_F16, 2, {1.0f, -2.0f}},
                {"bf16", HS_DTYPE_BF16, 2, {1.0f, 3.140625f}},
                {"f64", HS_DTYPE_F64, 1, {-0.125f}},
                {"i64", HS_DTYPE_I64, 2, {-2.0f, 4096.0f}},
                {"i32", HS_DTYPE_I32, 1, {-100.0f}},
                {"i16", HS_DTYPE_I16, 1, {-32768.0f}},
                {"i8", HS_DTYPE_I8, 1, {-128.0f}},
                {"u8", HS_DTYPE_U8, 1, {255.0f}},
                {"bool", HS_DTYPE_BOOL, 2, {1.0f, 0.0f}},
                {"none", HS_DTYPE_F16, 0, {0}}};
    CHECK(sd.count == sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK_MSG(i < sd.count && strcmp(sd.entries[i].name, want[i].name) == 0,
                  "entry %zu is not %s", i, want[i].name);
        const hs_sd_entry *e = hs_sd_find(&sd, want[i].name);
        if (!e) continue;
        CHECK(e->source_dtype == want[i].dtype);
        CHECK(e->numel == want[i].n);
        for (int k = 0; k < want[i].n && k < e->numel; k++)
            CHECK_MSG(e->data[k] == want[i].v[k], "%s[%d] = %g", want[i].name, k, e->data[k]);
    }
    const hs_sd_entry *scalar = hs_sd_find(&sd, "f64");
    CHECK(scalar && scalar->ndim == 0);
    hs_sd_free(&sd);
}

static void expect_format(const char *what, const char *header, size_t data_size) {
    uint8_t data[64] = {0};
    hs_state_dict sd;
    hs_error err = {0};
    hs_status st = load_built(header, data, data_size, &sd, &err);
    CHECK_MSG(st == HS_ERR_FORMAT, "%s: status %d (%s)", what, st, err.message);
    CHECK_MSG(strstr(err.message, "built.safetensors") != NULL, "%s: message '%s'", what,
              err.message);
    CHECK(sd.count == 0);
    hs_sd_free(&sd);
}

static void test_malformed(void) {
    expect_format("bad json", "{\"a\":{\"dtype\":\"F32\",", 8);
    expect_format("not an object", "[1,2,3]", 8);
    expect_format("empty header", "", 0);
    expect_format("unknown dtype", "{\"a\":{\"dtype\":\"F8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
                  8);
    expect_format("dtype not a string",
                  "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 8);
    expect_format("no shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 8);
    expect_format("no offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 8);
    expect_format("entry not an object", "{\"a\":3}", 8);
    expect_format("offsets beyond the data",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8);
    expect_format("offsets reversed",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8);
    expect_format("short data",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8);
    expect_format("long data",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8);
    expect_format("negative shape",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 8);
    expect_format("fractional shape",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 8);
    expect_format("string shape",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 8);
    expect_format("huge shape overflow",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                  "\"data_offsets\":[0,4]}}",
                  8);
    expect_format("huge shape wraps to the data size",
                  "{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],"
                  "\"data_offsets\":[0,0]}}",
                  8);
    expect_format("too many dims",
                  "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
                  8);
    expect_format("negative offset",
                  "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 8);
    expect_format("three offsets",
                  "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 8);
    expect_format("huge offsets",
                  "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
                  "\"data_offsets\":[1e300,1e300]}}",
                  8);
    expect_format("duplicate name",
                  "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                  "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                  8);
    /* the second entry is bad: the first must not leak or remain */
    expect_format("second entry bad",
                  "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                  "\"b\":{\"dtype\":\"U8\",\"shape\":[9],\"data_offsets\":[1,10]}}",
                  8);

    /* header length larger than the file, and absurdly large */
    hs_state_dict sd;
    hs_error err = {0};
    uint8_t raw[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    CHECK(hs_safetensors_load_memory(raw, sizeof raw, "x", &sd, &err) == HS_ERR_FORMAT);
    CHECK(strstr(err.message, "larger than the file") != NULL);
    memset(raw, 0xff, 8);
    CHECK(hs_safetensors_load_memory(raw, sizeof raw, "x", &sd, &err) == HS_ERR_FORMAT);
    CHECK(hs_safetensors_load_memory(raw, 3, "x", &sd, &err) == HS_ERR_FORMAT);
    CHECK(hs_safetensors_load_memory(raw, 0, "x", &sd, &err) == HS_ERR_FORMAT);
    /* a valid empty file */
    CHECK(load_built("{}", NULL, 0, &sd, &err) == HS_OK && sd.count == 0);
    CHECK(load_built("{\"__metadata__\":{\"k\":\"v\"}}  ", NULL, 0, &sd, &err) == HS_OK);
    hs_sd_free(&sd);
    /* overlapping tensors are allowed by the format (each has exactly its bytes) */
    uint8_t d[4] = {1, 2, 3, 4};
    CHECK(load_built("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                     "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}",
                     d, 4, &sd, &err) == HS_OK);
    CHECK(sd.count == 2 && sd.entries[1].data[0] == 2.0f);
    hs_sd_free(&sd);
}

static void test_io_errors(void) {
    hs_state_dict sd;
    hs_error err = {0};
    char path[700];
    snprintf(path, sizeof path, "%s/missing.safetensors", tmp_dir);
    CHECK(hs_safetensors_load(path, &sd, &err) == HS_ERR_IO);
    CHECK(strstr(err.message, "missing.safetensors") != NULL);

    hs_state_dict one;
    hs_sd_init(&one);
    int64_t shape[1] = {3};
    float v[3] = {1, 2, 3};
    CHECK(hs_sd_add_copy(&one, "v", 1, shape, v, &err) == HS_OK);
    /* a folder that does not exist */
    snprintf(path, sizeof path, "%s/no/such/folder/out.safetensors", tmp_dir);
    CHECK(hs_safetensors_save(path, &one, NULL, 0, &err) == HS_ERR_IO);
    /* the target is a folder: the temp file is written, the rename fails, the temp goes */
    snprintf(path, sizeof path, "%s/a_folder", tmp_dir);
    mkdir(path, 0777);
    char inner[800];
    snprintf(inner, sizeof inner, "%s/keep", path);
    FILE *f = fopen(inner, "w"); /* a non-empty folder cannot be replaced */
    if (f) fclose(f);
    CHECK(hs_safetensors_save(path, &one, NULL, 0, &err) == HS_ERR_IO);
    CHECK(count_temp_files() == 0);
    remove(inner);
    rmdir(path);
    hs_sd_free(&one);

    /* disk full, simulated with a file size limit (writes past it fail with EFBIG): the save
     * must fail, leave no temp file and not create the target */
    hs_state_dict big;
    hs_sd_init(&big);
    int64_t bshape[1] = {100000};
    float *bv = calloc(100000, sizeof *bv);
    CHECK(hs_sd_add(&big, "big", 1, bshape, HS_DTYPE_F32, bv, &err) == HS_OK);
    snprintf(path, sizeof path, "%s/full.safetensors", tmp_dir);
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = {4096, old.rlim_max};
    CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
    hs_status st = hs_safetensors_save(path, &big, NULL, 0, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK_MSG(st == HS_ERR_IO, "disk full: status %d", st);
    CHECK(count_temp_files() == 0);
    CHECK(access(path, F_OK) != 0);
    hs_sd_free(&big);
}

/* A header of n empty F32 tensors "t0" ... (and "t<dup>" twice when dup >= 0). */
static uint8_t *many_tensors(long n, long dup, size_t *size) {
    size_t cap = 64 + (size_t)(n + 1) * 64, used = 0;
    char *header = malloc(cap);
    used += (size_t)snprintf(header + used, cap - used, "{");
    for (long i = 0; i < n; i++)
        used += (size_t)snprintf(header + used, cap - used,
                                 "%s\"t%ld\":{\"dtype\":\"F32\",\"shape\":[0],"
                                 "\"data_offsets\":[0,0]}",
                                 i ? "," : "", i == n - 1 && dup >= 0 ? dup : i);
    snprintf(header + used, cap - used, "}");
    uint8_t *file = build(header, NULL, 0, size);
    free(header);
    return file;
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 40,000 tensors load in linear time: the duplicate check is a hash lookup, so the name
 * comparisons stay a small multiple of the count (comparing with every earlier name made 800
 * million and took 4.6 s). A duplicate among them is still found; more than 65,536 are
 * refused before any is built. */
static void test_many_tensors(void) {
    size_t size;
    uint8_t *file = many_tensors(40000, -1, &size);
    hs_state_dict sd;
    hs_error err = {0};
    double t0 = seconds_now();
    hs_status st = hs_safetensors_load_memory(file, size, "many.safetensors", &sd, &err);
    double took = seconds_now() - t0;
    printf("test_safetensors: 40,000 tensors (%zu-byte header) loaded in %.3f s, %zu name "
           "comparisons\n", size, took, sd.add_compares);
    CHECK_MSG(st == HS_OK && sd.count == 40000, "%d: %s", st, err.message);
    CHECK_MSG(sd.add_compares < 2 * 40000, "%zu name comparisons for 40,000 tensors",
              sd.add_compares);
    CHECK(st != HS_OK || (hs_sd_find(&sd, "t39999") == &sd.entries[39999] &&
                          hs_sd_find(&sd, "t0") == &sd.entries[0] && !hs_sd_find(&sd, "t40000")));
    if (st == HS_OK) hs_sd_free(&sd);
    free(file);

    file = many_tensors(40000, 12345, &size);
    st = hs_safetensors_load_memory(file, size, "dup.safetensors", &sd, &err);
    CHECK_MSG(st == HS_ERR_FORMAT && strstr(err.message, "'t12345' appears twice"), "%d: %s", st,
              err.message);
    free(file);

    file = many_tensors(70000, -1, &size);
    t0 = seconds_now();
    st = hs_safetensors_load_memory(file, size, "huge.safetensors", &sd, &err);
    took = seconds_now() - t0;
    CHECK_MSG(st == HS_ERR_NOMEM && strstr(err.message, "huge.safetensors") &&
              strstr(err.message, "70000 tensors (at most 65536"), "%d: %s", st, err.message);
    printf("test_safetensors: 70,000 tensors refused in %.3f s\n", took);
    CHECK(sd.count == 0);
    free(file);

    /* One tensor whose shape lists two million dims: refused before the JSON is parsed
     * (parsed, it cost 80 bytes a value, 160 MB for a 4 MB header). */
    size_t dims = 2000000, cap = 128 + 2 * dims, used = 0;
    char *header = malloc(cap);
    used += (size_t)snprintf(header, cap, "{\"x\":{\"dtype\":\"F32\",\"shape\":[");
    for (size_t i = 0; i < dims; i++) {
        header[used++] = '1';
        header[used++] = ',';
    }
    used--; /* no comma after the last */
    snprintf(header + used, cap - used, "],\"data_offsets\":[0,4]}}");
    file = build(header, "\0\0\0\0", 4, &size);
    free(header);
    st = hs_safetensors_load_memory(file, size, "dims.safetensors", &sd, &err);
    CHECK_MSG(st == HS_ERR_NOMEM && strstr(err.message, "dims.safetensors") &&
              strstr(err.message, "more JSON values"), "%d: %s", st, err.message);
    free(file);
}

int main(void) {
    make_tmp_dir();
    test_round_trip();
    test_dtypes();
    test_malformed();
    test_many_tensors();
    test_io_errors();
    rmdir(tmp_dir);
    return check_finish("test_safetensors");
}
