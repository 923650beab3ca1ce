/* headstart backbones: what each backbone expects, what it costs and whether its weights
 * are here. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backbone_stats.h"
#include "cli.h"
#include "pretrained_cfg.h"
#include "weight_versions.h"

typedef enum format { FORMAT_TABLE, FORMAT_CSV, FORMAT_JSON } format;

static void print_help(void) {
    printf("usage: headstart backbones [--format table|csv|json]\n"
           "\n"
           "Lists each backbone with its input size, the resize before the centre crop and\n"
           "its interpolation, feature size (what a head sees), mean / std, GFLOP per image\n"
           "(2 x multiply-adds of the backbone at its input size, counted from the layer\n"
           "list), parameter count (the whole ImageNet net, head included) and where its\n"
           "pretrained weights are. The preprocessing is that of the file found (ResNet-50's\n"
           "V2 file resizes to 232), else the default file's. json also lists the known files.\n"
           "csv columns: backbone,input_size,resize_size,feature_dim,mean_r,mean_g,mean_b,\n"
           "std_r,std_g,std_b,gflop,params,backbone_params,weights_present,weights_path,\n"
           "interpolation\n");
}

typedef struct row {
    const hs_backbone_info *info;
    hs_backbone_stats stats;
    hs_preprocess pp; /* of the file found, else the built-in */
    int present;
    char path[4096];
} row;

static int gather(row *r, const hs_backbone_info *info) {
    hs_error err = {0};
    memset(r, 0, sizeof *r);
    r->info = info;
    if (hs_backbone_stats_compute(info, info->preprocess.input_size, &r->stats, &err))
        return cli_report(&err);
    r->present = hs_find_weights(info, r->path, sizeof r->path, &err) == HS_OK;
    if (!r->present) r->path[0] = '\0';
    /* A config.json that does not parse is the business of the commands that use it:
     * the listing shows the built-in then. */
    if (hs_preprocess_resolve(info, r->present ? r->path : NULL, NULL, 0, &r->pp, NULL, 0,
                              &err))
        r->pp = info->preprocess;
    return 0;
}

static void print_table_header(void) {
    printf("%-20s %5s %6s %-8s %8s %7s %8s  %-27s %s\n", "backbone", "input", "resize",
           "interp", "features", "gflop", "params", "mean / std", "weights");
}

static void print_table_row(const row *r) {
    const hs_preprocess *pp = &r->pp;
    char stats[64], params[16];
    snprintf(stats, sizeof stats, "%.3f,%.3f,%.3f / %.3f,%.3f,%.3f", pp->mean[0], pp->mean[1],
             pp->mean[2], pp->std[0], pp->std[1], pp->std[2]);
    snprintf(params, sizeof params, "%.2fM", r->stats.params / 1e6);
    printf("%-20s %5d %6d %-8s %8d %7.2f %8s  %-27s %s\n", r->info->name, pp->input_size,
           pp->resize_size, hs_interpolation_name(pp->interpolation), r->stats.feature_dim, r->stats.gflop, params, stats,
           r->present ? cli_term(r->path) : "missing");
    if (!r->present) printf("%-20s   to get them: %s\n", "", r->info->weights_hint);
}

static void print_csv_row(const row *r) {
    const hs_preprocess *pp = &r->pp;
    cli_print_csv_field(r->info->name);
    printf(",%d,%d,%d,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.6f,%lld,%lld,%d,", pp->input_size,
           pp->resize_size, r->stats.feature_dim, pp->mean[0], pp->mean[1], pp->mean[2],
           pp->std[0], pp->std[1], pp->std[2], r->stats.gflop, (long long)r->stats.params,
           (long long)r->stats.backbone_params, r->present);
    cli_print_csv_field(r->path);
    printf(",%s\n", hs_interpolation_name(pp->interpolation));
}

static cJSON *json_triple(const float *v) {
    double d[3] = {v[0], v[1], v[2]};
    return cJSON_CreateDoubleArray(d, 3);
}

/* The backbone's known files (weight_versions.h), each with its preprocessing. */
static cJSON *json_versions(const hs_backbone_info *b) {
    cJSON *list = cJSON_CreateArray();
    for (int i = 0; list && i < hs_weights_version_count(); i++) {
        const hs_weights_version *v = hs_weights_version_at(i);
        if (strcmp(v->backbone, b->name) != 0) continue;
        cJSON *o = cJSON_CreateObject();
        int ok = o && cJSON_AddStringToObject(o, "tag", v->tag) &&
                 cJSON_AddStringToObject(o, "file", v->file) &&
                 cJSON_AddStringToObject(o, "sha256_prefix", v->sha256) &&
                 cJSON_AddNumberToObject(o, "input_size", v->preprocess.input_size) &&
                 cJSON_AddNumberToObject(o, "resize_size", v->preprocess.resize_size) &&
                 cJSON_AddStringToObject(o, "interpolation",
                                         hs_interpolation_name(v->preprocess.interpolation)) &&
                 cJSON_AddNumberToObject(o, "top1", v->top1);
        if (!ok || !cJSON_AddItemToArray(list, o)) {
            cJSON_Delete(o); /* not in the list: still ours */
            cJSON_Delete(list);
            return NULL;
        }
    }
    return list;
}

