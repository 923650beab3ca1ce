"""Writes tests/fixtures/grads.safetensors: PyTorch's gradients for the backward kernels of
src/ops_ref_grad.c and src/ops_ref.c (tests/test_ops_grad.c reads it).

Run with the dev environment's Python (torch 1.13, numpy):
    /work/main/.venv/bin/python tools/make_grad_fixtures.py

Precision. Every input, parameter and upstream gradient is drawn in float32 and stored as
float32. Operations that sum (convolution, BatchNorm, pooling, linear, cross-entropy) are
then run by PyTorch in float64 on those exact values and the results rounded to float32
once: that is the exact gradient to float precision, the same thing the reference kernels
compute with their double accumulation, so the C test can compare at 1e-5 relative instead
of absorbing PyTorch's float32 summation error. Element-wise operations without sums (ReLU,
ReLU6, dropout, drop connect) are run in float32 exactly as a float32 training step runs
them, so the C test can demand the same bits (dropout: see its case).

Layout: "<case>.<name>" tensors; integer parameters as small float tensors "<case>.params";
masks, keep vectors and labels as floats holding 0/1 or small integers.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import put_case, save_fixture  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "grads.safetensors")

torch.manual_seed(20261202)
torch.set_default_dtype(torch.float32)
tensors = {}


def put(case, **named):
    put_case(tensors, case, **named)


def grads64(fn, inputs, dy):
    """Runs fn on float64 copies of the float32 inputs and returns (y, [d y.dy / d input])
    rounded to float32."""
    ins = [t.detach().double().requires_grad_(True) for t in inputs]
    y = fn(*ins)
    gs = torch.autograd.grad(y, ins, dy.double(), allow_unused=True)
    return y.detach().float(), [None if g is None else g.float() for g in gs]


def grads32(fn, inputs, dy):
    ins = [t.detach().clone().requires_grad_(True) for t in inputs]
    y = fn(*ins)
    gs = torch.autograd.grad(y, ins, dy)
    return y.detach(), [g.detach() for g in gs]


def same_padding(size, k, s, d=1):
    """TensorFlow SAME along one axis: (before, after), the odd pixel after."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


