/* PyTorch .pth state dicts, read without running any code.
 *
 * Two layouts exist: the zip archive PyTorch >= 1.6 writes (archive/data.pkl plus one file per
 * storage under archive/data/) and the legacy stream (magic number, protocol, system info, the
 * pickled dict, the storage keys, then each storage's bytes). Both go through a restricted
 * unpickler that knows only the opcodes and globals a state dict needs; any other global is
 * refused with HS_ERR_UNSAFE naming it. Every size and offset is checked before use. */
#ifndef HS_PTH_H
#define HS_PTH_H

#include <stddef.h>
#include <stdint.h>

#include "statedict.h"

hs_status hs_pth_load(const char *path, hs_state_dict *out, hs_error *err);

/* Same, from a buffer already in memory (used by the fuzzer); name appears in messages. */
hs_status hs_pth_load_memory(const uint8_t *data, size_t size, const char *name,
                             hs_state_dict *out, hs_error *err);

#endif
