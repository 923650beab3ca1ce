"""Reference outputs of tiny ResNets and a tiny VGG16-BN, computed by PyTorch, for
tests/test_resnet.c.

  .venv/bin/python tools/make_resnet_fixtures.py     writes tests/fixtures/nets/resnet_*

The nets are torchvision's own classes (ResNet with BasicBlock / Bottleneck and its
_make_layer, VGG with make_layers(batch_norm=True)) at every channel count divided by 32, the
widths hs_build_resnet(net, depth, 32, classes) and hs_build_vgg16_ex(net, 32, 32, 10, 1)
build: the same names, strides and shortcuts as the full nets. Weights are PyTorch's
initialisation from a fixed seed; BatchNorm's weight, bias and running statistics are
randomised (see randomise_batchnorm: the running statistics from a few random batches, then
shifted and scaled, so activations keep their size through the depth).

For each net (stem tiny18, tiny50, vgg16bn):
  resnet_<stem>_zip.pth, resnet_<stem>_legacy.pth   the state dict in both torch.save layouts
  resnet_<stem>.safetensors                         the same, by the safetensors package
  resnet_<stem>_expected.safetensors                features and logits in eval mode for
        deterministic_input(2, 3, 64, 64) ("features", "logits") and for (2, 3, 45, 53)
        ("odd.features", "odd.logits"; odd sizes round in the strided convolutions and
        pools)
For the two ResNets (the first seed whose step keeps every ReLU input clear of zero, see
relu_margin), also one training step (resnet_<stem>_step.safetensors): BatchNorm in
training mode, in float64 from the float32 weights, on deterministic_input(4, 3, 64, 64) with
labels (3 i + 1) % 10 and the mean cross-entropy: "loss", "logits", "grad.<key>" for every
trainable tensor (whole) and "after.<key>" for every running statistic after the step.
And timm's own ResNet at the tiny18 widths (tiny_timm_resnet18), saved as timm and model
hubs ship it (resnet_timm18.safetensors, expected outputs in resnet_timm18_expected).

Every input is fixture_io.deterministic_input, which the C tests rebuild.
"""
import copy
import pathlib
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from fixture_io import deterministic_input, save_fixture  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "nets"
DIVISOR = 32
CLASSES = 10
SIZES = {"": (64, 64), "odd.": (45, 53)}
STEP_INPUT = (4, 3, 64, 64)
MIN_MARGIN = 1e-5  # float32 rounding of a pre-activation is ~1e-7 of its scale


