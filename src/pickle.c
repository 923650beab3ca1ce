#include "pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* ---- Arena ------------------------------------------------------------------------------ */

struct pk_block {
    pk_block *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

#define PK_BLOCK_SIZE (64 * 1024)

void hs_unpickler_init(hs_unpickler *u, const char *name, size_t budget) {
    memset(u, 0, sizeof *u);
    u->name = name;
    u->budget = budget;
}

void hs_unpickler_free(hs_unpickler *u) {
    pk_block *b = u->blocks;
    while (b) {
        pk_block *next = b->next;
        free(b);
        b = next;
    }
    free(u->storages);
    free(u->slots);
    hs_unpickler_init(u, u->name, u->budget);
}

/* One budget bounds everything an unpickling allocates: values and strings (the arena), the
 * stack, the MARKs, the memo and the storage table. Each takes its bytes here first. */
static int charge(hs_unpickler *u, size_t n) {
    if (n > u->budget - u->used) return 0;
    u->used += n;
    return 1;
}

/* Zeroed, 16-byte aligned memory that lives until hs_unpickler_free. NULL past the budget. */
static void *arena_alloc(hs_unpickler *u, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0 || n > u->budget - u->used) return NULL;
    pk_block *b = u->blocks;
    if (!b || b->size - b->used < n) {
        size_t size = n > PK_BLOCK_SIZE / 2 ? n : PK_BLOCK_SIZE;
        pk_block *fresh = malloc(sizeof *fresh + size);
        if (!fresh) return NULL;
        fresh->size = size;
        fresh->used = 0;
        if (size == n && b) { /* a big one-off: keep filling the current block afterwards */
            fresh->next = b->next;
            b->next = fresh;
        } else {
            fresh->next = b;
            u->blocks = fresh;
        }
        b = fresh;
    }
    void *p = b->data + b->used;
    b->used += n;
    charge(u, n); /* cannot fail: checked above */
    memset(p, 0, n);
    return p;
}

/* ---- Parser state ----------------------------------------------------------------------- */

typedef struct parser {
    hs_unpickler *u;
    const uint8_t *data;
    size_t size, pos;
    size_t op_pos; /* where the current opcode starts, for messages */
    int allow_persistent;
    hs_error *err;
    pk_value **stack;
    size_t depth, stack_cap;
    size_t *marks; /* stack depths saved by MARK */
    size_t mark_count, mark_cap;
    pk_value **memo;
    size_t memo_cap;
    size_t memo_len;  /* one past the highest index stored, where MEMOIZE puts the next */
    size_t put_count; /* PUT / MEMOIZE opcodes run so far: no memo index can be above it */
} parser;

#define PK_MAX_STACK ((size_t)1 << 24)
#define PK_MAX_MARKS ((size_t)1 << 20)

static hs_status fail_format(parser *p, const char *what) {
    return hs_fail(p->err, HS_ERR_FORMAT, "%s: %s at byte %zu of the pickle", p->u->name, what,
                   p->op_pos);
}

static hs_status fail_nomem(parser *p) {
    return hs_fail(p->err, HS_ERR_NOMEM,
                   "%s: the pickle needs more memory than allowed (%zu bytes)", p->u->name,
                   p->u->budget);
}

static pk_value *new_value(parser *p, pk_kind kind) {
    pk_value *v = arena_alloc(p->u, sizeof *v);
    if (v) v->kind = kind;
    return v;
}

/* Grows a malloc'd array of elem-sized items so that index `need - 1` fits, charging the
 * added bytes to the budget (hs_unpickle gives back what its own arrays took). */
static int grow(hs_unpickler *u, void **array, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need) cap2 *= 2;
    size_t bytes;
    if (!hs_mul_size(cap2, elem, &bytes) || !charge(u, bytes - *cap * elem)) return 0;
    void *grown = realloc(*array, bytes);
    if (!grown) {
        u->used -= bytes - *cap * elem;
        return 0;
    }
    memset((char *)grown + *cap * elem, 0, (cap2 - *cap) * elem);
    *array = grown;
    *cap = cap2;
    return 1;
}

static hs_status push(parser *p, pk_value *v) {
    if (!v) return fail_nomem(p);
    if (p->depth >= PK_MAX_STACK) return fail_format(p, "the stack is too deep");
    if (!grow(p->u, (void **)&p->stack, &p->stack_cap, p->depth + 1, sizeof *p->stack))
        return fail_nomem(p);
    p->stack[p->depth++] = v;
    return HS_OK;
}

