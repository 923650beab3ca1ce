/* libFuzzer target: a run folder as predict/evaluate (hs_model_open) and train --resume
 * (hs_checkpoint_load) read it.
 *
 * The input is four parts separated by SEP: the identity the resuming run expects, run.json,
 * model.safetensors and checkpoint.safetensors (fuzz/make-checkpoint-corpus.sh makes seeds
 * from a tiny real run). The target writes the three files into a folder and reads them:
 *   - as hs_model_open does: hs_run_record_load, then hs_load_head into the head of an
 *     EfficientNet-Lite0 network with two classes (the seed run's). The network is built once,
 *     not per input as hs_model_open does: building it costs more than all the parsing, and
 *     its backbone is never read from the run folder;
 *   - as train --resume does: hs_checkpoint_load into an AdamW trainer of that head, or an SGD
 *     one when the identity says opt=sgd (the trainer decides which buffers must be there).
 * Any input must give a clean error or a loaded state, never a crash, a leak or an unbounded
 * allocation. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "head_train.h"
#include "net.h"
#include "run_record.h"

#define SEP "\n==headstart-fuzz==\n"
enum { PARTS = 4, CLASSES = 2, BATCH = 8 };

static const char *const file_names[PARTS] = {NULL, "run.json", "model.safetensors",
                                              "checkpoint.safetensors"};

typedef struct fixture {
    char dir[64];
    hs_net *net;
    hs_head_trainer adamw, sgd;
    hs_epoch_metrics *history; /* HS_MAX_EPOCHS rows, as hs_checkpoint_load requires */
} fixture;

static fixture *setup(void) {
    static fixture f;
    static int ready = 0;
    if (ready) return &f;
    hs_error err;
    snprintf(f.dir, sizeof f.dir, "/tmp/fuzz_checkpoint.XXXXXX");
    f.history = calloc(HS_MAX_EPOCHS, sizeof *f.history);
    if (!mkdtemp(f.dir) || !f.history ||
        hs_net_create("efficientnet_lite0", 0, &f.net, &err) ||
        hs_net_replace_head(f.net, CLASSES, HS_HEAD_LAST_LAYER, 0x5eed, &err) ||
        hs_head_trainer_init(&f.adamw, f.net, f.net->head_begin, BATCH, HS_OPTIMIZER_ADAMW,
                             1e-3f, 0.9f, 0.0f, &err) ||
        hs_head_trainer_init(&f.sgd, f.net, f.net->head_begin, BATCH, HS_OPTIMIZER_SGD, 1e-3f,
                             0.9f, 0.0f, &err))
        abort();
    ready = 1;
    return &f;
}

/* Splits data at the first PARTS - 1 separators; missing parts are empty. */
static void split(const uint8_t *data, size_t size, const uint8_t *part[PARTS],
                  size_t len[PARTS]) {
    size_t sep = strlen(SEP), at = 0;
    for (int i = 0; i < PARTS; i++) {
        part[i] = data + at;
        size_t end = size;
        if (i < PARTS - 1)
            for (size_t k = at; k + sep <= size; k++) /* memcmp only at a '\n': cheap */
                if (data[k] == '\n' && memcmp(data + k, SEP, sep) == 0) {
                    end = k;
                    break;
                }
        len[i] = end - at;
        at = end < size ? end + sep : size;
    }
}

/* A new file each time: truncating the old one makes ext4 flush it to disk on close
 * (auto_da_alloc), which cost nine tenths of the time. */
static void write_part(const char *path, const uint8_t *data, size_t size) {
    unlink(path);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fixture *f = setup();
    const uint8_t *part[PARTS];
    size_t len[PARTS];
    split(data, size, part, len);
    char path[PARTS][128];
    for (int i = 1; i < PARTS; i++) {
        snprintf(path[i], sizeof path[i], "%s/%s", f->dir, file_names[i]);
        write_part(path[i], part[i], len[i]);
    }
    char *identity = malloc(len[0] + 1);
    if (!identity) abort();
    memcpy(identity, part[0], len[0]);
    identity[len[0]] = '\0';

    hs_error err;
    hs_run_record record;
    if (hs_run_record_load(f->dir, &record, &err) == HS_OK) {
        hs_load_head(path[2], f->net, f->net->head_begin, &err);
        hs_run_record_free(&record);
    }
    hs_head_trainer *t = strstr(identity, "opt=sgd") ? &f->sgd : &f->adamw;
    int epochs_done = 0;
    hs_checkpoint_load(path[3], t, f->history, &epochs_done, identity, &err);
    free(identity);
    return 0;
}
