"""Checks that a fine-tuned run's model.safetensors is a PyTorch state dict (dev only).

Loads RUN/model.safetensors into the reference EfficientNet-Lite (efficientnet_lite_pytorch,
the run's backbone, a new _fc of the run's classes) with load_state_dict(strict=True), runs
the images as headstart predict prepares them (the whole image resized to img_size x
img_size with Pillow's BILINEAR, then (x/255 - mean)/std) and compares softmax(logits) with
`headstart predict RUN --format json` on the same files.

usage: check_finetune_pytorch.py HEADSTART_BINARY RUN_DIR IMAGE... [--tol 1e-4]
"""
import json
import struct
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]])
        tensors[name] = torch.from_numpy(array.reshape(info["shape"]).copy())
    return tensors, header.get("__metadata__", {})


def prepare(path, size, mean, std):
    img = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32) / np.float32(255)
    x = (x - np.array(mean, np.float32)) / np.array(std, np.float32)
    return torch.from_numpy(x.transpose(2, 0, 1).copy())


def main():
    args = sys.argv[1:]
    tol = 1e-4
    if "--tol" in args:
        i = args.index("--tol")
        tol = float(args[i + 1])
        del args[i:i + 2]
    if len(args) < 3:
        sys.exit(__doc__)
    binary, run, images = args[0], args[1], args[2:]
    record = json.load(open(f"{run}/run.json"))
    assert record["options"]["strategy"] == "finetune", "not a fine-tuned run"
    backbone = record["backbone"]["name"]
    assert backbone.startswith("efficientnet_lite"), "the check covers EfficientNet-Lite"
    classes = record["classes"]
    size = record["preprocessing"]["img_size"]
    mean, std = record["preprocessing"]["mean"], record["preprocessing"]["std"]

    from efficientnet_lite_pytorch import EfficientNet
    model = EfficientNet.from_name(backbone.replace("_", "-"), image_size=size)
    model._fc = torch.nn.Linear(model._fc.in_features, len(classes))
    state, meta = read_safetensors(f"{run}/model.safetensors")
    own = model.state_dict()
    # num_batches_tracked is int64 in PyTorch; headstart stores it as a float scalar.
    state = {k: (v.to(own[k].dtype) if k in own else v) for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    model.eval()

    x = torch.stack([prepare(p, size, mean, std) for p in images])
    with torch.no_grad():
        torch_probs = torch.softmax(model(x), dim=1).numpy()

    out = subprocess.run([binary, "predict", run, "--format", "json", "--top-k",
                          str(len(classes)), *images], check=True, capture_output=True,
                         text=True)
    result = json.loads(out.stdout)
    items = result if isinstance(result, list) else result.get("images", result)
    worst = 0.0
    for i, item in enumerate(items):
        probs = np.zeros(len(classes), np.float32)
        for p in item["predictions"]:
            probs[classes.index(p["class"])] = p["probability"]
        diff = float(np.abs(probs - torch_probs[i]).max())
        worst = max(worst, diff)
        print(f"{images[i]}: max |p_headstart - p_torch| = {diff:.2e}")
    print(f"loaded {len(state)} tensors strictly; {len(items)} images; worst difference "
          f"{worst:.2e} (tolerance {tol:g})")
    sys.exit(0 if worst <= tol else 1)


if __name__ == "__main__":
    main()