/* Pops one value, refusing to dig below the innermost MARK. */
static hs_status pop(parser *p, pk_value **out) {
    size_t floor = p->mark_count ? p->marks[p->mark_count - 1] : 0;
    if (p->depth <= floor) return fail_format(p, "stack underflow");
    *out = p->stack[--p->depth];
    return HS_OK;
}

static hs_status top(parser *p, pk_value **out) {
    size_t floor = p->mark_count ? p->marks[p->mark_count - 1] : 0;
    if (p->depth <= floor) return fail_format(p, "stack underflow");
    *out = p->stack[p->depth - 1];
    return HS_OK;
}

/* Removes the innermost MARK; *first is the stack index of the first value above it. */
static hs_status pop_mark(parser *p, size_t *first) {
    if (p->mark_count == 0) return fail_format(p, "no MARK on the stack");
    *first = p->marks[--p->mark_count];
    return HS_OK;
}

/* ---- Reading the input ------------------------------------------------------------------ */

static hs_status need(parser *p, size_t n) {
    if (n > p->size - p->pos) return fail_format(p, "truncated data");
    return HS_OK;
}

static uint64_t read_le(parser *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p->data[p->pos + (size_t)i];
    p->pos += (size_t)n;
    return v;
}

/* Reads an n-byte little-endian length and checks the bytes it announces are present. */
static hs_status read_len(parser *p, int n, size_t *len) {
    hs_status st = need(p, (size_t)n);
    if (st) return st;
    uint64_t v = read_le(p, n);
    if (v > p->size - p->pos) return fail_format(p, "a length runs past the end of the data");
    *len = (size_t)v;
    return HS_OK;
}

/* Copies n input bytes into the arena (NUL-terminated) as a value of the given kind. */
static hs_status push_bytes(parser *p, pk_kind kind, size_t n) {
    pk_value *v = new_value(p, kind);
    char *copy = v ? arena_alloc(p->u, n + 1) : NULL;
    if (!copy) return fail_nomem(p);
    memcpy(copy, p->data + p->pos, n);
    p->pos += n;
    v->u.str.ptr = copy;
    v->u.str.len = n;
    return push(p, v);
}

static hs_status push_int(parser *p, pk_kind kind, int64_t i) {
    pk_value *v = new_value(p, kind);
    if (v) v->u.i = i;
    return push(p, v);
}

/* LONG1 / LONG4: little-endian two's complement of n bytes. */
static hs_status push_long(parser *p, size_t n) {
    if (n > 8) return push_bytes(p, PK_BIGINT, n);
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | p->data[p->pos + i];
    if (n > 0 && n < 8 && (p->data[p->pos + n - 1] & 0x80)) v |= ~(uint64_t)0 << (8 * n);
    p->pos += n;
    return push_int(p, PK_INT, (int64_t)v);
}

/* ---- Containers ------------------------------------------------------------------------- */

static int seq_append(parser *p, pk_value *seq, pk_value *item) {
    if (seq->u.seq.count == seq->u.seq.cap) {
        size_t cap = seq->u.seq.cap ? seq->u.seq.cap * 2 : 8;
        pk_value **items = arena_alloc(p->u, cap * sizeof *items);
        if (!items) return 0;
        if (seq->u.seq.count) memcpy(items, seq->u.seq.items, seq->u.seq.count * sizeof *items);
        seq->u.seq.items = items;
        seq->u.seq.cap = cap;
    }
    seq->u.seq.items[seq->u.seq.count++] = item;
    return 1;
}

static int dict_set(parser *p, pk_value *dict, pk_value *key, pk_value *val) {
    if (dict->u.dict.count == dict->u.dict.cap) {
        size_t cap = dict->u.dict.cap ? dict->u.dict.cap * 2 : 8;
        pk_value **keys = arena_alloc(p->u, cap * sizeof *keys);
        pk_value **vals = keys ? arena_alloc(p->u, cap * sizeof *vals) : NULL;
        if (!vals) return 0;
        size_t n = dict->u.dict.count;
        if (n) {
            memcpy(keys, dict->u.dict.keys, n * sizeof *keys);
            memcpy(vals, dict->u.dict.vals, n * sizeof *vals);
        }
        dict->u.dict.keys = keys;
        dict->u.dict.vals = vals;
        dict->u.dict.cap = cap;
    }
    dict->u.dict.keys[dict->u.dict.count] = key;
    dict->u.dict.vals[dict->u.dict.count++] = val;
    return 1;
}

const pk_value *pk_dict_get(const pk_value *dict, const char *key) {
    if (!dict || dict->kind != PK_DICT) return NULL;
    for (size_t i = 0; i < dict->u.dict.count; i++) {
        const pk_value *k = dict->u.dict.keys[i];
        if (k->kind == PK_STR && strlen(key) == k->u.str.len && memcmp(k->u.str.ptr, key, k->u.str.len) == 0)
            return dict->u.dict.vals[i];
    }
    return NULL;
}

