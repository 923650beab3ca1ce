/* Resume tells the truth. A run killed at each point of an epoch (a real SIGKILL of a child
 * process, at a stage the run reports through its stage callback) and then resumed ends
 * bit-identical to a run never stopped: same metrics, same head, same confusion matrix; for
 * SGD with momentum and for AdamW with dropout in the trained range. Around it: the run
 * identity that --resume checks, the independent RNG streams, checkpoints that always load,
 * and class names (the text every output holds) bounded where they enter.
 *
 * The data are test_train's tiny colour images with EfficientNet-Lite0's weights at 32 px. */
#include <archive.h>
#include <archive_entry.h>
#include <cairo.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"
#include "dataset.h"
#include "dataset_internal.h"
#include "fileutil.h"
#include "head_train.h"
#include "rng.h"
#include "run_record.h"
#include "colour_images.h"
#include "safetensors.h"
#include "test_util.h"

#define ROOT HS_TEST_TMP_DIR "/resume"
#define DATA ROOT "/colours"
#define EPOCHS 3

static const char *const class_names[] = {"blue", "green", "red"};
static void make_data(void) {
    test_make_colour_classes(ROOT, DATA, class_names, 12, 11);
}

/* SGD with momentum on the last layer, or AdamW with weight decay on Lite0's whole
 * classifier block: its dropout (p = 0.2) and _fc. Seed 0, where the old seeding made epoch
 * e's dropout stream epoch e + 1's shuffle stream. Float32 features: exact comparisons. */
static void config_for(hs_train_config *c, const char *optimizer, const char *out) {
    hs_train_config_defaults(c);
    c->data = DATA;
    c->img_size = 32;
    c->epochs = EPOCHS;
    c->batch_size = 8;
    c->seed = 0;
    c->out_dir = out;
    c->cache_dir = ROOT "/cache";
    c->feature_precision = "f32";
    if (strcmp(optimizer, "sgd") == 0) {
        c->optimizer = "sgd";
        c->lr = 0.02f;
        c->momentum = 0.9f;
    } else {
        c->optimizer = "adamw";
        c->lr = 0.003f;
        c->weight_decay = 0.01f;
        c->train_layers = "classifier";
    }
}

/* ---- Reading a run folder ------------------------------------------------------------------ */

static char *read_text(const char *dir, const char *file) {
    char path[1024], *text = NULL;
    size_t n = 0;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (hs_read_file(path, 1 << 24, &text, &n, NULL)) return NULL;
    return text;
}

/* metrics.csv without the seconds column, which differs between runs; "" when absent. */
static void read_metrics(const char *dir, char *out, size_t size) {
    char *text = read_text(dir, "metrics.csv");
    out[0] = '\0';
    if (!text) return;
    size_t used = 0;
    for (char *line = strtok(text, "\n"); line && used + 200 < size; line = strtok(NULL, "\n")) {
        char *last = strrchr(line, ',');
        if (last) *last = '\0';
        used += (size_t)snprintf(out + used, size - used, "%s\n", line);
    }
    free(text);
}

static int metrics_rows(const char *dir) {
    char text[8192];
    read_metrics(dir, text, sizeof text);
    int lines = 0;
    for (const char *p = text; *p; p++) lines += *p == '\n';
    return lines > 0 ? lines - 1 : 0;
}

static const char *json_string(const cJSON *o, const char *a, const char *b) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b) x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_IsString(x) ? x->valuestring : "";
}

/* run.json's status, and backbone.first_trained_layer into layer. */
static void read_record(const char *dir, char *status, char *layer, size_t size) {
    char *text = read_text(dir, "run.json");
    cJSON *root = cJSON_Parse(text ? text : "");
    snprintf(status, size, "%s", json_string(root, "status", NULL));
    snprintf(layer, size, "%s", json_string(root, "backbone", "first_trained_layer"));
    cJSON_Delete(root);
    free(text);
}

/* Every tensor of two safetensors files bit-identical. */
static int same_tensors(const char *a_dir, const char *b_dir, const char *file) {
    char a_path[1024], b_path[1024];
    snprintf(a_path, sizeof a_path, "%s/%s", a_dir, file);
    snprintf(b_path, sizeof b_path, "%s/%s", b_dir, file);
    if (!hs_path_exists(a_path) || !hs_path_exists(b_path)) return 0;
    hs_state_dict a, b;
    test_load_fixture(a_path, &a);
    test_load_fixture(b_path, &b);
    int same = a.count == b.count && a.count > 0;
    for (size_t i = 0; same && i < a.count; i++) {
        const hs_sd_entry *other = hs_sd_find(&b, a.entries[i].name);
        same = other && other->numel == a.entries[i].numel &&
               memcmp(other->data, a.entries[i].data,
                      (size_t)a.entries[i].numel * sizeof(float)) == 0;
    }
    hs_sd_free(&a);
    hs_sd_free(&b);
    return same;
}

