/* A restricted unpickler for PyTorch state dicts.
 *
 * It understands the pickle opcodes torch.save emits (protocols 2 to 5, binary forms only) and
 * a short allow-list of globals: collections.OrderedDict, the torch._utils tensor/parameter
 * rebuild functions and the torch.<Type>Storage classes. Any other global is refused with
 * HS_ERR_UNSAFE the moment the pickle names it. Nothing is ever executed: REDUCE and NEWOBJ
 * only "call" the allow-listed functions, which are implemented here and just build values.
 *
 * Values live in an arena owned by the unpickler (hs_unpickler_free releases all of them), so
 * shared references (memo, BINGET) and cycles need no reference counting. One byte budget
 * covers the arena, the stack, the MARKs, the memo and the storage table; every length read
 * from the input is checked against what remains of the input, and every memo index against
 * the memo stores run so far, before anything is allocated. */
#ifndef HS_PICKLE_H
#define HS_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "statedict.h"

typedef enum pk_kind {
    PK_NONE,
    PK_BOOL,
    PK_INT,     /* fits in int64 */
    PK_BIGINT,  /* a longer LONG1/LONG4: raw little-endian two's complement bytes in str */
    PK_FLOAT,
    PK_STR,     /* unicode or py2 str; NUL-terminated copy in str */
    PK_BYTES,
    PK_TUPLE,
    PK_LIST,
    PK_DICT,
    PK_GLOBAL,  /* an allow-listed global */
    PK_STORAGE, /* what a persistent id resolved to: a (view of a) storage record */
    PK_TENSOR   /* result of _rebuild_tensor[_v2] */
} pk_kind;

typedef enum pk_global {
    PK_G_ORDERED_DICT,
    PK_G_REBUILD_TENSOR,    /* torch._utils._rebuild_tensor (old files) */
    PK_G_REBUILD_TENSOR_V2, /* torch._utils._rebuild_tensor_v2 */
    PK_G_REBUILD_PARAMETER, /* torch._utils._rebuild_parameter[_with_state] */
    PK_G_STORAGE_TYPE       /* torch.FloatStorage and friends; dtype says which */
} pk_global;

typedef struct pk_value pk_value;

typedef struct pk_tensor {
    const pk_value *storage; /* PK_STORAGE */
    int64_t offset;          /* in elements, relative to the storage value */
    int ndim;
    int64_t size[HS_MAX_DIMS];
    int64_t stride[HS_MAX_DIMS];
} pk_tensor;

struct pk_value {
    pk_kind kind;
    union {
        int64_t i; /* PK_BOOL, PK_INT */
        double f;
        struct {
            const char *ptr;
            size_t len;
        } str; /* PK_STR, PK_BYTES, PK_BIGINT */
        struct {
            pk_value **items;
            size_t count, cap;
        } seq; /* PK_TUPLE, PK_LIST */
        struct {
            pk_value **keys, **vals;
            size_t count, cap;
        } dict; /* insertion order kept; duplicates are left for the caller to reject */
        struct {
            pk_global id;
            hs_dtype dtype; /* PK_G_STORAGE_TYPE only */
        } global;
        struct {
            size_t record;  /* index into hs_unpickler.storages */
            int64_t offset; /* elements into the root storage (legacy views) */
            int64_t numel;  /* elements, as the persistent id claims */
        } storage;
        pk_tensor *tensor;
    } u;
};

/* One storage a persistent id named: key (the file under data/ or the legacy key) and dtype. */
typedef struct pk_storage_record {
    const char *key;
    hs_dtype dtype;
    int64_t numel; /* as claimed by the persistent id; the actual bytes are checked later */
} pk_storage_record;

typedef struct pk_block pk_block;

typedef struct hs_unpickler {
    const char *name; /* file name, for messages */
    pk_block *blocks;
    size_t used, budget; /* bytes charged so far (arena, stack, memo ...), and the most allowed */
    pk_storage_record *storages;
    size_t storage_count, storage_cap;
    size_t *slots; /* hash of storage keys: record index + 1, 0 when empty */
    size_t slot_cap;
} hs_unpickler;

/* At most this many distinct storages per file (real models have a few thousand). */
#define PK_MAX_STORAGES ((size_t)1 << 20)

void hs_unpickler_init(hs_unpickler *u, const char *name, size_t budget);
void hs_unpickler_free(hs_unpickler *u);

/* Unpickles one pickle starting at data[*pos], up to and including its STOP; *pos is moved past
 * it. allow_persistent: whether BINPERSID (torch storages) may appear. */
hs_status hs_unpickle(hs_unpickler *u, const uint8_t *data, size_t size, size_t *pos,
                      int allow_persistent, pk_value **out, hs_error *err);

/* Where the pickle starting at data[pos] ends at the latest: one past its STOP, found by
 * stepping over each opcode and its arguments without building anything; one past the first
 * opcode the unpickler does not know; or size when arguments run past the end. Unpickling
 * data[pos, extent) fails where unpickling all of data would, with the same message; a valid
 * pickle is exactly data[pos, extent). The legacy .pth
 * layout follows its pickles with the storages' bytes: this is how much of the file is
 * pickle, so the budget can follow the pickle's size rather than the file's. */
size_t hs_pickle_extent(const uint8_t *data, size_t size, size_t pos);

/* Index of the storage record with this key (len bytes), or SIZE_MAX. */
size_t hs_unpickler_find_storage(const hs_unpickler *u, const char *key, size_t len);

/* Dictionary lookup by string key, NULL when absent. */
const pk_value *pk_dict_get(const pk_value *dict, const char *key);

#endif