/* Builds a tuple (or list) from the values above the innermost MARK. */
static hs_status build_from_mark(parser *p, pk_kind kind) {
    size_t first = 0;
    hs_status st = pop_mark(p, &first);
    if (st) return st;
    pk_value *v = new_value(p, kind);
    if (!v) return fail_nomem(p);
    for (size_t i = first; i < p->depth; i++)
        if (!seq_append(p, v, p->stack[i])) return fail_nomem(p);
    p->depth = first;
    return push(p, v);
}

static hs_status build_tuple_n(parser *p, int n) {
    pk_value *v = new_value(p, PK_TUPLE);
    if (!v) return fail_nomem(p);
    pk_value *items[3] = {NULL, NULL, NULL};
    for (int i = n - 1; i >= 0; i--) {
        hs_status st = pop(p, &items[i]);
        if (st) return st;
    }
    for (int i = 0; i < n; i++)
        if (!seq_append(p, v, items[i])) return fail_nomem(p);
    return push(p, v);
}

/* SETITEMS / DICT: key, value pairs above the MARK go into dict. */
static hs_status set_items_from_mark(parser *p, pk_value *dict, size_t first) {
    if ((p->depth - first) % 2) return fail_format(p, "an odd number of items for a dict");
    for (size_t i = first; i < p->depth; i += 2)
        if (!dict_set(p, dict, p->stack[i], p->stack[i + 1])) return fail_nomem(p);
    p->depth = first;
    return HS_OK;
}

static hs_status op_setitems(parser *p) {
    size_t first = 0;
    hs_status st = pop_mark(p, &first);
    if (st) return st;
    if (first == 0 || p->stack[first - 1]->kind != PK_DICT)
        return fail_format(p, "SETITEMS on something that is not a dict");
    return set_items_from_mark(p, p->stack[first - 1], first);
}

static hs_status op_dict(parser *p) {
    size_t first = 0;
    hs_status st = pop_mark(p, &first);
    if (st) return st;
    pk_value *d = new_value(p, PK_DICT);
    if (!d) return fail_nomem(p);
    if ((st = set_items_from_mark(p, d, first))) return st;
    return push(p, d);
}

static hs_status op_setitem(parser *p) {
    pk_value *key = NULL, *val = NULL, *dict = NULL;
    hs_status st;
    if ((st = pop(p, &val)) || (st = pop(p, &key)) || (st = top(p, &dict))) return st;
    if (dict->kind != PK_DICT) return fail_format(p, "SETITEM on something that is not a dict");
    return dict_set(p, dict, key, val) ? HS_OK : fail_nomem(p);
}

static hs_status op_append(parser *p) {
    pk_value *item = NULL, *list = NULL;
    hs_status st;
    if ((st = pop(p, &item)) || (st = top(p, &list))) return st;
    if (list->kind != PK_LIST) return fail_format(p, "APPEND to something that is not a list");
    return seq_append(p, list, item) ? HS_OK : fail_nomem(p);
}

static hs_status op_appends(parser *p) {
    size_t first = 0;
    hs_status st = pop_mark(p, &first);
    if (st) return st;
    if (first == 0 || p->stack[first - 1]->kind != PK_LIST)
        return fail_format(p, "APPENDS to something that is not a list");
    pk_value *list = p->stack[first - 1];
    for (size_t i = first; i < p->depth; i++)
        if (!seq_append(p, list, p->stack[i])) return fail_nomem(p);
    p->depth = first;
    return HS_OK;
}

/* ---- Memo ------------------------------------------------------------------------------- */

static hs_status memo_put(parser *p, uint64_t index) {
    pk_value *v = NULL;
    hs_status st = top(p, &v);
    if (st) return st;
    /* Picklers number memo entries 0, 1, 2 ... in the order they store them, so after n
     * PUTs no index is above n. A larger one is bogus, and would only make the table huge. */
    if (index > p->put_count) {
        char what[96];
        snprintf(what, sizeof what, "memo index %llu after only %zu memo stores",
                 (unsigned long long)index, p->put_count);
        return fail_format(p, what);
    }
    if (!grow(p->u, (void **)&p->memo, &p->memo_cap, (size_t)index + 1, sizeof *p->memo))
        return fail_nomem(p);
    p->memo[index] = v;
    if (index >= p->memo_len) p->memo_len = (size_t)index + 1;
    p->put_count++;
    return HS_OK;
}

static hs_status memo_get(parser *p, uint64_t index) {
    if (index >= p->memo_cap || !p->memo[index]) return fail_format(p, "memo entry missing");
    return push(p, p->memo[index]);
}

