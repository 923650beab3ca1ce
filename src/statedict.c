#include "statedict.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

const char *hs_dtype_name(hs_dtype dtype) {
    static const char *names[] = {"float32", "float16", "bfloat16", "float64", "int64",
                                  "int32",   "int16",   "int8",     "uint8",   "bool"};
    if ((unsigned)dtype < sizeof names / sizeof names[0]) return names[dtype];
    return "unknown";
}

size_t hs_dtype_size(hs_dtype dtype) {
    switch (dtype) {
    case HS_DTYPE_F64: case HS_DTYPE_I64: return 8;
    case HS_DTYPE_F32: case HS_DTYPE_I32: return 4;
    case HS_DTYPE_F16: case HS_DTYPE_BF16: case HS_DTYPE_I16: return 2;
    case HS_DTYPE_I8: case HS_DTYPE_U8: case HS_DTYPE_BOOL: return 1;
    }
    return 0;
}

int hs_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

void hs_sd_init(hs_state_dict *sd) { memset(sd, 0, sizeof *sd); }

void hs_sd_free(hs_state_dict *sd) {
    if (!sd) return;
    for (size_t i = 0; i < sd->count; i++) {
        free(sd->entries[i].name);
        free(sd->entries[i].data);
    }
    free(sd->entries);
    free(sd->slots);
    memset(sd, 0, sizeof *sd);
}

/* ---- Name index: open addressing, linear probing, at most half full ---------------------- */

static size_t name_hash(const char *name) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *c = (const unsigned char *)name; *c; c++)
        h = (h ^ *c) * 1099511628211ull;
    return (size_t)h;
}

/* The slot holding name, or the empty slot where it would go; *compares counts strcmp. */
static size_t find_slot(const hs_state_dict *sd, const char *name, size_t *compares) {
    size_t mask = sd->slot_cap - 1, i = name_hash(name) & mask;
    while (sd->slots[i] && (++*compares, strcmp(sd->entries[sd->slots[i] - 1].name, name) != 0))
        i = (i + 1) & mask;
    return i;
}

/* Makes room for one more name: doubles the table when it would be over half full. */
static int reserve_slot(hs_state_dict *sd) {
    if (sd->count + 1 <= sd->slot_cap / 2) return 1;
    size_t cap = sd->slot_cap ? sd->slot_cap * 2 : 64;
    size_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return 0;
    free(sd->slots);
    sd->slots = slots;
    sd->slot_cap = cap;
    for (size_t e = 0; e < sd->count; e++)
        sd->slots[find_slot(sd, sd->entries[e].name, &sd->add_compares)] = e + 1;
    return 1;
}

const hs_sd_entry *hs_sd_find(const hs_state_dict *sd, const char *name) {
    if (!sd->slot_cap) return NULL;
    size_t compares = 0;
    size_t r = sd->slots[find_slot(sd, name, &compares)];
    return r ? &sd->entries[r - 1] : NULL;
}

hs_status hs_sd_add(hs_state_dict *sd, const char *name, int ndim, const int64_t *shape,
                    hs_dtype source_dtype, float *data, hs_error *err) {
    if (ndim < 0 || ndim > HS_MAX_DIMS) {
        free(data);
        return hs_fail(err, HS_ERR_FORMAT, "tensor '%s' has %d dimensions (at most %d)", name,
                       ndim, HS_MAX_DIMS);
    }
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && numel > INT64_MAX / shape[i])) {
            free(data);
            return hs_fail(err, HS_ERR_FORMAT, "tensor '%s' has an invalid shape", name);
        }
        numel *= shape[i];
    }
    if (sd->count >= HS_SD_MAX_TENSORS) {
        free(data);
        return hs_fail(err, HS_ERR_NOMEM, "more than %d tensors", HS_SD_MAX_TENSORS);
    }
    if (!reserve_slot(sd)) {
        free(data);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory adding tensor '%.200s'", name);
    }
    size_t slot = find_slot(sd, name, &sd->add_compares);
    if (sd->slots[slot]) {
        free(data);
        return hs_fail(err, HS_ERR_FORMAT, "tensor '%.200s' appears twice", name);
    }
    if (sd->count == sd->capacity) {
        size_t cap = sd->capacity ? sd->capacity * 2 : 32;
        hs_sd_entry *grown = realloc(sd->entries, cap * sizeof *grown);
        if (!grown) {
            free(data);
            return hs_fail(err, HS_ERR_NOMEM, "out of memory adding tensor '%s'", name);
        }
        sd->entries = grown;
        sd->capacity = cap;
    }
    char *copy = strdup(name);
    if (!copy) {
        free(data);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory adding tensor '%s'", name);
    }
    sd->slots[slot] = sd->count + 1;
    hs_sd_entry *e = &sd->entries[sd->count++];
    memset(e, 0, sizeof *e);
    e->name = copy;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->numel = numel;
    e->source_dtype = source_dtype;
    e->data = data;
    return HS_OK;
}

