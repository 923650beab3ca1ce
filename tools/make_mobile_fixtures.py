"""Reference outputs and one training step of narrow torchvision MobileNetV2, MobileNetV3 and
EfficientNet, plus the full-size nets' parameter names in torchvision and timm, for
tests/test_mobile.c.

Narrow nets (tests/fixtures/mobile/<net>_*): torchvision's own classes with a width
multiplier and a short custom block list (the constructors take them), 10 classes, random
weights and randomised BatchNorm statistics. Each is saved in both .pth layouts and as
safetensors, with its features and logits on deterministic_input(2, 3, 64, 64) in eval mode
(<net>_expected.safetensors), and one training step (<net>_train_step.safetensors): train
mode, BatchNorm with batch statistics, dropout and stochastic depth off (their random draws
cannot be shared), deterministic_input(4, 3, 64, 64) with labels [1, 7, 3, 9], mean
cross-entropy, computed in float64 from the float32 weights: the loss, every parameter's
gradient and every BatchNorm's running statistics after the step.

Key lists (tests/fixtures/mobile/<net>_keys.txt): one line per tensor of the full-size
torchvision net, "torchvision_key timm_key d0,d1,..." in state-dict order, timm's key taken
from the same position of timm 1.0.29's state dict (the orders agree; each pair is checked
here to hold the same number of values).

    .venv/bin/python tools/make_mobile_fixtures.py
"""
import pathlib
import sys
from functools import partial

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models import efficientnet as tv_eff
from torchvision.models import mobilenetv3 as tv_v3

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from fixture_io import deterministic_input, save_fixture  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "mobile"
LABELS = [1, 7, 3, 9]
CLASSES = 10

# The narrow configurations; tests/test_mobile.c builds the same ones.
V2_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2]]
V2_WIDTH = 0.25
V3_WIDTH = 0.5
V3_LAST_CHANNEL = 64
# input, kernel, expanded, out, SE, activation, stride, dilation
V3_SETTING = [(16, 3, 16, 16, True, "RE", 2, 1), (16, 3, 64, 24, False, "RE", 2, 1),
              (24, 3, 72, 24, False, "HS", 1, 1), (24, 5, 96, 40, True, "HS", 2, 1),
              (40, 5, 120, 40, True, "HS", 1, 1)]
EFF_WIDTH, EFF_DEPTH = 0.25, 1.5
# expand ratio, kernel, stride, input, output, layers
EFF_SETTING = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 1)]

TIMM = {"mobilenet_v2": "mobilenetv2_100", "mobilenet_v3_small": "mobilenetv3_small_100",
        "mobilenet_v3_large": "mobilenetv3_large_100", "efficientnet_b0": "efficientnet_b0",
        "efficientnet_b1": "efficientnet_b1", "efficientnet_b2": "efficientnet_b2",
        "efficientnet_b3": "efficientnet_b3"}


def narrow_v2():
    return torchvision.models.MobileNetV2(num_classes=CLASSES, width_mult=V2_WIDTH,
                                          inverted_residual_setting=V2_SETTING)


def narrow_v3():
    conf = [tv_v3.InvertedResidualConfig(*row, width_mult=V3_WIDTH) for row in V3_SETTING]
    return tv_v3.MobileNetV3(conf, V3_LAST_CHANNEL, num_classes=CLASSES)


def narrow_effnet():
    conf = [tv_eff.MBConvConfig(*row, width_mult=EFF_WIDTH, depth_mult=EFF_DEPTH)
            for row in EFF_SETTING]
    return tv_eff.EfficientNet(conf, dropout=0.2, stochastic_depth_prob=0.2,
                               num_classes=CLASSES)