/* ---- Globals ---------------------------------------------------------------------------- */

static const struct {
    const char *module, *name;
    pk_global id;
    hs_dtype dtype;
} allowed_globals[] = {
    {"collections", "OrderedDict", PK_G_ORDERED_DICT, HS_DTYPE_F32},
    {"torch._utils", "_rebuild_tensor", PK_G_REBUILD_TENSOR, HS_DTYPE_F32},
    {"torch._utils", "_rebuild_tensor_v2", PK_G_REBUILD_TENSOR_V2, HS_DTYPE_F32},
    {"torch._utils", "_rebuild_parameter", PK_G_REBUILD_PARAMETER, HS_DTYPE_F32},
    {"torch._utils", "_rebuild_parameter_with_state", PK_G_REBUILD_PARAMETER, HS_DTYPE_F32},
    {"torch", "FloatStorage", PK_G_STORAGE_TYPE, HS_DTYPE_F32},
    {"torch", "HalfStorage", PK_G_STORAGE_TYPE, HS_DTYPE_F16},
    {"torch", "BFloat16Storage", PK_G_STORAGE_TYPE, HS_DTYPE_BF16},
    {"torch", "DoubleStorage", PK_G_STORAGE_TYPE, HS_DTYPE_F64},
    {"torch", "LongStorage", PK_G_STORAGE_TYPE, HS_DTYPE_I64},
    {"torch", "IntStorage", PK_G_STORAGE_TYPE, HS_DTYPE_I32},
    {"torch", "ShortStorage", PK_G_STORAGE_TYPE, HS_DTYPE_I16},
    {"torch", "CharStorage", PK_G_STORAGE_TYPE, HS_DTYPE_I8},
    {"torch", "ByteStorage", PK_G_STORAGE_TYPE, HS_DTYPE_U8},
    {"torch", "BoolStorage", PK_G_STORAGE_TYPE, HS_DTYPE_BOOL},
};

static int name_is(const char *s, size_t len, const char *want) {
    return strlen(want) == len && memcmp(s, want, len) == 0;
}

/* Looks module.name up in the allow-list; anything else is refused, naming it. */
static hs_status push_global(parser *p, const char *module, size_t mlen, const char *name,
                             size_t nlen) {
    for (size_t i = 0; i < sizeof allowed_globals / sizeof allowed_globals[0]; i++) {
        if (name_is(module, mlen, allowed_globals[i].module) &&
            name_is(name, nlen, allowed_globals[i].name)) {
            pk_value *v = new_value(p, PK_GLOBAL);
            if (v) {
                v->u.global.id = allowed_globals[i].id;
                v->u.global.dtype = allowed_globals[i].dtype;
            }
            return push(p, v);
        }
    }
    /* The message quotes the name; keep it printable and short. */
    char shown[160];
    size_t n = 0;
    for (size_t i = 0; i < mlen + 1 + nlen && n + 4 < sizeof shown; i++) {
        char c = i < mlen ? module[i] : i == mlen ? '.' : name[i - mlen - 1];
        shown[n++] = (c >= 32 && c < 127) ? c : '?';
    }
    if (mlen + 1 + nlen > n) shown[n++] = '.', shown[n++] = '.', shown[n++] = '.';
    shown[n] = 0;
    return hs_fail(p->err, HS_ERR_UNSAFE,
                   "%s: refusing to load: the pickle asks for the global '%s', which a state "
                   "dict never needs",
                   p->u->name, shown);
}

/* GLOBAL: "module\nname\n" as text. */
static hs_status op_global(parser *p) {
    const char *parts[2];
    size_t lens[2];
    for (int i = 0; i < 2; i++) {
        const uint8_t *start = p->data + p->pos;
        const uint8_t *nl = memchr(start, '\n', p->size - p->pos);
        if (!nl) return fail_format(p, "truncated GLOBAL");
        parts[i] = (const char *)start;
        lens[i] = (size_t)(nl - start);
        p->pos += lens[i] + 1;
    }
    return push_global(p, parts[0], lens[0], parts[1], lens[1]);
}

static hs_status op_stack_global(parser *p) {
    pk_value *module = NULL, *name = NULL;
    hs_status st;
    if ((st = pop(p, &name)) || (st = pop(p, &module))) return st;
    if (module->kind != PK_STR || name->kind != PK_STR)
        return fail_format(p, "STACK_GLOBAL needs two strings");
    return push_global(p, module->u.str.ptr, module->u.str.len, name->u.str.ptr, name->u.str.len);
}

/* ---- Persistent ids: torch storages ----------------------------------------------------- */

