/* Data-parallel runs over MPI (dist.h), through the command line under mpirun: on tiny
 * generated images (three colour classes) with Lite0's weights at 32 px, N ranks give the
 * metrics one process gives, for the probe (AdamW and L-BFGS) and the fine-tune (with the
 * head's dropout trained too: masks are drawn per image), within the stated bound; the
 * feature cache entry they write is the one a single process writes, byte for byte, and a
 * rerun on another rank count reads it; the fine-tune's all-reduce overlapped with backward
 * gives the blocking one's metrics and weights bit for bit; --bn train runs on per-rank batch
 * statistics; a rank that fails (an unreadable image under --strict) or cannot see the
 * cache folder ends the job with one message naming it, and a rank killed with SIGKILL ends
 * the job within seconds, after which --resume on another rank count finishes the run as one
 * process would have.
 *
 * The bound (README, "Several machines"): accuracy equal within one sample (the counts are
 * exact, but a float sum in another order can move a sample across the decision boundary),
 * losses within 1e-4 relative (sums of the same terms in another order; the runs here agree
 * far closer).
 *
 * Skipped, saying why, when the build has no MPI or no mpirun is on PATH. MPIRUN overrides
 * the launcher (e.g. "mpirun --mca btl self,vader" in a container that needs it). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "colour_images.h"
#include "dist.h"
#include "fileutil.h"
#include "test_util.h"

#define ROOT HS_TEST_TMP_DIR "/mpi"
#define DATA ROOT "/colours"
#define BAD_DATA ROOT "/colours_bad"
#define IMAGES_PER_CLASS 10
#define LOSS_RTOL 1e-4
/* Every launch is bounded: a hang fails the test instead of blocking CI. */
#define LAUNCH_TIMEOUT_S 300

static const char *const class_names[] = {"blue", "green", "red"};
static char launcher[512];

/* The launcher's command prefix for np ranks (np 0: no launcher, one plain process). */
static void launch_prefix(int np, char *out, size_t size) {
    if (np == 0) {
        snprintf(out, size, "timeout %d", LAUNCH_TIMEOUT_S);
        return;
    }
    snprintf(out, size, "timeout %d %s -np %d", LAUNCH_TIMEOUT_S, launcher, np);
}

/* Runs headstart train DATA ARGS on np ranks (0: one process without a launcher), stdout and
 * stderr into log; returns the exit code. Each rank gets one thread: the ranks share the
 * CI machine's cores. In float32: N ranks compute what one process does to 1e-4 there, while
 * bf16 kernels round differently for another batch split (seen: L-BFGS loss 2e-4, a 3-rank
 * bf16 fine-tune 1 % after two epochs), which these checks would read as a fault. */
static int train(int np, const char *data, const char *args, const char *log) {
    char prefix[700], cmd[4096];
    launch_prefix(np, prefix, sizeof prefix);
    snprintf(cmd, sizeof cmd,
             "%s '%s' train '%s' --img-size 32 --val-fraction 0.25 --seed 3 --threads 1 "
             "--precision f32 %s > '%s' 2>&1", prefix, HS_CLI_PATH, data, args, log);
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)(n > 0 ? n : 0) + 1);
    if (!text) {
        fclose(f);
        return NULL;
    }
    size_t got = fread(text, 1, (size_t)(n > 0 ? n : 0), f);
    text[got] = '\0';
    fclose(f);
    return text;
}

static void show_log(const char *log) {
    char *text = slurp(log);
    fprintf(stderr, "---- %s ----\n%s\n----\n", log, text ? text : "(missing)");
    free(text);
}

