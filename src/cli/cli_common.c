#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli.h"

int cli_report(const hs_error *err) {
    fprintf(stderr, "headstart: error: %s\n", err->message);
    return err->code ? (int)err->code : HS_ERR_INTERNAL;
}

int cli_usage_error(const char *command, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "headstart %s: ", command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'headstart %s --help')\n", command);
    return HS_ERR_ARGUMENT;
}

static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64) return 1000;
    int row[65];
    for (size_t j = 0; j <= m; j++) row[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        int diagonal = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int above = row[j];
            int cost = a[i - 1] == b[j - 1] ? 0 : 1;
            int best = diagonal + cost;
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diagonal = above;
        }
    }
    return row[m];
}

const char *cli_closest_backbone(const char *name) {
    const char *best = NULL;
    int best_distance = 4; /* suggest only near misses */
    for (int i = 0; i < hs_backbone_count(); i++) {
        const char *candidate = hs_backbone_at(i)->name;
        int d = edit_distance(name, candidate);
        if (strstr(candidate, name) && strlen(name) >= 3) d = 1;
        if (d < best_distance) {
            best_distance = d;
            best = candidate;
        }
    }
    return best;
}

const hs_backbone_info *cli_backbone(const char *name, int *exit_code) {
    const hs_backbone_info *info = hs_backbone_find(name);
    if (info) return info;
    const char *close = cli_closest_backbone(name);
    fprintf(stderr, "headstart: error: --backbone: unknown backbone '%s'", name);
    if (close) fprintf(stderr, "; did you mean '%s'?", close);
    fprintf(stderr, " ('headstart backbones' lists them)\n");
    *exit_code = HS_ERR_ARGUMENT;
    return NULL;
}

int cli_open_net(const hs_backbone_info *info, const char *weights_arg, hs_net **out) {
    hs_error err = {0};
    char found[4096];
    const char *path = weights_arg;
    *out = NULL;
    if (!path) {
        if (hs_find_weights(info, found, sizeof found, &err)) return cli_report(&err);
        path = found;
    }
    hs_net *net = NULL;
    if (hs_net_create(info->name, 0, &net, &err)) return cli_report(&err);
    if (strcmp(path, "none") == 0) {
        fprintf(stderr, "headstart: note: %s runs with random weights (--weights none)\n",
                info->name);
    } else if (hs_net_load_weights(net, path, &err)) {
        hs_net_free(net);
        return cli_report(&err);
    }
    *out = net;
    return 0;
}

static int has_image_extension(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
                   strcasecmp(dot, ".png") == 0);
}

typedef struct path_list {
    char **items;
    int count, capacity;
} path_list;

static int push_path(path_list *list, const char *path) {
    if (list->count == list->capacity) {
        int capacity = list->capacity ? list->capacity * 2 : 64;
        char **grown = realloc(list->items, (size_t)capacity * sizeof *grown);
        if (!grown) return 0;
        list->items = grown;
        list->capacity = capacity;
    }
    char *copy = strdup(path);
    if (!copy) return 0;
    list->items[list->count++] = copy;
    return 1;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk_folder(const char *folder, path_list *list) {
    DIR *dir = opendir(folder);
    if (!dir) return 1;
    path_list names = {0};
    struct dirent *entry;
    int ok = 1;
    while (ok && (entry = readdir(dir)))
        if (entry->d_name[0] != '.') ok = push_path(&names, entry->d_name);
    closedir(dir);
    qsort(names.items, (size_t)names.count, sizeof *names.items, compare_names);
    for (int i = 0; i < names.count; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", folder, names.items[i]);
        struct stat st;
        if (ok && stat(path, &st) == 0) {
            if (S_ISDIR(st.st_mode)) ok = walk_folder(path, list) == 0;
            else if (has_image_extension(names.items[i])) ok = push_path(list, path);
        }
        free(names.items[i]);
    }
    free(names.items);
    return ok ? 0 : 1;
}

int cli_collect_images(char **args, int count, char ***paths, int *path_count) {
    path_list list = {0};
    for (int i = 0; i < count; i++) {
        struct stat st;
        int failed = 0;
        if (stat(args[i], &st) == 0 && S_ISDIR(st.st_mode)) failed = walk_folder(args[i], &list);
        else failed = !push_path(&list, args[i]); /* missing files are reported when read */
        if (failed) {
            fprintf(stderr, "headstart: error: cannot read %s\n", args[i]);
            for (int j = 0; j < list.count; j++) free(list.items[j]);
            free(list.items);
            return HS_ERR_IO;
        }
    }
    *paths = list.items;
    *path_count = list.count;
    return 0;
}

static volatile sig_atomic_t stop_requested = 0;
static volatile int stop_flag = 0;

static void on_stop_signal(int sig) {
    if (stop_requested) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_requested = 1;
    stop_flag = 1;
    static const char msg[] =
        "\nheadstart: stopping after this step (press Ctrl-C again to quit at once)\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
}

volatile int *cli_install_stop_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return &stop_flag;
}

int cli_parse_int(const char *command, const char *flag, const char *text, int *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < INT_MIN || v > INT_MAX)
        return cli_usage_error(command, "%s needs a whole number, not '%s'", flag, text);
    *out = (int)v;
    return 0;
}

int cli_parse_float(const char *command, const char *flag, const char *text, float *out) {
    char *end = NULL;
    errno = 0;
    float v = strtof(text, &end);
    if (errno || end == text || *end)
        return cli_usage_error(command, "%s needs a number, not '%s'", flag, text);
    *out = v;
    return 0;
}

void cli_print_csv_field(const char *s) {
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"') putchar('"');
        putchar(*s);
    }
    putchar('"');
}

void cli_top_k(const float *probs, int classes, int k, int *order) {
    for (int r = 0; r < k; r++) { /* k is small: selection by repeated scan */
        int best = -1;
        for (int c = 0; c < classes; c++) {
            int taken = 0;
            for (int q = 0; q < r; q++) taken |= order[q] == c;
            if (!taken && (best < 0 || probs[c] > probs[best])) best = c;
        }
        order[r] = best;
    }
}