static cJSON *json_row(const row *r) {
    const hs_backbone_info *b = r->info;
    const hs_preprocess *pp = &r->pp;
    cJSON *o = cJSON_CreateObject();
    cJSON *weights = cJSON_CreateObject();
    if (!o || !weights) {
        cJSON_Delete(o);
        cJSON_Delete(weights);
        return NULL;
    }
    int ok = cJSON_AddStringToObject(o, "name", b->name) &&
             cJSON_AddStringToObject(o, "description", b->description) &&
             cJSON_AddNumberToObject(o, "input_size", pp->input_size) &&
             cJSON_AddNumberToObject(o, "resize_size", pp->resize_size) &&
             cJSON_AddStringToObject(o, "interpolation",
                                     hs_interpolation_name(pp->interpolation)) &&
             cJSON_AddNumberToObject(o, "feature_dim", r->stats.feature_dim) &&
             cJSON_AddItemToObject(o, "mean", json_triple(pp->mean)) &&
             cJSON_AddItemToObject(o, "std", json_triple(pp->std)) &&
             cJSON_AddNumberToObject(o, "gflop", r->stats.gflop) &&
             cJSON_AddNumberToObject(o, "params", (double)r->stats.params) &&
             cJSON_AddNumberToObject(o, "backbone_params", (double)r->stats.backbone_params) &&
             cJSON_AddBoolToObject(weights, "present", r->present) &&
             cJSON_AddStringToObject(weights, "file", b->weights_file) &&
             cJSON_AddItemToObject(weights, "known_files", json_versions(b)) &&
             (r->present ? cJSON_AddStringToObject(weights, "path", r->path) != NULL
                         : cJSON_AddStringToObject(weights, "hint", b->weights_hint) != NULL);
    if (!ok || !cJSON_AddItemToObject(o, "weights", weights)) {
        if (ok) cJSON_Delete(weights); /* not attached: o does not own it */
        else cJSON_AddItemToObject(o, "weights", weights);
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int cmd_backbones(int argc, char **argv) {
    format f = FORMAT_TABLE;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            print_help();
            return 0;
        }
        if (strcmp(argv[i], "--format") != 0)
            return cli_usage_error("backbones", "unexpected argument '%s'", argv[i]);
        if (i + 1 >= argc) return cli_usage_error("backbones", "--format needs a value");
        const char *v = argv[++i];
        if (strcmp(v, "table") == 0) f = FORMAT_TABLE;
        else if (strcmp(v, "csv") == 0) f = FORMAT_CSV;
        else if (strcmp(v, "json") == 0) f = FORMAT_JSON;
        else return cli_usage_error("backbones", "--format must be table, csv or json, not '%s'", v);
    }
    cJSON *list = f == FORMAT_JSON ? cJSON_CreateArray() : NULL;
    if (f == FORMAT_JSON && !list) {
        fprintf(stderr, "headstart: error: out of memory\n");
        return HS_ERR_NOMEM;
    }
    if (f == FORMAT_TABLE) print_table_header();
    if (f == FORMAT_CSV)
        printf("backbone,input_size,resize_size,feature_dim,mean_r,mean_g,mean_b,std_r,std_g,"
               "std_b,gflop,params,backbone_params,weights_present,weights_path,"
               "interpolation\n");
    int code = 0;
    for (int i = 0; i < hs_backbone_count() && !code; i++) {
        row r;
        if ((code = gather(&r, hs_backbone_at(i)))) break;
        if (f == FORMAT_TABLE) print_table_row(&r);
        else if (f == FORMAT_CSV) print_csv_row(&r);
        else {
            cJSON *o = json_row(&r);
            if (!o || !cJSON_AddItemToArray(list, o)) {
                cJSON_Delete(o);
                fprintf(stderr, "headstart: error: out of memory\n");
                code = HS_ERR_NOMEM;
            }
        }
    }
    if (f == FORMAT_JSON && !code) {
        char *text = cJSON_Print(list);
        if (text) printf("%s\n", text);
        else code = HS_ERR_NOMEM;
        free(text);
    }
    cJSON_Delete(list);
    return code;
}
