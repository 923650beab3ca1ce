/* headstart features: a backbone's pre-logit features of images, to .safetensors or .npy.
 *
 * Each argument is one part of the output, in the order given: an image file, a folder
 * (walked as classify walks it: sorted, hidden entries skipped, links followed once), or a
 * data set in one of train's forms that a walk cannot see into (an archive, CIFAR-10's
 * binary batches): its train side, then its val/test side. Consecutive image files form one
 * part. Each part is extracted through the feature cache on its own, so adding a folder to
 * a command reuses the parts already cached. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "dataset_internal.h"
#include "feature_cache.h"
#include "features_export.h"
#include "hash.h"
#include "pretrained_cfg.h"

typedef struct features_options {
    const char *backbone, *weights, *out, *cache_dir;
    int no_cache, img_size, batch_size, threads;
} features_options;

/* One part of the output: a data set extracted on its own. */
typedef struct part {
    hs_dataset ds;
    char source[4200]; /* names its cache entry */
    int loose;         /* image files given one by one */
    hs_feature_set fs;
    int cached;
} part;

typedef struct part_list {
    part *items;
    int count, capacity;
} part_list;

static void print_help(void) {
    printf("usage: headstart features --backbone NAME [--weights FILE|none] [--img-size N]\n"
           "                          [--batch-size N] [--threads N]\n"
           "                          [--cache-dir DIR | --no-cache] --out FILE\n"
           "                          IMAGE|FOLDER|DATA...\n"
           "\n"
           "Writes the backbone's pre-logit features (what a head sees) of each image, one row\n"
           "per image in the order given (folders sorted), prepared as 'headstart train'\n"
           "prepares them and read from its feature cache when they are there.\n"
           "\n"
           "  --out X.safetensors  tensor 'features' (float32, N x D); metadata 'paths' (a JSON\n"
           "                       list), backbone, img_size, feature_dim, weights_sha256\n"
           "  --out X.npy          float32 N x D (NumPy format 1.0) and X.txt beside it, one\n"
           "                       path a line; names holding a line break are refused\n"
           "  --weights FILE|none  [the pretrained file]; a timm hub file (model.safetensors)\n"
           "                       brings its preprocessing from config.json beside it\n"
           "  --img-size N         [the backbone's or config.json's input size], 32..1024\n"
           "  --batch-size N       [32]\n"
           "  --threads N          [all cores]\n"
           "  --cache-dir DIR      [$XDG_CACHE_HOME/headstart or ~/.cache/headstart]\n"
           "  --no-cache           compute in memory; read and write no cache\n"
           "\n"
           "DATA is an archive (.tar, .tar.gz, .tgz, .zip) or a CIFAR-10 binary folder: its\n"
           "train side, then its val/test side. Unreadable images are named on stderr and left\n"
           "out (exit code 11); when none can be read nothing is written (exit code 9).\n");
}

static const char *const value_flags[] = {"--backbone", "--weights",    "--img-size",
                                          "--batch-size", "--threads",  "--cache-dir",
                                          "--out"};

static int takes_value(const char *flag) {
    for (size_t i = 0; i < sizeof value_flags / sizeof value_flags[0]; i++)
        if (strcmp(flag, value_flags[i]) == 0) return 1;
    return 0;
}

static int parse_range(const char *flag, const char *v, int lo, int hi, int *out) {
    int code = cli_parse_int("features", flag, v, out);
    if (code) return code;
    if (*out < lo || *out > hi)
        return cli_usage_error("features", "%s must be %d..%d, not %d", flag, lo, hi, *out);
    return 0;
}

