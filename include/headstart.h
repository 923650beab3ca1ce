/* headstart: transfer learning for image classification, in C.
 *
 * The one public header. Handles are opaque; functions return an hs_status and, on failure,
 * fill the caller's hs_error with a one-line message that says what went wrong and where.
 * The library never prints and never exits: only the command line tool does.
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
    HS_ERR_INTERNAL = 10   /* a bug: an invariant of headstart itself did not hold */
} hs_status;

#define HS_ERROR_MESSAGE_SIZE 1024

typedef struct hs_error {
    hs_status code;
    char message[HS_ERROR_MESSAGE_SIZE];
} hs_error;

/* A short stable name for a status ("format", "unsafe", ...). */
const char *hs_status_name(hs_status status);

/* ---- Backbones ------------------------------------------------------------------------- */

/* How images are prepared for a backbone: the shorter side is resized to resize_size, the
 * centre input_size x input_size is cropped, pixels scaled to [0, 1] and normalised per
 * channel with (x - mean) / std. */
typedef struct hs_preprocess {
    int input_size;
    int resize_size;
    float mean[3];
    float std[3];
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
    HS_HEAD_CLASSIFIER = 1   /* VGG16: the whole classifier block; Lite: same as LAST_LAYER */
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

/* Replaces the head with a freshly initialised one of num_classes outputs. */
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

/* ImageNet-1k class names in the order of the pretrained heads. */
const char *hs_imagenet_class_name(int index);

#ifdef __cplusplus
}
#endif
#endif