hs_status hs_sd_add_copy(hs_state_dict *sd, const char *name, int ndim, const int64_t *shape,
                         const float *data, hs_error *err) {
    int64_t numel = 1;
    for (int i = 0; i < ndim && i < HS_MAX_DIMS; i++) numel *= shape[i] > 0 ? shape[i] : 0;
    size_t bytes;
    if (!hs_mul_size((size_t)numel, sizeof(float), &bytes))
        return hs_fail(err, HS_ERR_NOMEM, "tensor '%s' is too large", name);
    float *copy = malloc(bytes ? bytes : 1);
    if (!copy) return hs_fail(err, HS_ERR_NOMEM, "out of memory copying tensor '%s'", name);
    if (bytes) memcpy(copy, data, bytes);
    return hs_sd_add(sd, name, ndim, shape, HS_DTYPE_F32, copy, err);
}

float hs_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400u)) {
                mant <<= 1;
                exp--;
            }
            mant &= 0x3ffu;
            bits = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float hs_bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t hs_f32_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u); /* NaN */
    bits += 0x7fffu + ((bits >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(bits >> 16);
}

uint16_t hs_f32_to_f16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint32_t sign = (bits >> 16) & 0x8000u;
    uint32_t abs = bits & 0x7fffffffu;
    if (abs > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);        /* NaN */
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);       /* overflow to inf */
    if (abs < 0x38800000u) {                                         /* subnormal or zero */
        if (abs < 0x33000000u) return (uint16_t)sign;
        uint32_t exp = abs >> 23;
        uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - exp; /* 14..24 */
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = ((abs >> 13) - ((127u - 15u) << 10));
    uint32_t rem = abs & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) half++;
    return (uint16_t)(sign | half);
}

static uint64_t load_le(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

void hs_convert_to_f32(hs_dtype dtype, const void *src, int64_t count, float *dst) {
    const unsigned char *p = src;
    size_t size = hs_dtype_size(dtype);
    for (int64_t i = 0; i < count; i++, p += size) {
        uint64_t v = load_le(p, (int)size);
        switch (dtype) {
        case HS_DTYPE_F32: {
            uint32_t b = (uint32_t)v;
            memcpy(&dst[i], &b, 4);
            break;
        }
        case HS_DTYPE_F64: {
            double d;
            memcpy(&d, &v, 8);
            dst[i] = (float)d;
            break;
        }
        case HS_DTYPE_F16: dst[i] = hs_f16_to_f32((uint16_t)v); break;
        case HS_DTYPE_BF16: dst[i] = hs_bf16_to_f32((uint16_t)v); break;
        case HS_DTYPE_I64: dst[i] = (float)(int64_t)v; break;
        case HS_DTYPE_I32: dst[i] = (float)(int32_t)(uint32_t)v; break;
        case HS_DTYPE_I16: dst[i] = (float)(int16_t)(uint16_t)v; break;
        case HS_DTYPE_I8: dst[i] = (float)(int8_t)(uint8_t)v; break;
        case HS_DTYPE_U8: case HS_DTYPE_BOOL: dst[i] = (float)(uint8_t)v; break;
        }
    }
}
