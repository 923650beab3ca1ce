"""Writes tests/fixtures/ops.safetensors: PyTorch reference results for src/ops_ref.c.

Run with the dev environment's Python (torch 1.13, numpy):
    /work/main/.venv/bin/python tools/make_ops_fixtures.py

Every case stores its inputs, weights and PyTorch outputs under "<case>.<name>", so the C test
(tests/test_ops_ref.c) needs no PyTorch. Integer parameters that the C side needs (conv shape,
pool sizes) are stored as small float tensors "<case>.params"; labels and dropout masks are
stored as floats holding small integers (exact in float32).
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import put_case, save_fixture  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "ops.safetensors")

torch.manual_seed(20240611)
torch.set_default_dtype(torch.float32)
tensors = {}


def put(case, **named):
    put_case(tensors, case, **named)


def same_padding(size, k, s, d=1):
    """TensorFlow SAME along one axis: (before, after), the odd pixel after."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def conv_case(case, n, cin, cout, h, w, kh, kw, stride=(1, 1), pad=(0, 0, 0, 0),
              dilation=(1, 1), groups=1, bias=True, same=False):
    """pad = (top, bottom, left, right), applied with F.pad so it may be asymmetric. With
    same=True the padding is TensorFlow SAME, computed here."""
    if same:
        pt, pb = same_padding(h, kh, stride[0], dilation[0])
        pl, pr = same_padding(w, kw, stride[1], dilation[1])
        pad = (pt, pb, pl, pr)
    x = torch.randn(n, cin, h, w)
    weight = torch.randn(cout, cin // groups, kh, kw) * (1.0 / (cin // groups * kh * kw)) ** 0.5
    b = torch.randn(cout) * 0.1 if bias else None
    xp = F.pad(x, (pad[2], pad[3], pad[0], pad[1]))  # F.pad order: left, right, top, bottom
    y = F.conv2d(xp, weight, b, stride=stride, padding=0, dilation=dilation, groups=groups)
    params = [cin, cout, kh, kw, stride[0], stride[1], pad[0], pad[1], pad[2], pad[3],
              dilation[0], dilation[1], groups, 1 if bias else 0, 1 if same else 0]
    put(case, x=x, w=weight, y=y, params=params)
    if bias:
        put(case, b=b)


# ---- Convolution ---------------------------------------------------------------------------
conv_case("conv_k3_p1", 2, 3, 4, 8, 8, 3, 3, pad=(1, 1, 1, 1))
conv_case("conv_k3_s2", 2, 3, 4, 9, 8, 3, 3, stride=(2, 2), bias=False)
conv_case("conv_k5_s2_same", 2, 3, 4, 12, 11, 5, 5, stride=(2, 2), same=True)  # pads 1,2 / 2,2
conv_case("conv_k1", 2, 6, 5, 5, 7, 1, 1)
conv_case("conv_dw_k3", 2, 4, 4, 7, 7, 3, 3, pad=(1, 1, 1, 1), groups=4)
conv_case("conv_dw_k5_s2_same", 2, 4, 4, 10, 9, 5, 5, stride=(2, 2), groups=4, same=True)
conv_case("conv_dw_mult2", 2, 3, 6, 6, 6, 3, 3, pad=(1, 1, 1, 1), groups=3)
conv_case("conv_groups2", 2, 4, 6, 6, 6, 3, 3, pad=(1, 1, 1, 1), groups=2)
conv_case("conv_dil2", 2, 3, 4, 10, 9, 3, 3, pad=(2, 2, 2, 2), dilation=(2, 2))
conv_case("conv_k3x1", 2, 3, 4, 7, 6, 3, 1, stride=(2, 1), pad=(1, 1, 0, 0))
conv_case("conv_asym", 2, 2, 3, 6, 7, 2, 3, stride=(1, 2), pad=(0, 1, 2, 0), dilation=(1, 2))

# ---- BatchNorm (inference) and the conv + bn pair for folding -------------------------------
EPS = 1e-3


def bn_params(c):
    return (torch.rand(c) + 0.5, torch.randn(c) * 0.2, torch.randn(c) * 0.3,
            torch.rand(c) * 0.8 + 0.1)


x = torch.randn(2, 4, 5, 5)
gamma, beta, mean, var = bn_params(4)
y = F.batch_norm(x, mean, var, gamma, beta, training=False, eps=EPS)
put("bn", x=x, gamma=gamma, beta=beta, mean=mean, var=var, y=y, eps=[EPS])

x = torch.randn(2, 3, 8, 8)
weight = torch.randn(5, 3, 3, 3) * (1.0 / 27) ** 0.5
b = torch.randn(5) * 0.1
gamma, beta, mean, var = bn_params(5)
conv = F.conv2d(x, weight, b, stride=1, padding=1)
y = F.batch_norm(conv, mean, var, gamma, beta, training=False, eps=EPS)
put("convbn", x=x, w=weight, b=b, gamma=gamma, beta=beta, mean=mean, var=var, y=y, eps=[EPS],
    params=[3, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0])

# ---- Activations ----------------------------------------------------------------------------
x = torch.randn(2, 3, 5, 5) * 4.0  # reaches past 6 for relu6
x.view(-1)[::7] = 0.0              # exact zeros: relu' is 0 there, as in PyTorch
x.view(-1)[3] = 6.0
x.requires_grad_(True)
dy = torch.randn(2, 3, 5, 5)
y = F.relu(x)
(dx,) = torch.autograd.grad(y, x, dy)
put("relu", x=x, y=y, dy=dy, dx=dx)
put("relu6", y=F.relu6(x))

# ---- Pooling --------------------------------------------------------------------------------
x = torch.randn(2, 3, 8, 8)
put("maxpool_k2_s2", x=x, y=F.max_pool2d(x, 2, 2), params=[2, 2, 0])
x = torch.randn(2, 3, 9, 9)
put("maxpool_k3_s2_p1", x=x, y=F.max_pool2d(x, 3, 2, 1), params=[3, 2, 1])
x = torch.randn(2, 3, 8, 8)
put("avgpool_k2_s2", x=x, y=F.avg_pool2d(x, 2, 2), params=[2, 2, 0])
x = torch.randn(2, 3, 7, 6)
put("avgpool_k3_s1_p1", x=x, y=F.avg_pool2d(x, 3, 1, 1, count_include_pad=True),
    params=[3, 1, 1])

for case, (h, w), (oh, ow) in [("adaptive_14x14_7x7", (14, 14), (7, 7)),
                               ("adaptive_9x13_7x7", (9, 13), (7, 7)),
                               ("adaptive_2x3_7x7", (2, 3), (7, 7)),
                               ("adaptive_5x6_1x1", (5, 6), (1, 1))]:
    x = torch.randn(2, 3, h, w)
    put(case, x=x, y=F.adaptive_avg_pool2d(x, (oh, ow)), params=[oh, ow])

# ---- Linear forward and backward ------------------------------------------------------------
x = torch.randn(3, 10, requires_grad=True)
weight = (torch.randn(5, 10) * 0.3).requires_grad_(True)
b = (torch.randn(5) * 0.1).requires_grad_(True)
y = F.linear(x, weight, b)
dy = torch.randn(3, 5)
dx, dw, db = torch.autograd.grad(y, (x, weight, b), dy)
put("linear", x=x, w=weight, b=b, y=y, dy=dy, dx=dx, dw=dw, db=db)

# ---- Dropout with an explicit mask ----------------------------------------------------------
P = 0.3
x = torch.randn(2, 50, requires_grad=True)
mask = (torch.rand(2, 50) >= P).float()
y = x * mask / (1 - P)
dy = torch.randn(2, 50)
(dx,) = torch.autograd.grad(y, x, dy)
put("dropout", x=x, mask=mask, y=y, dy=dy, dx=dx, p=[P])

# ---- Softmax and cross-entropy --------------------------------------------------------------
x = torch.randn(4, 10) * 3.0
x[2] += 80.0   # large logits: needs the max subtraction
x[3] -= 60.0
put("softmax", x=x, y=F.softmax(x, dim=1))

logits = (torch.randn(5, 7) * 2.0)
logits[1] += 90.0
logits[4] *= 20.0
logits.requires_grad_(True)
labels = torch.tensor([3, 0, 6, 2, 5])
loss = F.cross_entropy(logits, labels)
(dlogits,) = torch.autograd.grad(loss, logits)
put("xent", logits=logits, labels=labels, loss=[loss.item()], dlogits=dlogits)

save_fixture(OUT, tensors, metadata={"generator": "tools/make_ops_fixtures.py",
                                     "torch": torch.__version__})
size = os.path.getsize(OUT)
print(f"wrote {OUT}: {len(tensors)} tensors, {size} bytes")
assert size < 300 * 1024
