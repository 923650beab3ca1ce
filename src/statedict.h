/* A state dict: named float32 tensors, as read from .pth or safetensors files.
 *
 * Whatever dtype a file stores (float16, bfloat16, float64, int64 ...), entries hold float32
 * data; source_dtype remembers what the file had. The dict owns every name and buffer. */
#ifndef HS_STATEDICT_H
#define HS_STATEDICT_H

#include <stddef.h>
#include <stdint.h>

#include "headstart.h"

#define HS_MAX_DIMS 8

typedef enum hs_dtype {
    HS_DTYPE_F32 = 0,
    HS_DTYPE_F16,
    HS_DTYPE_BF16,
    HS_DTYPE_F64,
    HS_DTYPE_I64,
    HS_DTYPE_I32,
    HS_DTYPE_I16,
    HS_DTYPE_I8,
    HS_DTYPE_U8,
    HS_DTYPE_BOOL
} hs_dtype;

const char *hs_dtype_name(hs_dtype dtype);
size_t hs_dtype_size(hs_dtype dtype);

typedef struct hs_sd_entry {
    char *name;
    int ndim;
    int64_t shape[HS_MAX_DIMS];
    int64_t numel;
    hs_dtype source_dtype;
    float *data; /* numel floats, owned */
} hs_sd_entry;

/* More tensors than any real network has (the largest have a few thousand). Both file
 * readers and hs_sd_add refuse more, so a header cannot make us build millions of entries. */
#define HS_SD_MAX_TENSORS 65536

/* Names are found through a hash table (slots), so adding n tensors, each checked for a
 * duplicate, costs O(n). Entries' names must not be changed in place: a renamed entry is no
 * longer found under its new name. */
typedef struct hs_state_dict {
    hs_sd_entry *entries;
    size_t count;
    size_t capacity;
    size_t *slots; /* entry index + 1, 0 when empty; slot_cap is a power of two */
    size_t slot_cap;
    size_t add_compares; /* name comparisons hs_sd_add made so far: tests check it is O(n) */
} hs_state_dict;

void hs_sd_init(hs_state_dict *sd);
void hs_sd_free(hs_state_dict *sd);

/* Adds a tensor; takes ownership of data (freed on failure too). Duplicate names are an
 * HS_ERR_FORMAT, more than HS_SD_MAX_TENSORS an HS_ERR_NOMEM. numel is computed from shape
 * and checked for overflow. */
hs_status hs_sd_add(hs_state_dict *sd, const char *name, int ndim, const int64_t *shape,
                    hs_dtype source_dtype, float *data, hs_error *err);

/* Adds a copy of data. */
hs_status hs_sd_add_copy(hs_state_dict *sd, const char *name, int ndim, const int64_t *shape,
                         const float *data, hs_error *err);

const hs_sd_entry *hs_sd_find(const hs_state_dict *sd, const char *name);

/* Conversions from raw little-endian storage to float32. */
float hs_f16_to_f32(uint16_t h);
float hs_bf16_to_f32(uint16_t b);
uint16_t hs_f32_to_f16(float f);
uint16_t hs_f32_to_bf16(float f);

/* Converts count elements of dtype at src (little-endian, possibly unaligned) into dst. */
void hs_convert_to_f32(hs_dtype dtype, const void *src, int64_t count, float *dst);

/* Safe size arithmetic: returns 0 on overflow, 1 otherwise. */
int hs_mul_size(size_t a, size_t b, size_t *out);

#endif
