/* Atomic writes (fileutil.c) as an attacker and a kill would test them: a planted symlink at
 * the name earlier versions used is never followed, a target that is a link is replaced, not
 * written through; a write that fails half way (a file size limit: a full disk in small)
 * leaves the old file intact and no temporary file; a killed writer's temporary file is never
 * used and is swept, while a live writer's (another process, holding its lock) is not. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fileutil.h"
#include "safetensors.h"
#include "statedict.h"

#define DIR_ HS_TEST_TMP_DIR "/fileutil"

static void fresh_dir(void) {
    CHECK(system("rm -rf '" DIR_ "'") == 0);
    CHECK(hs_make_dirs(DIR_, NULL) == HS_OK);
}

static int file_equals(const char *path, const char *text) {
    char *data = NULL;
    size_t size = 0;
    if (hs_read_file(path, 1 << 24, &data, &size, NULL)) return 0;
    int same = size == strlen(text) && memcmp(data, text, size) == 0;
    free(data);
    return same;
}

static void write_plain(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* Files in DIR_ that are temporary files (by hs_is_temp_name); the first one's path. */
static int count_temps(char *first, size_t size) {
    DIR *d = opendir(DIR_);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (hs_is_temp_name(e->d_name)) {
            if (n++ == 0 && first) snprintf(first, size, "%s/%s", DIR_, e->d_name);
        }
    if (d) closedir(d);
    return n;
}

static void test_names(void) {
    CHECK(hs_is_temp_name(".checkpoint.safetensors.tmp.Ab3dE6gH9jK1"));
    CHECK(hs_is_temp_name("checkpoint.safetensors.tmp.12345"));  /* earlier versions */
    CHECK(hs_is_temp_name("0123abcd.hsf.tmp-999999999"));        /* the cache's, earlier */
    CHECK(!hs_is_temp_name("checkpoint.safetensors"));
    CHECK(!hs_is_temp_name(".checkpoint.safetensors.tmp.short"));
    CHECK(!hs_is_temp_name("notes.tmp.txt"));
    CHECK(!hs_is_temp_name(".hidden"));
}

static void test_write_and_replace(void) {
    fresh_dir();
    CHECK(hs_write_file_atomic(DIR_ "/out.txt", "first\n", 6, NULL) == HS_OK);
    CHECK(file_equals(DIR_ "/out.txt", "first\n"));
    CHECK(hs_write_file_atomic(DIR_ "/out.txt", "second\n", 7, NULL) == HS_OK);
    CHECK(file_equals(DIR_ "/out.txt", "second\n"));
    CHECK(count_temps(NULL, 0) == 0);
    /* The helper's pieces: the temporary file is hidden, in the target's folder, and two
     * writers of one target never share it. */
    hs_atomic_file a, b;
    CHECK(hs_atomic_begin(&a, DIR_ "/out.txt", NULL) == HS_OK);
    CHECK(hs_atomic_begin(&b, DIR_ "/out.txt", NULL) == HS_OK);
    CHECK(a.temp_path && b.temp_path && strcmp(a.temp_path, b.temp_path) != 0);
    CHECK(a.temp_path && strncmp(a.temp_path, DIR_ "/.out.txt.tmp.", strlen(DIR_) + 14) == 0);
    fputs("from a\n", a.file);
    fputs("from b\n", b.file);
    CHECK(count_temps(NULL, 0) == 2);
    hs_atomic_abort(&b);
    CHECK(file_equals(DIR_ "/out.txt", "second\n"));
    CHECK(hs_atomic_commit(&a, NULL) == HS_OK);
    CHECK(file_equals(DIR_ "/out.txt", "from a\n"));
    CHECK(count_temps(NULL, 0) == 0);
    hs_atomic_abort(&a); /* after a commit: harmless */
    /* A folder that does not exist: an I/O error naming the target. */
    hs_error err = {0};
    CHECK(hs_write_file_atomic(DIR_ "/no/such/out.txt", "x", 1, &err) == HS_ERR_IO);
    CHECK_MSG(strstr(err.message, "no/such/out.txt") != NULL, "%s", err.message);
}

/* Earlier versions wrote to "<path>.tmp.<pid>": anyone who could write the folder could
 * plant a symlink there and have the next write land in a file of their choosing. */
static void test_planted_symlink(void) {
    fresh_dir();
    write_plain(DIR_ "/victim", "precious\n");
    char planted[600];
    snprintf(planted, sizeof planted, "%s/out.txt.tmp.%ld", DIR_, (long)getpid());
    CHECK(symlink("victim", planted) == 0);
    CHECK(hs_write_file_atomic(DIR_ "/out.txt", "new\n", 4, NULL) == HS_OK);
    CHECK_MSG(file_equals(DIR_ "/victim", "precious\n"), "the write followed a planted link");
    CHECK(file_equals(DIR_ "/out.txt", "new\n"));

    /* A target that is itself a link is replaced by the new file, not written through. */
    CHECK(symlink("victim", DIR_ "/linked.txt") == 0);
    CHECK(hs_write_file_atomic(DIR_ "/linked.txt", "new\n", 4, NULL) == HS_OK);
    struct stat st;
    CHECK(lstat(DIR_ "/linked.txt", &st) == 0 && S_ISREG(st.st_mode));
    CHECK(file_equals(DIR_ "/victim", "precious\n"));

    /* The sweep removes a planted link (never one of ours) and leaves its target alone. */
    CHECK(hs_remove_stale_temps(DIR_) == 1);
    struct stat lst;
    CHECK(lstat(planted, &lst) != 0);
    CHECK(file_equals(DIR_ "/victim", "precious\n"));
}