static int count_of(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

typedef struct metrics {
    int rows;
    double v[64][4]; /* train loss, train acc, val loss, val acc */
} metrics;

static metrics read_metrics(const char *dir) {
    metrics m = {0};
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.csv", dir);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "%s", path);
    if (!f) return m;
    char line[512];
    if (!fgets(line, sizeof line, f)) line[0] = '\0'; /* the header */
    while (m.rows < 64 && fgets(line, sizeof line, f)) {
        int epoch = 0;
        double *v = m.v[m.rows];
        if (sscanf(line, "%d,%lf,%lf,%lf,%lf", &epoch, &v[0], &v[1], &v[2], &v[3]) == 5)
            m.rows++;
    }
    fclose(f);
    return m;
}

/* The "trained ... on T images ..., validated on V" line of a run's log. */
static void image_counts(const char *log, int *train_images, int *val_images) {
    *train_images = *val_images = 0;
    char *text = slurp(log);
    const char *at = text ? strstr(text, "trained ") : NULL;
    const char *on = at ? strstr(at, " on ") : NULL;
    const char *val = at ? strstr(at, "validated on ") : NULL;
    if (on) *train_images = atoi(on + 4);
    if (val) *val_images = atoi(val + 13);
    free(text);
    CHECK_MSG(*train_images > 0 && *val_images > 0, "image counts in %s", log);
}

/* Run b against run a: the same epochs, accuracies within one sample, losses within
 * LOSS_RTOL relative, or within twice the distance of a to dir_spread when given: the same
 * one-process run with other kernels (another float summation order), which is how far this
 * training's losses move on rounding alone. */
static void check_same_metrics_spread(const char *what, const char *dir_a, const char *log_a,
                                      const char *dir_b, const char *dir_spread) {
    metrics a = read_metrics(dir_a), b = read_metrics(dir_b);
    metrics spread = dir_spread ? read_metrics(dir_spread) : a;
    CHECK_MSG(spread.rows == a.rows, "%s: %d epochs in %s", what, spread.rows, dir_spread);
    int train_images, val_images;
    image_counts(log_a, &train_images, &val_images);
    CHECK_MSG(a.rows > 0 && a.rows == b.rows, "%s: %d epochs against %d", what, a.rows, b.rows);
    double sample[4] = {0, 100.0 / (train_images ? train_images : 1), 0,
                        100.0 / (val_images ? val_images : 1)};
    for (int e = 0; e < a.rows && e < b.rows; e++)
        for (int k = 0; k < 4; k++) {
            double x = a.v[e][k], y = b.v[e][k];
            double rounding = e < spread.rows ? 2 * fabs(x - spread.v[e][k]) : 0;
            int ok = k % 2 == 0 ? fabs(x - y) <= fmax(LOSS_RTOL * fabs(x), rounding)
                                : fabs(x - y) <= sample[k] + 1e-9;
            CHECK_MSG(ok, "%s: epoch %d column %d: %.6f (one process) against %.6f", what,
                      e + 1, k + 1, x, y);
        }
}

static void check_same_metrics(const char *what, const char *dir_a, const char *log_a,
                               const char *dir_b) {
    check_same_metrics_spread(what, dir_a, log_a, dir_b, NULL);
}

/* Every cache entry in dir_a's features/ is in dir_b's, byte for byte. */
static void check_same_cache(const char *dir_a, const char *dir_b) {
    char path[700];
    snprintf(path, sizeof path, "%s/features", dir_a);
    DIR *d = opendir(path);
    CHECK_MSG(d != NULL, "%s", path);
    if (!d) return;
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".hsf")) continue;
        char cmd[1600];
        snprintf(cmd, sizeof cmd, "cmp -s '%s/features/%s' '%s/features/%s'", dir_a, e->d_name,
                 dir_b, e->d_name);
        CHECK_MSG(system(cmd) == 0, "cache entry %s differs between %s and %s", e->d_name,
                  dir_a, dir_b);
        entries++;
    }
    closedir(d);
    CHECK_MSG(entries == 2, "%d cache entries in %s (train and val expected)", entries, dir_a);
}

static int must_succeed(int code, const char *log) {
    CHECK_MSG(code == 0, "exit code %d", code);
    if (code) show_log(log);
    return code == 0;
}

/* The probe with AdamW: one process, 2 ranks and 3 ranks (uneven shards: 21 training
 * images, batches of 8 split 3/3/2), each on a fresh cache; then 3 ranks on the cache one
 * process wrote. */
