/* libFuzzer target for the .pth reader: any input must give a clean error or a state dict,
 * never a crash, a leak or an unbounded allocation. */
#include <stddef.h>
#include <stdint.h>

#include "pth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hs_state_dict sd;
    hs_error err;
    hs_sd_init(&sd);
    hs_pth_load_memory(data, size, "fuzz.pth", &sd, &err);
    hs_sd_free(&sd);
    return 0;
}