/* Storage keys are looked up in a small open-addressing hash table, so a file naming many
 * storages costs linear time, not quadratic. */
static size_t key_hash(const char *key, size_t len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)key[i]) * 1099511628211ull;
    return (size_t)h;
}

size_t hs_unpickler_find_storage(const hs_unpickler *u, const char *key, size_t len) {
    if (!u->slot_cap) return SIZE_MAX;
    for (size_t i = key_hash(key, len) & (u->slot_cap - 1);; i = (i + 1) & (u->slot_cap - 1)) {
        size_t r = u->slots[i];
        if (r == 0) return SIZE_MAX;
        const char *k = u->storages[r - 1].key;
        if (strlen(k) == len && memcmp(k, key, len) == 0) return r - 1;
    }
}

/* Rebuilds the table at twice the size when it is half full. */
static int rehash(hs_unpickler *u) {
    if (u->storage_count + 1 <= u->slot_cap / 2) return 1;
    size_t cap = u->slot_cap ? u->slot_cap * 2 : 64;
    if (!charge(u, (cap - u->slot_cap) * sizeof *u->slots)) return 0;
    size_t *slots = calloc(cap, sizeof *slots);
    if (!slots) {
        u->used -= (cap - u->slot_cap) * sizeof *u->slots;
        return 0;
    }
    for (size_t r = 0; r < u->storage_count; r++) {
        const char *k = u->storages[r].key;
        size_t i = key_hash(k, strlen(k)) & (cap - 1);
        while (slots[i]) i = (i + 1) & (cap - 1);
        slots[i] = r + 1;
    }
    free(u->slots);
    u->slots = slots;
    u->slot_cap = cap;
    return 1;
}

/* Finds or adds the record for key; a key seen again must have the same dtype. */
static hs_status storage_record(parser *p, const pk_value *key, hs_dtype dtype, int64_t numel,
                                size_t *index) {
    hs_unpickler *u = p->u;
    size_t r = hs_unpickler_find_storage(u, key->u.str.ptr, key->u.str.len);
    if (r != SIZE_MAX) {
        if (u->storages[r].dtype != dtype)
            return fail_format(p, "one storage is used with two dtypes");
        *index = r;
        return HS_OK;
    }
    if (u->storage_count >= PK_MAX_STORAGES) return fail_format(p, "too many storages");
    if (!rehash(u) ||
        !grow(u, (void **)&u->storages, &u->storage_cap, u->storage_count + 1, sizeof *u->storages))
        return fail_nomem(p);
    u->storages[u->storage_count] = (pk_storage_record){key->u.str.ptr, dtype, numel};
    size_t i = key_hash(key->u.str.ptr, key->u.str.len) & (u->slot_cap - 1);
    while (u->slots[i]) i = (i + 1) & (u->slot_cap - 1);
    u->slots[i] = u->storage_count + 1;
    *index = u->storage_count++;
    return HS_OK;
}

static int is_int(const pk_value *v) { return v->kind == PK_INT && v->u.i >= 0; }

/* BINPERSID: ('storage', torch.XStorage, key, location, numel[, view_metadata]). The zip
 * layout has five items; the legacy one adds view_metadata, None or (view_key, offset, size)
 * for a view into the root storage `key`. */
static hs_status op_persid(parser *p) {
    pk_value *pid = NULL;
    hs_status st = pop(p, &pid);
    if (st) return st;
    if (!p->allow_persistent) return fail_format(p, "unexpected persistent id");
    pk_value **it = pid->u.seq.items;
    if (pid->kind != PK_TUPLE || (pid->u.seq.count != 5 && pid->u.seq.count != 6) ||
        it[0]->kind != PK_STR || strcmp(it[0]->u.str.ptr, "storage") != 0 ||
        it[1]->kind != PK_GLOBAL || it[1]->u.global.id != PK_G_STORAGE_TYPE ||
        it[2]->kind != PK_STR || strlen(it[2]->u.str.ptr) != it[2]->u.str.len ||
        !is_int(it[4]))
        return fail_format(p, "malformed storage persistent id");
    pk_value *v = new_value(p, PK_STORAGE);
    if (!v) return fail_nomem(p);
    v->u.storage.numel = it[4]->u.i;
    if (pid->u.seq.count == 6 && it[5]->kind != PK_NONE) {
        const pk_value *view = it[5];
        if (view->kind != PK_TUPLE || view->u.seq.count != 3 || !is_int(view->u.seq.items[1]) ||
            !is_int(view->u.seq.items[2]))
            return fail_format(p, "malformed storage view");
        v->u.storage.offset = view->u.seq.items[1]->u.i;
        v->u.storage.numel = view->u.seq.items[2]->u.i;
    }
    if ((st = storage_record(p, it[2], it[1]->u.global.dtype, it[4]->u.i, &v->u.storage.record)))
        return st;
    return push(p, v);
}

