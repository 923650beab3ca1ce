"""One EfficientNet-Lite0 training step in PyTorch, for tests/test_engine.c.

The reference (efficientnet_lite_pytorch) in training mode, drop connect and dropout off,
BatchNorm with batch statistics (momentum 0.01, eps 1e-3), on deterministic_input(2, 3, 64,
64) with labels [3, 7] and the mean cross-entropy loss. The weights are not stored: both
sides compute them from an integer hash (weight_value below; C: lite_step_weights in
test_engine.c), rounded to float32. The step itself runs in float64, so the fixture is the
exact answer for those float32 inputs.

Stored (tests/fixtures/nets/lite0_train_step.safetensors, ~60 KB): the loss, the logits,
and per trainable parameter its gradient's sum, L2 norm and 32 sampled entries at
(i * 7919 + 13) % numel; per BatchNorm its updated running_mean and running_var sums.

    /work/main/.venv/bin/python tools/make_train_step_fixtures.py
"""
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from fixture_io import deterministic_input, save_fixture  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "nets"
SAMPLES = 32
LABELS = [3, 7]


def uniform_hash(index, numel):
    """u in [-1, 1) for entries 0..numel-1 of tensor `index`: an integer hash, exact on both
    sides (a formula like sin(a i + b k) would make every weight matrix rank 2, and the
    training step then so ill-conditioned that float32 PyTorch itself is 25 % off)."""
    h = (np.arange(numel, dtype=np.uint64) * np.uint64(2654435761) +
         np.uint64(index * 40503 + 12345)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(2246822519)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(13)
    return h.astype(np.float64) / 2.0**31 - 1.0


def weight_value(key, index, shape):
    """The formula both sides use: v = uniform_hash for entry i of tensor k (state-dict order,
    buffers included), scaled per kind of tensor."""
    numel = int(np.prod(shape))
    v = uniform_hash(index, numel)
    name = key.rsplit(".", 1)[-1]
    if name == "running_mean":
        v = 0.1 * v
    elif name == "running_var":
        v = 1.0 + 0.25 * (v + 1.0)
    elif len(shape) == 1 and name == "weight":  # BatchNorm gamma
        v = 1.0 + 0.2 * v
    elif name == "bias":
        v = 0.1 * v
    else:  # conv / linear weight: PyTorch's default bound, 1 / sqrt(fan_in), times sqrt(3)
        fan_in = numel // shape[0]
        v = v * (1.7 / np.sqrt(fan_in))
    return v.astype(np.float32).reshape(shape)


def sample_indices(numel):
    return [(i * 7919 + 13) % numel for i in range(SAMPLES)]


def main():
    from efficientnet_lite_pytorch import EfficientNet
    torch.manual_seed(0)
    model = EfficientNet.from_name("efficientnet-lite0", image_size=64, drop_connect_rate=0.0,
                                   dropout_rate=0.0)
    state = model.state_dict()
    new_state = {}
    index = 0
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            new_state[key] = value
            continue
        new_state[key] = torch.from_numpy(weight_value(key, index, tuple(value.shape)))
        index += 1
    model.load_state_dict(new_state)
    model = model.double().train()

    x = torch.from_numpy(deterministic_input((2, 3, 64, 64))).double()
    labels = torch.tensor(LABELS)
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()

    tensors = {"loss": [loss.item()], "logits": logits.detach().numpy()}
    for name, p in model.named_parameters():
        g = p.grad.detach().numpy().reshape(-1)
        idx = sample_indices(g.size)
        tensors["grad." + name] = np.concatenate([[g.sum(), np.sqrt((g * g).sum())], g[idx]])
    for name, buf in model.named_buffers():
        if name.endswith("running_mean") or name.endswith("running_var"):
            tensors["after." + name] = [buf.sum().item()]
    OUT.mkdir(parents=True, exist_ok=True)
    save_fixture(OUT / "lite0_train_step.safetensors", tensors,
                 {"input": "deterministic_input(2,3,64,64)", "labels": "3,7",
                  "weights": "tools/make_train_step_fixtures.py weight_value"})
    print(f"loss {loss.item():.6f}, {len(tensors)} tensors")


if __name__ == "__main__":
    main()
