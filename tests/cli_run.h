/* Running the headstart command from a test, as a user does: `headstart ARGS` in a folder,
 * under a time limit, its stdout and stderr kept for the checks. Shared by the CLI tests of
 * each backbone family. */
#ifndef HS_TEST_CLI_RUN_H
#define HS_TEST_CLI_RUN_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

static char out_text[1 << 16], err_text[1 << 16];

static void cli_read_file(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, size - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
}

/* The exit code of `headstart ARGS` run in dir (-1 when it did not exit: a signal, or past
 * the 600 s limit); stdout and stderr in out_text and err_text. */
static int cli_run_in(const char *dir, const char *args) {
    char command[4096], path[1024];
    snprintf(command, sizeof command, "cd '%s' && timeout 600 '%s' %s > out.txt 2> err.txt",
             dir, HS_CLI_PATH, args);
    int status = system(command);
    snprintf(path, sizeof path, "%s/out.txt", dir);
    cli_read_file(path, out_text, sizeof out_text);
    snprintf(path, sizeof path, "%s/err.txt", dir);
    cli_read_file(path, err_text, sizeof err_text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#endif
