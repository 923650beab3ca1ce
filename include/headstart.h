/* headstart: transfer learning for image classification, in C.
 *
 * The one public header. Handles are opaque; functions return an hs_status and, on failure,
 * fill the caller's hs_error with a one-line message that says what went wrong and where.
 * The library never prints and never exits: only the command line tool does.
 *
 * Threads: every call spreads its own work over the cores (OpenMP, oneDNN; the run's --threads
 * or hs_train_config.threads). Calls into the library run one at a time per process: they
 * share one oneDNN engine and stream, and training shares the bf16 convolutions' conversion
 * buffers, all process-wide. Handles may be passed between threads between calls.
 */
#ifndef HEADSTART_H
#define HEADSTART_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HEADSTART_VERSION "0.1.0"

/* Every failure has a distinct code; the CLI maps each to its own exit status. */
typedef enum hs_status {
    HS_OK = 0,
    HS_ERR_ARGUMENT = 2,   /* a caller passed an invalid value (unknown backbone, bad size) */
    HS_ERR_IO = 3,         /* a file could not be opened, read or written */
    HS_ERR_FORMAT = 4,     /* a file is truncated, corrupt or of an unsupported layout */
    HS_ERR_UNSAFE = 5,     /* a pickle asked for a global outside the state-dict allow-list */
    HS_ERR_NOMEM = 6,      /* an allocation failed or a size exceeds our limits */
    HS_ERR_MISMATCH = 7,   /* weights do not fit the network (missing keys, shapes) */
    HS_ERR_NOT_FOUND = 8,  /* pretrained weights or another needed file are not present */
    HS_ERR_IMAGE = 9,      /* an image could not be decoded or is too large */
    HS_ERR_INTERNAL = 10,  /* a bug: an invariant of headstart itself did not hold */
    HS_ERR_DIVERGED = 12,  /* training produced a NaN or infinite loss */
    HS_ERR_INTERRUPTED = 13, /* stopped by Ctrl-C or SIGTERM after saving */
    HS_ERR_EXISTS = 14     /* an output folder already holds a run */
} hs_status;

#define HS_ERROR_MESSAGE_SIZE 1024

typedef struct hs_error {
    hs_status code;
    char message[HS_ERROR_MESSAGE_SIZE];
} hs_error;

/* A short stable name for a status ("format", "unsafe", ...). */
const char *hs_status_name(hs_status status);

/* ---- Backbones ------------------------------------------------------------------------- */

/* The resize filter, each pixel-exact with Pillow's (which torchvision uses on PIL images):
 * antialiased when shrinking (the support widens by the downscale factor). */
typedef enum hs_interpolation {
    HS_INTERP_BILINEAR = 0, /* PIL's BILINEAR: triangle, support 1 (torchvision's default) */
    HS_INTERP_BICUBIC = 1   /* PIL's BICUBIC: cubic convolution, support 2, a = -0.5 */
} hs_interpolation;

/* "bilinear" or "bicubic". */
const char *hs_interpolation_name(hs_interpolation interpolation);
/* Parses a name as timm and torchvision spell it ("bilinear", "bicubic"); 0 when unknown. */
int hs_interpolation_parse(const char *name, hs_interpolation *out);

/* How images are prepared for a backbone: the shorter side is resized to resize_size with
 * the interpolation's filter, the centre input_size x input_size is cropped, pixels scaled
 * to [0, 1] and normalised per channel with (x - mean) / std. */
typedef struct hs_preprocess {
    int input_size;
    int resize_size;
    float mean[3];
    float std[3];
    hs_interpolation interpolation; /* zero (bilinear) where an initialiser leaves it out */
} hs_preprocess;

typedef struct hs_backbone_info {
    const char *name;            /* "vgg16", "efficientnet_lite0", ... */
    const char *description;
    hs_preprocess preprocess;
    int feature_dim;             /* size of the vector the head sees */
    int imagenet_classes;        /* outputs of the pretrained head (1000) */
    const char *weights_file;    /* the file name PyTorch users have */
    const char *weights_url;     /* where an online user gets it */
    const char *weights_sha256;  /* hex prefix PyTorch puts in the name, or full hash */
    const char *weights_hint;    /* how to get the file when it is missing */
} hs_backbone_info;

