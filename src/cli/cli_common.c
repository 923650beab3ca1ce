#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli.h"
#include "folder_walk.h"
#include "pretrained_cfg.h"
#include "terminal_text.h"

int cli_report(const hs_error *err) {
    fprintf(stderr, "headstart: error: %s\n", cli_term(err->message));
    return err->code ? (int)err->code : HS_ERR_INTERNAL;
}

int cli_usage_error(const char *command, const char *fmt, ...) {
    va_list ap;
    char text[1024];
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap); /* quotes what the user typed: escaped too */
    va_end(ap);
    fprintf(stderr, "headstart %s: %s\n(see 'headstart %s --help')\n", command, cli_term(text),
            command);
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
    fprintf(stderr, "headstart: error: --backbone: unknown backbone '%s'", cli_term(name));
    if (close) fprintf(stderr, "; did you mean '%s'?", close);
    fprintf(stderr, " ('headstart backbones' lists them)\n");
    *exit_code = HS_ERR_ARGUMENT;
    return NULL;
}

int cli_open_net(const hs_backbone_info *info, const char *weights_arg, hs_net **out,
                 hs_preprocess *pp) {
    hs_error err = {0};
    char found[4096];
    const char *path = weights_arg;
    *out = NULL;
    if (!path) {
        if (hs_find_weights(info, found, sizeof found, &err)) return cli_report(&err);
        path = found;
    }
    char note[1024];
    if (pp && hs_preprocess_resolve(info, strcmp(path, "none") ? path : NULL, NULL, 0, pp,
                                    note, sizeof note, &err))
        return cli_report(&err);
    if (pp && note[0]) fprintf(stderr, "headstart: note: %s\n", cli_term(note));
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

int cli_collect_images(char **args, int count, char ***paths, int *path_count) {
    char **list = NULL;
    int n = 0, capacity = 0; /* capacity: what list is known to hold */
    int code = 0;
    for (int i = 0; !code && i < count; i++) {
        struct stat st;
        if (stat(args[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            /* the library's one folder walker: links followed, each folder and file once */
            hs_error err = {0};
            hs_walk_stats stats = {0};
            code = hs_walk_images(args[i], &list, &n, &stats, &err) ? cli_report(&err) : 0;
            capacity = n; /* the walker grew list to at least n */
            if (!code && stats.repeats)
                fprintf(stderr, "headstart: note: %ld entr%s of %s reached again through links "
                        "taken once\n", stats.repeats, stats.repeats == 1 ? "y" : "ies",
                        cli_term(args[i]));
            continue;
        }
        if (n == capacity) {
            int more = capacity < 32 ? 64 : capacity * 2;
            char **grown = realloc(list, (size_t)more * sizeof *grown);
            if (grown) {
                list = grown;
                capacity = more;
            }
        }
        char *copy = n < capacity ? strdup(args[i]) : NULL; /* missing files: reported when read */
        if (!copy) {
            fprintf(stderr, "headstart: error: out of memory listing the images\n");
            code = HS_ERR_NOMEM;
        } else {
            list[n++] = copy;
        }
    }
    if (code) {
        for (int j = 0; j < n; j++) free(list[j]);
        free(list);
        return code;
    }
    *paths = list;
    *path_count = n;
    return 0;
}

/* Escaped copies live in a few rotating slots, so that one printf can name several strings;
 * a slot is reused (and its old text freed) eight calls later. */
#define TERM_SLOTS 8
static char *term_slot[TERM_SLOTS];
static int term_next;

const char *cli_term(const char *s) {
    if (!s) return "(null)";
    size_t need = hs_escape_for_terminal(s, NULL, 0);
    char *buf = malloc(need + 1);
    if (!buf) return "(name not shown: out of memory)";
    hs_escape_for_terminal(s, buf, need + 1);
    free(term_slot[term_next]);
    term_slot[term_next] = buf;
    term_next = (term_next + 1) % TERM_SLOTS;
    return buf;
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

/* DURATION: a number and a unit (s, m, h, d, w), in seconds. */
int cli_parse_duration(const char *text, long long *seconds) {
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || !(v >= 0) || !isfinite(v)) return -1;
    double unit = 0;
    if (!strcmp(end, "s")) unit = 1;
    else if (!strcmp(end, "m")) unit = 60;
    else if (!strcmp(end, "h")) unit = 3600;
    else if (!strcmp(end, "d")) unit = 86400;
    else if (!strcmp(end, "w")) unit = 7 * 86400;
    else return -1;
    if (v * unit > 9e15) return -1;
    *seconds = (long long)(v * unit);
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
