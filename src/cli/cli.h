/* Shared pieces of the command line tool: the one place that prints errors and picks exit
 * codes. Exit codes: 0 success; the hs_status value for a library error (2 bad argument or
 * usage, 3 I/O, 4 bad file format, 5 unsafe pickle refused, 6 out of memory, 7 weights do not
 * fit, 8 weights not found, 9 bad image, 10 internal, 12 training diverged, 14 the output
 * folder holds a run); 11 when some inputs failed and the rest succeeded; 130 after Ctrl-C. */
#ifndef HS_CLI_H
#define HS_CLI_H

#include "headstart.h"

#define HS_EXIT_PARTIAL 11
#define HS_EXIT_INTERRUPTED 130 /* the shell's convention for Ctrl-C */

/* Prints "headstart: <message>" on stderr and returns the exit code for err. */
int cli_report(const hs_error *err);
/* Prints a usage error on stderr and returns HS_ERR_ARGUMENT. */
int cli_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The known backbone closest to name (edit distance), or NULL if none is close. */
const char *cli_closest_backbone(const char *name);
/* Resolves --backbone: the info, or prints an error with a suggestion and returns NULL. */
const hs_backbone_info *cli_backbone(const char *name, int *exit_code);

/* Creates the network and loads its weights: weights_arg is a file, "none" (random weights,
 * said on stderr) or NULL (look for the pretrained file). pp (may be NULL) receives the
 * preprocessing of the file used (pretrained_cfg.h: its version by name, a config.json
 * beside it), said on stderr when it is not the built-in. */
int cli_open_net(const hs_backbone_info *info, const char *weights_arg, hs_net **out,
                 hs_preprocess *pp);

/* Collects image paths: files as given, folders walked with the library's walker
 * (hs_walk_images: sorted, hidden entries skipped, links followed, each folder and file once,
 * only .jpg/.jpeg/.png). The caller frees each path and the array. */
int cli_collect_images(char **args, int count, char ***paths, int *path_count);

/* s made safe for the terminal (hs_escape_for_terminal: control characters, invalid UTF-8 and
 * bidi overrides shown as escapes). Every name or path from outside that reaches stdout or
 * stderr as text goes through it; csv and json keep the exact bytes with their own quoting.
 * The result stays valid for the next 7 calls (rotating slots; not thread-safe). */
const char *cli_term(const char *s);

/* Progress reporting (progress.c), usable as hs_train_callbacks members. */
typedef struct cli_progress_state {
    int tty;
    double last_print; /* seconds into the phase of the last line printed */
    char phase[64];    /* that phase: another one starts its own clock */
} cli_progress_state;
void cli_progress_init(cli_progress_state *p);
void cli_progress(void *ctx, const char *phase, long done, long total, double seconds);
void cli_note(void *ctx, const char *message);

/* Ctrl-C and SIGTERM set *cli_stop_flag(); a second one ends the process at once. */
volatile int *cli_install_stop_handler(void);

/* Parses a whole number or a float, naming the flag when it is not one. */
/* Writes a CSV field to stdout, quoted when it holds a comma, quote or newline. */
void cli_print_csv_field(const char *s);

/* Writes the indices of the k (<= classes) largest probabilities into order, best first. */
void cli_top_k(const float *probs, int classes, int k, int *order);

int cli_parse_int(const char *command, const char *flag, const char *text, int *out);
int cli_parse_float(const char *command, const char *flag, const char *text, float *out);
/* DURATION: a number and a unit (s, m, h, d, w: 30m, 2h, 1.5d), in seconds; -1 if not one
 * (cache prune --older-than, train --budget). */
int cli_parse_duration(const char *text, long long *seconds);

int cmd_backbones(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