/* The resumed run is the uninterrupted one: metrics, head and confusion matrix. */
static void check_same_run(const char *reference, const char *dir, const char *what) {
    char m1[8192], m2[8192];
    read_metrics(reference, m1, sizeof m1);
    read_metrics(dir, m2, sizeof m2);
    CHECK_MSG(metrics_rows(dir) == EPOCHS && strcmp(m1, m2) == 0, "%s:\n%s\nvs uninterrupted\n%s",
              what, m2, m1);
    CHECK_MSG(same_tensors(reference, dir, "model.safetensors"), "%s: the head differs", what);
    char *c1 = read_text(reference, "confusion.csv"), *c2 = read_text(dir, "confusion.csv");
    CHECK_MSG(c1 && c2 && strcmp(c1, c2) == 0, "%s: confusion.csv %s", what,
              c2 ? "differs" : "is missing");
    free(c1);
    free(c2);
    char status[64], layer[64], png[1024];
    read_record(dir, status, layer, sizeof status);
    CHECK_MSG(strcmp(status, "completed") == 0, "%s: run.json says '%s'", what, status);
    for (const char *f = "accuracy.png\0loss.png\0confusion.png\0"; *f; f += strlen(f) + 1) {
        snprintf(png, sizeof png, "%s/%s", dir, f);
        CHECK_MSG(hs_path_exists(png), "%s: no %s", what, png);
    }
}

/* ---- Killing a run at a stage -------------------------------------------------------------- */

typedef struct kill_point {
    const char *stage;
    int epoch, step;
} kill_point;

static void kill_at_stage(void *ctx, const char *stage, int epoch, int step) {
    const kill_point *k = ctx;
    if (strcmp(stage, k->stage) == 0 && epoch == k->epoch && step == k->step) raise(SIGKILL);
}

/* The child: argv = --child OPTIMIZER STAGE EPOCH STEP OUT. Runs the job and dies at the
 * stage; returning means the stage never came (exit 3). */
static int child_main(char **argv) {
    kill_point k = {argv[3], atoi(argv[4]), atoi(argv[5])};
    hs_train_config c;
    config_for(&c, argv[2], argv[6]);
    hs_train_callbacks cb = {0};
    cb.ctx = &k;
    cb.stage = kill_at_stage;
    hs_train_result r;
    hs_error err = {0};
    hs_status st = hs_train(&c, &cb, &r, &err);
    fprintf(stderr, "child: the run ended (%d: %s) without reaching %s of epoch %d\n", st,
            err.message, k.stage, k.epoch);
    return 3;
}

/* Runs the job in a fresh process (fork, then exec of this program: nothing of this
 * process's thread pools is inherited) that SIGKILLs itself at the stage. */
static void run_killed(const char *optimizer, kill_point k, const char *out) {
    char command[1200], epoch[16], step[16];
    snprintf(command, sizeof command, "rm -rf '%s'", out);
    CHECK(system(command) == 0);
    snprintf(epoch, sizeof epoch, "%d", k.epoch);
    snprintf(step, sizeof step, "%d", k.step);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", "test_resume", "--child", optimizer, k.stage, epoch, step, out,
              (char *)NULL);
        _exit(127);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "%s at %s of epoch %d: the child was not killed (status %d)", optimizer, k.stage,
              k.epoch, status);
}

typedef struct notes {
    char text[4096];
} notes;

static void keep_note(void *ctx, const char *message) {
    notes *n = ctx;
    size_t used = strlen(n->text);
    snprintf(n->text + used, sizeof n->text - used, "%s\n", message);
}

