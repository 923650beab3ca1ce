#include "fileutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

hs_status hs_write_file_atomic(const char *path, const void *data, size_t size, hs_error *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return hs_fail(err, HS_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    const char *p = data;
    size_t left = size;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return hs_fail(err, HS_ERR_IO, "cannot write %s: %s", path,
                           n == 0 ? "no space" : strerror(e));
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return hs_fail(err, HS_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return hs_fail(err, HS_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    return HS_OK;
}

int hs_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int hs_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

hs_status hs_make_dirs(const char *path, hs_error *err) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return hs_fail(err, HS_ERR_ARGUMENT, "path too long: %.100s...", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return hs_fail(err, HS_ERR_IO, "cannot create folder %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return hs_fail(err, HS_ERR_IO, "cannot create folder %s: %s", buf, strerror(errno));
    if (!hs_is_dir(buf))
        return hs_fail(err, HS_ERR_IO, "%s exists and is not a folder", buf);
    return HS_OK;
}

hs_status hs_read_file(const char *path, size_t limit, char **data, size_t *size, hs_error *err) {
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return hs_fail(err, HS_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t capacity = 4096, used = 0;
    char *buf = malloc(capacity + 1);
    while (buf) {
        size_t n = fread(buf + used, 1, capacity - used, f);
        used += n;
        if (used < capacity) break;
        if (capacity >= limit) {
            free(buf);
            fclose(f);
            return hs_fail(err, HS_ERR_FORMAT, "%s is larger than %zu bytes", path, limit);
        }
        capacity *= 2;
        char *grown = realloc(buf, capacity + 1);
        if (!grown) free(buf);
        buf = grown;
    }
    int failed = ferror(f);
    fclose(f);
    if (!buf) return hs_fail(err, HS_ERR_NOMEM, "out of memory reading %s", path);
    if (failed) {
        free(buf);
        return hs_fail(err, HS_ERR_IO, "error reading %s", path);
    }
    buf[used] = '\0';
    *data = buf;
    *size = used;
    return HS_OK;
}
