/* safetensors: headstart's own model format (8-byte little-endian header length, a JSON
 * header of {"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}}, then
 * the raw little-endian data). */
#ifndef HS_SAFETENSORS_H
#define HS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "statedict.h"

/* Headers above this size are refused before anything is allocated. */
#define HS_ST_MAX_HEADER (100u * 1024u * 1024u)

/* JSON values a header may hold (checked with hs_json_value_bound before cJSON parses it): an
 * entry of a tensor is at most 14 (its object, dtype, shape and up to 8 dims, data_offsets and
 * its 2 numbers), and __metadata__ a few thousand strings. */
#define HS_ST_MAX_JSON_VALUES (16u * HS_SD_MAX_TENSORS + 4096u)

/* String metadata stored in "__metadata__". */
typedef struct hs_kv {
    const char *key;
    const char *value;
} hs_kv;

/* Reads every tensor (F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL converted to float32). */
hs_status hs_safetensors_load(const char *path, hs_state_dict *out, hs_error *err);
hs_status hs_safetensors_load_memory(const uint8_t *data, size_t size, const char *name,
                                     hs_state_dict *out, hs_error *err);

/* Writes every entry as F32, with optional metadata, atomically: a temporary file in the
 * same folder, flushed and fsync'd, then renamed over path. */
hs_status hs_safetensors_save(const char *path, const hs_state_dict *sd, const hs_kv *metadata,
                              size_t metadata_count, hs_error *err);

#endif