static void test_kills(const char *optimizer) {
    char reference[256];
    snprintf(reference, sizeof reference, ROOT "/%s_uninterrupted", optimizer);
    hs_train_config c;
    config_for(&c, optimizer, reference);
    hs_train_result r;
    hs_error err = {0};
    CHECK_MSG(hs_train(&c, NULL, &r, &err) == HS_OK, "%s", err.message);
    CHECK(r.epochs_run == EPOCHS);
    char status[64], layer[64];
    read_record(reference, status, layer, sizeof status);
    /* AdamW's run has a dropout layer in its trained range: its masks must be replayed. */
    const char *first = strcmp(optimizer, "sgd") == 0 ? "_fc" : "_dropout";
    CHECK_MSG(strcmp(layer, first) == 0, "%s: first trained layer %s", optimizer, layer);

    const kill_point points[] = {
        {"train step", 2, 3},         /* in the middle of an epoch's training */
        {"validation", 2, 0},         /* after training, before validation */
        {"checkpoint written", 2, 0}, /* before the epoch's metrics.csv and plots */
        {"checkpoint written", EPOCHS, 0}, /* the same in the last epoch: nothing left to train */
        {"outputs written", EPOCHS, 0},    /* before confusion.csv and model.safetensors */
    };
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        char dir[256], what[256];
        snprintf(dir, sizeof dir, ROOT "/%s_killed_%zu", optimizer, i);
        snprintf(what, sizeof what, "%s killed at %s of epoch %d", optimizer, points[i].stage,
                 points[i].epoch);
        run_killed(optimizer, points[i], dir);
        /* Where it died: the epochs whose checkpoint was written, and their rows only when
         * the outputs were written too. */
        int saved = points[i].epoch - (strcmp(points[i].stage, "train step") == 0 ||
                                       strcmp(points[i].stage, "validation") == 0);
        int rows = strcmp(points[i].stage, "checkpoint written") == 0 ? saved - 1 : saved;
        CHECK_MSG(metrics_rows(dir) == rows, "%s: %d rows before resuming, expected %d", what,
                  metrics_rows(dir), rows);
        config_for(&c, optimizer, dir);
        c.resume = 1;
        notes n = {{0}};
        hs_train_callbacks cb = {0};
        cb.ctx = &n;
        cb.note = keep_note;
        CHECK_MSG(hs_train(&c, &cb, &r, &err) == HS_OK, "%s: %s", what, err.message);
        char expect[64];
        snprintf(expect, sizeof expect, "after epoch %d", saved);
        CHECK_MSG(strstr(n.text, expect) != NULL, "%s: %s", what, n.text);
        CHECK(r.epochs_run == EPOCHS);
        check_same_run(reference, dir, what);
    }

    /* Killed before its first epoch ended: no checkpoint, but run.json. A plain rerun is
     * refused, naming both ways on; --resume starts it from epoch 1 and says so. */
    char dir[256];
    snprintf(dir, sizeof dir, ROOT "/%s_killed_first", optimizer);
    run_killed(optimizer, (kill_point){"train step", 1, 2}, dir);
    char path[512];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    CHECK(!hs_path_exists(path));
    config_for(&c, optimizer, dir);
    CHECK(hs_train(&c, NULL, &r, &err) == HS_ERR_EXISTS);
    CHECK_MSG(strstr(err.message, "--resume") && strstr(err.message, "--overwrite"), "%s",
              err.message);
    c.resume = 1;
    notes n = {{0}};
    hs_train_callbacks cb = {0};
    cb.ctx = &n;
    cb.note = keep_note;
    CHECK_MSG(hs_train(&c, &cb, &r, &err) == HS_OK, "%s", err.message);
    CHECK_MSG(strstr(n.text, "starting it from epoch 1") != NULL, "%s", n.text);
    check_same_run(reference, dir, "killed before epoch 1");
}

/* Ctrl-C (the stop flag) in the middle of epoch 2: the run stops after that step with
 * HS_ERR_INTERRUPTED, run.json says so, and --resume ends where the uninterrupted run did. */
typedef struct stopper {
    volatile int flag;
} stopper;

static void stop_at_step(void *ctx, const char *stage, int epoch, int step) {
    stopper *s = ctx;
    if (strcmp(stage, "train step") == 0 && epoch == 2 && step == 2) s->flag = 1;
}

static void test_stop_flag(void) {
    const char *dir = ROOT "/sgd_stopped";
    hs_train_config c;
    config_for(&c, "sgd", dir);
    stopper s = {0};
    hs_train_callbacks cb = {0};
    cb.ctx = &s;
    cb.stage = stop_at_step;
    cb.stop = &s.flag;
    hs_train_result r;
    hs_error err = {0};
    CHECK(hs_train(&c, &cb, &r, &err) == HS_ERR_INTERRUPTED);
    CHECK(r.epochs_run == 1 && metrics_rows(dir) == 1);
    char status[64], layer[64];
    read_record(dir, status, layer, sizeof status);
    CHECK_MSG(strcmp(status, "interrupted") == 0, "run.json says '%s'", status);
    config_for(&c, "sgd", dir);
    c.resume = 1;
    CHECK_MSG(hs_train(&c, NULL, &r, &err) == HS_OK, "%s", err.message);
    check_same_run(ROOT "/sgd_uninterrupted", dir, "stopped by the flag in epoch 2");
}

/* --resume of a folder that holds no run is an error; a plain run into an existing folder
 * that holds no run is fine (it is not refused for the user's other files). */
static void test_resume_rules(void) {
    hs_train_config c;
    hs_train_result r;
    hs_error err = {0};
    CHECK(hs_make_dirs(ROOT "/empty", NULL) == HS_OK);
    CHECK(system("echo mine > " ROOT "/empty/notes.txt") == 0);
    config_for(&c, "sgd", ROOT "/empty");
    c.epochs = 1;
    c.resume = 1;
    CHECK(hs_train(&c, NULL, &r, &err) == HS_ERR_ARGUMENT);
    CHECK_MSG(strstr(err.message, "no run to resume") != NULL, "%s", err.message);
    c.resume = 0;
    CHECK_MSG(hs_train(&c, NULL, &r, &err) == HS_OK, "%s", err.message);
    CHECK(hs_path_exists(ROOT "/empty/notes.txt"));
}

/* ---- The identity --resume checks ---------------------------------------------------------- */

