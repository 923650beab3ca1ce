"""PyTorch's forward and backward of the layer kinds MobileNetV3 and EfficientNet add, for
tests/test_layers_mobile.c: sigmoid, SiLU, hard swish, hard sigmoid and the channel scale of
squeeze-and-excitation (x * s with s of shape n x c x 1 x 1).

Inputs are float32 and stored with the results; PyTorch computes in float64 from them, and
the results are rounded to float32 once, so they are the exact answers to float precision.
The activations' inputs include the kinks (-3, 0, 3) exactly, where PyTorch's gradient has
a definition the C kernels must follow. The tensors are large enough (120 values) for
PyTorch's vectorised CPU kernels, which give hard swish's gradient 1 at exactly x = 3 (its
scalar tail loop would give 1.5).

    .venv/bin/python tools/make_mobile_grad_fixtures.py
writes tests/fixtures/grads_mobile.safetensors (~10 KB).
"""
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from fixture_io import put_case, save_fixture  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"
SHAPE = (2, 5, 3, 4)  # n, c, h, w


def activation_input(rng):
    """Values over [-5, 5] plus the kinks and their float neighbours."""
    x = rng.uniform(-5.0, 5.0, size=SHAPE).astype(np.float32).reshape(-1)
    specials = [-3.0, 3.0, 0.0, np.nextafter(np.float32(-3), np.float32(0)),
                np.nextafter(np.float32(3), np.float32(0)),
                np.nextafter(np.float32(-3), np.float32(-4)),
                np.nextafter(np.float32(3), np.float32(4)), -6.0, 6.0, 20.0, -20.0]
    x[:len(specials)] = np.array(specials, dtype=np.float32)
    return x.reshape(SHAPE)


def main():
    rng = np.random.default_rng(2024)
    tensors = {}
    functions = {"sigmoid": torch.sigmoid, "silu": F.silu, "hardswish": F.hardswish,
                 "hardsigmoid": F.hardsigmoid}
    for name, fn in functions.items():
        x32 = activation_input(rng)
        dy32 = rng.uniform(-1.0, 1.0, size=SHAPE).astype(np.float32)
        x = torch.from_numpy(x32).double().requires_grad_(True)
        y = fn(x)
        y.backward(torch.from_numpy(dy32).double())
        put_case(tensors, name, x=x32, dy=dy32, y=y, dx=x.grad)

    x32 = rng.uniform(-2.0, 2.0, size=SHAPE).astype(np.float32)
    s32 = rng.uniform(0.0, 1.0, size=SHAPE[:2] + (1, 1)).astype(np.float32)
    dy32 = rng.uniform(-1.0, 1.0, size=SHAPE).astype(np.float32)
    x = torch.from_numpy(x32).double().requires_grad_(True)
    s = torch.from_numpy(s32).double().requires_grad_(True)
    y = x * s
    y.backward(torch.from_numpy(dy32).double())
    put_case(tensors, "scale", x=x32, s=s32, dy=dy32, y=y, dx=x.grad, ds=s.grad)
    save_fixture(OUT / "grads_mobile.safetensors", tensors,
                 {"generator": "tools/make_mobile_grad_fixtures.py", "shape": "2,5,3,4"})
    print(f"wrote {len(tensors)} tensors to {OUT / 'grads_mobile.safetensors'}")


if __name__ == "__main__":
    main()