static int parse_options(int argc, char **argv, features_options *o, int *first_path) {
    *first_path = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0) {
            print_help();
            exit(0);
        }
        if (strcmp(a, "--") == 0) {
            *first_path = i + 1;
            return 0;
        }
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            *first_path = i;
            return 0;
        }
        if (strcmp(a, "--no-cache") == 0) {
            o->no_cache = 1;
            continue;
        }
        if (!takes_value(a)) return cli_usage_error("features", "unknown option '%s'", a);
        if (i + 1 >= argc) return cli_usage_error("features", "%s needs a value", a);
        const char *v = argv[++i];
        int code = 0;
        if (strcmp(a, "--backbone") == 0) o->backbone = v;
        else if (strcmp(a, "--weights") == 0) o->weights = v;
        else if (strcmp(a, "--out") == 0) o->out = v;
        else if (strcmp(a, "--cache-dir") == 0) o->cache_dir = v;
        else if (strcmp(a, "--img-size") == 0) code = parse_range(a, v, 32, 1024, &o->img_size);
        else if (strcmp(a, "--batch-size") == 0) code = parse_range(a, v, 1, 4096, &o->batch_size);
        else code = parse_range(a, v, 1, 1024, &o->threads);
        if (code) return code;
    }
    return 0;
}

/* ---- the parts ------------------------------------------------------------------------------- */

static part *new_part(part_list *l) {
    if (l->count == l->capacity) {
        int capacity = l->capacity ? l->capacity * 2 : 8;
        part *grown = realloc(l->items, (size_t)capacity * sizeof *grown);
        if (!grown) return NULL;
        l->items = grown;
        l->capacity = capacity;
    }
    part *p = &l->items[l->count++];
    memset(p, 0, sizeof *p);
    return p;
}

static void free_parts(part_list *l) {
    for (int i = 0; i < l->count; i++) {
        hs_feature_set_free(&l->items[i].fs);
        hs_dataset_free(&l->items[i].ds);
    }
    free(l->items);
}

static void absolute(const char *path, char *out, size_t size) {
    char *real = realpath(path, NULL);
    snprintf(out, size, "%s", real ? real : path);
    free(real);
}

/* Appends an image file to a data set of one class (a part's samples; labels are unused).
 * The size and modification time are what the cache key knows a file by; a file that
 * cannot be read is still listed, and named as skipped when its turn comes. */
static int add_file(hs_dataset *ds, const char *path, int *capacity) {
    if (!ds->class_names) {
        if (!(ds->class_names = calloc(1, sizeof *ds->class_names)) ||
            !(ds->class_names[0] = strdup("images")))
            return 0;
        ds->class_count = 1;
    }
    if (ds->count == *capacity) {
        int more = *capacity ? *capacity * 2 : 64;
        hs_sample *grown = realloc(ds->samples, (size_t)more * sizeof *grown);
        if (!grown) return 0;
        ds->samples = grown;
        *capacity = more;
    }
    hs_sample *s = &ds->samples[ds->count];
    memset(s, 0, sizeof *s);
    if (!(s->name = strdup(path))) return 0;
    struct stat st;
    if (stat(path, &st) == 0) {
        s->size = st.st_size;
        s->mtime = st.st_mtime;
    } else {
        s->size = -1;
    }
    s->kind = HS_SAMPLE_FILE;
    ds->count++;
    return 1;
}

/* A data set in one of train's forms: both sides when it has a split (train/ and val/ or
 * test/, CIFAR-10's data and test batches), else all of it. hs_dataset_open with no
 * validation fraction refuses exactly the data without a split, which are then opened
 * whole (an archive of class folders is read twice then). */