static void test_probe(void) {
    const char *args = "--batch-size 8 --epochs 3";
    char a[400];
    snprintf(a, sizeof a, "%s --out " ROOT "/p1 --cache-dir " ROOT "/cache1", args);
    if (!must_succeed(train(0, DATA, a, ROOT "/p1.log"), ROOT "/p1.log")) return;
    snprintf(a, sizeof a, "%s --out " ROOT "/p2 --cache-dir " ROOT "/cache2", args);
    if (must_succeed(train(2, DATA, a, ROOT "/p2.log"), ROOT "/p2.log")) {
        check_same_metrics("probe, 2 ranks", ROOT "/p1", ROOT "/p1.log", ROOT "/p2");
        check_same_cache(ROOT "/cache1", ROOT "/cache2");
    }
    snprintf(a, sizeof a, "%s --out " ROOT "/p3 --cache-dir " ROOT "/cache3", args);
    if (must_succeed(train(3, DATA, a, ROOT "/p3.log"), ROOT "/p3.log")) {
        check_same_metrics("probe, 3 ranks", ROOT "/p1", ROOT "/p1.log", ROOT "/p3");
        check_same_cache(ROOT "/cache1", ROOT "/cache3");
        char *record = slurp(ROOT "/p3/run.json");
        CHECK_MSG(record && strstr(record, "\"world_size\":\t3"), "run.json's world_size");
        free(record);
        char *log = slurp(ROOT "/p3.log");
        /* Rank 0 alone prints: one summary, not three. */
        CHECK_MSG(count_of(log, "run written to") == 1, "the summary printed %d times",
                  count_of(log, "run written to"));
        free(log);
    }
    /* A rerun on another rank count reuses the entry one process wrote. */
    snprintf(a, sizeof a, "%s --out " ROOT "/p3r --cache-dir " ROOT "/cache1", args);
    if (must_succeed(train(3, DATA, a, ROOT "/p3r.log"), ROOT "/p3r.log")) {
        char *log = slurp(ROOT "/p3r.log");
        /* Both sides' notes, "... features: N read from the cache (path)". */
        CHECK_MSG(count_of(log, "read from the cache (") == 2, "the rerun recomputed features");
        free(log);
        check_same_metrics("probe, 3 ranks from the cache", ROOT "/p1", ROOT "/p1.log",
                           ROOT "/p3r");
    }
}

/* The L-BFGS probe without a cache: the rows are assembled in every rank's memory and the
 * objective is summed over the ranks. */
static void test_lbfgs(void) {
    const char *args = "--optimizer lbfgs --no-cache";
    char a[400];
    snprintf(a, sizeof a, "%s --out " ROOT "/l1", args);
    if (!must_succeed(train(0, DATA, a, ROOT "/l1.log"), ROOT "/l1.log")) return;
    snprintf(a, sizeof a, "%s --out " ROOT "/l2", args);
    if (must_succeed(train(2, DATA, a, ROOT "/l2.log"), ROOT "/l2.log"))
        check_same_metrics("L-BFGS, 2 ranks", ROOT "/l1", ROOT "/l1.log", ROOT "/l2");
    snprintf(a, sizeof a, "%s --out " ROOT "/l3", args);
    if (must_succeed(train(3, DATA, a, ROOT "/l3.log"), ROOT "/l3.log"))
        check_same_metrics("L-BFGS, 3 ranks", ROOT "/l1", ROOT "/l1.log", ROOT "/l3");
}

/* Two run folders hold byte-identical files of this name. */
static void check_same_file(const char *what, const char *dir_a, const char *dir_b,
                            const char *name) {
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "cmp '%s/%s' '%s/%s'", dir_a, name, dir_b, name);
    CHECK_MSG(system(cmd) == 0, "%s: %s differs", what, name);
}

/* metrics.csv of two runs without the seconds column: byte-identical. */
static void check_identical_metrics(const char *what, const char *dir_a, const char *dir_b) {
    metrics a = read_metrics(dir_a), b = read_metrics(dir_b);
    CHECK_MSG(a.rows > 0 && a.rows == b.rows, "%s: %d epochs against %d", what, a.rows, b.rows);
    for (int e = 0; e < a.rows && e < b.rows; e++)
        for (int k = 0; k < 4; k++)
            CHECK_MSG(a.v[e][k] == b.v[e][k], "%s: epoch %d column %d: %.9g against %.9g",
                      what, e + 1, k + 1, a.v[e][k], b.v[e][k]);
}

/* The fine-tune: stage 1 on features, stage 2 on augmented images with the gradients summed
 * over the ranks and validation sharded. --unfreeze 0 trains the head on images; --unfreeze
 * 1 puts the head's dropout in the trained range, whose masks are drawn per image (seed,
 * epoch, image), so N ranks draw the masks one process draws and the bound holds too. */
