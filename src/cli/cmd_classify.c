/* headstart classify: ImageNet top-k of images with a pretrained backbone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ops_ref.h"

typedef struct classify_options {
    const char *backbone;
    const char *weights;
    int csv;
    int top_k;
    int batch_size;
} classify_options;

static void print_help(void) {
    printf("usage: headstart classify --backbone NAME [--weights FILE|none] [--top-k K]\n"
           "                          [--format table|csv] [--batch-size N] IMAGE|FOLDER...\n"
           "\n"
           "Prints the ImageNet top-k classes (default 5) of each JPEG or PNG image. csv\n"
           "columns: path,rank,class_index,class_name,probability. Images that cannot be\n"
           "read are listed on stderr and the exit code is 11 (all others are classified).\n");
}

static void print_top_k(const char *path, const float *probs, int classes, int k, int csv) {
    int order[32];
    if (k > classes) k = classes;
    cli_top_k(probs, classes, k, order);
    if (!csv) printf("%s\n", cli_term(path));
    for (int r = 0; r < k; r++) {
        int c = order[r];
        if (csv) {
            cli_print_csv_field(path);
            printf(",%d,%d,", r + 1, c);
            cli_print_csv_field(hs_imagenet_class_name(c));
            printf(",%.6f\n", probs[c]);
        } else {
            printf("  %d. %-32s %4d  %6.2f %%\n", r + 1, hs_imagenet_class_name(c), c,
                   100.0 * probs[c]);
        }
    }
}

static int parse_options(int argc, char **argv, classify_options *o, int *first_path) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0) {
            print_help();
            exit(0);
        }
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            *first_path = i;
            return 0;
        }
        if (strcmp(a, "--") == 0) {
            *first_path = i + 1;
            return 0;
        }
        if (i + 1 >= argc) return cli_usage_error("classify", "%s needs a value", a);
        const char *v = argv[++i];
        if (strcmp(a, "--backbone") == 0) o->backbone = v;
        else if (strcmp(a, "--weights") == 0) o->weights = v;
        else if (strcmp(a, "--format") == 0) {
            if (strcmp(v, "csv") == 0) o->csv = 1;
            else if (strcmp(v, "table") == 0) o->csv = 0;
            else return cli_usage_error("classify", "--format must be table or csv, not '%s'", v);
        } else if (strcmp(a, "--top-k") == 0) {
            o->top_k = atoi(v);
            if (o->top_k < 1 || o->top_k > 32)
                return cli_usage_error("classify", "--top-k must be 1..32, not '%s'", v);
        } else if (strcmp(a, "--batch-size") == 0) {
            o->batch_size = atoi(v);
            if (o->batch_size < 1 || o->batch_size > 4096)
                return cli_usage_error("classify", "--batch-size must be 1..4096, not '%s'", v);
        } else {
            return cli_usage_error("classify", "unknown option '%s'", a);
        }
    }
    *first_path = argc;
    return 0;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cmd_classify(int argc, char **argv) {
    classify_options o = {"efficientnet_lite0", NULL, 0, 5, 16};
    int first_path = argc;
    int code = parse_options(argc, argv, &o, &first_path);
    if (code) return code;
    if (first_path >= argc) return cli_usage_error("classify", "no images given");
    const hs_backbone_info *info = cli_backbone(o.backbone, &code);
    if (!info) return code;

    char **paths = NULL;
    int count = 0;
    if ((code = cli_collect_images(argv + first_path, argc - first_path, &paths, &count)))
        return code;
    if (count == 0) {
        fprintf(stderr, "headstart: error: no .jpg, .jpeg or .png images found\n");
        free(paths);
        return HS_ERR_ARGUMENT;
    }
    hs_net *net = NULL;
    hs_preprocess pp;
    if ((code = cli_open_net(info, o.weights, &net, &pp))) goto done;

    int size = pp.input_size, classes = hs_net_num_classes(net);
    size_t image_floats = (size_t)3 * size * size;
    float *batch = malloc((size_t)o.batch_size * image_floats * sizeof(float));
    float *logits = malloc((size_t)o.batch_size * classes * sizeof(float));
    int *index = malloc((size_t)o.batch_size * sizeof(int));
    if (!batch || !logits || !index) {
        fprintf(stderr, "headstart: error: out of memory for a batch of %d; lower --batch-size\n",
                o.batch_size);
        code = HS_ERR_NOMEM;
        goto free_buffers;
    }
    if (o.csv) printf("path,rank,class_index,class_name,probability\n");
    int failed = 0, done_count = 0;
    double start = now_seconds();
    int progress = isatty(STDERR_FILENO) && count > o.batch_size;
    for (int begin = 0; begin < count; begin += o.batch_size) {
        int n = 0;
        for (int i = begin; i < count && i < begin + o.batch_size; i++) {
            hs_error err = {0};
            if (hs_image_file_to_tensor(paths[i], &pp, batch + n * image_floats,
                                        &err)) {
                fprintf(stderr, "headstart: skipped: %s\n", cli_term(err.message));
                failed++;
                continue;
            }
            index[n++] = i;
        }
        if (n == 0) continue;
        hs_error err = {0};
        if (hs_net_forward(net, batch, n, size, size, logits, &err)) {
            code = cli_report(&err);
            goto free_buffers;
        }
        hs_softmax_forward_ref(logits, n, classes, logits);
        for (int j = 0; j < n; j++)
            print_top_k(paths[index[j]], logits + (size_t)j * classes, classes, o.top_k, o.csv);
        done_count += n;
        if (progress)
            fprintf(stderr, "\r%d/%d images, %.1f images/s ", done_count + failed, count,
                    done_count / (now_seconds() - start));
    }
    if (progress) fputc('\n', stderr);
    if (failed) {
        fprintf(stderr, "headstart: %d of %d images could not be read\n", failed, count);
        code = failed == count ? HS_ERR_IMAGE : HS_EXIT_PARTIAL;
    }
free_buffers:
    free(batch);
    free(logits);
    free(index);
done:
    hs_net_free(net);
    for (int i = 0; i < count; i++) free(paths[i]);
    free(paths);
    return code;
}