/* ---- Calls: the allow-listed functions, implemented as value builders ------------------- */

/* Reads a tuple of non-negative ints (a size or stride) into out. */
static int read_dims(const pk_value *t, int64_t *out, int *ndim) {
    if (t->kind != PK_TUPLE || t->u.seq.count > HS_MAX_DIMS) return 0;
    for (size_t i = 0; i < t->u.seq.count; i++) {
        if (!is_int(t->u.seq.items[i])) return 0;
        out[i] = t->u.seq.items[i]->u.i;
    }
    *ndim = (int)t->u.seq.count;
    return 1;
}

/* _rebuild_tensor(storage, offset, size, stride) and _rebuild_tensor_v2(storage, offset, size,
 * stride, requires_grad, backward_hooks[, metadata]): only the first four matter here. */
static hs_status call_rebuild_tensor(parser *p, const pk_value *args, int v2) {
    size_t n = args->u.seq.count;
    if (v2 ? (n != 6 && n != 7) : n != 4)
        return fail_format(p, "_rebuild_tensor with the wrong number of arguments");
    pk_value **a = args->u.seq.items;
    pk_tensor *t = arena_alloc(p->u, sizeof *t);
    if (!t) return fail_nomem(p);
    int stride_ndim = -1;
    if (a[0]->kind != PK_STORAGE || !is_int(a[1]) || !read_dims(a[2], t->size, &t->ndim) ||
        !read_dims(a[3], t->stride, &stride_ndim) || stride_ndim != t->ndim)
        return fail_format(p, "malformed _rebuild_tensor arguments");
    t->storage = a[0];
    t->offset = a[1]->u.i;
    pk_value *v = new_value(p, PK_TENSOR);
    if (!v) return fail_nomem(p);
    v->u.tensor = t;
    return push(p, v);
}

/* Applies an allow-listed callable to a tuple of arguments (REDUCE, NEWOBJ). */
static hs_status call(parser *p, const pk_value *fn, const pk_value *args) {
    if (fn->kind != PK_GLOBAL) return fail_format(p, "calling something that is not a global");
    if (args->kind != PK_TUPLE) return fail_format(p, "call arguments are not a tuple");
    size_t n = args->u.seq.count;
    switch (fn->u.global.id) {
    case PK_G_ORDERED_DICT:
        if (n != 0) return fail_format(p, "OrderedDict called with arguments");
        return push(p, new_value(p, PK_DICT));
    case PK_G_REBUILD_TENSOR: return call_rebuild_tensor(p, args, 0);
    case PK_G_REBUILD_TENSOR_V2: return call_rebuild_tensor(p, args, 1);
    case PK_G_REBUILD_PARAMETER: /* (tensor, requires_grad, hooks[, state]) -> tensor */
        if ((n != 3 && n != 4) || args->u.seq.items[0]->kind != PK_TENSOR)
            return fail_format(p, "malformed _rebuild_parameter arguments");
        return push(p, args->u.seq.items[0]);
    case PK_G_STORAGE_TYPE: break;
    }
    return fail_format(p, "a storage type is called");
}

static hs_status op_reduce(parser *p) {
    pk_value *fn = NULL, *args = NULL;
    hs_status st;
    if ((st = pop(p, &args)) || (st = pop(p, &fn))) return st;
    return call(p, fn, args);
}

/* BUILD sets an object's state (OrderedDict's _metadata, a parameter's attributes). The state
 * carries nothing a state dict needs, so it is dropped. */
static hs_status op_build(parser *p) {
    pk_value *state = NULL, *obj = NULL;
    hs_status st;
    if ((st = pop(p, &state)) || (st = top(p, &obj))) return st;
    if (obj->kind != PK_DICT && obj->kind != PK_TENSOR)
        return fail_format(p, "BUILD on an unexpected object");
    return HS_OK;
}

/* ---- The opcode loop -------------------------------------------------------------------- */

static hs_status op_mark(parser *p) {
    if (p->mark_count >= PK_MAX_MARKS) return fail_format(p, "too many MARKs");
    if (!grow(p->u, (void **)&p->marks, &p->mark_cap, p->mark_count + 1, sizeof *p->marks))
        return fail_nomem(p);
    p->marks[p->mark_count++] = p->depth;
    return HS_OK;
}