static void test_finetune(void) {
    const char *args = "--strategy finetune --probe-epochs 1 --epochs 2 --batch-size 6 "
                       "--optimizer sgd --lr 0.05 --finetune-lr 0.02 --cache-dir " ROOT
                       "/cache_ft";
    char a[600];
    snprintf(a, sizeof a, "%s --unfreeze 0 --out " ROOT "/f1", args);
    if (!must_succeed(train(0, DATA, a, ROOT "/f1.log"), ROOT "/f1.log")) return;
    snprintf(a, sizeof a, "%s --unfreeze 0 --out " ROOT "/f2", args);
    if (must_succeed(train(2, DATA, a, ROOT "/f2.log"), ROOT "/f2.log"))
        check_same_metrics("fine-tune, 2 ranks", ROOT "/f1", ROOT "/f1.log", ROOT "/f2");
    snprintf(a, sizeof a, "%s --unfreeze 0 --out " ROOT "/f3", args);
    if (must_succeed(train(3, DATA, a, ROOT "/f3.log"), ROOT "/f3.log"))
        check_same_metrics("fine-tune, 3 ranks", ROOT "/f1", ROOT "/f1.log", ROOT "/f3");
    snprintf(a, sizeof a, "%s --unfreeze 1 --out " ROOT "/fb1", args);
    if (!must_succeed(train(0, DATA, a, ROOT "/fb1.log"), ROOT "/fb1.log")) return;
    snprintf(a, sizeof a, "%s --unfreeze 1 --out " ROOT "/fb2", args);
    if (must_succeed(train(2, DATA, a, ROOT "/fb2.log"), ROOT "/fb2.log"))
        check_same_metrics("fine-tune with dropout, 2 ranks", ROOT "/fb1", ROOT "/fb1.log",
                           ROOT "/fb2");
    snprintf(a, sizeof a, "%s --unfreeze 1 --out " ROOT "/fb3", args);
    if (must_succeed(train(3, DATA, a, ROOT "/fb3.log"), ROOT "/fb3.log"))
        check_same_metrics("fine-tune with dropout, 3 ranks", ROOT "/fb1", ROOT "/fb1.log",
                           ROOT "/fb3");
}

/* The whole network fine-tuned (Lite0's 3.4 M gradients: four buckets, each started as soon
 * as backward has finished the layers it holds) with the overlapped all-reduce and with the blocking one
 * (HS_DIST_OVERLAP=0) over the same buckets: the same sums, so the same metrics and the same
 * weights, bit for bit (2 ranks: a sum of two floats has one order); and both within the
 * bound of one process, as 3 ranks are. */