static void test_identity(void) {
    const char *dir = ROOT "/sgd_uninterrupted"; /* finished: a resume only rewrites outputs */
    hs_train_config c;
    hs_train_result r;
    hs_error err = {0};
    /* A learning rate that differs past the 6th digit is another run. */
    config_for(&c, "sgd", dir);
    c.resume = 1;
    c.lr = nextafterf(0.02f, 1.0f);
    CHECK(hs_train(&c, NULL, &r, &err) == HS_ERR_MISMATCH);
    CHECK_MSG(strstr(err.message, "lr=0.02 then, lr=0.020000001 now") != NULL, "%s",
              err.message);
    /* The same number of images of the same classes, but one of them other. */
    CHECK(system("rm -rf " ROOT "/other && cp -r " DATA " " ROOT "/other && cp " DATA
                 "/red/00.png " ROOT "/other/red/01.png") == 0);
    config_for(&c, "sgd", dir);
    c.resume = 1;
    c.data = ROOT "/other";
    CHECK(hs_train(&c, NULL, &r, &err) == HS_ERR_MISMATCH);
    CHECK_MSG(strstr(err.message, "files=") != NULL, "%s", err.message);
    /* The same files named another way are the same data. */
    config_for(&c, "sgd", dir);
    c.resume = 1;
    c.data = ROOT "/./colours";
    CHECK_MSG(hs_train(&c, NULL, &r, &err) == HS_OK, "%s", err.message);
}

/* The shuffle and dropout streams of every (seed, epoch) are unrelated: with the old seeding,
 * seed 0's dropout stream of epoch e was its shuffle stream of epoch e + 1. */
static void permutation(hs_rng *rng, int n, int *order) {
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)hs_rng_below(rng, (uint64_t)i + 1);
        int swap = order[i];
        order[i] = order[j];
        order[j] = swap;
    }
}

static void test_streams(void) {
    enum { N = 64, SEEDS = 4, EPOCHS_SEEN = 6 };
    static int shuffles[SEEDS][EPOCHS_SEEN][N], dropouts[SEEDS][EPOCHS_SEEN][N];
    for (int s = 0; s < SEEDS; s++)
        for (int e = 0; e < EPOCHS_SEEN; e++) {
            hs_head_trainer t;
            memset(&t, 0, sizeof t);
            hs_head_trainer_begin_epoch(&t, (uint64_t)s, e + 1, N, shuffles[s][e]);
            permutation(&t.dropout_rng, N, dropouts[s][e]);
            /* A replay gives the same shuffle (what resume relies on). */
            int again[N];
            hs_head_trainer_begin_epoch(&t, (uint64_t)s, e + 1, N, again);
            CHECK(memcmp(again, shuffles[s][e], sizeof again) == 0);
        }
    int shared = 0;
    for (int s = 0; s < SEEDS; s++)
        for (int e = 0; e < EPOCHS_SEEN; e++)
            for (int s2 = 0; s2 < SEEDS; s2++)
                for (int e2 = 0; e2 < EPOCHS_SEEN; e2++) {
                    shared += memcmp(dropouts[s][e], shuffles[s2][e2], sizeof(int) * N) == 0;
                    if (s != s2 || e != e2)
                        shared += memcmp(shuffles[s][e], shuffles[s2][e2], sizeof(int) * N) == 0;
                }
    CHECK_MSG(shared == 0, "%d pairs of streams are the same", shared);
}

/* ---- Checkpoints that load ----------------------------------------------------------------- */