# ---- Convolution: the 11 configurations of tools/make_ops_fixtures.py -------------------------
def conv_case(case, n, cin, cout, h, w, kh, kw, stride=(1, 1), pad=(0, 0, 0, 0),
              dilation=(1, 1), groups=1, bias=True, same=False):
    """pad = (top, bottom, left, right), applied with F.pad so it may be asymmetric."""
    if same:
        pt, pb = same_padding(h, kh, stride[0], dilation[0])
        pl, pr = same_padding(w, kw, stride[1], dilation[1])
        pad = (pt, pb, pl, pr)
    x = torch.randn(n, cin, h, w)
    weight = torch.randn(cout, cin // groups, kh, kw) * (1.0 / (cin // groups * kh * kw)) ** 0.5
    b = torch.randn(cout) * 0.1

    def fn(x_, w_, b_):
        xp = F.pad(x_, (pad[2], pad[3], pad[0], pad[1]))  # F.pad order: left, right, top, bottom
        return F.conv2d(xp, w_, b_ if bias else None, stride=stride, padding=0,
                        dilation=dilation, groups=groups)

    with torch.no_grad():
        dy = torch.randn(fn(x, weight, b).shape)
    y, (dx, dw, db) = grads64(fn, [x, weight, b], dy)
    params = [cin, cout, kh, kw, stride[0], stride[1], pad[0], pad[1], pad[2], pad[3],
              dilation[0], dilation[1], groups, 1 if bias else 0, 1 if same else 0]
    put(case, x=x, w=weight, dy=dy, dx=dx, dw=dw, params=params)
    if bias:
        put(case, b=b, db=db)


conv_case("conv_k3_p1", 2, 3, 4, 8, 8, 3, 3, pad=(1, 1, 1, 1))
conv_case("conv_k3_s2", 2, 3, 4, 9, 8, 3, 3, stride=(2, 2), bias=False)
conv_case("conv_k5_s2_same", 2, 3, 4, 12, 11, 5, 5, stride=(2, 2), same=True)
conv_case("conv_k1", 2, 6, 5, 5, 7, 1, 1)
conv_case("conv_dw_k3", 2, 4, 4, 7, 7, 3, 3, pad=(1, 1, 1, 1), groups=4)
conv_case("conv_dw_k5_s2_same", 2, 4, 4, 10, 9, 5, 5, stride=(2, 2), groups=4, same=True)
conv_case("conv_dw_mult2", 2, 3, 6, 6, 6, 3, 3, pad=(1, 1, 1, 1), groups=3)
conv_case("conv_groups2", 2, 4, 6, 6, 6, 3, 3, pad=(1, 1, 1, 1), groups=2)
conv_case("conv_dil2", 2, 3, 4, 10, 9, 3, 3, pad=(2, 2, 2, 2), dilation=(2, 2))
conv_case("conv_k3x1", 2, 3, 4, 7, 6, 3, 1, stride=(2, 1), pad=(1, 1, 0, 0))
conv_case("conv_asym", 2, 2, 3, 6, 7, 2, 3, stride=(1, 2), pad=(0, 1, 2, 0), dilation=(1, 2))


# ---- BatchNorm2d, training mode: gradients, batch statistics, running-stat update ---------
def bn_train_case(case, n, c, h, w, momentum, eps):
    x = torch.randn(n, c, h, w) * 1.5 + 0.7
    gamma = torch.rand(c) + 0.5
    beta = torch.randn(c) * 0.2
    running_mean = torch.randn(c) * 0.3
    running_var = torch.rand(c) * 0.8 + 0.1
    dy = torch.randn(n, c, h, w)
    rm64, rv64 = running_mean.double(), running_var.double()

    def fn(x_, g_, b_):
        return F.batch_norm(x_, rm64, rv64, g_, b_, training=True, momentum=momentum, eps=eps)

    y, (dx, dgamma, dbeta) = grads64(fn, [x, gamma, beta], dy)
    x64 = x.double()
    mean = x64.mean(dim=(0, 2, 3))
    rstd = 1.0 / torch.sqrt(x64.var(dim=(0, 2, 3), unbiased=False) + eps)
    put(case, x=x, gamma=gamma, beta=beta, running_mean_in=running_mean,
        running_var_in=running_var, dy=dy, y=y, dx=dx, dgamma=dgamma, dbeta=dbeta,
        save_mean=mean, save_rstd=rstd, running_mean_out=rm64, running_var_out=rv64,
        eps=[eps], momentum=[momentum])


bn_train_case("bn_train_m0.1", 3, 4, 5, 5, 0.1, 1e-5)     # torchvision ResNet / VGG-BN
bn_train_case("bn_train_m0.01", 2, 5, 4, 6, 0.01, 1e-3)   # EfficientNet-Lite (TF momentum 0.99)

# ---- BatchNorm2d with frozen statistics (eval mode) --------------------------------------------
x = torch.randn(2, 4, 5, 5)
gamma, beta = torch.rand(4) + 0.5, torch.randn(4) * 0.2
mean, var = torch.randn(4) * 0.3, torch.rand(4) * 0.8 + 0.1
dy = torch.randn(2, 4, 5, 5)
m64, v64 = mean.double(), var.double()
y, (dx, dgamma, dbeta) = grads64(
    lambda x_, g_, b_: F.batch_norm(x_, m64, v64, g_, b_, training=False, eps=1e-3),
    [x, gamma, beta], dy)
put("bn_frozen", x=x, gamma=gamma, beta=beta, mean=mean, var=var, eps=[1e-3], dy=dy, dx=dx,
    dgamma=dgamma, dbeta=dbeta)

# ---- ReLU and ReLU6 (float32), with values exactly at the kinks ------------------------------
x = torch.randn(2, 3, 6, 6) * 4.0 + 2.0  # reaches past 6
flat = x.view(-1)
flat[::7] = 0.0
flat[3::11] = 6.0
flat[5] = -0.0
flat[9] = 5.9999995  # the float just below 6
flat[10] = 6.0000005  # just above
dy = torch.randn(2, 3, 6, 6)
_, (dx,) = grads32(F.relu, [x], dy)
put("relu", x=x, dy=dy, dx=dx)
_, (dx6,) = grads32(F.relu6, [x], dy)
put("relu6", x=x, dy=dy, dx=dx6)
assert dx6.view(-1)[3] == 0 and dx6.view(-1)[0] == 0  # hardtanh's strict bounds
assert dx6.view(-1)[9] == dy.view(-1)[9] and dx6.view(-1)[10] == 0


# ---- Pooling ------------------------------------------------------------------------------------
def pool_case(case, kind, x, k, s, p):
    dy_shape = (F.max_pool2d if kind == "max" else F.avg_pool2d)(x, k, s, p).shape
    dy = torch.randn(dy_shape)
    if kind == "max":
        fn = lambda x_: F.max_pool2d(x_, k, s, p)  # noqa: E731
    else:
        fn = lambda x_: F.avg_pool2d(x_, k, s, p, count_include_pad=True)  # noqa: E731
    _, (dx,) = grads64(fn, [x], dy)
    put(case, x=x, dy=dy, dx=dx, params=[k, s, p])


# small integers: many ties inside windows (the first maximum in scan order takes the gradient)
pool_case("maxpool_k2_s2_ties", "max", torch.randint(0, 3, (2, 3, 8, 8)).float(), 2, 2, 0)
pool_case("maxpool_k3_s2_p1_ties", "max", torch.randint(0, 3, (2, 3, 9, 9)).float(), 3, 2, 1)
pool_case("maxpool_k3_s1_p1", "max", torch.randn(2, 2, 7, 6), 3, 1, 1)
pool_case("avgpool_k2_s2", "avg", torch.randn(2, 3, 8, 8), 2, 2, 0)
pool_case("avgpool_k3_s1_p1", "avg", torch.randn(2, 3, 7, 6), 3, 1, 1)
pool_case("avgpool_k3_s2_p1", "avg", torch.randn(2, 3, 9, 8), 3, 2, 1)

for case, (h, w), (oh, ow) in [("adaptive_14x14_7x7", (14, 14), (7, 7)),
                               ("adaptive_9x13_7x7", (9, 13), (7, 7)),
                               ("adaptive_2x3_7x7", (2, 3), (7, 7)),
                               ("adaptive_10x7_4x3", (10, 7), (4, 3)),
                               ("adaptive_5x6_1x1", (5, 6), (1, 1))]:
    x = torch.randn(2, 3, h, w)
    dy = torch.randn(2, 3, oh, ow)
    _, (dx,) = grads64(lambda x_: F.adaptive_avg_pool2d(x_, (oh, ow)), [x], dy)
    put(case, x=x, dy=dy, dx=dx, params=[oh, ow])

# ---- Linear --------------------------------------------------------------------------------------
x = torch.randn(4, 12)
weight = torch.randn(6, 12) * 0.3
b = torch.randn(6) * 0.1
dy = torch.randn(4, 6)
_, (dx, dw, db) = grads64(F.linear, [x, weight, b], dy)
put("linear", x=x, w=weight, b=b, dy=dy, dx=dx, dw=dw, db=db)

# ---- Dropout: PyTorch's own dropout (float32, training), its mask read back from the output --
P = 0.3
x = torch.randn(2, 3, 5, 5)
x[x == 0] = 1.0  # a zero input would hide its mask bit
dy = torch.randn(2, 3, 5, 5)
torch.manual_seed(7)
y, (dx,) = grads32(lambda x_: F.dropout(x_, P, training=True), [x], dy)
mask = (y != 0).float()
assert 0 < mask.sum() < mask.numel()
put("dropout", x=x, mask=mask, y=y, dy=dy, dx=dx, p=[P])

# ---- Drop connect: efficientnet_lite_pytorch's drop_connect with a fixed keep vector --------
P_DC = 0.2
keep = torch.tensor([1.0, 0.0, 1.0, 1.0])
x = torch.randn(4, 3, 4, 5)
dy = torch.randn(4, 3, 4, 5)


def drop_connect(inputs, p, binary):
    # efficientnet_lite_pytorch/utils.py: random_tensor = keep_prob + rand([B, 1, 1, 1]);
    # binary_tensor = floor(random_tensor); output = inputs / keep_prob * binary_tensor
    keep_prob = 1 - p
    return inputs / keep_prob * binary.view(-1, 1, 1, 1)


y, (dx,) = grads32(lambda x_: drop_connect(x_, P_DC, keep), [x], dy)
put("drop_connect", x=x, keep=keep, y=y, dy=dy, dx=dx, p=[P_DC])

# ---- Softmax cross-entropy (mean over the batch) ------------------------------------------------
logits = torch.randn(6, 10) * 2.0
logits[1] += 90.0
logits[4] *= 20.0
labels = torch.tensor([3, 0, 9, 2, 5, 5])
lg = logits.double().requires_grad_(True)
loss = F.cross_entropy(lg, labels)
(dlogits,) = torch.autograd.grad(loss, lg)
put("xent", logits=logits, labels=labels, loss=[loss.item()], dlogits=dlogits.float())

save_fixture(OUT, tensors, metadata={"generator": "tools/make_grad_fixtures.py",
                                     "torch": torch.__version__})
size = os.path.getsize(OUT)
print(f"wrote {OUT}: {len(tensors)} tensors, {size} bytes")
assert size < 200 * 1024
