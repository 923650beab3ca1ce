#include "fileutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

#define TEMP_MARK ".tmp."
enum { SUFFIX_LENGTH = 12, NAME_ATTEMPTS = 64 };

/* ---- atomic writes ------------------------------------------------------------------------ */

/* Random letters and digits for a temporary name: the kernel's randomness, else a mix of the
 * clock, the pid and a counter (names only need to be unpredictable and rarely equal; O_EXCL
 * makes a collision a retry, never a shared file). */
static void random_suffix(char *out, int length) {
    static const char alphabet[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char bytes[32];
    if (getrandom(bytes, (size_t)length, GRND_NONBLOCK) != (ssize_t)length) {
        static uint64_t counter;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                     ((uint64_t)getpid() << 17) ^ (++counter * 0x9e3779b97f4a7c15ull);
        for (int i = 0; i < length; i++) {
            x ^= x >> 33;
            x *= 0xff51afd7ed558ccdull;
            x ^= x >> 29;
            bytes[i] = (unsigned char)x;
        }
    }
    for (int i = 0; i < length; i++) out[i] = alphabet[bytes[i] % (sizeof alphabet - 1)];
    out[length] = '\0';
}

/* The folder part of path ("." when it has none), in a new string. */
static char *folder_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* fsync of a folder: makes a rename in it durable. File systems that cannot sync a folder
 * say EINVAL, and a folder we may write but not read cannot be opened: neither is a failure
 * of the write. */
static int sync_folder(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno == EACCES || errno == EPERM ? 0 : -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e == EINVAL) rc = 0;
    errno = e;
    return rc;
}

static void release(hs_atomic_file *af) {
    free(af->path);
    free(af->temp_path);
    af->path = af->temp_path = NULL;
    af->file = NULL;
}

void hs_atomic_abort(hs_atomic_file *af) {
    if (!af) return;
    if (af->temp_path) unlink(af->temp_path); /* before the close: still ours, still locked */
    if (af->file) fclose(af->file);
    release(af);
}

hs_status hs_atomic_begin(hs_atomic_file *af, const char *path, hs_error *err) {
    memset(af, 0, sizeof *af);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base) return hs_fail(err, HS_ERR_ARGUMENT, "cannot write %s: not a file name", path);
    size_t folder_length = (size_t)(base - path);
    size_t size = strlen(path) + 1 + strlen(TEMP_MARK) + SUFFIX_LENGTH + 1;
    af->path = strdup(path);
    af->temp_path = malloc(size);
    if (!af->path || !af->temp_path) {
        release(af);
        return hs_fail(err, HS_ERR_NOMEM, "out of memory writing %s", path);
    }
    for (int attempt = 0; attempt < NAME_ATTEMPTS; attempt++) {
        char suffix[SUFFIX_LENGTH + 1];
        random_suffix(suffix, SUFFIX_LENGTH);
        snprintf(af->temp_path, size, "%.*s.%s%s%s", (int)folder_length, path, base, TEMP_MARK,
                 suffix);
        int fd = open(af->temp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 && errno == EEXIST) continue;
        if (fd < 0) {
            int e = errno;
            release(af);
            return hs_fail(err, HS_ERR_IO, "cannot write %s: %s", path, strerror(e));
        }
        /* Locked from here to the commit. A sweep that opened the name between our create
         * and our lock may have removed it: then the name is no longer ours; take another. */
        struct stat mine, named;
        if (flock(fd, LOCK_EX) != 0 || fstat(fd, &mine) != 0 ||
            lstat(af->temp_path, &named) != 0 || mine.st_ino != named.st_ino ||
            mine.st_dev != named.st_dev) {
            close(fd);
            continue;
        }
        if (!(af->file = fdopen(fd, "wb"))) {
            unlink(af->temp_path);
            close(fd);
            release(af);
            return hs_fail(err, HS_ERR_NOMEM, "out of memory writing %s", path);
        }
        return HS_OK;
    }
    release(af);
    return hs_fail(err, HS_ERR_IO, "cannot write %s: no free temporary name after %d tries",
                   path, NAME_ATTEMPTS);
}

