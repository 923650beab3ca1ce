"""Reference outputs of a narrow, short ConvNeXt, computed by PyTorch, for tests/test_convnext.c.

  .venv/bin/python tools/make_convnext_fixtures.py           small fixtures in tests/fixtures/nets
  .venv/bin/python tools/make_convnext_fixtures.py --full DIR
                                                             full-size convnext_tiny (random
                                                             weights, 115 MB a file) for the
                                                             dev-only tests/test_convnext_full.c

The narrow net is torchvision's own ConvNeXt class (torchvision.models.convnext.ConvNeXt) with a
block_setting of small widths and depths, NARROW_DIMS and NARROW_DEPTHS below (the C test builds
hs_build_convnext with the same numbers), stochastic depth 0.1 and 10 classes. Every parameter
is drawn at random so no block is close to the identity (torchvision's own init scales each
block by layer_scale = 1e-6, which would hide a wrong block). Writes:

  convnext_narrow_zip.pth, convnext_narrow_legacy.pth   its state dict, both .pth layouts
  convnext_narrow.safetensors                           the same tensors as safetensors
  convnext_narrow_timm.safetensors                      the same weights under timm 1.0.29's
                                                        names (timm.models.convnext.ConvNeXt,
                                                        asserted to compute the same logits)
  convnext_narrow_expected.safetensors                  features (the 28 values after avgpool,
                                                        classifier.0 and the flatten) and
                                                        logits, eval mode, for
                                                        deterministic_input(2, 3, 64, 64)
  convnext_narrow_train_step.safetensors                one training step (train mode,
                                                        stochastic depth 0 so no random draw
                                                        has to match): loss, logits and the
                                                        gradient of every parameter, in float64
                                                        rounded to float32, for
                                                        deterministic_input(2, 3, 32, 32) and
                                                        labels STEP_LABELS
"""
import argparse
import pathlib
import sys

import timm
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.convnext import CNBlockConfig, ConvNeXt

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from fixture_io import deterministic_input, save_fixture  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "nets"
NARROW_DIMS = (8, 12, 20, 28)  # 12, 20, 28: the last channel block of 8 and 16 is padded
NARROW_DEPTHS = (1, 2, 1, 1)
CLASSES = 10
STEP_LABELS = [3, 7]


def convnext(dims, depths, classes, stochastic_depth_prob):
    setting = [CNBlockConfig(dims[i], dims[i + 1] if i < 3 else None, depths[i])
               for i in range(4)]
    # torchvision's convnext_tiny: ConvNeXt(block_setting, stochastic_depth_prob=0.1) with
    # LayerNorm2d(eps=1e-6) made by the class itself.
    return ConvNeXt(setting, stochastic_depth_prob=stochastic_depth_prob, num_classes=classes)