static void test_checkpoint_values(void) {
    hs_net *net = NULL;
    hs_error err = {0};
    CHECK(hs_net_create("efficientnet_lite0", 1, &net, &err) == HS_OK);
    CHECK(hs_net_replace_head(net, 3, HS_HEAD_LAST_LAYER, 1, &err) == HS_OK);
    hs_head_trainer t;
    CHECK(hs_head_trainer_init(&t, net, net->head_begin, 4, HS_OPTIMIZER_ADAMW, 0.01f, 0.9f,
                               0.0f, &err) == HS_OK);
    hs_epoch_metrics history[2] = {{1, 1.5, 40.0, 1.25, 50.0, 0.1},
                                   {2, 1.0 / 3.0, 60.0, 0.1 + 0.2, 2.0 / 3.0 * 100, 0.2}};
    const char *path = ROOT "/values.safetensors";
    CHECK(hs_checkpoint_save(path, &t, history, 2, "identity=1", &err) == HS_OK);
    hs_epoch_metrics *back = calloc(HS_MAX_EPOCHS, sizeof *back);
    int done = 0;
    CHECK_MSG(hs_checkpoint_load(path, &t, back, &done, "identity=1", &err) == HS_OK, "%s",
              err.message);
    CHECK(done == 2);
    for (int i = 0; i < 2; i++) /* every double exact */
        CHECK(back[i].epoch == history[i].epoch && back[i].train_loss == history[i].train_loss &&
              back[i].train_acc == history[i].train_acc &&
              back[i].val_loss == history[i].val_loss && back[i].val_acc == history[i].val_acc &&
              back[i].seconds == history[i].seconds);
    /* A NaN validation loss cannot be saved: cJSON would write null, which no loader reads. */
    history[1].val_loss = NAN;
    unlink(ROOT "/nan.safetensors");
    CHECK(hs_checkpoint_save(ROOT "/nan.safetensors", &t, history, 2, "identity=1", &err) ==
          HS_ERR_DIVERGED);
    CHECK_MSG(strstr(err.message, "validation loss of epoch 2") != NULL, "%s", err.message);
    CHECK(!hs_path_exists(ROOT "/nan.safetensors"));

    /* Counts and rows the loader must refuse rather than convert (atoi, (int)1e300). */
    const char *bad[][3] = {
        {"99999999999999999999", "1", "[[1,1,1,1,1,1]]"}, {"1", "-5", "[[1,1,1,1,1,1]]"},
        {"1 ", "1", "[[1,1,1,1,1,1]]"}, {"1", "1", "[[1e300,1,1,1,1,1]]"},
        {"1", "1", "[[2,1,1,1,1,1]]"}, {"1", "1", "[[1,1,1,1,1,1e999]]"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hs_state_dict empty;
        hs_sd_init(&empty);
        hs_kv meta[] = {{"format", "headstart-checkpoint-2"}, {"identity", "identity=1"},
                        {"epochs_done", bad[i][0]}, {"optimizer_steps", bad[i][1]},
                        {"metrics", bad[i][2]}};
        CHECK(hs_safetensors_save(ROOT "/forged.safetensors", &empty, meta, 5, &err) == HS_OK);
        hs_status st = hs_checkpoint_load(ROOT "/forged.safetensors", &t, back, &done,
                                          "identity=1", &err);
        CHECK_MSG(st == HS_ERR_FORMAT, "%s / %s / %s: %d (%s)", bad[i][0], bad[i][1],
                  bad[i][2], st, err.message);
        hs_sd_free(&empty);
    }

    /* JSON values are bounded before cJSON parses them (about 80 bytes a value). A header of
     * a million numbers, under an identity of another run: once parsed whole (85 MB) and
     * refused as that mismatch. */
    size_t values = HS_ST_MAX_JSON_VALUES + 1, len = 0;
    char *header = malloc(2 * values + 256);
    len += (size_t)sprintf(header, "{\"__metadata__\":{\"format\":\"headstart-checkpoint-2\","
                           "\"identity\":\"other\"},\"pad\":[0");
    for (size_t i = 1; i < values; i++) len += (size_t)sprintf(header + len, ",0");
    len += (size_t)sprintf(header + len, "]}");
    FILE *f = fopen(ROOT "/many_values.safetensors", "wb");
    uint8_t size_bytes[8];
    for (int i = 0; i < 8; i++) size_bytes[i] = (uint8_t)((uint64_t)len >> (8 * i));
    CHECK(f && fwrite(size_bytes, 1, 8, f) == 8 && fwrite(header, 1, len, f) == len &&
          fclose(f) == 0);
    free(header);
    hs_status st = hs_checkpoint_load(ROOT "/many_values.safetensors", &t, back, &done,
                                      "identity=1", &err);
    CHECK_MSG(st == HS_ERR_NOMEM && strstr(err.message, "more JSON values"), "%d (%s)", st,
              err.message);
    /* The metrics history of one epoch holds 7 values; a thousand more are not parsed. */
    char metrics[4096] = "[[1,1,1,1,1,1]";
    for (int i = 0; i < 1000; i++) strcat(metrics, ",0");
    strcat(metrics, "]");
    hs_state_dict empty;
    hs_sd_init(&empty);
    hs_kv meta[] = {{"format", "headstart-checkpoint-2"}, {"identity", "identity=1"},
                    {"epochs_done", "1"}, {"optimizer_steps", "1"}, {"metrics", metrics}};
    CHECK(hs_safetensors_save(ROOT "/long_history.safetensors", &empty, meta, 5, &err) == HS_OK);
    st = hs_checkpoint_load(ROOT "/long_history.safetensors", &t, back, &done, "identity=1", &err);
    CHECK_MSG(st == HS_ERR_FORMAT && strstr(err.message, "more values than 1 epochs have"),
              "%d (%s)", st, err.message);
    /* The longest history (HS_MAX_EPOCHS rows) is read in one pass: walked by index it took
     * 5e9 list steps (82 s here), before the load went on. Only the tensors are missing. */
    char *rows = malloc((size_t)HS_MAX_EPOCHS * 40 + 4);
    size_t at = (size_t)sprintf(rows, "[");
    for (int i = 1; i <= HS_MAX_EPOCHS; i++)
        at += (size_t)sprintf(rows + at, "%s[%d,1,1,1,1,1]", i > 1 ? "," : "", i);
    strcpy(rows + at, "]");
    char epochs[16];
    snprintf(epochs, sizeof epochs, "%d", HS_MAX_EPOCHS);
    meta[2].value = epochs;
    meta[4].value = rows;
    CHECK(hs_safetensors_save(ROOT "/longest_history.safetensors", &empty, meta, 5, &err) ==
          HS_OK);
    free(rows);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = hs_checkpoint_load(ROOT "/longest_history.safetensors", &t, back, &done, "identity=1",
                            &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    printf("test_resume: a checkpoint of %d epochs' history read in %.3f s\n", HS_MAX_EPOCHS,
           seconds);
    CHECK_MSG(st == HS_ERR_MISMATCH && strstr(err.message, "has no "), "%d (%s)", st,
              err.message);
    CHECK_MSG(seconds < 10.0, "%.1f s to read %d epochs' history", seconds, HS_MAX_EPOCHS);
    free(back);
    hs_head_trainer_free(&t);
    hs_net_free(net);
}

/* ---- The class count, bounded where it enters ---------------------------------------------- */

/* A run.json of `classes` names "c<i>", with `padding` more numbers in an extra array. */
static void write_run_json(const char *dir, int classes, int padding) {
    CHECK(hs_make_dirs(dir, NULL) == HS_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/run.json", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "{\"format_version\": %d, \"backbone\": {\"name\": \"efficientnet_lite0\", "
            "\"weights\": \"w.pth\", \"weights_sha256\": \"00\", \"seed\": 1}, "
            "\"preprocessing\": {\"img_size\": 32, \"mean\": [0.5, 0.5, 0.5], "
            "\"std\": [0.5, 0.5, 0.5]}, \"options\": {\"train_layers\": \"head\"}, "
            "\"padding\": [0", HS_RUN_FORMAT_VERSION);
    for (int i = 0; i < padding; i++) fputs(",0", f);
    fputs("], \"classes\": [", f);
    for (int i = 0; i < classes; i++) fprintf(f, "%s\"c%d\"", i ? "," : "", i);
    fputs("]}\n", f);
    CHECK(fclose(f) == 0);
}

/* The head is classes x 1280 floats and the confusion matrix classes^2 counts: the count is
 * checked where it enters (the data set, run.json, the head itself), with an error naming it
 * and the limit. */
static void test_class_limit(void) {
    hs_error err = {0};
    hs_run_record record;
    write_run_json(ROOT "/limit_ok", HS_MAX_CLASSES, 0);
    CHECK_MSG(hs_run_record_load(ROOT "/limit_ok", &record, &err) == HS_OK, "%s", err.message);
    CHECK(record.class_count == HS_MAX_CLASSES && strcmp(record.classes[HS_MAX_CLASSES - 1],
                                                         "c16383") == 0);
    hs_run_record_free(&record);
    write_run_json(ROOT "/limit_over", HS_MAX_CLASSES + 1, 0);
    CHECK(hs_run_record_load(ROOT "/limit_over", &record, &err) == HS_ERR_FORMAT);
    CHECK_MSG(strstr(err.message, "names 16385 classes, over the limit of 16384"), "%s",
              err.message);
    /* Values beyond what a run record of HS_MAX_CLASSES names holds: refused before parsing. */
    write_run_json(ROOT "/limit_values", 2, HS_MAX_CLASSES + 5000);
    CHECK(hs_run_record_load(ROOT "/limit_values", &record, &err) == HS_ERR_FORMAT);
    CHECK_MSG(strstr(err.message, "more JSON values than a run record"), "%s", err.message);

    hs_net *net = NULL;
    CHECK(hs_net_create("efficientnet_lite0", 1, &net, &err) == HS_OK);
    CHECK(hs_net_replace_head(net, HS_MAX_CLASSES + 1, HS_HEAD_LAST_LAYER, 1, &err) ==
          HS_ERR_ARGUMENT);
    CHECK_MSG(strstr(err.message, "16385 classes is over the limit of 16384"), "%s", err.message);
    hs_net_free(net);

    /* A 17 MB .tar of 16,385 class folders holding one empty .png each. */
    struct archive *a = archive_write_new();
    archive_write_set_format_ustar(a);
    CHECK(archive_write_open_filename(a, ROOT "/many_classes.tar") == ARCHIVE_OK);
    for (int c = 0; c <= HS_MAX_CLASSES; c++) {
        char member[64];
        snprintf(member, sizeof member, "c%05d/0.png", c);
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, member);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, 0);
        CHECK(archive_write_header(a, e) == ARCHIVE_OK);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    hs_dataset train, val;
    hs_dataset_options o = {0.5, 0, 0, 0};
    hs_status st = hs_dataset_open(ROOT "/many_classes.tar", &o, &train, &val, &err);
    CHECK_MSG(st == HS_ERR_ARGUMENT && strstr(err.message, "has 16385 classes, over the limit "
              "of 16384"), "%d (%s)", st, err.message);
    hs_dataset_free(&train); /* on failure too, as hs_dataset_open asks */
    hs_dataset_free(&val);
    unlink(ROOT "/many_classes.tar");
}

/* One step per epoch at an absurd rate: the step's loss is finite, the head it leaves is
 * not, so the validation loss of epoch 1 is NaN. The run stops there, saying so, and writes
 * no checkpoint the loader would refuse (nor claims one). */
static void test_validation_diverges(void) {
    hs_train_config c;
    config_for(&c, "sgd", ROOT "/val_nan");
    c.batch_size = 64;
    c.momentum = 0;
    c.lr = 1e38f;
    hs_train_result r;
    hs_error err = {0};
    CHECK(hs_train(&c, NULL, &r, &err) == HS_ERR_DIVERGED);
    CHECK_MSG(strstr(err.message, "validation loss after epoch 1") != NULL, "%s", err.message);
    CHECK(!hs_path_exists(ROOT "/val_nan/checkpoint.safetensors"));
    CHECK(r.epochs_run == 0);
}

/* ---- Class names of any length ------------------------------------------------------------- */

static uint8_t *png_bytes(int cls, size_t *size) {
    hs_rng rng;
    hs_rng_seed(&rng, (uint64_t)cls);
    test_write_colour_image(ROOT "/one.png", cls % 3, &rng);
    char *data = NULL;
    CHECK(hs_read_file(ROOT "/one.png", 1 << 20, &data, size, NULL) == HS_OK);
    return (uint8_t *)data;
}

/* A .tar (pax: member paths of any length) of count classes with 3 images each. */
static void make_tar(const char *out, char *const *names, int count) {
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    CHECK(archive_write_open_filename(a, out) == ARCHIVE_OK);
    for (int c = 0; c < count; c++)
        for (int i = 0; i < 3; i++) {
            size_t n = 0;
            uint8_t *bytes = png_bytes(c * 3 + i, &n);
            size_t length = strlen(names[c]) + 16;
            char *member = malloc(length);
            snprintf(member, length, "%s/%d.png", names[c], i);
            struct archive_entry *e = archive_entry_new();
            archive_entry_set_pathname(e, member);
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 0644);
            archive_entry_set_size(e, (la_int64_t)n);
            archive_entry_set_mtime(e, 1700000000, 0);
            CHECK(archive_write_header(a, e) == ARCHIVE_OK);
            CHECK(archive_write_data(a, bytes, n) == (la_ssize_t)n);
            archive_entry_free(e);
            free(member);
            free(bytes);
        }
    archive_write_close(a);
    archive_write_free(a);
}

static char *repeated(const char *pattern, size_t length) {
    char *s = malloc(length + 1);
    for (size_t i = 0; i < length; i++) s[i] = pattern[i % strlen(pattern)];
    s[length] = '\0';
    return s;
}

static void train_tar(const char *tar, const char *out, int epochs, hs_train_result *r,
                      hs_status expect, hs_error *err) {
    hs_train_config c;
    config_for(&c, "sgd", out);
    c.data = tar;
    c.epochs = epochs;
    hs_status st = hs_train(&c, NULL, r, err);
    CHECK_MSG(st == expect, "%s: %d (%s), expected %d", tar, st, err->message, expect);
}

static void test_long_class_names(void) {
    hs_train_result r;
    hs_error err = {0};
    /* 6,000-byte class folders: once 24 KB written into confusion.csv's 2.6 KB buffer. */
    char *huge[] = {repeated("a", 6000), repeated("b", 6000), "c"};
    make_tar(ROOT "/huge.tar", huge, 3);
    train_tar(ROOT "/huge.tar", ROOT "/huge_run", 1, &r, HS_ERR_FORMAT, &err);
    CHECK_MSG(strstr(err.message, "is 6000 bytes long; class names are at most 255 bytes") &&
              strstr(err.message, "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'") &&
              strlen(err.message) < 300, "%s", err.message);
    CHECK(!hs_path_exists(ROOT "/huge_run")); /* refused before any output */

    /* 255 bytes is allowed, quotes and commas included (the CSV doubles the quotes). */
    char *longest[] = {repeated("q,\"", 255), repeated("b", 255)};
    make_tar(ROOT "/longest.tar", longest, 2);
    train_tar(ROOT "/longest.tar", ROOT "/longest_run", 1, &r, HS_OK, &err);
    char *csv = read_text(ROOT "/longest_run", "confusion.csv");
    char *quoted = repeated("q,\"\"", 340), expect[1200];
    snprintf(expect, sizeof expect, "true\\predicted,%s,\"%s\"\n%s,", longest[1], quoted,
             longest[1]); /* sorted: b... before q... */
    CHECK_MSG(csv && strncmp(csv, expect, strlen(expect)) == 0, "%.700s\nexpected\n%s",
              csv ? csv : "(no confusion.csv)", expect);
    free(csv);
    free(quoted);
    /* predict and evaluate read the names back from run.json: bounded there too. */
    hs_run_record record;
    CHECK_MSG(hs_run_record_load(ROOT "/longest_run", &record, &err) == HS_OK, "%s", err.message);
    hs_run_record_free(&record);
    char *text = read_text(ROOT "/longest_run", "run.json");
    cJSON *root = cJSON_Parse(text ? text : "");
    char *name_300 = repeated("r", 300);
    cJSON_ReplaceItemInArray(cJSON_GetObjectItem(root, "classes"), 1, cJSON_CreateString(name_300));
    char *edited = cJSON_Print(root);
    FILE *f = fopen(ROOT "/longest_run/run.json", "w");
    CHECK(f && edited && fputs(edited, f) >= 0 && fclose(f) == 0);
    CHECK(hs_run_record_load(ROOT "/longest_run", &record, &err) == HS_ERR_FORMAT);
    CHECK_MSG(strstr(err.message, "class 1 is not a name of at most 255 bytes") != NULL, "%s",
              err.message);
    free(edited);
    free(name_300);
    cJSON_Delete(root);
    free(text);
    char *too_long[] = {repeated("x", 256), "y"};
    make_tar(ROOT "/too_long.tar", too_long, 2);
    train_tar(ROOT "/too_long.tar", ROOT "/too_long_run", 1, &r, HS_ERR_FORMAT, &err);
    CHECK_MSG(strstr(err.message, "is 256 bytes long") != NULL, "%s", err.message);

    /* A folder: the file system allows 255 bytes; so does headstart. */
    char folder[600];
    snprintf(folder, sizeof folder, ROOT "/long_folder/%s", longest[1]);
    CHECK(hs_make_dirs(folder, NULL) == HS_OK);
    CHECK(hs_make_dirs(ROOT "/long_folder/short", NULL) == HS_OK);
    char command[1400];
    snprintf(command, sizeof command, "cp " DATA "/red/0*.png '%s' && cp " DATA
             "/blue/0*.png " ROOT "/long_folder/short", folder);
    CHECK(system(command) == 0);
    hs_dataset train, val;
    hs_dataset_options o = {0.2, 0, 0, 0};
    CHECK_MSG(hs_dataset_open(ROOT "/long_folder", &o, &train, &val, &err) == HS_OK, "%s",
              err.message);
    CHECK(train.class_count == 2 && strlen(train.class_names[0]) == 255);
    hs_dataset_free(&train);
    hs_dataset_free(&val);

    /* 17 names of 255 bytes: more than the run identity's old 4,096 bytes held, so two data
     * sets that differed only in the last name resumed each other's run. */
    char *many[17];
    for (int i = 0; i < 17; i++) {
        many[i] = repeated("n", 255);
        many[i][0] = (char)('A' + i);
    }
    make_tar(ROOT "/many_a.tar", many, 17);
    train_tar(ROOT "/many_a.tar", ROOT "/many_run", 1, &r, HS_OK, &err);
    many[16][254] = 'z';
    make_tar(ROOT "/many_b.tar", many, 17);
    hs_train_config c;
    config_for(&c, "sgd", ROOT "/many_run");
    c.data = ROOT "/many_b.tar";
    c.epochs = 2;
    c.resume = 1;
    CHECK(hs_train(&c, NULL, &r, &err) == HS_ERR_MISMATCH);
    for (int i = 0; i < 17; i++) free(many[i]);

    /* CIFAR's batches.meta.txt: one line per class name, bounded the same way. */
    char *line = repeated("m", 300);
    char **names = NULL;
    int count = 0;
    CHECK(hs_cifar_parse_meta(line, 300, "batches.meta.txt", &names, &count, &err) ==
          HS_ERR_FORMAT);
    CHECK_MSG(strstr(err.message, "is 300 bytes long") != NULL, "%s", err.message);
    free(line);
    for (int i = 0; i < 2; i++) free(huge[i]);
    for (int i = 0; i < 2; i++) free(longest[i]);
    free(too_long[0]);
}

/* metrics.csv rows as long as their numbers: %.6f of 1e300 is more than 300 digits. */
static void test_metrics_text(void) {
    hs_epoch_metrics history[3];
    for (int i = 0; i < 3; i++) history[i] = (hs_epoch_metrics){i + 1, 1e300, 1e300, 1e300,
                                                                1e300, 1e300};
    hs_error err = {0};
    CHECK(hs_write_metrics_csv(ROOT "/big_metrics.csv", history, 3, &err) == HS_OK);
    char *text = NULL;
    size_t n = 0;
    CHECK(hs_read_file(ROOT "/big_metrics.csv", 1 << 20, &text, &n, NULL) == HS_OK);
    int rows = 0;
    for (char *row = text ? strtok(text, "\n") : NULL; row; row = strtok(NULL, "\n"), rows++) {
        if (rows == 0) continue;
        char *end = NULL;
        CHECK(strtol(row, &end, 10) == rows && *end == ',');
        CHECK(strtod(end + 1, &end) == 1e300 && *end == ',');
        CHECK(strlen(row) > 5 * 300);
    }
    CHECK(rows == 4);
    free(text);
}

int main(int argc, char **argv) {
    if (argc == 7 && strcmp(argv[1], "--child") == 0) return child_main(argv);
    test_require_lite0_weights();
    make_data();
    test_streams();
    test_metrics_text();
    test_checkpoint_values();
    test_class_limit();
    test_kills("sgd");
    test_kills("adamw");
    test_stop_flag();
    test_resume_rules();
    test_identity();
    test_validation_diverges();
    test_long_class_names();
    return check_finish("test_resume");
}
