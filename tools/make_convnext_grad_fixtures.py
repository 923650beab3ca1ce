"""Writes tests/fixtures/grads_convnext.safetensors: PyTorch's outputs and gradients for the
ConvNeXt layer kinds (src/layers/gelu.c, layernorm2d.c, layer_scale.c and conv.c's
pointwise_linear), read by tests/test_layers_convnext.c.

Run with the dev environment's Python (torch 1.13):
    .venv/bin/python tools/make_convnext_grad_fixtures.py

As tools/make_grad_fixtures.py: inputs, parameters and upstream gradients are drawn in float32
and stored as float32; PyTorch then runs each operation in float64 on those exact values and
the results are rounded to float32 once, so they are the exact values to float precision.
Each case runs the module torchvision's ConvNeXt uses (nn.GELU, LayerNorm2d, CNBlock's
permuted nn.LayerNorm and nn.Linear, CNBlock's layer_scale parameter), so the fixture also
pins down that those are the operations the C layers implement.

Layout: "<case>.<name>" tensors; a case's sizes in "<case>.params".
"""
import os
import sys

import torch
import torch.nn as nn
from torchvision.models.convnext import LayerNorm2d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import put_case, save_fixture  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "grads_convnext.safetensors")

torch.manual_seed(20261203)
tensors = {}


def put(case, **named):
    put_case(tensors, case, **named)


def run64(module, x, dy):
    """module in float64 on a float64 copy of x: (y, dx, {param name: grad}) as float32."""
    module = module.double()
    x64 = x.detach().double().requires_grad_(True)
    y = module(x64)
    params = dict(module.named_parameters())
    grads = torch.autograd.grad(y, [x64] + list(params.values()), dy.double())
    return (y.detach().float(), grads[0].float(),
            {k: g.float() for k, g in zip(params, grads[1:])})


class Permuted(nn.Module):
    """CNBlock's way: NCHW -> NHWC, the module over the last dimension, back to NCHW."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    """CNBlock's `self.layer_scale * x`, its parameter of shape [C, 1, 1]."""

    def __init__(self, gamma):
        super().__init__()
        self.layer_scale = nn.Parameter(gamma.clone())

    def forward(self, x):
        return self.layer_scale * x


# ---- GELU (exact): values spread over the curve, at 0 and at the derivative's zero ----------
x = torch.randn(2, 3, 5, 6) * 2.0
flat = x.view(-1)
flat[0] = 0.0
flat[1] = -0.7517916  # d gelu / dx ~ 0 here
flat[2] = 8.0
flat[3] = -8.0
dy = torch.randn(x.shape)
y, dx, _ = run64(nn.GELU(), x, dy)
put("gelu", x=x, dy=dy, y=y, dx=dx, params=list(x.shape))


# ---- LayerNorm over channels: torchvision's LayerNorm2d, and CNBlock's permuted LayerNorm ---
def layernorm_case(case, n, c, h, w, eps, permuted):
    x = torch.randn(n, c, h, w) * 1.5 + 0.7
    weight = torch.rand(c) + 0.5
    bias = torch.randn(c) * 0.2
    dy = torch.randn(n, c, h, w)
    ln = nn.LayerNorm(c, eps=eps) if permuted else LayerNorm2d(c, eps=eps)
    with torch.no_grad():
        ln.weight.copy_(weight)
        ln.bias.copy_(bias)
    y, dx, g = run64(Permuted(ln) if permuted else ln, x, dy)
    key = "inner." if permuted else ""
    put(case, x=x, weight=weight, bias=bias, dy=dy, y=y, dx=dx, dweight=g[key + "weight"],
        dbias=g[key + "bias"], eps=[eps], params=[n, c, h, w])


layernorm_case("layernorm2d", 2, 5, 4, 3, 1e-6, False)       # ConvNeXt's eps
layernorm_case("layernorm_permuted", 2, 7, 9, 8, 1e-6, True)  # 72 pixels: two tiles of 64
layernorm_case("layernorm2d_eps", 3, 4, 2, 5, 1e-3, False)    # eps that matters

# ---- layer scale --------------------------------------------------------------------------------
x = torch.randn(2, 4, 3, 5)
gamma = torch.randn(4, 1, 1)
dy = torch.randn(x.shape)
y, dx, g = run64(LayerScale(gamma), x, dy)
put("layer_scale", x=x, gamma=gamma, dy=dy, y=y, dx=dx, dgamma=g["layer_scale"],
    params=list(x.shape))

# ---- a Linear applied per pixel (CNBlock's block.3 / block.5) -----------------------------------
x = torch.randn(2, 6, 3, 4)
lin = nn.Linear(6, 5)
with torch.no_grad():
    lin.weight.copy_(torch.randn(5, 6) * 0.4)
    lin.bias.copy_(torch.randn(5) * 0.1)
w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
dy = torch.randn(2, 5, 3, 4)
y, dx, g = run64(Permuted(lin), x, dy)
put("pointwise_linear", x=x, w=w0, b=b0, dy=dy, y=y, dx=dx, dw=g["inner.weight"],
    db=g["inner.bias"], params=[2, 6, 5, 3, 4])

save_fixture(OUT, tensors, metadata={"generator": "tools/make_convnext_grad_fixtures.py",
                                     "torch": torch.__version__})
size = os.path.getsize(OUT)
print(f"wrote {OUT}: {len(tensors)} tensors, {size} bytes")
assert size < 100 * 1024