static int add_data(part_list *l, const char *arg) {
    char where[4096];
    absolute(arg, where, sizeof where);
    hs_dataset train, val;
    hs_dataset_options opts = {0};
    hs_error err = {0};
    hs_status st = hs_dataset_open(arg, &opts, &train, &val, &err);
    int sides = 2;
    if (st == HS_ERR_ARGUMENT) {
        hs_dataset_free(&train);
        hs_dataset_free(&val);
        memset(&err, 0, sizeof err);
        st = hs_dataset_open_eval(arg, &train, &err);
        sides = 1;
    }
    if (st) {
        hs_dataset_free(&train);
        if (sides == 2) hs_dataset_free(&val);
        return cli_report(&err);
    }
    for (int s = 0; s < sides; s++) {
        part *p = new_part(l);
        hs_dataset *ds = s == 0 ? &train : &val;
        if (!p) {
            hs_dataset_free(&train);
            if (sides == 2) hs_dataset_free(&val);
            fprintf(stderr, "headstart: error: out of memory\n");
            return HS_ERR_NOMEM;
        }
        p->ds = *ds;
        memset(ds, 0, sizeof *ds);
        snprintf(p->source, sizeof p->source, "%s%s", where,
                 sides == 1 ? "" : s == 0 ? " (train)" : " (val)");
        for (int w = 0; w < p->ds.warning_count; w++)
            fprintf(stderr, "headstart: note: %s\n", cli_term(p->ds.warnings[w]));
    }
    return 0;
}

static int collect_parts(char **args, int count, part_list *l) {
    int loose_capacity = 0;
    for (int i = 0; i < count; i++) {
        struct stat st;
        int exists = stat(args[i], &st) == 0;
        if (exists && S_ISDIR(st.st_mode)) {
            char **paths = NULL;
            int n = 0, code = cli_collect_images(&args[i], 1, &paths, &n);
            if (code) return code;
            if (n == 0) {
                free(paths);
                if ((code = add_data(l, args[i]))) return code;
                continue;
            }
            part *p = new_part(l);
            int capacity = 0, ok = p != NULL;
            if (p) absolute(args[i], p->source, sizeof p->source);
            for (int k = 0; k < n; k++) {
                ok = ok && add_file(&p->ds, paths[k], &capacity);
                free(paths[k]);
            }
            free(paths);
            if (!ok) {
                fprintf(stderr, "headstart: error: out of memory listing the images\n");
                return HS_ERR_NOMEM;
            }
            continue;
        }
        if (exists && S_ISREG(st.st_mode) && !hs_ds_is_image_name(args[i])) {
            int code = add_data(l, args[i]);
            if (code) return code;
            continue;
        }
        /* An image file, or a name that is none: named as skipped when it cannot be read. */
        part *p = l->count && l->items[l->count - 1].loose ? &l->items[l->count - 1] : NULL;
        if (!p) {
            if (!(p = new_part(l))) return HS_ERR_NOMEM;
            p->loose = 1;
            loose_capacity = 0;
            char cwd[4096];
            /* Numbered: each run of image arguments is its own cache entry. */
            snprintf(p->source, sizeof p->source, "%s (images given, part %d)",
                     getcwd(cwd, sizeof cwd) ? cwd : ".", l->count);
        }
        if (!add_file(&p->ds, args[i], &loose_capacity)) {
            fprintf(stderr, "headstart: error: out of memory listing the images\n");
            return HS_ERR_NOMEM;
        }
    }
    return 0;
}

/* ---- the network ------------------------------------------------------------------------------ */

typedef struct opened {
    hs_net *net;
    char weights_path[4096]; /* "none" for random weights */
    char weights_sha[80];
    hs_preprocess pp;
} opened;

