/* Shared pieces of the command line tool: the one place that prints errors and picks exit
 * codes. Exit codes: 0 success; the hs_status value for a library error (2 bad argument or
 * usage, 3 I/O, 4 bad file format, 5 unsafe pickle refused, 6 out of memory, 7 weights do not
 * fit, 8 weights not found, 9 bad image, 10 internal); 11 when some inputs failed and the rest
 * succeeded. */
#ifndef HS_CLI_H
#define HS_CLI_H

#include "headstart.h"

#define HS_EXIT_PARTIAL 11

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
 * said on stderr) or NULL (look for the pretrained file). */
int cli_open_net(const hs_backbone_info *info, const char *weights_arg, hs_net **out);

/* Collects image paths: files as given, folders walked (sorted, hidden entries skipped, only
 * .jpg/.jpeg/.png). The caller frees each path and the array. */
int cli_collect_images(char **args, int count, char ***paths, int *path_count);

int cmd_backbones(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_convert(int argc, char **argv);

#endif