int hs_backbone_count(void);
const hs_backbone_info *hs_backbone_at(int index);
const hs_backbone_info *hs_backbone_find(const char *name);

/* Looks for the backbone's pretrained file: $HEADSTART_WEIGHTS, ./weights, the source tree's
 * weights/, ~/.cache/headstart/weights and torch's hub cache. Writes the path into out. */
hs_status hs_find_weights(const hs_backbone_info *info, char *out, size_t out_size,
                          hs_error *err);

/* ---- Networks -------------------------------------------------------------------------- */

typedef struct hs_net hs_net;

/* Which part of a network replace_head swaps for a fresh n-class head. */
typedef enum hs_head_kind {
    HS_HEAD_LAST_LAYER = 0,  /* only the final linear layer (VGG16 classifier.6, Lite _fc) */
    HS_HEAD_CLASSIFIER = 1   /* the whole classifier block: VGG16's three linear layers with
                              * their ReLUs and dropouts; Lite's dropout and last layer */
} hs_head_kind;

/* A network with randomly initialised (PyTorch default init) weights, seeded. */
hs_status hs_net_create(const char *backbone, uint64_t seed, hs_net **out, hs_error *err);
void hs_net_free(hs_net *net);

const hs_backbone_info *hs_net_backbone(const hs_net *net);
int hs_net_num_classes(const hs_net *net);
int hs_net_feature_dim(const hs_net *net);

/* Loads a .pth (zip or legacy) or .safetensors file. Every parameter of the network must be in
 * the file with the same shape, except those of a replaced head, which must be absent or
 * match; anything else is an HS_ERR_MISMATCH naming what differs. */
hs_status hs_net_load_weights(hs_net *net, const char *path, hs_error *err);
hs_status hs_net_save_weights(const hs_net *net, const char *path, hs_error *err);

/* The most classes a head may have. Memory grows with the class count faster than with
 * anything else a run holds: the head is classes x 1280 floats (x 4096 for VGG16's
 * classifier, three times that with AdamW's moments) and the confusion matrix and
 * confusion.csv hold classes^2 counts (1 GiB at this limit). 16,384 covers the large label
 * sets transfer learning meets (iNaturalist 2021: 10,000; ImageNet-21k-P: 10,450), while a
 * small file (an archive of empty class folders, a run.json) can no longer ask for more. */
#define HS_MAX_CLASSES 16384

/* Replaces the head with a freshly initialised one of num_classes outputs, 1 to
 * HS_MAX_CLASSES (more is an HS_ERR_ARGUMENT). */
hs_status hs_net_replace_head(hs_net *net, int num_classes, hs_head_kind kind, uint64_t seed,
                              hs_error *err);

/* Inference. input: n x 3 x H x W float32 (already preprocessed); H and W may differ from
 * the backbone's default size. features: n x feature_dim. logits: n x num_classes. */
hs_status hs_net_features(hs_net *net, const float *input, int n, int height, int width,
                          float *features, hs_error *err);
hs_status hs_net_head(hs_net *net, const float *features, int n, float *logits, hs_error *err);
hs_status hs_net_forward(hs_net *net, const float *input, int n, int height, int width,
                         float *logits, hs_error *err);

/* ---- Images ---------------------------------------------------------------------------- */

/* Decodes a JPEG or PNG file and writes the 3 x S x S float tensor that preprocess asks for. */
hs_status hs_image_file_to_tensor(const char *path, const hs_preprocess *pp, float *out,
                                  hs_error *err);

/* ---- Files ----------------------------------------------------------------------------- */

/* Converts a PyTorch .pth state dict into a safetensors file (float32). */
hs_status hs_convert_pth_to_safetensors(const char *in_path, const char *out_path,
                                        hs_error *err);

/* ---- Training -------------------------------------------------------------------------- */

/* Everything a training run needs; hs_train_config_defaults fills what trains well out of the
 * box. Strings are borrowed for the duration of hs_train. */
