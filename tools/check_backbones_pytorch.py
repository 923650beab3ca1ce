"""Full-size backbones, headstart against PyTorch (dev environment only, not CI).

For each net of the tables below: build the full-size model with random weights, randomise
its BatchNorm statistics (make_resnet_fixtures.randomise_batchnorm, measured at 224 x 224),
save its state dict (float32) as PyTorch users have it, compute its features (headstart's
seam: the head's input) and logits for deterministic_input(2, 3, 224, 224) in eval mode IN
FLOAT64 from those float32 weights (the exact answer: float32 PyTorch itself is up to 1.3x
the tolerance away from it on VGG16-BN, 13 BatchNorms deep), then run build/tests/
test_backbones_full, which loads each file into headstart's net of the same name, compares
(1e-4 relative + 1e-5 absolute) and prints the worst relative error per net.

  .venv/bin/python tools/check_backbones_pytorch.py                 every net
  .venv/bin/python tools/check_backbones_pytorch.py resnet50 ...    some
  options: --dir DIR (default /tmp/headstart-full; ~2 GB for every net), --keep (leave the
           files), --build DIR (default build)

Seen (2026-12-02, AVX2): worst relative error of features / logits (values of at least 1 % of
the largest) resnet18 2.2e-6 / 1.2e-5, resnet34 3.3e-6 / 9.8e-6, resnet50 6.8e-6 / 1.3e-5,
resnet101 1.4e-5 / 2.9e-5, vgg16 5.0e-5 / 7.9e-5, timm resnet18 2.5e-6 / 9.0e-6, timm resnet50
6.5e-6 / 1.9e-5: all within 1e-4 + 1e-5. vgg16_bn 1.4e-4 / 1.2e-4: 2 of its 50,176 features,
near 0.015 where the largest is 10, are 1.15x the tolerance from float64; float32 PyTorch is
5 values over, up to 1.51x (the absolute 1e-5 is small against features of this size).

To add a net: a row in TORCHVISION (headstart name -> constructor, head attribute) or TIMM
(headstart name -> timm model name); the name must be one hs_backbone_find knows.
"""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys

import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from fixture_io import deterministic_input, save_fixture  # noqa: E402
from make_resnet_fixtures import randomise_batchnorm  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent

# headstart name -> (torchvision constructor, attribute holding the head headstart splits off)
TORCHVISION = {
    "resnet18": (torchvision.models.resnet18, "fc"),
    "resnet34": (torchvision.models.resnet34, "fc"),
    "resnet50": (torchvision.models.resnet50, "fc"),
    "resnet101": (torchvision.models.resnet101, "fc"),
    "vgg16": (torchvision.models.vgg16, "classifier"),
    "vgg16_bn": (torchvision.models.vgg16_bn, "classifier"),
}

# headstart name -> timm model name: timm's state dict (model.safetensors, as model hubs ship
# it) loaded into headstart's net of that name.
TIMM = {
    "resnet18": "resnet18",
    "resnet50": "resnet50",
}

SIZE = 224


def torchvision_outputs(model, head_attr, x):
    """Features (the model with its head swapped for Identity) and logits (the head)."""
    head = getattr(model, head_attr)
    setattr(model, head_attr, nn.Identity())
    with torch.no_grad():
        feats = model(x)
    setattr(model, head_attr, head)
    with torch.no_grad():
        logits = head(feats)
        assert torch.allclose(model(x), logits, rtol=1e-4, atol=1e-5)
    return feats, logits


def timm_outputs(model, x):
    with torch.no_grad():
        feats = model.forward_head(model.forward_features(x), pre_logits=True)
        return feats, model.get_classifier()(feats)


def make(name, source, folder, seed):
    torch.manual_seed(seed)
    if source == "torchvision":
        constructor, head_attr = TORCHVISION[name]
        model = constructor()
    else:
        import timm
        model = timm.create_model(TIMM[name], pretrained=False)
    randomise_batchnorm(model, torch.Generator().manual_seed(seed), size=SIZE, batch=2)
    model.eval()
    if source == "torchvision":
        torch.save(model.state_dict(), folder / f"{name}.{source}.pth")
    else:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  str(folder / f"{name}.{source}.safetensors"), metadata={"format": "pt"})
    model = model.double()
    x = torch.from_numpy(deterministic_input((2, 3, SIZE, SIZE))).double()
    if source == "torchvision":
        feats, logits = torchvision_outputs(model, head_attr, x)
    else:
        feats, logits = timm_outputs(model, x)
    save_fixture(folder / f"{name}.{source}.expected.safetensors",
                 {"features": feats, "logits": logits},
                 {"input": f"deterministic_input(2,3,{SIZE},{SIZE})", "seed": seed})
    print(f"{name} ({source}): features {tuple(feats.shape)}, logits {tuple(logits.shape)}",
          flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--dir", default="/tmp/headstart-full")
    parser.add_argument("--build", default=str(ROOT / "build"))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    names = args.names or sorted(set(TORCHVISION) | set(TIMM))
    unknown = [n for n in names if n not in TORCHVISION and n not in TIMM]
    if unknown:
        sys.exit(f"unknown nets: {', '.join(unknown)}")
    folder = pathlib.Path(args.dir)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    test = pathlib.Path(args.build) / "tests" / "test_backbones_full"
    if not test.exists():
        sys.exit(f"{test} is missing: build headstart first")
    seed = 0
    # One net at a time: make its files, check them, delete them (vgg16 is 528 MB a file).
    code = 0
    for name in names:
        for source, table in (("torchvision", TORCHVISION), ("timm", TIMM)):
            if name not in table:
                continue
            net_dir = folder / f"{name}.{source}"
            net_dir.mkdir()
            make(name, source, net_dir, seed)
            seed += 1
            env = dict(os.environ, HS_BACKBONES_FULL_DIR=str(net_dir))
            run = subprocess.run([str(test)], env=env, capture_output=True, text=True)
            sys.stdout.write(run.stdout)
            sys.stderr.write(run.stderr)
            code |= run.returncode
            if not args.keep:
                shutil.rmtree(net_dir)
    sys.exit(code)


if __name__ == "__main__":
    main()