static void test_overlap(void) {
    const char *args = "--strategy finetune --unfreeze all --probe-epochs 1 --epochs 2 "
                       "--batch-size 6 --optimizer sgd --lr 0.05 --finetune-lr 0.01 "
                       "--cache-dir " ROOT "/cache_ft";
    char a[600];
    snprintf(a, sizeof a, "%s --out " ROOT "/o_overlap", args);
    if (!must_succeed(train(2, DATA, a, ROOT "/o_overlap.log"), ROOT "/o_overlap.log")) return;
    setenv("HS_DIST_OVERLAP", "0", 1);
    snprintf(a, sizeof a, "%s --out " ROOT "/o_blocking", args);
    int code = train(2, DATA, a, ROOT "/o_blocking.log");
    unsetenv("HS_DIST_OVERLAP");
    if (!must_succeed(code, ROOT "/o_blocking.log")) return;
    check_identical_metrics("overlapped against blocking all-reduce", ROOT "/o_blocking",
                            ROOT "/o_overlap");
    check_same_file("overlapped against blocking all-reduce", ROOT "/o_blocking",
                    ROOT "/o_overlap", "model.safetensors");
    /* And within the bound of one process, on 2 ranks and on 3 (uneven slices of 2). */
    /* Two epochs of training the stem too amplify rounding: on an AVX2-only EPYC the one
     * process's second-epoch validation loss moved by 1.8 % between oneDNN's AVX2 and SSE4.1
     * kernels, more than LOSS_RTOL, while --unfreeze 17 (the stem frozen) moved by 3e-6.
     * So the bound here is also that rounding spread, measured: the one process with oneDNN
     * capped to SSE4.1. */
    snprintf(a, sizeof a, "%s --out " ROOT "/o_one", args);
    int one = must_succeed(train(0, DATA, a, ROOT "/o_one.log"), ROOT "/o_one.log");
    setenv("ONEDNN_MAX_CPU_ISA", "SSE41", 1);
    snprintf(a, sizeof a, "%s --out " ROOT "/o_one_sse41", args);
    code = train(0, DATA, a, ROOT "/o_one_sse41.log");
    unsetenv("ONEDNN_MAX_CPU_ISA");
    if (one && must_succeed(code, ROOT "/o_one_sse41.log")) {
        check_same_metrics_spread("whole fine-tune, 2 ranks", ROOT "/o_one", ROOT "/o_one.log",
                                  ROOT "/o_overlap", ROOT "/o_one_sse41");
        snprintf(a, sizeof a, "%s --out " ROOT "/o_three", args);
        if (must_succeed(train(3, DATA, a, ROOT "/o_three.log"), ROOT "/o_three.log"))
            check_same_metrics_spread("whole fine-tune, 3 ranks", ROOT "/o_one",
                                      ROOT "/o_one.log", ROOT "/o_three", ROOT "/o_one_sse41");
    }
    char *log = slurp(ROOT "/o_overlap.log");
    /* Every bucket started from the tape's hook, none left for the wait after backward
     * (the lowest one as the stem's backward ends). */
    CHECK_MSG(log && strstr(log, "4 buckets a step, 4.0 started during backward (overlapped)"),
              "the overlapped run did not start its buckets during backward");
    free(log);
}

/* --bn train over 2 ranks: each rank normalises with its own batch's statistics (as
 * PyTorch's DDP without SyncBatchNorm), and the running statistics are averaged over the
 * ranks after every epoch, so that every rank validates and saves one model (a difference
 * would fail the run). It runs and learns; it is not bound to one process's metrics. */
static void test_bn_train(void) {
    const char *args = "--strategy finetune --unfreeze 2 --bn train --probe-epochs 1 "
                       "--epochs 2 --batch-size 6 --optimizer sgd --lr 0.05 --finetune-lr 0.01 "
                       "--cache-dir " ROOT "/cache_ft";
    char a[600];
    snprintf(a, sizeof a, "%s --out " ROOT "/bn2", args);
    if (must_succeed(train(2, DATA, a, ROOT "/bn2.log"), ROOT "/bn2.log")) {
        metrics m = read_metrics(ROOT "/bn2");
        CHECK_MSG(m.rows == 2 && m.v[1][3] > 50.0, "--bn train over 2 ranks: %d epochs, "
                  "val acc %.1f %%", m.rows, m.rows == 2 ? m.v[1][3] : 0.0);
    }
}

/* An unreadable image that only the last rank reads (the last file of the last class)
 * fails its shard under --strict: the job ends, every rank with the image error's exit
 * code, and the user reads one message, from rank 0, naming the rank and the file. */
static void test_failing_rank(void) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && echo 'not an image' > "
             "'%s/red/99.png'", BAD_DATA, DATA, BAD_DATA, BAD_DATA);
    CHECK(system(cmd) == 0);
    int failures = check_failures;
    time_t t0 = time(NULL);
    int code = train(2, BAD_DATA, "--strict --no-cache --out " ROOT "/bad", ROOT "/bad.log");
    CHECK_MSG(code == HS_ERR_IMAGE, "exit code %d, not %d", code, HS_ERR_IMAGE);
    CHECK_MSG(time(NULL) - t0 < 120, "the failing job took %ld s", (long)(time(NULL) - t0));
    char *log = slurp(ROOT "/bad.log");
    CHECK_MSG(count_of(log, "headstart: error:") == 1, "%d error messages",
              count_of(log, "headstart: error:"));
    CHECK_MSG(log && strstr(log, "error: rank 1: ") && strstr(log, "99.png"),
              "the message names rank 1 and the file");
    if (check_failures > failures) show_log(ROOT "/bad.log");
    free(log);
}