typedef struct hs_train_config {
    const char *data;          /* DATA: class folders, train/val tree, archive or CIFAR-10 bin */
    const char *backbone;      /* default efficientnet_lite0 */
    const char *weights;       /* a file, "none" (random weights) or NULL (find the pretrained) */
    int epochs;
    int batch_size;
    float lr;
    float momentum;            /* SGD only */
    float weight_decay;
    const char *optimizer;     /* "adamw" (default), "sgd" or "lbfgs" (the linear probe) */
    int img_size;              /* 0: the backbone's input size */
    const char *train_layers;  /* "head" (the last layer) or "classifier" (VGG16's whole block) */
    const char *strategy;      /* "probe" (frozen backbone), "finetune" (probe, then unfreeze)
                                * or "auto" (measures, then picks one within budget_seconds) */
    double budget_seconds;     /* --strategy auto: the time the whole run may take (> 0) */
    /* Cross-entropy weights per class, in every trainer: "none" (default), "balanced"
     * (n / (classes x count), as scikit-learn) or a file of "class,weight" lines. */
    const char *class_weights;
    uint64_t seed;
    int threads;               /* 0: every core */
    const char *out_dir;       /* NULL: a new numbered folder under runs/ */
    int resume;                /* continue the run in out_dir from its last checkpoint */
    int overwrite;             /* replace a run already in out_dir */
    double val_fraction;       /* for class folders without a split */
    int limit_train;           /* 0: all; else a stratified, seeded subset */
    int limit_val;
    int strict;                /* an unreadable image stops the run instead of being skipped */
    /* The feature cache (the frozen backbone's output, kept between runs). */
    const char *cache_dir;     /* NULL: $XDG_CACHE_HOME/headstart or ~/.cache/headstart */
    int no_cache;              /* compute features in memory; read and write no cache */
    const char *feature_precision; /* "f16" (default: half the disk) or "f32" */
    int bf16;                  /* backbone convolutions in bfloat16 (float32 accumulation) */
    /* --strategy finetune: stage 1 trains the head for probe_epochs on cached features (with
     * lr), stage 2 trains layers from the unfreeze boundary for `epochs` on augmented images. */
    int probe_epochs;          /* stage 1 epochs [5] */
    const char *unfreeze;      /* "auto" (the blocks at 1/16 resolution and coarser),
                                * "all" or "N": the top N backbone blocks [auto] */
    const char *bn;            /* "frozen" (running statistics, left alone) or "train" [frozen] */
    float finetune_lr;         /* stage 2 base rate; 0: lr / 2 */
    float layer_decay;         /* per-depth lr decay in (0, 1] [1: none] */
    int warmup_epochs;         /* linear warmup of stage 2 [1] */
    const char *schedule;      /* "cosine" or "constant" [cosine] */
    float mixup;               /* Beta(a, a) mixup; 0: off [0] */
    float label_smoothing;     /* [0.1] */
    float crop_scale;          /* smallest area fraction of the random resized crop [0.25] */
} hs_train_config;

void hs_train_config_defaults(hs_train_config *config);

typedef struct hs_epoch_metrics {
    int epoch;                 /* 1-based */
    double train_loss, train_acc; /* per-sample mean loss; accuracy in percent */
    double val_loss, val_acc;
    double seconds;
} hs_epoch_metrics;

/* How a run reports while it works; every member may be NULL. */
typedef struct hs_train_callbacks {
    void *ctx;
    /* Progress of a long phase ("train features", "val features"): done of total images. */
    void (*progress)(void *ctx, const char *phase, long done, long total, double seconds);
    void (*epoch_done)(void *ctx, const hs_epoch_metrics *metrics, int epochs);
    /* Something the user should know (a skipped file, where the run is written). */
    void (*note)(void *ctx, const char *message);
    /* When *stop becomes non-zero (Ctrl-C), the run stops after the current step, keeps its
     * last checkpoint and returns HS_ERR_INTERRUPTED. */
    volatile int *stop;
    /* Called as a run passes each point of an epoch (epoch 1-based; step 1-based for "train
     * step", else 0): "train step" (before each optimizer step), "validation" (before it),
     * "checkpoint written" and "outputs written" (metrics.csv and plots of the epoch). A
     * test kills the process here to check that --resume recovers from every point. */
    void (*stage)(void *ctx, const char *stage, int epoch, int step);
} hs_train_callbacks;