/* Opcodes that read a length-prefixed string or bytes: returns the prefix width, 0 if not. */
static int string_op(uint8_t op, pk_kind *kind) {
    switch (op) {
    case 0x8c: *kind = PK_STR; return 1;   /* SHORT_BINUNICODE */
    case 'X': *kind = PK_STR; return 4;    /* BINUNICODE */
    case 0x8d: *kind = PK_STR; return 8;   /* BINUNICODE8 */
    case 'U': *kind = PK_STR; return 1;    /* SHORT_BINSTRING (py2 str) */
    case 'T': *kind = PK_STR; return 4;    /* BINSTRING */
    case 'C': *kind = PK_BYTES; return 1;  /* SHORT_BINBYTES */
    case 'B': *kind = PK_BYTES; return 4;  /* BINBYTES */
    case 0x8e: *kind = PK_BYTES; return 8; /* BINBYTES8 */
    }
    return 0;
}

/* Runs one opcode that pushes a scalar or string. Returns 1 when op was one of those. */
static int scalar_op(parser *p, uint8_t op, hs_status *st) {
    pk_kind kind = PK_NONE;
    size_t len = 0;
    int width = string_op(op, &kind);
    if (width) {
        *st = read_len(p, width, &len);
        if (!*st) *st = push_bytes(p, kind, len);
        return 1;
    }
    switch (op) {
    case 'N': *st = push(p, new_value(p, PK_NONE)); return 1;
    case 0x88: *st = push_int(p, PK_BOOL, 1); return 1; /* NEWTRUE */
    case 0x89: *st = push_int(p, PK_BOOL, 0); return 1; /* NEWFALSE */
    case 'K': if (!(*st = need(p, 1))) *st = push_int(p, PK_INT, (int64_t)read_le(p, 1)); return 1;
    case 'M': if (!(*st = need(p, 2))) *st = push_int(p, PK_INT, (int64_t)read_le(p, 2)); return 1;
    case 'J': /* BININT: signed 32-bit */
        if (!(*st = need(p, 4))) *st = push_int(p, PK_INT, (int32_t)(uint32_t)read_le(p, 4));
        return 1;
    case 0x8a: /* LONG1 */
        if (!(*st = read_len(p, 1, &len))) *st = push_long(p, len);
        return 1;
    case 0x8b: /* LONG4 */
        if (!(*st = read_len(p, 4, &len))) *st = push_long(p, len);
        return 1;
    case 'G': { /* BINFLOAT: big-endian double */
        if ((*st = need(p, 8))) return 1;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++) bits = (bits << 8) | p->data[p->pos++];
        pk_value *v = new_value(p, PK_FLOAT);
        if (v) memcpy(&v->u.f, &bits, sizeof bits);
        *st = push(p, v);
        return 1;
    }
    }
    return 0;
}

/* Runs one structural opcode; returns 1 when op was known. */
static int structure_op(parser *p, uint8_t op, hs_status *st) {
    pk_value *v = NULL;
    switch (op) {
    case '}': *st = push(p, new_value(p, PK_DICT)); return 1;
    case ']': *st = push(p, new_value(p, PK_LIST)); return 1;
    case ')': *st = push(p, new_value(p, PK_TUPLE)); return 1;
    case 't': *st = build_from_mark(p, PK_TUPLE); return 1;
    case 'l': *st = build_from_mark(p, PK_LIST); return 1;
    case 'd': *st = op_dict(p); return 1;
    case 0x85: *st = build_tuple_n(p, 1); return 1;
    case 0x86: *st = build_tuple_n(p, 2); return 1;
    case 0x87: *st = build_tuple_n(p, 3); return 1;
    case '(': *st = op_mark(p); return 1;
    case '0': *st = pop(p, &v); return 1; /* POP */
    case '1': { size_t first = 0; *st = pop_mark(p, &first); if (!*st) p->depth = first; return 1; }
    case '2': if (!(*st = top(p, &v))) *st = push(p, v); return 1; /* DUP */
    case 'q': if (!(*st = need(p, 1))) *st = memo_put(p, read_le(p, 1)); return 1;
    case 'r': if (!(*st = need(p, 4))) *st = memo_put(p, read_le(p, 4)); return 1;
    case 0x94: *st = memo_put(p, p->memo_len); return 1; /* MEMOIZE */
    case 'h': if (!(*st = need(p, 1))) *st = memo_get(p, read_le(p, 1)); return 1;
    case 'j': if (!(*st = need(p, 4))) *st = memo_get(p, read_le(p, 4)); return 1;
    case 's': *st = op_setitem(p); return 1;
    case 'u': *st = op_setitems(p); return 1;
    case 'a': *st = op_append(p); return 1;
    case 'e': *st = op_appends(p); return 1;
    case 'c': *st = op_global(p); return 1;
    case 0x93: *st = op_stack_global(p); return 1;
    case 'R': *st = op_reduce(p); return 1;
    case 0x81: *st = op_reduce(p); return 1; /* NEWOBJ cls args: same as cls(*args) here */
    case 'b': *st = op_build(p); return 1;
    case 'Q': *st = op_persid(p); return 1;
    case 0x80: if (!(*st = need(p, 1))) p->pos++; return 1; /* PROTO: any version */
    case 0x95: if (!(*st = need(p, 8))) p->pos += 8; return 1; /* FRAME: a size hint only */
    }
    return 0;
}

