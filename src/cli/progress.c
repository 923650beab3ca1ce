/* Progress lines on stderr: images/s and time left, redrawn in place on a terminal and
 * printed every few seconds otherwise (logs, CI). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void cli_progress(void *ctx, const char *phase, long done, long total, double seconds) {
    cli_progress_state *p = ctx;
    int finished = done >= total;
    if (strcmp(phase, p->phase) != 0 || seconds < p->last_print) { /* a new phase's clock */
        snprintf(p->phase, sizeof p->phase, "%s", phase);
        p->last_print = -1e9;
    }
    if (!p->tty && !finished && seconds - p->last_print < 5.0) return;
    p->last_print = seconds;
    double rate = seconds > 0 ? done / seconds : 0;
    double left = rate > 0 ? (total - done) / rate : 0;
    fprintf(stderr, "%s%-15s %7ld/%-7ld %7.1f images/s  %s %d:%02d%s", p->tty ? "\r" : "",
            phase, done, total, rate, finished ? "took" : "left",
            (int)(finished ? seconds : left) / 60, (int)(finished ? seconds : left) % 60,
            p->tty && !finished ? "  " : "\n");
    fflush(stderr);
}

void cli_note(void *ctx, const char *message) {
    (void)ctx;
    fprintf(stderr, "headstart: %s\n", cli_term(message));
}

void cli_progress_init(cli_progress_state *p) {
    p->tty = isatty(STDERR_FILENO);
    p->last_print = -1e9;
    p->phase[0] = '\0';
}
