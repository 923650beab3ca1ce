"""Development tool: other heads on headstart's cached features, in PyTorch, to see how far a
frozen backbone's features can go. Reads the two .hsf files a `headstart train` run wrote for
one data set (the layout is described in src/feature_cache.h) and trains, on standardised
features, a linear head and a one-hidden-layer MLP with AdamW and a cosine schedule.

Usage: .venv-bench/bin/python tools/heads_on_cache.py CACHE_DIR [EPOCHS]
(CACHE_DIR is what --cache-dir was; it must hold exactly one train and one val entry.)"""
import glob
import struct
import sys
import time

import numpy as np
import torch

FOOTER = struct.Struct("<8sIIQQQQ32s")  # magic, version, precision, count, dim, header at, size


def load(path):
    data = open(path, "rb").read()
    magic, _, precision, count, dim, header_at, header_size, _ = FOOTER.unpack(data[-FOOTER.size:])
    assert magic == b"HSFCACHE", path
    dtype = np.float16 if precision == 1 else np.float32
    rows = np.frombuffer(data, dtype=dtype, count=count * dim).reshape(count, dim)
    labels = np.frombuffer(data, dtype=np.int32, count=count, offset=rows.nbytes)
    header = data[header_at:header_at + header_size].decode()
    source = next(line for line in header.split("\n") if line.startswith("source="))
    return source, torch.from_numpy(rows.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))


def train(model, x, y, epochs, lr=1e-3, weight_decay=1e-2, batch=256):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * ((len(x) + batch - 1) // batch))
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
    model.eval()
    return model


def accuracy(model, x, y):
    with torch.no_grad():
        return 100.0 * (model(x).argmax(1) == y).float().mean().item()


def main():
    torch.manual_seed(0)
    sets = {}
    for path in glob.glob(sys.argv[1] + "/features/*.hsf"):
        source, x, y = load(path)
        sets["train" if source.endswith("(train)") else "val"] = (x, y)
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    (xt, yt), (xv, yv) = sets["train"], sets["val"]
    mean, std = xt.mean(0), xt.std(0) + 1e-6
    xt, xv = (xt - mean) / std, (xv - mean) / std
    dim, classes = xt.shape[1], int(yt.max()) + 1
    heads = {
        "linear": torch.nn.Linear(dim, classes),
        "mlp 1024": torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(dim, 1024),
                                        torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                        torch.nn.Linear(1024, classes)),
    }
    for name, head in heads.items():
        t = time.time()
        train(head, xt, yt, epochs)
        print(f"{name}: {accuracy(head, xv, yv):.2f} % on {len(yv)} validation images "
              f"({time.time() - t:.0f} s)")


if __name__ == "__main__":
    main()