static hs_status run(parser *p, pk_value **out) {
    for (;;) {
        p->op_pos = p->pos;
        if (p->pos >= p->size) return fail_format(p, "truncated pickle (no STOP)");
        uint8_t op = p->data[p->pos++];
        hs_status st = HS_OK;
        if (op == '.') { /* STOP */
            if (p->mark_count) return fail_format(p, "STOP with an open MARK");
            return pop(p, out);
        }
        if (!scalar_op(p, op, &st) && !structure_op(p, op, &st)) {
            char what[64];
            snprintf(what, sizeof what, "unsupported pickle opcode 0x%02x", op);
            return fail_format(p, what);
        }
        if (st) return st;
    }
}

hs_status hs_unpickle(hs_unpickler *u, const uint8_t *data, size_t size, size_t *pos,
                      int allow_persistent, pk_value **out, hs_error *err) {
    parser p = {.u = u, .data = data, .size = size, .pos = *pos, .op_pos = *pos,
                .allow_persistent = allow_persistent, .err = err};
    *out = NULL;
    hs_status st = *pos <= size ? run(&p, out) : fail_format(&p, "truncated data");
    free(p.stack);
    free(p.marks);
    free(p.memo);
    /* The parser's own arrays are gone: give their bytes back (the values stay charged). */
    u->used -= (p.stack_cap + p.memo_cap) * sizeof(pk_value *) + p.mark_cap * sizeof(size_t);
    if (st == HS_OK) *pos = p.pos;
    return st;
}

/* ---- Extent ----------------------------------------------------------------------------- */

/* The opcodes without arguments that scalar_op and structure_op run. */
static const uint8_t no_arg_ops[] = {'N', 0x88, 0x89, '}', ']', ')', 't', 'l', 'd', 0x85, 0x86,
                                     0x87, '(', '0', '1', '2', 0x94, 's', 'u', 'a', 'e', 0x93,
                                     'R', 0x81, 'b', 'Q'};

/* Bytes of argument after opcode op at data[pos] (pos is just past the opcode); SIZE_MAX when
 * they run past size, SIZE_MAX - 1 for an opcode the unpickler does not know. */
static size_t arg_bytes(const uint8_t *data, size_t size, size_t pos, uint8_t op) {
    size_t left = size - pos, width = 0;
    int prefix = 0; /* width of a length prefix */
    pk_kind kind;
    switch (op) {
    case 'K': case 'q': case 'h': case 0x80: width = 1; break;
    case 'M': width = 2; break;
    case 'J': case 'r': case 'j': width = 4; break;
    case 'G': case 0x95: width = 8; break;
    case 0x8a: prefix = 1; break; /* LONG1 */
    case 0x8b: prefix = 4; break; /* LONG4 */
    case 'c': { /* GLOBAL: two lines of text */
        const uint8_t *nl = memchr(data + pos, '\n', left);
        if (nl) nl = memchr(nl + 1, '\n', (size_t)(data + size - (nl + 1)));
        return nl ? (size_t)(nl + 1 - (data + pos)) : SIZE_MAX;
    }
    default:
        prefix = string_op(op, &kind);
        if (!prefix && !memchr(no_arg_ops, op, sizeof no_arg_ops)) return SIZE_MAX - 1;
        break;
    }
    if (!prefix) return width > left ? SIZE_MAX : width;
    if ((size_t)prefix > left) return SIZE_MAX;
    uint64_t len = 0;
    for (int i = prefix - 1; i >= 0; i--) len = (len << 8) | data[pos + (size_t)i];
    return len > left - (size_t)prefix ? SIZE_MAX : (size_t)prefix + (size_t)len;
}

size_t hs_pickle_extent(const uint8_t *data, size_t size, size_t pos) {
    while (pos < size) {
        uint8_t op = data[pos++];
        if (op == '.') return pos;
        size_t skip = arg_bytes(data, size, pos, op);
        if (skip == SIZE_MAX) return size; /* the unpickler reports the truncation */
        if (skip == SIZE_MAX - 1) return pos; /* ... or the unknown opcode, the last byte */
        pos += skip;
    }
    return size;
}