def randomise(model, x, gen):
    """BatchNorm statistics of the real activations on x (so nothing explodes or dies over the
    depth), then perturbed, and random affine parameters; convolution and linear weights
    stay torchvision's random initialisation."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: one batch gives its statistics
    model.train()
    with torch.no_grad():
        model(x)
        for m, momentum in zip(bns, saved):
            m.momentum = momentum
            c = m.num_features
            m.running_mean.add_(0.1 * torch.rand(c, generator=gen) - 0.05)
            m.running_var.mul_(0.8 + 0.45 * torch.rand(c, generator=gen))
            m.weight.copy_(0.7 + 0.6 * torch.rand(c, generator=gen))
            m.bias.copy_(0.6 * torch.rand(c, generator=gen) - 0.3)
            m.num_batches_tracked.zero_()
    model.eval()


def float_state(model):
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def save_net(stem, model):
    x = torch.from_numpy(deterministic_input((2, 3, 64, 64)))
    with torch.no_grad():
        feats = torch.flatten(F.adaptive_avg_pool2d(model.features(x), 1), 1)
        logits = model(x)
    state = model.state_dict()
    torch.save(state, OUT / f"{stem}_zip.pth")
    torch.save(state, OUT / f"{stem}_legacy.pth", _use_new_zipfile_serialization=False)
    save_fixture(OUT / f"{stem}.safetensors", float_state(model), {"format": "pt"})
    save_fixture(OUT / f"{stem}_expected.safetensors", {"features": feats, "logits": logits},
                 {"input": "deterministic_input(2,3,64,64)"})
    return feats.shape[1]


def train_step(stem, model):
    """One step in float64 (dropout and stochastic depth off), from the saved float32
    weights."""
    step = model.double().train()
    for m in step.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(m, torchvision.ops.StochasticDepth):
            m.p = 0.0
    x = torch.from_numpy(deterministic_input((4, 3, 64, 64))).double()
    logits = step(x)
    loss = F.cross_entropy(logits, torch.tensor(LABELS))
    loss.backward()
    tensors = {"loss": [loss.item()], "logits": logits.detach()}
    for name, p in step.named_parameters():
        tensors["grad." + name] = p.grad.detach()
    for name, b in step.named_buffers():
        if name.endswith("running_mean") or name.endswith("running_var"):
            tensors["after." + name] = b.detach()
    save_fixture(OUT / f"{stem}_train_step.safetensors", tensors,
                 {"input": "deterministic_input(4,3,64,64)", "labels": "1,7,3,9"})
    return loss.item()


def key_list(name):
    import timm
    tv = float_state(getattr(torchvision.models, name)())
    tm = {k: v for k, v in timm.create_model(TIMM[name], pretrained=False).state_dict().items()
          if not k.endswith("num_batches_tracked")}
    assert len(tv) == len(tm), (name, len(tv), len(tm))
    lines = []
    for (k, v), (tk, tv_) in zip(tv.items(), tm.items()):
        assert v.numel() == tv_.numel(), (name, k, tk, tuple(v.shape), tuple(tv_.shape))
        assert k.rsplit(".", 1)[-1] == tk.rsplit(".", 1)[-1], (name, k, tk)
        lines.append(f"{k} {tk} {','.join(str(d) for d in v.shape)}")
    (OUT / f"{name}_keys.txt").write_text("\n".join(lines) + "\n")
    return len(lines)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for seed, (stem, make) in enumerate([("mobilenet_v2_narrow", narrow_v2),
                                         ("mobilenet_v3_narrow", narrow_v3),
                                         ("efficientnet_narrow", narrow_effnet)]):
        torch.manual_seed(100 + seed)
        gen = torch.Generator().manual_seed(200 + seed)
        model = make()
        randomise(model, torch.from_numpy(deterministic_input((4, 3, 64, 64))), gen)
        dim = save_net(stem, model)
        loss = train_step(stem, model)
        print(f"{stem}: {dim} features, step loss {loss:.6f}")
    for name in TIMM:
        print(f"{name}: {key_list(name)} tensors")


if __name__ == "__main__":
    main()
