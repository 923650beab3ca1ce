/* headstart cache list|prune|clear: what the feature cache holds, and making room. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "feature_cache.h"

static void print_help(void) {
    printf("usage: headstart cache list [--cache-dir DIR]\n"
           "       headstart cache prune [--older-than DURATION] [--max-size SIZE] "
           "[--cache-dir DIR]\n"
           "       headstart cache clear [--cache-dir DIR]\n"
           "\n"
           "The feature cache keeps the frozen backbone's output for each data set side, one\n"
           "entry per key (backbone, weights, image size, precision, file list...).\n"
           "\n"
           "  list    each entry: last use, size on disk, images, backbone, image size,\n"
           "          precision, key (its file name) and the data it was made for;\n"
           "          least recently used first\n"
           "  prune   removes entries not used for DURATION (30d, 12h, 90m, 3600s, 2w), then\n"
           "          the least recently used until the rest fits in SIZE (bytes, or with K,\n"
           "          M, G, T: powers of 1024); damaged entries and files of killed runs go too\n"
           "  clear   removes every entry\n"
           "\n"
           "A run writing an entry at the same time keeps it. The cache is --cache-dir DIR,\n"
           "else $XDG_CACHE_HOME/headstart, else ~/.cache/headstart (as for train).\n");
}

/* "12.3 MiB": sizes as people read them. */
static void format_size(long long bytes, char *out, size_t size) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    if (u == 0) snprintf(out, size, "%lld B", bytes);
    else snprintf(out, size, "%.1f %s", v, units[u]);
}

/* Text from a cache file, which anyone who can write the folder controls: control
 * characters are shown as '?' so they cannot drive the terminal. */
static void print_safe(const char *s, int width) {
    int n = 0;
    for (; *s; s++, n++) putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
    for (; n < width; n++) putchar(' ');
}

/* SIZE: bytes, or a number and K, M, G or T (powers of 1024; KB, KiB and the like too). */
static int parse_size(const char *text, long long *bytes) {
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || !(v >= 0) || !isfinite(v)) return -1;
    double unit = 1;
    if (*end) {
        static const char units[] = "KMGT";
        const char *at = strchr(units, toupper((unsigned char)*end));
        if (at) {
            unit = pow(1024, (double)(at - units + 1));
            const char *rest = end + 1;
            if (*rest && strcmp(rest, "B") != 0 && strcmp(rest, "iB") != 0) return -1;
        } else if (strcmp(end, "B") != 0) {
            return -1;
        }
    }
    if (v * unit > 9e18) return -1;
    *bytes = (long long)(v * unit);
    return 0;
}

static void print_listing(const char *dir, const hs_cache_listing *l) {
    char total[32];
    format_size(l->total_bytes, total, sizeof total);
    printf("cache: %s (%d entr%s, %s)\n", dir, l->count, l->count == 1 ? "y" : "ies", total);
    if (l->count == 0) return;
    printf("%-16s  %10s  %7s  %-20s %5s  %-4s  %-16s  %s\n", "last use", "size", "images",
           "backbone", "img", "prec", "key", "data");
    for (int i = 0; i < l->count; i++) {
        const hs_cache_entry_info *e = &l->entries[i];
        char when[32], size[32];
        time_t t = (time_t)e->last_use;
        struct tm tm;
        if (!localtime_r(&t, &tm) || !strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm))
            snprintf(when, sizeof when, "?");
        format_size(e->bytes, size, sizeof size);
        printf("%-16s  %10s  ", when, size);
        if (e->damaged) {
            printf("%7s  %-20s %5s  %-4s  %-16.16s  (unreadable; prune removes it)\n", "-",
                   "damaged", "-", "-", e->name);
            continue;
        }
        printf("%7lld  ", e->images);
        print_safe(e->backbone, 20);
        printf(" %5d  ", e->img_size);
        print_safe(e->precision, 4);
        printf("  %-16.16s  ", e->name);
        print_safe(e->source, 0);
        putchar('\n');
    }
}

int cmd_cache(int argc, char **argv) {
    const char *action = NULL, *cache_dir = NULL, *older = NULL, *max_size = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help();
            return 0;
        }
        int has_value = i + 1 < argc;
        if (!strcmp(a, "--cache-dir") && has_value) cache_dir = argv[++i];
        else if (!strcmp(a, "--older-than") && has_value) older = argv[++i];
        else if (!strcmp(a, "--max-size") && has_value) max_size = argv[++i];
        else if (a[0] == '-') return cli_usage_error("cache", "unknown option or missing value '%s'", a);
        else if (!action) action = a;
        else return cli_usage_error("cache", "unexpected argument '%s'", a);
    }
    if (!action) return cli_usage_error("cache", "expected list, prune or clear");
    int list = !strcmp(action, "list"), prune = !strcmp(action, "prune"),
        clear = !strcmp(action, "clear");
    if (!list && !prune && !clear)
        return cli_usage_error("cache", "unknown action '%s' (list, prune or clear)", action);
    if ((older || max_size) && !prune)
        return cli_usage_error("cache", "--older-than and --max-size are for prune");
    long long older_than = -1, max_bytes = -1;
    if (prune) {
        if (!older && !max_size)
            return cli_usage_error("cache", "prune needs --older-than DURATION or --max-size SIZE");
        if (older && cli_parse_duration(older, &older_than))
            return cli_usage_error("cache", "--older-than needs a duration such as 30d, 12h or "
                                            "90m, not '%s'", older);
        if (max_size && parse_size(max_size, &max_bytes))
            return cli_usage_error("cache", "--max-size needs a size such as 500M or 2G, not "
                                            "'%s'", max_size);
    }
    if (clear) max_bytes = 0;

    char dir[4096];
    hs_error err = {0};
    if (hs_cache_dir_path(cache_dir, dir, sizeof dir, &err)) return cli_report(&err);
    if (list) {
        hs_cache_listing listing;
        if (hs_cache_list(dir, &listing, &err)) return cli_report(&err);
        print_listing(dir, &listing);
        hs_cache_listing_free(&listing);
        return 0;
    }
    hs_cache_prune_result r;
    if (hs_cache_prune(dir, older_than, max_bytes, (long long)time(NULL), &r, &err))
        return cli_report(&err);
    char removed[32], kept[32];
    format_size(r.removed_bytes, removed, sizeof removed);
    format_size(r.kept_bytes, kept, sizeof kept);
    printf("removed %d entr%s (%s); %d entr%s (%s) left in %s\n", r.removed,
           r.removed == 1 ? "y" : "ies", removed, r.kept, r.kept == 1 ? "y" : "ies", kept, dir);
    return 0;
}