class NarrowResNet(ResNet):
    """torchvision's ResNet with every width (stem and stages) divided by `divisor`; the
    blocks and their shortcuts come from torchvision's _make_layer unchanged."""

    def __init__(self, block, layers, divisor, num_classes):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = 64 // divisor
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64 // divisor, layers[0])
        self.layer2 = self._make_layer(block, 128 // divisor, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256 // divisor, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512 // divisor, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 // divisor * block.expansion, num_classes)


def tiny_vgg16_bn(divisor, hidden, classes):
    """torchvision's VGG16-BN layout and names, narrowed as hs_build_vgg16_ex makes it."""
    cfg = [v if v == "M" else max(1, v // divisor)
           for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                     512, 512, 512, "M", 512, 512, 512, "M"]]
    vgg = torchvision.models.vgg
    model = vgg.VGG(vgg.make_layers(cfg, batch_norm=True), num_classes=classes)
    model.classifier = nn.Sequential(
        nn.Linear(cfg[-2] * 49, hidden), nn.ReLU(True), nn.Dropout(),
        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
        nn.Linear(hidden, classes))
    return model


def tiny_timm_resnet18():
    """timm's own ResNet (its module code and names) at the tiny18 widths. timm narrows the
    stages (channels) but keeps a plain stem at 64 channels, so the stem and layer1.0's
    first convolution are swapped for narrow ones and layer1.0 loses the projection that the
    wide stem made it need."""
    from timm.models.resnet import BasicBlock as TimmBasicBlock
    from timm.models.resnet import ResNet as TimmResNet
    torch.manual_seed(300)
    width = 64 // DIVISOR
    model = TimmResNet(TimmBasicBlock, [2, 2, 2, 2], num_classes=CLASSES,
                       channels=tuple(c // DIVISOR for c in (64, 128, 256, 512)))
    model.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(width)
    model.layer1[0].conv1 = nn.Conv2d(width, width, kernel_size=3, padding=1, bias=False)
    model.layer1[0].downsample = None
    return model


def residual_last_bns(model):
    """The BatchNorm that ends each residual branch (bn2 of a BasicBlock, bn3 of a
    Bottleneck; torchvision's and timm's blocks both have a `downsample` attribute)."""
    return [getattr(m, "bn3", None) or m.bn2 for m in model.modules()
            if hasattr(m, "downsample") and hasattr(m, "bn2")]


def randomise_batchnorm(model, generator, size=64, batch=4):
    """Random gamma and beta; running statistics measured on random batches of size x size
    images (momentum None: the plain average), then each channel's mean shifted and variance
    scaled at random.

    The BatchNorm that ends a residual branch gets a small gamma, as trained ResNets have
    (torchvision's zero_init_residual starts it at zero): with gamma near 1 every block adds
    as much as the stream holds, the stream grows through 16 narrow Bottlenecks and the
    logits become small differences of large terms, where float32 PyTorch itself is 1.4e-4
    from float64 (eval) and 1.6e-3 (a training step's gradients); with these gammas 4e-5."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    last = {id(m) for m in residual_last_bns(model)}
    with torch.no_grad():
        for bn in bns:
            if id(bn) in last:
                bn.weight.uniform_(0.05, 0.25, generator=generator)
            else:
                bn.weight.uniform_(0.6, 1.4, generator=generator)
            bn.bias.uniform_(-0.3, 0.3, generator=generator)
            bn.reset_running_stats()
            bn.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(batch, 3, size, size, generator=generator))
    with torch.no_grad():
        for bn in bns:
            c = bn.num_features
            bn.running_mean += 0.2 * torch.randn(c, generator=generator) * bn.running_var.sqrt()
            bn.running_var *= torch.empty(c).uniform_(0.7, 1.5, generator=generator)
            bn.momentum = 0.1
            bn.num_batches_tracked.zero_()
    model.eval()


def features_and_logits(model, x):
    """The backbone's output at headstart's seam (after the flatten) and the head's."""
    model.eval()
    with torch.no_grad():
        if isinstance(model, torchvision.models.VGG):
            feats = torch.flatten(model.avgpool(model.features(x)), 1)
            return feats, model.classifier(feats)
        if hasattr(model, "forward_features"):  # timm
            feats = model.forward_head(model.forward_features(x), pre_logits=True)
            return feats, model.get_classifier()(feats)
        m = model
        y = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        y = m.layer4(m.layer3(m.layer2(m.layer1(y))))
        feats = torch.flatten(m.avgpool(y), 1)
        return feats, m.fc(feats)


def save_expected(model, stem, extra):
    tensors = {}
    for prefix, (h, w) in SIZES.items():
        x = torch.from_numpy(deterministic_input((2, 3, h, w)))
        feats, logits = features_and_logits(model, x)
        tensors[prefix + "features"] = feats
        tensors[prefix + "logits"] = logits
        # the seam agrees with the module's own forward
        with torch.no_grad():
            assert torch.allclose(model(x), logits, rtol=1e-5, atol=1e-6)
    save_fixture(OUT / f"resnet_{stem}_expected.safetensors", tensors,
                 {"input": "deterministic_input(2,3,64,64); odd: (2,3,45,53)", **extra})


def save_weights(model, stem, layouts=("zip", "legacy", "safetensors")):
    state = model.state_dict()
    if "zip" in layouts:
        torch.save(state, OUT / f"resnet_{stem}_zip.pth")
    if "legacy" in layouts:
        torch.save(state, OUT / f"resnet_{stem}_legacy.pth", _use_new_zipfile_serialization=False)
    if "safetensors" in layouts:
        save_file({k: v.contiguous() for k, v in state.items()},
                  str(OUT / f"resnet_{stem}.safetensors"), metadata={"format": "pt"})


def save_train_step(model, stem):
    """One training step in float64 from the float32 weights (BatchNorm in training mode)."""
    step = NarrowResNet(type(model.layer1[0]), [len(model.layer1), len(model.layer2),
                                                len(model.layer3), len(model.layer4)],
                        DIVISOR, CLASSES)
    step.load_state_dict(model.state_dict())
    step = step.double().train()
    x = torch.from_numpy(deterministic_input(STEP_INPUT)).double()
    labels = torch.tensor([(3 * i + 1) % CLASSES for i in range(4)])
    logits = step(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    tensors = {"loss": [loss.item()], "logits": logits.detach()}
    for name, p in step.named_parameters():
        tensors["grad." + name] = p.grad.detach()
    for name, buf in step.named_buffers():
        if name.endswith("running_mean") or name.endswith("running_var"):
            tensors["after." + name] = buf.detach()
    save_fixture(OUT / f"resnet_{stem}_step.safetensors", tensors,
                 {"input": "deterministic_input(4,3,64,64)", "labels": "(3 i + 1) % 10",
                  "weights": f"resnet_{stem}_zip.pth", "precision": "float64"})
    return loss.item()


def relu_margin(model, x):
    """The smallest |input| of any ReLU in a float64 training-mode forward, relative to the
    RMS of that ReLU's input. An input within float32 rounding of zero takes the other side
    of the kink in a float32 forward; BatchNorm in training mode spreads that one flipped
    gradient over its channel, and every gradient below it moves by up to 25 % (seen), which
    says nothing about the code under test. The step fixtures use nets with a margin."""
    step = copy.deepcopy(model).double().train()
    margins = []

    def hook(_module, inputs):
        v = inputs[0].detach()
        margins.append((v.abs().min() / v.pow(2).mean().sqrt()).item())

    for m in step.modules():
        if isinstance(m, nn.ReLU):
            m.register_forward_pre_hook(hook)
    with torch.no_grad():
        step(x.double())
    return min(margins)


def tiny_resnet(block, layers, seed):
    """The first net from seed, seed + 1, ... whose training step has a ReLU margin of
    MIN_MARGIN (see relu_margin); returns it and the seed used."""
    x = torch.from_numpy(deterministic_input(STEP_INPUT))
    for attempt in range(seed, seed + 50):
        torch.manual_seed(attempt)
        model = NarrowResNet(block, layers, DIVISOR, CLASSES)
        randomise_batchnorm(model, torch.Generator().manual_seed(attempt))
        if relu_margin(model, x) >= MIN_MARGIN:
            return model, attempt
    raise RuntimeError("no seed gave a ReLU margin")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(2024)
    nets = {"tiny18": (BasicBlock, [2, 2, 2, 2], 18), "tiny50": (Bottleneck, [3, 4, 6, 3], 50)}
    for stem, (block, layers, depth) in nets.items():
        model, seed = tiny_resnet(block, layers, 100 * depth)
        save_weights(model, stem)
        save_expected(model, stem, {"depth": depth, "width_divisor": DIVISOR,
                                    "classes": CLASSES, "seed": seed})
        loss = save_train_step(model, stem)
        print(f"{stem}: seed {seed}, {sum(p.numel() for p in model.state_dict().values())} "
              f"values, step loss {loss:.6f}")

    torch.manual_seed(200)
    vgg = tiny_vgg16_bn(DIVISOR, 32, CLASSES)
    randomise_batchnorm(vgg, g)
    save_weights(vgg, "vgg16bn", ("zip", "legacy", "safetensors"))
    save_expected(vgg, "vgg16bn", {"width_divisor": DIVISOR, "hidden": 32,
                                   "classes": CLASSES})

    timm18 = tiny_timm_resnet18()
    randomise_batchnorm(timm18, g)
    save_file({k: v.contiguous() for k, v in timm18.state_dict().items()},
              str(OUT / "resnet_timm18.safetensors"), metadata={"format": "pt"})
    save_expected(timm18, "timm18", {"model": "timm.models.resnet.ResNet BasicBlock [2,2,2,2]",
                                     "width_divisor": DIVISOR, "classes": CLASSES})
    print(f"wrote fixtures to {OUT}")


if __name__ == "__main__":
    main()