/* Random weights are those of hs_net_create's seed 0, as classify's --weights none. */
static int open_backbone(const hs_backbone_info *info, const features_options *o, opened *n) {
    hs_error err = {0};
    if (o->weights && strcmp(o->weights, "none") == 0) {
        snprintf(n->weights_path, sizeof n->weights_path, "none");
        snprintf(n->weights_sha, sizeof n->weights_sha, "random-seed-0");
    } else {
        if (o->weights) snprintf(n->weights_path, sizeof n->weights_path, "%s", o->weights);
        else if (hs_find_weights(info, n->weights_path, sizeof n->weights_path, &err))
            return cli_report(&err);
        if (hs_sha256_file(n->weights_path, n->weights_sha, &err)) return cli_report(&err);
    }
    char note[1024];
    int random = strcmp(n->weights_path, "none") == 0;
    if (hs_preprocess_resolve(info, random ? NULL : n->weights_path,
                              random ? NULL : n->weights_sha, o->img_size, &n->pp, note,
                              sizeof note, &err))
        return cli_report(&err);
    if (note[0]) fprintf(stderr, "headstart: note: %s\n", cli_term(note));
    if (hs_net_create(info->name, 0, &n->net, &err)) return cli_report(&err);
    if (strcmp(n->weights_path, "none") == 0)
        fprintf(stderr, "headstart: note: %s runs with random weights (--weights none)\n",
                info->name);
    else if (hs_net_load_weights(n->net, n->weights_path, &err))
        return cli_report(&err);
    return 0;
}

/* ---- writing ---------------------------------------------------------------------------------- */

/* The rows of every part, one after another. */
static void part_rows(void *ctx, long first, int n, float *out) {
    const part_list *l = ctx;
    long offset = 0;
    for (int i = 0; i < l->count && n > 0; i++) {
        const hs_feature_set *fs = &l->items[i].fs;
        if (first >= offset + fs->count) {
            offset += fs->count;
            continue;
        }
        int local = (int)(first - offset);
        int take = fs->count - local < n ? fs->count - local : n;
        hs_feature_range(fs, local, take, out);
        out += (size_t)take * fs->dim;
        first += take;
        n -= take;
        offset += fs->count;
    }
}

static int write_output(const features_options *o, hs_features_format format,
                        const part_list *l, const opened *n, long rows, int dim) {
    const char **paths = malloc((size_t)(rows ? rows : 1) * sizeof *paths);
    if (!paths) {
        fprintf(stderr, "headstart: error: out of memory for %ld paths\n", rows);
        return HS_ERR_NOMEM;
    }
    long r = 0;
    for (int i = 0; i < l->count; i++)
        for (int k = 0; k < l->items[i].fs.count; k++)
            paths[r++] = l->items[i].ds.samples[l->items[i].fs.sample_index[k]].name;
    hs_features_meta meta = {n->net->info->name, n->pp.input_size, n->weights_sha};
    hs_error err = {0};
    int code = 0;
    if (hs_features_write(o->out, format, rows, dim, part_rows, (void *)l, paths, &meta, &err))
        code = cli_report(&err);
    free(paths);
    return code;
}

/* Every name that will be written must fit the format: checked before any work. */
static int check_names(const part_list *l, hs_features_format format) {
    for (int i = 0; i < l->count; i++)
        for (int k = 0; k < l->items[i].ds.count; k++) {
            hs_error err = {0};
            if (hs_features_check_path(format, l->items[i].ds.samples[k].name, &err))
                return cli_report(&err);
        }
    return 0;
}