def randomise(model, seed):
    """Every tensor random, at scales that keep activations O(1) through the blocks."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_scale"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.ndim == 1 and name.endswith("weight"):  # LayerNorm gamma
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)


def features_and_logits(model, x):
    """The feature seam: avgpool, classifier.0 (LayerNorm2d) and the flatten."""
    feats = model.classifier[1](model.classifier[0](model.avgpool(model.features(x))))
    return feats, model.classifier[2](feats)


def timm_state(model, dims, depths, classes):
    """torchvision's ConvNeXt weights under timm's names: timm's state dict lists the same
    tensors in the same order; only layer scale differs, gamma [C] for layer_scale [C, 1, 1]."""
    t = timm.models.convnext.ConvNeXt(depths=depths, dims=dims, num_classes=classes)
    ours, theirs = model.state_dict(), t.state_dict()
    assert len(ours) == len(theirs)
    mapped = {}
    for (k, v), (tk, tv) in zip(ours.items(), theirs.items()):
        assert k.split(".")[-1] == tk.split(".")[-1] or (k.endswith("layer_scale") and
                                                         tk.endswith("gamma")), (k, tk)
        assert v.numel() == tv.numel(), (k, tk)
        mapped[tk] = v.reshape(tv.shape).clone()
    t.load_state_dict(mapped)
    return t.eval(), mapped


def make_narrow():
    torch.manual_seed(1234)
    model = convnext(NARROW_DIMS, NARROW_DEPTHS, CLASSES, 0.1)
    randomise(model, 4321)
    model.eval()
    state = model.state_dict()
    torch.save(state, OUT / "convnext_narrow_zip.pth")
    torch.save(state, OUT / "convnext_narrow_legacy.pth", _use_new_zipfile_serialization=False)
    save_fixture(OUT / "convnext_narrow.safetensors", state)

    x = torch.from_numpy(deterministic_input((2, 3, 64, 64)))
    with torch.no_grad():
        feats, logits = features_and_logits(model, x)
        assert torch.allclose(logits, model(x), rtol=1e-6, atol=1e-6)
        t, mapped = timm_state(model, NARROW_DIMS, NARROW_DEPTHS, CLASSES)
        timm_logits = t(x)
        # the same maths under timm's names: what the C timm check relies on
        assert torch.allclose(timm_logits, logits, rtol=1e-5, atol=1e-5), (timm_logits, logits)
    save_fixture(OUT / "convnext_narrow_timm.safetensors", mapped)
    save_fixture(OUT / "convnext_narrow_expected.safetensors",
                 {"features": feats, "logits": logits},
                 {"input": "deterministic_input(2,3,64,64)", "dims": NARROW_DIMS,
                  "depths": NARROW_DEPTHS, "classes": CLASSES})
    make_train_step(state)


def make_train_step(state):
    """One training step in float64 from the same weights, stochastic depth off."""
    model = convnext(NARROW_DIMS, NARROW_DEPTHS, CLASSES, 0.0)
    model.load_state_dict(state)
    model = model.double().train()
    x = torch.from_numpy(deterministic_input((2, 3, 32, 32))).double()
    logits = model(x)
    loss = F.cross_entropy(logits, torch.tensor(STEP_LABELS))
    model.zero_grad()
    loss.backward()
    out = {"loss": [loss.item()], "logits": logits.detach()}
    for name, p in model.named_parameters():
        out[f"grad.{name}"] = p.grad
    save_fixture(OUT / "convnext_narrow_train_step.safetensors", out,
                 {"input": "deterministic_input(2,3,32,32)", "labels": STEP_LABELS,
                  "stochastic_depth": 0})


def make_full(folder):
    """convnext_tiny with random weights: torchvision's file in both .pth layouts, timm's
    names as safetensors, features and logits of deterministic_input(2, 3, 224, 224)."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dims, depths = (96, 192, 384, 768), (3, 3, 9, 3)
    torch.manual_seed(99)
    model = convnext(dims, depths, 1000, 0.1)
    randomise(model, 98)
    model.eval()
    reference = torchvision.models.convnext_tiny()  # the builder torchvision users call
    assert [(k, v.shape) for k, v in reference.state_dict().items()] == \
        [(k, v.shape) for k, v in model.state_dict().items()]
    x = torch.from_numpy(deterministic_input((2, 3, 224, 224)))
    with torch.no_grad():
        feats, logits = features_and_logits(model, x)
        t, mapped = timm_state(model, dims, depths, 1000)
        assert torch.allclose(t(x), logits, rtol=1e-4, atol=1e-4)
    torch.save(model.state_dict(), folder / "convnext_tiny_random_zip.pth")
    torch.save(model.state_dict(), folder / "convnext_tiny_random_legacy.pth",
               _use_new_zipfile_serialization=False)
    save_fixture(folder / "convnext_tiny_random_timm.safetensors", mapped)
    save_fixture(folder / "convnext_tiny_random_expected.safetensors",
                 {"features": feats, "logits": logits},
                 {"input": "deterministic_input(2,3,224,224)"})
    print(f"wrote full-size convnext_tiny fixtures to {folder}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", metavar="DIR")
    args = parser.parse_args()
    if args.full:
        make_full(args.full)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    make_narrow()
    for p in sorted(OUT.glob("convnext_narrow*")):
        print(f"{p.name}: {p.stat().st_size} bytes")
        assert p.stat().st_size < 300 * 1024


if __name__ == "__main__":
    main()
