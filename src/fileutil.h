/* Writing files so that a crash, a kill -9 or a full disk never leaves a half-written file
 * where a good one was: write a temporary file in the same folder, flush and fsync it, then
 * rename it over the target (atomic on POSIX file systems). */
#ifndef HS_FILEUTIL_H
#define HS_FILEUTIL_H

#include <stddef.h>

#include "headstart.h"

hs_status hs_write_file_atomic(const char *path, const void *data, size_t size, hs_error *err);

/* Creates a folder and its parents (mkdir -p); an existing folder is fine. */
hs_status hs_make_dirs(const char *path, hs_error *err);

int hs_path_exists(const char *path);
int hs_is_dir(const char *path);

/* Reads a whole (small) file into a new zero-terminated buffer; *size excludes the zero. */
hs_status hs_read_file(const char *path, size_t limit, char **data, size_t *size, hs_error *err);

#endif