/* In a child limited to 4 KB files (writes past it fail with EFBIG, as on a full disk),
 * writes of 1 MB over files that hold "old": each fails, and the old files stay whole. */
static void test_failed_write_keeps_old_file(void) {
    fresh_dir();
    write_plain(DIR_ "/plain.bin", "old\n");
    write_plain(DIR_ "/weights.safetensors", "old\n");
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit limit = {4096, 4096};
        if (setrlimit(RLIMIT_FSIZE, &limit) != 0) _exit(20);
        size_t size = 1 << 20;
        char *big = calloc(size, 1);
        int bad = 0;
        hs_error err = {0};
        if (hs_write_file_atomic(DIR_ "/plain.bin", big, size, &err) != HS_ERR_IO) bad |= 1;
        hs_state_dict sd;
        hs_sd_init(&sd);
        int64_t shape[1] = {(int64_t)(size / 4)};
        if (hs_sd_add_copy(&sd, "w", 1, shape, (const float *)big, &err) != HS_OK) bad |= 2;
        if (hs_safetensors_save(DIR_ "/weights.safetensors", &sd, NULL, 0, &err) != HS_ERR_IO)
            bad |= 4;
        hs_sd_free(&sd);
        free(big);
        _exit(bad);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    CHECK(file_equals(DIR_ "/plain.bin", "old\n"));
    CHECK(file_equals(DIR_ "/weights.safetensors", "old\n"));
    CHECK(count_temps(NULL, 0) == 0);
}

/* A writer killed before its commit leaves a temporary file: the target is untouched, the
 * file is never read as the target, and the sweep removes it (nobody holds its lock). */
static void test_killed_writer_swept(void) {
    fresh_dir();
    write_plain(DIR_ "/out.txt", "old\n");
    pid_t pid = fork();
    if (pid == 0) {
        hs_atomic_file af;
        if (hs_atomic_begin(&af, DIR_ "/out.txt", NULL)) _exit(1);
        fputs("half written", af.file);
        fflush(af.file);
        raise(SIGKILL);
        _exit(2);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    char temp[600] = "";
    CHECK(count_temps(temp, sizeof temp) == 1);
    CHECK(file_equals(temp, "half written"));
    CHECK(file_equals(DIR_ "/out.txt", "old\n"));
    /* A leftover of an earlier version too. */
    write_plain(DIR_ "/out.txt.tmp.4242", "older leftover");
    CHECK(hs_remove_stale_temps(DIR_) == 2);
    CHECK(count_temps(NULL, 0) == 0);
    CHECK(!hs_path_exists(DIR_ "/out.txt.tmp.4242"));
    CHECK(file_equals(DIR_ "/out.txt", "old\n"));
}

/* Two processes: a writer that holds its temporary file open (and locked) while the other
 * sweeps the folder. Its file stays, whatever its pid says in another namespace, and its
 * commit then succeeds. */
static void test_live_writer_kept(void) {
    fresh_dir();
    int ready[2], go[2];
    CHECK(pipe(ready) == 0 && pipe(go) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        close(go[1]);
        hs_atomic_file af;
        if (hs_atomic_begin(&af, DIR_ "/out.txt", NULL)) _exit(1);
        fputs("written while swept", af.file);
        fflush(af.file);
        if (write(ready[1], "r", 1) != 1) _exit(2);
        char c;
        if (read(go[0], &c, 1) != 1) _exit(3);
        _exit(hs_atomic_commit(&af, NULL) == HS_OK ? 0 : 4);
    }
    close(ready[1]);
    close(go[0]);
    char c = 0;
    CHECK(read(ready[0], &c, 1) == 1);
    char temp[600] = "";
    CHECK(count_temps(temp, sizeof temp) == 1);
    CHECK(hs_remove_stale_temps(DIR_) == 0);
    CHECK(hs_remove_stale_temps(DIR_) == 0);
    CHECK_MSG(hs_path_exists(temp), "a live writer's file was swept");
    CHECK(write(go[1], "g", 1) == 1);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer status %d", status);
    CHECK(file_equals(DIR_ "/out.txt", "written while swept"));
    CHECK(count_temps(NULL, 0) == 0);
    close(ready[0]);
    close(go[1]);
}

int main(void) {
    CHECK(hs_make_dirs(HS_TEST_TMP_DIR, NULL) == HS_OK);
    test_names();
    test_write_and_replace();
    test_planted_symlink();
    test_failed_write_keeps_old_file();
    test_killed_writer_swept();
    test_live_writer_kept();
    return check_finish("test_fileutil");
}
