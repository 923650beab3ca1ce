/* headstart bench: forward throughput of a frozen backbone, as `darknet speed` and
 * `llama-bench` report theirs. The work is hs_bench_forward (src/bench_forward.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_forward.h"
#include "cli.h"

typedef struct bench_cli_options {
    const char *backbone;
    const char *weights; /* NULL: random weights (the speed does not depend on them) */
    int csv;
    int verbose;
    hs_bench_options run;
} bench_cli_options;

static void print_help(void) {
    printf("usage: headstart bench --backbone NAME [--batch-size N] [--threads N]\n"
           "                       [--img-size N] [--precision f32|bf16] [--format table|csv]\n"
           "                       [--runs N] [--weights FILE] [--verbose]\n"
           "\n"
           "Forward throughput of the backbone's frozen part (image -> features) on random\n"
           "input: one warm-up pass, then at least --runs timed passes (default 3) and at\n"
           "least one second; images/s is the batch over the median pass. GFLOP/s counts\n"
           "2 x multiply-adds of the convolutions and linear layers. Defaults: batch 32,\n"
           "224 px, every core, f32, random weights. --verbose lists the kernel each kind\n"
           "of layer ran. csv columns:\n"
           "backbone,img_size,batch,threads,precision,images_per_s,gflops\n"
           "Matrix products go through oneDNN (HS_GEMM=openblas: OpenBLAS instead).\n");
}

static int parse_positive(const char *flag, const char *v, int max, int *out) {
    if (cli_parse_int("bench", flag, v, out)) return HS_ERR_ARGUMENT;
    if (*out < 1 || *out > max)
        return cli_usage_error("bench", "%s must be 1..%d, not '%s'", flag, max, v);
    return 0;
}

static int parse_options(int argc, char **argv, bench_cli_options *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0) {
            print_help();
            exit(0);
        }
        if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            o->verbose = 1;
            continue;
        }
        if (a[0] != '-') return cli_usage_error("bench", "unexpected argument '%s'", a);
        if (strcmp(a, "--backbone") && strcmp(a, "--weights") && strcmp(a, "--format") &&
            strcmp(a, "--precision") && strcmp(a, "--batch-size") && strcmp(a, "--threads") &&
            strcmp(a, "--img-size") && strcmp(a, "--runs"))
            return cli_usage_error("bench", "unknown option '%s'", a);
        if (i + 1 >= argc) return cli_usage_error("bench", "%s needs a value", a);
        const char *v = argv[++i];
        int code = 0;
        if (strcmp(a, "--backbone") == 0) o->backbone = v;
        else if (strcmp(a, "--weights") == 0) o->weights = v;
        else if (strcmp(a, "--format") == 0) {
            if (strcmp(v, "csv") == 0) o->csv = 1;
            else if (strcmp(v, "table") == 0) o->csv = 0;
            else return cli_usage_error("bench", "--format must be table or csv, not '%s'", v);
        } else if (strcmp(a, "--precision") == 0) {
            if (strcmp(v, "bf16") == 0) o->run.bf16 = 1;
            else if (strcmp(v, "f32") == 0) o->run.bf16 = 0;
            else return cli_usage_error("bench", "--precision must be f32 or bf16, not '%s'", v);
        } else if (strcmp(a, "--batch-size") == 0) code = parse_positive(a, v, 4096, &o->run.batch);
        else if (strcmp(a, "--threads") == 0) code = parse_positive(a, v, 1024, &o->run.threads);
        else if (strcmp(a, "--runs") == 0) code = parse_positive(a, v, 1000, &o->run.min_runs);
        else if (strcmp(a, "--img-size") == 0) {
            code = parse_positive(a, v, 2048, &o->run.img_size);
            if (!code && o->run.img_size < 32)
                code = cli_usage_error("bench", "--img-size must be 32..2048, not '%s'", v);
        }
        if (code) return code;
    }
    if (!o->backbone) return cli_usage_error("bench", "--backbone is required");
    return 0;
}

static void print_result(const bench_cli_options *o, const hs_bench_result *r) {
    const char *precision = o->run.bf16 ? "bf16" : "f32";
    if (o->csv) {
        printf("backbone,img_size,batch,threads,precision,images_per_s,gflops\n");
        printf("%s,%d,%d,%d,%s,%.3f,%.3f\n", o->backbone, o->run.img_size, o->run.batch,
               r->threads, precision, r->images_per_s, r->gflops);
    } else {
        printf("%-20s %8s %6s %8s %10s %12s %10s\n", "backbone", "img_size", "batch", "threads",
               "precision", "images/s", "GFLOP/s");
        printf("%-20s %8d %6d %8d %10s %12.2f %10.1f\n", o->backbone, o->run.img_size,
               o->run.batch, r->threads, precision, r->images_per_s, r->gflops);
    }
    if (!o->verbose) return;
    /* details on stderr in csv mode, so stdout stays one table */
    FILE *out = o->csv ? stderr : stdout;
    fprintf(out, "\n%.3f GFLOP per image, %d timed passes: median %.4f s, best %.4f s\n",
            r->gflop_per_image, r->runs, r->median_s, r->best_s);
    fprintf(out, "oneDNN %s, ISA %s, matrix products: %s\n\n", r->dnnl_version, r->isa, r->gemm);
    fprintf(out, "%-20s %-36s %7s %9s\n", "layer", "kernel", "layers", "GFLOP/img");
    for (int k = 0; k < r->kernel_count; k++)
        fprintf(out, "%-20s %-36s %7d %9.3f\n", r->kernels[k].layer, r->kernels[k].kernel,
                r->kernels[k].layers, r->kernels[k].gflop);
}

int cmd_bench(int argc, char **argv) {
    bench_cli_options o = {0};
    hs_bench_options_init(&o.run);
    int code = parse_options(argc, argv, &o);
    if (code) return code;
    const hs_backbone_info *info = cli_backbone(o.backbone, &code);
    if (!info) return code;
    hs_net *net = NULL;
    hs_error err = {0};
    if (o.weights) {
        if ((code = cli_open_net(info, o.weights, &net, NULL))) return code;
    } else if (hs_net_create(info->name, 1, &net, &err)) {
        return cli_report(&err);
    }
    hs_bench_result r;
    if (hs_bench_forward(net, &o.run, &r, &err)) code = cli_report(&err);
    else print_result(&o, &r);
    hs_net_free(net);
    return code;
}
