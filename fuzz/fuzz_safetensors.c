/* libFuzzer target: the safetensors reader on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hs_state_dict sd;
    hs_error err;
    if (hs_safetensors_load_memory(data, size, "fuzz", &sd, &err) == HS_OK) hs_sd_free(&sd);
    return 0;
}