hs_status hs_atomic_commit(hs_atomic_file *af, hs_error *err) {
    if (!af->file) {
        release(af);
        return hs_fail(err, HS_ERR_INTERNAL, "commit of a file that was not begun");
    }
    const char *step = "cannot write";
    errno = 0;
    int failed = fflush(af->file) != 0 || ferror(af->file);
    if (!failed && fsync(fileno(af->file)) != 0) failed = 1;
    if (!failed && rename(af->temp_path, af->path) != 0) failed = 1, step = "cannot rename to";
    int e = errno;
    if (failed) {
        hs_status st = hs_fail(err, HS_ERR_IO, "%s %s: %s", step, af->path,
                               e ? strerror(e) : "write error");
        hs_atomic_abort(af);
        return st;
    }
    /* The lock goes with the close, after the rename: no sweep ever sees the name unlocked. */
    int close_failed = fclose(af->file) != 0;
    af->file = NULL;
    char *dir = folder_of(af->path);
    int sync_failed = !dir || sync_folder(dir) != 0;
    e = errno;
    free(dir);
    hs_status st = HS_OK;
    if (close_failed || sync_failed)
        st = hs_fail(err, HS_ERR_IO, "cannot make %s durable: %s", af->path, strerror(e));
    release(af);
    return st;
}

hs_status hs_write_file_atomic(const char *path, const void *data, size_t size, hs_error *err) {
    hs_atomic_file af;
    hs_status st = hs_atomic_begin(&af, path, err);
    if (st) return st;
    if (size && fwrite(data, 1, size, af.file) != size) {
        int e = errno;
        hs_atomic_abort(&af);
        return hs_fail(err, HS_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    return hs_atomic_commit(&af, err);
}

/* ---- stale temporary files ---------------------------------------------------------------- */

static int all_digits(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

static int is_suffix(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
              (s[n] >= '0' && s[n] <= '9')))
            return 0;
    return n == SUFFIX_LENGTH;
}

int hs_is_temp_name(const char *name) {
    if (name[0] == '.')
        for (const char *p = strstr(name + 1, TEMP_MARK); p; p = strstr(p + 1, TEMP_MARK))
            if (is_suffix(p + strlen(TEMP_MARK))) return 1;
    /* Earlier versions: "<name>.tmp.<pid>" and the cache's "<name>.tmp-<pid>". */
    for (const char *p = strstr(name, ".tmp"); p; p = strstr(p + 1, ".tmp"))
        if ((p[4] == '.' || p[4] == '-') && all_digits(p + 5)) return 1;
    return 0;
}

int hs_remove_stale_temps(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    size_t dir_length = strlen(dir);
    while ((e = readdir(d))) {
        if (!hs_is_temp_name(e->d_name)) continue;
        size_t size = dir_length + strlen(e->d_name) + 2;
        char *path = malloc(size);
        if (!path) break;
        snprintf(path, size, "%s/%s", dir, e->d_name);
        struct stat named;
        if (lstat(path, &named) == 0) {
            if (S_ISLNK(named.st_mode)) {
                removed += unlink(path) == 0; /* never ours: we create with O_EXCL */
            } else if (S_ISREG(named.st_mode)) {
                int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
                struct stat held;
                /* Locked by us, and still the file under that name: nobody writes it. */
                if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &held) == 0 &&
                    lstat(path, &named) == 0 && held.st_ino == named.st_ino &&
                    held.st_dev == named.st_dev)
                    removed += unlink(path) == 0;
                if (fd >= 0) close(fd);
            }
        }
        free(path);
    }
    closedir(d);
    return removed;
}

/* ---- folders and reads -------------------------------------------------------------------- */
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