typedef struct hs_train_result {
    char out_dir[4096];
    int epochs_run;
    hs_epoch_metrics last, best; /* best: the epoch with the highest validation accuracy */
    int train_images, val_images, skipped_images, classes;
    double feature_seconds, train_seconds, total_seconds;
    double feature_images_per_second;
    int cached_sides;          /* 0..2: train and validation features read from the cache */
    /* --strategy finetune */
    int probe_epochs_run;      /* stage 1 epochs this call ran (0 when resumed past it) */
    hs_epoch_metrics probe;    /* stage 1's last epoch */
    int unfreeze_boundary;     /* first fine-tuned layer */
    char finetune_first_layer[64]; /* its name */
    double finetune_images_per_second;
    /* --strategy auto: what the planner chose (empty otherwise) */
    char auto_choice[32];      /* "probe" or "finetune" */
    int auto_img_size, auto_probe_epochs, auto_epochs;
    double auto_estimate_seconds; /* the plan's estimate of the whole run */
} hs_train_result;

hs_status hs_train(const hs_train_config *config, const hs_train_callbacks *callbacks,
                   hs_train_result *result, hs_error *err);

/* ---- Trained models: predict and evaluate ---------------------------------------------- */

typedef struct hs_model hs_model;

/* Opens a run folder: run.json (classes, backbone, preprocessing), model.safetensors (the
 * trained head) and the backbone weights run.json names, or weights when not NULL. */
hs_status hs_model_open(const char *run_dir, const char *weights, hs_model **out,
                        hs_error *err);
void hs_model_free(hs_model *model);
int hs_model_num_classes(const hs_model *model);
const char *hs_model_class_name(const hs_model *model, int index);

/* Test-time augmentation for hs_model_predict_files and hs_model_evaluate: none (the
 * default), or the mean of the softmax of each image and of its mirror image (the decoded
 * image flipped left to right, then prepared as in training). */
typedef enum hs_tta { HS_TTA_NONE = 0, HS_TTA_FLIP = 1 } hs_tta;
void hs_model_set_tta(hs_model *model, hs_tta tta);

/* The input size images are resized to for hs_model_predict_files and hs_model_evaluate
 * (32..1024; the training size by default): a fully convolutional backbone often does better
 * somewhat above the size it was trained at with random-resized crops (Touvron et al.,
 * "Fixing the train-test resolution discrepancy", 2019). Refused when the head cannot take
 * the features of that size. */
hs_status hs_model_set_img_size(hs_model *model, int size, hs_error *err);

/* Class probabilities (n x classes) of n image files, prepared as in training. An image that
 * cannot be read gets errors[i].code != HS_OK and a row of zeros; the call itself fails only
 * when nothing could run. */
hs_status hs_model_predict_files(hs_model *model, const char *const *paths, int n,
                                 float *probs, hs_error *errors, hs_error *err);

typedef struct hs_eval_result {
    int images;          /* images evaluated */
    int correct;
    double loss;         /* mean cross-entropy */
    int classes;
    int *confusion;      /* classes x classes, row = true class; owned */
    int skipped;         /* unreadable images */
} hs_eval_result;

/* Accuracy and confusion matrix of the model on DATA (its val/test side when it has one).
 * DATA's classes must be the model's: a missing or unknown class is an HS_ERR_MISMATCH. */
hs_status hs_model_evaluate(hs_model *model, const char *data,
                            const hs_train_callbacks *callbacks, hs_eval_result *out,
                            hs_error *err);
void hs_eval_result_free(hs_eval_result *result);

/* ImageNet-1k class names in the order of the pretrained heads. */
const char *hs_imagenet_class_name(int index);

#ifdef __cplusplus
}
#endif
#endif
