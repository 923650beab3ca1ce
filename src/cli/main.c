/* headstart: the command line tool over the library. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void print_usage(FILE *out) {
    fprintf(out,
            "headstart %s: transfer learning for image classification\n"
            "\n"
            "usage: headstart COMMAND [options]\n"
            "\n"
            "commands:\n"
            "  backbones                      list backbones, their preprocessing and weights\n"
            "  classify --backbone NAME IMAGE...  ImageNet top-5 for each image\n"
            "  features --backbone NAME --out FILE IMAGE...  pre-logit features to .npy/.safetensors\n"
            "  convert IN.pth OUT.safetensors convert PyTorch weights to safetensors\n"
            "  train DATA [options]           train a new head on a frozen backbone\n"
            "  predict RUN_DIR IMAGE...       the trained classes of images\n"
            "  evaluate RUN_DIR DATA          accuracy and confusion matrix on DATA\n"
            "  cache list|prune|clear         what the feature cache holds; making room\n"
            "  bench --backbone NAME          forward throughput of the frozen backbone\n"
            "\n"
            "'headstart COMMAND --help' tells more. Exit codes: 0 ok, 2 bad usage, 3 I/O,\n"
            "4 bad file, 5 unsafe pickle refused, 6 out of memory, 7 weights do not fit,\n"
            "8 weights not found, 9 bad image, 10 internal error, 11 some inputs failed,\n"
            "12 training diverged, 14 the output folder holds a run, 130 interrupted.\n",
            HEADSTART_VERSION);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? HS_ERR_ARGUMENT : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("headstart %s\n", HEADSTART_VERSION);
        return 0;
    }
    const char *command = argv[1];
    if (strcmp(command, "backbones") == 0) return cmd_backbones(argc - 1, argv + 1);
    if (strcmp(command, "classify") == 0) return cmd_classify(argc - 1, argv + 1);
    if (strcmp(command, "features") == 0) return cmd_features(argc - 1, argv + 1);
    if (strcmp(command, "convert") == 0) return cmd_convert(argc - 1, argv + 1);
    if (strcmp(command, "train") == 0) return cmd_train(argc - 1, argv + 1);
    if (strcmp(command, "predict") == 0) return cmd_predict(argc - 1, argv + 1);
    if (strcmp(command, "evaluate") == 0) return cmd_evaluate(argc - 1, argv + 1);
    if (strcmp(command, "cache") == 0) return cmd_cache(argc - 1, argv + 1);
    if (strcmp(command, "bench") == 0) return cmd_bench(argc - 1, argv + 1);
    fprintf(stderr, "headstart: unknown command '%s'\n\n", cli_term(command));
    print_usage(stderr);
    return HS_ERR_ARGUMENT;
}
