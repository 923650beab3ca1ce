"""Reference outputs of whole networks, computed by PyTorch, for tests/test_nets.c.

  .venv/bin/python tools/make_net_fixtures.py            small fixtures in tests/fixtures/nets
  .venv/bin/python tools/make_net_fixtures.py --full-vgg DIR
                                                         full-size VGG16 (random weights, 528 MB
                                                         a layout) for a dev-only check

Every input is fixture_io.deterministic_input, which the C tests rebuild, so no image tensor is
stored. Needs the dev environment (tools/setup-dev-env.sh) and scripts/fetch-weights.sh.
"""
import argparse
import csv
import pathlib
import sys

import torch
import torch.nn as nn
import torchvision
from PIL import Image
from torchvision import transforms

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from fixture_io import deterministic_input, save_fixture  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "nets"
WEIGHTS = ROOT / "weights"
LITE_FILES = {0: "efficientnet-lite0-57934424.pth", 1: "efficientnet-lite1-77cc7160.pth",
              2: "efficientnet-lite2-9656183e.pth"}
LITE_SIZES = {0: (224, 256), 1: (240, 274), 2: (260, 297)}


def tiny_vgg16(width_divisor, hidden, classes):
    """torchvision's VGG16 layout and names with fewer channels, as hs_build_vgg16 makes it."""
    cfg = [v if v == "M" else max(1, v // width_divisor)
           for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                     512, 512, 512, "M", 512, 512, 512, "M"]]
    model = torchvision.models.vgg.VGG(torchvision.models.vgg.make_layers(cfg), num_classes=classes)
    channels = cfg[-2]
    model.classifier = nn.Sequential(
        nn.Linear(channels * 49, hidden), nn.ReLU(True), nn.Dropout(),
        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
        nn.Linear(hidden, classes))
    return model


def vgg_outputs(model, x):
    model.eval()
    with torch.no_grad():
        feats = torch.flatten(model.avgpool(model.features(x)), 1)
        return feats, model.classifier(feats)


def save_both_layouts(state, stem):
    torch.save(state, OUT / f"{stem}_zip.pth")
    torch.save(state, OUT / f"{stem}_legacy.pth", _use_new_zipfile_serialization=False)


def make_tiny_vgg():
    torch.manual_seed(1234)
    model = tiny_vgg16(32, 32, 10)
    x = torch.from_numpy(deterministic_input((2, 3, 64, 64)))
    feats, logits = vgg_outputs(model, x)
    save_both_layouts(model.state_dict(), "vgg16_tiny")
    save_fixture(OUT / "vgg16_tiny_expected.safetensors", {"features": feats, "logits": logits},
                 {"input": "deterministic_input(2,3,64,64)", "width_divisor": 32,
                  "hidden": 32, "classes": 10})


def make_full_vgg(folder):
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(99)
    model = torchvision.models.vgg16()
    x = torch.from_numpy(deterministic_input((1, 3, 224, 224)))
    feats, logits = vgg_outputs(model, x)
    torch.save(model.state_dict(), folder / "vgg16_random_zip.pth")
    torch.save(model.state_dict(), folder / "vgg16_random_legacy.pth",
               _use_new_zipfile_serialization=False)
    save_fixture(folder / "vgg16_random_expected.safetensors",
                 {"features": feats[:, :4096], "logits": logits})
    print(f"wrote full-size VGG16 fixtures to {folder}")


def lite_model(variant):
    from efficientnet_lite_pytorch import EfficientNet
    model = EfficientNet.from_name(f"efficientnet-lite{variant}")
    state = torch.load(WEIGHTS / LITE_FILES[variant], map_location="cpu")
    model.load_state_dict(state)
    return model.eval()


def make_lite(variant):
    if not (WEIGHTS / LITE_FILES[variant]).exists():
        print(f"skipping Lite{variant}: run scripts/fetch-weights.sh first")
        return None
    model = lite_model(variant)
    size = LITE_SIZES[variant][0]
    x = torch.from_numpy(deterministic_input((2, 3, size, size)))
    with torch.no_grad():
        feats = torch.flatten(model._avg_pooling(model.extract_features(x)), 1)
        logits = model(x)
    save_fixture(OUT / f"lite{variant}_expected.safetensors",
                 {"features": feats, "logits": logits},
                 {"input": f"deterministic_input(2,3,{size},{size})"})
    return model


def make_foolbox_top1(model):
    """PyTorch's top-1 for the 20 labelled ImageNet JPEGs that foolbox ships, through
    torchvision's PIL pipeline with Lite0's preprocessing."""
    images = sorted((WEIGHTS / "foolbox").glob("imagenet_*.jpg"))
    if not images:
        print("skipping foolbox top-1: run scripts/fetch-weights.sh first")
        return
    prep = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([127 / 255] * 3, [128 / 255] * 3)])
    with open(OUT / "foolbox_lite0_top1.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "torch_top1", "torch_probability"])
        for p in images:
            x = prep(Image.open(p).convert("RGB")).unsqueeze(0)
            with torch.no_grad():
                probs = torch.softmax(model(x), 1)[0]
            top = int(probs.argmax())
            w.writerow([p.name, int(p.stem.split("_")[-1]), top, f"{float(probs[top]):.6f}"])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full-vgg", metavar="DIR")
    args = parser.parse_args()
    if args.full_vgg:
        make_full_vgg(args.full_vgg)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    make_tiny_vgg()
    lite0 = make_lite(0)
    make_lite(1)
    make_lite(2)
    if lite0 is not None:
        make_foolbox_top1(lite0)
    print(f"wrote fixtures to {OUT}")


if __name__ == "__main__":
    main()