/* Ranks on nodes that do not share the cache folder: rank 1 runs in a mount namespace of its
 * own with an empty tmpfs over the cache folder (as a node-local disk would be), so it cannot
 * read the entry rank 0 writes there. The job must end at once with one message that says
 * what to do, exit 3 (I/O), not hang or train on half the data. Skipped, saying why, where
 * the test may not make mount namespaces (unshare -m needs CAP_SYS_ADMIN). */
static void test_unshared_cache(void) {
    if (system("unshare -m true > /dev/null 2>&1") != 0) {
        printf("SKIP: test_unshared_cache: cannot make a mount namespace (unshare -m)\n");
        return;
    }
    if (system("mpirun --version 2>&1 | grep -q 'Open MPI'") != 0) {
        printf("SKIP: test_unshared_cache: the MPMD launch below is Open MPI's syntax\n");
        return;
    }
    const char *cache = ROOT "/cache_node_local";
    char cmd[4096], common[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", cache, cache);
    CHECK(system(cmd) == 0);
    snprintf(common, sizeof common, "train '%s' --img-size 32 --val-fraction 0.25 --seed 3 "
             "--threads 1 --epochs 1 --cache-dir '%s' --out " ROOT "/unshared", DATA, cache);
    snprintf(cmd, sizeof cmd, "timeout %d %s -np 1 '%s' %s : -np 1 unshare -m sh -c "
             "\"mount -t tmpfs none '%s' && exec '%s' %s\" > " ROOT "/unshared.log 2>&1",
             LAUNCH_TIMEOUT_S, launcher, HS_CLI_PATH, common, cache, HS_CLI_PATH, common);
    time_t t0 = time(NULL);
    int status = system(cmd);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    int failures = check_failures;
    CHECK_MSG(code == HS_ERR_IO, "exit code %d, not %d", code, HS_ERR_IO);
    CHECK_MSG(time(NULL) - t0 < 120, "the job took %ld s", (long)(time(NULL) - t0));
    char *log = slurp(ROOT "/unshared.log");
    CHECK_MSG(count_of(log, "headstart: error:") == 1, "%d error messages",
              count_of(log, "headstart: error:"));
    CHECK_MSG(log && strstr(log, "error: rank 1: cannot read the feature cache entry") &&
              strstr(log, "shared file system") && strstr(log, "--no-cache"),
              "the message names rank 1, the shared file system and --no-cache");
    if (check_failures > failures) show_log(ROOT "/unshared.log");
    free(log);
}

/* The pid of the rank `rank` of the job whose environment carries mark (local ranks inherit
 * the launcher's environment), or -1. */
static pid_t find_rank(const char *mark, int rank) {
    char want_rank[64], want_pmi[64];
    snprintf(want_rank, sizeof want_rank, "OMPI_COMM_WORLD_RANK=%d", rank);
    snprintf(want_pmi, sizeof want_pmi, "PMI_RANK=%d", rank);
    DIR *proc = opendir("/proc");
    if (!proc) return -1;
    pid_t found = -1;
    struct dirent *e;
    while (found < 0 && (e = readdir(proc))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/%s/environ", e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        char var[8192];
        int has_mark = 0, has_rank = 0;
        size_t n = 0;
        int ch;
        while ((ch = fgetc(f)) != EOF) {
            if (ch != '\0' && n + 1 < sizeof var) {
                var[n++] = (char)ch;
                continue;
            }
            var[n] = '\0';
            n = 0;
            has_mark |= strcmp(var, mark) == 0;
            has_rank |= strcmp(var, want_rank) == 0 || strcmp(var, want_pmi) == 0;
        }
        fclose(f);
        /* The launcher itself carries the mark but no rank. */
        if (has_mark && has_rank) found = (pid_t)atoi(e->d_name);
    }
    closedir(proc);
    return found;
}

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Rank 1 of a 2-rank probe killed with SIGKILL once a checkpoint exists: the launcher ends
 * the job within seconds with a non-zero exit; --resume on 3 ranks then finishes it with the
 * metrics of one process that was never stopped. */
static void test_killed_rank(void) {
    const char *args = "--batch-size 4 --cache-dir " ROOT "/cache1";
    char a[600], mark[64], prefix[700], cmd[4096];
    snprintf(mark, sizeof mark, "HS_TEST_MPI_MARK=%ld", (long)getpid());
    snprintf(a, sizeof a, "%s --epochs 20 --out " ROOT "/k1", args);
    if (!must_succeed(train(0, DATA, a, ROOT "/k1.log"), ROOT "/k1.log")) return;

    /* Many epochs, so that the job is still running when rank 1 dies. */
    launch_prefix(2, prefix, sizeof prefix);
    snprintf(cmd, sizeof cmd, "exec env %s %s '%s' train '%s' --img-size 32 --val-fraction "
             "0.25 --seed 3 --threads 1 --precision f32 %s --epochs 5000 --out " ROOT "/k > " ROOT
             "/k.log 2>&1", mark, prefix, HS_CLI_PATH, DATA, args);
    pid_t job = fork();
    if (job == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    CHECK(job > 0);
    if (job <= 0) return;
    pid_t victim = -1;
    for (int i = 0; i < 1200 && victim < 0; i++) { /* up to 2 minutes */
        if (test_file_exists(ROOT "/k/checkpoint.safetensors")) victim = find_rank(mark, 1);
        if (victim < 0) usleep(100 * 1000);
    }
    CHECK_MSG(victim > 0, "rank 1 of the job was not found running with a checkpoint");
    int status = 0;
    if (victim <= 0) {
        kill(job, SIGKILL);
        waitpid(job, &status, 0);
        show_log(ROOT "/k.log");
        return;
    }
    double t0 = seconds_now();
    CHECK(kill(victim, SIGKILL) == 0);
    CHECK(waitpid(job, &status, 0) == job);
    double took = seconds_now() - t0;
    printf("killed rank 1: the job ended %.1f s later\n", took);
    CHECK_MSG(took < 30, "the job ended %.1f s after its rank died", took);
    CHECK_MSG(!WIFEXITED(status) || WEXITSTATUS(status) != 0, "the job exited 0");
    metrics stopped = read_metrics(ROOT "/k");
    CHECK_MSG(stopped.rows >= 1 && stopped.rows < 20, "%d epochs before the kill", stopped.rows);

    /* The run resumed on another rank count, up to the epochs of the uninterrupted one. */
    snprintf(a, sizeof a, "%s --epochs 20 --out " ROOT "/k --resume", args);
    if (must_succeed(train(3, DATA, a, ROOT "/k_resume.log"), ROOT "/k_resume.log")) {
        char *log = slurp(ROOT "/k_resume.log");
        CHECK_MSG(log && strstr(log, "resuming"), "the run did not resume");
        free(log);
        check_same_metrics("killed, resumed on 3 ranks", ROOT "/k1", ROOT "/k1.log", ROOT "/k");
    }
}

int main(void) {
    if (!hs_dist_compiled()) CHECK_SKIP("this build has no MPI (cmake -DHS_MPI=ON)");
    /* Under AddressSanitizer the ranks unwind allocation stacks fully, so that Open MPI's
     * process-lifetime allocations reach the library frames tests/lsan.supp names (its
     * unloaded components' own frames are unknown). Ignored by other builds. */
    const char *asan = getenv("ASAN_OPTIONS");
    char options[1024];
    snprintf(options, sizeof options, "%s%sfast_unwind_on_malloc=0", asan ? asan : "",
             asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", options, 1);
    const char *custom = getenv("MPIRUN");
    if (custom && *custom) {
        snprintf(launcher, sizeof launcher, "%s", custom);
    } else {
        if (system("mpirun --version > /dev/null 2>&1") != 0)
            CHECK_SKIP("no mpirun on PATH (apt-get install openmpi-bin)");
        /* Open MPI's mpirun refuses root without the flag (CI runs as root) and more ranks
         * than cores without --oversubscribe; other launchers take neither. */
        int open_mpi = system("mpirun --version 2>&1 | grep -q 'Open MPI'") == 0;
        snprintf(launcher, sizeof launcher, "%s",
                 open_mpi ? "mpirun --allow-run-as-root --oversubscribe" : "mpirun");
    }
    test_require_lite0_weights();
    test_make_colour_classes(ROOT, DATA, class_names, IMAGES_PER_CLASS, 11);
    test_probe();
    test_lbfgs();
    test_finetune();
    test_overlap();
    test_bn_train();
    test_failing_rank();
    test_unshared_cache();
    test_killed_rank();
    return check_finish("test_mpi");
}
