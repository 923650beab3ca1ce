/* headstart predict RUN_DIR PATH...: the trained classes of images. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { FORMAT_TABLE, FORMAT_CSV, FORMAT_JSON };

typedef struct predict_options {
    const char *run_dir;
    const char *weights;
    int top_k, format, batch_size, first_path, img_size;
    hs_tta tta;
} predict_options;

static void print_help(void) {
    printf("usage: headstart predict RUN_DIR [--top-k K] [--format table|csv|json]\n"
           "                         [--weights FILE] [--batch-size N] [--tta none|flip]\n"
           "                         [--img-size N]\n"
           "                         IMAGE|FOLDER...\n"
           "\n"
           "Prints each image's top-k classes (default 3) of the model trained in RUN_DIR,\n"
           "with probabilities. Folders are searched for .jpg, .jpeg and .png files. Needs\n"
           "only the run folder and the backbone weights its run.json names (or --weights).\n"
           "csv columns: path,rank,class,probability. Unreadable images are listed on stderr\n"
           "(and in the csv/json output with an error) and the exit code is 11.\n"
           "--tta flip: each image's probabilities are the mean of its softmax and that of\n"
           "its mirror image (twice the compute) [none].\n"
           "--img-size N: resize the images to N x N, 32..1024 [the size it trained at].\n");
}

static int parse(int argc, char **argv, predict_options *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help")) {
            print_help();
            exit(0);
        }
        if (a[0] != '-') {
            if (!o->run_dir) {
                o->run_dir = a;
                continue;
            }
            o->first_path = i;
            return 0;
        }
        if (i + 1 >= argc) return cli_usage_error("predict", "%s needs a value", a);
        const char *v = argv[++i];
        int code = 0;
        if (!strcmp(a, "--weights")) o->weights = v;
        else if (!strcmp(a, "--top-k")) code = cli_parse_int("predict", a, v, &o->top_k);
        else if (!strcmp(a, "--batch-size")) code = cli_parse_int("predict", a, v, &o->batch_size);
        else if (!strcmp(a, "--img-size")) code = cli_parse_int("predict", a, v, &o->img_size);
        else if (!strcmp(a, "--tta")) {
            if (!strcmp(v, "none")) o->tta = HS_TTA_NONE;
            else if (!strcmp(v, "flip")) o->tta = HS_TTA_FLIP;
            else return cli_usage_error("predict", "--tta must be none or flip, not '%s'", v);
        } else if (!strcmp(a, "--format")) {
            if (!strcmp(v, "table")) o->format = FORMAT_TABLE;
            else if (!strcmp(v, "csv")) o->format = FORMAT_CSV;
            else if (!strcmp(v, "json")) o->format = FORMAT_JSON;
            else return cli_usage_error("predict", "--format must be table, csv or json, not '%s'", v);
        } else {
            return cli_usage_error("predict", "unknown option '%s'", a);
        }
        if (code) return code;
    }
    if (!o->run_dir) return cli_usage_error("predict", "no RUN_DIR given");
    return cli_usage_error("predict", "no images given");
}

static void print_one(const hs_model *m, const predict_options *o, const char *path,
                      const float *p, const hs_error *e, cJSON *json) {
    int classes = hs_model_num_classes(m), k = o->top_k < classes ? o->top_k : classes;
    int order[64];
    if (!e->code) cli_top_k(p, classes, k, order);
    if (o->format == FORMAT_JSON) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "path", path);
        if (e->code) {
            cJSON_AddStringToObject(item, "error", e->message);
        } else {
            cJSON *list = cJSON_AddArrayToObject(item, "predictions");
            for (int r = 0; r < k; r++) {
                cJSON *one = cJSON_CreateObject();
                cJSON_AddStringToObject(one, "class", hs_model_class_name(m, order[r]));
                cJSON_AddNumberToObject(one, "probability", p[order[r]]);
                cJSON_AddItemToArray(list, one);
            }
        }
        cJSON_AddItemToArray(json, item);
    } else if (o->format == FORMAT_CSV) {
        if (e->code) return; /* named on stderr */
        for (int r = 0; r < k; r++) {
            cli_print_csv_field(path);
            printf(",%d,", r + 1);
            cli_print_csv_field(hs_model_class_name(m, order[r]));
            printf(",%.6f\n", p[order[r]]);
        }
    } else if (!e->code) {
        printf("%s\n", cli_term(path));
        for (int r = 0; r < k; r++)
            printf("  %d. %-24s %6.2f %%\n", r + 1, cli_term(hs_model_class_name(m, order[r])),
                   100.0 * p[order[r]]);
    }
}

int cmd_predict(int argc, char **argv) {
    predict_options o = {.top_k = 3, .format = FORMAT_TABLE, .batch_size = 32,
                         .tta = HS_TTA_NONE};
    int code = parse(argc, argv, &o);
    if (code && !o.first_path) return code;
    if (o.top_k < 1 || o.top_k > 64) return cli_usage_error("predict", "--top-k must be 1..64");
    if (o.batch_size < 1 || o.batch_size > 4096)
        return cli_usage_error("predict", "--batch-size must be 1..4096");
    char **paths = NULL;
    int count = 0;
    if ((code = cli_collect_images(argv + o.first_path, argc - o.first_path, &paths, &count)))
        return code;
    hs_model *model = NULL;
    hs_error err = {0};
    if (count == 0) {
        fprintf(stderr, "headstart: error: no .jpg, .jpeg or .png images found\n");
        code = HS_ERR_ARGUMENT;
        goto done;
    }
    if (hs_model_open(o.run_dir, o.weights, &model, &err)) {
        code = cli_report(&err);
        goto done;
    }
    hs_model_set_tta(model, o.tta);
    if (o.img_size && hs_model_set_img_size(model, o.img_size, &err)) {
        code = cli_report(&err);
        goto done;
    }
    int classes = hs_model_num_classes(model), failed = 0;
    float *probs = malloc((size_t)o.batch_size * classes * sizeof(float));
    hs_error *errors = calloc((size_t)o.batch_size, sizeof *errors);
    cJSON *json = o.format == FORMAT_JSON ? cJSON_CreateArray() : NULL;
    if (!probs || !errors) {
        fprintf(stderr, "headstart: error: out of memory; lower --batch-size\n");
        code = HS_ERR_NOMEM;
    }
    if (!code && o.format == FORMAT_CSV) printf("path,rank,class,probability\n");
    for (int start = 0; !code && start < count; start += o.batch_size) {
        int n = count - start < o.batch_size ? count - start : o.batch_size;
        if (hs_model_predict_files(model, (const char *const *)paths + start, n, probs, errors,
                                   &err)) {
            code = cli_report(&err);
            break;
        }
        for (int i = 0; i < n; i++) {
            if (errors[i].code) {
                fprintf(stderr, "headstart: skipped: %s\n", cli_term(errors[i].message));
                failed++;
            }
            print_one(model, &o, paths[start + i], probs + (size_t)i * classes, &errors[i], json);
        }
    }
    if (json && !code) {
        char *text = cJSON_Print(json);
        if (text) printf("%s\n", text);
        cJSON_free(text);
    }
    cJSON_Delete(json);
    free(probs);
    free(errors);
    if (!code && failed) {
        fprintf(stderr, "headstart: %d of %d images could not be read\n", failed, count);
        code = failed == count ? HS_ERR_IMAGE : HS_EXIT_PARTIAL;
    }
done:
    hs_model_free(model);
    for (int i = 0; i < count; i++) free(paths[i]);
    free(paths);
    return code;
}
