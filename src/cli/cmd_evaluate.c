/* headstart evaluate RUN_DIR DATA: accuracy, per-class accuracy and the confusion matrix. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void print_help(void) {
    printf("usage: headstart evaluate RUN_DIR DATA [--weights FILE] [--tta none|flip]\n"
           "                          [--img-size N]\n"
           "\n"
           "Evaluates the model trained in RUN_DIR on DATA (any layout 'headstart train'\n"
           "reads; its val/ or test/ side when it has one) and prints the accuracy, the\n"
           "accuracy of each class and the confusion matrix (rows: true class).\n"
           "--tta flip: each image's class probabilities are the mean of its softmax and that\n"
           "of its mirror image (twice the compute) [none].\n"
           "--img-size N: resize the images to N x N, 32..1024 [the size it trained at].\n");
}

static void print_report(const hs_model *m, const hs_eval_result *r, hs_tta tta) {
    int n = r->classes;
    printf("accuracy %.2f %% (%d of %d images), mean loss %.4f%s\n",
           r->images ? 100.0 * r->correct / r->images : 0.0, r->correct, r->images, r->loss,
           tta == HS_TTA_FLIP ? " (flip test-time augmentation)" : "");
    if (r->skipped) printf("%d unreadable images skipped\n", r->skipped);
    printf("\n%-24s %8s %8s\n", "class", "images", "accuracy");
    for (int i = 0; i < n; i++) {
        int total = 0;
        for (int j = 0; j < n; j++) total += r->confusion[i * n + j];
        printf("%-24s %8d %7.2f %%\n", cli_term(hs_model_class_name(m, i)), total,
               total ? 100.0 * r->confusion[i * n + i] / total : 0.0);
    }
    printf("\nconfusion matrix (rows: true class, columns: predicted, in the order above)\n");
    for (int i = 0; i < n; i++) {
        printf("%-16.16s", cli_term(hs_model_class_name(m, i)));
        for (int j = 0; j < n; j++) printf(" %6d", r->confusion[i * n + j]);
        printf("\n");
    }
}

int cmd_evaluate(int argc, char **argv) {
    const char *run_dir = NULL, *data = NULL, *weights = NULL;
    hs_tta tta = HS_TTA_NONE;
    int img_size = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            print_help();
            return 0;
        }
        if (!strcmp(argv[i], "--weights") && i + 1 < argc) weights = argv[++i];
        else if (!strcmp(argv[i], "--img-size") && i + 1 < argc) {
            int code = cli_parse_int("evaluate", argv[i], argv[i + 1], &img_size);
            if (code) return code;
            i++;
        }
        else if (!strcmp(argv[i], "--tta") && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(v, "none")) tta = HS_TTA_NONE;
            else if (!strcmp(v, "flip")) tta = HS_TTA_FLIP;
            else return cli_usage_error("evaluate", "--tta must be none or flip, not '%s'", v);
        }
        else if ((!strcmp(argv[i], "--tta") || !strcmp(argv[i], "--weights") ||
                  !strcmp(argv[i], "--img-size")) && i + 1 >= argc)
            return cli_usage_error("evaluate", "%s needs a value", argv[i]);
        else if (argv[i][0] == '-') return cli_usage_error("evaluate", "unknown option '%s'", argv[i]);
        else if (!run_dir) run_dir = argv[i];
        else if (!data) data = argv[i];
        else return cli_usage_error("evaluate", "unexpected argument '%s'", argv[i]);
    }
    if (!run_dir || !data) return cli_usage_error("evaluate", "expected RUN_DIR DATA");
    hs_model *model = NULL;
    hs_error err = {0};
    if (hs_model_open(run_dir, weights, &model, &err)) return cli_report(&err);
    hs_model_set_tta(model, tta);
    if (img_size && hs_model_set_img_size(model, img_size, &err)) {
        hs_model_free(model);
        return cli_report(&err);
    }
    cli_progress_state progress;
    cli_progress_init(&progress);
    hs_train_callbacks cb = {&progress, cli_progress, NULL, cli_note, cli_install_stop_handler(),
                             NULL};
    hs_eval_result result;
    int code = 0;
    if (hs_model_evaluate(model, data, &cb, &result, &err)) code = cli_report(&err);
    else print_report(model, &result, tta);
    hs_eval_result_free(&result);
    hs_model_free(model);
    return code;
}
