/* headstart convert IN.pth OUT.safetensors */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_convert(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        printf("usage: headstart convert IN.pth OUT.safetensors\n\n"
               "Reads a PyTorch state dict (zip or legacy .pth, without running any code in\n"
               "it) and writes its tensors as float32 safetensors.\n");
        return 0;
    }
    if (argc != 3) return cli_usage_error("convert", "expected IN.pth OUT.safetensors");
    hs_error err = {0};
    if (hs_convert_pth_to_safetensors(argv[1], argv[2], &err)) return cli_report(&err);
    printf("wrote %s\n", cli_term(argv[2]));
    return 0;
}
