/* Files on disk: atomic writes, folders, small reads.
 *
 * Every output (checkpoint, run record, metrics, charts, feature cache entries, converted
 * weights) is written through hs_atomic_file, so a crash, a kill -9 or a full disk never leaves
 * a half-written file where a good one was, and a planted link never redirects a write:
 *
 *   - the data goes to a new file ".<name>.tmp.XXXXXX" in the target's folder (random
 *     suffix), created with O_CREAT | O_EXCL | O_NOFOLLOW, so nothing that already exists
 *     under that name (a file, a symlink an attacker planted) is ever opened;
 *   - the writer holds an exclusive flock on it while it writes: a sweep of stale temporary
 *     files (hs_remove_stale_temps) removes only those nobody holds, which is right across
 *     processes, PID namespaces and machines that share the folder (a pid is not);
 *   - on commit the file is flushed and fsync'd, renamed over the target (atomic on POSIX
 *     file systems), and the folder is fsync'd so the rename itself survives a power cut;
 *   - on abort (or any failure) the temporary file is removed. */
#ifndef HS_FILEUTIL_H
#define HS_FILEUTIL_H

#include <stddef.h>
#include <stdio.h>

#include "headstart.h"

typedef struct hs_atomic_file {
    FILE *file;        /* write the contents here (binary) */
    char *path;        /* the target */
    char *temp_path;   /* where the contents go until the commit */
} hs_atomic_file;

/* Creates the temporary file for path and locks it. On failure af is left empty (abort and
 * commit on it are harmless). */
hs_status hs_atomic_begin(hs_atomic_file *af, const char *path, hs_error *err);
/* Flushes, fsyncs and renames the file over its target, then fsyncs the folder. Releases af
 * in every case; on failure the target is untouched and the temporary file is gone. */
hs_status hs_atomic_commit(hs_atomic_file *af, hs_error *err);
/* Removes the temporary file and releases af (an empty or released af is fine). */
void hs_atomic_abort(hs_atomic_file *af);

/* Writes data to path atomically (begin, write, commit). */
hs_status hs_write_file_atomic(const char *path, const void *data, size_t size, hs_error *err);

/* Whether a file name is one of our temporary names: ".<name>.tmp.<suffix>", or the names
 * older versions used ("<name>.tmp.<pid>", "<name>.tmp-<pid>"). */
int hs_is_temp_name(const char *name);
/* Removes the temporary files in dir that no writer holds (killed writers' leftovers);
 * returns how many were removed. Never follows a link: a link is removed itself. */
int hs_remove_stale_temps(const char *dir);

/* Creates a folder and its parents (mkdir -p); an existing folder is fine. */
hs_status hs_make_dirs(const char *path, hs_error *err);

int hs_path_exists(const char *path);
int hs_is_dir(const char *path);

/* Reads a whole (small) file into a new zero-terminated buffer; *size excludes the zero. */
hs_status hs_read_file(const char *path, size_t limit, char **data, size_t *size, hs_error *err);

#endif