int cmd_features(int argc, char **argv) {
    features_options o = {"efficientnet_lite0", NULL, NULL, NULL, 0, 0, 32, 0};
    int first_path = argc;
    int code = parse_options(argc, argv, &o, &first_path);
    if (code) return code;
    if (!o.out) return cli_usage_error("features", "--out FILE is required");
    hs_features_format format = hs_features_format_of(o.out);
    if (format == HS_FEATURES_UNKNOWN)
        return cli_usage_error("features",
                               "--out '%s' must end in .safetensors or .npy (with a .txt of "
                               "paths beside it)", cli_term(o.out));
    if (first_path >= argc) return cli_usage_error("features", "no images given");
    const hs_backbone_info *info = cli_backbone(o.backbone, &code);
    if (!info) return code;
    if (o.no_cache && o.cache_dir)
        return cli_usage_error("features", "--cache-dir and --no-cache exclude each other");

    part_list parts = {0};
    opened n = {0};
    if ((code = collect_parts(argv + first_path, argc - first_path, &parts))) goto done;
    long total = 0;
    for (int i = 0; i < parts.count; i++) total += parts.items[i].ds.count;
    if (total == 0) {
        fprintf(stderr, "headstart: error: no .jpg, .jpeg or .png images found\n");
        code = HS_ERR_ARGUMENT;
        goto done;
    }
    if ((code = check_names(&parts, format))) goto done;
    hs_features_set_threads(o.threads);
    if ((code = open_backbone(info, &o, &n))) goto done;

    char cache_dir[4096] = "";
    if (!o.no_cache) {
        hs_error err = {0};
        if (hs_cache_dir_resolve(o.cache_dir, cache_dir, sizeof cache_dir, &err)) {
            if (o.cache_dir) {
                fprintf(stderr, "headstart: error: --cache-dir: %s\n", cli_term(err.message));
                code = err.code;
                goto done;
            }
            fprintf(stderr, "headstart: note: no feature cache: %s\n", cli_term(err.message));
            cache_dir[0] = '\0';
        }
    }

    cli_progress_state progress;
    cli_progress_init(&progress);
    hs_feature_options fo = {0};
    fo.img_size = n.pp.input_size;
    fo.interpolation = n.pp.interpolation;
    memcpy(fo.mean, n.pp.mean, sizeof fo.mean);
    memcpy(fo.std, n.pp.std, sizeof fo.std);
    fo.batch_size = o.batch_size;
    fo.progress = cli_progress;
    fo.progress_ctx = &progress;
    fo.stop = cli_install_stop_handler();
    long rows = 0, failed = 0;
    int dim = 0, cached_parts = 0;
    for (int i = 0; i < parts.count; i++) {
        part *p = &parts.items[i];
        char phase[32], note[1400];
        if (parts.count > 1) snprintf(phase, sizeof phase, "features %d/%d", i + 1, parts.count);
        else snprintf(phase, sizeof phase, "features");
        fo.phase = phase;
        hs_features_job job = {n.net, &p->ds, &fo, cache_dir[0] ? cache_dir : NULL,
                               n.weights_sha, p->source};
        hs_error err = {0};
        if (hs_features_extract(&job, &p->fs, &p->cached, note, sizeof note, &err)) {
            code = err.code == HS_ERR_INTERRUPTED ? HS_EXIT_INTERRUPTED : cli_report(&err);
            if (err.code == HS_ERR_INTERRUPTED)
                fprintf(stderr, "headstart: %s; nothing written\n", cli_term(err.message));
            goto done;
        }
        fprintf(stderr, "headstart: %s: %d image%s %s\n", cli_term(p->source), p->ds.count,
                p->ds.count == 1 ? "" : "s", cli_term(note));
        for (int k = 0; k < p->fs.failed_count; k++)
            fprintf(stderr, "headstart: skipped: %s\n", cli_term(p->fs.failed[k]));
        rows += p->fs.count;
        failed += p->fs.failed_count;
        cached_parts += p->cached;
        dim = p->fs.dim;
    }
    if (rows == 0) {
        fprintf(stderr, "headstart: error: none of the %ld images could be read; nothing "
                        "written\n", total);
        code = HS_ERR_IMAGE;
        goto done;
    }
    if ((code = write_output(&o, format, &parts, &n, rows, dim))) goto done;
    fprintf(stderr, "headstart: wrote %ld x %d features of %s to %s%s (%d of %d part%s from the "
                    "cache)\n", rows, dim, info->name, cli_term(o.out),
            format == HS_FEATURES_NPY ? " and its .txt of paths" : "", cached_parts,
            parts.count, parts.count == 1 ? "" : "s");
    if (failed) {
        fprintf(stderr, "headstart: %ld of %ld images could not be read\n", failed, total);
        code = HS_EXIT_PARTIAL;
    }
done:
    hs_net_free(n.net);
    free_parts(&parts);
    return code;
}
