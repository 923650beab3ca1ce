"""Writes tests/fixtures/loss.safetensors: softmax cross-entropy with soft targets and with
label smoothing, unweighted and with class weights (CrossEntropyLoss(weight=...)), from
torch.nn.functional.cross_entropy and autograd.

The references are computed in float64 from the float32 inputs (the C loss accumulates in
double), then stored as float32.

Run: /work/main/.venv/bin/python tools/make_loss_fixtures.py
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from fixture_io import deterministic_input, save_fixture  # noqa: E402

N, CLASSES, EPS, LAM = 7, 5, 0.1, 0.3


def loss_and_grad(logits, target, **kw):
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(z, target, **kw)
    loss.backward()
    return loss.detach().numpy(), z.grad.numpy()


def main():
    rng = np.random.default_rng(3)
    logits = deterministic_input((N, CLASSES)) * 3.0
    logits[N - 1] = np.array([80.0, -90.0, 0.5, 79.0, -3.0], dtype=np.float32)  # large range
    soft = rng.dirichlet(np.ones(CLASSES), size=N).astype(np.float32)
    labels = (np.arange(N) * 3) % CLASSES
    out = {"logits": logits, "soft_targets": soft, "labels": labels}
    t = torch.tensor(soft, dtype=torch.float64)
    out["soft_loss"], out["soft_grad"] = loss_and_grad(logits, t)
    # targets with a mass other than 1 (cross_entropy does not normalise them)
    out["scaled_loss"], out["scaled_grad"] = loss_and_grad(logits, t * 0.7)
    lab = torch.tensor(labels, dtype=torch.long)
    out["smooth_loss"], out["smooth_grad"] = loss_and_grad(logits, lab, label_smoothing=EPS)
    out["plain_loss"], out["plain_grad"] = loss_and_grad(logits, lab)
    # Class weights: PyTorch's own reductions for class-index targets (mean normalised by
    # the sum of the samples' class weights, the smoothing term weighted inside the sum).
    weights = np.array([0.5, 2.0, 1.0, 3.5, 0.25], dtype=np.float32)
    w = torch.tensor(weights, dtype=torch.float64)
    out["class_weights"] = weights
    out["wplain_loss"], out["wplain_grad"] = loss_and_grad(logits, lab, weight=w)
    out["wsmooth_loss"], out["wsmooth_grad"] = loss_and_grad(logits, lab, weight=w,
                                                             label_smoothing=EPS)
    # The fine-tune's targets: smoothed one-hots mixed as the loader mixes them (image i
    # with image N-1-i, lambda LAM; the middle of the odd batch keeps its own), with
    # PyTorch's weighted soft-target sum normalised by the sum of each image's own class
    # weight (which the pairs leave unchanged whatever lambda is).
    smooth = np.full((N, CLASSES), EPS / CLASSES)
    smooth[np.arange(N), labels] += 1.0 - EPS
    mixed = smooth.copy()
    for i in range(N):
        j = N - 1 - i
        if i != j:
            mixed[i] = LAM * smooth[i] + (1.0 - LAM) * smooth[j]
    out["mixed_targets"] = mixed.astype(np.float32)
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    tm = torch.tensor(mixed.astype(np.float32), dtype=torch.float64)
    loss = F.cross_entropy(z, tm, weight=w, reduction="sum") / w[lab].sum()
    loss.backward()
    out["wmixed_loss"], out["wmixed_grad"] = loss.detach().numpy(), z.grad.numpy()
    out["soft_loss"] = np.array([out["soft_loss"]])
    for k in ("scaled_loss", "smooth_loss", "plain_loss", "wplain_loss", "wsmooth_loss",
              "wmixed_loss"):
        out[k] = np.array([out[k]])
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "loss.safetensors")
    save_fixture(path, out, metadata={"torch": torch.__version__, "eps": EPS, "lambda": LAM})
    print(f"soft {out['soft_loss'][0]:.6f} smooth {out['smooth_loss'][0]:.6f} -> "
          f"{os.path.normpath(path)}")


if __name__ == "__main__":
    main()
